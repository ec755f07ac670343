//! A seeded model test of the partition log on the simulated disk, with
//! power losses at random points: in the middle of appends, rolls, seals,
//! retention deletes, producer snapshots and checkpoint writes, and after
//! failed fsyncs; and with the disk full for a while (operations refused
//! for it, and working again once there is space). After each loss the
//! log must open, and:
//! - every append acknowledged as durable is there, once, byte for byte, at
//!   its offset (unless retention deleted it first);
//! - nothing is there that was never written at that offset;
//! - an idempotent producer's retry of its last batch is answered
//!   "duplicate" only if that batch is in the log, and always if it was
//!   acknowledged as durable.
//!
//! Every failure names its seed; rerun one with `STRATA_PROP_SEED=N cargo
//! test -p strata-storage --test it power_loss::` (add `STRATA_TRACE=1` to see
//! each producer append and each reopen). `STRATA_PROP_CASES` sets how
//! many seeds a run tries (default 250, about 3,000 power losses); the run
//! prints how many power losses it simulated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::*;
use strata_batch::BatchBuilder;
use strata_batch::batch::{self, BatchHeader};
use strata_storage::{Durability, Log, LogConfig, Offset, SimFs, StorageError};

const DIR: &str = "/data/topics/t/0";
const PRODUCER_ID: i64 = 4242;

/// Power losses simulated by this test binary so far.
static LOSSES: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
struct Written {
    /// The batch as the log stores it (base offset stamped).
    bytes: Vec<u8>,
    /// Acknowledged as durable (or covered by a successful flush).
    durable: bool,
}

/// What the test knows the log may and must hold.
#[derive(Debug, Default)]
struct Model {
    /// Every batch written at each base offset since the last restart
    /// check, acknowledged or not (an append that failed when the power
    /// went may still have reached the disk).
    written: BTreeMap<u64, Written>,
    /// The offset the next append gets.
    end: u64,
    /// Retention moved the start here, durably.
    start: u64,
}

/// Where an append was acknowledged, and whether as durable.
type Acked = (u64, bool);

/// The idempotent producer's state, as a client keeps it.
#[derive(Debug, Default)]
struct Producer {
    epoch: i16,
    next_seq: i32,
    /// Its last batch (producer fields set, base offset not), if any, and
    /// whether it was acknowledged as durable, and where.
    last: Option<(Vec<u8>, Option<Acked>)>,
}

/// With `STRATA_TRACE` set, prints what the run does (to debug a seed).
fn trace(what: impl FnOnce() -> String) {
    if std::env::var_os("STRATA_TRACE").is_some() {
        eprintln!("{}", what());
    }
}

fn config(rng: &mut fastrand::Rng, fs: &SimFs) -> LogConfig {
    let durability = match rng.u8(0..10) {
        0 => Durability::PageCache,
        1 => Durability::Interval {
            interval_ms: None,
            interval_records: Some(rng.u64(1..20)),
        },
        _ => Durability::Fsync,
    };
    let segment_bytes_max = rng.u64(1024..6000);
    LogConfig {
        segment_bytes_max,
        index_interval_bytes: rng.u32(1..600),
        index_bytes_max: rng.u32(1024..2048),
        batch_bytes_max: 1024,
        durability,
        fs: Arc::new(fs.clone()),
        seal_in_background: false,
        // Few open sealed segments: reads, seals and recovery close and
        // reopen segment files all the time.
        open_segments: strata_storage::open_segments::OpenSegments::new(rng.usize(1..4)),
        ..LogConfig::default()
    }
}

fn random_batch(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for _ in 0..rng.usize(1..5) {
        let value: Vec<u8> = (0..rng.usize(0..150)).map(|_| rng.u8(..)).collect();
        b.push(rng.i64(0..10_000), None, Some(&value), &[]);
    }
    b.finish().to_vec()
}

