//! The `strata.v1.Records` service: produce, fetch, subscribe, list offsets.
//!
//! Produce, unary and streamed, lives in [`super::produce`]; this service
//! hands it the requests.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use strata_proto::Batch;
use strata_proto::BatchCursor;
use strata_proto::v1::{self, records_server::Records};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::auth::{Caller, caller};
use super::metrics;
use super::produce::{LoseHook, ProduceStream, Producing};
use super::status::{to_error, to_status};
use crate::core::budget::{Held, ResponseBudget};
use crate::core::security::{Operation, QuotaKind, Resource};
use crate::core::{Broker, BrokerError, Partition};

/// Bytes per subscription message when the request does not say.
const SUBSCRIBE_DEFAULT_BYTES: u32 = 1 << 20;

/// The Records service.
#[derive(Debug, Clone)]
pub struct RecordsService {
    broker: Arc<Broker>,
    /// Cancelled at shutdown: long-polls return, subscriptions end.
    shutdown: CancellationToken,
    /// Subscriptions open now (bounded by `subscriptions_max`).
    subscriptions: Arc<AtomicU32>,
    /// Produce, unary and streamed.
    producing: Producing,
    /// What fetch answers and queued subscription messages may hold.
    budget: ResponseBudget,
}

impl RecordsService {
    /// A service over `broker`.
    pub fn new(broker: Arc<Broker>, shutdown: CancellationToken, lose_every: u64) -> Self {
        Self {
            budget: broker.response_budget().clone(),
            producing: Producing::new(broker.clone(), shutdown.clone(), LoseHook::new(lose_every)),
            broker,
            shutdown,
            subscriptions: Arc::new(AtomicU32::new(0)),
        }
    }

