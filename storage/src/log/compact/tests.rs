//! Unit tests of `compact`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicI64;

use strata_batch::BatchBuilder;

use super::*;
use crate::{Clock, Durability, LogConfig, Offset};
use std::fs;

#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn config(clock: &Arc<TestClock>) -> LogConfig {
    LogConfig {
        segment_bytes_max: 1024,
        index_interval_bytes: 100,
        index_bytes_max: 1024,
        batch_bytes_max: 1024,
        durability: Durability::PageCache,
        keys_required: true,
        clock: clock.clone(),
        ..LogConfig::default()
    }
}

/// (offset, key, value) of every record, read from the start.
fn read_all(log: &Log) -> Vec<(u64, Vec<u8>, Option<Vec<u8>>)> {
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

fn append(log: &Log, records: &[(u8, Option<&str>, i64)]) {
    let mut b = BatchBuilder::new();
    for (k, v, ts) in records {
        b.push(*ts, Some(&[*k]), v.map(str::as_bytes), &[]);
    }
    log.append(&b.finish()).unwrap();
}

const OPTS: CompactOptions = CompactOptions {
    map_bytes_max: 1 << 20,
    delete_retention_ms: 1_000,
};

type Rec = (u64, Vec<u8>, Option<Vec<u8>>);

/// Record `i` of `sample`: keys 0..8 written over and over, then old
/// tombstones for keys 3 (at 32) and 5 (at 33), a recent one for key 7
/// (at 39, time 59 500), and fillers with keys of their own that push
/// the active segment past all of that.
fn sample_record(i: u64) -> (u8, Option<String>, i64) {
    match i {
        32 => (3, None, 1_032),
        33 => (5, None, 1_033),
        39 => (7, None, 59_500),
        34..=38 => (
            [0, 1, 2, 4, 6][(i - 34) as usize],
            Some(format!("v{i}")),
            1_000,
        ),
        40.. => (100 + (i - 40) as u8, Some(format!("v{i}")), 1_000),
        _ => ((i % 8) as u8, Some(format!("v{i}")), 1_000 + i as i64),
    }
}

const SAMPLE_LEN: u64 = 70;

fn sample(dir: &Path, clock: &Arc<TestClock>) -> Log {
    let log = Log::open(dir, config(clock)).unwrap();
    for i in 0..SAMPLE_LEN {
        let (k, v, ts) = sample_record(i);
        append(&log, &[(k, v.as_deref(), ts)]);
    }
    log
}

fn originals() -> Vec<Rec> {
    (0..SAMPLE_LEN)
        .map(|i| {
            let (k, v, _) = sample_record(i);
            (i, vec![k], v.map(String::into_bytes))
        })
        .collect()
}

/// The model: what one full pass over the records below `cut` leaves
/// at time `now`.
fn compacted(cut: u64, now: i64) -> Vec<Rec> {
    let horizon = now - OPTS.delete_retention_ms;
    let mut newest: BTreeMap<u8, u64> = BTreeMap::new();
    for i in 0..cut {
        newest.insert(sample_record(i).0, i);
    }
    originals()
        .into_iter()
        .filter(|(o, k, v)| {
            *o >= cut || (newest[&k[0]] == *o && !(v.is_none() && sample_record(*o).2 < horizon))
        })
        .collect()
}

/// Closes cleanly and reopens, so every segment but the active one is
/// sealed and compactable.
fn reopen(log: Log, dir: &Path, clock: &Arc<TestClock>) -> Log {
    log.close().unwrap();
    drop(log);
    Log::open(dir, config(clock)).unwrap()
}

#[test]
fn compaction_keeps_the_newest_record_per_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(60_000)));
    let log = reopen(sample(dir.path(), &clock), dir.path(), &clock);
    let before = log.segment_count();
    let cut = log.segment_bases().last().unwrap().0;
    assert!(cut > 40, "the sample's keys all lie in sealed segments");
    let r = log.compact(&OPTS).unwrap();
    assert!(!r.more);
    assert_eq!(r.cleaned_to, cut);
    assert_eq!(r.tombstones_removed, 2, "{r:?}");
    assert!(
        log.segment_count() < before,
        "small segments are merged: {r:?}"
    );
    let got = read_all(&log);
    assert_eq!(got, compacted(cut, 60_000));
    // Offsets are kept, and the log reopens the same.
    let log = reopen(log, dir.path(), &clock);
    assert_eq!(read_all(&log), got);
    assert_eq!(log.log_start().0, 0);
    // A second pass with nothing new changes nothing.
    let r = log.compact(&OPTS).unwrap();
    assert_eq!((r.records_removed, r.tombstones_removed), (0, 0));
    assert_eq!(read_all(&log), got);
}

