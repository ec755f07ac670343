//! The consumers of a workload: each reads its partitions (standalone or in
//! a group), checks off every message it receives by its stamp, and
//! measures end-to-end latency from the message's scheduled send time;
//! [`merge_consumed`] adds the consumers up into the run's integrity line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use strata_client::{Client, ConsumerConfig, OffsetReset, Seek};

use crate::payload;
use crate::stats::{self, Integrity, Rate};
use crate::workload::{Plan, Run, set_bit};

/// How long consumers may go without receiving anything, once producers
/// are done, before the run ends and reports what is missing.
const DRAIN_IDLE: Duration = Duration::from_secs(30);

/// What one consumer saw.
pub(crate) struct Consumed {
    /// Per producer: bit i set, sequence i received.
    seen: Vec<Vec<u64>>,
    duplicates: u64,
    measured: u64,
    measured_bytes: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    latency: Histogram<u64>,
    /// End-to-end latency per second after the warm-up, for the plot.
    per_second: Vec<Histogram<u64>>,
}

/// Where consumers stand: whether they may stop.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    /// Producers are done; `expected` holds what they had acknowledged.
    pub producers_done: AtomicBool,
    pub expected: AtomicU64,
    /// Stop now, whatever is left.
    pub give_up: AtomicBool,
}

#[allow(clippy::too_many_arguments)]
async fn consume_loop(
    client: Client,
    topic: String,
    group: Option<String>,
    share: Vec<u32>,
    run: Arc<Run>,
    drain: Arc<Drain>,
    measure_all: bool,
) -> anyhow::Result<Consumed> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        fetch_wait: Duration::from_millis(100),
        client_id: "strata-bench".into(),
        ..ConsumerConfig::default()
    });
    match &group {
        Some(g) => consumer.subscribe(g, &[topic.as_str()]).await?,
        None => {
            for p in share {
                consumer.assign(&topic, p, Seek::Beginning).await?;
            }
        }
    }
    let mut out = Consumed {
        seen: Vec::new(),
        duplicates: 0,
        measured: 0,
        measured_bytes: 0,
        first: None,
        last: None,
        latency: stats::histogram(),
        per_second: Vec::new(),
    };
    let warm_ns = run.warm_end_ns();
    let mut idle_since = Instant::now();
    loop {
        if drain.give_up.load(Ordering::Relaxed) {
            break;
        }
        if drain.producers_done.load(Ordering::Acquire) {
            let expected = drain.expected.load(Ordering::Acquire);
            if run.live.received.load(Ordering::Acquire) >= expected {
                break;
            }
            if idle_since.elapsed() > DRAIN_IDLE {
                break;
            }
        }
        let records = consumer.poll().await?;
        let now = Instant::now();
        if records.is_empty() {
            continue;
        }
        idle_since = now;
        let now_ns = run.nanos(now);
        for r in records {
            let bytes = r.value.as_ref().map_or(0, |v| v.len()) as u64;
            let Some(stamp) = r.value.as_deref().and_then(payload::decode) else {
                continue;
            };
            let p = stamp.producer as usize;
            if out.seen.len() <= p {
                out.seen.resize(p + 1, Vec::new());
            }
            if set_bit(&mut out.seen[p], stamp.sequence) {
                out.duplicates += 1;
                continue;
            }
            run.live.received.fetch_add(1, Ordering::Relaxed);
            run.live.received_bytes.fetch_add(bytes, Ordering::Relaxed);
            if measure_all || stamp.scheduled_ns >= warm_ns {
                out.measured += 1;
                out.measured_bytes += bytes;
                out.first.get_or_insert(now);
                out.last = Some(now);
                let us = now_ns.saturating_sub(stamp.scheduled_ns) / 1000;
                out.latency.saturating_record(us);
                let second =
                    ((stamp.scheduled_ns.saturating_sub(warm_ns)) / 1_000_000_000) as usize;
                if second < 24 * 3600 {
                    while out.per_second.len() <= second {
                        out.per_second.push(stats::histogram());
                    }
                    out.per_second[second].saturating_record(us);
                }
            }
        }
    }
    consumer.close().await.ok();
    Ok(out)
}

