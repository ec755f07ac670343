//! Share groups on the simulated disk: the broker, its topic and the
//! groups log all live on a `SimFs`, and power is lost at random
//! operations while members fetch and ack.
//!
//! After each loss a fresh broker and coordinator open what survived, and:
//! no record whose accept or reject was acknowledged is delivered again;
//! every record never acked is delivered again; every redelivery's number
//! is higher than any the broker handed out before (so a lease from before
//! the loss stays fenced); and, at the end, every acknowledged reject is in
//! the dead-letter topic exactly once.
//!
//! Rerun a failing seed with `STRATA_PROP_SEED=N cargo test -p
//! strata-broker --test it share_power_loss::`; `STRATA_PROP_CASES` sets how
//! many seeds a run tries (default 40).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static LOSSES: AtomicU64 = AtomicU64::new(0);

use crate::common::run_seeds;
use strata_broker::core::groups::{Coordinator, GroupSettings};
use strata_broker::core::share::partition::{Ack, Delivery};
use strata_broker::core::share::state::ShareGroupValue;
use strata_broker::core::share::{ShareAck, ShareHeartbeat};
use strata_broker::core::{Acks, Broker};
use strata_broker::storage::SimFs;
use strata_proto::{Batch, BatchBuilder};

const RECORDS: u64 = 40;

fn settings() -> GroupSettings {
    let mut s = GroupSettings::default();
    // Failed deliveries come back at once, and never reach the limit, so
    // the check after a loss can ask for everything not done.
    s.share.partition.backoff_initial_ms = 0;
    s.share.partition.delivery_limit = 100;
    s
}

fn open(fs: &SimFs) -> (Arc<Broker>, Coordinator) {
    let broker =
        Arc::new(Broker::open(crate::common::sim_broker_options(fs)).expect("broker opens"));
    let coordinator = Coordinator::open(broker.clone(), settings()).expect("groups open");
    (broker, coordinator)
}

fn join(c: &Coordinator) -> Option<String> {
    let hb = ShareHeartbeat {
        group: "g".into(),
        topics: vec!["t".into()],
        create: ShareGroupValue {
            dlq_topic: "dlq".into(),
            ..ShareGroupValue::default()
        },
        ..ShareHeartbeat::default()
    };
    c.share_heartbeat(hb).ok().map(|a| a.member_id)
}

/// What the members were told.
#[derive(Default)]
struct Told {
    /// Accepts and rejects acknowledged (offset → rejected?).
    done: BTreeMap<u64, bool>,
    /// Acks attempted whose outcome is unknown (the call failed).
    maybe: BTreeSet<u64>,
    /// The highest delivery number handed out, per offset.
    delivered: BTreeMap<u64, u32>,
}

