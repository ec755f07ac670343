//! Topic settings: Kafka-style keys (`retention.ms`, `segment.bytes`, ...),
//! broker-wide defaults, per-topic overrides, and the broker's limits.
//!
//! A topic stores only its overrides; the effective value of every key is
//! the override or the broker's default, resolved whenever it is needed, so
//! a broker restarted with new defaults applies them to every topic that
//! did not set its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_proto::{Compression, TimestampType};

use super::error::{BrokerError, Result};
use crate::storage::decompression::{DECOMPRESSION_BYTES_MAX_DEFAULT, DecompressionBudget};
use crate::storage::open_segments::{OpenSegments, SEALED_SEGMENTS_OPEN_MAX};
use crate::storage::{Durability, Fs, LogConfig, SystemClock};

/// Every topic config key, with what it means.
pub const KEYS: &[(&str, &str)] = &[
    (
        "retention.ms",
        "delete sealed segments whose newest record is older (-1 keeps forever)",
    ),
    (
        "retention.bytes",
        "keep each partition at or under this size (-1 is unlimited)",
    ),
    ("segment.bytes", "start a new segment past this size"),
    (
        "segment.ms",
        "start a new segment when the active one is this old",
    ),
    ("max.message.bytes", "largest record batch accepted"),
    (
        "message.timestamp.type",
        "CreateTime (the producer's) or LogAppendTime (the broker's)",
    ),
    (
        "durability",
        "fsync (fsync before any ack), interval (fsync every flush.ms / flush.messages), page_cache",
    ),
    (
        "compression.type",
        "producer (keep each batch's codec), uncompressed, gzip, snappy, lz4 or zstd (recompress to it)",
    ),
    (
        "flush.ms",
        "with durability=interval: fsync at least this often",
    ),
    (
        "flush.messages",
        "with durability=interval: fsync after this many records",
    ),
    (
        "cleanup.policy",
        "delete (retention), compact (keep the newest record per key), or compact,delete (both)",
    ),
    (
        "delete.retention.ms",
        "with compaction: how long a tombstone stays before it is removed",
    ),
    (
        "min.cleanable.dirty.ratio",
        "with compaction: the share of uncompacted bytes that starts a pass (0 to 1)",
    ),
];

fn known_keys() -> String {
    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// Checks that `key` is a known topic config key.
pub fn check_key(key: &str) -> Result<()> {
    if KEYS.iter().any(|(k, _)| *k == key) {
        Ok(())
    } else {
        Err(BrokerError::UnknownConfigKey {
            key: key.into(),
            known: known_keys(),
        })
    }
}

/// How a topic's log reaches the disk (the `durability` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityKind {
    /// fsync before any acknowledgement.
    Fsync,
    /// fsync every `flush.ms` or `flush.messages`.
    Interval,
    /// Page cache only.
    PageCache,
}

impl DurabilityKind {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fsync => "fsync",
            Self::Interval => "interval",
            Self::PageCache => "page_cache",
        }
    }

    /// Parses a config value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fsync" => Some(Self::Fsync),
            "interval" => Some(Self::Interval),
            "page_cache" => Some(Self::PageCache),
            _ => None,
        }
    }
}

/// The default floor of `segment.bytes` (Kafka 4.0's): smaller segments
/// multiply files, descriptors and mappings for nothing.
pub const SEGMENT_BYTES_MIN: u64 = 1 << 20;
/// The default floor of `segment.ms`: a partition rolls at most once a
/// minute on age alone.
pub const SEGMENT_MS_MIN: u64 = 60_000;

/// The broker-wide defaults: the partition count of a topic created
/// without one, the value of every config key a topic does not set, and
/// the floors under the segment keys.
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    /// Partitions of a topic created without a count.
    pub partitions: u32,
    /// Every config key's default.
    pub config: TopicConfig,
    /// The smallest `segment.bytes` a topic (or the default) may have.
    pub segment_bytes_min: u64,
    /// The smallest `segment.ms` a topic (or the default) may have.
    pub segment_ms_min: u64,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        Self {
            partitions: 0,
            config: TopicConfig::default(),
            segment_bytes_min: SEGMENT_BYTES_MIN,
            segment_ms_min: SEGMENT_MS_MIN,
        }
    }
}

