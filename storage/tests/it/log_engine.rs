//! The partition log through its public API: appends, reads, indexes,
//! rolling, time lookup, retention deletes, limits, torn tails and
//! corruption.

use std::fs::OpenOptions;
use std::sync::Arc;

use crate::common::*;
use strata_batch::TimestampType;
use strata_storage::{Durability, Log, LogConfig, Offset, StorageError};

#[test]
fn append_assigns_offsets_and_reads_return_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(Durability::Fsync)).unwrap();
    let mut expected = Vec::new();
    for i in 0..150 {
        let n = 1 + i % 5;
        let info = log
            .append(&make_batch(&format!("b{i}"), n, 1000 + i as i64))
            .unwrap();
        assert!(info.durable);
        assert_eq!(info.last_offset.0 - info.base_offset.0 + 1, n as u64);
        for j in 0..n {
            expected.push(format!("b{i}-{j}"));
        }
    }
    assert_eq!(log.log_end(), Offset(expected.len() as u64));
    assert!(log.segment_count() > 3, "small segments should have rolled");
    // From every offset, a read starts with the batch holding it.
    for off in 0..expected.len() as u64 {
        let r = log.read(Offset(off), 1).unwrap();
        let recs = records(&r.batches);
        assert!(recs[0].offset <= off as i64 && recs.last().unwrap().offset >= off as i64);
        let rec = recs.iter().find(|r| r.offset == off as i64).unwrap();
        assert_eq!(
            rec.value.as_deref(),
            Some(expected[off as usize].as_bytes())
        );
    }
    // A read at the end is empty; past it, out of range with the range named.
    assert!(log.read(log.log_end(), 1 << 20).unwrap().batches.is_empty());
    let err = log.read(Offset(10_000), 10).unwrap_err();
    assert!(
        matches!(err, StorageError::OffsetOutOfRange { start: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("valid offsets are 0 to"));
}

#[test]
fn reads_respect_the_byte_limit_but_return_at_least_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let one = make_batch("x", 10, 0);
    for _ in 0..10 {
        log.append(&one.clone()).unwrap();
    }
    let r = log.read(Offset(0), 1).unwrap();
    assert_eq!(r.batches.len(), one.len());
    let r = log.read(Offset(0), one.len() * 3 + 5).unwrap();
    assert_eq!(r.batches.len(), one.len() * 3);
    let r = log.read(Offset(15), 1 << 20).unwrap();
    assert_eq!(r.batches.len(), one.len() * 9);
    assert_eq!(records(&r.batches)[0].offset, 10);
}

#[test]
fn clean_reopen_keeps_everything_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || small_config(Durability::PageCache);
    let log = Log::open(dir.path(), cfg()).unwrap();
    for i in 0..40 {
        log.append(&make_batch(&format!("a{i}"), 3, i)).unwrap();
    }
    let before = log.read(Offset(0), 1 << 30).unwrap().batches;
    log.close().unwrap();
    assert!(matches!(
        log.append(&make_batch("z", 1, 0)),
        Err(StorageError::Closed(_))
    ));
    drop(log);
    let log = Log::open(dir.path(), cfg()).unwrap();
    let rep = log.recovery_report();
    assert!(rep.clean_shutdown);
    assert_eq!(rep.segments_scanned, 0);
    assert!(rep.indexes_rebuilt.is_empty());
    assert_eq!(log.read(Offset(0), 1 << 30).unwrap().batches, before);
    let info = log.append(&make_batch("after", 2, 0)).unwrap();
    assert_eq!(info.base_offset, Offset(120));
    // Reads from every segment work through the trusted indexes.
    for off in (0..122).step_by(7) {
        let recs = records(&log.read(Offset(off), 1).unwrap().batches);
        assert!(recs.iter().any(|r| r.offset == off as i64));
    }
}

