//! One consumer group's membership state machine (KIP-848 style), without
//! I/O: the coordinator feeds it heartbeats and the clock, persists what it
//! changes, and answers with what it returns.
//!
//! Fields are private: the coordinator decides on a copy (`heartbeat`,
//! `expire`), persists the copy's [`Group::persisted`] form, and only then
//! swaps it in; replay rebuilds the same form with [`Group::restore`].
//!
//! Terms: the *group epoch* counts membership and subscription changes;
//! the *target* is what the assignor wants each member to own at that
//! epoch; a member's *assigned* set is what the broker has told it it may
//! own; *revoking* is what it was told to give up and has not yet confirmed.
//!
//! **Invariant:** a partition is in at most one member's `assigned ∪
//! revoking`. A partition leaves a member's assigned set for its revoking
//! set, and enters another member's assigned set only once no member holds
//! it in either; [`Group::check_invariants`] asserts it after every change.

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::{Assignment, Assignor, Subscriptions, Tp};
pub use super::fenced::{Committer, Fenced};
pub use super::intent::{Heartbeat, HeartbeatReply, Intent};
use super::store::{GroupValue, MemberValue, from_tps, tps};
use crate::core::error::{BrokerError, Result};

/// One member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The id the broker gave it.
    id: String,
    /// Its static instance id, if any.
    instance_id: Option<String>,
    /// The client's name, for describe.
    client_id: String,
    /// Where it joined from, for describe.
    host: String,
    /// Its subscription.
    topics: BTreeSet<String>,
    /// How long it may go without a heartbeat.
    session_timeout_ms: u32,
    /// How long it may take to release revoked partitions.
    rebalance_timeout_ms: u32,
    /// Its epoch: the group epoch of the target it last fully reached.
    epoch: i32,
    /// The epoch before, still accepted once (the response that carried the
    /// new one may have been lost).
    previous_epoch: i32,
    /// What it may own.
    assigned: BTreeSet<Tp>,
    /// What it must give up and has not confirmed.
    revoking: BTreeSet<Tp>,
    /// A static member that left for now: its partitions wait for it.
    away: bool,
    /// Clock (ms) past which it is removed unless it heartbeats. Not
    /// persisted: a restarted broker gives every member a fresh session.
    session_deadline_ms: u64,
    /// Clock (ms) past which it is removed unless it has released its
    /// revoked partitions. Not persisted.
    revoke_deadline_ms: Option<u64>,
}

impl Member {
    fn owns(&self, tp: &Tp) -> bool {
        self.assigned.contains(tp) || self.revoking.contains(tp)
    }

    /// The id the broker gave it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its static instance id, if any.
    pub fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }

    /// The client's name.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Where it joined from.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Its subscription.
    pub fn topics(&self) -> &BTreeSet<String> {
        &self.topics
    }

    /// Its session timeout.
    pub fn session_timeout_ms(&self) -> u32 {
        self.session_timeout_ms
    }

    /// Its epoch.
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// What it may own.
    pub fn assigned(&self) -> &BTreeSet<Tp> {
        &self.assigned
    }

    /// What it must give up and has not confirmed.
    pub fn revoking(&self) -> &BTreeSet<Tp> {
        &self.revoking
    }

    fn persisted(&self) -> MemberValue {
        MemberValue {
            id: self.id.clone(),
            instance_id: self.instance_id.clone().unwrap_or_default(),
            client_id: self.client_id.clone(),
            host: self.host.clone(),
            topics: self.topics.iter().cloned().collect(),
            session_timeout_ms: self.session_timeout_ms,
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            epoch: self.epoch,
            previous_epoch: self.previous_epoch,
            assigned: tps(&self.assigned),
            revoking: tps(&self.revoking),
            away: self.away,
        }
    }

    /// A member as persisted, with a fresh session (and revocation window)
    /// from `now_ms`: its clock stopped with the broker.
    fn restored(m: MemberValue, now_ms: u64) -> Self {
        let revoking = from_tps(m.revoking);
        Self {
            instance_id: (!m.instance_id.is_empty()).then_some(m.instance_id),
            client_id: m.client_id,
            host: m.host,
            topics: m.topics.into_iter().collect(),
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            epoch: m.epoch,
            previous_epoch: m.previous_epoch,
            assigned: from_tps(m.assigned),
            revoke_deadline_ms: (!revoking.is_empty())
                .then(|| now_ms + u64::from(m.rebalance_timeout_ms)),
            revoking,
            away: m.away,
            session_deadline_ms: now_ms + u64::from(m.session_timeout_ms),
            id: m.id,
        }
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The next offset to read.
    pub offset: i64,
    /// The application's note.
    pub metadata: String,
    /// When it was committed (wall clock, ms).
    pub timestamp_ms: i64,
    /// Offset of its record in the groups log: a commit applied late
    /// (after its fsync) never replaces a newer one.
    pub log_offset: u64,
}