/// The broker's bounds on requests and resources. Each name appears in the
/// error a client gets when it hits the bound.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Topics on the broker.
    pub topics_max: u32,
    /// Partitions of one topic.
    pub partitions_max: u32,
    /// Bytes of one fetch response (larger requests are clamped).
    pub fetch_bytes_max: u32,
    /// Milliseconds a fetch may long-poll (larger requests are clamped).
    pub fetch_wait_ms_max: u32,
    /// Subscriptions open at once on the broker.
    pub subscriptions_max: u32,
    /// Partitions in one subscription.
    pub subscription_partitions_max: u32,
    /// Messages a subscription may queue for a client that reads slowly;
    /// past it the subscription waits, so memory stays bounded.
    pub subscription_buffer_messages: u32,
    /// Appends running or queued on blocking threads at once; further
    /// produce requests wait for a slot. The broker's blocking pool has
    /// this many threads plus [`BLOCKING_THREADS_RESERVED`], so appends
    /// stuck in slow fsyncs can never take the threads reads, heartbeats
    /// and retention run on.
    pub appends_in_flight_max: u32,
    /// Bytes of key map one compaction pass may hold.
    pub compaction_map_bytes_max: u64,
    /// Partitions one fetch may name (each costs a read per long-poll round).
    pub fetch_partitions_max: u32,
    /// Bytes that fetch answers and queued subscription messages may hold
    /// at once, across the broker; past it reads wait for memory to come
    /// back (see `core::budget`).
    pub response_bytes_max: u64,
    /// Sealed segments whose files (three descriptors, two mappings each)
    /// stay open at once, across the broker; past it the least recently
    /// used close (see `storage::open_segments`).
    pub sealed_segments_open_max: u32,
    /// The most a compressed batch's records may decompress to; past it the
    /// produce is refused with INVALID_ARGUMENT naming this limit.
    pub batch_decompressed_bytes_max: u32,
    /// Bytes that compressed batches being validated may hold at once,
    /// across the broker; each reserves `batch_decompressed_bytes_max`, and
    /// past it appends wait (see `storage::decompression`).
    pub decompression_bytes_max: u64,
    /// Threads that open (and recover) partitions at startup, as Kafka's
    /// `num.recovery.threads.per.data.dir`: recovery is mostly waiting on
    /// the disk, so partitions recover side by side.
    pub recovery_threads: u32,
}

/// Blocking threads kept for everything but appends (reads, group
/// heartbeats and commits, retention, compaction, admin operations).
pub const BLOCKING_THREADS_RESERVED: u32 = 128;

impl Limits {
    /// The size of the broker runtime's blocking pool.
    pub fn blocking_threads_max(&self) -> usize {
        (self.appends_in_flight_max + BLOCKING_THREADS_RESERVED) as usize
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            topics_max: 10_000,
            partitions_max: 10_000,
            fetch_bytes_max: 64 << 20,
            fetch_wait_ms_max: 30_000,
            subscriptions_max: 1024,
            subscription_partitions_max: 10_000,
            subscription_buffer_messages: 4,
            appends_in_flight_max: 384,
            compaction_map_bytes_max: 64 << 20,
            recovery_threads: 8,
            fetch_partitions_max: 10_000,
            response_bytes_max: 1 << 30,
            sealed_segments_open_max: SEALED_SEGMENTS_OPEN_MAX as u32,
            batch_decompressed_bytes_max: crate::storage::batch_decompressed_bytes_max_default()
                as u32,
            decompression_bytes_max: DECOMPRESSION_BYTES_MAX_DEFAULT as u64,
        }
    }
}

