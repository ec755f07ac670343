//! The group coordinator: every group's state in memory behind one lock,
//! written through to the internal log (`super::store`) on every change.
//!
//! Every change is **decide → records → apply**. A call validates its
//! input, takes the lock, lets the group state machine (`super::group`)
//! decide on a copy of the group, appends the records of what changed to
//! the page cache while still holding the lock (so the log's order is the
//! decisions' order), and only once the append succeeded swaps the copy
//! in; then it releases the lock and waits for the fsync, which concurrent
//! calls share. A refused write (a full disk, a batch over its limit)
//! changes nothing in memory.
//!
//! **Invariant:** nothing a caller is told depends on a record that is not
//! durable. A heartbeat that changed membership answers only once its
//! record is fsynced, so a broker that restarts (even after a power loss)
//! tells members what it told them before; a heartbeat that changed nothing
//! repeats what its member was told already. Membership is applied before
//! its fsync (the next decision must see it) but offsets of a durable
//! commit only after (`fetch_offsets` answers callers directly).
//!
//! A panic under the lock cannot leave a half-changed group behind (the
//! map only ever takes whole, written groups), so the lock's poison is
//! ignored rather than failing every later call.
//!
//! Synchronous, like the storage engine under it: the server calls it from
//! blocking tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use prost::Message;

use super::assignor::{Assignor, Tp};
use super::classic::{ClassicGroups, ClassicSettings};
use super::group::{self, Committed, Committer, Group, Intent};
use super::store::{Entry, Key, OffsetValue, Store};
use crate::core::Broker;
use crate::core::error::{BrokerError, Result};
use crate::core::share::{ShareGroups, ShareHeartbeat, ShareHeartbeatAnswer};
use crate::storage::{Clock, SystemClock};

pub use super::requests::{GroupSettings, HeartbeatAnswer, HeartbeatRequest, OffsetInfo, ResetTo};

fn kind_mismatch(group: &str, is: &'static str, asked: &'static str) -> BrokerError {
    BrokerError::GroupKindMismatch {
        group: group.into(),
        is,
        asked,
    }
}

/// All groups of the broker.
#[derive(Debug)]
pub struct Coordinator {
    broker: Arc<Broker>,
    settings: GroupSettings,
    groups: Mutex<BTreeMap<String, Group>>,
    store: Arc<Store>,
    clock: SessionClock,
    /// Share groups: their own state, in the same log and namespace.
    share: ShareGroups,
    /// Kafka's classic-protocol groups (membership only; their offsets
    /// are here with everyone's).
    classic: ClassicGroups,
}

/// The clock of sessions, in ms from the coordinator's start.
#[derive(Debug)]
enum SessionClock {
    /// The real one: monotonic, so a wall-clock step expires nobody.
    Monotonic(Instant),
    /// A clock a test drives (from its reading at the start).
    Given(Arc<dyn Clock>, i64),
}

fn new_member_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// The persisted form of a group's membership; a tombstone once the group
/// has neither members nor offsets.
fn group_entry(g: &Group) -> Entry {
    let value = (!g.is_empty()).then(|| g.persisted().encode_to_vec());
    (Key::Group(g.id().to_string()), value)
}

/// Puts a decided (and written) group in place, or drops it if it holds
/// nothing any more.
fn apply(groups: &mut BTreeMap<String, Group>, next: Group) {
    if next.is_empty() {
        groups.remove(next.id());
    } else {
        groups.insert(next.id().to_string(), next);
    }
}

pub(crate) fn check_group_name(group: &str) -> Result<()> {
    if group.is_empty() || group.len() > 249 {
        return Err(BrokerError::InvalidArgument(format!(
            "group name {group:?} must be 1 to 249 bytes"
        )));
    }
    Ok(())
}

impl Coordinator {
    /// Opens the groups log under `data_dir/groups/log` and loads every group.
    pub fn open(broker: Arc<Broker>, settings: GroupSettings) -> Result<Self> {
        let dir = broker.options().data_dir.join("groups").join("log");
        Self::open_in(
            broker,
            settings,
            &dir,
            SessionClock::Monotonic(Instant::now()),
        )
    }

