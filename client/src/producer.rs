//! The producer: batching per partition, partitioning, back-pressure and
//! retries.
//!
//! `send` places a record in its partition's open batch and returns a
//! [`DeliveryFuture`]. A batch is sent when it reaches `batch_bytes`, when
//! `linger` has passed since its first record, or on `flush`. Sending runs
//! on a task of its own: it retries retriable failures with exponential
//! backoff and jitter until `delivery_timeout`, then resolves every
//! record's future. One batch per partition is in flight at a time, which
//! keeps each partition's records in the order they were sent, even across
//! retries.
//!
//! Idempotence is on by default, as in Kafka: the producer gets an id from
//! the broker and numbers each partition's batches; a batch retried after
//! a lost response carries the same numbers, and the broker answers with
//! the original offsets instead of appending it again.
//!
//! Memory is bounded by `buffer_bytes`: each record holds its encoded size
//! of a semaphore until its batch is acknowledged or failed, and `send`
//! waits for room when the buffer is full.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_proto::BatchBuilder;
use strata_proto::v1;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::partitioner::partition_for_key;
use crate::record::{ProducerRecord, RecordMetadata};

/// When the broker acknowledges a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// Without waiting for the write; offsets are unknown (-1) and failures
    /// are not reported.
    None,
    /// Once written (to the page cache; fsynced first on `fsync` topics).
    Written,
    /// Once fsynced. The default.
    #[default]
    Durable,
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// When the broker answers.
    pub acks: Acks,
    /// A partition's batch is sent once it holds this many bytes.
    pub batch_bytes: usize,
    /// A batch is sent at the latest this long after its first record.
    pub linger: Duration,
    /// Bytes of records buffered or in flight; `send` waits beyond it.
    pub buffer_bytes: usize,
    /// How long a record may take to be acknowledged, retries included.
    pub delivery_timeout: Duration,
    /// The first retry's wait; it doubles up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    /// The longest wait between retries.
    pub retry_backoff_max: Duration,
    /// Number batches so that retries never duplicate a record (ignored
    /// with `Acks::None`, which never retries).
    pub idempotence: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: Acks::Durable,
            batch_bytes: 1 << 20,
            linger: Duration::from_millis(5),
            buffer_bytes: 64 << 20,
            delivery_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            idempotence: true,
        }
    }
}

/// Resolves to where the record was stored, or why it was not.
#[derive(Debug)]
pub struct DeliveryFuture(oneshot::Receiver<Result<RecordMetadata>>);

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

struct Waiter {
    done: oneshot::Sender<Result<RecordMetadata>>,
    timestamp_ms: i64,
    _permit: OwnedSemaphorePermit,
}

struct OpenBatch {
    builder: BatchBuilder,
    waiters: Vec<Waiter>,
    opened: Instant,
    /// Distinguishes this batch from a later one of the same partition, so
    /// a linger timer only sends the batch it was started for.
    generation: u64,
}

#[derive(Default)]
struct State {
    open: HashMap<(String, u32), OpenBatch>,
    /// Partition counts, learned from the broker and refreshed on NOT_FOUND.
    partitions: HashMap<String, u32>,
    /// The sticky partition of each topic, for keyless records.
    sticky: HashMap<String, u32>,
    /// Closed batches waiting to be sent, per partition, in order; one
    /// worker task per busy partition sends them one at a time.
    queues: HashMap<(String, u32), Queue>,
    /// The next sequence number of each partition, for the current
    /// producer id.
    sequences: HashMap<(String, u32), i32>,
    generation: u64,
}

#[derive(Default)]
struct Queue {
    batches: std::collections::VecDeque<OpenBatch>,
    busy: bool,
}

struct Inner {
    client: Client,
    config: ProducerConfig,
    state: Mutex<State>,
    buffer: Arc<Semaphore>,
    /// Batches taken out of `open` and not yet resolved.
    outstanding: AtomicUsize,
    idle: Notify,
    closed: AtomicBool,
    /// The idempotent producer id and epoch, once the broker gave them.
    producer_id: tokio::sync::Mutex<Option<(i64, i16)>>,
}

