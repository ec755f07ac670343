//! One producer of a workload: schedules, stamps and sends messages, one
//! `send` per message (what applications do) or, with `--batch-api`, many
//! per `send_all` call, and collects their acknowledgements on a task of
//! its own so that waiting for them never delays the schedule.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use strata_client::{
    Acks, BatchDelivery, Client, DeliveryFuture, ProducerConfig, ProducerRecord, RecordMetadata,
};
use tokio::sync::mpsc;

use crate::payload::{self, Stamp};
use crate::stats;
use crate::workload::{AckArg, Common, Keys, Live, Run, set_bit};

/// Acknowledgements a producer may wait for at once in the bench (its
/// client's `buffer_bytes` bounds memory first).
const ACKS_IN_FLIGHT_MAX: usize = 1 << 16;

/// What one producer did.
pub(crate) struct Produced {
    /// Bit i set: sequence i was acknowledged.
    pub acked: Vec<u64>,
    /// Measured acknowledgements: count, bytes, and when the last came.
    pub measured: u64,
    pub measured_bytes: u64,
    pub last_ack: Option<Instant>,
    pub errors: u64,
    pub latency: Histogram<u64>,
    pub first_error: Option<String>,
}

pub(crate) fn producer_config(c: &Common) -> ProducerConfig {
    ProducerConfig {
        acks: match c.acks {
            AckArg::None => Acks::None,
            AckArg::Written => Acks::Written,
            AckArg::Durable => Acks::Durable,
        },
        batch_bytes: c.batch_bytes,
        linger: c.linger,
        buffer_bytes: (64 << 20).max(4 * c.batch_bytes),
        max_in_flight: c.in_flight,
        ..ProducerConfig::default()
    }
}

/// A message's place in the run: its sequence, when it was due, and
/// whether it is measured.
#[derive(Debug, Clone, Copy)]
struct Due {
    seq: u64,
    scheduled: Instant,
    measured: bool,
}

/// What the acknowledgement task waits for.
enum Pending {
    One(Due, DeliveryFuture),
    Many(Vec<Due>, BatchDelivery),
}

enum Acked {
    One(Due, strata_client::Result<RecordMetadata>),
    Many(Vec<Due>, Vec<strata_client::Result<RecordMetadata>>),
}

impl Produced {
    fn new() -> Self {
        Self {
            acked: Vec::new(),
            measured: 0,
            measured_bytes: 0,
            last_ack: None,
            errors: 0,
            latency: stats::histogram(),
            first_error: None,
        }
    }

