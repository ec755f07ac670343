//! Compaction against a model on random workloads: appends of keyed
//! records and tombstones, clock jumps, passes with small key maps (so the
//! dirty part takes several), clean reopens and crashes, in any order.
//! After every step the log must hold only original records at their
//! offsets, the newest record of every key (unless it is a tombstone past
//! its retention, and then nothing of that key), and lose nothing else that
//! is not superseded. At the end, a full pass leaves each key at most once.
//!
//! Every failure names its seed; rerun one with `STRATA_PROP_SEED=N cargo
//! test -p strata-broker --test compaction`. `STRATA_PROP_CASES` sets how
//! many seeds a run tries (default 30).

mod common;

use std::collections::{BTreeMap, HashSet};

use common::*;
use strata_broker::storage::{
    Clock, CompactOptions, Durability, Log, LogConfig, Offset, StorageError,
};
use strata_proto::BatchBuilder;

/// (offset, key, value) of a record; `None` value: a tombstone.
type Rec = (u64, Vec<u8>, Option<Vec<u8>>);

fn read_all(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    log.for_each_record(Offset(0), |r| {
        out.push((
            r.offset as u64,
            r.key.unwrap().to_vec(),
            r.value.map(|v| v.to_vec()),
        ));
        Ok::<(), StorageError>(())
    })
    .unwrap();
    out
}

/// The model's rules (see the module doc), at tombstone horizon `horizon`.
fn check(got: &[Rec], all: &[Rec], ts: &BTreeMap<u64, i64>, horizon: i64, ctx: &str) {
    let by_offset: BTreeMap<u64, &Rec> = all.iter().map(|r| (r.0, r)).collect();
    let mut last = None;
    for r in got {
        assert!(last < Some(r.0), "{ctx}: offsets out of order at {}", r.0);
        last = Some(r.0);
        assert_eq!(
            by_offset.get(&r.0),
            Some(&r),
            "{ctx}: not the original record"
        );
    }
    let present: HashSet<u64> = got.iter().map(|r| r.0).collect();
    let keys_present: HashSet<&Vec<u8>> = got.iter().map(|r| &r.1).collect();
    let mut newest: BTreeMap<&Vec<u8>, u64> = BTreeMap::new();
    for r in all {
        newest.insert(&r.1, r.0);
    }
    for r in all {
        if present.contains(&r.0) {
            continue;
        }
        let superseded = newest[&r.1] > r.0;
        let expired = r.2.is_none() && ts[&r.0] < horizon && !keys_present.contains(&r.1);
        assert!(superseded || expired, "{ctx}: lost {r:?}");
    }
}

fn run(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let clock = ManualClock::new(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes_max: rng.u64(1024..4096),
        index_interval_bytes: rng.u32(64..512),
        index_bytes_max: 4096,
        batch_bytes_max: 1024,
        durability: if rng.bool() {
            Durability::Fsync
        } else {
            Durability::PageCache
        },
        keys_required: true,
        clock: clock.clone(),
        ..LogConfig::default()
    };
    let retention_ms = rng.i64(0..3_000);
    let keys = rng.u8(2..16);
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    let mut all: Vec<Rec> = Vec::new();
    let mut ts: BTreeMap<u64, i64> = BTreeMap::new();
    for step in 0..rng.usize(40..120) {
        let ctx = format!("seed {seed} step {step} (replay with STRATA_PROP_SEED={seed})");
        match rng.u8(0..10) {
            0..=4 => {
                let now = clock.now_ms();
                let mut b = BatchBuilder::new();
                let mut recs = Vec::new();
                for _ in 0..rng.usize(1..5) {
                    let key = vec![rng.u8(0..keys)];
                    let value = (rng.u8(0..6) != 0).then(|| {
                        (0..rng.usize(0..40))
                            .map(|_| rng.u8(..))
                            .collect::<Vec<u8>>()
                    });
                    b.push(now, Some(&key), value.as_deref(), &[]);
                    recs.push((key, value));
                }
                let info = log
                    .append(&b.finish())
                    .unwrap_or_else(|e| panic!("{ctx}: append: {e}"));
                for (i, (k, v)) in recs.into_iter().enumerate() {
                    let o = info.base_offset.0 + i as u64;
                    all.push((o, k, v));
                    ts.insert(o, now);
                }
            }
            5 => clock.advance(rng.i64(0..2_000)),
            6 | 7 => {
                let opts = CompactOptions {
                    map_bytes_max: rng.usize(50..2_000),
                    delete_retention_ms: retention_ms,
                };
                log.compact(&opts)
                    .unwrap_or_else(|e| panic!("{ctx}: compact: {e}"));
            }
            8 => {
                log.close().unwrap();
                drop(log);
                log = Log::open(dir.path(), config.clone())
                    .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            }
            _ => {
                drop(log); // a crash: no close
                log = Log::open(dir.path(), config.clone())
                    .unwrap_or_else(|e| panic!("{ctx}: reopen after crash: {e}"));
            }
        }
        let horizon = clock.now_ms() - retention_ms;
        check(&read_all(&log), &all, &ts, horizon, &ctx);
    }
    // Everything sealed, then full passes: below the cleaned offset every
    // key is left at most once.
    let ctx = format!("seed {seed} final (replay with STRATA_PROP_SEED={seed})");
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), config.clone()).unwrap();
    let opts = CompactOptions {
        map_bytes_max: 1 << 20,
        delete_retention_ms: retention_ms,
    };
    let mut report = log.compact(&opts).unwrap();
    while report.more {
        report = log.compact(&opts).unwrap();
    }
    // A pass maps only the dirty part; one more from a cleaned log must
    // find nothing left to remove below where the last one ended.
    let again = log.compact(&opts).unwrap();
    assert_eq!(again.records_removed, 0, "{ctx}: {again:?}");
    let got = read_all(&log);
    check(&got, &all, &ts, clock.now_ms() - retention_ms, &ctx);
    let mut seen = HashSet::new();
    for r in got.iter().filter(|r| r.0 < report.cleaned_to) {
        assert!(
            seen.insert(&r.1),
            "{ctx}: key {:?} twice below {}",
            r.1,
            report.cleaned_to
        );
    }
}

#[test]
fn compaction_matches_the_model_on_random_workloads() {
    run_seeds(30, run);
}
