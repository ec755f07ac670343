//! Produce, as one unary call or as an ordered stream of calls.
//!
//! Both read a request the same way ([`prepare`]: acks, then each
//! partition's batch, encoding structured records) and answer it the same
//! way ([`response`]). They differ in ordering:
//!
//! - [`Producing::produce`] (unary) starts every partition's append at
//!   once. Two unary calls race each other to the log, so a producer with
//!   several in flight may see the later one refused as out of order; it
//!   is retriable, and the client sends it again after the earlier one.
//! - [`Producing::produce_stream`] writes each request's batches to the
//!   log in the order the requests arrived on the stream (one HTTP/2 stream
//!   is an ordered byte stream, so that is the order the producer sent
//!   them), then waits for each request's fsync on its own task, so the
//!   fsyncs of several requests overlap and group-commit. This is why a
//!   producer can keep several batches of one partition in flight without
//!   ever having them reordered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::join_all;
use strata_proto::batch::BatchHeader;
use strata_proto::v1;
use strata_proto::{BatchBuilder, Header};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use super::auth::Caller;
use super::metrics;
use super::status::{to_error, to_status};
use crate::core::security::{Operation, QuotaKind};
use crate::core::{Acks, Broker, BrokerError, Partition};
use crate::storage::{AppendInfo, Clock, SystemClock, Written};

/// Requests of one produce stream being written or awaiting their fsync;
/// past it the broker stops reading the stream until one is answered
/// (back-pressure through HTTP/2 flow control, not an error). Five
/// partitions with the client's five batches in flight each fit.
pub const STREAM_REQUESTS_IN_FLIGHT_MAX: usize = 32;

/// The answers a stream sends, as the outbound stream's item.
pub type ProduceStream = ReceiverStream<Result<v1::ProduceStreamResponse, Status>>;

/// Test hook: lose the answer of every Nth produce request after its
/// appends are done (0: never), as if the connection dropped on the way
/// back. Proves that idempotent retries append once.
#[derive(Debug, Default)]
pub struct LoseHook {
    every: u64,
    count: AtomicU64,
}

impl LoseHook {
    /// Loses every `every`th answer (0: none).
    pub fn new(every: u64) -> Self {
        Self {
            every,
            count: AtomicU64::new(0),
        }
    }

    fn hit(&self) -> bool {
        self.every > 0 && (self.count.fetch_add(1, Ordering::AcqRel) + 1).is_multiple_of(self.every)
    }

    fn lost() -> Status {
        super::status::response_lost_by_test_hook()
    }
}

/// One partition's part of a request: its partition and batch, or why it
/// has none.
struct Target {
    topic: String,
    partition: u32,
    batch: Result<(Arc<Partition>, Bytes), BrokerError>,
}

/// A request, read: acks, the shape of the answer (topic, partition
/// count), and its targets in request order.
struct Prepared {
    acks: Acks,
    shape: Vec<(String, usize)>,
    targets: Vec<Target>,
}

fn parse_acks(acks: i32) -> Result<Acks, BrokerError> {
    match v1::Acks::try_from(acks) {
        Ok(v1::Acks::Unspecified | v1::Acks::Durable) => Ok(Acks::Durable),
        Ok(v1::Acks::Written) => Ok(Acks::Written),
        Ok(v1::Acks::None) => Ok(Acks::None),
        Err(_) => Err(BrokerError::InvalidArgument(format!(
            "unknown acks value {acks}"
        ))),
    }
}

/// Encodes structured records into one batch.
fn encode_records(list: v1::RecordList) -> Result<Bytes, BrokerError> {
    if list.records.is_empty() {
        return Err(BrokerError::InvalidArgument(
            "the records list is empty".into(),
        ));
    }
    let now = SystemClock.now_ms();
    let mut b = BatchBuilder::new();
    for r in list.records {
        let headers: Vec<Header> = r
            .headers
            .into_iter()
            .map(|h| Header {
                key: h.key,
                value: h.value,
            })
            .collect();
        b.push(
            r.timestamp_ms.unwrap_or(now),
            r.key.as_deref(),
            r.value.as_deref(),
            &headers,
        );
    }
    Ok(b.finish())
}

/// A topic and partition of a request.
type PartitionKey = (String, u32);

