//! Topic administration on the simulated disk, with power losses in the
//! middle of it: creates (through `staging/` and one rename), deletes
//! (one rename into `trash/`), grows (new partition directories, then
//! `topic.meta`), and durable appends between them.
//!
//! After every loss a fresh broker must open what survived, with every
//! topic whole (no damage, every partition readable), and:
//! - a topic whose create was acknowledged exists, with at least the
//!   partitions acknowledged (a grow that got no answer may or may not
//!   have happened), unless a later delete was acknowledged;
//! - a topic whose delete was acknowledged is gone, unless a later create
//!   of the name was;
//! - every partition of a topic that survived holds at least the records
//!   acknowledged as durable since it was created.
//!
//! Rerun a failing seed with `STRATA_PROP_SEED=N cargo test -p
//! strata-broker --test it admin_power_loss::`; `STRATA_PROP_CASES` sets how
//! many seeds a run tries (default 60).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::{make_batch, run_seeds};
use strata_broker::core::{Acks, Broker};
use strata_broker::storage::SimFs;

static LOSSES: AtomicU64 = AtomicU64::new(0);
const NAMES: [&str; 3] = ["a", "b", "c"];

fn open(fs: &SimFs, ctx: &str) -> Broker {
    let options = crate::common::sim_broker_options(fs);
    Broker::open(options).unwrap_or_else(|e| panic!("{ctx}: the broker does not open: {e}"))
}

/// What the test knows of one topic name.
#[derive(Debug, Clone, PartialEq)]
enum Known {
    /// No such topic.
    Absent,
    /// The topic exists with at least `partitions` (at most `up_to`, if a
    /// grow got no answer), each holding at least `durable[p]` records.
    Present {
        partitions: u32,
        up_to: u32,
        durable: Vec<u64>,
    },
    /// An operation on it got no answer: it may exist or not.
    Unsure,
}

fn run(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut fs = SimFs::new();
    let mut broker = open(&fs, &format!("seed {seed}: first open"));
    let mut known: BTreeMap<&str, Known> = NAMES.iter().map(|&n| (n, Known::Absent)).collect();
    let mut power_going = false;
    for step in 0..120 {
        let ctx = format!("seed {seed} step {step} (replay with STRATA_PROP_SEED={seed})");
        if !power_going && rng.u8(0..8) == 0 {
            fs.power_off_after(rng.u64(0..30));
            power_going = true;
        }
        let name = NAMES[rng.usize(0..NAMES.len())];
        let k = known.get_mut(name).unwrap();
        match rng.u8(0..10) {
            0..=1 => {
                let n = rng.u32(1..4);
                match broker.create_topic(name, n, BTreeMap::new()) {
                    Ok(_) => {
                        *k = Known::Present {
                            partitions: n,
                            up_to: n,
                            durable: vec![0; n as usize],
                        }
                    }
                    Err(e) if power_going => {
                        if *k != Known::Absent || !e.to_string().contains("exists") {
                            *k = Known::Unsure;
                        }
                    }
                    Err(e) => assert!(
                        e.to_string().contains("exists"),
                        "{ctx}: create {name}: {e}"
                    ),
                }
            }
            2 => match broker.delete_topic(name) {
                Ok(()) => *k = Known::Absent,
                Err(_) if power_going => *k = Known::Unsure,
                Err(e) => assert!(*k == Known::Absent, "{ctx}: delete {name}: {e}"),
            },
            3 => {
                let Known::Present {
                    partitions, up_to, ..
                } = k
                else {
                    continue;
                };
                let to = *partitions + rng.u32(1..3);
                match broker.create_partitions(name, to) {
                    Ok(_) => {
                        let Known::Present {
                            partitions,
                            up_to,
                            durable,
                        } = k
                        else {
                            unreachable!()
                        };
                        (*partitions, *up_to) = (to, to);
                        durable.resize(to as usize, 0);
                    }
                    Err(_) if power_going => *up_to = to.max(*up_to),
                    Err(e) => panic!("{ctx}: grow {name} to {to}: {e}"),
                }
            }
            _ => {
                let Known::Present {
                    partitions,
                    durable,
                    ..
                } = k
                else {
                    continue;
                };
                let p = rng.u32(0..*partitions);
                let result = broker
                    .partition(name, p)
                    .and_then(|part| {
                        let written = part.write_blocking(&make_batch("r", 2, step as i64))?;
                        part.complete_blocking(written, Acks::Written)
                    })
                    .map_err(|e| e.to_string());
                match result {
                    Ok(info) if info.durable => {
                        durable[p as usize] = durable[p as usize].max(info.last_offset.0 + 1);
                    }
                    Ok(_) => {}
                    Err(e) => assert!(power_going, "{ctx}: append to {name}/{p}: {e}"),
                }
            }
        }
        if power_going && fs.is_powered_off() {
            power_going = false;
            drop(broker);
            fs = fs.restart(rng.u64(..));
            LOSSES.fetch_add(1, Ordering::Relaxed);
            broker = open(&fs, &ctx);
            check(&broker, &mut known, &ctx);
        }
    }
}

/// Checks what survived against what was acknowledged, then makes the
/// knowledge what the broker holds now (recovery made it durable).
fn check(broker: &Broker, known: &mut BTreeMap<&str, Known>, ctx: &str) {
    for (name, k) in known.iter_mut() {
        let found = broker.topic(name).ok();
        if let Some(t) = &found {
            assert!(
                t.damage().is_none(),
                "{ctx}: {name} is damaged: {:?}",
                t.damage()
            );
        }
        match (&*k, &found) {
            (Known::Absent, Some(_)) => panic!("{ctx}: deleted topic {name} came back"),
            (Known::Present { .. }, None) => panic!("{ctx}: created topic {name} is gone"),
            (
                Known::Present {
                    partitions,
                    up_to,
                    durable,
                },
                Some(t),
            ) => {
                let n = t.partitions().len() as u32;
                assert!(
                    (*partitions..=*up_to).contains(&n),
                    "{ctx}: {name} has {n} partitions, not {partitions} to {up_to}"
                );
                for (p, &want) in durable.iter().enumerate() {
                    let end = t.partitions()[p].stats().unwrap().log_end;
                    assert!(
                        end >= want,
                        "{ctx}: {name}/{p} ends at {end}, below the durable {want}"
                    );
                }
            }
            _ => {}
        }
        *k = match found {
            None => Known::Absent,
            Some(t) => {
                let parts = t.partitions();
                let durable: Vec<u64> = parts
                    .iter()
                    .map(|p| {
                        p.stats()
                            .unwrap_or_else(|e| panic!("{ctx}: {name}/{}: {e}", p.id()))
                            .log_end
                    })
                    .collect();
                let n = parts.len() as u32;
                Known::Present {
                    partitions: n,
                    up_to: n,
                    durable,
                }
            }
        };
    }
}

#[test]
fn topic_administration_survives_every_power_loss() {
    run_seeds(60, run);
    println!("simulated {} power losses", LOSSES.load(Ordering::Relaxed));
}
