//! The share consumer: a member of a share group (a work queue on the
//! log). Any number of share consumers read the same partitions; each
//! record polled is leased to this consumer alone and comes with an
//! [`AckHandle`]: `accept`, `release` (with an optional delay), `reject`
//! (dead-letter it) or `renew` (extend the lease).
//!
//! Accepts, releases and rejects are queued and go to the broker with the
//! next [`ShareConsumer::poll`] (or at once with [`ShareConsumer::commit`]);
//! their results come back from [`ShareConsumer::take_ack_results`] and
//! `commit`. A renew goes at once. A background task keeps the session
//! with heartbeats and, with [`ShareConfig::auto_renew`], renews every
//! lease held for more than half the group's lease. [`ShareConsumer::close`]
//! sends what is queued, releases what is still held and leaves.
//!
//! No order is promised across redeliveries: a released record comes back
//! after the records that came after it. Records of one poll are in offset
//! order per partition.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use strata_proto::Batch;
use strata_proto::v1;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::record::ConsumerRecord;

/// How a share consumer joins and fetches.
#[derive(Debug, Clone)]
pub struct ShareConfig {
    /// The share group.
    pub group: String,
    /// The topics to read.
    pub topics: Vec<String>,
    /// This client's name, shown by `describe`.
    pub client_id: String,
    /// 0: the broker's default.
    pub session_timeout_ms: u32,
    /// Records one poll may lease.
    pub max_records: u32,
    /// How long a poll waits for records.
    pub max_wait: Duration,
    /// Renew leases held for more than half the lease, from the heartbeat
    /// task, until they are acked.
    pub auto_renew: bool,
    /// Settings of the group if this consumer creates it (empty or 0: the
    /// broker's defaults).
    pub dead_letter_topic: String,
    /// Deliveries before a record is dead-lettered (0: the broker's).
    pub delivery_limit: u32,
    /// The lease on each record (`None`: the broker's).
    pub lease: Option<Duration>,
    /// "earliest" (default) or "latest".
    pub start: String,
    /// The bound on a decompressed batch.
    pub batch_decompressed_bytes_max: usize,
}

impl ShareConfig {
    /// A consumer of `topics` in `group`, otherwise with defaults.
    pub fn new(group: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            group: group.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            client_id: "strata-share-consumer".into(),
            session_timeout_ms: 0,
            max_records: 500,
            max_wait: Duration::from_millis(500),
            auto_renew: false,
            dead_letter_topic: String::new(),
            delivery_limit: 0,
            lease: None,
            start: String::new(),
            batch_decompressed_bytes_max: 64 << 20,
        }
    }
}

/// One lease: what an ack names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: i64,
    /// Which delivery of the record this is (1 for the first).
    pub delivery: u32,
}

/// A record leased to this consumer.
#[derive(Debug)]
pub struct ShareRecord {
    /// The record.
    pub record: ConsumerRecord,
    /// Its lease; [`ShareRecord::ack`] acts on it.
    pub lease: Lease,
    handle: AckHandle,
}

impl ShareRecord {
    /// The handle that acknowledges this record.
    pub fn ack(&self) -> &AckHandle {
        &self.handle
    }

    /// Splits the record from its handle (to ack on another task).
    pub fn into_parts(self) -> (ConsumerRecord, AckHandle) {
        (self.record, self.handle)
    }
}