fn run(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut fs = SimFs::new();
    let (broker, mut c) = open(&fs);
    broker.create_topic("t", 1, BTreeMap::new()).expect("topic");
    let p = broker.partition("t", 0).unwrap();
    let mut b = BatchBuilder::new();
    for i in 0..RECORDS {
        b.push(0, None, Some(format!("r{i}").as_bytes()), &[]);
    }
    let w = p.write_blocking(&b.finish()).unwrap();
    p.complete_blocking(w, Acks::Durable).unwrap();
    drop((p, broker));
    let mut told = Told::default();
    let mut member = join(&c).expect("joins with the power on");
    let mut held: Vec<Delivery> = Vec::new();
    let mut power_going = false;
    for step in 0..120 {
        let ctx = format!("seed {seed} step {step} (replay with STRATA_PROP_SEED={seed})");
        if !power_going && rng.u8(0..10) == 0 {
            fs.power_off_after(rng.u64(0..30));
            power_going = true;
        }
        let mut acks = Vec::new();
        let mut kinds = Vec::new();
        let mut renewed = Vec::new();
        for _ in 0..rng.usize(0..=held.len().min(6)) {
            let d = held.swap_remove(rng.usize(0..held.len()));
            let ack = match rng.u8(0..4) {
                0 => Ack::Accept,
                1 => Ack::Reject { error: None },
                2 => Ack::Release {
                    delay_ms: Some(0),
                    error: None,
                },
                _ => Ack::Renew,
            };
            if matches!(ack, Ack::Renew) {
                renewed.push(d); // held again after this call
            }
            kinds.push((d.offset, ack.clone()));
            acks.push(ShareAck {
                tp: ("t".into(), 0),
                delivery: d,
                ack,
            });
        }
        held.extend(renewed);
        match c.share().fetch("g", &member, acks, rng.u32(0..8)) {
            Ok(f) => {
                for ((offset, ack), result) in kinds.iter().zip(&f.acks) {
                    assert!(result.is_ok(), "{ctx}: ack of {offset} refused: {result:?}");
                    match ack {
                        Ack::Accept => {
                            told.done.insert(*offset, false);
                        }
                        Ack::Reject { .. } => {
                            told.done.insert(*offset, true);
                        }
                        _ => {}
                    }
                }
                for (_, recs) in f.partitions {
                    for d in recs.found {
                        let last = told.delivered.entry(d.offset).or_default();
                        assert!(
                            d.attempt > *last,
                            "{ctx}: delivery {} of {} reused",
                            d.attempt,
                            d.offset
                        );
                        *last = d.attempt;
                        held.push(d);
                    }
                }
            }
            Err(e) => {
                assert!(power_going, "{ctx}: fetch failed with the power on: {e}");
                told.maybe.extend(kinds.iter().map(|(o, _)| *o));
            }
        }
        if power_going && fs.is_powered_off() {
            power_going = false;
            drop(c);
            fs = fs.restart(rng.u64(..));
            LOSSES.fetch_add(1, Ordering::Relaxed);
            let (_b, reopened) = open(&fs);
            c = reopened;
            // Sessions ended with the broker: restored leases expire.
            c.tick().expect("tick after the restart");
            member = join(&c).expect("joins after the restart");
            held = check(&c, &member, &mut told, &ctx);
        }
    }
    // Every acknowledged reject is in the dead-letter topic, once.
    drop(c);
    fs = fs.restart(rng.u64(..));
    let (broker, c) = open(&fs);
    c.tick().expect("tick");
    let dlq = dead_letters(&broker);
    let unique: BTreeSet<u64> = dlq.iter().copied().collect();
    assert_eq!(
        unique.len(),
        dlq.len(),
        "seed {seed}: a dead letter twice: {dlq:?}"
    );
    for (o, rejected) in &told.done {
        if *rejected {
            assert!(
                unique.contains(o),
                "seed {seed}: acknowledged reject of {o} is not in the dead-letter topic"
            );
        }
    }
}

/// After a restart: fetches everything available and checks it against
/// what the members were told; returns the new leases.
fn check(c: &Coordinator, member: &str, told: &mut Told, ctx: &str) -> Vec<Delivery> {
    // A record that failed twice comes alone: fetch until nothing comes.
    let mut got: Vec<Delivery> = Vec::new();
    loop {
        let f = c
            .share()
            .fetch("g", member, Vec::new(), 1_000)
            .expect("fetch after the restart");
        let more: Vec<Delivery> = f
            .partitions
            .into_iter()
            .flat_map(|(_, r)| r.found)
            .collect();
        if more.is_empty() {
            break;
        }
        got.extend(more);
    }
    let offsets: BTreeSet<u64> = got.iter().map(|d| d.offset).collect();
    for d in &got {
        assert!(
            !told.done.contains_key(&d.offset),
            "{ctx}: {} was acknowledged done, and came back",
            d.offset
        );
        let last = told.delivered.entry(d.offset).or_default();
        assert!(
            d.attempt > *last,
            "{ctx}: delivery {} of {} reused after the loss",
            d.attempt,
            d.offset
        );
        *last = d.attempt;
    }
    for o in 0..RECORDS {
        if !told.done.contains_key(&o) && !told.maybe.contains(&o) {
            assert!(
                offsets.contains(&o),
                "{ctx}: {o} was never acked and is not delivered again"
            );
        }
    }
    // What came back was not done; what did not come back and was maybe
    // acked was done after all.
    for o in std::mem::take(&mut told.maybe) {
        if !offsets.contains(&o) && !told.done.contains_key(&o) {
            told.done.insert(o, false);
        }
    }
    got
}