fn prepare(broker: &Broker, req: v1::ProduceRequest) -> Result<Prepared, BrokerError> {
    let acks = parse_acks(req.acks)?;
    let mut shape = Vec::with_capacity(req.topics.len());
    let mut targets = Vec::new();
    for t in req.topics {
        shape.push((t.topic.clone(), t.partitions.len()));
        for p in t.partitions {
            let batch = broker.partition(&t.topic, p.partition).and_then(|part| {
                let bytes = match p.data {
                    Some(v1::partition_produce_data::Data::Batch(b)) => b,
                    Some(v1::partition_produce_data::Data::Records(list)) => encode_records(list)?,
                    None => {
                        return Err(BrokerError::InvalidArgument(format!(
                            "{}/{}: no batch and no records",
                            t.topic, p.partition
                        )));
                    }
                };
                broker.check_producer_id(&bytes)?;
                Ok((part, bytes))
            });
            targets.push(Target {
                topic: t.topic.clone(),
                partition: p.partition,
                batch,
            });
        }
    }
    Ok(Prepared {
        acks,
        shape,
        targets,
    })
}

/// Records in a batch, from its header (0 if it has none).
fn record_count(batch: &[u8]) -> u64 {
    BatchHeader::parse(batch).map_or(0, |h| h.record_count.max(0) as u64)
}

/// What one target's append answered: `Ok(None)` when nothing is
/// acknowledged (acks=none).
pub(crate) type Answer = Result<Option<AppendInfo>, BrokerError>;

fn partition_result(partition: u32, r: Answer) -> v1::PartitionProduceResult {
    match r {
        Ok(Some(info)) => v1::PartitionProduceResult {
            partition,
            duplicate: info.duplicate,
            base_offset: info.base_offset.0 as i64,
            log_append_time_ms: info.log_append_time_ms.unwrap_or(-1),
            error: None,
        },
        Ok(None) => v1::PartitionProduceResult {
            partition,
            duplicate: false,
            base_offset: -1,
            log_append_time_ms: -1,
            error: None,
        },
        Err(e) => v1::PartitionProduceResult {
            partition,
            duplicate: false,
            base_offset: -1,
            log_append_time_ms: -1,
            error: Some(to_error(&e)),
        },
    }
}

/// The answer, from per-target results in request order.
fn response(shape: Vec<(String, usize)>, results: Vec<(u32, Answer)>) -> v1::ProduceResponse {
    let mut results = results.into_iter();
    let topics = shape
        .into_iter()
        .map(|(topic, n)| v1::TopicProduceResult {
            topic,
            partitions: results
                .by_ref()
                .take(n)
                .map(|(p, r)| partition_result(p, r))
                .collect(),
        })
        .collect();
    v1::ProduceResponse { topics }
}

/// The answer with Acks::None: before anything is written.
fn unacknowledged(shape: &[(String, usize)], targets: &[Target]) -> v1::ProduceResponse {
    let results = targets.iter().map(|t| (t.partition, Ok(None))).collect();
    response(shape.to_vec(), results)
}

/// Counts what was appended for the metrics (duplicates were not).
fn count_produced(topic: &str, batch: &[u8], info: Option<&AppendInfo>) {
    if info.is_none_or(|i| !i.duplicate) {
        metrics::produced(topic, batch.len(), record_count(batch));
    }
}

/// The produce paths, shared by the Records service.
#[derive(Debug, Clone)]
pub struct Producing {
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    lose: Arc<LoseHook>,
}

impl Producing {
    /// Produce paths over `broker`.
    pub fn new(broker: Arc<Broker>, shutdown: CancellationToken, lose: LoseHook) -> Self {
        Self {
            broker,
            shutdown,
            lose: Arc::new(lose),
        }
    }

