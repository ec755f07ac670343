//! The group coordinator on the simulated disk: the broker, its
//! topics and the groups log all live on a `SimFs`.
//!
//! - A commit, heartbeat or expiry the log refuses changes nothing in
//!   memory.
//! - A seeded model test: durable and non-durable commits of several
//!   groups, with power losses at random operations; after each, a fresh
//!   broker and coordinator open what survived, and every partition's
//!   committed offset is one that was committed, never older than the last
//!   commit acknowledged as durable.
//!
//!
//! Membership under power loss is `membership_power_loss.rs`.
//!
//! Rerun a failing seed with `STRATA_PROP_SEED=N cargo test -p
//! strata-broker --test it groups_power_loss::`; `STRATA_PROP_CASES` sets how
//! many seeds a run tries (default 60).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::run_seeds;
use strata_broker::core::Broker;
use strata_broker::core::groups::{Committer, Coordinator, GroupSettings};
use strata_broker::storage::SimFs;

static LOSSES: AtomicU64 = AtomicU64::new(0);
const PARTITIONS: u32 = 6;

fn open(fs: &SimFs, settings: &GroupSettings) -> (Arc<Broker>, Coordinator) {
    let options = crate::common::sim_broker_options(fs);
    let broker = Arc::new(Broker::open(options).expect("broker opens"));
    let coordinator = Coordinator::open(broker.clone(), settings.clone()).expect("groups open");
    (broker, coordinator)
}

fn tp(p: u32) -> (String, u32) {
    ("t".to_string(), p)
}

#[test]
fn a_commit_the_log_refuses_changes_nothing() {
    let fs = SimFs::new();
    let settings = GroupSettings {
        commit_metadata_bytes_max: 64 << 10,
        ..GroupSettings::default()
    };
    let (broker, groups) = open(&fs, &settings);
    broker
        .create_topic("t", 300, BTreeMap::new())
        .expect("topic");
    groups
        .commit(
            "g",
            Committer::Standalone,
            vec![(tp(0), 5, String::new())],
            true,
        )
        .unwrap();
    // 300 partitions with 60 KB of metadata each: a batch over the groups
    // log's batch_bytes_max (16 MiB).
    let big: Vec<_> = (0..300).map(|p| (tp(p), 9, "m".repeat(60_000))).collect();
    let err = groups
        .commit("g", Committer::Standalone, big, true)
        .unwrap_err();
    assert!(err.to_string().contains("batch_bytes_max"), "{err}");
    let infos = groups.fetch_offsets("g", vec![]).unwrap();
    let committed: Vec<_> = infos
        .iter()
        .filter_map(|i| i.committed.as_ref().map(|c| (i.tp.1, c.offset)))
        .collect();
    assert_eq!(committed, vec![(0, 5)], "memory ran ahead of the log");
    // A group the failed commit would have created is not left behind.
    let big: Vec<_> = (0..300).map(|p| (tp(p), 9, "m".repeat(60_000))).collect();
    assert!(
        groups
            .commit("fresh", Committer::Standalone, big, true)
            .is_err()
    );
    assert!(
        groups.fetch_offsets("fresh", vec![]).is_err() || {
            let infos = groups.fetch_offsets("fresh", vec![]).unwrap();
            infos.iter().all(|i| i.committed.is_none())
        }
    );
}

/// Every commit attempted for one (group, partition), in order, and
/// whether it was acknowledged as durable.
type History = Vec<(i64, bool)>;

fn run(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let settings = GroupSettings::default();
    let mut fs = SimFs::new();
    let (broker, mut groups) = open(&fs, &settings);
    broker
        .create_topic("t", PARTITIONS, BTreeMap::new())
        .expect("topic");
    drop(broker);
    let mut history: BTreeMap<(String, u32), History> = BTreeMap::new();
    let mut next_offset = 1i64;
    let mut power_going = false;
    for step in 0..150 {
        let ctx = format!("seed {seed} step {step} (replay with STRATA_PROP_SEED={seed})");
        if !power_going && rng.u8(0..12) == 0 {
            fs.power_off_after(rng.u64(0..20));
            power_going = true;
        }
        let group = format!("g{}", rng.u8(0..3));
        let parts: Vec<u32> = (0..rng.u32(1..4)).map(|_| rng.u32(0..PARTITIONS)).collect();
        let durable = rng.u8(0..4) != 0;
        let offsets: Vec<_> = parts
            .iter()
            .map(|&p| {
                next_offset += 1;
                (tp(p), next_offset, format!("{step}"))
            })
            .collect();
        let result = groups.commit(&group, Committer::Standalone, offsets.clone(), durable);
        match &result {
            Ok(()) => {}
            Err(e) => assert!(power_going, "{ctx}: commit failed with the power on: {e}"),
        }
        for ((_, p), offset, _) in offsets {
            let acked_durable = durable && result.is_ok();
            history
                .entry((group.clone(), p))
                .or_default()
                .push((offset, acked_durable));
        }
        if power_going && fs.is_powered_off() {
            power_going = false;
            drop(groups);
            fs = fs.restart(rng.u64(..));
            LOSSES.fetch_add(1, Ordering::Relaxed);
            let (_broker, reopened) = open(&fs, &settings);
            groups = reopened;
            check(&groups, &mut history, &ctx);
        }
    }
}

/// Checks what survived against the history, then makes the history what
/// the store holds now: recovery fsyncs what it kept, so it is durable.
fn check(groups: &Coordinator, history: &mut BTreeMap<(String, u32), History>, ctx: &str) {
    for ((group, p), attempts) in history.iter_mut() {
        let got = groups
            .fetch_offsets(group, vec![tp(*p)])
            .ok()
            .and_then(|infos| infos.into_iter().next())
            .and_then(|i| i.committed)
            .map(|c| c.offset);
        let last_durable = attempts.iter().rposition(|&(_, d)| d);
        match got {
            None => assert!(
                last_durable.is_none(),
                "{ctx}: {group} {p}: durable commit {:?} is gone",
                last_durable.map(|i| attempts[i].0)
            ),
            Some(offset) => {
                let at = attempts
                    .iter()
                    .position(|&(o, _)| o == offset)
                    .unwrap_or_else(|| panic!("{ctx}: {group} {p}: {offset} was never committed"));
                assert!(
                    last_durable.is_none_or(|d| at >= d),
                    "{ctx}: {group} {p}: {offset} is older than the durable commit {}",
                    attempts[last_durable.unwrap()].0
                );
            }
        }
        *attempts = got.map(|o| vec![(o, true)]).unwrap_or_default();
    }
}

#[test]
fn durable_commits_survive_every_power_loss() {
    run_seeds(60, run);
    println!("simulated {} power losses", LOSSES.load(Ordering::Relaxed));
}

#[test]
fn a_member_subscribing_past_member_topics_max_is_refused_by_name() {
    use strata_broker::core::groups::HeartbeatRequest;
    let fs = SimFs::new();
    let settings = GroupSettings {
        member_topics_max: 2,
        ..GroupSettings::default()
    };
    let (broker, groups) = open(&fs, &settings);
    for t in ["a", "b", "c"] {
        broker.create_topic(t, 1, BTreeMap::new()).unwrap();
    }
    let join = |topics: &[&str]| HeartbeatRequest {
        group: "g".into(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        ..HeartbeatRequest::default()
    };
    let err = groups.heartbeat(join(&["a", "b", "c"])).unwrap_err();
    assert!(err.to_string().contains("member_topics_max"), "{err}");
    assert!(groups.heartbeat(join(&["a", "b"])).is_ok());
}
