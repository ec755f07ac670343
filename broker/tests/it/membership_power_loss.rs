//! Group membership on the simulated disk, with a clock the test drives.
//!
//! - A heartbeat or an expiry whose write the disk refuses (full) changes
//!   nothing in memory, and goes through once there is space again.
//! - A seeded model test: members of a few groups join, heartbeat (as a
//!   client does, reporting what it was last told), leave and time out,
//!   with power losses at random operations. After each loss, a fresh
//!   broker and coordinator open what survived, and every group's
//!   membership is one the coordinator decided at or after the last change
//!   it acknowledged, with no partition owned twice.
//!
//! Rerun a failing seed with `STRATA_PROP_SEED=N cargo test -p
//! strata-broker --test it membership_power_loss::`; `STRATA_PROP_CASES` sets
//! how many seeds a run tries (default 60).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::{ManualClock, run_seeds};
use strata_broker::core::groups::store::GroupValue;
use strata_broker::core::groups::{Coordinator, GroupSettings, HeartbeatRequest, Intent, Tp};
use strata_broker::core::{Broker, BrokerError};
use strata_broker::storage::SimFs;

static LOSSES: AtomicU64 = AtomicU64::new(0);
const SESSION_MS: u32 = 100;

fn settings() -> GroupSettings {
    GroupSettings {
        session_timeout_ms: SESSION_MS,
        session_timeout_ms_min: 10,
        ..GroupSettings::default()
    }
}

fn open(fs: &SimFs, clock: &Arc<ManualClock>) -> (Arc<Broker>, Coordinator) {
    let options = crate::common::sim_broker_options(fs);
    let broker = Arc::new(Broker::open(options).expect("broker opens"));
    let groups = Coordinator::open_with_clock(broker.clone(), settings(), clock.clone())
        .expect("groups open");
    (broker, groups)
}

fn join(group: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        group: group.into(),
        topics: vec!["t".into()],
        ..HeartbeatRequest::default()
    }
}

/// A group's persisted membership as the coordinator holds it (`None`: no
/// such group), after checking that no partition has two owners.
fn membership(groups: &Coordinator, group: &str, ctx: &str) -> Option<GroupValue> {
    match groups.describe(group) {
        Ok((g, _)) => {
            if let Err(e) = g.check_invariants() {
                panic!("{ctx}: {e}");
            }
            Some(g.persisted())
        }
        Err(BrokerError::UnknownGroup(_)) => None,
        Err(e) => panic!("{ctx}: describe {group}: {e}"),
    }
}

#[test]
fn a_heartbeat_or_expiry_the_disk_refuses_changes_nothing() {
    let fs = SimFs::new();
    let clock = ManualClock::new(0);
    let (broker, groups) = open(&fs, &clock);
    broker.create_topic("t", 4, BTreeMap::new()).unwrap();
    let a = groups.heartbeat(join("g")).unwrap();
    let before = membership(&groups, "g", "a joined");

    fs.set_space_bytes_max(Some(fs.used_bytes()));
    let err = groups.heartbeat(join("g")).unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(membership(&groups, "g", "refused join"), before);
    // A heartbeat that changes nothing needs no write: a's session goes on.
    let steady = HeartbeatRequest {
        intent: Intent::Beat {
            member_id: a.member_id.clone(),
            epoch: a.epoch,
            owned: a.assigned.clone(),
        },
        ..join("g")
    };
    assert_eq!(groups.heartbeat(steady).unwrap().assigned, a.assigned);
    // a's session runs out, but its removal cannot be written: a stays.
    clock.advance(i64::from(SESSION_MS) + 1);
    let err = groups.tick().unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(membership(&groups, "g", "refused expiry"), before);

    fs.set_space_bytes_max(None);
    groups.tick().unwrap();
    // a was its only member and it has no offsets: the group is gone.
    assert_eq!(membership(&groups, "g", "expired"), None);
    let b = groups.heartbeat(join("g")).unwrap();
    assert_eq!(b.assigned.len(), 4, "b owns everything");
}

/// A member as its client sees it.
#[derive(Debug, Clone)]
struct Client {
    group: String,
    id: String,
    epoch: i32,
    owned: BTreeSet<Tp>,
}

/// Every membership the coordinator held for one group, in order, and the
/// index of the last one it acknowledged as durable.
#[derive(Debug, Default)]
struct History {
    states: Vec<Option<GroupValue>>,
    acked: usize,
}

