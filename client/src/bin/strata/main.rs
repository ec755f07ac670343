//! `strata`: the command-line tool for a Strata broker, in the spirit of
//! kcat and Kafka's console tools.
//!
//! ```text
//! strata topic create orders --partitions 3 --config retention.ms=86400000
//! strata topic list | describe orders | alter orders --config segment.bytes=1048576 | delete orders
//! printf 'a\nb\n' | strata produce orders --key-separator :
//! strata consume orders --from-beginning --max-messages 2
//! strata consume orders --group billing
//! strata group list | describe billing | delete billing
//! strata group reset-offsets billing --topic orders --to-earliest
//! strata share consume jobs --group workers --mode ack --max-messages 10
//! strata share describe workers
//! strata dlq replay jobs.workers.dlq
//! strata token generate > admin.token      # before the first start with --auth
//! STRATA_TOKEN_FILE=admin.token strata user create alice
//! strata token create --user alice --lifetime 30d
//! strata acl add --principal User:alice --topic orders --op read
//! ```

mod connection;
mod consume;
mod security;
mod share;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use strata_client::{Acks, Client, Compression, ProducerConfig, ProducerRecord, ResetSpec};

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Command-line tool for the Strata log broker"
)]
struct Cli {
    #[command(flatten)]
    connection: connection::Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Produce one record per line of standard input (or --file), or per
    /// --delimiter.
    Produce(ProduceArgs),
    /// Write records to standard output, one per line.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Share groups (work queues): consume with an ack mode, list,
    /// describe, reset, delete.
    #[command(subcommand)]
    Share(share::ShareCommand),
    /// Dead-letter topics: replay dead letters onto their source.
    #[command(subcommand)]
    Dlq(share::DlqCommand),
    /// Who the calls run as.
    Whoami,
    /// Create, delete and list users.
    #[command(subcommand)]
    User(security::UserCommand),
    /// Generate, create, list and revoke bearer tokens.
    #[command(subcommand)]
    Token(security::TokenCommand),
    /// Add, list and remove ACLs (Kafka's model).
    #[command(subcommand)]
    Acl(security::AclCommand),
    /// Set and list quotas per principal (bytes and calls per second).
    #[command(subcommand)]
    Quota(security::QuotaCommand),
    /// Ask the broker's gRPC health service; exit 0 only if it is SERVING
    /// (recovery finished, not shutting down). For container health checks.
    Health,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List groups with their state and member count.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show a group's members, assignment, committed offsets and lag.
    Describe {
        group: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Move a group's committed offsets (only while it has no members).
    ResetOffsets {
        group: String,
        /// The topic whose offsets move.
        #[arg(long)]
        topic: String,
        /// Only this partition (repeatable; default: all).
        #[arg(long = "partition")]
        partitions: Vec<u32>,
        #[command(flatten)]
        to: ResetTarget,
    },
    /// Delete a group and its committed offsets (only without members).
    Delete { group: String },
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Partitions (0: the broker's default).
        #[arg(long, default_value_t = 0)]
        partitions: u32,
        /// Config as key=value, repeatable (retention.ms=86400000).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// List topics.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show partitions (start, end, size, segments) and config.
    Describe {
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Change config keys (key= resets a key to the default).
    Alter {
        name: String,
        #[arg(long = "config", value_name = "KEY=VALUE", required = true)]
        config: Vec<String>,
    },
    /// Delete a topic and its data.
    Delete { name: String },
}

#[derive(Debug, clap::Args)]
struct ProduceArgs {
    topic: String,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Send every record to this partition.
    #[arg(long)]
    partition: Option<u32>,
    /// A header for every record, as key=value, repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// When the broker answers: none, written or durable.
    #[arg(long, default_value = "durable")]
    acks: String,
    /// Compress each batch: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Read records from this file instead of standard input.
    #[arg(long, value_name = "FILE")]
    file: Option<std::path::PathBuf>,
    /// What ends each record (default: a newline). Escapes \n, \t, \0
    /// and \\ are understood, so --delimiter '\0' reads NUL-separated
    /// records.
    #[arg(long, value_name = "DELIM")]
    delimiter: Option<String>,
}

/// A delimiter from the command line, with its escapes read.
fn delimiter(d: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let Some(d) = d else {
        return Ok(vec![b'\n']);
    };
    let mut out = Vec::new();
    let mut chars = d.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('0') => out.push(0),
                Some('\\') => out.push(b'\\'),
                other => bail!(
                    "--delimiter {d:?}: unknown escape \\{}",
                    other.map(String::from).unwrap_or_default()
                ),
            },
            (c, false) => out.extend(c.to_string().as_bytes()),
        }
    }
    if out.is_empty() {
        bail!("--delimiter must not be empty");
    }
    Ok(out)
}

