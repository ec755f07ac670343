//! One producer of a workload: schedules, stamps and sends messages, one
//! `send` per message (what applications do) or, with `--batch-api`, many
//! per `send_all` call, and collects their acknowledgements on a task of
//! its own so that waiting for them never delays the schedule.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use strata_client::{
    Acks, BatchDelivery, Client, DeliveryFuture, ProducerConfig, ProducerRecord, RecordMetadata,
};
use tokio::sync::{mpsc, watch};

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
        compression: c.compression,
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

/// The futures the acknowledgement task waits for, first in first out:
/// one queue per partition for single sends (a partition's records are
/// acknowledged in order) and one for batch-API calls. Only each queue's
/// front is polled, so a wake-up costs a few polls however many records
/// are waiting, where a `FuturesUnordered` costs a node and a wake-up per
/// record. A record acknowledged while one ahead of it in its queue is not
/// (a retried batch) is counted when that one is: its latency can only
/// be overstated, never understated.
#[derive(Default)]
struct Waiting {
    ones: Vec<VecDeque<(Due, DeliveryFuture)>>,
    manys: VecDeque<(Vec<Due>, BatchDelivery)>,
}

impl Waiting {
    fn push(&mut self, p: Pending) {
        match p {
            Pending::One(due, fut) => {
                let i = fut.partition() as usize;
                if self.ones.len() <= i {
                    self.ones.resize_with(i + 1, VecDeque::new);
                }
                self.ones[i].push_back((due, fut));
            }
            Pending::Many(dues, fut) => self.manys.push_back((dues, fut)),
        }
    }

    fn is_empty(&self) -> bool {
        self.manys.is_empty() && self.ones.iter().all(VecDeque::is_empty)
    }