#[test]
fn unclean_reopen_rescans_only_past_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(Durability::Fsync)).unwrap();
    for i in 0..50 {
        log.append(&make_batch(&format!("a{i}"), 2, i)).unwrap();
    }
    let segments = log.segment_count();
    drop(log); // no close: a crash
    let log = Log::open(dir.path(), small_config(Durability::Fsync)).unwrap();
    let rep = log.recovery_report();
    assert!(!rep.clean_shutdown);
    assert_eq!(rep.segments, segments);
    assert_eq!(
        rep.segments_scanned, 1,
        "only the active segment is past the recovery point"
    );
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(log.log_end(), Offset(100));
}

#[test]
fn segments_roll_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let cfg = LogConfig {
        segment_ms_max: 60_000,
        clock: clock.clone(),
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), cfg).unwrap();
    log.append(&make_batch("a", 1, 0)).unwrap();
    clock.advance(59_999);
    log.append(&make_batch("b", 1, 0)).unwrap();
    assert_eq!(log.segment_count(), 1);
    clock.advance(1);
    log.append(&make_batch("c", 1, 0)).unwrap();
    assert_eq!(log.segment_bases(), vec![Offset(0), Offset(2)]);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap();
    // Timestamps 0,10,20,... one per record, 4 records per batch, so the
    // answers fall inside batches and across segments.
    for b in 0..50i64 {
        let mut bb = strata_batch::BatchBuilder::new();
        for i in 0..4 {
            bb.push((b * 4 + i) * 10, None, Some(b"v"), &[]);
        }
        log.append(&bb.finish()).unwrap();
    }
    for t in [-5, 0, 1, 10, 15, 333, 795, 1990, 1991] {
        let expect = if t > 1990 {
            None
        } else {
            Some(Offset(((t.max(0) + 9) / 10) as u64))
        };
        assert_eq!(
            log.offset_for_timestamp(t).unwrap(),
            expect,
            "timestamp {t}"
        );
    }
    // Out-of-order timestamps inside a batch: the first record in offset
    // order whose timestamp qualifies.
    let mut bb = strata_batch::BatchBuilder::new();
    for ts in [5000, 3000, 6000] {
        bb.push(ts, None, Some(b"v"), &[]);
    }
    log.append(&bb.finish()).unwrap();
    assert_eq!(log.offset_for_timestamp(2500).unwrap(), Some(Offset(200)));
    assert_eq!(log.offset_for_timestamp(5500).unwrap(), Some(Offset(202)));
}

#[test]
fn log_append_time_overwrites_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(777_000);
    let cfg = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        clock,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), cfg).unwrap();
    let info = log.append(&make_batch("t", 3, 5)).unwrap();
    assert_eq!(info.log_append_time_ms, Some(777_000));
    let recs = records(&log.read(Offset(0), 1 << 20).unwrap().batches);
    assert!(recs.iter().all(|r| r.timestamp == 777_000));
}

#[test]
fn bad_batches_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(Durability::Fsync)).unwrap();
    log.append(&make_batch("ok", 2, 0)).unwrap();
    let mut corrupt = make_batch("bad", 2, 0);
    let n = corrupt.len();
    corrupt[n - 1] ^= 0xff;
    let err = log.append(&corrupt).unwrap_err();
    assert!(err.to_string().contains("CRC-32C mismatch"), "{err}");
    let err = log.append(&make_batch("big", 400, 0)).unwrap_err();
    assert!(matches!(
        err,
        StorageError::BatchTooLarge { limit: 4096, .. }
    ));
    assert!(err.to_string().contains("batch_bytes_max"), "{err}");
    let err = log.append(&[0u8; 10]).unwrap_err();
    assert!(matches!(err, StorageError::InvalidBatch(_)), "{err}");
    let mut two = make_batch("a", 1, 0);
    two.extend(make_batch("b", 1, 0));
    assert!(log.append(&two).is_err(), "two batches in one append");
    assert_eq!(log.log_end(), Offset(2));
    assert_eq!(
        log.append(&make_batch("ok2", 1, 0)).unwrap().base_offset,
        Offset(2)
    );
}

