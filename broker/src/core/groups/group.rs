//! One consumer group's membership state machine (KIP-848 style), without
//! I/O: the coordinator feeds it heartbeats and the clock, persists what it
//! changes, and answers with what it returns.
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

/// Epoch a member sends to join.
pub const JOIN_EPOCH: i32 = 0;
/// Epoch a member sends to leave.
pub const LEAVE_EPOCH: i32 = -1;
/// Epoch a static member sends to leave for now (it keeps its partitions
/// for a session timeout).
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Why a heartbeat or commit is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    /// The member id is not (or no longer) in the group.
    #[error(
        "member {member:?} is not in group {group:?} (it left, timed out, or was replaced); rejoin with epoch 0"
    )]
    UnknownMember {
        /// The group.
        group: String,
        /// The member id sent.
        member: String,
    },
    /// The epoch sent is older than the member's.
    #[error(
        "member {member:?} of group {group:?} sent stale epoch {sent} (current {current}); rejoin with epoch 0"
    )]
    StaleEpoch {
        /// The group.
        group: String,
        /// The member.
        member: String,
        /// The epoch sent.
        sent: i32,
        /// The member's epoch.
        current: i32,
    },
    /// A commit for a partition the member does not own.
    #[error("member {member:?} of group {group:?} does not own {topic}/{partition}")]
    NotOwner {
        /// The group.
        group: String,
        /// The member.
        member: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// A commit without a member id while the group has members.
    #[error(
        "group {group:?} has {members} active member(s); only members may commit (send member_id and member_epoch)"
    )]
    GroupActive {
        /// The group.
        group: String,
        /// How many members it has.
        members: usize,
    },
}

/// One member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The id the broker gave it.
    pub id: String,
    /// Its static instance id, if any.
    pub instance_id: Option<String>,
    /// The client's name, for describe.
    pub client_id: String,
    /// Where it joined from, for describe.
    pub host: String,
    /// Its subscription.
    pub topics: BTreeSet<String>,
    /// How long it may go without a heartbeat.
    pub session_timeout_ms: u32,
    /// How long it may take to release revoked partitions.
    pub rebalance_timeout_ms: u32,
    /// Its epoch: the group epoch of the target it last fully reached.
    pub epoch: i32,
    /// The epoch before, still accepted once (the response that carried the
    /// new one may have been lost).
    pub previous_epoch: i32,
    /// What it may own.
    pub assigned: BTreeSet<Tp>,
    /// What it must give up and has not confirmed.
    pub revoking: BTreeSet<Tp>,
    /// A static member that left for now: its partitions wait for it.
    pub away: bool,
    /// Clock (ms) past which it is removed unless it heartbeats. Not
    /// persisted: a restarted broker gives every member a fresh session.
    pub session_deadline_ms: u64,
    /// Clock (ms) past which it is removed unless it has released its
    /// revoked partitions. Not persisted.
    pub revoke_deadline_ms: Option<u64>,
}

impl Member {
    fn owns(&self, tp: &Tp) -> bool {
        self.assigned.contains(tp) || self.revoking.contains(tp)
    }
}

