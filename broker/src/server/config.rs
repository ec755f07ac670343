//! The broker's settings: command-line flags, then `STRATA_*` environment
//! variables, then an optional TOML file (`--config`), then defaults, in
//! that order of precedence. `strata-broker --help` lists every setting
//! with its default.
//!
//! The TOML file uses the flags' long names as keys (`data-dir = "/srv"`,
//! or `data_dir`). It is merged by turning each of its keys that neither a
//! flag nor an environment variable set into a flag, so clap checks every
//! value the same way, wherever it came from.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use strata_proto::TimestampType;

use crate::core::config::DurabilityKind;
use crate::core::groups::GroupSettings;
use crate::core::{BrokerOptions, Limits, TopicConfig, TopicDefaults};

/// `durability` values on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityArg {
    /// fsync before acknowledging (group-committed).
    Fsync,
    /// fsync every --flush-ms or --flush-messages.
    Interval,
    /// Page cache only; a power loss can lose acknowledged records.
    #[value(name = "page_cache", alias = "page-cache")]
    PageCache,
}

/// `message.timestamp.type` values on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimestampArg {
    /// The producer's timestamps.
    #[value(name = "CreateTime")]
    CreateTime,
    /// The broker's clock at append.
    #[value(name = "LogAppendTime")]
    LogAppendTime,
}

/// Every setting of the broker.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "strata-broker",
    version,
    about = "The Strata log broker",
    max_term_width = 100
)]
pub struct Args {
    /// A TOML file of settings (keys are the long flag names).
    #[arg(long, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory holding all topics and partitions.
    #[arg(long, env = "STRATA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Address of the gRPC server (port 0 picks a free port; the chosen
    /// address is printed as "strata-broker listening on ADDR").
    #[arg(long, env = "STRATA_LISTEN", default_value = "127.0.0.1:7390")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP endpoint for Prometheus (`/metrics`) and
    /// health probes (`/healthz`, `/readyz`); port 0 picks a free port,
    /// printed as "strata-broker metrics on ADDR".
    #[arg(long, env = "STRATA_METRICS_LISTEN", default_value = "127.0.0.1:7391")]
    pub metrics_listen: SocketAddr,
    /// Address of the Kafka protocol listener (port 0 picks a free port,
    /// printed as "strata-broker kafka on ADDR").
    #[arg(long, env = "STRATA_KAFKA_LISTEN", default_value = "127.0.0.1:9092")]
    pub kafka_listen: SocketAddr,
    /// Serve no Kafka protocol listener.
    #[arg(long, env = "STRATA_NO_KAFKA")]
    pub no_kafka: bool,
    /// HOST:PORT that Kafka clients are told to connect to (Metadata,
    /// FindCoordinator); default: the listener's address, with 127.0.0.1
    /// for an unspecified one (set it when clients reach the broker by
    /// another name, as in a container).
    #[arg(long, env = "STRATA_KAFKA_ADVERTISE")]
    pub kafka_advertise: Option<String>,
    /// Kafka connections open at once.
    #[arg(long, env = "STRATA_KAFKA_CONNECTIONS_MAX", default_value_t = 10_000)]
    pub kafka_connections_max: u32,
    /// Create a topic (with the defaults) when a Kafka client's Metadata
    /// request names one that does not exist, as Kafka's
    /// auto.create.topics.enable (off by default).
    #[arg(long, env = "STRATA_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: bool,
    /// Serve no metrics or HTTP probes at all.
    #[arg(long, env = "STRATA_NO_METRICS")]
    pub no_metrics: bool,
    /// Log filter (tracing's EnvFilter syntax); RUST_LOG wins if set.
    #[arg(long, env = "STRATA_LOG", default_value = "info")]
    pub log: String,