#[test]
fn delete_segments_before_advances_the_start_and_never_takes_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap();
    for i in 0..200 {
        log.append(&make_batch(&format!("r{i}"), 2, i)).unwrap();
    }
    let bases = log.segment_bases();
    assert!(bases.len() >= 4);
    // A reader that already holds data from the first segment keeps it.
    let early = log.read(Offset(0), 1 << 20).unwrap();
    let deleted = log.delete_segments_before(bases[2]).unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(log.log_start(), bases[2]);
    assert_eq!(
        records(&early.batches)[0].value.as_deref(),
        Some(&b"r0-0"[..])
    );
    let err = log.read(Offset(0), 100).unwrap_err();
    assert!(
        matches!(err, StorageError::OffsetOutOfRange { start, .. } if start == bases[2].0),
        "{err}"
    );
    // Everything below the end: still only sealed segments go.
    let deleted = log.delete_segments_before(Offset(u64::MAX)).unwrap();
    assert_eq!(deleted, bases.len() - 3);
    assert_eq!(log.segment_count(), 1);
    // The start offset survives a crash and a restart.
    let start = log.log_start();
    drop(log);
    let log = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap();
    assert_eq!(log.log_start(), start);
    assert_eq!(log.log_end(), Offset(400));
}

#[test]
fn truncate_to_removes_the_tail_at_a_batch_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(Durability::Fsync)).unwrap();
    for i in 0..60 {
        log.append(&make_batch(&format!("t{i}"), 2, i)).unwrap();
    }
    assert!(matches!(
        log.truncate_to(Offset(51)),
        Err(StorageError::NotBatchBoundary { offset: 51, .. })
    ));
    log.truncate_to(Offset(50)).unwrap();
    assert_eq!(log.log_end(), Offset(50));
    assert_eq!(
        log.append(&make_batch("new", 1, 0)).unwrap().base_offset,
        Offset(50)
    );
    let recs = records(&log.read(Offset(50), 1 << 20).unwrap().batches);
    assert_eq!(recs[0].value.as_deref(), Some(&b"new-0"[..]));
    drop(log);
    let log = Log::open(dir.path(), small_config(Durability::Fsync)).unwrap();
    assert_eq!(log.log_end(), Offset(51));
}

#[test]
fn concurrent_durable_appenders_share_fsyncs_and_get_distinct_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), LogConfig::default()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| log.append(&make_batch(&format!("t{t}i{i}"), 3, 0)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut bases: Vec<u64> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .map(|i| i.base_offset.0)
        .collect();
    bases.sort_unstable();
    assert_eq!(bases, (0..400).map(|i| i * 3).collect::<Vec<_>>());
    assert_eq!(log.high_watermark(), Offset(1200));

    // The sharing itself, deterministically: batches written while no
    // fsync ran are all covered by the first one that does. On the
    // simulated disk every mutating call is counted; completing 100
    // written batches costs one fdatasync, not 100.
    let fs = strata_storage::SimFs::new();
    let config = LogConfig {
        fs: Arc::new(fs.clone()),
        ..LogConfig::default()
    };
    let log = Log::open("/log", config).unwrap();
    let written: Vec<_> = (0..100)
        .map(|i| log.write(&make_batch(&format!("w{i}"), 2, 0)).unwrap())
        .collect();
    let before = fs.ops();
    for w in written {
        assert!(log.complete(w).unwrap().durable);
    }
    assert_eq!(fs.ops() - before, 1, "one fsync covers every written batch");
    assert_eq!(log.high_watermark(), Offset(200));
}

/// Writes `batches` to a fresh log with small segments, drops it without
/// closing (a crash), and returns the directory and each batch's bytes
/// and file position in the last segment.
fn crashed_log(batches: usize) -> (tempfile::TempDir, Vec<Vec<u8>>) {
    crashed_log_with(batches, &[strata_batch::Compression::None])
}