/// Splits `input` into records ending at `delim` (the last one may lack
/// it), on a thread of its own, into `tx`.
fn read_records(
    mut input: impl std::io::BufRead,
    delim: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<String>>,
) {
    let last = *delim.last().expect("a delimiter is not empty");
    let mut record = Vec::new();
    loop {
        let mut chunk = Vec::new();
        match input.read_until(last, &mut chunk) {
            Ok(0) => break,
            Ok(_) => record.extend_from_slice(&chunk),
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
        if record.ends_with(&delim) {
            record.truncate(record.len() - delim.len());
            let text = String::from_utf8_lossy(&record).into_owned();
            record.clear();
            if tx.blocking_send(Ok(text)).is_err() {
                return;
            }
        }
    }
    if !record.is_empty() {
        let _ = tx.blocking_send(Ok(String::from_utf8_lossy(&record).into_owned()));
    }
}

fn key_values(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("{p:?} is not KEY=VALUE"))
        })
        .collect()
}

async fn topic(client: &Client, cmd: TopicCommand) -> anyhow::Result<()> {
    let admin = client.admin();
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            config,
        } => {
            let kv = key_values(&config)?;
            let kv: Vec<(&str, &str)> = kv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let d = admin.create_topic(&name, partitions, &kv).await?;
            println!(
                "created topic {} with {} partitions",
                d.name,
                d.partitions.len()
            );
        }
        TopicCommand::List { json } => {
            let topics = admin.list_topics().await?;
            if json {
                let v: Vec<_> = topics
                    .iter()
                    .map(|t| json!({"name": t.name, "partitions": t.partitions}))
                    .collect();
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!("{:<40} {:>10}", "TOPIC", "PARTITIONS");
                for t in topics {
                    println!("{:<40} {:>10}", t.name, t.partitions);
                }
            }
        }
        TopicCommand::Describe { name, json } => {
            let d = admin.describe_topic(&name).await?;
            if json {
                let parts: Vec<_> = d
                    .partitions
                    .iter()
                    .map(|p| {
                        json!({
                            "partition": p.partition,
                            "start_offset": p.log_start_offset,
                            "end_offset": p.log_end_offset,
                            "high_watermark": p.high_watermark,
                            "size_bytes": p.size_bytes,
                            "segments": p.segment_count,
                            "error": p.error.as_ref().map(|e| e.message.clone()),
                        })
                    })
                    .collect();
                let config: std::collections::BTreeMap<_, _> = d.config.iter().collect();
                println!(
                    "{}",
                    serde_json::to_string(
                        &json!({"name": d.name, "topic_id": d.topic_id, "partitions": parts, "config": config, "overridden_keys": d.overridden_keys})
                    )?
                );
            } else {
                println!("topic {} (id {})", d.name, d.topic_id);
                println!(
                    "{:>9} {:>14} {:>14} {:>14} {:>14} {:>8}",
                    "PARTITION", "START", "END", "HIGH-WATERMARK", "SIZE-BYTES", "SEGMENTS"
                );
                for p in &d.partitions {
                    match &p.error {
                        Some(e) => println!("{:>9} unavailable: {}", p.partition, e.message),
                        None => println!(
                            "{:>9} {:>14} {:>14} {:>14} {:>14} {:>8}",
                            p.partition,
                            p.log_start_offset,
                            p.log_end_offset,
                            p.high_watermark,
                            p.size_bytes,
                            p.segment_count
                        ),
                    }
                }
                println!("config:");
                let config: std::collections::BTreeMap<_, _> = d.config.iter().collect();
                for (k, v) in config {
                    let mark = if d.overridden_keys.contains(k) {
                        ""
                    } else {
                        " (default)"
                    };
                    println!("  {k}={v}{mark}");
                }
            }
        }
        TopicCommand::Alter { name, config } => {
            let kv = key_values(&config)?;
            let kv: Vec<(&str, &str)> = kv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            admin.alter_topic_config(&name, &kv).await?;
            println!("altered topic {name}");
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}

