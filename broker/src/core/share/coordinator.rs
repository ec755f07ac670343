//! The share-group coordinator: every share group behind one lock, written
//! through to the groups log (the consumer groups' `groups::store`) the
//! same way: **decide → records → apply**. A call decides its changes from
//! the state in memory without touching it, appends their records to the
//! page cache under the lock, applies them only once the append succeeded,
//! and waits for the fsync after releasing the lock (group commit).
//!
//! **Invariant:** nothing a member is told depends on a record that is not
//! durable: leases (so an attempt is counted before its record goes out),
//! accepts and releases are fsynced before the fetch or ack that made them
//! answers. Sessions are in memory: a broker restart ends them, and the
//! leases restored from the log expire at the first tick as failed
//! attempts.
//!
//! Synchronous and blocking, like the consumer groups' coordinator; the
//! server calls it from blocking tasks and does the long-poll waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use prost::Message;
use tokio::sync::watch;

use super::group::{ShareGroup, ShareMember};
use super::partition::{Ack, Change, Delivery, SharePartition, ShareSettings, Slot, SlotState};
use super::read::LeasedRecords;
use super::state::{self, ShareGroupValue, ShareSnapshotValue, ShareUpdateValue};
use crate::core::Broker;
use crate::core::error::{BrokerError, Result};
use crate::core::groups::Fenced;
use crate::core::groups::Tp;
use crate::core::groups::coordinator::check_group_name;
use crate::core::groups::store::{Entry, Key, Store};
use crate::core::partition::Partition;
use crate::storage::{Clock, SystemClock};

/// Bounds and defaults of share groups, set by the broker's flags.
#[derive(Debug, Clone)]
pub struct ShareDefaults {
    /// Partition settings of a group that asks for nothing else.
    pub partition: ShareSettings,
    /// The shortest and longest lease a group may ask for.
    pub lease_ms_min: u64,
    pub lease_ms_max: u64,
    /// The highest delivery limit a group may ask for.
    pub delivery_limit_max: u32,
    /// A member's session unless it asks for another (bounded like
    /// consumer groups' sessions).
    pub session_timeout_ms: u32,
    pub session_timeout_ms_min: u32,
    pub session_timeout_ms_max: u32,
    pub heartbeat_interval_ms: u32,
    /// Share groups on the broker.
    pub share_groups_max: u32,
    /// Members of one share group.
    pub share_group_members_max: u32,
    /// Records one fetch may ask for.
    pub share_fetch_records_max: u32,
    /// Bytes of error text one ack may carry.
    pub share_ack_error_bytes_max: u32,
    /// For crash tests only: abort the process just before or just after
    /// a dead letter's copy is appended.
    pub test_abort_at_dead_letter: Option<AbortAt>,
}

/// Where a crash test aborts the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortAt {
    /// The dead letter is decided and durable; its copy is not written.
    Before,
    /// The copy is durable; it is not yet marked written.
    After,
}

impl Default for ShareDefaults {
    fn default() -> Self {
        Self {
            partition: ShareSettings::default(),
            lease_ms_min: 1_000,
            lease_ms_max: 3_600_000,
            delivery_limit_max: 100,
            session_timeout_ms: 45_000,
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 300_000,
            heartbeat_interval_ms: 3_000,
            share_groups_max: 10_000,
            share_group_members_max: 1_000,
            share_fetch_records_max: 10_000,
            share_ack_error_bytes_max: 1_024,
            test_abort_at_dead_letter: None,
        }
    }
}

/// A share-group heartbeat.
#[derive(Debug, Clone, Default)]
pub struct ShareHeartbeat {
    pub group: String,
    /// Empty: join.
    pub member_id: String,
    /// Leave: end the session and release what it holds.
    pub leave: bool,
    /// The topics to read (on a join, or to change them; empty on a
    /// beat keeps them).
    pub topics: Vec<String>,
    pub client_id: String,
    pub host: String,
    /// 0: the default.
    pub session_timeout_ms: u32,
    /// Settings of a group this join creates (ignored for an existing
    /// group; 0 or empty: the broker's defaults).
    pub create: ShareGroupValue,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone)]
