//! A partition's sender: up to `max_in_flight` batches in flight, in order,
//! retried in order, numbered so the broker appends each exactly once.
//!
//! One task per busy partition owns the partition's window: the batches
//! sent and not yet resolved, oldest first. New batches are taken from the
//! partition's queue while the window has room. Every batch goes out on
//! the producer's one ordered stream, so the broker sees them in window
//! order.
//!
//! When an answer asks for a retry (a lost connection, a busy broker, or
//! "out of order": an earlier batch did not get in), the window **drains**:
//! nothing new is sent until every batch in flight has been answered. Then
//! the batches left, all waiting for a retry, are sent again together in
//! their order ([`Sender::resync`]). Order survives because nothing is ever
//! sent ahead of an earlier batch of the window that still has to be sent.
//! A batch the broker already appended is answered as a duplicate, with
//! its original offsets, so a retry never appends twice.
//!
//! What "out of order" means at a resync depends on what went before:
//! - an earlier batch was refused outright (invalid, too large, keyless on
//!   a compacted topic: never appended), so the later ones came too early
//!   for a sequence that will never be filled: they are renumbered under
//!   the next epoch of the partition (sequence 0) and sent again;
//! - nothing earlier is unresolved: a real gap (the broker lost records it
//!   had acknowledged, or forgot the producer). The batch and those after
//!   it fail with the broker's error, and the partition's next batch starts
//!   a new epoch.
//!
//! A batch past its delivery timeout fails, and with it every later batch
//! of the window (their fate may hang on it); the next batch starts a new
//! epoch. The producer id never changes: only the partition's epoch, and
//! only while none of its batches is in flight.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use strata_proto::{BatchBuilder, batch, v1};

use super::delivery::{Acked, Completion};
use super::stream::Answer;
use super::{Acks, ClosedBatch, Producer, Sequence};
use crate::error::{Error, ErrorReason, Result};

type AnswerFuture = Pin<Box<dyn Future<Output = (u64, Result<Acked>)> + Send>>;

/// A batch in the window.
struct Entry {
    id: u64,
    bytes: Bytes,
    records: u32,
    completion: Completion,
    reserved: usize,
    deadline: Instant,
    state: EntryState,
    backoff: Duration,
}

enum EntryState {
    InFlight,
    /// Acknowledged while an earlier batch is not: it keeps its place, so
    /// that the window never spans more than `max_in_flight` batches from
    /// the oldest unresolved one. That is what keeps every batch that may
    /// be sent again among the last few the broker remembers.
    Acked,
    Retry {
        /// The broker said "out of order": this batch is not in the log.
        out_of_order: bool,
        not_before: Instant,
        error: Error,
    },
}

/// Starts the sender of a partition (the caller marked it running).
/// Called with the producer's lock held; the task looks the topic's name
/// up once it runs.
pub(super) fn spawn(producer: Producer, topic: usize, partition: u32) {
    tokio::spawn(async move {
        let (name, wake) = {
            let st = producer.lock();
            let t = &st.topics[topic];
            (
                t.name.clone(),
                t.partitions[partition as usize].wake.clone(),
            )
        };
        let sender = Sender {
            producer,
            topic,
            partition,
            name,
            wake,
            window: VecDeque::new(),
            answers: FuturesUnordered::new(),
            next_id: 0,
            rebase: false,
        };
        sender.run().await;
    });
}

struct Sender {
    producer: Producer,
    topic: usize,
    partition: u32,
    name: Arc<str>,
    /// The partition's wake-up, looked up once (not under the lock on
    /// every turn of the loop).
    wake: Arc<tokio::sync::Notify>,
    window: VecDeque<Entry>,
    answers: FuturesUnordered<AnswerFuture>,
    next_id: u64,
    /// A batch was refused outright: the "out of order" answers of the
    /// batches after it call for renumbering, not for failing.
    rebase: bool,
}

/// Whether the broker refused the batch before writing anything, for a
/// reason that the same bytes would always get.
fn never_appended(e: &Error) -> bool {
    matches!(
        e.reason(),
        ErrorReason::InvalidBatch
            | ErrorReason::BatchTooLarge
            | ErrorReason::KeyRequired
            | ErrorReason::InvalidArgument
    )
}

fn next_seq(seq: i32, records: u32) -> i32 {
    strata_proto::sequence::add(seq, i64::from(records))
}

