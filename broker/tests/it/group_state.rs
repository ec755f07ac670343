//! One group's membership state machine on its own, without I/O: the
//! KIP-848 rules (revoke before assign, fencing, static members) and a
//! property test that no partition is ever owned by two members.
//! `STRATA_PROP_SEED` does not apply: proptest prints and replays its own
//! failing cases (`proptest-regressions/`).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use strata_broker::core::groups::group::{Fenced, Group, Heartbeat, HeartbeatReply, Intent};
use strata_broker::core::groups::{Assignor, Committer, Tp};

const SESSION: u32 = 1000;

/// Heartbeats as the coordinator does: the steady shortcut where it
/// applies, checked against the full state machine on a copy (same reply,
/// nothing persisted changes), else the full path.
trait Call {
    fn call(
        &mut self,
        hb: Heartbeat,
        now: u64,
        new_id: impl FnOnce() -> String,
    ) -> Result<(HeartbeatReply, bool), strata_broker::core::BrokerError>;
}

impl Call for Group {
    fn call(
        &mut self,
        hb: Heartbeat,
        now: u64,
        new_id: impl FnOnce() -> String,
    ) -> Result<(HeartbeatReply, bool), strata_broker::core::BrokerError> {
        let mut full = self.clone();
        if let Some(reply) = self.steady_heartbeat(&hb, now, 1) {
            let (r, changed) = full.heartbeat(hb, now, 1, counts6, new_id).unwrap();
            assert_eq!(reply, r, "the steady shortcut answers as the full path");
            assert!(!changed, "the steady shortcut changes nothing persisted");
            assert_eq!(self.persisted(), full.persisted());
            return Ok((reply, false));
        }
        let answer = full.heartbeat(hb, now, 1, counts6, new_id);
        if answer.is_ok() {
            *self = full;
        }
        answer
    }
}

fn counts6(topics: &BTreeSet<String>) -> BTreeMap<String, u32> {
    topics.iter().map(|t| (t.clone(), 6)).collect()
}

fn with(intent: Intent) -> Heartbeat {
    Heartbeat {
        intent,
        topics: ["t".to_string()].into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: SESSION,
        ..Heartbeat::default()
    }
}

fn hb(member: &str, epoch: i32, owned: BTreeSet<Tp>) -> Heartbeat {
    with(Intent::Beat {
        member_id: member.into(),
        epoch,
        owned,
    })
}

fn join_hb() -> Heartbeat {
    with(Intent::Join { previous_id: None })
}

fn leave_hb(member: &str, for_now: bool) -> Heartbeat {
    with(Intent::Leave {
        member_id: member.into(),
        for_now,
    })
}

/// A member as its client sees it: joins, then heartbeats reporting
/// exactly what the last reply assigned (revocations done at once).
struct Client {
    id: String,
    epoch: i32,
    owned: BTreeSet<Tp>,
}

fn join(g: &mut Group, name: &str, now: u64) -> Client {
    let (r, _) = g.call(join_hb(), now, || name.to_string()).unwrap();
    Client {
        id: r.member_id,
        epoch: r.epoch,
        owned: r.assigned,
    }
}

fn beat(g: &mut Group, c: &mut Client, now: u64) {
    let (r, _) = g
        .call(hb(&c.id, c.epoch, c.owned.clone()), now, || unreachable!())
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
    g.check_commit(
        Committer::Member {
            id: &a.id,
            epoch: a.epoch,
        },
        [&tp],
    )
    .unwrap();
    assert!(matches!(
        g.check_commit(Committer::Standalone, [&tp]),
        Err(Fenced::GroupActive { .. })
    ));
    // The session runs out: a is removed, and a zombie a is refused.
    assert_eq!(g.expire(u64::from(SESSION) + 1, &counts6).unwrap().len(), 1);
    let err = g
        .check_commit(
            Committer::Member {
                id: &a.id,
                epoch: a.epoch,
            },
            [&tp],
        )
        .unwrap_err();
    assert!(matches!(err, Fenced::UnknownMember { .. }), "{err}");
    let err = g
        .call(hb(&a.id, a.epoch, a.owned.clone()), 2000, || unreachable!())
        .unwrap_err();
    assert!(err.to_string().contains("rejoin"), "{err}");
    // With no members, a standalone commit is fine.
    g.check_commit(Committer::Standalone, [&tp]).unwrap();
}

#[test]
fn a_static_member_gets_its_partitions_back() {
    let mut g = Group::new("g", Assignor::Sticky);
    let static_hb = |hb: Heartbeat| Heartbeat {
        instance_id: Some("i-1".into()),
        ..hb
    };
    let (r, _) = g.call(static_hb(join_hb()), 0, || "one".into()).unwrap();
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
    let epoch = g.epoch();
    g.call(static_hb(leave_hb(&a.id, true)), 10, || unreachable!())
        .unwrap();
    let (r, _) = g.call(static_hb(join_hb()), 11, || "two".into()).unwrap();
    assert_eq!(r.assigned, before, "same partitions, no rebalance");
    assert_eq!(g.epoch(), epoch);
    assert!(
        g.check_commit(
            Committer::Member {
                id: &a.id,
                epoch: a.epoch
            },
            &before
        )
        .is_err(),
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
                    g.call(leave_hb(&c.id, false), now, || unreachable!()).unwrap();
                }
                // A heartbeat that has not yet processed its revocations:
                // it still reports everything it had.
                (2, true) => {
                    let c = clients[i].as_mut().unwrap();
                    let owned = c.owned.clone();
                    if let Ok((r, _)) = g.call(hb(&c.id, c.epoch, owned.clone()), now, || unreachable!()) {
                        c.epoch = r.epoch;
                        c.owned = owned.union(&r.assigned).cloned().collect();
                    } else {
                        clients[i] = None;
                    }
                }
                (3, true) => {
                    let c = clients[i].as_mut().unwrap();
                    if g.call(hb(&c.id, c.epoch, c.owned.clone()), now, || unreachable!()).map(|(r, _)| { c.epoch = r.epoch; c.owned = r.assigned; }).is_err() {
                        clients[i] = None;
                    }
                }
                // Time passes: maybe past sessions.
                (4, _) => { now += u64::from(SESSION) / 2; g.expire(now, &counts6).unwrap(); }
                _ => {}
            }
            // What the clients believe they own is disjoint too, for
            // every client the group still knows.
            let mut seen = BTreeSet::new();
            for c in clients.iter().flatten().filter(|c| g.members().any(|m| m.id() == c.id)) {
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
                    match g.call(hb(&c.id, c.epoch, c.owned.clone()), now, || unreachable!()) {
                        Ok((r, _)) => { c.epoch = r.epoch; c.owned = r.assigned; }
                        Err(_) => *slot = None,
                    }
                }
            }
        }
        if g.members().len() > 0 {
            prop_assert_eq!(g.state(), "stable");
            let owned: usize = g.members().map(|m| m.assigned().len()).sum();
            prop_assert_eq!(owned, 6);
        }
    }
}