    /// One unary request: every partition's append starts at once; the
    /// answer keeps request order.
    pub async fn produce(&self, req: v1::ProduceRequest) -> Result<v1::ProduceResponse, Status> {
        let Prepared {
            acks,
            shape,
            targets,
        } = prepare(&self.broker, req).map_err(to_status)?;
        let slots = self.broker.append_slots();
        // Batches for one partition are appended one after another, in
        // request order (so they get offsets in that order); different
        // partitions at once.
        // (A map, not a scan: a request may name thousands of partitions.)
        let mut group_of: std::collections::HashMap<PartitionKey, usize> =
            std::collections::HashMap::new();
        let mut by_partition: Vec<Vec<(usize, Target)>> = Vec::new();
        for (i, t) in targets.into_iter().enumerate() {
            let key = (t.topic.clone(), t.partition);
            let g = *group_of.entry(key).or_insert_with(|| {
                by_partition.push(Vec::new());
                by_partition.len() - 1
            });
            by_partition[g].push((i, t));
        }
        let groups = by_partition.into_iter().map(|list| async move {
            let mut out = Vec::with_capacity(list.len());
            for (i, t) in list {
                let result = match t.batch {
                    Err(e) => Err(e),
                    Ok((part, batch)) => {
                        let r = part.append(batch.clone(), acks, slots).await;
                        if let Ok(info) = &r {
                            count_produced(&t.topic, &batch, info.as_ref());
                        }
                        r
                    }
                };
                out.push((i, (t.partition, result)));
            }
            out
        });
        let mut indexed: Vec<_> = join_all(groups).await.into_iter().flatten().collect();
        indexed.sort_by_key(|(i, _)| *i);
        let results = indexed.into_iter().map(|(_, r)| r).collect();
        if self.lose.hit() {
            return Err(LoseHook::lost());
        }
        Ok(response(shape, results))
    }

    /// An ordered stream of requests. Reads the stream on a task of its
    /// own and returns the stream of answers.
    /// Every message is authorized (Write on its topics) as `caller`, and
    /// the stream ends when the caller's session does.
    pub fn produce_stream(
        &self,
        inbound: Streaming<v1::ProduceStreamRequest>,
        caller: Caller,
    ) -> ProduceStream {
        let (tx, rx) = mpsc::channel(STREAM_REQUESTS_IN_FLIGHT_MAX + 1);
        let this = self.clone();
        tokio::spawn(async move { this.read_stream(inbound, tx, caller).await });
        ReceiverStream::new(rx)
    }