/// [`crashed_log`], batch `i` compressed with `codecs[i % codecs.len()]`.
fn crashed_log_with(
    batches: usize,
    codecs: &[strata_batch::Compression],
) -> (tempfile::TempDir, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap();
    let mut all = Vec::new();
    for i in 0..batches {
        let codec = codecs[i % codecs.len()];
        let mut b = make_batch_with(&format!("c{i}"), 1 + i % 3, i as i64, codec);
        let info = log.append(&b).unwrap();
        // What the log stores: the producer's bytes with the offset stamped in.
        strata_batch::batch::set_base_offset(&mut b, info.base_offset.0 as i64);
        all.push(b);
    }
    drop(log);
    (dir, all)
}

fn read_all(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut off = log.log_start();
    loop {
        let r = log.read(off, 1 << 20).unwrap();
        if r.batches.is_empty() {
            return out;
        }
        let recs = records(&r.batches);
        off = Offset(recs.last().unwrap().offset as u64 + 1);
        out.extend_from_slice(&r.batches);
    }
}

#[test]
fn torn_tail_at_every_byte_of_the_last_batch_is_truncated_exactly() {
    torn_tail_at_every_byte(crashed_log(100));
}

/// The same with every codec among the batches, the last one compressed
/// (zstd): recovery checks a compressed batch by its CRC alone, and a cut
/// anywhere in it is still a torn tail.
#[test]
fn a_torn_compressed_tail_is_truncated_exactly_too() {
    use strata_batch::Compression as C;
    let (dir, batches) = crashed_log_with(100, &[C::None, C::Gzip, C::Snappy, C::Lz4, C::Zstd]);
    let last = strata_batch::BatchHeader::parse(batches.last().unwrap()).unwrap();
    assert_eq!(last.attributes.compression().unwrap(), C::Zstd);
    torn_tail_at_every_byte((dir, batches));
}

fn torn_tail_at_every_byte((dir, batches): (tempfile::TempDir, Vec<Vec<u8>>)) {
    let last_seg = segment_files(dir.path()).pop().unwrap();
    let seg_len = std::fs::metadata(&last_seg).unwrap().len() as usize;
    let last_len = batches.last().unwrap().len();
    let whole: Vec<u8> = batches.concat();
    let kept_len = whole.len() - last_len;
    let end_before = {
        let recs = records(&bytes::Bytes::from(whole[..kept_len].to_vec()));
        recs.last().unwrap().offset as u64 + 1
    };
    let mut rng = fastrand::Rng::with_seed(7);
    for garbage in [false, true] {
        for cut in (seg_len - last_len)..seg_len {
            let copy = copy_dir(dir.path());
            let seg = copy.path().join(last_seg.file_name().unwrap());
            let f = OpenOptions::new().write(true).open(&seg).unwrap();
            f.set_len(cut as u64).unwrap();
            if garbage {
                let junk: Vec<u8> = (0..rng.usize(1..200)).map(|_| rng.u8(..)).collect();
                std::os::unix::fs::FileExt::write_all_at(&f, &junk, cut as u64).unwrap();
            }
            drop(f);
            let log = Log::open(copy.path(), small_config(Durability::PageCache))
                .unwrap_or_else(|e| panic!("cut at {cut} (garbage {garbage}): {e}"));
            let rep = log.recovery_report();
            let start = (seg_len - last_len) as u64;
            let expect = (cut as u64 > start || garbage).then_some(start);
            assert_eq!(rep.truncated_at.as_ref().map(|t| t.1), expect, "cut {cut}");
            assert_eq!(
                read_all(&log),
                whole[..kept_len],
                "cut at {cut} (garbage {garbage})"
            );
            assert_eq!(log.log_end(), Offset(end_before));
            let info = log.append(&make_batch("next", 1, 0)).unwrap();
            assert_eq!(info.base_offset, Offset(end_before));
        }
    }
    // Garbage after an intact last batch is cut too; nothing else is.
    let copy = copy_dir(dir.path());
    let seg = copy.path().join(last_seg.file_name().unwrap());
    let f = OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut &f, &[0xAB; 77]).unwrap();
    drop(f);
    let log = Log::open(copy.path(), small_config(Durability::PageCache)).unwrap();
    assert_eq!(log.recovery_report().truncated_bytes, 77);
    assert_eq!(read_all(&log), whole);
}