    /// Partitions of a topic created without a count.
    #[arg(long, env = "STRATA_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: u32,
    /// Default retention.ms (-1 keeps forever).
    #[arg(long, env = "STRATA_RETENTION_MS", default_value_t = TopicConfig::default().retention_ms, allow_hyphen_values = true)]
    pub retention_ms: i64,
    /// Default retention.bytes per partition (-1 is unlimited).
    #[arg(long, env = "STRATA_RETENTION_BYTES", default_value_t = TopicConfig::default().retention_bytes, allow_hyphen_values = true)]
    pub retention_bytes: i64,
    /// Default segment.bytes.
    #[arg(long, env = "STRATA_SEGMENT_BYTES", default_value_t = TopicConfig::default().segment_bytes)]
    pub segment_bytes: u64,
    /// Default segment.ms.
    #[arg(long, env = "STRATA_SEGMENT_MS", default_value_t = TopicConfig::default().segment_ms)]
    pub segment_ms: u64,
    /// The smallest segment.bytes a topic may set.
    #[arg(long, env = "STRATA_SEGMENT_BYTES_MIN", default_value_t = crate::core::config::SEGMENT_BYTES_MIN)]
    pub segment_bytes_min: u64,
    /// The smallest segment.ms a topic may set.
    #[arg(long, env = "STRATA_SEGMENT_MS_MIN", default_value_t = crate::core::config::SEGMENT_MS_MIN)]
    pub segment_ms_min: u64,
    /// Default max.message.bytes: the largest record batch accepted.
    #[arg(long, env = "STRATA_MAX_MESSAGE_BYTES", default_value_t = TopicConfig::default().max_message_bytes)]
    pub max_message_bytes: u32,
    /// Default message.timestamp.type.
    #[arg(
        long,
        env = "STRATA_MESSAGE_TIMESTAMP_TYPE",
        value_enum,
        default_value = "CreateTime"
    )]
    pub message_timestamp_type: TimestampArg,
    /// Default durability of topics.
    #[arg(long, env = "STRATA_DURABILITY", value_enum, default_value = "fsync")]
    pub durability: DurabilityArg,
    /// Default flush.ms (durability=interval).
    #[arg(long, env = "STRATA_FLUSH_MS", default_value_t = TopicConfig::default().flush_ms)]
    pub flush_ms: u64,
    /// Default flush.messages (durability=interval).
    #[arg(long, env = "STRATA_FLUSH_MESSAGES", default_value_t = TopicConfig::default().flush_messages)]
    pub flush_messages: u64,

    /// Default cleanup.policy: delete, compact, or compact,delete.
    #[arg(long, env = "STRATA_CLEANUP_POLICY", default_value = "delete")]
    pub cleanup_policy: String,
    /// Default `compression.type`: producer (keep each batch's codec),
    /// uncompressed, gzip, snappy, lz4 or zstd (recompress to it).
    #[arg(long, env = "STRATA_COMPRESSION_TYPE", default_value = "producer")]
    pub compression_type: String,
    /// Default delete.retention.ms: how long compaction keeps a tombstone.
    #[arg(long, env = "STRATA_DELETE_RETENTION_MS", default_value_t = TopicConfig::default().delete_retention_ms)]
    pub delete_retention_ms: i64,
    /// Default min.cleanable.dirty.ratio: the share of uncompacted bytes
    /// that starts a compaction pass.
    #[arg(long, env = "STRATA_MIN_CLEANABLE_DIRTY_RATIO", default_value_t = TopicConfig::default().min_cleanable_dirty_ratio)]
    pub min_cleanable_dirty_ratio: f64,
    /// Bytes of key map one compaction pass may hold (keys plus about 48
    /// bytes each); a partition with more distinct keys in its uncompacted
    /// part takes several passes.
    #[arg(long, env = "STRATA_COMPACTION_MAP_BYTES_MAX", default_value_t = Limits::default().compaction_map_bytes_max)]
    pub compaction_map_bytes_max: u64,

    /// Largest gRPC request accepted, in bytes (a produce request carries
    /// its batches).
    #[arg(long, env = "STRATA_REQUEST_BYTES_MAX", default_value_t = 64 << 20)]
    pub request_bytes_max: u32,
    /// Largest fetch response, in bytes; larger max_bytes are clamped.
    #[arg(long, env = "STRATA_FETCH_BYTES_MAX", default_value_t = Limits::default().fetch_bytes_max)]
    pub fetch_bytes_max: u32,
    /// Longest fetch long-poll, in ms; larger max_wait_ms are clamped.
    #[arg(long, env = "STRATA_FETCH_WAIT_MS_MAX", default_value_t = Limits::default().fetch_wait_ms_max)]
    pub fetch_wait_ms_max: u32,
    /// Subscriptions open at once.
    #[arg(long, env = "STRATA_SUBSCRIPTIONS_MAX", default_value_t = Limits::default().subscriptions_max)]
    pub subscriptions_max: u32,
    /// Partitions in one subscription.
    #[arg(
        long,
        env = "STRATA_SUBSCRIPTION_PARTITIONS_MAX",
        default_value_t = Limits::default().subscription_partitions_max
    )]
    pub subscription_partitions_max: u32,
    /// Messages queued per subscription for a slow reader.
    #[arg(long, env = "STRATA_SUBSCRIPTION_BUFFER_MESSAGES", default_value_t = Limits::default().subscription_buffer_messages)]
    pub subscription_buffer_messages: u32,
    /// The most a compressed batch's records may decompress to (a bigger
    /// one is refused, naming this limit).
    #[arg(long, env = "STRATA_BATCH_DECOMPRESSED_BYTES_MAX", default_value_t = Limits::default().batch_decompressed_bytes_max)]
    pub batch_decompressed_bytes_max: u32,
    /// Bytes that compressed batches being validated may hold at once,
    /// across the broker (appends past it wait).
    #[arg(long, env = "STRATA_DECOMPRESSION_BYTES_MAX", default_value_t = Limits::default().decompression_bytes_max)]
    pub decompression_bytes_max: u64,
    /// Appends running or waiting for a blocking thread at once.
    #[arg(long, env = "STRATA_APPENDS_IN_FLIGHT_MAX", default_value_t = Limits::default().appends_in_flight_max)]
    pub appends_in_flight_max: u32,
    /// Partitions one fetch may name.
    #[arg(long, env = "STRATA_FETCH_PARTITIONS_MAX", default_value_t = Limits::default().fetch_partitions_max)]
    pub fetch_partitions_max: u32,
    /// Bytes all fetch answers and queued subscription messages may hold at
    /// once; past it reads wait. At least --fetch-bytes-max.
    #[arg(long, env = "STRATA_RESPONSE_BYTES_MAX", default_value_t = Limits::default().response_bytes_max)]
    pub response_bytes_max: u64,
    /// Sealed segments whose files stay open at once, across all
    /// partitions (three descriptors each); the least recently used close.
    #[arg(long, env = "STRATA_SEALED_SEGMENTS_OPEN_MAX", default_value_t = Limits::default().sealed_segments_open_max)]
    pub sealed_segments_open_max: u32,
    /// Threads that open and recover partitions at startup.
    #[arg(long, env = "STRATA_RECOVERY_THREADS", default_value_t = Limits::default().recovery_threads)]
    pub recovery_threads: u32,
    /// Topics on the broker.
    #[arg(long, env = "STRATA_TOPICS_MAX", default_value_t = Limits::default().topics_max)]
    pub topics_max: u32,
    /// Partitions of one topic.
    #[arg(long, env = "STRATA_PARTITIONS_MAX", default_value_t = Limits::default().partitions_max)]
    pub partitions_max: u32,
    /// Concurrent gRPC calls per connection (HTTP/2 streams).
    #[arg(
        long,
        env = "STRATA_STREAMS_PER_CONNECTION_MAX",
        default_value_t = 1024
    )]
    pub streams_per_connection_max: u32,
    /// HTTP/2 flow-control window per stream, in bytes. Larger than a
    /// batch, so a megabyte batch is never stalled mid-flight.
    #[arg(long, env = "STRATA_HTTP2_STREAM_WINDOW_BYTES", default_value_t = 64 << 20)]
    pub http2_stream_window_bytes: u32,
    /// HTTP/2 flow-control window per connection, in bytes.
    #[arg(long, env = "STRATA_HTTP2_CONNECTION_WINDOW_BYTES", default_value_t = 64 << 20)]
    pub http2_connection_window_bytes: u32,
    /// HTTP/2 frame size, in bytes (16 KiB to 16 MiB - 1): big frames carry
    /// big batches in few pieces.
    #[arg(long, env = "STRATA_HTTP2_FRAME_BYTES", default_value_t = (16 << 20) - 1)]
    pub http2_frame_bytes: u32,
    /// Milliseconds between retention checks (each deletes the sealed
    /// segments past their topic's retention.ms or retention.bytes, and
    /// compacts partitions of compacted topics that are dirty enough).
    #[arg(
        long,
        env = "STRATA_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 30_000
    )]
    pub retention_check_interval_ms: u64,
    /// Session timeout of a group member that does not ask for one (ms).
    #[arg(long, env = "STRATA_GROUP_SESSION_TIMEOUT_MS", default_value_t = GroupSettings::default().session_timeout_ms)]
    pub group_session_timeout_ms: u32,
    /// Shortest session timeout a member may ask for (ms).
    #[arg(long, env = "STRATA_GROUP_SESSION_TIMEOUT_MS_MIN", default_value_t = GroupSettings::default().session_timeout_ms_min)]
    pub group_session_timeout_ms_min: u32,
    /// Longest session timeout a member may ask for (ms).
    #[arg(long, env = "STRATA_GROUP_SESSION_TIMEOUT_MS_MAX", default_value_t = GroupSettings::default().session_timeout_ms_max)]
    pub group_session_timeout_ms_max: u32,
    /// How often group members heartbeat (ms; at most a third of their
    /// session timeout).
    #[arg(long, env = "STRATA_GROUP_HEARTBEAT_INTERVAL_MS", default_value_t = GroupSettings::default().heartbeat_interval_ms)]
    pub group_heartbeat_interval_ms: u32,
    /// How long a member may take to release a revoked partition before it
    /// is removed from its group, unless it asks for another (ms).
    #[arg(long, env = "STRATA_GROUP_REBALANCE_TIMEOUT_MS", default_value_t = GroupSettings::default().rebalance_timeout_ms)]
    pub group_rebalance_timeout_ms: u32,
    /// Consumer groups on the broker.
    #[arg(long, env = "STRATA_GROUPS_MAX", default_value_t = GroupSettings::default().groups_max)]
    pub groups_max: u32,
    /// Members of one group.
    #[arg(long, env = "STRATA_GROUP_MEMBERS_MAX", default_value_t = GroupSettings::default().group_members_max)]
    pub group_members_max: u32,
    /// Bytes of metadata in one committed offset.
    #[arg(long, env = "STRATA_COMMIT_METADATA_BYTES_MAX", default_value_t = GroupSettings::default().commit_metadata_bytes_max)]
    pub commit_metadata_bytes_max: u32,
    /// Topics one group member may subscribe to.
    #[arg(long, env = "STRATA_MEMBER_TOPICS_MAX", default_value_t = GroupSettings::default().member_topics_max)]
    pub member_topics_max: u32,
    /// How long a new Kafka classic-protocol group's first rebalance waits
    /// for more members to join (Kafka's group.initial.rebalance.delay.ms).
    #[arg(long, env = "STRATA_GROUP_INITIAL_REBALANCE_DELAY_MS", default_value_t = GroupSettings::default().initial_rebalance_delay_ms)]
    pub group_initial_rebalance_delay_ms: u32,
    /// Share groups' defaults and bounds.
    #[command(flatten)]
    pub share: super::share_args::ShareArgs,
    /// Authentication, super users, the first admin, the loopback rule.
    #[command(flatten)]
    pub security: super::security_args::SecurityArgs,
    /// TLS and connection limits of the gRPC listener.
    #[command(flatten)]
    pub listener: super::listener_args::ListenerArgs,
    /// Milliseconds between checks for members whose session ran out.
    #[arg(long, env = "STRATA_GROUP_CHECK_INTERVAL_MS", default_value_t = 100)]
    pub group_check_interval_ms: u64,
    /// For tests only: answer every Nth produce call with UNAVAILABLE after
    /// appending, as if the response were lost (0: never).
    #[arg(long, hide = true, default_value_t = 0)]
    pub test_lose_produce_responses: u64,
    /// Milliseconds to let in-flight calls finish at shutdown.
    #[arg(long, env = "STRATA_SHUTDOWN_TIMEOUT_MS", default_value_t = 30_000)]
    pub shutdown_timeout_ms: u64,
}