impl Sequence {
    /// Numbers a batch of `records`: its epoch offset and base sequence.
    fn take(&mut self, records: u32) -> (i16, i32) {
        if self.bump_due {
            self.bump();
        }
        let base = self.next;
        self.next = next_seq(base, records);
        (self.epoch_bump, base)
    }

    fn bump(&mut self) {
        self.epoch_bump = self.epoch_bump.wrapping_add(1);
        self.next = 0;
        self.bump_due = false;
    }
}

impl Sender {
    fn idempotent(&self) -> bool {
        let cfg = &self.producer.inner.config;
        cfg.idempotence && cfg.acks != Acks::None
    }

    fn draining(&self) -> bool {
        self.window
            .iter()
            .any(|e| matches!(e.state, EntryState::Retry { .. }))
    }

    async fn run(mut self) {
        loop {
            if !self.draining() && !self.fill().await {
                return;
            }
            if self.window.is_empty() {
                continue;
            }
            if self.draining() && self.answers.is_empty() {
                self.resync().await;
                continue;
            }
            let wake = self.wake.clone();
            let draining = self.draining();
            tokio::select! {
                Some((id, r)) = self.answers.next() => self.on_answer(id, r),
                _ = wake.notified(), if !draining => {}
            }
        }
    }

    /// Takes queued batches into the window while it has room, numbers and
    /// sends them. Returns false when there is nothing left to do (the
    /// sender has stopped).
    async fn fill(&mut self) -> bool {
        let max = self.producer.inner.config.max_in_flight;
        let linger_zero = self.producer.inner.config.linger.is_zero();
        let mut taken: Vec<ClosedBatch> = Vec::new();
        {
            let mut st = self.producer.lock();
            let p = &mut st.topics[self.topic].partitions[self.partition as usize];
            while self.window.len() + taken.len() < max {
                if p.queue.is_empty()
                    && linger_zero
                    && let Some(open) = p.open.take()
                {
                    // What gathered while the window was full goes now.
                    self.producer
                        .close_batch(self.topic, self.partition, p, open);
                }
                match p.queue.pop_front() {
                    Some(b) => taken.push(b),
                    None => break,
                }
            }
            p.in_flight = self.window.len() + taken.len();
            if p.in_flight == 0 {
                // Decided under the lock, so a batch closed after this
                // starts a new sender.
                p.sender_running = false;
                return false;
            }
        }
        for b in taken {
            if let Some(entry) = self.number(b).await {
                self.producer
                    .inner
                    .stats
                    .batches_sent
                    .fetch_add(1, Ordering::Relaxed);
                self.send(entry);
            }
        }
        self.producer
            .inner
            .stats
            .in_flight_peak
            .fetch_max(self.window.len(), Ordering::Relaxed);
        true
    }

    /// Finishes a closed batch: the producer fields (for idempotence) and
    /// the CRC. `None` if it failed (no producer id to be had).
    async fn number(&mut self, b: ClosedBatch) -> Option<Entry> {
        let cfg = &self.producer.inner.config;
        let deadline = b.opened + cfg.delivery_timeout;
        let mut builder: BatchBuilder = b.builder;
        let records = builder.record_count() as u32;
        if self.idempotent() {
            let (id, epoch) = match self.producer.producer_id(deadline).await {
                Ok(id) => id,
                Err(e) => {
                    b.completion.resolve(Err(e));
                    self.producer.resolved(b.reserved);
                    return None;
                }
            };
            let (bump, base) = self.sequence(|s| s.take(records));
            builder.producer(id, epoch.wrapping_add(bump), base);
        }
        // On this task, as Kafka's sender compresses on its thread: a 1 MiB
        // batch takes a millisecond or two with lz4 or zstd.
        let bytes = match builder.finish_compressed(cfg.compression) {
            Ok(bytes) => bytes,
            Err(e) => {
                b.completion
                    .resolve(Err(Error::InvalidArgument(e.to_string())));
                self.producer.resolved(b.reserved);
                return None;
            }
        };
        self.next_id += 1;
        Some(Entry {
            id: self.next_id,
            bytes,
            records,
            completion: b.completion,
            reserved: b.reserved,
            deadline,
            state: EntryState::InFlight,
            backoff: cfg.retry_backoff,
        })
    }

    fn sequence<T>(&self, f: impl FnOnce(&mut Sequence) -> T) -> T {
        let mut st = self.producer.lock();
        f(&mut st.topics[self.topic].partitions[self.partition as usize].seq)
    }