/// One group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its name.
    id: String,
    /// The group epoch.
    epoch: i32,
    /// How it assigns.
    assignor: Assignor,
    /// Members by id.
    members: BTreeMap<String, Member>,
    /// The assignor's wish at `epoch`.
    target: Assignment,
    /// The partition counts the target was computed with: a topic that
    /// grows (or appears, or goes) changes them and triggers a new target.
    counts: BTreeMap<String, u32>,
    /// Committed offsets.
    offsets: BTreeMap<Tp, Committed>,
    /// The broker's topology generation `counts` were last read at (not
    /// persisted; 0 never matches, so a restored group rereads them).
    counts_generation: u64,
    /// No member's session or revocation deadline is before this clock
    /// (ms): a lower bound, so the periodic check skips the group until
    /// then (not persisted).
    deadline_floor_ms: u64,
}

impl Group {
    /// An empty group.
    pub fn new(id: &str, assignor: Assignor) -> Self {
        Self {
            id: id.into(),
            epoch: 0,
            assignor,
            members: BTreeMap::new(),
            target: Assignment::new(),
            counts: BTreeMap::new(),
            offsets: BTreeMap::new(),
            counts_generation: 0,
            deadline_floor_ms: u64::MAX,
        }
    }

    /// Its name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The group epoch.
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// How it assigns.
    pub fn assignor(&self) -> Assignor {
        self.assignor
    }

    /// Sets the assignor; only an empty group takes a new one.
    pub fn set_assignor(&mut self, assignor: Assignor) {
        if self.members.is_empty() {
            self.assignor = assignor;
        }
    }

    /// Its members, by id.
    pub fn members(&self) -> impl ExactSizeIterator<Item = &Member> {
        self.members.values()
    }

