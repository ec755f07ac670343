//! A randomised model test of the partition log: random sequences of
//! appends, reads, time lookups, retention deletes, clean reopens, crashes
//! and torn-tail cuts, checked after every step against an in-memory model.
//!
//! Every failure names its seed; rerun one with `STRATA_PROP_SEED=N cargo
//! test -p strata-storage --test it log_model::`. `STRATA_PROP_CASES` sets how
//! many seeds a run tries (default 40).

use std::fs::OpenOptions;

use crate::common::*;
use strata_batch::BatchBuilder;
use strata_batch::batch::BatchHeader;
use strata_storage::{Durability, Log, LogConfig, Offset};

#[derive(Debug, Clone)]
struct ModelBatch {
    base: u64,
    /// The batch exactly as stored (base offset stamped).
    bytes: Vec<u8>,
    timestamps: Vec<i64>,
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<ModelBatch>,
    start: u64,
    end: u64,
}

impl Model {
    fn live(&self) -> impl Iterator<Item = &ModelBatch> {
        self.batches.iter().filter(|b| b.base >= self.start)
    }
}

fn config(rng: &mut fastrand::Rng) -> LogConfig {
    let durability = match rng.u8(0..3) {
        0 => Durability::PageCache,
        1 => Durability::Fsync,
        _ => Durability::Interval {
            interval_ms: Some(5),
            interval_records: Some(rng.u64(1..50)),
        },
    };
    let segment_bytes_max = rng.u64(1024..8192);
    LogConfig {
        segment_bytes_max,
        index_interval_bytes: rng.u32(1..600),
        index_bytes_max: rng.u32(1024..4096),
        batch_bytes_max: 1024.min(segment_bytes_max as u32),
        durability,
        // Few open sealed segments: reads close and reopen files all the time.
        open_segments: strata_storage::open_segments::OpenSegments::new(rng.usize(1..4)),
        ..LogConfig::default()
    }
}

fn random_batch(rng: &mut fastrand::Rng) -> (Vec<u8>, Vec<i64>) {
    let mut b = BatchBuilder::new();
    let mut ts = Vec::new();
    for _ in 0..rng.usize(1..6) {
        let t = rng.i64(0..10_000);
        let value: Vec<u8> = (0..rng.usize(0..120)).map(|_| rng.u8(..)).collect();
        let key = rng.bool().then(|| vec![rng.u8(..); rng.usize(0..8)]);
        b.push(t, key.as_deref(), Some(&value), &[]);
        ts.push(t);
    }
    (b.finish().to_vec(), ts)
}

fn check_read(log: &Log, model: &Model, offset: u64, max_bytes: usize, ctx: &str) {
    let r = log
        .read(Offset(offset), max_bytes)
        .unwrap_or_else(|e| panic!("{ctx}: read {offset}: {e}"));
    if offset == model.end {
        assert!(r.batches.is_empty(), "{ctx}: read at the end returned data");
        return;
    }
    assert!(
        !r.batches.is_empty(),
        "{ctx}: read at {offset} below end {} was empty",
        model.end
    );
    let first = model
        .live()
        .position(|b| b.base + b.timestamps.len() as u64 > offset)
        .expect("model holds the offset");
    let live: Vec<&ModelBatch> = model.live().collect();
    let mut pos = 0;
    let mut i = first;
    while pos < r.batches.len() {
        let h = BatchHeader::parse(&r.batches[pos..]).unwrap();
        let want = live[i];
        assert_eq!(
            h.base_offset as u64, want.base,
            "{ctx}: batch {i} from offset {offset}"
        );
        assert_eq!(
            &r.batches[pos..pos + h.total_len()],
            &want.bytes[..],
            "{ctx}: bytes of batch at {}",
            want.base
        );
        pos += h.total_len();
        i += 1;
    }
    assert!(
        r.batches.len() <= max_bytes.max(live[first].bytes.len()),
        "{ctx}: read {} bytes with max_bytes {max_bytes}",
        r.batches.len()
    );
}