    /// Opens the groups with sessions timed by `clock` instead of the
    /// monotonic clock: for tests that expire members without waiting.
    pub fn open_with_clock(
        broker: Arc<Broker>,
        settings: GroupSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let start = clock.now_ms();
        let dir = broker.options().data_dir.join("groups").join("log");
        Self::open_in(broker, settings, &dir, SessionClock::Given(clock, start))
    }

    fn open_in(
        broker: Arc<Broker>,
        settings: GroupSettings,
        dir: &Path,
        clock: SessionClock,
    ) -> Result<Self> {
        let loaded = Store::open(&broker.options().fs, dir, 0, settings.log_segment_bytes)?;
        let store = Arc::new(loaded.store);
        let wall: Arc<dyn Clock> = match &clock {
            SessionClock::Given(c, _) => c.clone(),
            SessionClock::Monotonic(_) => Arc::new(SystemClock),
        };
        let share = ShareGroups::open(
            broker.clone(),
            store.clone(),
            loaded.share,
            settings.share.clone(),
            wall,
        )?;
        let classic = ClassicGroups::new(ClassicSettings {
            session_timeout_ms_min: settings.session_timeout_ms_min,
            session_timeout_ms_max: settings.session_timeout_ms_max,
            group_members_max: settings.group_members_max,
            initial_rebalance_delay_ms: settings.initial_rebalance_delay_ms,
        });
        Ok(Self {
            classic,
            broker,
            settings,
            groups: Mutex::new(loaded.groups),
            store,
            clock,
            share,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// Kafka's classic-protocol groups.
    pub fn classic(&self) -> &ClassicGroups {
        &self.classic
    }

    /// Share groups. Their heartbeats go through
    /// [`Coordinator::share_heartbeat`], which keeps the names apart.
    pub fn share(&self) -> &ShareGroups {
        &self.share
    }

    /// A share-group heartbeat, refused for a name a consumer group
    /// (of either protocol) uses. A group's first join holds the consumer
    /// groups' lock, so a consumer group cannot take the name meanwhile.
    pub fn share_heartbeat(&self, req: ShareHeartbeat) -> Result<ShareHeartbeatAnswer> {
        if self.share.exists(&req.group) {
            return self.share.heartbeat(req);
        }
        let groups = self.lock();
        if groups.contains_key(&req.group) || self.classic.describe(&req.group).is_some() {
            return Err(kind_mismatch(&req.group, "consumer group", "share group"));
        }
        let answer = self.share.heartbeat(req);
        drop(groups);
        answer
    }

    /// Refuses a consumer-group use of a share group's name.
    pub fn refuse_if_share(&self, group: &str) -> Result<()> {
        if self.share.exists(group) {
            return Err(kind_mismatch(group, "share group", "consumer group"));
        }
        Ok(())
    }

    /// Members of `group` under the consumer (KIP-848) protocol.
    pub fn member_count(&self, group: &str) -> usize {
        self.lock().get(group).map_or(0, |g| g.members().len())
    }

    /// A member's subscription and holdings (a KIP-848 beat's "unchanged").
    pub fn member_holdings(
        &self,
        group: &str,
        member: &str,
    ) -> Option<(Vec<String>, BTreeSet<Tp>)> {
        let groups = self.lock();
        let m = groups.get(group)?.members().find(|m| m.id() == member)?;
        let held = m.assigned().union(m.revoking()).cloned().collect();
        Some((m.topics().iter().cloned().collect(), held))
    }

    /// Refuses the name to other uses while classic members hold it.
    fn refuse_if_classic(&self, group: &str, what: &str) -> Result<()> {
        match self.classic.describe(group) {
            Some(g) => Err(BrokerError::GroupNotEmpty {
                group: group.into(),
                members: g.members.len(),
                what: format!("{what} (its members use Kafka's classic group protocol)"),
            }),
            None => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Group>> {
        // See the module doc: the map is whole even after a panic.
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        match &self.clock {
            SessionClock::Monotonic(start) => start.elapsed().as_millis() as u64,
            SessionClock::Given(clock, start) => (clock.now_ms() - start).max(0) as u64,
        }
    }

    /// Partition counts of the existing, readable topics among `topics`.
    fn counts(&self, topics: &BTreeSet<String>) -> BTreeMap<String, u32> {
        topics
            .iter()
            .filter_map(|t| {
                let topic = self.broker.topic(t).ok()?;
                topic
                    .damage()
                    .is_none()
                    .then(|| (t.clone(), topic.partitions().len() as u32))
            })
            .collect()
    }

    fn bounded(&self, asked: u32, default: u32, what: &str) -> Result<u32> {
        let s = &self.settings;
        if asked == 0 {
            return Ok(default.clamp(s.session_timeout_ms_min, s.session_timeout_ms_max));
        }
        if asked < s.session_timeout_ms_min || asked > s.session_timeout_ms_max {
            return Err(BrokerError::InvalidArgument(format!(
                "{what} {asked} is outside [group_session_timeout_ms_min {}, group_session_timeout_ms_max {}]",
                s.session_timeout_ms_min, s.session_timeout_ms_max
            )));
        }
        Ok(asked)
    }

    /// Writes `entries` to the page cache under the groups lock; the caller
    /// syncs after releasing it.
    fn write(&self, entries: &[Entry]) -> Result<Option<u64>> {
        if entries.is_empty() {
            return Ok(None);
        }
        self.store.append(entries, SystemClock.now_ms()).map(Some)
    }

    fn sync(&self, target: Option<u64>) -> Result<()> {
        target.map_or(Ok(()), |t| self.store.sync_to(t))
    }

    /// Joins, heartbeats, reconciles or leaves.
    pub fn heartbeat(&self, req: HeartbeatRequest) -> Result<HeartbeatAnswer> {
        check_group_name(&req.group)?;
        self.refuse_if_classic(&req.group, "join it with the consumer protocol")?;
        let session_timeout_ms = self.bounded(
            req.session_timeout_ms,
            self.settings.session_timeout_ms,
            "session_timeout_ms",
        )?;
        let rebalance_timeout_ms = if req.rebalance_timeout_ms == 0 {
            self.settings.rebalance_timeout_ms
        } else {
            req.rebalance_timeout_ms
        };
        if req.topics.len() > self.settings.member_topics_max as usize {
            return Err(BrokerError::LimitExceeded {
                limit: "member_topics_max",
                max: self.settings.member_topics_max.into(),
                what: format!(
                    "a member of group {:?} subscribing to {} topics",
                    req.group,
                    req.topics.len()
                ),
            });
        }
        let topics: BTreeSet<String> = req.topics.iter().cloned().collect();
        let leaving = matches!(req.intent, Intent::Leave { .. });
        if !leaving && topics.is_empty() {
            return Err(BrokerError::InvalidArgument(format!(
                "group {:?}: a member must subscribe to at least one topic",
                req.group
            )));
        }
        let assignor = Assignor::parse(&req.assignor)?;
        let joining = matches!(req.intent, Intent::Join { .. });
        let hb = group::Heartbeat {
            intent: req.intent,
            instance_id: (!req.instance_id.is_empty()).then_some(req.instance_id),
            client_id: req.client_id,
            host: req.host,
            topics,
            session_timeout_ms,
            rebalance_timeout_ms,
        };
        let now = self.now_ms();
        // Read before any count, so a topic change racing with this call
        // makes the next heartbeat read the counts again.
        let generation = self.broker.topology_generation();
        let (reply, target) = {
            let mut groups = self.lock();
            let steady = groups
                .get_mut(&req.group)
                .and_then(|g| g.steady_heartbeat(&hb, now, generation));
            match steady {
                Some(reply) => (reply, None),
                None => {
                    let mut next = match groups.get(&req.group) {
                        Some(g) => g.clone(),
                        None if self.share.exists(&req.group) => {
                            return Err(kind_mismatch(&req.group, "share group", "consumer group"));
                        }
                        None if !joining => {
                            return Err(group::Fenced::UnknownMember {
                                group: req.group.clone(),
                                member: hb.intent.member_id().unwrap_or_default().into(),
                            }
                            .into());
                        }
                        None => {
                            self.check_groups_max(groups.len(), &req.group)?;
                            Group::new(&req.group, assignor)
                        }
                    };
                    next.set_assignor(assignor);
                    self.check_members_max(&next, &hb)?;
                    let counts = |t: &BTreeSet<String>| self.counts(t);
                    let (reply, changed) =
                        next.heartbeat(hb, now, generation, counts, new_member_id)?;
                    let target = if changed {
                        self.write(&[group_entry(&next)])?
                    } else {
                        None
                    };
                    apply(&mut groups, next);
                    (reply, target)
                }
            }
        };
        self.sync(target)?;
        Ok(HeartbeatAnswer {
            member_id: reply.member_id,
            epoch: reply.epoch,
            heartbeat_interval_ms: self
                .settings
                .heartbeat_interval_ms
                .min(session_timeout_ms / 3)
                .max(1),
            assigned: reply.assigned,
            pending: reply.pending as u32,
        })
    }

    fn check_members_max(&self, g: &Group, hb: &group::Heartbeat) -> Result<()> {
        let max = self.settings.group_members_max as usize;
        let returning = hb.instance_id.as_deref().is_some_and(|i| g.has_instance(i));
        let joining = matches!(hb.intent, Intent::Join { .. });
        if joining && g.members().len() >= max && !returning {
            return Err(BrokerError::LimitExceeded {
                limit: "group_members_max",
                max: max as u64,
                what: format!("joining group {:?}", g.id()),
            });
        }
        Ok(())
    }

    fn check_groups_max(&self, count: usize, group: &str) -> Result<()> {
        if count >= self.settings.groups_max as usize {
            return Err(BrokerError::LimitExceeded {
                limit: "groups_max",
                max: self.settings.groups_max.into(),
                what: format!("creating group {group:?}"),
            });
        }
        Ok(())
    }

    fn check_partition(&self, tp: &Tp) -> Result<()> {
        self.broker.partition(&tp.0, tp.1).map(|_| ())
    }

    /// Commits offsets. With `durable`, returns once they are fsynced.
    pub fn commit(
        &self,
        group: &str,
        committer: Committer<'_>,
        offsets: Vec<(Tp, i64, String)>,
        durable: bool,
    ) -> Result<()> {
        check_group_name(group)?;
        if committer == Committer::Standalone {
            self.refuse_if_classic(group, "commit or reset its offsets from outside")?;
        }
        for (tp, offset, metadata) in &offsets {
            self.check_partition(tp)?;
            if *offset < 0 {
                return Err(BrokerError::InvalidArgument(format!(
                    "{}/{}: offset {offset} is negative",
                    tp.0, tp.1
                )));
            }
            let max = self.settings.commit_metadata_bytes_max;
            if metadata.len() > max as usize {
                return Err(BrokerError::LimitExceeded {
                    limit: "commit_metadata_bytes_max",
                    max: max.into(),
                    what: format!("{} bytes of metadata for {}/{}", metadata.len(), tp.0, tp.1),
                });
            }
        }
        if offsets.is_empty() {
            return Ok(());
        }
        // Decide, write, then apply: memory never runs ahead of the log.
        // A failed write changes nothing; a durable commit becomes visible
        // to fetches only once it is fsynced.
        let (target, commits) = {
            let mut groups = self.lock();
            let fresh;
            let g = match groups.get(group) {
                Some(g) => g,
                None => {
                    self.refuse_if_share(group)?;
                    self.check_groups_max(groups.len(), group)?;
                    fresh = Group::new(group, Assignor::default());
                    &fresh
                }
            };
            g.check_commit(committer, offsets.iter().map(|o| &o.0))?;
            let ts = SystemClock.now_ms();
            let mut entries: Vec<Entry> = Vec::with_capacity(offsets.len() + 1);
            for (tp, offset, metadata) in &offsets {
                let value = OffsetValue {
                    offset: *offset,
                    metadata: metadata.clone(),
                    timestamp_ms: ts,
                };
                let key = Key::Offset {
                    group: group.into(),
                    tp: tp.clone(),
                };
                entries.push((key, Some(value.encode_to_vec())));
            }
            if g.is_empty() {
                // A group that exists only for its offsets still has a
                // membership record, so a restart lists it.
                let value = g.persisted().encode_to_vec();
                entries.push((Key::Group(group.into()), Some(value)));
            }
            let target = self.write(&entries)?.expect("entries are not empty");
            // Entry i of the batch is record `base + i` of the log.
            let base = target - entries.len() as u64;
            let commits: Vec<(Tp, Committed)> = offsets
                .into_iter()
                .enumerate()
                .map(|(i, (tp, offset, metadata))| {
                    let c = Committed {
                        offset,
                        metadata,
                        timestamp_ms: ts,
                        log_offset: base + i as u64,
                    };
                    (tp, c)
                })
                .collect();
            let g = groups
                .entry(group.to_string())
                .or_insert_with(|| Group::new(group, Assignor::default()));
            if !durable {
                commits
                    .into_iter()
                    .for_each(|(tp, c)| g.apply_commit(tp, c));
                return Ok(());
            }
            (target, commits)
        };
        self.sync(Some(target))?;
        let mut groups = self.lock();
        // A group deleted meanwhile stays deleted: its tombstones follow
        // this commit in the log.
        if let Some(g) = groups.get_mut(group) {
            commits
                .into_iter()
                .for_each(|(tp, c)| g.apply_commit(tp, c));
        }
        Ok(())
    }

    fn end_of(&self, tp: &Tp) -> Result<u64> {
        let p = self.broker.partition(&tp.0, tp.1)?;
        p.high_watermark()
    }

    fn infos(&self, offsets: Vec<(Tp, Option<Committed>)>) -> Vec<OffsetInfo> {
        offsets
            .into_iter()
            .map(|(tp, committed)| OffsetInfo {
                end: self.end_of(&tp),
                tp,
                committed,
            })
            .collect()
    }

    /// Committed offsets of `tps` (empty: all the group has), with lag.
    pub fn fetch_offsets(&self, group: &str, tps: Vec<Tp>) -> Result<Vec<OffsetInfo>> {
        check_group_name(group)?;
        let found: Vec<(Tp, Option<Committed>)> = {
            let groups = self.lock();
            let g = groups.get(group);
            if tps.is_empty() {
                g.map(|g| {
                    g.offsets()
                        .iter()
                        .map(|(tp, c)| (tp.clone(), Some(c.clone())))
                        .collect()
                })
                .unwrap_or_default()
            } else {
                tps.into_iter()
                    .map(|tp| {
                        let c = g.and_then(|g| g.offsets().get(&tp).cloned());
                        (tp, c)
                    })
                    .collect()
            }
        };
        Ok(self.infos(found))
    }

    /// Every group: name, state and member count.
    pub fn list(&self) -> Vec<(String, &'static str, usize)> {
        self.lock()
            .values()
            .map(|g| (g.id().to_string(), g.state(), g.members().len()))
            .collect()
    }

    /// A group's state and offsets.
    pub fn describe(&self, group: &str) -> Result<(Group, Vec<OffsetInfo>)> {
        let g = self
            .lock()
            .get(group)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownGroup(group.into()))?;
        let offsets = g
            .offsets()
            .iter()
            .map(|(tp, c)| (tp.clone(), Some(c.clone())))
            .collect();
        let infos = self.infos(offsets);
        Ok((g, infos))
    }

    fn refuse_if_active(g: &Group, what: &str) -> Result<()> {
        if g.members().len() == 0 {
            return Ok(());
        }
        Err(BrokerError::GroupNotEmpty {
            group: g.id().to_string(),
            members: g.members().len(),
            what: what.into(),
        })
    }

    /// Moves a group's committed offsets for `topic` (all its partitions if
    /// `partitions` is empty); refused while the group has members.
    pub fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: Vec<u32>,
        to: ResetTo,
    ) -> Result<Vec<OffsetInfo>> {
        check_group_name(group)?;
        let t = self.broker.topic(topic)?;
        let partitions = if partitions.is_empty() {
            (0..t.partitions().len() as u32).collect()
        } else {
            partitions
        };
        let mut offsets = Vec::new();
        for p in partitions {
            let part = t.partition(p)?;
            let stats = part.stats()?;
            let (start, end) = (stats.log_start as i64, stats.high_watermark as i64);
            let offset = match to {
                ResetTo::Earliest => start,
                ResetTo::Latest => end,
                ResetTo::Offset(o) => o.clamp(start, end),
                ResetTo::Timestamp(ts) => part
                    .offset_for_timestamp_blocking(ts)?
                    .map_or(end, |o| o as i64),
            };
            offsets.push(((topic.to_string(), p), offset, String::new()));
        }
        {
            let groups = self.lock();
            if let Some(g) = groups.get(group) {
                Self::refuse_if_active(g, "reset its offsets")?;
            }
        }
        // A member joining between the check and the commit is refused
        // by the commit's own check (standalone commits need an empty group).
        self.commit(group, Committer::Standalone, offsets.clone(), true)
            .map_err(|e| match e {
                BrokerError::Fenced(group::Fenced::GroupActive { group, members }) => {
                    BrokerError::GroupNotEmpty {
                        group,
                        members,
                        what: "reset its offsets".into(),
                    }
                }
                e => e,
            })?;
        self.fetch_offsets(group, offsets.into_iter().map(|o| o.0).collect())
    }

    /// Deletes a group and its offsets; refused while it has members.
    pub fn delete(&self, group: &str) -> Result<()> {
        self.refuse_if_classic(group, "delete it")?;
        let target = {
            let mut groups = self.lock();
            let g = groups
                .get(group)
                .ok_or_else(|| BrokerError::UnknownGroup(group.into()))?;
            Self::refuse_if_active(g, "delete it")?;
            let mut entries: Vec<Entry> = g
                .offsets()
                .keys()
                .map(|tp| {
                    (
                        Key::Offset {
                            group: group.into(),
                            tp: tp.clone(),
                        },
                        None,
                    )
                })
                .collect();
            entries.push((Key::Group(group.into()), None));
            let target = self.write(&entries)?;
            groups.remove(group);
            target
        };
        self.sync(target)?;
        tracing::info!(group, "deleted group");
        Ok(())
    }

    /// Removes members whose session or revocation time ran out. Called
    /// on a timer: a group is looked at only once one of its deadlines can
    /// have passed, and each group's change is decided, written and
    /// applied on its own, so one refused write holds back no other group.
    /// (Partition counts are followed by the members' heartbeats.)
    pub fn tick(&self) -> Result<()> {
        self.classic.tick();
        let now = self.now_ms();
        let mut target = None;
        let mut first_error = None;
        {
            let mut groups = self.lock();
            let due: Vec<String> = groups
                .values_mut()
                .filter_map(|g| g.due_to_expire(now).then(|| g.id().to_string()))
                .collect();
            for name in due {
                let mut next = groups[&name].clone();
                let decided = next
                    .expire(now, &|t: &BTreeSet<String>| self.counts(t))
                    .and_then(|gone| Ok((self.write(&[group_entry(&next)])?, gone)));
                match decided {
                    Ok((written, gone)) => {
                        for (member, why) in &gone {
                            tracing::info!(group = %name, %member, reason = why, "member removed");
                        }
                        target = target.max(written);
                        apply(&mut groups, next);
                    }
                    Err(e) => {
                        tracing::warn!(group = %name, error = %e, "expiring members failed");
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        self.sync(target)?;
        let share = self.share.tick();
        first_error.map_or(share, Err)
    }

    /// Bytes of the groups log on disk.
    pub fn log_size_bytes(&self) -> u64 {
        self.store.size_bytes()
    }

    /// Compacts the groups log if it is due (see `Store::compact_if_due`).
    pub fn compact_if_due(&self, now_ms: i64) -> Result<bool> {
        self.store
            .compact_if_due(self.broker.limits().compaction_map_bytes_max, now_ms)
    }

    /// Closes the groups log cleanly.
    pub fn close(&self) -> Result<()> {
        self.classic.close();
        self.store.close()
    }
}