/// A topic's effective settings: its overrides applied over the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `retention.ms`.
    pub retention_ms: i64,
    /// `retention.bytes`.
    pub retention_bytes: i64,
    /// `segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms`.
    pub segment_ms: u64,
    /// `max.message.bytes`.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `durability`.
    pub durability: DurabilityKind,
    /// `flush.ms`.
    pub flush_ms: u64,
    /// `flush.messages`.
    pub flush_messages: u64,
    /// `cleanup.policy`.
    pub cleanup: CleanupPolicy,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `compression.type`.
    pub compression_type: CompressionType,
}

/// The codec a topic stores its batches with (the `compression.type` key,
/// Kafka's values and meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// Keep whatever codec each producer chose (the default).
    Producer,
    /// Recompress every batch that arrives with another codec to this one
    /// (`uncompressed` is `Compression::None`).
    Codec(Compression),
}

impl CompressionType {
    /// Parses Kafka's spelling: producer, uncompressed, gzip, snappy, lz4, zstd.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "producer" => Some(Self::Producer),
            "uncompressed" => Some(Self::Codec(Compression::None)),
            "none" => None,
            other => Compression::parse(other).map(Self::Codec),
        }
    }

    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Producer => "producer",
            Self::Codec(Compression::None) => "uncompressed",
            Self::Codec(c) => c.name(),
        }
    }
}

/// What a topic does with old data (the `cleanup.policy` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Retention deletes old segments (`retention.ms`, `retention.bytes`).
    pub delete: bool,
    /// Compaction keeps the newest record per key; keyless records are refused.
    pub compact: bool,
}

impl CleanupPolicy {
    /// Parses `delete`, `compact`, or both separated by a comma.
    pub fn parse(s: &str) -> Option<Self> {
        let mut p = Self {
            delete: false,
            compact: false,
        };
        for part in s.split(',').map(str::trim) {
            match part {
                "delete" => p.delete = true,
                "compact" => p.compact = true,
                _ => return None,
            }
        }
        Some(p)
    }