pub struct ShareHeartbeatAnswer {
    pub member_id: String,
    pub heartbeat_interval_ms: u32,
    pub session_timeout_ms: u32,
    /// The group's settings.
    pub config: ShareGroupValue,
}

/// One ack of a fetch or acknowledge call.
#[derive(Debug, Clone)]
pub struct ShareAck {
    pub tp: Tp,
    pub delivery: Delivery,
    pub ack: Ack,
}

/// What a fetch returns.
#[derive(Debug, Default)]
pub struct ShareFetched {
    /// One result per ack, in order.
    pub acks: Vec<Result<()>>,
    /// The records leased to the member, by partition.
    pub partitions: Vec<(Tp, LeasedRecords)>,
}

/// Decided changes, by partition.
pub(super) type Decided = Vec<(Tp, Vec<Change>)>;

/// Every share group of the broker.
#[derive(Debug)]
pub struct ShareGroups {
    pub(super) broker: Arc<Broker>,
    pub(super) store: Arc<Store>,
    pub(super) defaults: ShareDefaults,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) groups: Mutex<BTreeMap<String, ShareGroup>>,
    /// Moves on whenever records may have become available (a release, an
    /// expiry, a member leaving): long-polls wait on it.
    wake: watch::Sender<u64>,
    /// One dead-letter flush at a time.
    pub(super) flushing: Mutex<()>,
    /// Partitions whose pending dead letters may already be in their
    /// dead-letter topic (restored at startup, or after a failed flush):
    /// the flush looks before it writes.
    pub(super) unverified: Mutex<BTreeSet<(String, Tp)>>,
}

fn bad_record(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Internal(format!("undecodable share record in the groups log: {e}"))
}