fn toml_value(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Args {
    /// Parses the command line, the environment and the TOML file. `--help`
    /// and `--version` print and exit, as do parse errors.
    pub fn load(argv: impl IntoIterator<Item = OsString>) -> anyhow::Result<Self> {
        let argv: Vec<OsString> = argv.into_iter().collect();
        let first = Self::command().get_matches_from(&argv);
        let Some(path) = first.get_one::<PathBuf>("config").cloned() else {
            return Ok(Self::from_arg_matches(&first)?);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("parsing config file {}", path.display()))?;
        let cmd = Self::command();
        let mut merged = vec![
            argv.first()
                .cloned()
                .unwrap_or_else(|| "strata-broker".into()),
        ];
        for (key, value) in &table {
            let long = key.replace('_', "-");
            let Some(arg) = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()))
            else {
                bail!("unknown setting {key:?} in {}", path.display());
            };
            if long == "config" {
                continue;
            }
            let Some(value) = toml_value(value) else {
                bail!(
                    "setting {key:?} in {} must be a string, number or boolean",
                    path.display()
                );
            };
            if from_default(&first, arg.get_id().as_str()) {
                merged.push(format!("--{long}={value}").into());
            }
        }
        merged.extend(argv.into_iter().skip(1));
        Ok(Self::from_arg_matches(
            &Self::command().get_matches_from(merged),
        )?)
    }

    /// The core's options.
    pub fn broker_options(&self) -> BrokerOptions {
        BrokerOptions {
            data_dir: self.data_dir.clone(),
            defaults: TopicDefaults {
                partitions: self.default_partitions,
                config: TopicConfig {
                    retention_ms: self.retention_ms,
                    retention_bytes: self.retention_bytes,
                    segment_bytes: self.segment_bytes,
                    segment_ms: self.segment_ms,
                    max_message_bytes: self.max_message_bytes,
                    timestamp_type: match self.message_timestamp_type {
                        TimestampArg::CreateTime => TimestampType::CreateTime,
                        TimestampArg::LogAppendTime => TimestampType::LogAppendTime,
                    },
                    durability: match self.durability {
                        DurabilityArg::Fsync => DurabilityKind::Fsync,
                        DurabilityArg::Interval => DurabilityKind::Interval,
                        DurabilityArg::PageCache => DurabilityKind::PageCache,
                    },
                    flush_ms: self.flush_ms,
                    flush_messages: self.flush_messages,
                    // Checked in `validate`; the built-in default otherwise.
                    cleanup: crate::core::config::CleanupPolicy::parse(&self.cleanup_policy)
                        .unwrap_or(TopicConfig::default().cleanup),
                    compression_type: crate::core::config::CompressionType::parse(
                        &self.compression_type,
                    )
                    .unwrap_or(TopicConfig::default().compression_type),
                    delete_retention_ms: self.delete_retention_ms,
                    min_cleanable_dirty_ratio: self.min_cleanable_dirty_ratio,
                },
                segment_bytes_min: self.segment_bytes_min,
                segment_ms_min: self.segment_ms_min,
            },
            limits: Limits {
                topics_max: self.topics_max,
                partitions_max: self.partitions_max,
                fetch_bytes_max: self.fetch_bytes_max,
                fetch_wait_ms_max: self.fetch_wait_ms_max,
                subscriptions_max: self.subscriptions_max,
                subscription_partitions_max: self.subscription_partitions_max,
                subscription_buffer_messages: self.subscription_buffer_messages.max(1),
                appends_in_flight_max: self.appends_in_flight_max.max(1),
                compaction_map_bytes_max: self.compaction_map_bytes_max.max(1024),
                recovery_threads: self.recovery_threads.clamp(1, 256),
                fetch_partitions_max: self.fetch_partitions_max.max(1),
                response_bytes_max: self.response_bytes_max,
                sealed_segments_open_max: self.sealed_segments_open_max.max(1),
                batch_decompressed_bytes_max: self.batch_decompressed_bytes_max.max(1),
                decompression_bytes_max: self.decompression_bytes_max.max(1),
            },
            fs: crate::storage::vfs::real(),
        }
    }

    /// The group coordinator's settings.
    pub fn group_settings(&self) -> GroupSettings {
        GroupSettings {
            session_timeout_ms: self.group_session_timeout_ms,
            session_timeout_ms_min: self.group_session_timeout_ms_min,
            session_timeout_ms_max: self.group_session_timeout_ms_max,
            heartbeat_interval_ms: self.group_heartbeat_interval_ms.max(1),
            rebalance_timeout_ms: self.group_rebalance_timeout_ms,
            groups_max: self.groups_max,
            group_members_max: self.group_members_max,
            commit_metadata_bytes_max: self.commit_metadata_bytes_max,
            member_topics_max: self.member_topics_max.max(1),
            initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            share: self.share.defaults(
                self.group_session_timeout_ms,
                self.group_session_timeout_ms_min,
                self.group_session_timeout_ms_max,
                self.group_heartbeat_interval_ms.max(1),
            ),
            log_segment_bytes: GroupSettings::default().log_segment_bytes,
        }
    }

    /// The Kafka listener's settings, once it is bound to `bound`.
    pub fn kafka_settings(&self, bound: SocketAddr) -> anyhow::Result<crate::kafka::KafkaSettings> {
        let (host, port) = match &self.kafka_advertise {
            Some(a) => {
                let (h, p) = a
                    .rsplit_once(':')
                    .with_context(|| format!("--kafka-advertise {a:?} must be HOST:PORT"))?;
                let port: u16 = p
                    .parse()
                    .with_context(|| format!("--kafka-advertise {a:?}: bad port"))?;
                (h.trim_matches(['[', ']']).to_string(), port)
            }
            // Clients resolve "localhost" to ::1 first; an IPv4 address
            // is what they can always reach on loopback.
            None if bound.ip().is_unspecified() => ("127.0.0.1".to_string(), bound.port()),
            None => (bound.ip().to_string(), bound.port()),
        };
        Ok(crate::kafka::KafkaSettings {
            advertised_host: host,
            advertised_port: port,
            request_bytes_max: self.request_bytes_max,
            connections_max: self.kafka_connections_max,
            auto_create_topics: self.auto_create_topics,
            cluster_id: "strata".to_string(),
        })
    }

    /// Checks settings that clap's types cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.listener.validate()?;
        let mut listeners = vec![("--listen", self.listen, self.listener.tls_on())];
        if !self.no_metrics {
            listeners.push(("--metrics-listen", self.metrics_listen, false));
        }
        if !self.no_kafka {
            // The Kafka listener serves TLS whenever the gRPC one does.
            listeners.push(("--kafka-listen", self.kafka_listen, self.listener.tls_on()));
        }
        self.security.validate(&listeners)?;
        if !(16 * 1024..=(16 << 20) - 1).contains(&self.http2_frame_bytes) {
            bail!("--http2-frame-bytes must be between 16384 and 16777215");
        }
        if self.default_partitions == 0 || self.default_partitions > self.partitions_max {
            bail!("--default-partitions must be between 1 and --partitions-max");
        }
        if self.group_session_timeout_ms_min > self.group_session_timeout_ms_max
            || !(self.group_session_timeout_ms_min..=self.group_session_timeout_ms_max)
                .contains(&self.group_session_timeout_ms)
        {
            bail!(
                "--group-session-timeout-ms must lie between --group-session-timeout-ms-min and --group-session-timeout-ms-max"
            );
        }
        if self.response_bytes_max < u64::from(self.fetch_bytes_max) {
            bail!(
                "--response-bytes-max ({}) must be at least --fetch-bytes-max ({})",
                self.response_bytes_max,
                self.fetch_bytes_max
            );
        }
        if u64::from(self.batch_decompressed_bytes_max) > self.decompression_bytes_max {
            bail!(
                "--batch-decompressed-bytes-max ({}) must be at most --decompression-bytes-max ({})",
                self.batch_decompressed_bytes_max,
                self.decompression_bytes_max
            );
        }
        if crate::core::config::CompressionType::parse(&self.compression_type).is_none() {
            bail!("--compression-type must be producer, uncompressed, gzip, snappy, lz4 or zstd");
        }
        if crate::core::config::CleanupPolicy::parse(&self.cleanup_policy).is_none() {
            bail!("--cleanup-policy must be delete, compact, or compact,delete");
        }
        let defaults = self.broker_options().defaults;
        crate::core::TopicConfig::resolve(&defaults, &Default::default())
            .map_err(|e| anyhow::anyhow!("the topic defaults are invalid: {e}"))?;
        Ok(())
    }
}