#[test]
fn a_bad_batch_in_a_sealed_segment_refuses_to_open_and_names_the_place() {
    let (dir, _) = crashed_log(100);
    let first = segment_files(dir.path()).remove(0);
    let f = OpenOptions::new().write(true).open(&first).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xFF], 100).unwrap();
    drop(f);
    // Sealed segments before the recovery point are trusted at open (their
    // indexes are checked, not their CRCs); force a rebuild so it is scanned.
    std::fs::remove_file(first.with_extension("index")).unwrap();
    let err = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{msg}");
    assert!(msg.contains(&first.display().to_string()), "{msg}");
    assert!(msg.contains("at byte"), "{msg}");
    // Nothing was thrown away: the file is as it was.
    assert!(std::fs::metadata(&first).unwrap().len() > 100);
}

#[test]
fn a_bad_batch_in_a_scanned_sealed_segment_is_corruption_not_a_torn_tail() {
    let (dir, _) = crashed_log(100);
    // With a damaged recovery point every segment is scanned, and a bad
    // batch before the last segment may be damage to synced data. (A
    // missing one only means no seal finished yet: nothing was known
    // synced, and a torn middle segment ends the log, as after a power
    // loss.)
    std::fs::write(dir.path().join("recovery-point.checkpoint"), b"junk").unwrap();
    let files = segment_files(dir.path());
    let second = &files[1];
    let len = std::fs::metadata(second).unwrap().len();
    let f = OpenOptions::new().write(true).open(second).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    let err = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap_err();
    assert!(
        err.to_string().contains(&second.display().to_string()),
        "{err}"
    );
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt_and_an_index_past_the_log_is_corruption() {
    let (dir, batches) = crashed_log(100);
    let whole = batches.concat();
    let files = segment_files(dir.path());
    std::fs::remove_file(files[0].with_extension("index")).unwrap();
    std::fs::write(files[1].with_extension("timeindex"), b"junk").unwrap();
    let log = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap();
    let rebuilt = &log.recovery_report().indexes_rebuilt;
    assert!(
        rebuilt.contains(&files[0].with_extension("index")),
        "{rebuilt:?}"
    );
    assert!(
        rebuilt.contains(&files[1].with_extension("timeindex")),
        "{rebuilt:?}"
    );
    assert_eq!(read_all(&log), whole);
    log.close().unwrap();
    drop(log);

    // Point an index entry of a sealed segment past its log.
    let idx = files[0].with_extension("index");
    let mut bytes = std::fs::read(&idx).unwrap();
    assert!(bytes.len() >= 24, "the first segment has index entries");
    bytes[20..24].copy_from_slice(&1_000_000u32.to_be_bytes());
    std::fs::write(&idx, &bytes).unwrap();
    let err = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains(&idx.display().to_string()),
        "{err}"
    );
}

#[test]
fn damaged_checkpoints_fall_back_safely() {
    let (dir, batches) = crashed_log(100);
    std::fs::write(dir.path().join("recovery-point.checkpoint"), b"nonsense").unwrap();
    let log = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap();
    let rep = log.recovery_report();
    assert_eq!(rep.checkpoints_ignored.len(), 1);
    assert_eq!(
        rep.segments_scanned, rep.segments,
        "no recovery point: scan everything"
    );
    assert_eq!(read_all(&log), batches.concat());
}