    /// Counts every front that is resolved; ready once any was.
    fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Produced,
        size: u64,
        live: &Live,
    ) -> Poll<()> {
        let mut progress = false;
        let mut now = None;
        for q in &mut self.ones {
            while let Some((due, fut)) = q.front_mut() {
                let Poll::Ready(r) = Pin::new(fut).poll(cx) else {
                    break;
                };
                let t = *now.get_or_insert_with(Instant::now);
                out.count(*due, &r, t, size, live);
                q.pop_front();
                progress = true;
            }
        }
        while let Some((_, fut)) = self.manys.front_mut() {
            let Poll::Ready(rs) = Pin::new(fut).poll(cx) else {
                break;
            };
            let t = *now.get_or_insert_with(Instant::now);
            let (dues, _) = self.manys.pop_front().expect("front");
            for (due, r) in dues.into_iter().zip(&rs) {
                out.count(due, r, t, size, live);
            }
            progress = true;
        }
        if progress {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Hands futures to the acknowledgement task in chunks: one channel
/// operation (and at most one wake-up) per chunk instead of per message.
/// A chunk goes when full, before the producer sleeps for its schedule,
/// and at the end, so at a fixed rate no future waits in a chunk.
struct Handoff {
    tx: mpsc::Sender<Vec<Pending>>,
    chunk: Vec<Pending>,
    /// Messages in `chunk`.
    messages: usize,
}

/// Messages per chunk, at most.
const HANDOFF_CHUNK: usize = 256;

impl Handoff {
    /// False once the acknowledgement task is gone.
    async fn push(&mut self, p: Pending, messages: usize) -> bool {
        self.chunk.push(p);
        self.messages += messages;
        self.messages < HANDOFF_CHUNK || self.flush().await
    }

    async fn flush(&mut self) -> bool {
        if self.chunk.is_empty() {
            return true;
        }
        self.messages = 0;
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(HANDOFF_CHUNK));
        self.tx.send(chunk).await.is_ok()
    }
}

async fn collect(mut rx: mpsc::Receiver<Vec<Pending>>, size: u64, live: Arc<Live>) -> Produced {
    let mut out = Produced::new();
    let mut waiting = Waiting::default();
    let mut open = true;
    while open || !waiting.is_empty() {
        let busy = !waiting.is_empty();
        tokio::select! {
            item = rx.recv(), if open => match item {
                Some(chunk) => chunk.into_iter().for_each(|p| waiting.push(p)),
                None => open = false,
            },
            _ = std::future::poll_fn(|cx| waiting.poll_drain(cx, &mut out, size, &live)), if busy => {}
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
    let pool = payload::Pool::new(common.payload, common.message_size, u64::from(id) + 1);
    let padding_len = common.message_size.saturating_sub(payload::HEADER_BYTES);
    let (tx, rx) = mpsc::channel(ACKS_IN_FLIGHT_MAX / HANDOFF_CHUNK);
    let mut handoff = Handoff {
        tx,
        chunk: Vec::with_capacity(HANDOFF_CHUNK),
        messages: 0,
    };
    let size = common.message_size as u64;
    let acker = tokio::spawn(collect(rx, size, run.live.clone()));
    let interval =
        (rate_per_producer > 0.0).then(|| Duration::from_secs_f64(1.0 / rate_per_producer));
    let mut released = interval.map(|iv| pacer(run.clone(), iv)).transpose()?;
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
    while !run.stop.load(Ordering::Relaxed) {
        // Gathers a call's worth; true when the run ends after it.
        let last = 'gather: {
            while dues.len() < per_call {
                let scheduled = match interval {
                    Some(iv) => {
                        let due = run.start + iv.mul_f64(seq as f64);
                        // Only the first message of a call waits for its time.
                        let pace = released.as_mut().expect("a pacer at a fixed rate");
                        if *pace.borrow_and_update() <= seq {
                            if !dues.is_empty() {
                                break;
                            }
                            if !handoff.flush().await {
                                break 'gather true;
                            }
                            while *pace.borrow_and_update() <= seq {
                                if pace.changed().await.is_err() {
                                    break 'gather true;
                                }
                            }
                        }
                        due
                    }
                    None => Instant::now(),
                };
                if run.end.is_some_and(|end| scheduled >= end) {
                    break 'gather true;
                }
                let measured = scheduled >= run.warm_end;
                if measured
                    && let Some(left) = &run.measured_left
                    && left
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                        .is_err()
                {
                    break 'gather true;
                }
                let stamp = Stamp {
                    producer: id,
                    sequence: seq,
                    scheduled_ns: run.nanos(scheduled),
                };
                let mut record = ProducerRecord::new(topic.clone()).value(payload::encode(
                    stamp,
                    common.message_size,
                    pool.padding(seq, padding_len),
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
            false
        };
        let open = send(
            &producer,
            &mut handoff,
            &run.live,
            &mut dues,
            &mut records,
            per_call,
        )
        .await?;
        if last || !open {
            break;
        }
    }
    handoff.flush().await;
    drop(handoff);
    producer.flush().await.ok();
    let out = acker.await.context("acknowledgement task")?;
    producer.close().await.ok();
    Ok(out)
}

/// Releases messages at their scheduled times, from a thread of its own:
/// the value is how many of them are due. tokio's timer fires on whole
/// milliseconds, so at 100,000 msg/s pacing with it released messages in
/// bursts up to a millisecond late; a thread's sleep wakes within tens of
/// microseconds. Latency still counts from the schedule, so however late
/// the release, it is charged to the measurement (no coordinated
/// omission). The thread ends with the run or when the producer is gone.
/// The pacer's shortest sleep: a message is released at most this much
/// (plus the thread's wake-up delay) after its scheduled time.
const PACER_TICK: Duration = Duration::from_micros(200);

fn pacer(run: Arc<Run>, interval: Duration) -> anyhow::Result<watch::Receiver<u64>> {
    let (tx, rx) = watch::channel(0u64);
    std::thread::Builder::new()
        .name("strata-bench-pacer".into())
        .spawn(move || {
            let mut next = 0u64;
            while !run.stop.load(Ordering::Relaxed) && !tx.is_closed() {
                let due = run.start + interval.mul_f64(next as f64);
                let now = Instant::now();
                if due > now {
                    // At least PACER_TICK (so that at high rates a wake-up
                    // releases several messages, not one), never more than
                    // 100 ms at a time (to notice the end).
                    let wait = (due - now).max(PACER_TICK);
                    std::thread::sleep(wait.min(Duration::from_millis(100)));
                }
                // Everything due by now goes at once.
                let elapsed = Instant::now().saturating_duration_since(run.start);
                next = (elapsed.as_secs_f64() / interval.as_secs_f64()) as u64 + 1;
                tx.send_replace(next);
            }
        })
        .context("starting the pacer thread")?;
    Ok(rx)
}

/// Sends what was gathered; false once the acknowledgement task is gone.
async fn send(
    producer: &strata_client::Producer,
    handoff: &mut Handoff,
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
    Ok(handoff.push(pending, sent as usize).await)
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
