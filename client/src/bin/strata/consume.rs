//! `strata consume`: records to standard output, standalone (each
//! partition placed at an offset, a time, the beginning or the end) or as
//! a member of a consumer group (what is printed is committed).

use std::io::Write;

use serde_json::json;
use strata_client::{Client, ConsumerConfig, ConsumerRecord, OffsetReset, OffsetSpec, Seek};

use super::parse_datetime;

#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Start at the first record (default: only new records).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset (with --partition, or on every partition);
    /// -N starts N records before the end. An offset outside the log
    /// starts at its nearer end, said on standard error.
    #[arg(long, allow_hyphen_values = true)]
    offset: Option<i64>,
    /// Start at the first record at or after this time: RFC 3339
    /// (2026-11-26T09:00:00Z) or milliseconds since 1970.
    #[arg(long, value_name = "TIME", conflicts_with_all = ["offset", "from_beginning", "group"])]
    from_time: Option<String>,
    /// Stop at the end: once every partition is read up to the high
    /// watermark it had at the start (like kcat -e).
    #[arg(long, conflicts_with = "group")]
    exit_at_end: bool,
    /// Read only this partition.
    #[arg(long, conflicts_with = "group")]
    partition: Option<u32>,
    /// Consume as a member of this consumer group: the broker assigns the
    /// partitions, and what is printed is committed. Without a committed
    /// offset a partition starts at the end (or the beginning with
    /// --from-beginning).
    #[arg(long, conflicts_with = "offset")]
    group: Option<String>,
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

fn line(r: &ConsumerRecord, args: &ConsumeArgs) -> anyhow::Result<String> {
    line_of(r, args.json, args.format.as_deref())
}

/// One record as printed: JSON, or the `--format` template (`%v` unless
/// given).
pub(crate) fn line_of(
    r: &ConsumerRecord,
    json: bool,
    format: Option<&str>,
) -> anyhow::Result<String> {
    Ok(if json {
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
        render(r, format.unwrap_or("%v"))
    })
}

/// `consume --group`: poll, print, commit what was printed. Ctrl-C commits
/// and leaves the group.
async fn consume_group(client: &Client, group: &str, args: &ConsumeArgs) -> anyhow::Result<()> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: if args.from_beginning {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        },
        // Commit exactly what was printed, not what poll returned.
        auto_commit: false,
        client_id: "strata-cli".into(),
        ..ConsumerConfig::default()
    });
    consumer.subscribe(group, &[args.topic.as_str()]).await?;
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    'poll: while args.max_messages.is_none_or(|m| seen < m) {
        let records = tokio::select! {
            r = consumer.poll() => r?,
            _ = &mut interrupted => break,
        };
        let mut printed: std::collections::BTreeMap<(String, u32), i64> = Default::default();
        let mut closed = false;
        for r in &records {
            let text = line(r, args)?;
            let mut out = stdout.lock();
            if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                closed = true; // The reader went away (a closed pipe).
                break;
            }
            printed.insert((r.topic.clone(), r.partition), r.offset + 1);
            seen += 1;
            if args.max_messages.is_some_and(|m| seen >= m) {
                break;
            }
        }
        let offsets: Vec<(String, u32, i64)> =
            printed.into_iter().map(|((t, p), o)| (t, p, o)).collect();
        consumer.commit_offsets(&offsets).await?;
        if closed {
            break 'poll;
        }
    }
    consumer.close().await?;
    Ok(())
}

/// Where one partition starts, from the asked start and its current
/// log start and end (said on standard error when an asked offset is
/// outside the log).
fn start_of(topic: &str, p: u32, asked: Option<i64>, earliest: i64, latest: i64) -> Option<i64> {
    let o = asked?;
    if o < 0 {
        return Some((latest + o).max(earliest));
    }
    if o < earliest {
        eprintln!(
            "strata: offset {o} is out of range for {topic}/{p} (the log starts at {earliest}); starting at {earliest}, the earliest offset"
        );
        return Some(earliest);
    }
    if o > latest {
        eprintln!(
            "strata: offset {o} is out of range for {topic}/{p} (the log ends at {latest}); starting at {latest}, the end"
        );
        return Some(latest);
    }
    Some(o)
}

/// Standalone `consume`: each partition placed where asked, then records
/// printed until --max-messages, --exit-at-end or a closed pipe.
pub async fn consume(client: &Client, args: ConsumeArgs) -> anyhow::Result<()> {
    if let Some(group) = &args.group {
        if args.max_messages == Some(0) {
            return Ok(());
        }
        return consume_group(client, group, &args).await;
    }
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    });
    let admin = client.admin();
    let partitions: Vec<u32> = match args.partition {
        Some(p) => vec![p],
        None => (0..admin.describe_topic(&args.topic).await?.partitions.len() as u32).collect(),
    };
    let from_time = args
        .from_time
        .as_deref()
        .map(|t| parse_datetime("--from-time", t))
        .transpose()?;
    // Each partition's end at the start, for --exit-at-end.
    let mut ends = std::collections::BTreeMap::new();
    for &p in &partitions {
        let earliest = admin
            .list_offset(&args.topic, p, OffsetSpec::Earliest)
            .await?
            .unwrap_or(0);
        let latest = admin
            .list_offset(&args.topic, p, OffsetSpec::Latest)
            .await?
            .unwrap_or(0);
        let start = match (
            start_of(&args.topic, p, args.offset, earliest, latest),
            from_time,
            args.from_beginning,
        ) {
            (Some(o), _, _) => Seek::Offset(o),
            (None, Some(t), _) => Seek::Timestamp(t),
            (None, None, true) => Seek::Beginning,
            (None, None, false) => Seek::End,
        };
        consumer.assign(&args.topic, p, start).await?;
        ends.insert(p, latest);
    }
    if args.max_messages == Some(0) {
        return Ok(());
    }
    let at_end = |c: &strata_client::Consumer| {
        ends.iter()
            .all(|(p, end)| c.position(&args.topic, *p).is_some_and(|pos| pos >= *end))
    };
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    loop {
        if args.exit_at_end && at_end(&consumer) {
            return Ok(());
        }
        for r in consumer.poll().await? {
            if args.exit_at_end && ends.get(&r.partition).is_some_and(|end| r.offset >= *end) {
                continue;
            }
            let line = line(&r, &args)?;
            let mut out = stdout.lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return Ok(()); // The reader went away (a closed pipe).
            }
            seen += 1;
            if args.max_messages.is_some_and(|m| seen >= m) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::start_of;

    #[test]
    fn an_asked_offset_lands_inside_the_log() {
        // After retention: the log is [24289, 30000).
        assert_eq!(start_of("r", 0, Some(0), 24_289, 30_000), Some(24_289));
        assert_eq!(start_of("r", 0, Some(99_999), 24_289, 30_000), Some(30_000));
        assert_eq!(start_of("r", 0, Some(25_000), 24_289, 30_000), Some(25_000));
        assert_eq!(start_of("r", 0, Some(-10), 24_289, 30_000), Some(29_990));
        assert_eq!(
            start_of("r", 0, Some(-1_000_000), 24_289, 30_000),
            Some(24_289)
        );
        assert_eq!(start_of("r", 0, None, 24_289, 30_000), None);
    }
}