#[test]
fn config_limits_are_checked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let bad = LogConfig {
        batch_bytes_max: 2 << 30,
        ..LogConfig::default()
    };
    let err = Log::open(dir.path(), bad).unwrap_err();
    assert!(err.to_string().contains("batch_bytes_max"), "{err}");
    let bad = LogConfig {
        durability: Durability::Interval {
            interval_ms: None,
            interval_records: None,
        },
        ..LogConfig::default()
    };
    assert!(Log::open(dir.path(), bad).is_err());
}

#[test]
fn interval_durability_fsyncs_by_record_count_and_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let cfg = LogConfig {
        durability: Durability::Interval {
            interval_ms: Some(1000),
            interval_records: Some(10),
        },
        clock: clock.clone(),
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), cfg).unwrap();
    assert!(!log.append(&make_batch("a", 4, 0)).unwrap().durable);
    assert!(!log.append(&make_batch("b", 4, 0)).unwrap().durable);
    assert!(
        log.append(&make_batch("c", 4, 0)).unwrap().durable,
        "12 records >= 10"
    );
    assert!(!log.append(&make_batch("d", 1, 0)).unwrap().durable);
    assert!(!log.flush_if_due().unwrap());
    clock.advance(1000);
    assert!(
        log.flush_if_due().unwrap(),
        "1000 ms passed with unsynced data"
    );
    assert!(!log.flush_if_due().unwrap(), "nothing left to sync");
    // Page-cache and interval modes show written records to readers at once.
    assert_eq!(log.high_watermark(), Offset(13));
}

fn producer_batch(pid: i64, epoch: i16, seq: i32, n: usize, tag: &str) -> Vec<u8> {
    let mut b = strata_batch::BatchBuilder::new();
    b.producer(pid, epoch, seq);
    for i in 0..n {
        b.push(i as i64, None, Some(format!("{tag}-{i}").as_bytes()), &[]);
    }
    b.finish().to_vec()
}

#[test]
fn idempotent_batches_append_once_across_rolls_crashes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || small_config(Durability::Fsync);
    let log = Log::open(dir.path(), cfg()).unwrap();
    let mut seq = 0;
    let mut sent = Vec::new();
    for i in 0..150 {
        let b = producer_batch(7, 0, seq, 3, &format!("p{i}"));
        let info = log.append(&b).unwrap();
        assert!(!info.duplicate);
        sent.push((b, info.base_offset));
        seq += 3;
    }
    assert!(log.segment_count() > 2, "rolled, so a snapshot was written");
    // A retry of the last batch: the original offsets, nothing appended.
    let (last, last_base) = sent.last().unwrap().clone();
    let again = log.append(&last).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.base_offset, last_base);
    assert_eq!(log.log_end(), Offset(450));
    // A gap is refused, naming what was expected.
    let err = log
        .append(&producer_batch(7, 0, seq + 5, 1, "gap"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::OutOfOrderSequence {
                expected: 450,
                got: 455,
                ..
            }
        ),
        "{err}"
    );
    // An older epoch is fenced once a newer one has written.
    log.append(&producer_batch(7, 1, 0, 1, "e1")).unwrap();
    let err = log
        .append(&producer_batch(7, 0, seq, 1, "zombie"))
        .unwrap_err();
    assert!(
        matches!(err, StorageError::ProducerFenced { current: 1, .. }),
        "{err}"
    );

    // After a crash (state replayed from the snapshot and the log) and
    // after a clean restart, the retry is still recognised.
    let e1 = producer_batch(7, 1, 0, 1, "e1");
    for clean in [false, true] {
        if clean {
            log_close_and_reopen(&dir);
        }
        let log = Log::open(dir.path(), cfg()).unwrap();
        let again = log.append(&e1).unwrap();
        assert!(again.duplicate, "clean={clean}");
        assert_eq!(again.base_offset, Offset(450));
        let again = log.append(&sent[57].0).unwrap_err();
        assert!(
            matches!(again, StorageError::ProducerFenced { .. }),
            "{again}"
        );
        if !clean {
            drop(log);
        } else {
            log.close().unwrap();
        }
    }
    // Without its snapshot the state is rebuilt from the whole log.
    std::fs::remove_file(dir.path().join("producer-state.snapshot")).unwrap();
    let log = Log::open(dir.path(), cfg()).unwrap();
    assert!(log.append(&e1).unwrap().duplicate);
    assert_eq!(log.log_end(), Offset(451));
}

