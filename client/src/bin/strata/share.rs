//! `strata share ...` (share groups: consume with an ack mode for
//! scripts, list, describe, reset, delete) and `strata dlq replay` (dead
//! letters back onto their source partitions).

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use strata_client::{
    Client, ConsumerConfig, ProducerConfig, ProducerRecord, Seek, ShareConfig, ShareConsumer,
};

use crate::ResetTarget;
use crate::consume::line_of;

/// What `share consume` does with each record it printed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AckMode {
    /// Accept: done.
    Ack,
    /// Release: delivered again later (after --delay-ms, or the backoff).
    Release,
    /// Reject: to the dead-letter topic now.
    Reject,
}

#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Lease records as a member of a share group, print one per line, and
    /// ack each printed record as --mode says.
    Consume {
        topic: String,
        /// The share group (created on first use).
        #[arg(long)]
        group: String,
        /// What to do with each printed record.
        #[arg(long, value_enum, default_value = "ack")]
        mode: AckMode,
        /// With --mode release: wait this long before redelivery
        /// (default: the group's backoff).
        #[arg(long)]
        delay_ms: Option<u64>,
        /// With --mode release or reject: the reason, kept with a dead letter.
        #[arg(long)]
        reason: Option<String>,
        /// Exit after this many records.
        #[arg(long)]
        max_messages: Option<u64>,
        /// Exit after a poll that found nothing.
        #[arg(long)]
        exit_when_idle: bool,
        /// Output template (as for `consume`).
        #[arg(long, conflicts_with = "json")]
        format: Option<String>,
        /// One JSON object per record, with its delivery number.
        #[arg(long)]
        json: bool,
    },
    /// List share groups with their member count.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a share group's settings, members and partitions.
    Describe {
        group: String,
        #[arg(long)]
        json: bool,
    },
    /// Move a share group's start on a topic (only without members).
    Reset {
        group: String,
        #[arg(long)]
        topic: String,
        /// Only this partition (default: all).
        #[arg(long)]
        partition: Option<u32>,
        #[command(flatten)]
        to: ResetTarget,
    },
    /// Delete a share group and its state (only without members).
    Delete { group: String },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Produce the dead letters of a dead-letter topic back to the source
    /// topic and partition their headers name, with their own key, value
    /// and headers (the `strata.dlq.*` ones dropped). Reads each partition
    /// from --from-offset (default: its start) to its end now, and prints
    /// where each stopped, to continue from there next time.
    Replay {
        dlq_topic: String,
        #[arg(long)]
        from_offset: Option<i64>,
    },
}

pub async fn share(client: &Client, cmd: ShareCommand) -> anyhow::Result<()> {
    let admin = client.admin();
    match cmd {
        ShareCommand::Consume {
            topic,
            group,
            mode,
            delay_ms,
            reason,
            max_messages,
            exit_when_idle,
            format,
            json,
        } => {
            let cfg = ShareConfig {
                client_id: "strata-cli".into(),
                max_wait: Duration::from_millis(if exit_when_idle { 1_000 } else { 5_000 }),
                max_records: max_messages.map_or(500, |m| m.min(500) as u32),
                ..ShareConfig::new(&group, &[topic.as_str()])
            };
            let mut c = ShareConsumer::new(client.clone(), cfg).await?;
            let mut seen = 0u64;
            let stdout = std::io::stdout();
            'poll: while max_messages.is_none_or(|m| seen < m) {
                let records = c.poll().await?;
                if records.is_empty() && exit_when_idle {
                    break;
                }
                for r in records {
                    if max_messages.is_some_and(|m| seen >= m) {
                        break; // left held: close releases it
                    }
                    let mut text = line_of(&r.record, json, format.as_deref())?;
                    if json {
                        text.insert_str(1, &format!("\"delivery\":{},", r.lease.delivery));
                    }
                    let mut out = stdout.lock();
                    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                        break 'poll; // the reader went away
                    }
                    seen += 1;
                    let ack = r.ack().clone();
                    match mode {
                        AckMode::Ack => ack.accept(),
                        AckMode::Release => {
                            ack.release(delay_ms.map(Duration::from_millis), reason.clone())
                        }
                        AckMode::Reject => ack.reject(
                            reason
                                .clone()
                                .unwrap_or_else(|| "rejected by strata share consume".into()),
                        ),
                    }
                }
            }
            for (lease, r) in c.close().await? {
                if let Err(e) = r {
                    eprintln!(
                        "strata: ack of {}/{} offset {} failed: {e}",
                        lease.topic, lease.partition, lease.offset
                    );
                }
            }
        }
        ShareCommand::List { json } => {
            let groups = admin.list_share_groups().await?;
            if json {
                let v: Vec<_> = groups
                    .iter()
                    .map(|g| json!({"group": g.group, "members": g.members}))
                    .collect();
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!("{:<40} {:>8}", "GROUP", "MEMBERS");
                for g in groups {
                    println!("{:<40} {:>8}", g.group, g.members);
                }
            }
        }
        ShareCommand::Describe { group, json } => describe(client, &group, json).await?,
        ShareCommand::Reset {
            group,
            topic,
            partition,
            to,
        } => {
            let to = to.spec()?;
            let starts = admin
                .reset_share_group(&group, &topic, partition, to)
                .await?;
            println!("{:<32} {:>9} {:>14}", "TOPIC", "PARTITION", "NEW-START");
            for s in starts {
                println!("{:<32} {:>9} {:>14}", s.topic, s.partition, s.start_offset);
            }
        }
        ShareCommand::Delete { group } => {
            admin.delete_share_group(&group).await?;
            println!("deleted share group {group}");
        }
    }
    Ok(())
}