    /// A fetch: long-polls until `min_bytes` are there, `max_wait_ms`
    /// passes or the broker shuts down; each partition's answer is its
    /// whole batches from the one holding the asked offset. The gRPC
    /// `Fetch` and the Kafka listener's Fetch both answer through this.
    pub(crate) async fn fetch_batches(
        &self,
        req: v1::FetchRequest,
    ) -> Result<v1::FetchResponse, BrokerError> {
        let limits = self.broker.limits();
        let max_bytes = match req.max_bytes {
            0 => limits.fetch_bytes_max,
            n => n.min(limits.fetch_bytes_max),
        } as usize;
        // Never wait for more than the answer may hold.
        let min_bytes = (req.min_bytes as usize).min(max_bytes);
        let wait = Duration::from_millis(u64::from(req.max_wait_ms.min(limits.fetch_wait_ms_max)));
        let deadline = tokio::time::Instant::now() + wait;
        check_fetch_targets(&req, limits.fetch_partitions_max)?;
        // Each target's partition, or the error to answer for it on every
        // round of the long-poll (already in its wire form, so cloneable).
        let targets: Vec<(
            String,
            v1::FetchPartition,
            Result<Arc<Partition>, v1::Error>,
        )> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.topic.clone(),
                        *p,
                        self.broker
                            .partition(&t.topic, p.partition)
                            .map_err(|e| to_error(&e)),
                    )
                })
            })
            .collect();
        loop {
            // Watch before reading, so an append after the read wakes us.
            let mut watches: Vec<_> = targets
                .iter()
                .filter_map(|(_, _, p)| p.as_ref().ok())
                .map(|p| p.watch())
                .collect();
            let mut total = 0usize;
            // This round's reads against the response budget: dropped with
            // the round's results, or kept until the answer is built.
            let mut held = Held::default();
            let mut failed = false;
            let mut results = Vec::with_capacity(targets.len());
            // What this round read, counted only if it is the answer.
            let mut sent = Vec::new();
            for (topic, fp, partition) in &targets {
                let mut out = v1::FetchPartitionResult {
                    partition: fp.partition,
                    ..Default::default()
                };
                let budget = max_bytes.saturating_sub(total);
                let part_max = if fp.max_bytes == 0 {
                    budget
                } else {
                    (fp.max_bytes as usize).min(budget)
                };
                let read = match partition {
                    Err(e) => Err(e.clone()),
                    Ok(_) if fp.offset < 0 => Err(to_error(&BrokerError::InvalidArgument(
                        format!("{topic}/{}: offset {} is negative", fp.partition, fp.offset),
                    ))),
                    // Out of budget: report offsets only, read nothing.
                    Ok(p) if part_max == 0 && total > 0 => p
                        .stats()
                        .map(|s| (s.high_watermark, s.log_start, Bytes::new()))
                        .map_err(|e| to_error(&e)),
                    Ok(p) => 'read: {
                        // Memory for the answer, or (the broker's response
                        // budget being spent until the deadline) offsets only.
                        let reserve = self.budget.reserve(part_max.max(1));
                        let Ok(mut h) = tokio::time::timeout_at(deadline, reserve).await else {
                            break 'read p
                                .stats()
                                .map(|s| (s.high_watermark, s.log_start, Bytes::new()))
                                .map_err(|e| to_error(&e));
                        };
                        let r = p
                            .read(fp.offset as u64, part_max.max(1))
                            .await
                            .map(|r| (r.high_watermark.0, r.log_start.0, r.batches))
                            .map_err(|e| to_error(&e));
                        h.shrink_to(r.as_ref().map_or(0, |r| r.2.len()));
                        held.merge(h);
                        r
                    }
                };
                match read {
                    Ok((hwm, start, batches)) => {
                        out.high_watermark = hwm as i64;
                        out.log_start_offset = start as i64;
                        total += batches.len();
                        sent.push((
                            topic,
                            batches.len(),
                            fp.offset.max(0) as u64,
                            batches.clone(),
                        ));
                        if req.decode {
                            let max = limits.batch_decompressed_bytes_max;
                            match consumed_blocking(batches, fp.offset as u64, max).await {
                                Ok(records) => out.records = records,
                                Err(e) => out.error = Some(to_error(&e)),
                            }
                        } else {
                            out.batches = batches;
                        }
                    }
                    Err(e) => {
                        failed = true;
                        out.error = Some(e);
                    }
                }
                results.push((topic.clone(), out));
            }
            let done = failed || total >= min_bytes || tokio::time::Instant::now() >= deadline;
            if done || self.shutdown.is_cancelled() {
                for (topic, bytes, from, batches) in sent {
                    let records = span(&batches, from).map_or(0, |(_, n)| n);
                    metrics::consumed(topic, bytes, records);
                }
                let mut topics: Vec<v1::FetchTopicResult> = Vec::new();
                for (topic, r) in results {
                    match topics.last_mut() {
                        Some(t) if t.topic == topic => t.partitions.push(r),
                        _ => topics.push(v1::FetchTopicResult {
                            topic,
                            partitions: vec![r],
                        }),
                    }
                }
                let answer = v1::FetchResponse { topics };
                drop(held);
                return Ok(answer);
            }
            // Nothing of this round is answered: give its memory back
            // before waiting.
            drop((results, sent, held));
            tokio::select! {
                _ = any_changed(&mut watches) => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.shutdown.cancelled() => {}
            }
        }
    }

    fn check_running(&self) -> Result<(), Status> {
        if self.shutdown.is_cancelled() {
            return Err(to_status(BrokerError::ShuttingDown));
        }
        Ok(())
    }
}

/// Refuses a fetch that names more partitions than `fetch_partitions_max`,
/// or one partition twice: each listed partition costs a read per round of
/// the long-poll, so the list's length is the request's real size.
fn check_fetch_targets(req: &v1::FetchRequest, max: u32) -> Result<(), BrokerError> {
    let count: usize = req.topics.iter().map(|t| t.partitions.len()).sum();
    if count as u64 > u64::from(max) {
        return Err(BrokerError::LimitExceeded {
            limit: "fetch_partitions_max",
            max: max.into(),
            what: format!("{count} partitions in one fetch"),
        });
    }
    let mut seen = std::collections::HashSet::with_capacity(count);
    for t in &req.topics {
        for p in &t.partitions {
            if !seen.insert((t.topic.as_str(), p.partition)) {
                return Err(BrokerError::InvalidArgument(format!(
                    "{}/{} is listed twice in one fetch",
                    t.topic, p.partition
                )));
            }
        }
    }
    Ok(())
}

/// [`consumed`] on a blocking thread: decoding a large answer into records
/// is CPU work that must not hold up the async workers.
async fn consumed_blocking(
    batches: Bytes,
    from: u64,
    decompressed_bytes_max: u32,
) -> Result<Vec<v1::ConsumedRecord>, BrokerError> {
    tokio::task::spawn_blocking(move || consumed(&batches, from, decompressed_bytes_max as usize))
        .await
        .map_err(|e| BrokerError::Internal(format!("decode task: {e}")))?
}