/// Sends records to the broker in batches. Cheap to clone; clones share
/// the buffer and the batches.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Bytes a new batch reserves up front (at most `batch_bytes`).
const BATCH_PREALLOCATE_BYTES: usize = 256 << 10;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Producer {
    pub(crate) fn new(client: Client, config: ProducerConfig) -> Self {
        let buffer = Arc::new(Semaphore::new(
            config.buffer_bytes.min(Semaphore::MAX_PERMITS),
        ));
        Self {
            inner: Arc::new(Inner {
                client,
                config,
                state: Mutex::new(State::default()),
                buffer,
                outstanding: AtomicUsize::new(0),
                idle: Notify::new(),
                closed: AtomicBool::new(false),
                producer_id: tokio::sync::Mutex::new(None),
            }),
        }
    }

    async fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(&n) = self
            .inner
            .state
            .lock()
            .expect("producer lock")
            .partitions
            .get(topic)
        {
            return Ok(n);
        }
        let d = self.inner.client.admin().describe_topic(topic).await?;
        let n = d.partitions.len() as u32;
        if n == 0 {
            return Err(Error::InvalidArgument(format!(
                "topic {topic:?} has no partitions"
            )));
        }
        self.inner
            .state
            .lock()
            .expect("producer lock")
            .partitions
            .insert(topic.to_string(), n);
        Ok(n)
    }

    /// Queues a record and returns a future of its delivery. Waits while
    /// the buffer (`buffer_bytes`) is full. Errors here are about the record
    /// itself (unknown topic or partition, too large, producer closed);
    /// delivery errors come from the returned future.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let count = self.partition_count(&record.topic).await?;
        let size = BatchBuilder::record_len_hint(
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
        if size > inner.config.buffer_bytes {
            return Err(Error::InvalidArgument(format!(
                "a record of {size} bytes is larger than buffer_bytes ({})",
                inner.config.buffer_bytes
            )));
        }
        let permit = inner
            .buffer
            .clone()
            .acquire_many_owned(size as u32)
            .await
            .map_err(|_| Error::Closed)?;
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(now_ms);
        let (tx, rx) = oneshot::channel();
        let mut state = inner.state.lock().expect("producer lock");
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p >= count => {
                return Err(Error::InvalidArgument(format!(
                    "topic {:?} has {count} partitions, no partition {p}",
                    record.topic
                )));
            }
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => *state
                .sticky
                .entry(record.topic.clone())
                .or_insert_with(|| fastrand::u32(..count)),
        };
        let key = (record.topic.clone(), partition);
        // A record that does not fit the open batch closes it first.
        if let Some(open) = state.open.get(&key)
            && !open.waiters.is_empty()
            && open.builder.encoded_len() + size > inner.config.batch_bytes
        {
            let full = state.open.remove(&key).expect("present");
            self.dispatch(&mut state, key.clone(), full, record.key.is_none());
        }
        let generation = state.generation;
        let open = state.open.entry(key.clone()).or_insert_with(|| OpenBatch {
            // Room for a good part of a batch at once: growing a megabyte
            // batch from two records' worth copied it ten times over.
            builder: BatchBuilder::with_capacity(
                inner
                    .config
                    .batch_bytes
                    .min(BATCH_PREALLOCATE_BYTES.max(size * 2)),
            ),
            waiters: Vec::new(),
            opened: Instant::now(),
            generation,
        });
        let first = open.waiters.is_empty();
        open.builder.push(
            timestamp_ms,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
        open.waiters.push(Waiter {
            done: tx,
            timestamp_ms,
            _permit: permit,
        });
        let generation = open.generation;
        let full = open.builder.encoded_len() >= inner.config.batch_bytes;
        // With no linger, a batch goes as soon as its partition's sender is
        // free; while one is in flight, records batch up behind it and the
        // sender takes them when it is done (`send_queue`). This never goes
        // through the timer, whose 1 ms resolution would add up to a
        // millisecond to every record.
        let now = inner.config.linger.is_zero() && !state.queues.get(&key).is_some_and(|q| q.busy);
        if full || now {
            let batch = state.open.remove(&key).expect("present");
            self.dispatch(&mut state, key, batch, record.key.is_none());
        } else if first && !inner.config.linger.is_zero() {
            state.generation += 1;
            self.linger(key, generation);
        }
        Ok(DeliveryFuture(rx))
    }

    /// Sends a record and waits for its acknowledgement.
    pub async fn send_and_wait(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.send(record).await?.await
    }

    fn linger(&self, key: (String, u32), generation: u64) {
        let this = self.clone();
        let linger = self.inner.config.linger;
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            let mut state = this.inner.state.lock().expect("producer lock");
            if state
                .open
                .get(&key)
                .is_some_and(|b| b.generation == generation)
            {
                let batch = state.open.remove(&key).expect("present");
                this.dispatch(&mut state, key, batch, false);
            }
        });
    }

    /// Hands a closed batch to a sending task.
    fn dispatch(
        &self,
        state: &mut State,
        key: (String, u32),
        batch: OpenBatch,
        rotate_sticky: bool,
    ) {
        if rotate_sticky
            && let Some(&n) = state.partitions.get(&key.0)
            && n > 1
        {
            // The sticky partition's batch is full: move on, so keyless
            // records spread over partitions batch by batch.
            let next = (key.1 + 1 + fastrand::u32(..n - 1)) % n;
            state.sticky.insert(key.0.clone(), next);
        }
        self.inner.outstanding.fetch_add(1, Ordering::AcqRel);
        let queue = state.queues.entry(key.clone()).or_default();
        queue.batches.push_back(batch);
        if !queue.busy {
            queue.busy = true;
            let this = self.clone();
            tokio::spawn(async move { this.send_queue(key).await });
        }
    }

    /// Sends a partition's queued batches one at a time, in order, until
    /// the queue is empty.
    async fn send_queue(&self, key: (String, u32)) {
        loop {
            let batch = {
                let mut state = self.inner.state.lock().expect("producer lock");
                let State { queues, open, .. } = &mut *state;
                let queue = queues.get_mut(&key).expect("a busy queue exists");
                match queue.batches.pop_front() {
                    Some(b) => b,
                    // With no linger, what gathered while we were sending
                    // goes next.
                    None if self.inner.config.linger.is_zero() && open.contains_key(&key) => {
                        self.inner.outstanding.fetch_add(1, Ordering::AcqRel);
                        open.remove(&key).expect("present")
                    }
                    None => {
                        queue.busy = false;
                        return;
                    }
                }
            };
            self.deliver(key.clone(), batch).await;
            if self.inner.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.inner.idle.notify_waiters();
            }
        }
    }

    /// The producer id, asked of the broker on first use.
    async fn producer_id(&self) -> Result<(i64, i16)> {
        let mut id = self.inner.producer_id.lock().await;
        if let Some(id) = *id {
            return Ok(id);
        }
        let resp = self
            .inner
            .client
            .records()
            .init_producer(v1::InitProducerRequest {})
            .await?
            .into_inner();
        let got = (resp.producer_id, resp.producer_epoch as i16);
        *id = Some(got);
        Ok(got)
    }

    /// Gives up the producer id after a sequence error: the next batch
    /// starts over with a fresh id and sequence 0 everywhere.
    async fn reset_producer_id(&self) {
        *self.inner.producer_id.lock().await = None;
        self.inner
            .state
            .lock()
            .expect("producer lock")
            .sequences
            .clear();
    }

    /// Sends one batch, retrying, and resolves its records' futures.
    async fn deliver(&self, (topic, partition): (String, u32), batch: OpenBatch) {
        let cfg = &self.inner.config;
        let mut builder = batch.builder;
        if cfg.idempotence && cfg.acks != Acks::None {
            match self.producer_id().await {
                Ok((id, epoch)) => {
                    let records = batch.waiters.len() as i32;
                    let mut state = self.inner.state.lock().expect("producer lock");
                    let next = state
                        .sequences
                        .entry((topic.clone(), partition))
                        .or_insert(0);
                    let base = *next;
                    // Sequences wrap at i32::MAX, as Kafka's do.
                    *next =
                        ((i64::from(base) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32;
                    builder.producer(id, epoch, base);
                }
                Err(e) => {
                    for w in batch.waiters {
                        let _ = w.done.send(Err(e.clone()));
                    }
                    return;
                }
            }
        }
        let bytes = builder.finish();
        let deadline = batch.opened + cfg.delivery_timeout;
        let mut backoff = cfg.retry_backoff;
        let acks = match cfg.acks {
            Acks::None => v1::Acks::None,
            Acks::Written => v1::Acks::Written,
            Acks::Durable => v1::Acks::Durable,
        };
        let result = loop {
            let req = v1::ProduceRequest {
                acks: acks as i32,
                topics: vec![v1::TopicProduceData {
                    topic: topic.clone(),
                    partitions: vec![v1::PartitionProduceData {
                        partition,
                        data: Some(v1::partition_produce_data::Data::Batch(bytes.clone())),
                    }],
                }],
            };
            let attempt = match self.inner.client.records().produce(req).await {
                Ok(resp) => {
                    let r = resp
                        .into_inner()
                        .topics
                        .into_iter()
                        .next()
                        .and_then(|t| t.partitions.into_iter().next());
                    match r {
                        Some(r) if r.error.is_none() => Ok((r.base_offset, r.log_append_time_ms)),
                        Some(r) => Err(Error::partition(
                            &topic,
                            partition,
                            r.error.as_ref().expect("error"),
                        )),
                        None => Err(Error::InvalidArgument("empty produce answer".into())),
                    }
                }
                Err(status) => Err(Error::from(status)),
            };
            match attempt {
                Ok(ok) => break Ok(ok),
                Err(e) if e.is_retriable() && Instant::now() + backoff < deadline => {
                    tracing::debug!(%topic, partition, error = %e, ?backoff, "retrying a batch");
                    let jitter = 0.8 + fastrand::f64() * 0.4;
                    tokio::time::sleep(backoff.mul_f64(jitter)).await;
                    backoff = (backoff * 2).min(cfg.retry_backoff_max);
                }
                Err(e) if e.is_retriable() => {
                    break Err(Error::DeliveryTimeout(cfg.delivery_timeout, e.to_string()));
                }
                Err(e) => {
                    if matches!(
                        &e,
                        Error::Partition {
                            code: tonic::Code::FailedPrecondition,
                            ..
                        }
                    ) {
                        self.reset_producer_id().await;
                    }
                    if matches!(
                        &e,
                        Error::Partition {
                            code: tonic::Code::NotFound,
                            ..
                        }
                    ) {
                        // The topic may have been deleted or grown: relearn it.
                        self.inner
                            .state
                            .lock()
                            .expect("producer lock")
                            .partitions
                            .remove(&topic);
                    }
                    break Err(e);
                }
            }
        };
        for (i, w) in batch.waiters.into_iter().enumerate() {
            let outcome = match &result {
                Ok((base, append_time)) => Ok(RecordMetadata {
                    topic: topic.clone(),
                    partition,
                    offset: if *base < 0 { -1 } else { base + i as i64 },
                    timestamp_ms: if *append_time >= 0 {
                        *append_time
                    } else {
                        w.timestamp_ms
                    },
                }),
                Err(e) => Err(e.clone()),
            };
            let _ = w.done.send(outcome);
        }
    }

    /// Sends every buffered record now and waits until all are resolved.
    pub async fn flush(&self) -> Result<()> {
        {
            let mut state = self.inner.state.lock().expect("producer lock");
            let open: Vec<_> = state.open.drain().collect();
            for (key, batch) in open {
                self.dispatch(&mut state, key, batch, false);
            }
        }
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            // Register before checking, so a notification in between is kept.
            idle.as_mut().enable();
            if self.inner.outstanding.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            idle.await;
        }
    }

    /// Flushes, then refuses further records.
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        self.flush().await
    }

    /// Bytes of buffer free now (for tests and metrics).
    pub fn buffer_available(&self) -> usize {
        self.inner.buffer.available_permits()
    }
}