#[test]
fn tombstones_stay_until_their_retention_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    // At 1 500 the tombstones written at 1 032 and 1 033 are younger
    // than delete.retention.ms (1 000).
    let clock = Arc::new(TestClock(AtomicI64::new(1_500)));
    let log = reopen(sample(dir.path(), &clock), dir.path(), &clock);
    let cut = log.segment_bases().last().unwrap().0;
    let r = log.compact(&OPTS).unwrap();
    assert_eq!(r.tombstones_removed, 0);
    let got = read_all(&log);
    assert_eq!(got, compacted(cut, 1_500));
    assert!(
        got.iter()
            .any(|(o, k, v)| *o == 32 && k == &[3] && v.is_none())
    );
    assert!(
        !got.iter().any(|(o, k, _)| *o < 32 && k == &[3]),
        "older values of 3 are gone"
    );
    clock.0.store(60_000, Ordering::SeqCst);
    let r = log.compact(&OPTS).unwrap();
    assert_eq!(r.tombstones_removed, 2);
    assert!(
        !read_all(&log)
            .iter()
            .any(|(_, k, _)| k == &[3] || k == &[5])
    );
    assert_eq!(read_all(&log), compacted(cut, 60_000));
}

#[test]
fn a_small_map_takes_several_passes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(60_000)));
    let log = reopen(sample(dir.path(), &clock), dir.path(), &clock);
    let cut = log.segment_bases().last().unwrap().0;
    let opts = CompactOptions {
        map_bytes_max: 3 * (1 + MAP_ENTRY_OVERHEAD),
        ..OPTS
    };
    let mut passes = 0;
    loop {
        passes += 1;
        assert!(passes < 100);
        if !log.compact(&opts).unwrap().more {
            break;
        }
    }
    assert!(passes > 3, "{passes} passes");
    // Each pass compacts what is below its map's end against the keys
    // it saw; a full pass afterwards reaches the one-pass result.
    check_consistent(&read_all(&log), &originals(), "after small passes");
    log.compact(&OPTS).unwrap();
    // The cleaner checkpoint is at the end: this pass maps nothing and
    // only re-reads; run one from scratch to compare.
    let fresh = tempfile::tempdir().unwrap();
    let full = reopen(sample(fresh.path(), &clock), fresh.path(), &clock);
    full.compact(&OPTS).unwrap();
    let small: Vec<Rec> = read_all(&log);
    for k in small.iter().map(|r| r.1.clone()).collect::<HashSet<_>>() {
        let n = small.iter().filter(|r| r.1 == k && r.0 < cut).count();
        assert!(n <= 3, "key {k:?} appears {n} times below {cut}");
    }
    assert!(read_all(&full).len() <= small.len());
}