fn log_close_and_reopen(dir: &tempfile::TempDir) {
    let log = Log::open(dir.path(), small_config(Durability::Fsync)).unwrap();
    log.close().unwrap();
}

#[test]
fn time_retention_deletes_exactly_the_segments_older_than_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap();
    // Record timestamps 0, 10, 20, ... so each segment's newest is known.
    for i in 0..200i64 {
        log.append(&make_batch(&format!("t{i}"), 1, i * 10))
            .unwrap();
    }
    let bases = log.segment_bases();
    assert!(bases.len() >= 4);
    // Segment k's newest timestamp is 10 * (base of k+1 - 1).
    let newest = |k: usize| 10 * (bases[k + 1].0 as i64 - 1);
    // At now = newest(1) + 1000 + 1 with retention 1000, segments 0 and 1
    // are older than the limit; segment 2 is not.
    let now = newest(1) + 1000 + 1;
    assert_eq!(log.apply_retention(1000, -1, now).unwrap(), 2);
    assert_eq!(log.log_start(), bases[2]);
    assert_eq!(
        log.apply_retention(1000, -1, now).unwrap(),
        0,
        "nothing more is due"
    );
    // -1 keeps forever; the active segment is never deleted.
    assert_eq!(log.apply_retention(-1, -1, i64::MAX).unwrap(), 0);
    log.apply_retention(0, -1, i64::MAX).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert!(log.read(log.log_start(), 1 << 20).is_ok());
}

#[test]
fn size_retention_keeps_the_partition_under_the_limit_with_sealed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap();
    for i in 0..300i64 {
        log.append(&make_batch(&format!("s{i}"), 2, i)).unwrap();
    }
    let before = log.size_bytes();
    let limit = before / 3;
    let deleted = log.apply_retention(-1, limit as i64, 0).unwrap();
    assert!(deleted > 0);
    assert!(
        log.size_bytes() <= limit || log.segment_count() == 1,
        "{} > {limit}",
        log.size_bytes()
    );
    // Deleting one segment fewer would have left it over the limit.
    let bases = log.segment_bases();
    assert!(log.size_bytes() + 4096 > limit, "deleted more than needed");
    assert_eq!(log.log_start(), bases[0]);
    // A reader below the new start is told the valid range.
    let err = log.read(Offset(0), 10).unwrap_err();
    assert!(
        matches!(err, StorageError::OffsetOutOfRange { .. }),
        "{err}"
    );
}

#[test]
fn a_torn_write_past_the_recovery_point_ends_the_log_there_even_before_the_last_segment() {
    // As after a power loss while a rolled segment was still being sealed:
    // the recovery point is behind, a middle segment is torn, later ones
    // reached the disk. Nothing past the recovery point was confirmed.
    let (dir, batches) = crashed_log(250);
    let files = segment_files(dir.path());
    assert!(files.len() >= 3, "{} segments", files.len());
    strata_storage::checkpoint::write(
        &strata_storage::vfs::RealFs,
        dir.path(),
        strata_storage::checkpoint::Kind::RecoveryPoint,
        0,
    )
    .unwrap();
    let second = &files[1];
    let len = std::fs::metadata(second).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(second)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let log = Log::open(dir.path(), small_config(Durability::PageCache)).unwrap();
    let rep = log.recovery_report();
    assert_eq!(
        rep.truncated_at.as_ref().map(|t| t.0.clone()),
        Some(second.clone())
    );
    assert_eq!(
        log.segment_count(),
        2,
        "segments after the torn one are gone"
    );
    assert!(!files[2].exists());
    // Exactly the whole batches before the tear remain.
    let kept = read_all(&log);
    let whole = batches.concat();
    assert!(!kept.is_empty() && whole.starts_with(&kept));
    let end = log.log_end();
    assert_eq!(
        log.append(&make_batch("next", 1, 0)).unwrap().base_offset,
        end
    );
}