/// Every batch the log serves, by base offset.
fn read_all(log: &Log, ctx: &str) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut at = log.log_start().0;
    let end = log.high_watermark().0;
    while at < end {
        let r = log
            .read(Offset(at), 1 << 20)
            .unwrap_or_else(|e| panic!("{ctx}: read {at}: {e}"));
        assert!(
            !r.batches.is_empty(),
            "{ctx}: empty read at {at} below {end}"
        );
        let mut pos = 0;
        while pos < r.batches.len() {
            let h = BatchHeader::parse(&r.batches[pos..]).unwrap();
            let bytes = r.batches[pos..pos + h.total_len()].to_vec();
            out.insert(h.base_offset as u64, bytes);
            at = h.last_offset() as u64 + 1;
            pos += h.total_len();
        }
    }
    out
}

struct Run {
    seed: u64,
    rng: fastrand::Rng,
    fs: SimFs,
    config: LogConfig,
    log: Option<Log>,
    model: Model,
    producer: Producer,
    losses: u64,
    /// The disk is full now: operations may fail, with `DiskFull` only.
    full: bool,
}

impl Run {
    fn log(&self) -> &Log {
        self.log.as_ref().expect("log is open")
    }

    fn ctx(&self, step: usize) -> String {
        format!(
            "seed {} step {step} (replay with STRATA_PROP_SEED={})",
            self.seed, self.seed
        )
    }

    /// One append; `powered` says whether errors are a failure of the test.
    fn append(&mut self, idempotent: bool, powered: bool, ctx: &str) {
        let mut bytes = random_batch(&mut self.rng);
        if idempotent {
            let p = &self.producer;
            match &p.last {
                // A batch without an answer is sent again as it was, as a
                // client does; a new one would reuse its sequence numbers.
                Some((last, None)) => bytes = last.clone(),
                _ => batch::set_producer(&mut bytes, PRODUCER_ID, p.epoch, p.next_seq),
            }
        }
        let count = BatchHeader::parse(&bytes).unwrap().last_offset_delta + 1;
        let base = self.model.end;
        let mut stored = bytes.clone();
        batch::set_base_offset(&mut stored, base as i64);
        // Recorded before the call: it may reach the disk even if it fails.
        // The first attempt at a base wins: once an append fails with the
        // power going or a failed fsync, later ones write nothing. (An
        // append refused for a full disk is undone: forgotten below.)
        let fresh = !self.model.written.contains_key(&base);
        self.model.written.entry(base).or_insert(Written {
            bytes: stored,
            durable: false,
        });
        let r = self.log().append(&bytes);
        if idempotent {
            let h = BatchHeader::parse(&bytes).unwrap();
            let (first, last) = (h.base_sequence, h.base_sequence + h.last_offset_delta);
            let answer = r.as_ref().map(|i| (i.base_offset, i.duplicate, i.durable));
            trace(|| {
                format!(
                    "{ctx}: epoch {} seq {first}..={last} at {base}: {answer:?}",
                    h.producer_epoch
                )
            });
        }
        match r {
            Ok(info) => {
                assert!(!info.duplicate, "{ctx}: a new batch was a duplicate");
                assert_eq!(info.base_offset.0, base, "{ctx}: base offset");
                self.model.end = info.last_offset.0 + 1;
                if info.durable {
                    self.mark_durable(self.model.end);
                }
                if idempotent {
                    self.producer.next_seq += count;
                    self.producer.last = Some((bytes, Some((base, info.durable))));
                }
            }
            Err(e) => {
                self.check_error(&e, powered, ctx, "append");
                if self.full && fresh {
                    self.model.written.remove(&base);
                }
                if idempotent {
                    self.producer.last = Some((bytes, None));
                }
            }
        }
    }

    fn mark_durable(&mut self, below: u64) {
        for (_, w) in self.model.written.range_mut(..below) {
            w.durable = true;
        }
        if let Some((_, Some((base, durable)))) = &mut self.producer.last
            && *base < below
        {
            *durable = true;
        }
    }