fn run(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&mut rng);
    let mut log = Log::open(dir.path(), cfg.clone()).unwrap();
    let mut model = Model::default();
    for step in 0..150 {
        let ctx = format!("seed {seed} step {step} (replay with STRATA_PROP_SEED={seed})");
        match rng.u8(0..100) {
            0..=44 => {
                let (mut bytes, timestamps) = random_batch(&mut rng);
                let info = log
                    .append(&bytes)
                    .unwrap_or_else(|e| panic!("{ctx}: append: {e}"));
                assert_eq!(info.base_offset.0, model.end, "{ctx}: base offset");
                // What the log stores: our bytes with the offset stamped in.
                strata_batch::batch::set_base_offset(&mut bytes, info.base_offset.0 as i64);
                model.end += timestamps.len() as u64;
                model.batches.push(ModelBatch {
                    base: info.base_offset.0,
                    bytes,
                    timestamps,
                });
            }
            45..=64 => {
                let offset = rng.u64(model.start..=model.end);
                check_read(&log, &model, offset, rng.usize(1..3000), &ctx);
            }
            65..=69 => {
                log.close().unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
                drop(log);
                log = Log::open(dir.path(), cfg.clone())
                    .unwrap_or_else(|e| panic!("{ctx}: clean reopen: {e}"));
                assert!(log.recovery_report().clean_shutdown, "{ctx}");
            }
            70..=74 => {
                drop(log);
                log = Log::open(dir.path(), cfg.clone())
                    .unwrap_or_else(|e| panic!("{ctx}: reopen after crash: {e}"));
                assert_eq!(
                    log.recovery_report().truncated_bytes,
                    0,
                    "{ctx}: nothing was torn"
                );
            }
            75..=79 => {
                // A crash that tore the last segment at a random byte.
                let last_base = log.segment_bases().last().unwrap().0;
                drop(log);
                let seg = segment_files(dir.path()).pop().unwrap();
                let len = std::fs::metadata(&seg).unwrap().len();
                let cut = rng.u64(0..=len);
                OpenOptions::new()
                    .write(true)
                    .open(&seg)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
                let mut pos = 0;
                let mut keep = model.batches.len();
                for (i, b) in model
                    .batches
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.base >= last_base)
                {
                    if pos + b.bytes.len() as u64 > cut {
                        keep = i;
                        break;
                    }
                    pos += b.bytes.len() as u64;
                }
                model.batches.truncate(keep);
                model.end = model
                    .batches
                    .last()
                    .map_or(model.start.max(last_base), |b| {
                        (b.base + b.timestamps.len() as u64).max(last_base)
                    });
                log = Log::open(dir.path(), cfg.clone())
                    .unwrap_or_else(|e| panic!("{ctx}: reopen after torn tail at {cut}: {e}"));
                assert_eq!(
                    log.recovery_report().truncated_bytes,
                    cut - pos,
                    "{ctx}: bytes cut off the torn batch"
                );
            }
            80..=86 => {
                let t = rng.i64(-10..10_010);
                let want = model.live().find_map(|b| {
                    b.timestamps
                        .iter()
                        .position(|&ts| ts >= t)
                        .map(|i| Offset(b.base + i as u64))
                });
                assert_eq!(
                    log.offset_for_timestamp(t).unwrap(),
                    want,
                    "{ctx}: time lookup {t}"
                );
            }
            87..=91 => {
                let target = rng.u64(model.start..=model.end);
                log.delete_segments_before(Offset(target)).unwrap();
                assert!(
                    log.log_start().0 <= target.max(model.start),
                    "{ctx}: start past the target"
                );
                model.start = log.log_start().0;
                assert_eq!(
                    log.segment_bases()[0].0,
                    model.start,
                    "{ctx}: start is the first segment's base"
                );
            }
            _ => log.flush().unwrap_or_else(|e| panic!("{ctx}: flush: {e}")),
        }
        assert_eq!(log.log_end().0, model.end, "{ctx}: log end");
        assert_eq!(log.log_start().0, model.start, "{ctx}: log start");
    }
    // Finally, every record from the start, in order.
    let ctx = format!("seed {seed} final (replay with STRATA_PROP_SEED={seed})");
    let mut off = model.start;
    while off < model.end {
        check_read(&log, &model, off, 1 << 20, &ctx);
        let r = log.read(Offset(off), 1 << 20).unwrap();
        off = records(&r.batches).last().unwrap().offset as u64 + 1;
    }
}

#[test]
fn random_operations_match_the_model() {
    run_seeds(40, run);
}