    fn count(
        &mut self,
        due: Due,
        r: &strata_client::Result<RecordMetadata>,
        now: Instant,
        size: u64,
        live: &Live,
    ) {
        match r {
            Ok(_) => {
                set_bit(&mut self.acked, due.seq);
                live.acked.fetch_add(1, Ordering::Relaxed);
                live.acked_bytes.fetch_add(size, Ordering::Relaxed);
                if due.measured {
                    self.measured += 1;
                    self.measured_bytes += size;
                    self.last_ack = Some(now);
                    self.latency.saturating_record(
                        now.saturating_duration_since(due.scheduled).as_micros() as u64,
                    );
                }
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

async fn collect(mut rx: mpsc::Receiver<Pending>, size: u64, live: Arc<Live>) -> Produced {
    let mut out = Produced::new();
    let mut waiting = FuturesUnordered::new();
    let mut open = true;
    while open || !waiting.is_empty() {
        tokio::select! {
            item = rx.recv(), if open => match item {
                Some(Pending::One(due, fut)) => waiting.push(futures::future::Either::Left(async move {
                    Acked::One(due, fut.await)
                })),
                Some(Pending::Many(dues, fut)) => waiting.push(futures::future::Either::Right(async move {
                    Acked::Many(dues, fut.await)
                })),
                None => open = false,
            },
            Some(acked) = waiting.next(), if !waiting.is_empty() => {
                let now = Instant::now();
                match acked {
                    Acked::One(due, r) => out.count(due, &r, now, size, &live),
                    Acked::Many(dues, rs) => {
                        for (due, r) in dues.into_iter().zip(&rs) {
                            out.count(due, r, now, size, &live);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Runs one producer until the run stops.
pub(crate) async fn produce_loop(
    client: Client,
    common: Common,
    run: Arc<Run>,
    id: u32,
    rate_per_producer: f64,
) -> anyhow::Result<Produced> {
    let producer = client.producer(producer_config(&common));
    let padding: Vec<u8> = (0..common.message_size).map(|i| (i % 251) as u8).collect();
    let (tx, rx) = mpsc::channel::<Pending>(ACKS_IN_FLIGHT_MAX);
    let size = common.message_size as u64;
    let acker = tokio::spawn(collect(rx, size, run.live.clone()));
    let interval =
        (rate_per_producer > 0.0).then(|| Duration::from_secs_f64(1.0 / rate_per_producer));
    // With the batch API, one call takes about a batch's worth of messages
    // (or, at a fixed rate, those already due).
    let per_call = if common.batch_api {
        (common.batch_bytes / common.message_size).max(1)
    } else {
        1
    };
    let topic: Arc<str> = common.topic.as_str().into();
    let mut seq = 0u64;
    let mut rng = fastrand_state(id);
    let mut dues = Vec::with_capacity(per_call);
    let mut records = Vec::with_capacity(per_call);
    'run: while !run.stop.load(Ordering::Relaxed) {
        while dues.len() < per_call {
            let scheduled = match interval {
                Some(iv) => {
                    let due = run.start + iv.mul_f64(seq as f64);
                    // Only the first message of a call waits for its time.
                    if dues.is_empty() {
                        tokio::time::sleep_until(due.into()).await;
                    } else if due > Instant::now() {
                        break;
                    }
                    due
                }
                None => Instant::now(),
            };
            if run.end.is_some_and(|end| scheduled >= end) {
                break 'run;
            }
            let measured = scheduled >= run.warm_end;
            if measured
                && let Some(left) = &run.measured_left
                && left
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_err()
            {
                break 'run;
            }
            let stamp = Stamp {
                producer: id,
                sequence: seq,
                scheduled_ns: run.nanos(scheduled),
            };
            let mut record = ProducerRecord::new(topic.clone()).value(payload::encode(
                stamp,
                common.message_size,
                &padding,
            ));
            match common.keys {
                Keys::None => {}
                Keys::Random => record = record.key(rng.next().to_be_bytes().to_vec()),
                Keys::Fixed(n) => record = record.key(format!("key-{}", seq % u64::from(n))),
            }
            dues.push(Due {
                seq,
                scheduled,
                measured,
            });
            records.push(record);
            seq += 1;
        }
        if !send(&producer, &tx, &run.live, &mut dues, &mut records, per_call).await? {
            break;
        }
    }
    send(&producer, &tx, &run.live, &mut dues, &mut records, per_call).await?;
    drop(tx);
    producer.flush().await.ok();
    let out = acker.await.context("acknowledgement task")?;
    producer.close().await.ok();
    Ok(out)
}

/// Sends what was gathered; false once the acknowledgement task is gone.
async fn send(
    producer: &strata_client::Producer,
    tx: &mpsc::Sender<Pending>,
    live: &Live,
    dues: &mut Vec<Due>,
    records: &mut Vec<ProducerRecord>,
    per_call: usize,
) -> anyhow::Result<bool> {
    if records.is_empty() {
        return Ok(true);
    }
    let sent = records.len() as u64;
    let pending = if per_call == 1 {
        let record = records.pop().expect("one record");
        let due = dues.pop().expect("one due");
        Pending::One(
            due,
            producer.send(record).await.context("sending a message")?,
        )
    } else {
        let delivery = producer
            .send_all(std::mem::replace(records, Vec::with_capacity(per_call)))
            .await
            .context("sending messages")?;
        Pending::Many(
            std::mem::replace(dues, Vec::with_capacity(per_call)),
            delivery,
        )
    };
    live.sent.fetch_add(sent, Ordering::Relaxed);
    Ok(tx.send(pending).await.is_ok())
}

/// A tiny xorshift generator for random keys (one per producer), so that
/// keys cost no locking.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn fastrand_state(id: u32) -> XorShift {
    XorShift(0x9E37_79B9_7F4A_7C15 ^ (u64::from(id) + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9))
}