    /// One operation while the power is on (or going: then errors are fine).
    fn operate(&mut self, powered: bool, ctx: &str) {
        match self.rng.u8(0..100) {
            0..=49 => self.append(false, powered, ctx),
            50..=74 => self.append(true, powered, ctx),
            75..=84 => match self.log().flush() {
                Ok(()) => self.mark_durable(self.model.end),
                Err(e) => self.check_error(&e, powered, ctx, "flush"),
            },
            85..=92 => {
                let target = self.rng.u64(self.model.start..=self.model.end);
                let r = self.log().delete_segments_before(Offset(target));
                trace(|| {
                    format!(
                        "{ctx}: retention to {target}: {r:?}, segments {:?}",
                        self.log().segment_bases()
                    )
                });
                match r {
                    Ok(_) => self.model.start = self.log().log_start().0,
                    Err(e) => self.check_error(&e, powered, ctx, "retention"),
                }
            }
            _ => {
                let t = self.rng.i64(0..10_000);
                if let Err(e) = self.log().offset_for_timestamp(t) {
                    self.check_error(&e, powered, ctx, "time lookup");
                }
            }
        }
    }

    /// An operation failed: never with the power on and space free; with
    /// a full disk, only for that reason.
    fn check_error(&self, e: &StorageError, powered: bool, ctx: &str, what: &str) {
        if self.full {
            assert!(
                matches!(e, StorageError::DiskFull { .. }),
                "{ctx}: {what} failed on a full disk with another error: {e}"
            );
        } else {
            assert!(!powered, "{ctx}: {what} failed with the power on: {e}");
        }
    }

    /// The disk fills up for a few operations: they may be refused for
    /// it, and once there is space again the log works as before (no
    /// poisoning, no loss; a seal that waited is done later).
    fn disk_full(&mut self, step: usize) {
        let ctx = format!("{} (disk full)", self.ctx(step));
        let slack = self.rng.u64(0..3000);
        self.fs
            .set_space_bytes_max(Some(self.fs.used_bytes() + slack));
        self.full = true;
        for _ in 0..self.rng.usize(1..15) {
            self.operate(false, &ctx);
        }
        self.fs.set_space_bytes_max(None);
        self.full = false;
        for _ in 0..5 {
            self.operate(true, &format!("{ctx}, then space again"));
        }
    }

    /// Runs until the power goes, `after` operations from now (or a failed
    /// fsync, which may drop dirty pages as a power loss does), then
    /// restarts on what survived and checks it.
    fn power_loss(&mut self, step: usize) {
        let ctx = self.ctx(step);
        if self.rng.u8(0..8) == 0 {
            // A failed fsync poisons the log; what it was to persist may
            // be gone, as after a power loss.
            self.fs.set_syncs_fail(true);
            for _ in 0..self.rng.usize(1..6) {
                self.operate(false, &ctx);
            }
        } else {
            self.fs.power_off_after(self.rng.u64(0..40));
            while !self.fs.is_powered_off() {
                self.operate(false, &ctx);
            }
        }
        self.log = None;
        self.fs = self.fs.restart(self.rng.u64(..));
        self.losses += 1;
        self.reopen_and_check(&ctx);
    }

    fn reopen_and_check(&mut self, ctx: &str) {
        self.config.fs = Arc::new(self.fs.clone());
        let log = Log::open(DIR, self.config.clone())
            .unwrap_or_else(|e| panic!("{ctx}: open after power loss: {e}"));
        let start = log.log_start().0;
        assert!(
            start >= self.model.start,
            "{ctx}: log start went back from {} to {start}",
            self.model.start
        );
        trace(|| {
            let last = self.producer.last.as_ref().map(|l| l.1);
            format!(
                "{ctx}: reopened {:?} ({:?}), segments {:?}, producer's last {last:?}",
                log.recovery_report(),
                self.config.durability,
                log.segment_bases()
            )
        });
        let found = read_all(&log, ctx);
        for (base, bytes) in &found {
            let w =
                self.model.written.get(base).unwrap_or_else(|| {
                    panic!("{ctx}: a batch at {base} that was never written there")
                });
            assert_eq!(bytes, &w.bytes, "{ctx}: batch at {base} differs");
        }
        for (base, w) in self.model.written.range(start..) {
            assert!(
                !w.durable || found.contains_key(base),
                "{ctx}: acknowledged durable batch at {base} is gone (log {start}..{})",
                log.log_end()
            );
        }
        // From here on the model is what the log holds: recovery fsynced it.
        self.model.start = start;
        self.model.end = log.log_end().0;
        self.model.written = found
            .iter()
            .map(|(&b, bytes)| {
                let w = Written {
                    bytes: bytes.clone(),
                    durable: true,
                };
                (b, w)
            })
            .collect();
        self.log = Some(log);
        self.check_retry(&found, ctx);
    }