/// Readers racing retention deletes and compaction swaps: every read either
/// returns whole, valid batches of the records written at those offsets, or
/// says the offset is below the start. None sees a half-deleted or
/// half-swapped segment.
#[test]
fn reads_racing_deletes_and_compaction_finish_correctly() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        keys_required: true,
        ..small_config(Durability::PageCache)
    };
    let log = std::sync::Arc::new(Log::open(dir.path(), config.clone()).unwrap());
    // Keys repeat every 10 records, so compaction has work; the value says
    // which offset wrote it.
    let write = |log: &Log, from: u64, to: u64| {
        for o in from..to {
            let mut b = strata_batch::BatchBuilder::new();
            b.push(
                0,
                Some(format!("k{}", o % 10).as_bytes()),
                Some(format!("v{o}").as_bytes()),
                &[],
            );
            log.append(&b.finish()).unwrap();
        }
    };
    write(&log, 0, 600);
    log.close().unwrap();
    drop(log);
    let log = std::sync::Arc::new(Log::open(dir.path(), config).unwrap());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut at = r * 37;
                while !stop.load(Ordering::Relaxed) || reads < 50 {
                    match log.read(Offset(at % 600), 2048) {
                        Ok(res) => {
                            for rec in records(&res.batches) {
                                let value = String::from_utf8(rec.value.unwrap().to_vec()).unwrap();
                                assert_eq!(value, format!("v{}", rec.offset), "a record moved");
                            }
                        }
                        Err(StorageError::OffsetOutOfRange { .. }) => {}
                        Err(e) => panic!("read at {at}: {e}"),
                    }
                    reads += 1;
                    at += 13;
                }
                reads
            })
        })
        .collect();
    let opts = strata_storage::CompactOptions {
        map_bytes_max: 1 << 20,
        delete_retention_ms: 1000,
    };
    let report = log.compact(&opts).unwrap();
    assert!(report.records_removed > 0, "{report:?}");
    let bases = log.segment_bases();
    log.delete_segments_before(bases[bases.len() / 2]).unwrap();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 50);
    }
}

#[test]
fn a_segment_whose_retention_unlink_was_lost_is_removed_not_taken_for_a_lost_tail() {
    use strata_storage::checkpoint::{self, Kind};
    use strata_storage::vfs::RealFs;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        seal_in_background: false,
        ..small_config(Durability::PageCache)
    };
    let log = Log::open(dir.path(), config.clone()).unwrap();
    for i in 0..200 {
        log.append(&make_batch(&format!("r{i}"), 2, i)).unwrap();
    }
    log.flush().unwrap();
    let bases = log.segment_bases();
    assert!(bases.len() >= 4);
    let first = segment_files(dir.path())[0].clone();
    let kept = std::fs::read(&first).unwrap();
    // Retention commits the new start, then unlinks the first two segments.
    assert_eq!(log.delete_segments_before(bases[2]).unwrap(), 2);
    let end = log.log_end();
    drop(log);
    // A power loss kept the second unlink and lost the first, and the
    // recovery point had not passed the second segment's seal.
    std::fs::write(&first, kept).unwrap();
    checkpoint::write(&RealFs, dir.path(), Kind::RecoveryPoint, bases[1].0).unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.log_start(), bases[2]);
    assert_eq!(log.log_end(), end, "the live segments are kept");
    assert_eq!(log.segment_bases()[0], bases[2]);
    assert!(
        log.recovery_report()
            .leftovers_removed
            .iter()
            .any(|p| p == &first),
        "{:?}",
        log.recovery_report()
    );
    let r = log.read(bases[2], 1).unwrap();
    assert_eq!(records(&r.batches)[0].offset, bases[2].0 as i64);
}
