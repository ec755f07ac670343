//! Helpers shared by the storage engine's integration tests (and, by
//! path, the broker's).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use strata_batch::{Batch, BatchBuilder, Header, Record};
use strata_storage::{Clock, Durability, LogConfig};

/// A clock the test moves by hand.
#[derive(Debug, Default)]
pub struct ManualClock(pub AtomicI64);

impl ManualClock {
    pub fn new(start_ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(start_ms)))
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A config with tiny segments and a dense index, so tests cross segment
/// and index boundaries with little data.
pub fn small_config(durability: Durability) -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        index_interval_bytes: 128,
        index_bytes_max: 1024,
        batch_bytes_max: 4096,
        durability,
        ..LogConfig::default()
    }
}

/// A batch of `n` records with recognisable values `"{tag}-{i}"`, a key on
/// even records and a header on every third.
pub fn make_batch(tag: &str, n: usize, ts: i64) -> Vec<u8> {
    make_batch_with(tag, n, ts, strata_batch::Compression::None)
}

/// [`make_batch`], its records compressed with `codec`.
pub fn make_batch_with(tag: &str, n: usize, ts: i64, codec: strata_batch::Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        let key = format!("k{i}");
        let value = format!("{tag}-{i}");
        let headers = if i % 3 == 0 {
            vec![Header::new("h", Some(tag.as_bytes()))]
        } else {
            vec![]
        };
        b.push(
            ts + i as i64,
            (i % 2 == 0).then_some(key.as_bytes()),
            Some(value.as_bytes()),
            &headers,
        );
    }
    b.finish_compressed(codec).expect("compresses").to_vec()
}

/// Decodes every batch in `bytes` into records.
pub fn records(bytes: &Bytes) -> Vec<Record> {
    Batch::decode_all(bytes.clone())
        .expect("valid batches")
        .iter()
        .flat_map(|b| b.decode_records().expect("valid records"))
        .collect()
}

/// The `.log` files of a log directory, in offset order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Copies a log directory (flat) to a new temporary directory.
pub fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.path().join(p.file_name().unwrap())).unwrap();
    }
    to
}

/// Runs a seeded property test: `run(seed)` for `default_cases` fresh seeds
/// (or `STRATA_PROP_CASES` of them), or for the one in `STRATA_PROP_SEED`,
/// which replays a failure exactly. `run` names its seed in every failure.
pub fn run_seeds(default_cases: u64, run: impl Fn(u64)) {
    if let Ok(seed) = std::env::var("STRATA_PROP_SEED") {
        run(seed.parse().expect("STRATA_PROP_SEED is a number"));
        return;
    }
    let cases: u64 = std::env::var("STRATA_PROP_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    // A fresh base each run explores new sequences.
    let base = fastrand::u64(..);
    for i in 0..cases {
        run(base.wrapping_add(i));
    }
}