    /// The producer retries its last batch, as a client that got no answer does.
    fn check_retry(&mut self, found: &BTreeMap<u64, Vec<u8>>, ctx: &str) {
        let Some((bytes, acked)) = self.producer.last.clone() else {
            return;
        };
        let fsync = self.config.durability == Durability::Fsync;
        let result = self.log().append(&bytes);
        trace(|| {
            let answer = result.as_ref().map(|i| (i.base_offset, i.duplicate));
            format!("{ctx}: retry: {answer:?}")
        });
        match result {
            Ok(info) if info.duplicate => {
                let base = info.base_offset.0;
                let mut stored = bytes.clone();
                batch::set_base_offset(&mut stored, base as i64);
                // Below the log start retention removed it, after it was
                // durable: a duplicate still (as in Kafka).
                let start = self.log().log_start().0;
                assert!(
                    base < start || found.get(&base) == Some(&stored),
                    "{ctx}: a retry was answered duplicate at {base}, but the batch is not there"
                );
                match acked {
                    Some((acked_base, _)) => {
                        assert_eq!(base, acked_base, "{ctx}: duplicate of another offset")
                    }
                    // It reached the disk although its append failed.
                    None => {
                        self.producer.next_seq +=
                            BatchHeader::parse(&bytes).unwrap().last_offset_delta + 1;
                    }
                }
                self.producer.last = None;
            }
            Ok(info) => {
                assert!(
                    !matches!(acked, Some((_, true))),
                    "{ctx}: a durable batch was appended again at {}",
                    info.base_offset
                );
                let count = BatchHeader::parse(&bytes).unwrap().last_offset_delta + 1;
                if acked.is_none() {
                    self.producer.next_seq += count;
                }
                let base = info.base_offset.0;
                let mut stored = bytes.clone();
                batch::set_base_offset(&mut stored, base as i64);
                let durable = info.durable;
                self.model.written.insert(
                    base,
                    Written {
                        bytes: stored,
                        durable,
                    },
                );
                self.model.end = info.last_offset.0 + 1;
                self.producer.last = Some((bytes, Some((base, durable))));
            }
            Err(StorageError::OutOfOrderSequence { .. }) if !fsync => {
                // Acknowledged but not durable batches were lost: the
                // client starts a new epoch.
                self.producer.epoch += 1;
                self.producer.next_seq = 0;
                self.producer.last = None;
            }
            Err(e) => panic!("{ctx}: retry of the producer's last batch: {e}"),
        }
    }
}

fn run(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let fs = SimFs::new();
    let config = config(&mut rng, &fs);
    let log =
        Log::open(DIR, config.clone()).unwrap_or_else(|e| panic!("seed {seed}: first open: {e}"));
    let mut run = Run {
        seed,
        rng,
        fs,
        config,
        log: Some(log),
        model: Model::default(),
        producer: Producer::default(),
        losses: 0,
        full: false,
    };
    for step in 0..200 {
        let ctx = run.ctx(step);
        match run.rng.u8(0..100) {
            0..=86 => run.operate(true, &ctx),
            87..=89 => run.disk_full(step),
            90..=93 => {
                run.log()
                    .close()
                    .unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
                run.log = None;
                run.fs = run.fs.restart_process();
                run.reopen_and_check(&ctx);
            }
            _ => run.power_loss(step),
        }
    }
    run.power_loss(200);
    LOSSES.fetch_add(run.losses, Ordering::Relaxed);
}

#[test]
fn acknowledged_records_survive_every_power_loss() {
    run_seeds(250, run);
    println!("simulated {} power losses", LOSSES.load(Ordering::Relaxed));
}