/// The records of `batches` from offset `from`, compressed batches
/// decompressed within the broker's `batch_decompressed_bytes_max` (what
/// they were validated against when they were produced).
pub(crate) fn consumed(
    batches: &Bytes,
    from: u64,
    decompressed_bytes_max: usize,
) -> Result<Vec<v1::ConsumedRecord>, BrokerError> {
    let mut out = Vec::new();
    for batch in Batch::decode_all(batches.clone())
        .map_err(|e| BrokerError::Internal(format!("stored batch: {e}")))?
    {
        for r in batch.records_within(decompressed_bytes_max) {
            let r = r.map_err(|e| BrokerError::Internal(format!("stored record: {e}")))?;
            if r.offset as u64 >= from {
                out.push(v1::ConsumedRecord {
                    offset: r.offset,
                    timestamp_ms: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|h| v1::Header {
                            key: h.key,
                            value: h.value,
                        })
                        .collect(),
                });
            }
        }
    }
    Ok(out)
}

/// From the batch headers alone: the offset after the last batch of
/// `batches`, and how many of their records are at or after `from` (a
/// read's first batch may start before it; in a compacted batch that
/// straddles `from` the count is an upper bound). `None` when empty.
fn span(batches: &[u8], from: u64) -> Option<(u64, u64)> {
    let mut cursor = BatchCursor::new(batches);
    let mut next = None;
    let mut records = 0;
    while let Some((h, _)) = cursor.next_batch().ok()? {
        let (base, end) = (
            h.base_offset.max(0) as u64,
            h.last_offset().max(0) as u64 + 1,
        );
        let count = h.record_count.max(0) as u64;
        records += if base >= from {
            count
        } else {
            count.min(end.saturating_sub(from))
        };
        next = Some(end);
    }
    next.map(|n| (n, records))
}

/// Waits until any receiver sees a new high watermark (or its partition
/// goes away). With no receivers, waits forever: callers race it with a
/// deadline or cancellation.
pub(crate) async fn any_changed(watches: &mut [watch::Receiver<u64>]) {
    if watches.is_empty() {
        return futures::future::pending().await;
    }
    let futs = watches.iter_mut().map(|w| Box::pin(w.changed()));
    let _ = select_all(futs).await;
}