#[test]
fn keyless_records_are_refused_on_a_compacted_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(0)));
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    let mut b = BatchBuilder::new();
    b.push(0, Some(b"k"), Some(b"v"), &[]);
    b.push(0, None, Some(b"v"), &[]);
    let err = log.append(&b.finish()).unwrap_err();
    assert!(
        matches!(err, StorageError::KeyRequired { index: 1 }),
        "{err}"
    );
    assert!(err.to_string().contains("cleanup.policy=compact"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Every record a log holds is an original one at its offset; a record
/// is missing only if a newer one has its key, or it is an expired
/// tombstone whose key has no record left at all.
fn check_consistent(got: &[Rec], all: &[Rec], ctx: &str) {
    let present: HashSet<u64> = got.iter().map(|r| r.0).collect();
    for r in got {
        assert!(all.contains(r), "{ctx}: {r:?} is not an original record");
    }
    for r in all {
        if present.contains(&r.0) {
            continue;
        }
        let newer = all.iter().any(|o| o.1 == r.1 && o.0 > r.0);
        let gone_tombstone = r.2.is_none() && !got.iter().any(|o| o.1 == r.1);
        assert!(newer || gone_tombstone, "{ctx}: record {r:?} lost");
    }
    for k in all.iter().map(|r| &r.1).collect::<HashSet<_>>() {
        let newest = all
            .iter()
            .filter(|r| &r.1 == k)
            .max_by_key(|r| r.0)
            .unwrap();
        if !present.contains(&newest.0) {
            assert!(
                newest.2.is_none() && !got.iter().any(|r| &r.1 == k),
                "{ctx}: key {k:?} lost its newest record but kept older ones"
            );
        }
    }
}

/// A crash after each step of a pass (building, the swap marker, the
/// swap, the checkpoint) leaves a log that reopens consistent, and a
/// later pass ends exactly where an uninterrupted one does.
#[test]
fn a_crash_at_any_step_of_a_pass_loses_nothing() {
    let clock = Arc::new(TestClock(AtomicI64::new(60_000)));
    let template = tempfile::tempdir().unwrap();
    let log = reopen(sample(template.path(), &clock), template.path(), &clock);
    let original = read_all(&log);
    assert_eq!(original, originals());
    let cut = log.segment_bases().last().unwrap().0;
    log.close().unwrap();
    drop(log);
    let clean = {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        let log = Log::open(dir.path(), config(&clock)).unwrap();
        log.compact(&OPTS).unwrap();
        read_all(&log)
    };
    assert_eq!(clean, compacted(cut, 60_000));
    let mut crashes = 0;
    for n in 0.. {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        let log = Log::open(dir.path(), config(&clock)).unwrap();
        fault::STEPS_LEFT.set(Some(n));
        let r = log.compact(&OPTS);
        fault::STEPS_LEFT.set(None);
        if r.is_ok() {
            break;
        }
        crashes += 1;
        drop(log); // the crash: no close
        let log = Log::open(dir.path(), config(&clock)).unwrap();
        let ctx = format!("crash after step {n}");
        check_consistent(&read_all(&log), &original, &ctx);
        log.compact(&OPTS).unwrap();
        assert_eq!(read_all(&log), clean, "{ctx}: then compacted");
        assert!(!dir.path().join(CLEANING_DIR).exists(), "{ctx}");
    }
    assert!(crashes >= 4, "only {crashes} steps were tried");
}

#[test]
fn swap_markers_round_trip_and_damage_is_detected() {
    let b = encode_swap(&[5, 9, 12]);
    assert_eq!(decode_swap(&b), Ok(vec![5, 9, 12]));
    let mut bad = b.clone();
    bad[8] ^= 1;
    assert!(decode_swap(&bad).is_err());
    assert!(decode_swap(&b[..b.len() - 1]).is_err());
    assert!(decode_swap(b"").is_err());

    // As FORMAT.md lays it out, byte by byte (and as the builds before the
    // shared envelope codec wrote it).
    let mut spec = b"STSW\x00\x01\x00\x00\x00\x03".to_vec();
    for base in [5u64, 9, 12] {
        spec.extend_from_slice(&base.to_be_bytes());
    }
    let crc = crc32fast::hash(&spec);
    spec.extend_from_slice(&crc.to_be_bytes());
    assert_eq!(spec, b);
}

#[test]
fn merges_stay_inside_the_indexes_of_the_merged_segment() {
    // Segments roll on index room (84 time entries, one per batch),
    // long before their bytes: merging them by bytes alone would
    // overflow the merged segment's time index (the push asserts).
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(0)));
    let cfg = LogConfig {
        segment_bytes_max: 1 << 20,
        index_interval_bytes: 1,
        ..config(&clock)
    };
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    for i in 0..400u64 {
        // Unique keys: compaction removes nothing and merges everything
        // it may.
        let mut b = BatchBuilder::new();
        b.push(i as i64, Some(&i.to_be_bytes()), Some(b"v"), &[]);
        log.append(&b.finish()).unwrap();
    }
    let before = log.segment_count();
    assert!(before > 4, "{before} segments");
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), cfg).unwrap();
    let r = log.compact(&OPTS).unwrap();
    assert!(r.segments_rewritten > 0, "{r:?}");
    assert!(
        log.segment_count() >= before / 2,
        "merged past the index room"
    );
    let offsets: Vec<u64> = read_all(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..400).collect::<Vec<u64>>());
}