async fn produce(client: &Client, args: ProduceArgs) -> anyhow::Result<()> {
    let acks = match args.acks.as_str() {
        "none" => Acks::None,
        "written" => Acks::Written,
        "durable" => Acks::Durable,
        other => bail!("--acks must be none, written or durable, not {other:?}"),
    };
    let Some(compression) = Compression::parse(&args.compression) else {
        bail!(
            "--compression must be none, gzip, snappy, lz4 or zstd, not {:?}",
            args.compression
        );
    };
    let headers = key_values(&args.headers)?;
    let producer = client.producer(ProducerConfig {
        acks,
        compression,
        ..ProducerConfig::default()
    });
    // Lines are read on a thread of their own and sent with the batch API,
    // as many at a time as have arrived: a pipe goes out in large calls,
    // a line typed by hand at once.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(LINES_PER_CALL);
    let delim = delimiter(args.delimiter.as_deref())?;
    let file = match &args.file {
        Some(path) => Some(
            std::fs::File::open(path)
                .with_context(|| format!("opening --file {}", path.display()))?,
        ),
        None => None,
    };
    std::thread::spawn(move || match file {
        Some(f) => read_records(std::io::BufReader::new(f), delim, tx),
        None => read_records(std::io::stdin().lock(), delim, tx),
    });
    let topic: std::sync::Arc<str> = args.topic.as_str().into();
    let mut pending = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut lines = vec![first];
        while lines.len() < LINES_PER_CALL {
            match rx.try_recv() {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        let mut records = Vec::with_capacity(lines.len());
        for line in lines {
            let line = line.context("reading the records")?;
            let (key, value) = match &args.key_separator {
                Some(sep) => match line.split_once(sep.as_str()) {
                    Some((k, v)) => (Some(k.to_string()), v.to_string()),
                    None => (None, line),
                },
                None => (None, line),
            };
            let mut record = ProducerRecord::new(topic.clone()).value(value);
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(p) = args.partition {
                record = record.partition(p);
            }
            for (k, v) in &headers {
                record = record.header(k.clone(), v.clone());
            }
            records.push(record);
        }
        pending.push(producer.send_all(records).await?);
    }
    producer.flush().await?;
    let mut failed = 0usize;
    for d in pending {
        for r in d.await {
            if let Err(e) = r {
                failed += 1;
                eprintln!("strata: record not produced: {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} records were not produced");
    }
    Ok(())
}

/// Lines `strata produce` hands the producer in one call, at most.
const LINES_PER_CALL: usize = 1024;

/// A time given as RFC 3339 or as milliseconds since 1970.
fn parse_datetime(flag: &str, s: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).with_context(|| {
        format!("{flag} {s:?} is neither RFC 3339 (2026-11-26T09:00:00Z) nor milliseconds")
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .with_context(|| format!("{flag} is before 1970"))?
        .as_millis();
    Ok(ms as i64)
}

/// Where a reset moves a group (consumer or share), one of four.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct ResetTarget {
    /// To the first record still in the log.
    #[arg(long)]
    to_earliest: bool,
    /// To the end of the log.
    #[arg(long)]
    to_latest: bool,
    /// To the first record at or after this time (RFC 3339, like
    /// 2026-11-26T09:00:00Z, or milliseconds since the epoch).
    #[arg(long, value_name = "DATETIME")]
    to_datetime: Option<String>,
    /// To this offset (clamped into the log).
    #[arg(long)]
    to_offset: Option<i64>,
}

impl ResetTarget {
    /// The client's form of the target.
    pub(crate) fn spec(&self) -> anyhow::Result<ResetSpec> {
        Ok(
            match (
                self.to_earliest,
                self.to_latest,
                &self.to_datetime,
                self.to_offset,
            ) {
                (true, ..) => ResetSpec::Earliest,
                (_, true, ..) => ResetSpec::Latest,
                (_, _, Some(dt), _) => ResetSpec::Timestamp(parse_datetime("--to-datetime", dt)?),
                (_, _, _, Some(o)) => ResetSpec::Offset(o),
                _ => {
                    bail!("say where to: --to-earliest, --to-latest, --to-datetime or --to-offset")
                }
            },
        )
    }
}

async fn group(client: &Client, cmd: GroupCommand) -> anyhow::Result<()> {
    let admin = client.admin();
    match cmd {
        GroupCommand::List { json } => {
            let groups = admin.list_groups().await?;
            if json {
                let v: Vec<_> = groups
                    .iter()
                    .map(|g| json!({"group": g.group, "state": g.state, "members": g.members}))
                    .collect();
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!("{:<40} {:<12} {:>8}", "GROUP", "STATE", "MEMBERS");
                for g in groups {
                    println!("{:<40} {:<12} {:>8}", g.group, g.state, g.members);
                }
            }
        }
        GroupCommand::Describe { group, json } => {
            let d = admin.describe_group(&group).await?;
            let tps = |v: &[strata_client::proto::v1::TopicPartitions]| {
                v.iter()
                    .flat_map(|t| t.partitions.iter().map(move |p| format!("{}/{p}", t.topic)))
                    .collect::<Vec<_>>()
            };
            if json {
                let members: Vec<_> = d
                    .members
                    .iter()
                    .map(|m| {
                        json!({
                            "member_id": m.member_id, "instance_id": m.instance_id,
                            "client_id": m.client_id, "host": m.host, "epoch": m.member_epoch,
                            "topics": m.topics, "assignment": tps(&m.assignment),
                            "revoking": tps(&m.revoking), "target": tps(&m.target),
                        })
                    })
                    .collect();
                let offsets: Vec<_> = d
                    .offsets
                    .iter()
                    .map(|o| {
                        json!({
                            "topic": o.topic, "partition": o.partition, "offset": o.offset,
                            "log_end_offset": o.log_end_offset, "lag": o.lag,
                            "error": o.error.as_ref().map(|e| e.message.clone()),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string(&json!({
                        "group": d.group, "state": d.state, "epoch": d.epoch,
                        "assignor": d.assignor, "members": members, "offsets": offsets,
                    }))?
                );
            } else {
                println!(
                    "group {} state {} epoch {} assignor {}",
                    d.group, d.state, d.epoch, d.assignor
                );
                println!(
                    "{:<32} {:<16} {:<22} {:>6}  ASSIGNMENT",
                    "MEMBER", "CLIENT", "HOST", "EPOCH"
                );
                for m in &d.members {
                    let mut owned = tps(&m.assignment).join(",");
                    if !m.revoking.is_empty() {
                        owned.push_str(&format!(" (revoking {})", tps(&m.revoking).join(",")));
                    }
                    println!(
                        "{:<32} {:<16} {:<22} {:>6}  {}",
                        m.member_id, m.client_id, m.host, m.member_epoch, owned
                    );
                }
                println!(
                    "{:<32} {:>9} {:>14} {:>14} {:>10}",
                    "TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG"
                );
                for o in &d.offsets {
                    let dash = |v: i64| {
                        if v < 0 {
                            "-".to_string()
                        } else {
                            v.to_string()
                        }
                    };
                    println!(
                        "{:<32} {:>9} {:>14} {:>14} {:>10}",
                        o.topic,
                        o.partition,
                        dash(o.offset),
                        dash(o.log_end_offset),
                        dash(o.lag)
                    );
                }
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            partitions,
            to,
        } => {
            let to = to.spec()?;
            let offsets = admin.reset_offsets(&group, &topic, &partitions, to).await?;
            println!("{:<32} {:>9} {:>14}", "TOPIC", "PARTITION", "NEW-OFFSET");
            for o in offsets {
                println!("{:<32} {:>9} {:>14}", o.topic, o.partition, o.offset);
            }
        }
        GroupCommand::Delete { group } => {
            admin.delete_group(&group).await?;
            println!("deleted group {group}");
        }
    }
    Ok(())
}

async fn health(connection: &connection::Connection) -> anyhow::Result<()> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let options = strata_client::ClientOptions {
        connect_timeout: std::time::Duration::from_secs(5),
        request_timeout: std::time::Duration::from_secs(5),
        ..Default::default()
    };
    let client = connection.connect(options).await?;
    let status = HealthClient::new(client.channel())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner()
        .status();
    println!("{}", status.as_str_name());
    if status != tonic_health::pb::health_check_response::ServingStatus::Serving {
        bail!("the broker is not serving");
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = async {
        if let Command::Health = cli.command {
            return health(&cli.connection).await;
        }
        if let Command::Token(security::TokenCommand::Generate) = cli.command {
            return security::token(None, security::TokenCommand::Generate).await;
        }
        let client = cli.connection.connect(Default::default()).await?;
        match cli.command {
            Command::Topic(cmd) => topic(&client, cmd).await,
            Command::Produce(args) => produce(&client, args).await,
            Command::Consume(args) => consume::consume(&client, args).await,
            Command::Group(cmd) => group(&client, cmd).await,
            Command::Share(cmd) => share::share(&client, cmd).await,
            Command::Dlq(cmd) => share::dlq(&client, cmd).await,
            Command::Whoami => security::whoami(&client).await,
            Command::User(cmd) => security::user(&client, cmd).await,
            Command::Token(cmd) => security::token(Some(&client), cmd).await,
            Command::Acl(cmd) => security::acl(&client, cmd).await,
            Command::Quota(cmd) => security::quota(&client, cmd).await,
            Command::Health => unreachable!("answered above"),
        }
    }
    .await;
    if let Err(e) = result {
        eprintln!("strata: {e:#}");
        std::process::exit(1);
    }
}