    /// Sends (or sends again) an entry on the producer's stream.
    fn send(&mut self, mut entry: Entry) {
        let inner = &self.producer.inner;
        let acks = match inner.config.acks {
            Acks::None => v1::Acks::None,
            Acks::Written => v1::Acks::Written,
            Acks::Durable => v1::Acks::Durable,
        };
        let request = v1::ProduceRequest {
            acks: acks as i32,
            topics: vec![v1::TopicProduceData {
                topic: self.name.to_string(),
                partitions: vec![v1::PartitionProduceData {
                    partition: self.partition,
                    data: Some(v1::partition_produce_data::Data::Batch(entry.bytes.clone())),
                }],
            }],
        };
        let answer = self.producer.session().send(request);
        let timeout = inner.client.options().request_timeout;
        let (id, name, partition) = (entry.id, self.name.clone(), self.partition);
        self.answers.push(Box::pin(async move {
            (id, read_answer(answer, timeout, &name, partition).await)
        }));
        entry.state = EntryState::InFlight;
        self.window.push_back(entry);
    }

    fn on_answer(&mut self, id: u64, r: Result<Acked>) {
        let Some(i) = self.window.iter().position(|e| e.id == id) else {
            return;
        };
        let cfg = &self.producer.inner.config;
        match r {
            Ok(acked) => {
                let e = &mut self.window[i];
                e.completion.resolve(Ok(acked));
                self.producer.resolved(std::mem::take(&mut e.reserved));
                e.bytes = Bytes::new();
                e.state = EntryState::Acked;
                while self
                    .window
                    .front()
                    .is_some_and(|e| matches!(e.state, EntryState::Acked))
                {
                    self.window.pop_front();
                }
            }
            Err(error) if error.reason() == ErrorReason::OutOfOrderSequence => {
                self.window[i].state = EntryState::Retry {
                    out_of_order: true,
                    not_before: Instant::now(),
                    error,
                };
            }
            Err(error) if error.is_retriable() => {
                let e = &mut self.window[i];
                // A quota's throttle time is exactly the wait: the broker
                // knows when the batch fits, and backing off further would
                // leave the quota unused.
                let wait = match error.retry_after() {
                    Some(t) => t,
                    None => {
                        let w = e.backoff.mul_f64(0.8 + fastrand::f64() * 0.4);
                        e.backoff = (e.backoff * 2).min(cfg.retry_backoff_max);
                        w
                    }
                };
                tracing::debug!(topic = %self.name, partition = self.partition, %error, ?wait, "retrying a batch");
                e.state = EntryState::Retry {
                    out_of_order: false,
                    not_before: Instant::now() + wait,
                    error,
                };
            }
            Err(error) => {
                if matches!(
                    error.reason(),
                    ErrorReason::UnknownTopic | ErrorReason::UnknownPartition
                ) {
                    // Deleted, or grown: ask again on the next record.
                    self.producer.forget_topic(self.topic);
                }
                if never_appended(&error) {
                    self.rebase = true;
                }
                let e = self.window.remove(i).expect("found");
                self.fail(e, error);
            }
        }
    }

    fn fail(&self, e: Entry, error: Error) {
        if matches!(e.state, EntryState::Acked) {
            return;
        }
        e.completion.resolve(Err(error));
        self.producer.resolved(e.reserved);
    }

    /// Every batch in flight is answered and those left wait for a retry:
    /// fail what must fail, renumber what must be, and send the rest again
    /// in order.
    async fn resync(&mut self) {
        let now = Instant::now();
        let timeout = self.producer.inner.config.delivery_timeout;
        // Deadlines grow along the window: if any batch is past its own,
        // the first one is.
        if now >= self.window[0].deadline {
            self.fail_all(|error| Error::DeliveryTimeout(timeout, error.to_string()));
            return;
        }
        let EntryState::Retry {
            out_of_order,
            not_before,
            ..
        } = self.window[0].state
        else {
            unreachable!("a resync starts with every batch answered");
        };
        if out_of_order && !self.rebase {
            tracing::warn!(topic = %self.name, partition = self.partition, "sequence gap at the broker: failing the batches in flight");
            self.fail_all(|error| error.clone());
            return;
        }
        if out_of_order {
            self.renumber();
        }
        tokio::time::sleep_until(not_before.into()).await;
        let entries: Vec<Entry> = self.window.drain(..).collect();
        for e in entries {
            if matches!(e.state, EntryState::Acked) {
                self.window.push_back(e);
            } else {
                self.producer
                    .inner
                    .stats
                    .batches_retried
                    .fetch_add(1, Ordering::Relaxed);
                self.send(e);
            }
        }
    }