type SubscribeStream =
    Pin<Box<dyn futures::Stream<Item = Result<v1::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Records for RecordsService {
    async fn produce(
        &self,
        req: Request<v1::ProduceRequest>,
    ) -> Result<Response<v1::ProduceResponse>, Status> {
        self.check_running()?;
        let c = caller(&req)?;
        let req = req.into_inner();
        c.check_topics(
            Operation::Write,
            req.topics.iter().map(|t| t.topic.as_str()),
        )
        .map_err(to_status)?;
        c.charge(
            QuotaKind::ProduceBytes,
            prost::Message::encoded_len(&req) as u64,
        )
        .map_err(to_status)?;
        self.producing.produce(req).await.map(Response::new)
    }

    type ProduceStreamStream = ProduceStream;

    async fn produce_stream(
        &self,
        req: Request<tonic::Streaming<v1::ProduceStreamRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        self.check_running()?;
        let c = caller(&req)?;
        Ok(Response::new(
            self.producing.produce_stream(req.into_inner(), c),
        ))
    }

    async fn init_producer(
        &self,
        req: Request<v1::InitProducerRequest>,
    ) -> Result<Response<v1::InitProducerResponse>, Status> {
        self.check_running()?;
        caller(&req)?;
        let broker = self.broker.clone();
        let producer = tokio::task::spawn_blocking(move || broker.init_producer())
            .await
            .map_err(|e| to_status(BrokerError::Internal(format!("init producer task: {e}"))))?
            .map_err(to_status)?;
        Ok(Response::new(v1::InitProducerResponse {
            producer_id: producer.id,
            producer_epoch: producer.epoch.into(),
        }))
    }

    async fn fetch(
        &self,
        req: Request<v1::FetchRequest>,
    ) -> Result<Response<v1::FetchResponse>, Status> {
        self.check_running()?;
        let c = caller(&req)?;
        let req = req.into_inner();
        c.check_topics(Operation::Read, req.topics.iter().map(|t| t.topic.as_str()))
            .map_err(to_status)?;
        // A fetch's size is known once served: a fetch in debt waits.
        c.charge(QuotaKind::FetchBytes, 0).map_err(to_status)?;
        let resp = self.fetch_batches(req).await.map_err(to_status)?;
        c.charge_after(
            QuotaKind::FetchBytes,
            prost::Message::encoded_len(&resp) as u64,
        );
        Ok(Response::new(resp))
    }

    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        req: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        self.check_running()?;
        let c = caller(&req)?;
        let req = req.into_inner();
        c.check_topics(
            Operation::Read,
            req.partitions.iter().map(|p| p.topic.as_str()),
        )
        .map_err(to_status)?;
        let limits = self.broker.limits().clone();
        if req.partitions.is_empty() {
            return Err(to_status(BrokerError::InvalidArgument(
                "a subscription needs at least one partition".into(),
            )));
        }
        if req.partitions.len() as u64 > u64::from(limits.subscription_partitions_max) {
            return Err(to_status(BrokerError::LimitExceeded {
                limit: "subscription_partitions_max",
                max: limits.subscription_partitions_max.into(),
                what: format!("{} partitions in one subscription", req.partitions.len()),
            }));
        }
        let mut positions = Vec::with_capacity(req.partitions.len());
        for sp in &req.partitions {
            let partition = self
                .broker
                .partition(&sp.topic, sp.partition)
                .map_err(to_status)?;
            let stats = partition.stats().map_err(to_status)?;
            use v1::subscribe_partition::Start;
            let offset = match sp.start {
                None | Some(Start::Latest(_)) => stats.high_watermark,
                Some(Start::Earliest(_)) => stats.log_start,
                Some(Start::Offset(o)) if o < 0 => {
                    return Err(to_status(BrokerError::InvalidArgument(format!(
                        "{}/{}: offset {o} is negative",
                        sp.topic, sp.partition
                    ))));
                }
                Some(Start::Offset(o)) => o as u64,
                Some(Start::TimestampMs(t)) => partition
                    .offset_for_timestamp(t)
                    .await
                    .map_err(to_status)?
                    .unwrap_or(stats.high_watermark),
            };
            positions.push((sp.topic.clone(), partition, offset));
        }
        let open = self.subscriptions.fetch_add(1, Ordering::AcqRel);
        if open >= limits.subscriptions_max {
            self.subscriptions.fetch_sub(1, Ordering::AcqRel);
            return Err(to_status(BrokerError::Busy {
                limit: "subscriptions_max",
                max: limits.subscriptions_max.into(),
                what: "opening another subscription".into(),
            }));
        }
        let max_bytes = match req.max_bytes {
            0 => SUBSCRIBE_DEFAULT_BYTES,
            n => n.min(limits.fetch_bytes_max),
        } as usize;
        // The bound on what a slow subscriber can make us hold: this many
        // messages of max_bytes, plus what HTTP/2 flow control lets out.
        // Each message holds its bytes against the response budget until
        // the stream hands it to the transport.
        let (tx, rx) = mpsc::channel(limits.subscription_buffer_messages as usize);
        let out = Out {
            tx,
            budget: self.budget.clone(),
        };
        let shutdown = self.shutdown.clone();
        let count = self.subscriptions.clone();
        // Decoded answers decompress within the broker's bound.
        let decode = req
            .decode
            .then_some(self.broker.limits().batch_decompressed_bytes_max);
        metrics::subscriptions(1.0);
        let end = out.tx.clone();
        tokio::spawn(async move {
            let _open = CountGuard(count);
            // A revoked or expired token ends the subscription.
            tokio::select! {
                () = stream_partitions(positions, max_bytes, decode, out, shutdown, &c) => {}
                status = c.ended() => { let _ = end.send((Err(status), Held::default())).await; }
            }
        });
        let stream =
            tokio_stream::StreamExt::map(ReceiverStream::new(rx), |(item, _held): (_, Held)| item);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_offsets(
        &self,
        req: Request<v1::ListOffsetsRequest>,
    ) -> Result<Response<v1::ListOffsetsResponse>, Status> {
        self.check_running()?;
        let c = caller(&req)?;
        let mut out = Vec::new();
        for lp in req.into_inner().partitions {
            let result = async {
                c.check(Operation::Describe, Resource::topic(&lp.topic))?;
                let p = self.broker.partition(&lp.topic, lp.partition)?;
                let stats = p.stats()?;
                use v1::list_offsets_partition::Spec;
                match lp.spec {
                    Some(Spec::Earliest(_)) => Ok(stats.log_start as i64),
                    Some(Spec::Latest(_)) => Ok(stats.high_watermark as i64),
                    Some(Spec::TimestampMs(t)) => {
                        Ok(p.offset_for_timestamp(t).await?.map_or(-1, |o| o as i64))
                    }
                    None => Err(BrokerError::InvalidArgument(format!(
                        "{}/{}: say earliest, latest or timestamp_ms",
                        lp.topic, lp.partition
                    ))),
                }
            }
            .await;
            out.push(v1::ListOffsetsResult {
                topic: lp.topic,
                partition: lp.partition,
                offset: *result.as_ref().unwrap_or(&-1),
                error: result.err().map(|e| to_error(&e)),
            });
        }
        Ok(Response::new(v1::ListOffsetsResponse { partitions: out }))
    }
}