#[derive(Debug)]
struct Inner {
    client: Client,
    config: ShareConfig,
    /// Our member id and the group's lease, from the last join.
    member: Mutex<(String, Duration)>,
    /// Acks to send with the next fetch.
    queued: Mutex<Vec<(Lease, v1::ShareAck)>>,
    /// Leases polled and not yet acked, with when they were leased or
    /// last renewed.
    held: Mutex<HashMap<Lease, Instant>>,
    /// Results of acks sent with polls, for `take_ack_results`.
    results: Mutex<Vec<(Lease, Result<()>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Acknowledges one leased record. Accept, release and reject take the
/// handle (a lease is acked once); they are queued for the next poll.
#[derive(Debug, Clone)]
pub struct AckHandle {
    inner: Arc<Inner>,
    lease: Lease,
}

impl AckHandle {
    fn queue(&self, kind: v1::AckType, delay_ms: Option<u64>, error: Option<String>) {
        lock(&self.inner.held).remove(&self.lease);
        let ack = wire_ack(&self.lease, kind, delay_ms, error);
        lock(&self.inner.queued).push((self.lease.clone(), ack));
    }

    /// Done: never deliver it again.
    pub fn accept(self) {
        self.queue(v1::AckType::Accept, None, None);
    }

    /// Not done: deliver it again after `delay` (`None`: the group's
    /// backoff), with `error` as the reason kept for a dead letter.
    pub fn release(self, delay: Option<Duration>, error: Option<String>) {
        let delay_ms = delay.map(|d| d.as_millis() as u64);
        self.queue(v1::AckType::Release, delay_ms, error);
    }

    /// Poison: dead-letter it now, with `reason`.
    pub fn reject(self, reason: impl Into<String>) {
        self.queue(v1::AckType::Reject, None, Some(reason.into()));
    }

    /// Extends the lease now (not queued): for a handler that needs longer.
    pub async fn renew(&self) -> Result<()> {
        let ack = wire_ack(&self.lease, v1::AckType::Renew, None, None);
        let mut results = send_acks(&self.inner, vec![(self.lease.clone(), ack)]).await?;
        let (_, result) = results.pop().ok_or(Error::Closed)?;
        if result.is_ok() {
            lock(&self.inner.held).insert(self.lease.clone(), Instant::now());
        }
        result
    }

    /// The lease this handle acks.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }
}

fn wire_ack(
    l: &Lease,
    kind: v1::AckType,
    delay_ms: Option<u64>,
    error: Option<String>,
) -> v1::ShareAck {
    v1::ShareAck {
        topic: l.topic.clone(),
        partition: l.partition,
        offset: l.offset,
        delivery: l.delivery,
        r#type: kind as i32,
        delay_ms,
        error,
    }
}

/// Per-ack results of an answer, paired with what was sent.
fn paired(sent: Vec<Lease>, results: Vec<v1::ShareAckResult>) -> Vec<(Lease, Result<()>)> {
    sent.into_iter()
        .zip(results)
        .map(|(l, r)| {
            let result = match r.error {
                Some(e) => Err(Error::partition(&l.topic, l.partition, &e)),
                None => Ok(()),
            };
            (l, result)
        })
        .collect()
}

async fn send_acks(
    inner: &Inner,
    acks: Vec<(Lease, v1::ShareAck)>,
) -> Result<Vec<(Lease, Result<()>)>> {
    let (leases, acks): (Vec<Lease>, Vec<v1::ShareAck>) = acks.into_iter().unzip();
    let member_id = lock(&inner.member).0.clone();
    let resp = inner
        .client
        .share_rpc()
        .share_acknowledge(v1::ShareAcknowledgeRequest {
            group: inner.config.group.clone(),
            member_id,
            acks,
        })
        .await?
        .into_inner();
    Ok(paired(leases, resp.acks))
}

/// A member of a share group.
#[derive(Debug)]
pub struct ShareConsumer {
    inner: Arc<Inner>,
    heartbeat: JoinHandle<()>,
}

async fn join(inner: &Inner) -> Result<u32> {
    let c = &inner.config;
    let resp = inner
        .client
        .share_rpc()
        .share_heartbeat(v1::ShareHeartbeatRequest {
            group: c.group.clone(),
            member_id: String::new(),
            leave: false,
            topics: c.topics.clone(),
            client_id: c.client_id.clone(),
            session_timeout_ms: c.session_timeout_ms,
            create: Some(v1::ShareGroupSettings {
                dead_letter_topic: c.dead_letter_topic.clone(),
                delivery_limit: c.delivery_limit,
                lease_ms: c.lease.map_or(0, |l| l.as_millis() as u64),
                start: c.start.clone(),
            }),
        })
        .await?
        .into_inner();
    let lease_ms = resp.settings.map_or(30_000, |s| s.lease_ms);
    *lock(&inner.member) = (resp.member_id, Duration::from_millis(lease_ms));
    // Leases of an earlier membership are gone with it.
    lock(&inner.held).clear();
    Ok(resp.heartbeat_interval_ms.max(1))
}

fn fenced(e: &Error) -> bool {
    e.reason() == v1::ErrorReason::MemberFenced
}

/// Heartbeats every `interval`, rejoins when fenced, and renews leases
/// held too long when asked to.
async fn heartbeat_loop(inner: Arc<Inner>, mut interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let member_id = lock(&inner.member).0.clone();
        let beat = inner
            .client
            .share_rpc()
            .share_heartbeat(v1::ShareHeartbeatRequest {
                group: inner.config.group.clone(),
                member_id,
                client_id: inner.config.client_id.clone(),
                session_timeout_ms: inner.config.session_timeout_ms,
                ..Default::default()
            })
            .await
            .map_err(Error::from);
        match beat {
            Ok(r) => {
                interval = Duration::from_millis(r.into_inner().heartbeat_interval_ms.max(1).into())
            }
            Err(e) if fenced(&e) => {
                tracing::info!(group = %inner.config.group, "share session lost; joining again");
                if let Ok(i) = join(&inner).await {
                    interval = Duration::from_millis(i.into());
                }
            }
            Err(e) => tracing::debug!(error = %e, "share heartbeat failed; will retry"),
        }
        if inner.config.auto_renew {
            renew_old(&inner).await;
        }
    }
}

/// Renews every held lease older than half the group's lease.
async fn renew_old(inner: &Inner) {
    let half = lock(&inner.member).1 / 2;
    let old: Vec<(Lease, v1::ShareAck)> = lock(&inner.held)
        .iter()
        .filter(|(_, at)| at.elapsed() >= half)
        .map(|(l, _)| (l.clone(), wire_ack(l, v1::AckType::Renew, None, None)))
        .collect();
    if old.is_empty() {
        return;
    }
    match send_acks(inner, old).await {
        Ok(results) => {
            let now = Instant::now();
            let mut held = lock(&inner.held);
            for (l, r) in results {
                if let (true, Some(at)) = (r.is_ok(), held.get_mut(&l)) {
                    *at = now;
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "renewing leases failed; will retry"),
    }
}

impl ShareConsumer {
    /// Joins the group (creating it if it does not exist).
    pub async fn new(client: Client, config: ShareConfig) -> Result<Self> {
        if config.topics.is_empty() {
            return Err(Error::InvalidArgument(
                "a share consumer needs at least one topic".into(),
            ));
        }
        let inner = Arc::new(Inner {
            client,
            config,
            member: Mutex::new((String::new(), Duration::ZERO)),
            queued: Mutex::new(Vec::new()),
            held: Mutex::new(HashMap::new()),
            results: Mutex::new(Vec::new()),
        });
        let interval = join(&inner).await?;
        let heartbeat = tokio::spawn(heartbeat_loop(
            inner.clone(),
            Duration::from_millis(interval.into()),
        ));
        Ok(Self { inner, heartbeat })
    }

    /// The broker's id for this member.
    pub fn member_id(&self) -> String {
        lock(&self.inner.member).0.clone()
    }

    /// The group's lease.
    pub fn lease(&self) -> Duration {
        lock(&self.inner.member).1
    }

    /// Sends the queued acks, then leases up to `max_records` records,
    /// waiting up to `max_wait` for some. Results of the acks it sent are
    /// kept for [`ShareConsumer::take_ack_results`].
    pub async fn poll(&mut self) -> Result<Vec<ShareRecord>> {
        let queued: Vec<(Lease, v1::ShareAck)> = std::mem::take(&mut *lock(&self.inner.queued));
        let sent: Vec<Lease> = queued.iter().map(|(l, _)| l.clone()).collect();
        let acks: Vec<v1::ShareAck> = queued.iter().map(|(_, a)| a.clone()).collect();
        let c = &self.inner.config;
        let req = v1::ShareFetchRequest {
            group: c.group.clone(),
            member_id: self.member_id(),
            acks,
            max_records: c.max_records,
            max_wait_ms: c.max_wait.as_millis() as u32,
            decode: false,
        };
        let resp = match self
            .inner
            .client
            .share_rpc()
            .share_fetch(req)
            .await
            .map_err(Error::from)
        {
            Ok(r) => r.into_inner(),
            Err(e) if fenced(&e) => {
                // The session ended (or the broker restarted): what we
                // held is gone, and so are the acks we just sent.
                join(&self.inner).await?;
                let lost = sent.into_iter().map(|l| (l, Err(e.clone())));
                lock(&self.inner.results).extend(lost);
                return Ok(Vec::new());
            }
            Err(e) => {
                // Not sent, or sent and not answered: queue them again for
                // the next poll. (If the broker did apply one, sending it
                // again is refused as stale and changes nothing.)
                lock(&self.inner.queued).splice(0..0, queued);
                return Err(e);
            }
        };
        lock(&self.inner.results).extend(paired(sent, resp.acks));
        let mut out = Vec::new();
        for p in resp.partitions {
            self.records_of(p, &mut out)?;
        }
        let now = Instant::now();
        let mut held = lock(&self.inner.held);
        for r in &out {
            held.insert(r.lease.clone(), now);
        }
        Ok(out)
    }

    fn records_of(&self, p: v1::ShareFetchPartition, out: &mut Vec<ShareRecord>) -> Result<()> {
        let leases: HashMap<i64, u32> = p.leases.iter().map(|l| (l.offset, l.delivery)).collect();
        let bad = |e: strata_proto::CodecError| {
            Error::local_partition(
                &p.topic,
                p.partition,
                tonic::Code::DataLoss,
                format!("undecodable batch from the broker: {e}"),
            )
        };
        for b in Batch::decode_all(p.batches.clone()).map_err(bad)? {
            for r in b.records_within(self.inner.config.batch_decompressed_bytes_max) {
                let r = r.map_err(bad)?;
                let Some(&delivery) = leases.get(&r.offset) else {
                    continue; // in the batch, but not leased to us
                };
                let lease = Lease {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    offset: r.offset,
                    delivery,
                };
                let handle = AckHandle {
                    inner: self.inner.clone(),
                    lease: lease.clone(),
                };
                let record = ConsumerRecord {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    offset: r.offset,
                    timestamp_ms: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                };
                out.push(ShareRecord {
                    record,
                    lease,
                    handle,
                });
            }
        }
        Ok(())
    }

    /// Results of the acks sent with earlier polls, taken.
    pub fn take_ack_results(&self) -> Vec<(Lease, Result<()>)> {
        std::mem::take(&mut *lock(&self.inner.results))
    }

    /// Sends the queued acks now and returns their results.
    pub async fn commit(&self) -> Result<Vec<(Lease, Result<()>)>> {
        let queued: Vec<(Lease, v1::ShareAck)> = std::mem::take(&mut *lock(&self.inner.queued));
        if queued.is_empty() {
            return Ok(Vec::new());
        }
        send_acks(&self.inner, queued).await
    }

    /// Leases polled and not yet acked.
    pub fn held(&self) -> Vec<Lease> {
        lock(&self.inner.held).keys().cloned().collect()
    }

    /// Sends what is queued, releases what is still held (to be delivered
    /// again at once, to another member) and leaves the group.
    pub async fn close(self) -> Result<Vec<(Lease, Result<()>)>> {
        self.heartbeat.abort();
        let held: Vec<Lease> = lock(&self.inner.held).drain().map(|(l, _)| l).collect();
        {
            let mut q = lock(&self.inner.queued);
            for l in held {
                let ack = wire_ack(
                    &l,
                    v1::AckType::Release,
                    Some(0),
                    Some("consumer closed".into()),
                );
                q.push((l, ack));
            }
        }
        let results = self.commit().await?;
        let member_id = self.member_id();
        self.inner
            .client
            .share_rpc()
            .share_heartbeat(v1::ShareHeartbeatRequest {
                group: self.inner.config.group.clone(),
                member_id,
                leave: true,
                ..Default::default()
            })
            .await?;
        Ok(results)
    }
}

impl Drop for ShareConsumer {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}