    /// Whether `instance_id` is a member's static id.
    pub fn has_instance(&self, instance_id: &str) -> bool {
        self.members
            .values()
            .any(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// What the assignor wants member `id` to own.
    pub fn target_of(&self, id: &str) -> Option<&BTreeSet<Tp>> {
        self.target.get(id)
    }

    /// Committed offsets.
    pub fn offsets(&self) -> &BTreeMap<Tp, Committed> {
        &self.offsets
    }

    /// Neither members nor offsets: nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.offsets.is_empty()
    }

    /// Applies a commit that is in the log, unless a newer one of the same
    /// partition is applied already (a durable commit is applied after its
    /// fsync, possibly after a later commit that did not wait).
    pub fn apply_commit(&mut self, tp: Tp, c: Committed) {
        if self
            .offsets
            .get(&tp)
            .is_none_or(|old| old.log_offset <= c.log_offset)
        {
            self.offsets.insert(tp, c);
        }
    }

    /// Applies an offset's tombstone.
    pub fn remove_offset(&mut self, tp: &Tp) {
        self.offsets.remove(tp);
    }

    /// The persisted form of the membership.
    pub fn persisted(&self) -> GroupValue {
        GroupValue {
            epoch: self.epoch,
            assignor: self.assignor.as_str().into(),
            members: self.members.values().map(Member::persisted).collect(),
            target: self
                .target
                .iter()
                .map(|(m, set)| super::store::TargetValue {
                    member: m.clone(),
                    partitions: tps(set),
                })
                .collect(),
            counts: self.counts.clone(),
        }
    }

    /// Replaces the membership with its persisted form (`None`: the
    /// membership's tombstone); offsets stay. Every member gets a fresh
    /// session from `now_ms`.
    pub fn restore(&mut self, value: Option<GroupValue>, now_ms: u64) {
        let offsets = std::mem::take(&mut self.offsets);
        *self = Self::new(&std::mem::take(&mut self.id), Assignor::default());
        self.offsets = offsets;
        let Some(v) = value else { return };
        self.epoch = v.epoch;
        self.assignor = Assignor::parse(&v.assignor).unwrap_or_default();
        self.counts = v.counts;
        self.target = v
            .target
            .into_iter()
            .map(|t| (t.member, from_tps(t.partitions)))
            .collect();
        self.members = v
            .members
            .into_iter()
            .map(|m| (m.id.clone(), Member::restored(m, now_ms)))
            .collect();
        self.deadline_floor_ms = now_ms;
    }

    /// "empty", "reconciling" or "stable".
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "empty"
        } else if self.members.values().all(|m| {
            m.epoch == self.epoch
                && m.revoking.is_empty()
                && self.target.get(&m.id) == Some(&m.assigned)
        }) {
            "stable"
        } else {
            "reconciling"
        }
    }

    /// The topics any member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.topics.clone())
            .collect()
    }

    fn owner(&self, tp: &Tp) -> Option<&str> {
        self.members
            .values()
            .find(|m| m.owns(tp))
            .map(|m| m.id.as_str())
    }

    /// Recomputes the target for a new group epoch.
    fn retarget(&mut self, counts: BTreeMap<String, u32>) {
        self.epoch += 1;
        let subs: Subscriptions = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        self.target = self.assignor.assign(&subs, &counts, &self.target);
        self.counts = counts;
    }

    /// Applies a new set of partition counts (from the topics the members
    /// subscribe to); returns whether the target changed.
    pub fn refresh_counts(&mut self, counts: BTreeMap<String, u32>) -> bool {
        if counts == self.counts || self.members.is_empty() {
            return false;
        }
        self.retarget(counts);
        true
    }

    /// The common heartbeat of a member that has reached its target, with
    /// nothing to report and the topics unchanged since `generation`: only
    /// its session is extended, which is not persisted, so the coordinator
    /// needs neither a copy nor a write. `None`: take [`Group::heartbeat`].
    pub fn steady_heartbeat(
        &mut self,
        hb: &Heartbeat,
        now_ms: u64,
        generation: u64,
    ) -> Option<HeartbeatReply> {
        let Intent::Beat {
            member_id,
            epoch: sent,
            ..
        } = &hb.intent
        else {
            return None;
        };
        if generation != self.counts_generation {
            return None;
        }
        let epoch = self.epoch;
        let target = self.target.get(member_id);
        let m = self.members.get_mut(member_id)?;
        let steady = (*sent == m.epoch || *sent == m.previous_epoch)
            && m.epoch == epoch
            && !m.away
            && m.revoking.is_empty()
            && target.map_or(m.assigned.is_empty(), |t| *t == m.assigned)
            && m.topics == hb.topics
            && m.session_timeout_ms == hb.session_timeout_ms
            && m.rebalance_timeout_ms == hb.rebalance_timeout_ms;
        if !steady {
            return None;
        }
        m.session_deadline_ms = now_ms + u64::from(hb.session_timeout_ms);
        // A shorter session than before moves the deadline earlier.
        self.deadline_floor_ms = self.deadline_floor_ms.min(m.session_deadline_ms);
        Some(HeartbeatReply {
            member_id: m.id.clone(),
            epoch: m.epoch,
            assigned: m.assigned.clone(),
            pending: 0,
        })
    }

    /// Handles a heartbeat at clock `now_ms`. `counts` gives the partition
    /// count of every existing topic among `topics` (after a join, of the
    /// whole new subscription), as of topology `generation`: the counts are
    /// reread only when it moved. Returns the reply and whether anything
    /// that is persisted changed. On an error the group may be half
    /// changed: the coordinator decides on a copy and drops it.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        now_ms: u64,
        generation: u64,
        counts: impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<(HeartbeatReply, bool)> {
        let mut changed = false;
        let id = match &hb.intent {
            Intent::Leave { member_id, for_now } => {
                let reply = self.leave(member_id, *for_now, now_ms, &counts);
                self.check_invariants()?;
                self.refresh_deadline_floor();
                return Ok((reply, true));
            }
            Intent::Join { previous_id } => {
                changed = true;
                self.counts_generation = generation;
                self.join(previous_id.as_deref(), &hb, now_ms, &counts, new_member_id)
            }
            Intent::Beat {
                member_id,
                epoch: sent,
                owned,
            } => {
                let Some(m) = self.members.get_mut(member_id) else {
                    return Err(Fenced::UnknownMember {
                        group: self.id.clone(),
                        member: member_id.clone(),
                    }
                    .into());
                };
                if *sent != m.epoch && *sent != m.previous_epoch {
                    return Err(Fenced::StaleEpoch {
                        group: self.id.clone(),
                        member: member_id.clone(),
                        sent: *sent,
                        current: m.epoch,
                    }
                    .into());
                }
                m.session_deadline_ms = now_ms + u64::from(hb.session_timeout_ms);
                changed |= m.session_timeout_ms != hb.session_timeout_ms
                    || m.rebalance_timeout_ms != hb.rebalance_timeout_ms;
                m.session_timeout_ms = hb.session_timeout_ms;
                m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
                let before = m.revoking.len();
                m.revoking.retain(|tp| owned.contains(tp));
                changed |= m.revoking.len() != before;
                if m.topics != hb.topics {
                    m.topics = hb.topics.clone();
                    let all = self.subscribed_topics();
                    self.retarget(counts(&all));
                    self.counts_generation = generation;
                    changed = true;
                } else if generation != self.counts_generation {
                    let all = self.subscribed_topics();
                    changed |= self.refresh_counts(counts(&all));
                    self.counts_generation = generation;
                }
                member_id.clone()
            }
        };
        changed |= self.reconcile(&id, now_ms);
        self.check_invariants()?;
        self.refresh_deadline_floor();
        let m = &self.members[&id];
        let pending = self
            .target
            .get(&id)
            .map_or(0, |t| t.difference(&m.assigned).count());
        Ok((
            HeartbeatReply {
                member_id: id,
                epoch: m.epoch,
                assigned: m.assigned.clone(),
                pending,
            },
            changed,
        ))
    }

    fn join(
        &mut self,
        previous_id: Option<&str>,
        hb: &Heartbeat,
        now_ms: u64,
        counts: &impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
        new_member_id: impl FnOnce() -> String,
    ) -> String {
        let deadline = now_ms + u64::from(hb.session_timeout_ms);
        // A static member coming back (or restarting after a crash) takes
        // the place of its predecessor, partitions included; the old id is
        // fenced.
        let previous = hb.instance_id.as_ref().and_then(|iid| {
            self.members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(iid))
                .map(|m| m.id.clone())
        });
        let id = new_member_id();
        if let Some(old) = previous {
            let mut m = self.members.remove(&old).expect("found above");
            m.id = id.clone();
            m.away = false;
            m.client_id = hb.client_id.clone();
            m.host = hb.host.clone();
            m.session_timeout_ms = hb.session_timeout_ms;
            m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
            m.session_deadline_ms = deadline;
            // The new process owns nothing yet: what the old one was
            // revoking is released, what it was assigned is handed over.
            m.revoking.clear();
            m.revoke_deadline_ms = None;
            let same_topics = m.topics == hb.topics;
            m.topics = hb.topics.clone();
            if let Some(t) = self.target.remove(&old) {
                self.target.insert(id.clone(), t);
            }
            self.members.insert(id.clone(), m);
            if !same_topics {
                let all = self.subscribed_topics();
                self.retarget(counts(&all));
            }
            return id;
        }
        // A member that rejoins under its own id starts over.
        if let Some(old) = previous_id {
            self.members.remove(old);
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: hb.instance_id.clone(),
                client_id: hb.client_id.clone(),
                host: hb.host.clone(),
                topics: hb.topics.clone(),
                session_timeout_ms: hb.session_timeout_ms,
                rebalance_timeout_ms: hb.rebalance_timeout_ms,
                epoch: 0,
                previous_epoch: 0,
                assigned: BTreeSet::new(),
                revoking: BTreeSet::new(),
                away: false,
                session_deadline_ms: deadline,
                revoke_deadline_ms: None,
            },
        );
        let all = self.subscribed_topics();
        self.retarget(counts(&all));
        id
    }

    fn leave(
        &mut self,
        member_id: &str,
        for_now: bool,
        now_ms: u64,
        counts: &impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
    ) -> HeartbeatReply {
        let mut reply = HeartbeatReply {
            member_id: member_id.to_string(),
            epoch: 0,
            assigned: BTreeSet::new(),
            pending: 0,
        };
        let Some(m) = self.members.get_mut(member_id) else {
            return reply; // Leaving twice is fine.
        };
        reply.epoch = m.epoch;
        if for_now && m.instance_id.is_some() {
            // Its partitions wait for it for one session timeout.
            m.away = true;
            m.revoking.clear();
            m.revoke_deadline_ms = None;
            m.session_deadline_ms = now_ms + u64::from(m.session_timeout_ms);
        } else {
            self.remove(member_id, counts);
        }
        reply
    }

    /// Removes a member; its partitions are free at once.
    fn remove(&mut self, id: &str, counts: &impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            let all = self.subscribed_topics();
            self.retarget(counts(&all));
        }
    }

    /// Moves member `id` toward its target: revoke first; once nothing is
    /// being revoked, take the new epoch and the free target partitions.
    fn reconcile(&mut self, id: &str, now_ms: u64) -> bool {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let epoch = self.epoch;
        let m = self.members.get_mut(id).expect("reconcile a member");
        let before = (m.epoch, m.assigned.clone(), m.revoking.clone());
        let revoke: Vec<Tp> = m.assigned.difference(&target).cloned().collect();
        for tp in revoke {
            m.assigned.remove(&tp);
            m.revoking.insert(tp);
        }
        if m.revoking.is_empty() {
            m.revoke_deadline_ms = None;
        } else if m.revoke_deadline_ms.is_none() {
            m.revoke_deadline_ms = Some(now_ms + u64::from(m.rebalance_timeout_ms));
        }
        if m.revoking.is_empty() {
            if m.epoch != epoch {
                m.previous_epoch = m.epoch;
                m.epoch = epoch;
            }
            let wanted: Vec<Tp> = target.difference(&m.assigned).cloned().collect();
            for tp in wanted {
                if self.owner(&tp).is_none() {
                    self.members
                        .get_mut(id)
                        .expect("member")
                        .assigned
                        .insert(tp);
                }
            }
        }
        let m = &self.members[id];
        before != (m.epoch, m.assigned.clone(), m.revoking.clone())
    }

    /// Whether [`Group::expire`] at clock `now_ms` would remove a member.
    /// Cheap while no deadline can have passed; otherwise it walks the
    /// members once and tightens the group's deadline floor.
    pub fn due_to_expire(&mut self, now_ms: u64) -> bool {
        if now_ms <= self.deadline_floor_ms {
            return false;
        }
        self.refresh_deadline_floor();
        now_ms > self.deadline_floor_ms
    }

    fn refresh_deadline_floor(&mut self) {
        self.deadline_floor_ms = self
            .members
            .values()
            .flat_map(|m| [Some(m.session_deadline_ms), m.revoke_deadline_ms])
            .flatten()
            .min()
            .unwrap_or(u64::MAX);
    }

    /// Removes members whose session or revocation time ran out at clock
    /// `now_ms`; returns their ids and why.
    pub fn expire(
        &mut self,
        now_ms: u64,
        counts: &impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
    ) -> Result<Vec<(String, &'static str)>> {
        let gone: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if now_ms > m.session_deadline_ms {
                    Some((m.id.clone(), "session timed out"))
                } else if m.revoke_deadline_ms.is_some_and(|d| now_ms > d) {
                    Some((m.id.clone(), "did not release revoked partitions in time"))
                } else {
                    None
                }
            })
            .collect();
        for (id, _) in &gone {
            self.remove(id, counts);
        }
        self.check_invariants()?;
        self.refresh_deadline_floor();
        Ok(gone)
    }

    /// Checks that a commit from `committer` of `tps` is allowed.
    pub fn check_commit<'a>(
        &self,
        committer: Committer<'_>,
        tps: impl IntoIterator<Item = &'a Tp>,
    ) -> Result<(), Fenced> {
        let (member_id, epoch) = match committer {
            Committer::Standalone | Committer::Classic if self.members.is_empty() => return Ok(()),
            Committer::Standalone | Committer::Classic => {
                return Err(Fenced::GroupActive {
                    group: self.id.clone(),
                    members: self.members.len(),
                });
            }
            Committer::Member { id, epoch } => (id, epoch),
        };
        let Some(m) = self.members.get(member_id) else {
            return Err(Fenced::UnknownMember {
                group: self.id.clone(),
                member: member_id.into(),
            });
        };
        if epoch != m.epoch && epoch != m.previous_epoch {
            return Err(Fenced::StaleEpoch {
                group: self.id.clone(),
                member: member_id.into(),
                sent: epoch,
                current: m.epoch,
            });
        }
        for tp in tps {
            if !m.owns(tp) {
                return Err(Fenced::NotOwner {
                    group: self.id.clone(),
                    member: member_id.into(),
                    topic: tp.0.clone(),
                    partition: tp.1,
                });
            }
        }
        Ok(())
    }

    /// Checks the ownership invariant (see the module's doc). A violation
    /// is a bug in this file; the coordinator drops the decision that made
    /// it and answers INTERNAL, and the group stays as it was.
    pub fn check_invariants(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for m in self.members.values() {
            if !m.assigned.is_disjoint(&m.revoking) {
                return Err(BrokerError::Internal(format!(
                    "group {:?}: member {} both owns and revokes a partition",
                    self.id, m.id
                )));
            }
            for tp in m.assigned.iter().chain(&m.revoking) {
                if !seen.insert(tp) {
                    return Err(BrokerError::Internal(format!(
                        "group {:?}: {}/{} owned by two members",
                        self.id, tp.0, tp.1
                    )));
                }
            }
        }
        Ok(())
    }
}
