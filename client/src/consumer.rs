//! The consumer: either assign partitions yourself and position them, or
//! subscribe to topics as a member of a consumer group and read what the
//! broker assigns; then poll, or read records as a stream.
//!
//! Reading is long-polling `Fetch` over all assigned partitions, raw
//! batches decoded here (records before the position skipped). The stream
//! form prefetches on a task of its own into a channel of
//! `prefetch_records`, so a slow application bounds what is buffered.
//!
//! In a group (`subscribe`), a background task heartbeats (`crate::group`);
//! `poll` applies assignment changes at its start, before fetching:
//! revoked partitions go to the listener's `on_revoked`, get their
//! positions committed (with auto-commit), and are released; new ones get
//! their committed offsets (or the reset policy) and `on_assigned`. Since
//! this happens only between polls, a partition is released only after the
//! application has handled every record `poll` returned from it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::Stream;
use strata_proto::Batch;
use strata_proto::v1;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::admin::OffsetSpec;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::group::{Member, Membership, Tp};
use crate::record::ConsumerRecord;

/// Callbacks on assignment changes of a group consumer. They run inside
/// [`Consumer::poll`], on the application's task, between two polls: every
/// record returned before `on_revoked` has been handed to the application.
pub trait RebalanceListener: Send {
    /// Partitions now assigned to this consumer (positions already set from
    /// the committed offsets).
    fn on_assigned(&mut self, partitions: &[(String, u32)]) {
        let _ = partitions;
    }
    /// Partitions about to be released: flush state for them now. With
    /// auto-commit, the consumer commits their positions right after.
    fn on_revoked(&mut self, partitions: &[(String, u32)]) {
        let _ = partitions;
    }
    /// Partitions lost without a clean hand-over (the broker fenced this
    /// member, for example after a long pause): another member may already
    /// be reading them, and commits for them would be refused. By default,
    /// the same as `on_revoked`.
    fn on_lost(&mut self, partitions: &[(String, u32)]) {
        self.on_revoked(partitions);
    }
}

/// The listener of a consumer, kept in a box with a Debug face. The mutex
/// (never contended: only `&mut Consumer` reaches it) makes the consumer
/// `Sync` without asking listeners to be.
struct Listener(std::sync::Mutex<Box<dyn RebalanceListener>>);

impl Listener {
    fn get(&mut self) -> &mut dyn RebalanceListener {
        self.0.get_mut().unwrap_or_else(|p| p.into_inner()).as_mut()
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RebalanceListener")
    }
}

/// What to do when a position is outside the log (below the log start after
/// retention, or past the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// Move to the first offset still in the log.
    Earliest,
    /// Move to the end and read only new records (Kafka's default).
    #[default]
    Latest,
    /// Report [`Error::OffsetOutOfRange`] to the application.
    Error,
}

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// This offset.
    Offset(i64),
    /// The first record at or after this time (ms); the end if none.
    Timestamp(i64),
    /// The first record still in the log.
    Beginning,
    /// After the last record: only new records.
    End,
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Bytes per fetch across partitions.
    pub fetch_bytes_max: u32,
    /// Bytes per fetch for one partition.
    pub partition_fetch_bytes_max: u32,
    /// How long a fetch waits for data before answering empty.
    pub fetch_wait: Duration,
    /// Records the stream fetches ahead of the application, at most.
    pub prefetch_records: usize,
    /// What to do with a position outside the log, and, in a group, where
    /// to start a partition the group has no committed offset for.
    pub offset_reset: OffsetReset,
    /// In a group: commit the positions of what `poll` returned every
    /// `auto_commit_interval` (inside `poll`), before a partition is
    /// released, and at `close`. Off: call [`Consumer::commit`] yourself.
    pub auto_commit: bool,
    /// How often auto-commit commits.
    pub auto_commit_interval: Duration,
    /// In a group: how long the broker waits for a heartbeat before it
    /// gives this member's partitions to others (`None`: the broker's
    /// default, 45 s).
    pub session_timeout: Option<Duration>,
    /// In a group: how long this member may take to release a revoked
    /// partition (that is, to call `poll` again) before the broker removes
    /// it (`None`: the broker's default, 60 s).
    pub rebalance_timeout: Option<Duration>,
    /// Static membership: a stable id for this instance, so that a restart
    /// gets its partitions back without a rebalance.
    pub group_instance_id: Option<String>,
    /// The name the group shows for this member.
    pub client_id: String,
    /// The group's assignor: "sticky" (default), "range" or "roundrobin".
    pub assignor: String,
    /// The most a compressed batch's records may decompress to; a bigger
    /// one fails the poll as DATA_LOSS naming `batch_decompressed_bytes_max`.
    /// Default 64 MiB, the broker's default for what it accepts; raise it
    /// with the broker's.
    pub batch_decompressed_bytes_max: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            fetch_bytes_max: 16 << 20,
            partition_fetch_bytes_max: 4 << 20,
            fetch_wait: Duration::from_millis(500),
            prefetch_records: 10_000,
            offset_reset: OffsetReset::Latest,
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: None,
            rebalance_timeout: None,
            group_instance_id: None,
            client_id: "strata-client".into(),
            assignor: String::new(),
            batch_decompressed_bytes_max: strata_proto::batch::BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT,
        }
    }
}

