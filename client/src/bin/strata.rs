//! `strata`: the command-line tool for a Strata broker, in the spirit of
//! kcat and Kafka's console tools.
//!
//! ```text
//! strata topic create orders --partitions 3 --config retention.ms=86400000
//! strata topic list | describe orders | alter orders --config segment.bytes=1048576 | delete orders
//! printf 'a\nb\n' | strata produce orders --key-separator :
//! strata consume orders --from-beginning --max-messages 2
//! ```

use std::io::{BufRead, Write};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use serde_json::json;
use strata_client::{
    Acks, Client, ConsumerConfig, ConsumerRecord, OffsetReset, ProducerConfig, ProducerRecord, Seek,
};

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Command-line tool for the Strata log broker"
)]
struct Cli {
    /// The broker's address.
    #[arg(
        long,
        global = true,
        env = "STRATA_BROKER",
        default_value = "http://127.0.0.1:7390"
    )]
    broker: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Produce one record per line of standard input.
    Produce(ProduceArgs),
    /// Write records to standard output, one per line.
    Consume(ConsumeArgs),
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
}

#[derive(Debug, clap::Args)]
struct ConsumeArgs {
    topic: String,
    /// Start at the first record (default: only new records).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset (with --partition, or on every partition).
    #[arg(long)]
    offset: Option<i64>,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<u32>,
    /// Exit after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Output template: %k key, %v value, %p partition, %o offset, %t
    /// timestamp, %h headers, %% a percent sign.
    #[arg(long, conflicts_with = "json")]
    format: Option<String>,
    /// One JSON object per record.
    #[arg(long)]
    json: bool,
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

fn text(b: &Option<bytes::Bytes>) -> String {
    b.as_deref()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

fn render(r: &ConsumerRecord, format: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('k') => out.push_str(&text(&r.key)),
            Some('v') => out.push_str(&text(&r.value)),
            Some('p') => out.push_str(&r.partition.to_string()),
            Some('o') => out.push_str(&r.offset.to_string()),
            Some('t') => out.push_str(&r.timestamp_ms.to_string()),
            Some('h') => out.push_str(
                &r.headers
                    .iter()
                    .map(|h| format!("{}={}", h.key, text(&h.value)))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
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
                        &json!({"name": d.name, "partitions": parts, "config": config, "overridden_keys": d.overridden_keys})
                    )?
                );
            } else {
                println!("topic {}", d.name);
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
    let headers = key_values(&args.headers)?;
    let producer = client.producer(ProducerConfig {
        acks,
        ..ProducerConfig::default()
    });
    let mut pending = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading standard input")?;
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line),
            },
            None => (None, line),
        };
        let mut record = ProducerRecord::new(&args.topic).value(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        for (k, v) in &headers {
            record = record.header(k.clone(), v.clone());
        }
        pending.push(producer.send(record).await?);
    }
    producer.flush().await?;
    let mut failed = 0usize;
    for d in pending {
        if let Err(e) = d.await {
            failed += 1;
            eprintln!("strata: record not produced: {e}");
        }
    }
    if failed > 0 {
        bail!("{failed} records were not produced");
    }
    Ok(())
}

async fn consume(client: &Client, args: ConsumeArgs) -> anyhow::Result<()> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    });
    let start = match (args.offset, args.from_beginning) {
        (Some(o), _) => Seek::Offset(o),
        (None, true) => Seek::Beginning,
        (None, false) => Seek::End,
    };
    match args.partition {
        Some(p) => consumer.assign(&args.topic, p, start).await?,
        None => consumer.assign_topic(&args.topic, start).await?,
    }
    if args.max_messages == Some(0) {
        return Ok(());
    }
    let mut records = consumer.into_stream();
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    while let Some(r) = records.next().await {
        let r = r?;
        let line = if args.json {
            serde_json::to_string(&json!({
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "timestamp_ms": r.timestamp_ms,
                "key": r.key.as_ref().map(|_| text(&r.key)),
                "value": r.value.as_ref().map(|_| text(&r.value)),
                "headers": r.headers.iter().map(|h| json!({"key": h.key, "value": h.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())})).collect::<Vec<_>>(),
            }))?
        } else {
            render(&r, args.format.as_deref().unwrap_or("%v"))
        };
        let mut out = stdout.lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Ok(()); // The reader went away (a closed pipe).
        }
        seen += 1;
        if args.max_messages.is_some_and(|m| seen >= m) {
            break;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = async {
        let client = Client::connect(cli.broker.clone()).await?;
        match cli.command {
            Command::Topic(cmd) => topic(&client, cmd).await,
            Command::Produce(args) => produce(&client, args).await,
            Command::Consume(args) => consume(&client, args).await,
        }
    }
    .await;
    if let Err(e) = result {
        eprintln!("strata: {e:#}");
        std::process::exit(1);
    }
}