    /// Fails every batch of the window with `f` of its last error; the
    /// partition's next batch starts a new epoch.
    fn fail_all(&mut self, f: impl Fn(&Error) -> Error) {
        for e in std::mem::take(&mut self.window) {
            let error = match &e.state {
                EntryState::Retry { error, .. } => f(error),
                EntryState::InFlight | EntryState::Acked => f(&Error::Closed),
            };
            self.fail(e, error);
        }
        self.rebase = false;
        if self.idempotent() {
            self.sequence(|s| s.bump_due = true);
        }
    }

    /// Renumbers the window under the partition's next epoch, from
    /// sequence 0. Only when none of it is in the log (each was refused as
    /// out of order behind a batch that never will be).
    fn renumber(&mut self) {
        let Some(&(id, epoch)) = self.producer.inner.producer_id.get() else {
            return;
        };
        let mut st = self.producer.lock();
        let seq = &mut st.topics[self.topic].partitions[self.partition as usize].seq;
        seq.bump();
        for e in &mut self.window {
            if matches!(e.state, EntryState::Acked) {
                continue;
            }
            let (bump, base) = seq.take(e.records);
            let mut bytes = BytesMut::from(&e.bytes[..]);
            batch::set_producer(&mut bytes, id, epoch.wrapping_add(bump), base);
            e.bytes = bytes.freeze();
        }
        self.rebase = false;
    }
}

/// Waits for one answer (at most `timeout`) and reads this partition's
/// result out of it.
async fn read_answer(
    answer: Answer,
    timeout: Duration,
    topic: &str,
    partition: u32,
) -> Result<Acked> {
    let answer = match tokio::time::timeout(timeout, answer).await {
        Err(_) => {
            return Err(Error::local(
                tonic::Code::DeadlineExceeded,
                format!("no answer to a produce request within request_timeout ({timeout:?})"),
            ));
        }
        Ok(Err(_)) => {
            return Err(Error::local(
                tonic::Code::Unavailable,
                "the produce stream was dropped",
            ));
        }
        Ok(Ok(r)) => r?,
    };
    if let Some(e) = &answer.error {
        return Err(Error::partition(topic, partition, e));
    }
    let result = answer
        .response
        .and_then(|r| r.topics.into_iter().next())
        .and_then(|t| t.partitions.into_iter().next())
        .ok_or_else(|| Error::local(tonic::Code::Internal, "an empty produce answer"))?;
    match &result.error {
        Some(e) => Err(Error::partition(topic, partition, e)),
        None => Ok(Acked {
            base_offset: result.base_offset,
            log_append_time_ms: result.log_append_time_ms,
        }),
    }
}

impl Producer {
    /// The producer's stream, opened anew if the last one ended.
    fn session(&self) -> Arc<super::stream::Session> {
        let mut s = self.inner.session.lock().expect("session lock");
        match &*s {
            Some(session) if !session.is_over() => session.clone(),
            _ => {
                let session = super::stream::Session::open(&self.inner.client);
                *s = Some(session.clone());
                session
            }
        }
    }

    /// The idempotent producer id, asked of the broker on first use and
    /// retried (with the producer's backoff) until `deadline`.
    async fn producer_id(&self, deadline: Instant) -> Result<(i64, i16)> {
        let cfg = &self.inner.config;
        let client = &self.inner.client;
        self.inner
            .producer_id
            .get_or_try_init(|| async {
                let mut backoff = cfg.retry_backoff;
                loop {
                    let r = client
                        .records()
                        .init_producer(v1::InitProducerRequest {})
                        .await;
                    match r {
                        Ok(resp) => {
                            let resp = resp.into_inner();
                            return Ok((resp.producer_id, resp.producer_epoch as i16));
                        }
                        Err(status) => {
                            let e = Error::from(status);
                            if !e.is_retriable() || Instant::now() + backoff >= deadline {
                                return Err(e);
                            }
                            tokio::time::sleep(backoff.max(e.retry_after().unwrap_or_default()))
                                .await;
                            backoff = (backoff * 2).min(cfg.retry_backoff_max);
                        }
                    }
                }
            })
            .await
            .copied()
    }
}