/// The source offsets in the dead-letter topic, in its order.
fn dead_letters(broker: &Broker) -> Vec<u64> {
    let Ok(p) = broker.partition("dlq", 0) else {
        return Vec::new();
    };
    let end = p.high_watermark().unwrap();
    if end == 0 {
        return Vec::new();
    }
    let read = p.read_blocking(0, 64 << 20).unwrap();
    let mut out = Vec::new();
    for b in Batch::decode_all(read.batches).unwrap() {
        for r in b.records() {
            let r = r.unwrap();
            let h = r
                .headers
                .iter()
                .find(|h| h.key == "strata.dlq.source.offset")
                .unwrap();
            out.push(
                std::str::from_utf8(h.value.as_deref().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap(),
            );
        }
    }
    out
}

#[test]
fn share_state_survives_every_power_loss() {
    run_seeds(40, run);
    println!("simulated {} power losses", LOSSES.load(Ordering::Relaxed));
}

/// Endless share traffic on one partition: the groups log's compaction
/// keeps it bounded (the update ring and the snapshots), and the state
/// replays right from what is left.
#[test]
fn the_groups_log_stays_bounded_under_endless_share_traffic() {
    const N: u64 = 4_000;
    let fs = SimFs::new();
    let mut s = settings();
    s.log_segment_bytes = 32 << 10;
    let broker = Arc::new(Broker::open(crate::common::sim_broker_options(&fs)).unwrap());
    broker.create_topic("t", 1, BTreeMap::new()).unwrap();
    let p = broker.partition("t", 0).unwrap();
    let mut b = BatchBuilder::new();
    for i in 0..N {
        b.push(0, None, Some(format!("r{i}").as_bytes()), &[]);
    }
    let w = p.write_blocking(&b.finish()).unwrap();
    p.complete_blocking(w, Acks::Durable).unwrap();
    let c = Coordinator::open(broker.clone(), s.clone()).unwrap();
    let member = join(&c).unwrap();
    let mut held: Option<Delivery> = None;
    let day_ms = 24 * 3600 * 1000;
    let mut largest = 0;
    for i in 0..N {
        let acks = held.take().map(|d| ShareAck {
            tp: ("t".into(), 0),
            delivery: d,
            ack: Ack::Accept,
        });
        let f = c
            .share()
            .fetch("g", &member, acks.into_iter().collect(), 1)
            .unwrap();
        held = f.partitions.into_iter().flat_map(|(_, r)| r.found).next();
        if i % 500 == 499 {
            c.compact_if_due(i as i64 * 2 * day_ms).unwrap();
            largest = largest.max(c.log_size_bytes());
        }
    }
    // 8,000 updates of ~60 bytes each were written (~480 KB).
    assert!(
        largest < 160 << 10,
        "the groups log grew to {largest} bytes"
    );
    let held = held.expect("the last record is held");
    assert_eq!(held.offset, N - 1);
    drop(c);
    let fs = fs.restart_process();
    let broker = Arc::new(Broker::open(crate::common::sim_broker_options(&fs)).unwrap());
    let c = Coordinator::open(broker, s).unwrap();
    let d = c.share().describe("g").unwrap();
    assert_eq!(
        d.partitions[0].start,
        N - 1,
        "every accept survived compaction"
    );
    assert_eq!(
        d.partitions[0].counts.leased, 1,
        "the last lease is restored"
    );
}