fn from_default(m: &ArgMatches, id: &str) -> bool {
    matches!(m.value_source(id), None | Some(ValueSource::DefaultValue))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> Args {
        Args::load(args.iter().map(OsString::from)).unwrap()
    }

    #[test]
    fn defaults_work_out_of_the_box() {
        let a = load(&["strata-broker"]);
        assert_eq!(a.data_dir, PathBuf::from("./data"));
        assert_eq!(a.listen, "127.0.0.1:7390".parse().unwrap());
        assert_eq!(a.durability, DurabilityArg::Fsync);
        a.validate().unwrap();
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strata.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\nlisten = \"127.0.0.1:9999\"\nretention-ms = -1\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let a = load(&["strata-broker", "--config", f, "--listen", "127.0.0.1:1234"]);
        assert_eq!(a.listen, "127.0.0.1:1234".parse().unwrap(), "flag wins");
        assert_eq!(
            a.data_dir,
            PathBuf::from("/from/file"),
            "file beats default"
        );
        assert_eq!(a.retention_ms, -1);
        std::fs::write(&file, "colour = \"blue\"\n").unwrap();
        let err =
            Args::load(["strata-broker", "--config", f].iter().map(OsString::from)).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    /// The image's `ENV` settings as flags (`STRATA_LISTEN=x` is
    /// `--listen x`, `=true` a bare flag).
    fn dockerfile_flags() -> Vec<String> {
        let file = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docker/Dockerfile"));
        let mut flags = vec!["strata-broker".to_string()];
        let mut in_env = false;
        for line in file.lines().map(str::trim) {
            in_env |= line.starts_with("ENV ");
            if !in_env {
                continue;
            }
            let setting = line
                .trim_start_matches("ENV ")
                .trim_end_matches('\\')
                .trim();
            if let Some((k, v)) = setting.split_once('=') {
                let flag = k
                    .trim_start_matches("STRATA_")
                    .to_lowercase()
                    .replace('_', "-");
                flags.push(format!("--{flag}"));
                if v != "true" {
                    flags.push(v.to_string());
                }
            }
            in_env = line.ends_with('\\');
        }
        flags
    }

    #[test]
    fn the_images_settings_pass_the_loopback_rule_only_as_a_dev_setup() {
        let flags = dockerfile_flags();
        assert!(flags.contains(&"--listen".to_string()), "{flags:?}");
        assert!(flags.contains(&"--insecure-dev".to_string()), "{flags:?}");
        let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        load(&refs).validate().unwrap();
        let without: Vec<&str> = refs
            .iter()
            .copied()
            .filter(|f| *f != "--insecure-dev")
            .collect();
        let err = load(&without).validate().unwrap_err().to_string();
        assert!(
            err.contains("0.0.0.0:7390 is not a loopback address"),
            "{err}"
        );
    }

    #[test]
    fn off_loopback_the_grpc_listener_needs_tls_and_auth() {
        let check = |extra: &[&str]| {
            let mut flags = vec!["strata-broker", "--listen", "0.0.0.0:7390", "--no-kafka"];
            if !extra.contains(&"--metrics-listen") {
                flags.push("--no-metrics");
            }
            flags.extend_from_slice(extra);
            load(&flags).validate().map_err(|e| e.to_string())
        };
        let tls = ["--tls-cert", "broker.pem", "--tls-key", "broker.key"];
        check(&[&tls[..], &["--auth"]].concat()).unwrap();
        let err = check(&tls).unwrap_err();
        assert!(err.contains("without --auth"), "{err}");
        let err = check(&["--auth"]).unwrap_err();
        assert!(err.contains("without TLS"), "{err}");
        // The metrics endpoint has no TLS: off loopback only as a dev setup.
        let metrics = [&tls[..], &["--auth", "--metrics-listen", "0.0.0.0:7391"]].concat();
        let err = check(&metrics).unwrap_err();
        assert!(err.contains("--metrics-listen 0.0.0.0:7391"), "{err}");
        let err = check(&["--tls-key", "broker.key"]).unwrap_err();
        assert!(err.contains("--tls-key needs --tls-cert"), "{err}");
        let err = check(
            &[
                &tls[..],
                &["--auth", "--tls-principal-mapping-rules", "RULE:x"],
            ]
            .concat(),
        )
        .unwrap_err();
        assert!(err.contains("--tls-principal-mapping-rules"), "{err}");
    }

    #[test]
    fn every_setting_is_documented_for_operators() {
        let doc = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/OPERATIONS.md"
        ));
        let cmd = Args::command();
        let missing: Vec<String> = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long())
            .filter(|l| !["help", "version"].contains(l))
            .filter(|l| !doc.contains(&format!("`--{l}`")))
            .map(|l| format!("--{l}"))
            .collect();
        assert!(missing.is_empty(), "not in docs/OPERATIONS.md: {missing:?}");
    }
}