/// Decrements the open-subscription count when a subscription ends.
struct CountGuard(Arc<AtomicU32>);

impl Drop for CountGuard {
    fn drop(&mut self) {
        metrics::subscriptions(-1.0);
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type Message = Result<v1::SubscribeResponse, Status>;

/// A subscription's side of its channel, and the budget its messages
/// hold bytes against while queued.
struct Out {
    tx: mpsc::Sender<(Message, Held)>,
    budget: ResponseBudget,
}

impl Out {
    /// Ends the subscription with `e`.
    async fn fail(&self, e: BrokerError) {
        let _ = self.tx.send((Err(to_status(e)), Held::default())).await;
    }

    /// Ends the subscription because the broker shuts down.
    fn shutting_down(&self) {
        let _ = self
            .tx
            .try_send((Err(to_status(BrokerError::ShuttingDown)), Held::default()));
    }
}

/// Sends each partition's new batches, round robin, until the client goes
/// away, an error occurs, or the broker shuts down. `tx.send` waits while
/// the client is slow: that wait is the flow control.
async fn stream_partitions(
    mut positions: Vec<(String, Arc<Partition>, u64)>,
    max_bytes: usize,
    decode: Option<u32>,
    out: Out,
    shutdown: CancellationToken,
    caller: &Caller,
) {
    loop {
        let mut watches: Vec<_> = positions.iter().map(|(_, p, _)| p.watch()).collect();
        let mut sent = false;
        for (topic, partition, offset) in positions.iter_mut() {
            // Over its fetch quota, a subscription is paced, not ended.
            caller.pace(QuotaKind::FetchBytes).await;
            let mut held = out.budget.reserve(max_bytes).await;
            let r = match partition.read(*offset, max_bytes).await {
                Ok(r) => r,
                Err(e) => return out.fail(e).await,
            };
            held.shrink_to(r.batches.len());
            let Some((next, records)) = span(&r.batches, *offset) else {
                continue;
            };
            metrics::consumed(topic, r.batches.len(), records);
            let mut msg = v1::SubscribeResponse {
                topic: topic.clone(),
                partition: partition.id(),
                high_watermark: r.high_watermark.0 as i64,
                log_start_offset: r.log_start.0 as i64,
                next_offset: next as i64,
                ..Default::default()
            };
            if let Some(max) = decode {
                match consumed_blocking(r.batches, *offset, max).await {
                    Ok(records) => msg.records = records,
                    Err(e) => return out.fail(e).await,
                }
            } else {
                msg.batches = r.batches;
            }
            caller.charge_after(
                QuotaKind::FetchBytes,
                prost::Message::encoded_len(&msg) as u64,
            );
            tokio::select! {
                sent_ok = out.tx.send((Ok(msg), held)) => if sent_ok.is_err() { return },
                _ = shutdown.cancelled() => return out.shutting_down(),
            }
            *offset = next;
            sent = true;
        }
        if !sent {
            tokio::select! {
                _ = any_changed(&mut watches) => {}
                _ = out.tx.closed() => return,
                _ = shutdown.cancelled() => return out.shutting_down(),
            }
        }
    }
}