/// What a heartbeat carries, as the group needs it.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Empty to join.
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves for now; else the member's epoch.
    pub epoch: i32,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// The client's name.
    pub client_id: String,
    /// The caller's address.
    pub host: String,
    /// The subscription.
    pub topics: BTreeSet<String>,
    /// Session timeout, already checked against the broker's bounds.
    pub session_timeout_ms: u32,
    /// Revocation timeout, already checked.
    pub rebalance_timeout_ms: u32,
    /// What the member owns now; `None` on join.
    pub owned: Option<BTreeSet<Tp>>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// The member's id.
    pub member_id: String,
    /// Its epoch (-1 after leaving, -2 after a static leave).
    pub epoch: i32,
    /// What it may own.
    pub assigned: BTreeSet<Tp>,
    /// Target partitions still held by others.
    pub pending: usize,
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
    pub id: String,
    /// The group epoch.
    pub epoch: i32,
    /// How it assigns.
    pub assignor: Assignor,
    /// Members by id.
    pub members: BTreeMap<String, Member>,
    /// The assignor's wish at `epoch`.
    pub target: Assignment,
    /// The partition counts the target was computed with: a topic that
    /// grows (or appears, or goes) changes them and triggers a new target.
    pub counts: BTreeMap<String, u32>,
    /// Committed offsets.
    pub offsets: BTreeMap<Tp, Committed>,
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
        }
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

    /// Handles a heartbeat at clock `now_ms`. `counts` gives the partition
    /// count of every existing topic among `topics` (after a join, of the
    /// whole new subscription). Returns the reply and whether anything that
    /// is persisted changed.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        now_ms: u64,
        counts: impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<(HeartbeatReply, bool), Fenced> {
        let mut changed = false;
        let id = match hb.epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => {
                return Ok((self.leave(&hb, now_ms, &counts), true));
            }
            JOIN_EPOCH => {
                changed = true;
                self.join(&hb, now_ms, &counts, new_member_id)
            }
            sent => {
                let Some(m) = self.members.get_mut(&hb.member_id) else {
                    return Err(Fenced::UnknownMember {
                        group: self.id.clone(),
                        member: hb.member_id,
                    });
                };
                if sent != m.epoch && sent != m.previous_epoch {
                    return Err(Fenced::StaleEpoch {
                        group: self.id.clone(),
                        member: hb.member_id,
                        sent,
                        current: m.epoch,
                    });
                }
                m.session_deadline_ms = now_ms + u64::from(hb.session_timeout_ms);
                m.session_timeout_ms = hb.session_timeout_ms;
                m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
                if let Some(owned) = &hb.owned {
                    let before = m.revoking.len();
                    m.revoking.retain(|tp| owned.contains(tp));
                    changed |= m.revoking.len() != before;
                }
                if m.topics != hb.topics {
                    m.topics = hb.topics.clone();
                    let all = self.subscribed_topics();
                    self.retarget(counts(&all));
                    changed = true;
                } else {
                    let all = self.subscribed_topics();
                    changed |= self.refresh_counts(counts(&all));
                }
                hb.member_id
            }
        };
        changed |= self.reconcile(&id, now_ms);
        self.check_invariants();
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
        self.members.remove(&hb.member_id);
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
        hb: &Heartbeat,
        now_ms: u64,
        counts: &impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
    ) -> HeartbeatReply {
        let reply = HeartbeatReply {
            member_id: hb.member_id.clone(),
            epoch: hb.epoch,
            assigned: BTreeSet::new(),
            pending: 0,
        };
        let Some(m) = self.members.get_mut(&hb.member_id) else {
            return reply; // Leaving twice is fine.
        };
        if hb.epoch == STATIC_LEAVE_EPOCH && m.instance_id.is_some() {
            // Its partitions wait for it for one session timeout.
            m.away = true;
            m.revoking.clear();
            m.revoke_deadline_ms = None;
            m.session_deadline_ms = now_ms + u64::from(m.session_timeout_ms);
        } else {
            self.remove(&hb.member_id, counts);
        }
        self.check_invariants();
        reply
    }

    /// Removes a member; its partitions are free at once.
    pub fn remove(
        &mut self,
        id: &str,
        counts: &impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
    ) {
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

    /// Removes members whose session or revocation time ran out at clock
    /// `now_ms`; returns their ids.
    pub fn expire(
        &mut self,
        now_ms: u64,
        counts: &impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
    ) -> Vec<(String, &'static str)> {
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
        self.check_invariants();
        gone
    }

    /// Checks that a commit from (`member_id`, `epoch`) of `tps` is allowed.
    pub fn check_commit<'a>(
        &self,
        member_id: &str,
        epoch: i32,
        tps: impl IntoIterator<Item = &'a Tp>,
    ) -> Result<(), Fenced> {
        if member_id.is_empty() {
            if self.members.is_empty() {
                return Ok(());
            }
            return Err(Fenced::GroupActive {
                group: self.id.clone(),
                members: self.members.len(),
            });
        }
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

    /// Asserts the ownership invariant (see the module's doc).
    pub fn check_invariants(&self) {
        let mut seen = BTreeSet::new();
        for m in self.members.values() {
            assert!(
                m.assigned.is_disjoint(&m.revoking),
                "group {}: member {} both owns and revokes a partition",
                self.id,
                m.id
            );
            for tp in m.assigned.iter().chain(&m.revoking) {
                assert!(
                    seen.insert(tp),
                    "group {}: {tp:?} owned by two members",
                    self.id
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SESSION: u32 = 1000;

    fn counts6(topics: &BTreeSet<String>) -> BTreeMap<String, u32> {
        topics.iter().map(|t| (t.clone(), 6)).collect()
    }

    fn hb(member: &str, epoch: i32, owned: Option<BTreeSet<Tp>>) -> Heartbeat {
        Heartbeat {
            member_id: member.into(),
            epoch,
            topics: ["t".to_string()].into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: SESSION,
            owned,
            ..Heartbeat::default()
        }
    }

    /// A member as its client sees it: joins, then heartbeats reporting
    /// exactly what the last reply assigned (revocations done at once).
    struct Client {
        id: String,
        epoch: i32,
        owned: BTreeSet<Tp>,
    }

    fn join(g: &mut Group, name: &str, now: u64) -> Client {
        let (r, _) = g
            .heartbeat(hb("", 0, None), now, counts6, || name.to_string())
            .unwrap();
        Client {
            id: r.member_id,
            epoch: r.epoch,
            owned: r.assigned,
        }
    }

    fn beat(g: &mut Group, c: &mut Client, now: u64) {
        let (r, _) = g
            .heartbeat(
                hb(&c.id, c.epoch, Some(c.owned.clone())),
                now,
                counts6,
                || unreachable!(),
            )
            .unwrap();
        c.epoch = r.epoch;
        c.owned = r.assigned;
    }

    #[test]
    fn partitions_move_only_after_their_owner_releases_them() {
        let mut g = Group::new("g", Assignor::Sticky);
        let mut a = join(&mut g, "a", 0);
        assert_eq!(a.owned.len(), 6);
        let mut b = join(&mut g, "b", 1);
        assert!(b.owned.is_empty(), "a still owns everything");
        beat(&mut g, &mut b, 2);
        assert!(b.owned.is_empty(), "a has not released yet");
        // a learns of the revocation: its reply shrinks to three...
        beat(&mut g, &mut a, 3);
        assert_eq!(a.owned.len(), 3);
        // ... and the next heartbeat confirms it; then b gets the rest.
        beat(&mut g, &mut a, 4);
        beat(&mut g, &mut b, 5);
        assert_eq!(b.owned.len(), 3);
        assert!(a.owned.is_disjoint(&b.owned));
        assert_eq!(g.state(), "stable");
    }

    #[test]
    fn fenced_members_cannot_heartbeat_or_commit() {
        let mut g = Group::new("g", Assignor::Sticky);
        let a = join(&mut g, "a", 0);
        let tp = a.owned.iter().next().unwrap().clone();
        g.check_commit(&a.id, a.epoch, [&tp]).unwrap();
        assert!(matches!(
            g.check_commit("", -1, [&tp]),
            Err(Fenced::GroupActive { .. })
        ));
        // The session runs out: a is removed, and a zombie a is refused.
        assert_eq!(g.expire(u64::from(SESSION) + 1, &counts6).len(), 1);
        let err = g.check_commit(&a.id, a.epoch, [&tp]).unwrap_err();
        assert!(matches!(err, Fenced::UnknownMember { .. }), "{err}");
        let err = g
            .heartbeat(hb(&a.id, a.epoch, None), 2000, counts6, || unreachable!())
            .unwrap_err();
        assert!(err.to_string().contains("rejoin"), "{err}");
        // With no members, a standalone commit is fine.
        g.check_commit("", -1, [&tp]).unwrap();
    }

    #[test]
    fn a_static_member_gets_its_partitions_back() {
        let mut g = Group::new("g", Assignor::Sticky);
        let static_hb = |id: &str, epoch| Heartbeat {
            instance_id: Some("i-1".into()),
            ..hb(id, epoch, None)
        };
        let (r, _) = g
            .heartbeat(static_hb("", 0), 0, counts6, || "one".into())
            .unwrap();
        let mut b = join(&mut g, "b", 1);
        let mut a = Client {
            id: r.member_id,
            epoch: r.epoch,
            owned: r.assigned,
        };
        for now in 2..6 {
            beat(&mut g, &mut a, now);
            beat(&mut g, &mut b, now);
        }
        let before = a.owned.clone();
        assert_eq!(before.len(), 3);
        let epoch = g.epoch;
        g.heartbeat(
            static_hb(&a.id, STATIC_LEAVE_EPOCH),
            10,
            counts6,
            || unreachable!(),
        )
        .unwrap();
        let (r, _) = g
            .heartbeat(static_hb("", 0), 11, counts6, || "two".into())
            .unwrap();
        assert_eq!(r.assigned, before, "same partitions, no rebalance");
        assert_eq!(g.epoch, epoch);
        assert!(
            g.check_commit(&a.id, a.epoch, &before).is_err(),
            "old id fenced"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        /// Random joins, leaves, crashes, slow revocations and clock jumps
        /// never give one partition to two members, and once everyone
        /// heartbeats promptly the group settles with every partition owned.
        #[test]
        fn no_partition_is_ever_owned_twice(ops in proptest::collection::vec((0u8..6, 0usize..4), 1..60)) {
            let mut g = Group::new("g", Assignor::Sticky);
            let mut clients: Vec<Option<Client>> = (0..4).map(|_| None).collect();
            let mut now = 0;
            let mut next = 0;
            for (op, i) in ops {
                now += 10;
                match (op, clients[i].is_some()) {
                    (0, false) => {
                        next += 1;
                        clients[i] = Some(join(&mut g, &format!("m{next}"), now));
                    }
                    (1, true) => {
                        let c = clients[i].take().unwrap();
                        g.heartbeat(hb(&c.id, LEAVE_EPOCH, None), now, counts6, || unreachable!()).unwrap();
                    }
                    // A heartbeat that has not yet processed its revocations:
                    // it still reports everything it had.
                    (2, true) => {
                        let c = clients[i].as_mut().unwrap();
                        let owned = c.owned.clone();
                        if let Ok((r, _)) = g.heartbeat(hb(&c.id, c.epoch, Some(owned.clone())), now, counts6, || unreachable!()) {
                            c.epoch = r.epoch;
                            c.owned = owned.union(&r.assigned).cloned().collect();
                        } else {
                            clients[i] = None;
                        }
                    }
                    (3, true) => {
                        let c = clients[i].as_mut().unwrap();
                        if g.heartbeat(hb(&c.id, c.epoch, Some(c.owned.clone())), now, counts6, || unreachable!()).map(|(r, _)| { c.epoch = r.epoch; c.owned = r.assigned; }).is_err() {
                            clients[i] = None;
                        }
                    }
                    // Time passes: maybe past sessions.
                    (4, _) => { now += u64::from(SESSION) / 2; g.expire(now, &counts6); }
                    _ => {}
                }
                // What the clients believe they own is disjoint too, for
                // every client the group still knows.
                let mut seen = BTreeSet::new();
                for c in clients.iter().flatten().filter(|c| g.members.contains_key(&c.id)) {
                    for tp in &c.owned {
                        prop_assert!(seen.insert(tp.clone()), "{tp:?} owned by two live clients");
                    }
                }
            }
            // Everyone heartbeats promptly for a while: all six partitions
            // end up owned, and the group is stable.
            for _ in 0..4 {
                now += 10;
                for slot in clients.iter_mut() {
                    if let Some(c) = slot {
                        match g.heartbeat(hb(&c.id, c.epoch, Some(c.owned.clone())), now, counts6, || unreachable!()) {
                            Ok((r, _)) => { c.epoch = r.epoch; c.owned = r.assigned; }
                            Err(_) => *slot = None,
                        }
                    }
                }
            }
            if !g.members.is_empty() {
                prop_assert_eq!(g.state(), "stable");
                let owned: usize = g.members.values().map(|m| m.assigned.len()).sum();
                prop_assert_eq!(owned, 6);
            }
        }
    }
}