/// Reads assigned partitions. Get one from [`Client::consumer`].
#[derive(Debug)]
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    /// Assigned partitions and the next offset to read from each.
    positions: BTreeMap<(String, u32), i64>,
    /// Group membership, once subscribed.
    group: Option<Member>,
    listener: Option<Listener>,
    /// What was last committed per partition, so unchanged positions are
    /// not committed again.
    committed: BTreeMap<Tp, i64>,
    last_auto_commit: Instant,
}

fn ms(d: Option<Duration>) -> u32 {
    d.map_or(0, |d| d.as_millis().clamp(1, u32::MAX as u128) as u32)
}

impl Consumer {
    pub(crate) fn new(client: Client, config: ConsumerConfig) -> Self {
        Self {
            client,
            config,
            positions: BTreeMap::new(),
            group: None,
            listener: None,
            committed: BTreeMap::new(),
            last_auto_commit: Instant::now(),
        }
    }

    /// Joins consumer group `group`, subscribed to `topics`: the broker
    /// assigns partitions, and `poll` reads only those. Returns once the
    /// broker has accepted the member (the first partitions come with a
    /// later `poll`).
    pub async fn subscribe(&mut self, group: &str, topics: &[&str]) -> Result<()> {
        if self.group.is_some() || !self.positions.is_empty() {
            return Err(Error::InvalidArgument(
                "this consumer already has partitions; a consumer either assigns or subscribes, once"
                    .into(),
            ));
        }
        if topics.is_empty() {
            return Err(Error::InvalidArgument(
                "subscribe to at least one topic".into(),
            ));
        }
        let member = Member::start(
            self.client.clone(),
            Membership {
                group: group.into(),
                topics: topics.iter().map(|t| t.to_string()).collect(),
                instance_id: self.config.group_instance_id.clone(),
                client_id: self.config.client_id.clone(),
                assignor: self.config.assignor.clone(),
                session_timeout_ms: ms(self.config.session_timeout),
                rebalance_timeout_ms: ms(self.config.rebalance_timeout),
            },
        );
        let joined = async {
            loop {
                let notified = member.wake_consumer.notified();
                {
                    let s = member.state.lock().expect("group state");
                    if let Some(e) = &s.fatal {
                        return Err(e.clone());
                    }
                    if s.answers > 0 {
                        return Ok(());
                    }
                }
                notified.await;
            }
        };
        let timeout = self.client.options().request_timeout;
        match tokio::time::timeout(timeout, joined).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::local(
                    tonic::Code::DeadlineExceeded,
                    format!("no answer from the group coordinator within {timeout:?}"),
                ));
            }
        }
        self.group = Some(member);
        Ok(())
    }

    /// Like [`Consumer::subscribe`], with callbacks on assignment changes.
    pub async fn subscribe_with(
        &mut self,
        group: &str,
        topics: &[&str],
        listener: impl RebalanceListener + 'static,
    ) -> Result<()> {
        self.listener = Some(Listener(std::sync::Mutex::new(Box::new(listener))));
        self.subscribe(group, topics).await
    }

    /// The group's member id and epoch, once joined.
    pub fn member(&self) -> Option<(String, i32)> {
        self.group.as_ref().map(|m| m.identity())
    }

    /// Applies what the heartbeat task learnt: lost, revoked, then new
    /// partitions; then reports what we own.
    async fn reconcile(&mut self) -> Result<()> {
        let Some(member) = &self.group else {
            return Ok(());
        };
        let (target, lost) = {
            let mut s = member.state.lock().expect("group state");
            if let Some(e) = &s.fatal {
                return Err(e.clone());
            }
            (s.target.clone(), std::mem::take(&mut s.lost))
        };
        let (wake_task, state) = (member.wake_task.clone(), member.state.clone());
        let mut changed = false;
        if lost && !self.positions.is_empty() {
            let all: Vec<Tp> = self.positions.keys().cloned().collect();
            tracing::warn!(
                partitions = all.len(),
                "group membership lost; dropping partitions without committing"
            );
            if let Some(l) = &mut self.listener {
                l.get().on_lost(&all);
            }
            self.positions.clear();
            self.committed.clear();
            changed = true;
        }
        let revoked: Vec<Tp> = self
            .positions
            .keys()
            .filter(|tp| !target.contains(*tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            if let Some(l) = &mut self.listener {
                l.get().on_revoked(&revoked);
            }
            if self.config.auto_commit
                && let Err(e) = self.commit_partitions(Some(&revoked)).await
            {
                tracing::warn!(error = %e, "commit of revoked partitions failed; the next owner re-reads from the last commit");
            }
            for tp in &revoked {
                self.positions.remove(tp);
                self.committed.remove(tp);
            }
            changed = true;
        }
        let added: Vec<Tp> = target
            .iter()
            .filter(|tp| !self.positions.contains_key(*tp))
            .cloned()
            .collect();
        if !added.is_empty() {
            let group = &self.group.as_ref().expect("group").spec.group;
            let committed = self.client.admin().committed_offsets(group, &added).await?;
            for c in committed {
                let tp = (c.topic.clone(), c.partition);
                let start = if c.offset >= 0 {
                    self.committed.insert(tp.clone(), c.offset);
                    c.offset
                } else {
                    let seek = match self.config.offset_reset {
                        OffsetReset::Earliest => Seek::Beginning,
                        OffsetReset::Latest => Seek::End,
                        OffsetReset::Error => {
                            return Err(Error::OffsetOutOfRange {
                                topic: tp.0,
                                partition: tp.1,
                                offset: -1,
                                message: format!(
                                    "group {group:?} has no committed offset and offset_reset is Error"
                                ),
                            });
                        }
                    };
                    self.resolve(&tp.0, tp.1, seek).await?
                };
                self.positions.insert(tp, start);
            }
            if let Some(l) = &mut self.listener {
                l.get().on_assigned(&added);
            }
            changed = true;
        }
        if changed {
            state.lock().expect("group state").owned = self.positions.keys().cloned().collect();
            wake_task.notify_one();
        }
        Ok(())
    }

    /// The commit request for `offsets`, as this member.
    fn commit_request(&self, offsets: &[(String, u32, i64)]) -> Result<v1::CommitOffsetsRequest> {
        let Some(member) = &self.group else {
            return Err(Error::InvalidArgument(
                "commit needs a group: subscribe first (or use Admin::commit_offsets)".into(),
            ));
        };
        let (member_id, member_epoch) = member.identity();
        Ok(v1::CommitOffsetsRequest {
            group: member.spec.group.clone(),
            member_id,
            member_epoch,
            partitions: crate::group::commit_partitions(offsets),
            acks: v1::Acks::Durable as i32,
        })
    }

    /// Positions of `only` (or of every owned partition) that moved since
    /// their last commit.
    fn uncommitted(&self, only: Option<&[Tp]>) -> Vec<(String, u32, i64)> {
        self.positions
            .iter()
            .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
            .filter(|(tp, pos)| self.committed.get(*tp) != Some(*pos))
            .map(|((topic, partition), pos)| (topic.clone(), *partition, *pos))
            .collect()
    }

    /// Commits the positions of `only` (or of every owned partition) that
    /// moved since their last commit. Returns once fsynced.
    async fn commit_partitions(&mut self, only: Option<&[Tp]>) -> Result<()> {
        let offsets = self.uncommitted(only);
        self.commit_offsets(&offsets).await
    }

    /// Commits the position of every owned partition (the offset after the
    /// last record `poll` returned), and returns once the broker has
    /// fsynced it.
    pub async fn commit(&mut self) -> Result<()> {
        self.commit_partitions(None).await
    }

    /// Commits explicit offsets (each the next offset to read) for owned
    /// partitions, and returns once fsynced: for applications that finish
    /// records out of `poll`'s order, or only some of what it returned.
    pub async fn commit_offsets(&mut self, offsets: &[(String, u32, i64)]) -> Result<()> {
        let req = self.commit_request(offsets)?;
        if offsets.is_empty() {
            return Ok(());
        }
        self.client.groups_rpc().commit_offsets(req).await?;
        for (topic, partition, offset) in offsets {
            self.committed.insert((topic.clone(), *partition), *offset);
        }
        Ok(())
    }

    /// Commits like [`Consumer::commit`] without waiting: the commit runs
    /// on a task, and a failure is only logged (the next commit covers it).
    pub fn commit_async(&mut self) {
        let offsets = self.uncommitted(None);
        if offsets.is_empty() {
            return;
        }
        let req = match self.commit_request(&offsets) {
            Ok(req) => req,
            Err(e) => {
                tracing::warn!(error = %e, "commit_async did nothing");
                return;
            }
        };
        let mut rpc = self.client.groups_rpc();
        tokio::spawn(async move {
            if let Err(e) = rpc.commit_offsets(req).await {
                tracing::warn!(error = %e, "asynchronous commit failed");
            }
        });
    }

    /// Commits, with auto-commit on, the positions of every owned
    /// partition, and leaves the group, so its partitions move to the other
    /// members at once. A static member leaves for now: its partitions wait
    /// for it for a session timeout.
    pub async fn close(mut self) -> Result<()> {
        let mut first = None;
        if self.group.is_some() {
            if self.config.auto_commit
                && let Err(e) = self.commit().await
            {
                first = Some(e);
            }
            let all: Vec<Tp> = self.positions.keys().cloned().collect();
            if let Some(l) = &mut self.listener
                && !all.is_empty()
            {
                l.get().on_revoked(&all);
            }
        }
        if let Some(member) = self.group.take()
            && let Err(e) = member.leave(&self.client).await
        {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }

    async fn resolve(&self, topic: &str, partition: u32, seek: Seek) -> Result<i64> {
        let admin = self.client.admin();
        Ok(match seek {
            Seek::Offset(o) if o < 0 => {
                return Err(Error::InvalidArgument(format!("offset {o} is negative")));
            }
            Seek::Offset(o) => o,
            Seek::Beginning => admin
                .list_offset(topic, partition, OffsetSpec::Earliest)
                .await?
                .unwrap_or(0),
            Seek::End => admin
                .list_offset(topic, partition, OffsetSpec::Latest)
                .await?
                .unwrap_or(0),
            Seek::Timestamp(t) => match admin
                .list_offset(topic, partition, OffsetSpec::Timestamp(t))
                .await?
            {
                Some(o) => o,
                None => admin
                    .list_offset(topic, partition, OffsetSpec::Latest)
                    .await?
                    .unwrap_or(0),
            },
        })
    }

    /// Adds a partition to the assignment, starting at `start`.
    pub async fn assign(&mut self, topic: &str, partition: u32, start: Seek) -> Result<()> {
        if self.group.is_some() {
            return Err(Error::InvalidArgument(
                "this consumer subscribed to a group; the group assigns its partitions".into(),
            ));
        }
        self.place(topic, partition, start).await
    }

    async fn place(&mut self, topic: &str, partition: u32, start: Seek) -> Result<()> {
        let offset = self.resolve(topic, partition, start).await?;
        self.positions
            .insert((topic.to_string(), partition), offset);
        Ok(())
    }

    /// Assigns every partition of a topic, each starting at `start`.
    pub async fn assign_topic(&mut self, topic: &str, start: Seek) -> Result<()> {
        let d = self.client.admin().describe_topic(topic).await?;
        for p in d.partitions {
            self.assign(topic, p.partition, start).await?;
        }
        Ok(())
    }

    /// Moves an assigned partition's position.
    pub async fn seek(&mut self, topic: &str, partition: u32, to: Seek) -> Result<()> {
        if !self.positions.contains_key(&(topic.to_string(), partition)) {
            return Err(Error::InvalidArgument(format!(
                "{topic}/{partition} is not assigned"
            )));
        }
        self.place(topic, partition, to).await
    }

    /// The next offset to be read from a partition.
    pub fn position(&self, topic: &str, partition: u32) -> Option<i64> {
        self.positions.get(&(topic.to_string(), partition)).copied()
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.positions.keys().cloned().collect()
    }

    /// One long-poll: returns the records that arrived (possibly none after
    /// `fetch_wait`), in offset order per partition, and advances positions.
    /// In a group, first applies assignment changes and auto-commits; an
    /// assignment change cuts the long-poll short.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        let Some(member) = &self.group else {
            return self.fetch().await;
        };
        let wake = member.wake_consumer.clone();
        self.reconcile().await?;
        if self.config.auto_commit
            && self.last_auto_commit.elapsed() >= self.config.auto_commit_interval
        {
            self.last_auto_commit = Instant::now();
            if let Err(e) = self.commit().await {
                tracing::warn!(error = %e, "auto-commit failed; the next one covers it");
            }
        }
        if self.positions.is_empty() {
            // Nothing assigned (yet): wait for news, or for fetch_wait.
            let _ = tokio::time::timeout(self.config.fetch_wait, wake.notified()).await;
            return Ok(Vec::new());
        }
        tokio::select! {
            biased;
            r = self.fetch() => r,
            // News from the heartbeat task: the next poll's reconcile reads
            // it from the shared state.
            _ = wake.notified() => Ok(Vec::new()),
        }
    }

    async fn fetch(&mut self) -> Result<Vec<ConsumerRecord>> {
        if self.positions.is_empty() {
            return Err(Error::InvalidArgument("no partitions are assigned".into()));
        }
        let mut topics: Vec<v1::FetchTopic> = Vec::new();
        for ((topic, partition), offset) in &self.positions {
            let fp = v1::FetchPartition {
                partition: *partition,
                offset: *offset,
                max_bytes: self.config.partition_fetch_bytes_max,
            };
            match topics.last_mut() {
                Some(t) if &t.topic == topic => t.partitions.push(fp),
                _ => topics.push(v1::FetchTopic {
                    topic: topic.clone(),
                    partitions: vec![fp],
                }),
            }
        }
        let req = v1::FetchRequest {
            topics,
            max_bytes: self.config.fetch_bytes_max,
            min_bytes: 1,
            max_wait_ms: self.config.fetch_wait.as_millis() as u32,
            decode: false,
        };
        let resp = self.client.records().fetch(req).await?.into_inner();
        let mut out = Vec::new();
        for t in resp.topics {
            for p in t.partitions {
                let key = (t.topic.clone(), p.partition);
                let Some(&position) = self.positions.get(&key) else {
                    continue;
                };
                if let Some(e) = &p.error {
                    if e.code == tonic::Code::OutOfRange as i32 {
                        self.reset(&t.topic, p.partition, position, &e.message)
                            .await?;
                        continue;
                    }
                    if self.group.is_some() && e.code == tonic::Code::NotFound as i32 {
                        // A subscribed topic was deleted: the group's next
                        // assignment drops it; until then, skip it.
                        tracing::debug!(topic = %t.topic, partition = p.partition, "assigned partition is gone");
                        continue;
                    }
                    return Err(Error::partition(&t.topic, p.partition, e));
                }
                let mut next = position;
                let batches = Batch::decode_all(p.batches).map_err(|e| {
                    Error::local_partition(
                        &t.topic,
                        p.partition,
                        tonic::Code::DataLoss,
                        format!("undecodable batch from the broker: {e}"),
                    )
                })?;
                for b in batches {
                    // On a compacted topic a batch's last records may be
                    // gone: resume after the batch, or its remaining
                    // records would be fetched again forever.
                    next = next.max(b.header().last_offset() + 1);
                    for r in b.records_within(self.config.batch_decompressed_bytes_max) {
                        let r = r.map_err(|e| {
                            Error::local_partition(
                                &t.topic,
                                p.partition,
                                tonic::Code::DataLoss,
                                format!("undecodable record from the broker: {e}"),
                            )
                        })?;
                        if r.offset < position {
                            continue;
                        }
                        out.push(ConsumerRecord {
                            topic: t.topic.clone(),
                            partition: p.partition,
                            offset: r.offset,
                            timestamp_ms: r.timestamp,
                            key: r.key,
                            value: r.value,
                            headers: r.headers,
                        });
                    }
                }
                self.positions.insert(key, next);
            }
        }
        Ok(out)
    }

    async fn reset(
        &mut self,
        topic: &str,
        partition: u32,
        offset: i64,
        message: &str,
    ) -> Result<()> {
        let to = match self.config.offset_reset {
            OffsetReset::Earliest => Seek::Beginning,
            OffsetReset::Latest => Seek::End,
            OffsetReset::Error => {
                return Err(Error::OffsetOutOfRange {
                    topic: topic.to_string(),
                    partition,
                    offset,
                    message: message.to_string(),
                });
            }
        };
        tracing::info!(%topic, partition, offset, ?to, "position out of range; resetting");
        self.place(topic, partition, to).await
    }

    /// Turns the consumer into a stream of records. A task polls ahead of
    /// the application, at most `prefetch_records` records; retriable
    /// errors are retried, the first fatal one ends the stream.
    ///
    /// In a group, the task's polls are what commit and release partitions,
    /// and they run ahead of the application by up to `prefetch_records`:
    /// auto-commit may cover records still in the stream's buffer, and a
    /// revoked partition's buffered records still arrive after its new
    /// owner has started. For at-least-once processing in a group, call
    /// [`Consumer::poll`] and commit after processing instead.
    pub fn into_stream(mut self) -> impl Stream<Item = Result<ConsumerRecord>> + Send + 'static {
        let (tx, rx) = mpsc::channel(self.config.prefetch_records.max(1));
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.poll().await {
                    Ok(records) => {
                        backoff = Duration::from_millis(100);
                        for r in records {
                            if tx.send(Ok(r)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) if e.is_retriable() => {
                        tracing::debug!(error = %e, "fetch failed; retrying");
                        let wait = backoff.max(e.retry_after().unwrap_or_default());
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = tx.closed() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        ReceiverStream::new(rx)
    }
}