    /// The config value.
    pub fn as_str(self) -> &'static str {
        match (self.compact, self.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            _ => "delete",
        }
    }
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> BrokerError {
    BrokerError::InvalidConfig {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn int<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    value: &str,
    min: T,
    max: T,
) -> Result<T> {
    let v: T = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not a whole number"))?;
    if v < min || v > max {
        return Err(invalid(
            key,
            value,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

impl Default for TopicConfig {
    /// Strata's built-in defaults (Kafka's where Kafka has one).
    fn default() -> Self {
        Self {
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            max_message_bytes: 16 << 20,
            timestamp_type: TimestampType::CreateTime,
            durability: DurabilityKind::Fsync,
            flush_ms: 1000,
            flush_messages: 10_000,
            cleanup: CleanupPolicy {
                delete: true,
                compact: false,
            },
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            compression_type: CompressionType::Producer,
        }
    }
}

impl TopicConfig {
    /// The defaults, with no overrides.
    pub fn from_defaults(d: &TopicDefaults) -> Self {
        d.config.clone()
    }

    /// Resolves `overrides` over `defaults`, checking every key and value.
    pub fn resolve(defaults: &TopicDefaults, overrides: &BTreeMap<String, String>) -> Result<Self> {
        let mut c = Self::from_defaults(defaults);
        // The defaults themselves stand on the floors too.
        c.set("segment.bytes", &c.segment_bytes.to_string(), defaults)?;
        c.set("segment.ms", &c.segment_ms.to_string(), defaults)?;
        for (k, v) in overrides {
            c.set(k, v, defaults)?;
        }
        Ok(c)
    }

    /// Resolves a topic's stored overrides at startup. A stored segment
    /// value below the floor (the floor was raised since) is raised to it
    /// with a warning rather than making the topic unavailable: bigger
    /// segments than asked for lose nothing.
    pub fn resolve_stored(
        defaults: &TopicDefaults,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let lenient = TopicDefaults {
            segment_bytes_min: 0,
            segment_ms_min: 0,
            ..defaults.clone()
        };
        let mut c = Self::resolve(&lenient, overrides)?;
        if c.segment_bytes < defaults.segment_bytes_min || c.segment_ms < defaults.segment_ms_min {
            tracing::warn!(
                segment_bytes = c.segment_bytes,
                segment_ms = c.segment_ms,
                segment_bytes_min = defaults.segment_bytes_min,
                segment_ms_min = defaults.segment_ms_min,
                "a topic's stored segment setting is below the broker's floor; the floor applies"
            );
            c.segment_bytes = c.segment_bytes.max(defaults.segment_bytes_min);
            c.segment_ms = c.segment_ms.max(defaults.segment_ms_min);
        }
        Ok(c)
    }

    fn set(&mut self, key: &str, value: &str, d: &TopicDefaults) -> Result<()> {
        let floor = |v: u64, min: u64, name: &str, flag: &str| {
            if v < min {
                return Err(invalid(
                    key,
                    value,
                    format!("is below {name} ({min}), the broker's floor (set with {flag})"),
                ));
            }
            Ok(v)
        };
        match key {
            "retention.ms" => self.retention_ms = int(key, value, -1, i64::MAX)?,
            "retention.bytes" => self.retention_bytes = int(key, value, -1, i64::MAX)?,
            "segment.bytes" => {
                let v = int(
                    key,
                    value,
                    1024,
                    crate::storage::config::SEGMENT_BYTES_CEILING,
                )?;
                self.segment_bytes = floor(
                    v,
                    d.segment_bytes_min,
                    "segment_bytes_min",
                    "--segment-bytes-min",
                )?;
            }
            "segment.ms" => {
                let v = int(key, value, 1, u64::MAX / 2)?;
                self.segment_ms = floor(v, d.segment_ms_min, "segment_ms_min", "--segment-ms-min")?;
            }
            "max.message.bytes" => self.max_message_bytes = int(key, value, 1024, 1 << 30)?,
            "message.timestamp.type" => {
                self.timestamp_type = match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(invalid(key, value, "must be CreateTime or LogAppendTime")),
                }
            }
            "durability" => {
                self.durability = DurabilityKind::parse(value)
                    .ok_or_else(|| invalid(key, value, "must be fsync, interval or page_cache"))?
            }
            "flush.ms" => self.flush_ms = int(key, value, 1, u64::MAX / 2)?,
            "flush.messages" => self.flush_messages = int(key, value, 1, u64::MAX / 2)?,
            "cleanup.policy" => {
                self.cleanup = CleanupPolicy::parse(value).ok_or_else(|| {
                    invalid(key, value, "must be delete, compact, or compact,delete")
                })?
            }
            "delete.retention.ms" => self.delete_retention_ms = int(key, value, 0, i64::MAX / 2)?,
            "compression.type" => {
                self.compression_type = CompressionType::parse(value).ok_or_else(|| {
                    invalid(
                        key,
                        value,
                        "must be producer, uncompressed, gzip, snappy, lz4 or zstd",
                    )
                })?
            }
            "min.cleanable.dirty.ratio" => {
                let r: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid(key, value, "not a number"))?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(invalid(key, value, "must be between 0 and 1"));
                }
                self.min_cleanable_dirty_ratio = r;
            }
            _ => return check_key(key),
        }
        Ok(())
    }

    /// Checks one override without applying it (for requests).
    pub fn check_override(key: &str, value: &str) -> Result<()> {
        Self::default().set(key, value, &TopicDefaults::default())
    }

    /// Every key with its effective value.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let ts = match self.timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        };
        [
            ("retention.ms", self.retention_ms.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            ("message.timestamp.type", ts.to_string()),
            ("durability", self.durability.as_str().to_string()),
            ("flush.ms", self.flush_ms.to_string()),
            ("flush.messages", self.flush_messages.to_string()),
            ("cleanup.policy", self.cleanup.as_str().to_string()),
            (
                "compression.type",
                self.compression_type.as_str().to_string(),
            ),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
            (
                "min.cleanable.dirty.ratio",
                self.min_cleanable_dirty_ratio.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The storage engine's settings for a partition of this topic.
    /// The storage settings of a partition of this topic, on `fs`, with
    /// the broker's registry of open segments.
    pub fn log_config(&self, fs: &Fs, shared: &SharedBounds) -> LogConfig {
        LogConfig {
            open_segments: shared.open_segments.clone(),
            decompression: shared.decompression.clone(),
            batch_decompressed_bytes_max: shared.batch_decompressed_bytes_max,
            segment_bytes_max: self.segment_bytes,
            segment_ms_max: self.segment_ms,
            batch_bytes_max: self.max_message_bytes,
            durability: match self.durability {
                DurabilityKind::Fsync => Durability::Fsync,
                DurabilityKind::PageCache => Durability::PageCache,
                DurabilityKind::Interval => Durability::Interval {
                    interval_ms: Some(self.flush_ms),
                    interval_records: Some(self.flush_messages),
                },
            },
            timestamp_type: self.timestamp_type,
            clock: Arc::new(SystemClock),
            fs: fs.clone(),
            keys_required: self.cleanup.compact,
            compression: match self.compression_type {
                CompressionType::Producer => None,
                CompressionType::Codec(c) => Some(c),
            },
            ..LogConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_resolve_over_defaults_and_bad_ones_name_the_key() {
        let d = TopicDefaults::default();
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert("durability".to_string(), "page_cache".to_string());
        let c = TopicConfig::resolve(&d, &o).unwrap();
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.durability, DurabilityKind::PageCache);
        assert_eq!(c.segment_bytes, d.config.segment_bytes);
        assert_eq!(c.to_map().len(), KEYS.len());

        let err = TopicConfig::check_override("retention.ms", "soon").unwrap_err();
        assert!(err.to_string().contains("retention.ms"), "{err}");
        let err = TopicConfig::check_override("segment.bytes", "10").unwrap_err();
        assert!(err.to_string().contains("between 1024"), "{err}");
        let err = TopicConfig::check_override("segment.bytes", "4096").unwrap_err();
        assert!(err.to_string().contains("segment_bytes_min"), "{err}");
        let err = TopicConfig::check_override("segment.ms", "1").unwrap_err();
        assert!(err.to_string().contains("segment_ms_min"), "{err}");
        let low = TopicDefaults {
            segment_bytes_min: 1024,
            ..TopicDefaults::default()
        };
        let mut o = BTreeMap::new();
        o.insert("segment.bytes".to_string(), "4096".to_string());
        assert_eq!(TopicConfig::resolve(&low, &o).unwrap().segment_bytes, 4096);
        // Stored before the floor was raised: the topic stays available,
        // at the floor.
        let stored = TopicConfig::resolve_stored(&TopicDefaults::default(), &o).unwrap();
        assert_eq!(stored.segment_bytes, SEGMENT_BYTES_MIN);
        let err = TopicConfig::check_override("colour", "blue").unwrap_err();
        assert!(err.to_string().contains("known keys"), "{err}");
        o.insert("max.message.bytes".into(), "1".into());
        assert!(TopicConfig::resolve(&d, &o).is_err());
    }
}

/// The bounds every log of a broker shares.
#[derive(Debug, Clone)]
pub struct SharedBounds {
    /// Open sealed segments (`sealed_segments_open_max`).
    pub open_segments: Arc<OpenSegments>,
    /// Memory of compressed batches being validated
    /// (`decompression_bytes_max`).
    pub decompression: Arc<DecompressionBudget>,
    /// `batch_decompressed_bytes_max`.
    pub batch_decompressed_bytes_max: u32,
}

impl SharedBounds {
    /// The shared bounds `limits` ask for.
    pub fn new(limits: &Limits) -> Self {
        let decompression = DecompressionBudget::new(limits.decompression_bytes_max as usize);
        Self {
            open_segments: OpenSegments::new(limits.sealed_segments_open_max.max(1) as usize),
            batch_decompressed_bytes_max: limits
                .batch_decompressed_bytes_max
                .clamp(1, decompression.bytes_max().min(u32::MAX as usize) as u32),
            decompression,
        }
    }
}