impl ShareGroups {
    /// Replays the share records of the groups log (`records`, in log
    /// order) and ends the leases of sessions that did not survive.
    pub fn open(
        broker: Arc<Broker>,
        store: Arc<Store>,
        records: Vec<Entry>,
        defaults: ShareDefaults,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let mut groups: BTreeMap<String, ShareGroup> = BTreeMap::new();
        for (key, value) in records {
            match (key, value) {
                (Key::ShareGroup(name), Some(v)) => {
                    let config = ShareGroupValue::decode(&v[..]).map_err(bad_record)?;
                    match groups.get_mut(&name) {
                        Some(g) => g.config = config,
                        None => {
                            groups.insert(name.clone(), ShareGroup::new(&name, config));
                        }
                    }
                }
                (Key::ShareGroup(name), None) => {
                    groups.remove(&name);
                }
                (Key::ShareSnapshot { group, tp }, v) => {
                    let Some(g) = groups.get_mut(&group) else {
                        continue;
                    };
                    match v {
                        Some(v) => {
                            let snap = ShareSnapshotValue::decode(&v[..]).map_err(bad_record)?;
                            let settings = g.settings(&defaults.partition);
                            let p = SharePartition::restore(
                                settings,
                                state::restored(snap),
                                fastrand::u64(..),
                            );
                            g.put_partition(tp, p);
                        }
                        None => {
                            g.partitions.remove(&tp);
                        }
                    }
                }
                (Key::ShareUpdate { group, tp, .. }, Some(v)) => {
                    let Some(g) = groups.get_mut(&group) else {
                        continue;
                    };
                    let update = ShareUpdateValue::decode(&v[..]).map_err(bad_record)?;
                    let changes = state::changes(update).map_err(bad_record)?;
                    if let Some(part) = g.partitions.get_mut(&tp) {
                        for c in &changes {
                            part.share.apply(c);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut unverified = BTreeSet::new();
        for g in groups.values_mut() {
            let name = g.name().to_string();
            for (tp, part) in g.partitions.iter_mut() {
                part.share.end_restored_leases();
                if !part.share.dead_pending().is_empty() {
                    unverified.insert((name.clone(), tp.clone()));
                }
            }
            // The next change of every partition starts with a snapshot.
            let parts: Vec<(Tp, SharePartition)> = std::mem::take(&mut g.partitions)
                .into_iter()
                .map(|(tp, p)| (tp, p.share))
                .collect();
            for (tp, p) in parts {
                g.put_partition(tp, p);
            }
        }
        tracing::info!(share_groups = groups.len(), "share groups loaded");
        Ok(Self {
            broker,
            store,
            defaults,
            clock,
            groups: Mutex::new(groups),
            wake: watch::channel(0).0,
            flushing: Mutex::new(()),
            unverified: Mutex::new(unverified),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ShareGroup>> {
        // As the consumer groups' coordinator: the map only ever takes
        // whole, written changes, so a panic leaves nothing half-done.
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.clock.now_ms().max(0) as u64
    }

    /// Whether a share group of this name exists.
    pub fn exists(&self, group: &str) -> bool {
        self.lock().contains_key(group)
    }

    /// The dead-letter topic of an existing group.
    pub fn dead_letter_topic(&self, group: &str) -> Option<String> {
        self.lock().get(group).map(|g| g.config.dlq_topic.clone())
    }

    /// A receiver that changes when records may have become available.
    pub fn wake(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// What a member's empty fetch waits for: the partitions of its topics
    /// (new records) and the wall-clock time the group's next delayed
    /// record becomes available.
    pub fn wait_hints(&self, group: &str, member: &str) -> (Vec<Arc<Partition>>, Option<u64>) {
        let groups = self.lock();
        let Some(g) = groups.get(group) else {
            return (Vec::new(), None);
        };
        let partitions = g
            .members
            .get(member)
            .map(|m| {
                m.topics
                    .iter()
                    .filter_map(|t| self.broker.topic(t).ok())
                    .flat_map(|t| t.partitions())
                    .collect()
            })
            .unwrap_or_default();
        let retry = g
            .partitions
            .values()
            .filter_map(|p| p.share.next_retry_ms())
            .min();
        (partitions, retry)
    }

    pub(super) fn wake_waiters(&self) {
        self.wake.send_modify(|n| *n += 1);
    }

    /// Appends under the lock; the caller syncs after releasing it.
    pub(super) fn write(&self, entries: &[Entry]) -> Result<Option<u64>> {
        if entries.is_empty() {
            return Ok(None);
        }
        self.store.append(entries, SystemClock.now_ms()).map(Some)
    }

    pub(super) fn sync(&self, target: Option<u64>) -> Result<()> {
        target.map_or(Ok(()), |t| self.store.sync_to(t))
    }

    /// The settings a new group gets from what its first member asked.
    fn new_config(
        &self,
        asked: &ShareGroupValue,
        group: &str,
        first_topic: &str,
    ) -> Result<ShareGroupValue> {
        let d = &self.defaults;
        let lease_ms = if asked.lease_ms == 0 {
            d.partition.lease_ms
        } else {
            asked.lease_ms
        };
        if !(d.lease_ms_min..=d.lease_ms_max).contains(&lease_ms) {
            return Err(BrokerError::InvalidArgument(format!(
                "lease_ms {lease_ms} is outside [share_lease_ms_min {}, share_lease_ms_max {}]",
                d.lease_ms_min, d.lease_ms_max
            )));
        }
        let delivery_limit = match asked.delivery_limit {
            0 => d.partition.delivery_limit,
            n if n > d.delivery_limit_max => {
                return Err(BrokerError::InvalidArgument(format!(
                    "delivery_limit {n} is over share_delivery_limit_max {}",
                    d.delivery_limit_max
                )));
            }
            n => n,
        };
        let dlq_topic = if asked.dlq_topic.is_empty() {
            format!("{first_topic}.{group}.dlq")
        } else {
            asked.dlq_topic.clone()
        };
        crate::core::topic::validate_name(&dlq_topic)?;
        let start = match asked.start.as_str() {
            "" | "earliest" => "earliest",
            "latest" => "latest",
            other => {
                return Err(BrokerError::InvalidArgument(format!(
                    "start {other:?} must be \"earliest\" or \"latest\""
                )));
            }
        };
        Ok(ShareGroupValue {
            dlq_topic,
            delivery_limit,
            lease_ms,
            created_ms: SystemClock.now_ms(),
            start: start.into(),
        })
    }

    fn session(&self, asked: u32) -> Result<u32> {
        let d = &self.defaults;
        if asked == 0 {
            return Ok(d.session_timeout_ms);
        }
        if asked < d.session_timeout_ms_min || asked > d.session_timeout_ms_max {
            return Err(BrokerError::InvalidArgument(format!(
                "session_timeout_ms {asked} is outside [group_session_timeout_ms_min {}, group_session_timeout_ms_max {}]",
                d.session_timeout_ms_min, d.session_timeout_ms_max
            )));
        }
        Ok(asked)
    }

    /// Joins, keeps a session, or leaves. The caller (the groups
    /// coordinator) has checked that no consumer group has the name.
    pub fn heartbeat(&self, req: ShareHeartbeat) -> Result<ShareHeartbeatAnswer> {
        check_group_name(&req.group)?;
        let session_timeout_ms = self.session(req.session_timeout_ms)?;
        let now = self.now_ms();
        let mut target = None;
        let answer = {
            let mut groups = self.lock();
            let exists = groups.contains_key(&req.group);
            if !exists && (req.leave || !req.member_id.is_empty()) {
                return Err(Fenced::UnknownMember {
                    group: req.group.clone(),
                    member: req.member_id.clone(),
                }
                .into());
            }
            if !exists {
                if groups.len() as u64 >= u64::from(self.defaults.share_groups_max) {
                    return Err(BrokerError::Busy {
                        limit: "share_groups_max",
                        max: self.defaults.share_groups_max.into(),
                        what: format!("share group {:?}", req.group),
                    });
                }
                let first = req.topics.first().ok_or_else(|| {
                    BrokerError::InvalidArgument("a joining share member names its topics".into())
                })?;
                let config = self.new_config(&req.create, &req.group, first)?;
                let g = ShareGroup::new(&req.group, config);
                target = self.write(&[g.config_entry()])?;
                groups.insert(req.group.clone(), g);
            }
            let g = groups.get_mut(&req.group).expect("present or just made");
            if req.leave {
                let changes = self.leave(g, &req.member_id, now)?;
                target = target.max(changes);
                None
            } else {
                Some(self.beat(g, req, session_timeout_ms, now)?)
            }
        };
        self.sync(target)?;
        self.flush_dead_letters();
        match answer {
            Some(a) => Ok(a),
            None => Ok(ShareHeartbeatAnswer {
                member_id: String::new(),
                heartbeat_interval_ms: self.defaults.heartbeat_interval_ms,
                session_timeout_ms,
                config: ShareGroupValue::default(),
            }),
        }
    }

    fn beat(
        &self,
        g: &mut ShareGroup,
        req: ShareHeartbeat,
        session_timeout_ms: u32,
        now: u64,
    ) -> Result<ShareHeartbeatAnswer> {
        let member_id = if req.member_id.is_empty() {
            if g.members.len() as u64 >= u64::from(self.defaults.share_group_members_max) {
                return Err(BrokerError::Busy {
                    limit: "share_group_members_max",
                    max: self.defaults.share_group_members_max.into(),
                    what: format!("a member of share group {:?}", g.name()),
                });
            }
            if req.topics.is_empty() {
                return Err(BrokerError::InvalidArgument(
                    "a joining share member names its topics".into(),
                ));
            }
            let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            g.members.insert(
                id.clone(),
                ShareMember {
                    topics: BTreeSet::new(),
                    client_id: req.client_id.clone(),
                    host: req.host.clone(),
                    session_timeout_ms: 0,
                    deadline_ms: 0,
                },
            );
            tracing::info!(group = g.name(), member = %id, "share member joined");
            id
        } else {
            req.member_id.clone()
        };
        let group = g.name().to_string();
        let m = g
            .members
            .get_mut(&member_id)
            .ok_or_else(|| Fenced::UnknownMember {
                group,
                member: member_id.clone(),
            })?;
        if !req.topics.is_empty() {
            m.topics = req.topics.iter().cloned().collect();
        }
        m.session_timeout_ms = session_timeout_ms.into();
        m.deadline_ms = now + u64::from(session_timeout_ms);
        Ok(ShareHeartbeatAnswer {
            member_id,
            heartbeat_interval_ms: self
                .defaults
                .heartbeat_interval_ms
                .min(session_timeout_ms / 3),
            session_timeout_ms,
            config: g.config.clone(),
        })
    }

    /// Ends a member's session: what it holds fails and goes back.
    fn leave(&self, g: &mut ShareGroup, member: &str, now: u64) -> Result<Option<u64>> {
        if !g.members.contains_key(member) {
            return Err(Fenced::UnknownMember {
                group: g.name().to_string(),
                member: member.to_string(),
            }
            .into());
        }
        let target = self.release_member(g, member, now)?;
        g.members.remove(member);
        tracing::info!(group = g.name(), member, "share member left");
        Ok(target)
    }

    /// Writes and applies the failure of everything `member` holds.
    pub(super) fn release_member(
        &self,
        g: &mut ShareGroup,
        member: &str,
        now: u64,
    ) -> Result<Option<u64>> {
        let mut decided: Decided = Vec::new();
        for (tp, part) in g.partitions.iter_mut() {
            let changes = part.share.release_member(member, now);
            if !changes.is_empty() {
                decided.push((tp.clone(), changes));
            }
        }
        self.commit(g, decided)
    }

    /// Writes decided changes of one group's partitions in one batch and
    /// applies them once written; dead letters get their dead-letter
    /// partition's end first (where recovery will look for them).
    pub(super) fn commit(&self, g: &mut ShareGroup, mut decided: Decided) -> Result<Option<u64>> {
        decided.retain(|(_, c)| !c.is_empty());
        if decided.is_empty() {
            return Ok(None);
        }
        let mut wake = false;
        for (tp, changes) in decided.iter_mut() {
            let mut dlq_from = None;
            for c in changes.iter_mut() {
                // Records available again wake waiting fetches.
                wake |= matches!(
                    c,
                    Change::SkipTo(_)
                        | Change::Slot {
                            slot: Slot {
                                state: SlotState::Available { .. },
                                ..
                            },
                            ..
                        }
                );
                if let Change::DeadLettered(d) = c {
                    d.dlq_from =
                        *dlq_from.get_or_insert_with(|| self.dlq_end(&g.config.dlq_topic, tp));
                }
            }
        }
        let entries: Vec<Entry> = decided
            .iter()
            .flat_map(|(tp, changes)| g.records(tp, changes))
            .collect();
        let target = self.write(&entries)?;
        for (tp, changes) in &decided {
            super::metrics::count(g.name(), changes);
            g.apply(tp, changes);
        }
        if wake {
            self.wake_waiters();
        }
        Ok(target)
    }

    /// Ends sessions that ran out and leases past their deadline, as
    /// failed deliveries; then writes pending dead letters. On a timer.
    pub fn tick(&self) -> Result<()> {
        let now = self.now_ms();
        let mut target = None;
        let mut first_error = None;
        {
            let mut groups = self.lock();
            for g in groups.values_mut() {
                if g.next_deadline_ms().is_none_or(|d| d > now) {
                    continue;
                }
                let gone: Vec<String> = g
                    .members
                    .iter()
                    .filter(|(_, m)| m.deadline_ms <= now)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in gone {
                    match self.release_member(g, &id, now) {
                        Ok(t) => {
                            target = target.max(t);
                            g.members.remove(&id);
                            tracing::info!(group = g.name(), member = %id, "share member's session expired");
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                let decided: Decided = g
                    .partitions
                    .iter_mut()
                    .map(|(tp, p)| (tp.clone(), p.share.expire(now)))
                    .collect();
                let expired = decided.iter().map(|(_, c)| c.len() as u64).sum();
                super::metrics::record(g.name(), "expired", expired);
                match self.commit(g, decided) {
                    Ok(t) => target = target.max(t),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        self.sync(target)?;
        self.flush_dead_letters();
        first_error.map_or(Ok(()), Err)
    }
}
