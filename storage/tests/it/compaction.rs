//! Compaction against a model on random workloads: appends of keyed
//! records and tombstones, clock jumps, passes with small key maps (so the
//! dirty part takes several), clean reopens and crashes, in any order.
//! After every step the log must hold only original records at their
//! offsets, the newest record of every key (unless it is a tombstone past
//! its retention, and then nothing of that key), and lose nothing else that
//! is not superseded. At the end, a full pass leaves each key at most once.
//!
//! The same workload runs a second time on the simulated disk with power
//! losses at random operations (inside passes and swaps too), in fsync
//! mode: after each, the log must open and the same rules hold for every
//! acknowledged record; a record whose append failed as the power went may
//! be there or not.
//!
//! Every failure names its seed; rerun one with `STRATA_PROP_SEED=N cargo
//! test -p strata-storage --test it compaction::`. `STRATA_PROP_CASES` sets how
//! many seeds a run tries (default 30 on the real disk, 150 simulated).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::*;
use strata_batch::BatchBuilder;
use strata_storage::{
    Clock, CompactOptions, Durability, Log, LogConfig, Offset, SimFs, StorageError,
};

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

/// Power losses the simulated runs went through.
static LOSSES: AtomicU64 = AtomicU64::new(0);

/// Where a run keeps its log: a temporary directory, or the simulated disk.
enum Disk {
    Real(tempfile::TempDir),
    Sim(SimFs),
}

fn run_real(seed: u64) {
    run(seed, Disk::Real(tempfile::tempdir().unwrap()));
}

fn run_sim(seed: u64) {
    run(seed, Disk::Sim(SimFs::new()));
}

fn run(seed: u64, mut disk: Disk) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let clock = ManualClock::new(1_000_000);
    let dir: PathBuf = match &disk {
        Disk::Real(d) => d.path().to_owned(),
        Disk::Sim(_) => Path::new("/data/topics/c/0").to_owned(),
    };
    let sim = matches!(disk, Disk::Sim(_));
    let mut config = LogConfig {
        segment_bytes_max: rng.u64(1024..4096),
        index_interval_bytes: rng.u32(64..512),
        index_bytes_max: 4096,
        batch_bytes_max: 1024,
        durability: if sim || rng.bool() {
            Durability::Fsync
        } else {
            Durability::PageCache
        },
        keys_required: true,
        clock: clock.clone(),
        // Few open sealed segments: passes and reads close and reopen
        // segment files all the time.
        open_segments: strata_storage::open_segments::OpenSegments::new(rng.usize(1..4)),
        seal_in_background: !sim,
        ..LogConfig::default()
    };
    if let Disk::Sim(fs) = &disk {
        config.fs = Arc::new(fs.clone());
    }
    let retention_ms = rng.i64(0..3_000);
    let keys = rng.u8(2..16);
    let mut log = Log::open(&dir, config.clone()).unwrap();
    let mut all: Vec<Rec> = Vec::new();
    let mut ts: BTreeMap<u64, i64> = BTreeMap::new();
    // Records of appends that failed as the power went: there or not.
    let mut maybe: Vec<Rec> = Vec::new();
    // Steps left until the power goes (simulated disk only).
    let mut power_going = false;
    for step in 0..rng.usize(40..120) {
        let ctx = format!("seed {seed} step {step} (replay with STRATA_PROP_SEED={seed})");
        let op = if power_going {
            rng.choice([0, 6]).unwrap()
        } else {
            rng.u8(0..if sim { 11 } else { 10 })
        };
        match op {
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
                let base = log.log_end().0;
                let (info, into) = match log.append(&b.finish()) {
                    Ok(info) => (info.base_offset.0, &mut all),
                    Err(_) if power_going => (base, &mut maybe),
                    Err(e) => panic!("{ctx}: append: {e}"),
                };
                for (i, (k, v)) in recs.into_iter().enumerate() {
                    let o = info + i as u64;
                    into.push((o, k, v));
                    ts.insert(o, now);
                }
            }
            5 => clock.advance(rng.i64(0..2_000)),
            6 | 7 => {
                let opts = CompactOptions {
                    map_bytes_max: rng.usize(50..2_000),
                    delete_retention_ms: retention_ms,
                };
                if let Err(e) = log.compact(&opts) {
                    assert!(power_going, "{ctx}: compact: {e}");
                }
            }
            8 => {
                log.close().unwrap();
                drop(log);
                if let Disk::Sim(fs) = &mut disk {
                    *fs = fs.restart_process();
                    config.fs = Arc::new(fs.clone());
                }
                log = Log::open(&dir, config.clone())
                    .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            }
            9 => {
                drop(log); // a crash: no close
                if let Disk::Sim(fs) = &mut disk {
                    *fs = fs.restart_process();
                    config.fs = Arc::new(fs.clone());
                }
                log = Log::open(&dir, config.clone())
                    .unwrap_or_else(|e| panic!("{ctx}: reopen after crash: {e}"));
            }
            _ => {
                let Disk::Sim(fs) = &disk else {
                    unreachable!("power losses are simulated")
                };
                fs.power_off_after(rng.u64(0..60));
                power_going = true;
            }
        }
        if let Disk::Sim(fs) = &mut disk
            && power_going
            && fs.is_powered_off()
        {
            power_going = false;
            drop(log);
            *fs = fs.restart(rng.u64(..));
            config.fs = Arc::new(fs.clone());
            LOSSES.fetch_add(1, Ordering::Relaxed);
            log = Log::open(&dir, config.clone())
                .unwrap_or_else(|e| panic!("{ctx}: open after power loss: {e}"));
            // What of the unacknowledged appends survived is acknowledged now.
            let present: HashSet<u64> = read_all(&log).iter().map(|r| r.0).collect();
            all.extend(maybe.drain(..).filter(|r| present.contains(&r.0)));
            // Offsets of lost records are given out again.
            ts.retain(|o, _| *o < log.log_end().0 || present.contains(o));
        }
        if power_going {
            continue;
        }
        let horizon = clock.now_ms() - retention_ms;
        check(&read_all(&log), &all, &ts, horizon, &ctx);
    }
    // Everything sealed, then full passes: below the cleaned offset every
    // key is left at most once.
    let ctx = format!("seed {seed} final (replay with STRATA_PROP_SEED={seed})");
    if power_going {
        // Finish what the power would have ended; nothing is lost here.
        if let Disk::Sim(fs) = &disk {
            fs.power_off_after(u64::MAX / 2);
        }
        all.append(&mut maybe);
    }
    log.close().unwrap();
    drop(log);
    if let Disk::Sim(fs) = &mut disk {
        *fs = fs.restart_process();
        config.fs = Arc::new(fs.clone());
    }
    let log = Log::open(&dir, config.clone()).unwrap();
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
    run_seeds(30, run_real);
}

#[test]
fn compaction_keeps_every_acknowledged_record_through_power_losses() {
    run_seeds(150, run_sim);
    println!("simulated {} power losses", LOSSES.load(Ordering::Relaxed));
}