/// Recreates the topic with the durability the acks mode needs.
pub(crate) async fn start_consumers(
    plan: &Plan,
    url: &str,
    run: &Arc<Run>,
    drain: &Arc<Drain>,
    measure_all: bool,
    interrupted: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<Consumed>> {
    let n = plan.consumers;
    let mut tasks = Vec::new();
    for i in 0..n {
        let client = crate::credentials::client(url).await?;
        let share: Vec<u32> = (0..plan.common.partitions).filter(|p| p % n == i).collect();
        tasks.push(tokio::spawn(consume_loop(
            client,
            plan.common.topic.clone(),
            plan.group.clone(),
            share,
            run.clone(),
            drain.clone(),
            measure_all,
        )));
    }
    // After Ctrl-C, consumers get a few seconds to catch up, then stop.
    let giver = {
        let (drain, interrupted) = (drain.clone(), interrupted.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if interrupted.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    drain.give_up.store(true, Ordering::Release);
                    return;
                }
            }
        })
    };
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.context("consumer task")??);
    }
    giver.abort();
    Ok(out)
}

/// Merges what consumers saw: consume rate (measured messages over the
/// window from `since` to the last reception), end-to-end latency, its
/// per-second series, and loss and duplication against `acked`.
pub(crate) fn merge_consumed(
    consumed: Vec<Consumed>,
    acked: &[Vec<u64>],
    since: Instant,
) -> (Rate, Histogram<u64>, Vec<Histogram<u64>>, Integrity) {
    let mut e2e = stats::histogram();
    let mut series: Vec<Histogram<u64>> = Vec::new();
    let mut rate = Rate::default();
    let mut last: Option<Instant> = None;
    let mut seen: Vec<Vec<u64>> = Vec::new();
    let mut integrity = Integrity::default();
    for c in consumed {
        e2e.add(&c.latency).ok();
        for (i, h) in c.per_second.iter().enumerate() {
            while series.len() <= i {
                series.push(stats::histogram());
            }
            series[i].add(h).ok();
        }
        rate.messages += c.measured;
        rate.bytes += c.measured_bytes;
        last = last.max(c.last);
        integrity.duplicates += c.duplicates;
        for (p, bits) in c.seen.iter().enumerate() {
            if seen.len() <= p {
                seen.resize(p + 1, Vec::new());
            }
            if seen[p].len() < bits.len() {
                seen[p].resize(bits.len(), 0);
            }
            for (w, word) in bits.iter().enumerate() {
                integrity.duplicates += u64::from((seen[p][w] & word).count_ones());
                seen[p][w] |= word;
            }
        }
    }
    rate.seconds = last.map_or(0.0, |t| t.saturating_duration_since(since).as_secs_f64());
    for (p, bits) in acked.iter().enumerate() {
        let got = seen.get(p).map(Vec::as_slice).unwrap_or(&[]);
        for (w, word) in bits.iter().enumerate() {
            let received = got.get(w).copied().unwrap_or(0);
            integrity.acknowledged += u64::from(word.count_ones());
            integrity.received += u64::from((word & received).count_ones());
            integrity.missing += u64::from((word & !received).count_ones());
        }
    }
    for (p, bits) in seen.iter().enumerate() {
        let expected = acked.get(p).map(Vec::as_slice).unwrap_or(&[]);
        for (w, word) in bits.iter().enumerate() {
            let e = expected.get(w).copied().unwrap_or(0);
            integrity.unacknowledged += u64::from((word & !e).count_ones());
        }
    }
    (rate, e2e, series, integrity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_duplicates_are_counted_across_consumers() {
        let mut a = Vec::new();
        for s in [0, 1, 2, 3] {
            set_bit(&mut a, s);
        }
        let consumer = |seqs: &[u64]| {
            let mut bits = Vec::new();
            for &s in seqs {
                set_bit(&mut bits, s);
            }
            Consumed {
                seen: vec![bits],
                duplicates: 0,
                measured: seqs.len() as u64,
                measured_bytes: 0,
                first: None,
                last: None,
                latency: stats::histogram(),
                per_second: Vec::new(),
            }
        };
        // Sequence 1 reached two consumers, 3 none, and 9 was never acked.
        let (_, _, _, i) = merge_consumed(
            vec![consumer(&[0, 1]), consumer(&[1, 2, 9])],
            &[a],
            Instant::now(),
        );
        assert_eq!(
            i,
            Integrity {
                acknowledged: 4,
                received: 3,
                missing: 1,
                duplicates: 1,
                unacknowledged: 1,
            }
        );
    }
}