    async fn read_stream(
        self,
        mut inbound: Streaming<v1::ProduceStreamRequest>,
        tx: mpsc::Sender<Result<v1::ProduceStreamResponse, Status>>,
        caller: Caller,
    ) {
        let window = Arc::new(Semaphore::new(STREAM_REQUESTS_IN_FLIGHT_MAX));
        let ended = caller.ended();
        tokio::pin!(ended);
        // Cancelled when the stream is to end early (a lost answer).
        let lost = CancellationToken::new();
        loop {
            let next = tokio::select! {
                m = inbound.message() => m,
                _ = self.shutdown.cancelled() => {
                    let shutting_down = to_status(BrokerError::ShuttingDown);
                    return end_after_answers(&window, &tx, shutting_down).await;
                }
                _ = lost.cancelled() => return,
                status = &mut ended => return end_after_answers(&window, &tx, status).await,
            };
            let msg = match next {
                Ok(Some(msg)) => msg,
                // The producer closed its side: answers still due go out,
                // and the stream ends when the last one has.
                Ok(None) => return,
                // A message over request_bytes_max, or the client gone:
                // the stream ends with that status (a gone client never
                // reads it).
                Err(status) => {
                    tracing::debug!(%status, "produce stream ended by its request side");
                    return end_after_answers(&window, &tx, status).await;
                }
            };
            let Ok(permit) = window.clone().acquire_owned().await else {
                return;
            };
            let id = msg.id;
            let prepared = msg
                .request
                .ok_or_else(|| {
                    BrokerError::InvalidArgument("produce stream message without a request".into())
                })
                .and_then(|req| {
                    caller.check_topics(
                        Operation::Write,
                        req.topics.iter().map(|t| t.topic.as_str()),
                    )?;
                    let bytes = prost::Message::encoded_len(&req) as u64;
                    caller.charge(QuotaKind::ProduceBytes, bytes)?;
                    prepare(&self.broker, req)
                });
            let prepared = match prepared {
                Ok(p) => p,
                Err(e) => {
                    let refused = v1::ProduceStreamResponse {
                        id,
                        response: None,
                        error: Some(to_error(&e)),
                    };
                    if tx.send(Ok(refused)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            if prepared.acks == Acks::None {
                let early = v1::ProduceStreamResponse {
                    id,
                    response: Some(unacknowledged(&prepared.shape, &prepared.targets)),
                    error: None,
                };
                if tx.send(Ok(early)).await.is_err() {
                    return;
                }
            }
            let Some(written) = self.write_in_order(prepared).await else {
                return;
            };
            let (this, tx, lost) = (self.clone(), tx.clone(), lost.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let acks = written.acks;
                let answer = this.complete(written).await;
                if acks == Acks::None {
                    return;
                }
                let item = if this.lose.hit() {
                    lost.cancel();
                    Err(LoseHook::lost())
                } else {
                    Ok(v1::ProduceStreamResponse {
                        id,
                        response: Some(answer),
                        error: None,
                    })
                };
                let _ = tx.send(item).await;
            });
        }
    }

    /// Writes a request's batches to their logs, in request order, without
    /// waiting for an fsync: the Kafka listener's produce, which awaits
    /// [`Producing::complete_answers`] on its connection's answer side.
    pub(crate) async fn write_request(
        &self,
        req: v1::ProduceRequest,
    ) -> Result<WrittenRequest, BrokerError> {
        let prepared = prepare(&self.broker, req)?;
        self.write_in_order(prepared)
            .await
            .ok_or(BrokerError::ShuttingDown)
    }

    /// Writes a request's batches, in order, before the next request is
    /// read. Waits for an append slot per batch first. `None` if the broker
    /// is shutting down.
    async fn write_in_order(&self, p: Prepared) -> Option<WrittenRequest> {
        let slots = self.broker.append_slots();
        let mut permits: Vec<OwnedSemaphorePermit> = Vec::with_capacity(p.targets.len());
        for _ in p.targets.iter().filter(|t| t.batch.is_ok()) {
            permits.push(slots.clone().acquire_owned().await.ok()?);
        }
        let targets = p.targets;
        let written = tokio::task::spawn_blocking(move || {
            targets
                .into_iter()
                .map(|t| {
                    let w = t
                        .batch
                        .and_then(|(part, batch)| Ok((part.write_blocking(&batch)?, part, batch)));
                    (t.topic, t.partition, w)
                })
                .collect::<Vec<_>>()
        })
        .await
        .ok()?;
        Some(WrittenRequest {
            acks: p.acks,
            shape: p.shape,
            written,
            _permits: permits,
        })
    }

    /// The fsyncs a written request's acks ask for, then its answer.
    async fn complete(&self, w: WrittenRequest) -> v1::ProduceResponse {
        let (shape, results) = self.complete_answers(w).await;
        response(shape, results)
    }

    /// The fsyncs a written request's acks ask for, then each target's
    /// answer in request order (with the request's shape: each topic and
    /// how many targets it has).
    pub(crate) async fn complete_answers(
        &self,
        w: WrittenRequest,
    ) -> (Vec<(String, usize)>, Vec<(u32, Answer)>) {
        let WrittenRequest {
            acks,
            shape,
            written,
            _permits,
        } = w;
        let ids: Vec<u32> = written.iter().map(|(_, p, _)| *p).collect();
        let results = tokio::task::spawn_blocking(move || {
            let results: Vec<_> = written
                .into_iter()
                .map(|(topic, partition, w)| {
                    let r = w.and_then(|(written, part, batch)| {
                        let info = part.complete_blocking(written, acks)?;
                        count_produced(&topic, &batch, Some(&info));
                        Ok((acks != Acks::None).then_some(info))
                    });
                    (partition, r)
                })
                .collect();
            drop(_permits);
            results
        })
        .await
        .unwrap_or_else(|e| {
            // Every batch was written; whether it is durable is unknown.
            tracing::error!(error = %e, "produce completion task failed");
            ids.into_iter()
                .map(|p| {
                    (
                        p,
                        Err(BrokerError::Internal(format!(
                            "produce completion task: {e}"
                        ))),
                    )
                })
                .collect()
        });
        if acks == Acks::None {
            for (_, r) in &results {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "append with acks=none failed");
                }
            }
        }
        (shape, results)
    }
}

/// A request whose batches are in the log, awaiting completion.
pub(crate) struct WrittenRequest {
    acks: Acks,
    shape: Vec<(String, usize)>,
    #[allow(clippy::type_complexity)]
    written: Vec<(
        String,
        u32,
        Result<(Written, Arc<Partition>, Bytes), BrokerError>,
    )>,
    _permits: Vec<OwnedSemaphorePermit>,
}

/// Ends a produce stream with `status` once every answer already due has
/// gone out: each request holds a `window` permit until its answer is
/// sent, so holding them all means none is left.
async fn end_after_answers(
    window: &Semaphore,
    tx: &mpsc::Sender<Result<v1::ProduceStreamResponse, Status>>,
    status: Status,
) {
    let _all = window
        .acquire_many(STREAM_REQUESTS_IN_FLIGHT_MAX as u32)
        .await;
    let _ = tx.send(Err(status)).await;
}