async fn describe(client: &Client, group: &str, json: bool) -> anyhow::Result<()> {
    let d = client.admin().describe_share_group(group).await?;
    let s = d.settings.unwrap_or_default();
    if json {
        let parts: Vec<_> = d
            .partitions
            .iter()
            .map(|p| {
                json!({"topic": p.topic, "partition": p.partition, "start_offset": p.start_offset,
                "end_offset": p.end_offset, "lag": p.lag, "leased": p.leased, "retrying": p.retrying,
                "delayed": p.delayed, "dead_letters_pending": p.dead_letters_pending, "dead_lettered": p.dead_lettered})
            })
            .collect();
        let members: Vec<_> = d
            .members
            .iter()
            .map(|m| json!({"member_id": m.member_id, "client_id": m.client_id, "host": m.host, "topics": m.topics}))
            .collect();
        let v = json!({"group": d.group, "dead_letter_topic": s.dead_letter_topic, "delivery_limit": s.delivery_limit,
            "lease_ms": s.lease_ms, "start": s.start, "members": members, "partitions": parts});
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    println!(
        "share group {}: dead-letter topic {}, delivery limit {}, lease {} ms, start {}",
        d.group, s.dead_letter_topic, s.delivery_limit, s.lease_ms, s.start
    );
    println!("{:<34} {:<20} {:<22} TOPICS", "MEMBER", "CLIENT", "HOST");
    for m in &d.members {
        println!(
            "{:<34} {:<20} {:<22} {}",
            m.member_id,
            m.client_id,
            m.host,
            m.topics.join(",")
        );
    }
    println!(
        "{:<24} {:>4} {:>10} {:>10} {:>8} {:>7} {:>8} {:>7} {:>5}",
        "TOPIC", "PART", "START", "END", "LAG", "LEASED", "RETRYING", "DELAYED", "DEAD"
    );
    for p in &d.partitions {
        println!(
            "{:<24} {:>4} {:>10} {:>10} {:>8} {:>7} {:>8} {:>7} {:>5}",
            p.topic,
            p.partition,
            p.start_offset,
            p.end_offset,
            p.lag,
            p.leased,
            p.retrying,
            p.delayed,
            p.dead_lettered
        );
    }
    Ok(())
}

fn header<'a>(r: &'a strata_client::ConsumerRecord, key: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| std::str::from_utf8(h.value.as_deref()?).ok())
}

pub async fn dlq(client: &Client, cmd: DlqCommand) -> anyhow::Result<()> {
    let DlqCommand::Replay {
        dlq_topic,
        from_offset,
    } = cmd;
    let admin = client.admin();
    let partitions = admin.describe_topic(&dlq_topic).await?.partitions.len() as u32;
    let producer = client.producer(ProducerConfig::default());
    let mut sent = Vec::new();
    let mut stops = Vec::new();
    for p in 0..partitions {
        let end = admin
            .list_offset(&dlq_topic, p, strata_client::OffsetSpec::Latest)
            .await?
            .unwrap_or(0);
        let mut c = client.consumer(ConsumerConfig {
            fetch_wait: Duration::from_millis(10),
            ..ConsumerConfig::default()
        });
        let seek = from_offset.map_or(Seek::Beginning, Seek::Offset);
        c.assign(&dlq_topic, p, seek).await?;
        while c.position(&dlq_topic, p).unwrap_or(end) < end {
            for r in c.poll().await? {
                if r.offset >= end {
                    continue;
                }
                let topic = header(&r, "strata.dlq.source.topic").with_context(|| {
                    format!(
                        "{dlq_topic}/{p} offset {}: no strata.dlq.source.topic header",
                        r.offset
                    )
                })?;
                let source_partition: u32 = header(&r, "strata.dlq.source.partition")
                    .and_then(|v| v.parse().ok())
                    .with_context(|| {
                        format!(
                            "{dlq_topic}/{p} offset {}: no strata.dlq.source.partition header",
                            r.offset
                        )
                    })?;
                if header(&r, "strata.dlq.source.missing").is_some() {
                    eprintln!(
                        "strata: {dlq_topic}/{p} offset {}: the source record was gone; skipped",
                        r.offset
                    );
                    continue;
                }
                let mut out = ProducerRecord::new(topic.to_string()).partition(source_partition);
                if let Some(k) = r.key.clone() {
                    out = out.key(k);
                }
                if let Some(v) = r.value.clone() {
                    out = out.value(v);
                }
                for h in r
                    .headers
                    .iter()
                    .filter(|h| !h.key.starts_with("strata.dlq."))
                {
                    out = out.header(h.key.clone(), h.value.clone().unwrap_or_default());
                }
                sent.push(producer.send(out).await?);
            }
        }
        stops.push((p, end));
    }
    let replayed = sent.len();
    for d in sent {
        d.await?;
    }
    producer.close().await?;
    println!("replayed {replayed} dead letter(s) from {dlq_topic}");
    for (p, end) in stops {
        println!("{dlq_topic}/{p}: next offset {end}");
    }
    Ok(())
}