impl History {
    /// Records the state after an operation; `ok` says whether the
    /// operation was acknowledged (which makes a state it changed durable).
    fn record(&mut self, now: Option<GroupValue>, ok: bool) {
        if self.states.last() != Some(&now) {
            self.states.push(now);
            if ok {
                self.acked = self.states.len() - 1;
            }
        }
    }
}

fn run(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let clock = ManualClock::new(0);
    let mut fs = SimFs::new();
    let (broker, mut groups) = open(&fs, &clock);
    broker.create_topic("t", 6, BTreeMap::new()).expect("topic");
    drop(broker);
    let names = ["g0", "g1"];
    let mut history: BTreeMap<&str, History> = names
        .iter()
        .map(|&g| {
            let h = History {
                states: vec![None],
                acked: 0,
            };
            (g, h)
        })
        .collect();
    let mut clients: Vec<Option<Client>> = vec![None; 5];
    let mut power_going = false;
    for step in 0..200 {
        let ctx = format!("seed {seed} step {step} (replay with STRATA_PROP_SEED={seed})");
        if !power_going && rng.u8(0..15) == 0 {
            fs.power_off_after(rng.u64(0..12));
            power_going = true;
        }
        let slot = rng.usize(0..clients.len());
        let (group, result) = match (rng.u8(0..10), clients[slot].clone()) {
            (0..=2, None) => {
                let group = names[rng.usize(0..names.len())];
                let r = groups.heartbeat(join(group));
                if let Ok(a) = &r {
                    clients[slot] = Some(Client {
                        group: group.into(),
                        id: a.member_id.clone(),
                        epoch: a.epoch,
                        owned: a.assigned.clone(),
                    });
                }
                (group, r.map(drop))
            }
            (3, Some(c)) => {
                let leave = HeartbeatRequest {
                    intent: Intent::Leave {
                        member_id: c.id.clone(),
                        for_now: false,
                    },
                    ..join(&c.group)
                };
                clients[slot] = None;
                let group = names.iter().find(|&&g| g == c.group).unwrap();
                (*group, groups.heartbeat(leave).map(drop))
            }
            (4..=7, Some(c)) => {
                let hb = HeartbeatRequest {
                    intent: Intent::Beat {
                        member_id: c.id.clone(),
                        epoch: c.epoch,
                        owned: c.owned.clone(),
                    },
                    ..join(&c.group)
                };
                let r = groups.heartbeat(hb);
                match &r {
                    Ok(a) => {
                        let c = clients[slot].as_mut().unwrap();
                        c.epoch = a.epoch;
                        c.owned = a.assigned.clone();
                    }
                    Err(BrokerError::Fenced(_)) => clients[slot] = None,
                    Err(_) => {}
                }
                let group = names.iter().find(|&&g| g == c.group).unwrap();
                (*group, r.map(drop))
            }
            (8, _) => {
                // Time passes, maybe past some sessions.
                clock.advance(rng.i64(0..i64::from(SESSION_MS)));
                let r = groups.tick();
                for g in names {
                    let now = membership(&groups, g, &ctx);
                    history.get_mut(g).unwrap().record(now, r.is_ok());
                }
                continue;
            }
            _ => continue,
        };
        if let (false, Err(e)) = (power_going, &result) {
            assert!(
                matches!(e, BrokerError::Fenced(_)),
                "{ctx}: failed with the power on: {e}"
            );
        }
        let now = membership(&groups, group, &ctx);
        history.get_mut(group).unwrap().record(now, result.is_ok());
        if power_going && fs.is_powered_off() {
            power_going = false;
            drop(groups);
            fs = fs.restart(rng.u64(..));
            LOSSES.fetch_add(1, Ordering::Relaxed);
            let (_broker, reopened) = open(&fs, &clock);
            groups = reopened;
            for (g, h) in history.iter_mut() {
                let got = membership(&groups, g, &ctx);
                let at = h.states[h.acked..]
                    .iter()
                    .position(|s| *s == got)
                    .unwrap_or_else(|| {
                        panic!(
                            "{ctx}: {g}: after the power loss the membership is {got:?}, \
                             not one decided since the last acknowledged {:?}",
                            h.states[h.acked]
                        )
                    });
                // What recovery opened is durable from now on.
                h.states = vec![h.states[h.acked + at].clone()];
                h.acked = 0;
            }
        }
    }
}

#[test]
fn membership_survives_every_power_loss() {
    run_seeds(60, run);
    println!("simulated {} power losses", LOSSES.load(Ordering::Relaxed));
}
