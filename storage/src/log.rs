//! A partition log: the list of segments, appends with group commit, reads,
//! and recovery on open. This file holds the log's state and what every
//! part shares; the parts are child modules: [`recovery`] (open),
//! `append` (the writer), `read`, `retention` (and truncation), `seal`
//! (rolled segments, the recovery point) and [`compact`].
//!
//! Concurrency: appends are serialised by the `writer` mutex, which covers
//! only validation-free work (offset assignment, the `pwrite`, index
//! entries). Validation and CRC checks run before it, fsyncs after it, so
//! while one thread fsyncs, others keep writing: that is the group commit.
//! Readers take no lock that a writer holds for long: they clone the
//! segment `Arc`s they need from a read-write lock and `pread` from there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};

use bytes::Bytes;

use super::Offset;
use super::checkpoint::{self, Kind};
use super::config::LogConfig;
use super::error::{Result, StorageError};
use super::producers::Producers;
use super::segment::Segment;
use super::vfs::Fs;

mod append;
pub mod compact;
mod read;
mod recovery;
mod retention;
mod seal;

use seal::{Rolled, SealBook};

/// Bytes read at a time by [`Log::for_each_record`].
const RECORD_WALK_BYTES: usize = 4 << 20;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the batch's first record.
    pub base_offset: Offset,
    /// Offset given to the batch's last record.
    pub last_offset: Offset,
    /// The broker's timestamp, if the log uses log-append time.
    pub log_append_time_ms: Option<i64>,
    /// Whether the batch was fsynced before the call returned.
    pub durable: bool,
    /// The batch had been appended before (same idempotent producer id,
    /// epoch and sequences); the offsets are the original ones and nothing
    /// was written.
    pub duplicate: bool,
}

/// A batch [`Log::write`] put in the log, to be passed to
/// [`Log::complete`] for the fsync its durability asks for.
#[derive(Debug, Clone, Copy)]
#[must_use = "an append is acknowledged only after `Log::complete`"]
pub struct Written {
    /// Where it went (`durable` is false until completed).
    pub info: AppendInfo,
    /// The log's clock when it was written.
    now_ms: i64,
}

/// What a read returned.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches, starting with the one that holds the offset asked for
    /// (the consumer skips records before its offset, as in Kafka).
    pub batches: Bytes,
    /// The offset after the last record readers may see.
    pub high_watermark: Offset,
    /// The first offset still in the log.
    pub log_start: Offset,
}

/// What opening the log found and repaired.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// The previous process closed the log cleanly (nothing was scanned).
    pub clean_shutdown: bool,
    /// Segments found.
    pub segments: usize,
    /// Segments whose every batch was re-validated (past the recovery point).
    pub segments_scanned: usize,
    /// Bytes cut off a torn tail, and where.
    pub truncated_bytes: u64,
    /// The file and position the torn tail began at, if any.
    pub truncated_at: Option<(PathBuf, u64)>,
    /// Why the torn tail was not a valid batch.
    pub truncation_reason: Option<String>,
    /// Index files rebuilt from the log.
    pub indexes_rebuilt: Vec<PathBuf>,
    /// Checkpoint files that were damaged and ignored (their safe fallback used).
    pub checkpoints_ignored: Vec<PathBuf>,
    /// Leftover temporary files removed.
    pub leftovers_removed: Vec<PathBuf>,
    /// Log start offset after recovery.
    pub log_start: Offset,
    /// Log end offset after recovery.
    pub log_end: Offset,
    /// Compaction swaps that a crash interrupted after their commit point,
    /// finished at open.
    pub compactions_finished: usize,
}

#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    /// Offset the next record will get.
    next_offset: u64,
    /// Broker time of the active segment's first append in this process.
    active_first_append_ms: Option<i64>,
    closed: bool,
    /// Reused buffer that joins a small batch's header and records into one write.
    scratch: Vec<u8>,
    /// Idempotent producers' sequences, to drop retried batches.
    producers: Producers,
}

#[derive(Debug)]
struct SyncState {
    /// Every offset below this is on disk.
    synced_offset: u64,
    /// A thread is fsyncing now; others wait for it rather than fsync too.
    in_progress: bool,
    last_sync_ms: i64,
}

/// One partition's log. Shared between threads (`Log: Sync`).
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    /// The disk (`config.fs` at open; `set_config` cannot change it).
    fs: Fs,
    /// Settings; replaceable at run time (`set_config`), read once per call.
    config: RwLock<Arc<LogConfig>>,
    /// Segments in offset order; the last is the active one.
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Readers see offsets below this: the log end, or in `Fsync` mode the
    /// synced end, so no reader sees a record a power loss could take back.
    high_watermark: AtomicU64,
    log_start: AtomicU64,
    /// Set once, by the first failed fsync; the log then refuses writes.
    /// Shared with background sealers, which can fail too.
    poisoned: Arc<OnceLock<String>>,
    seals: Arc<(Mutex<SealBook>, Condvar)>,
    recovery: RecoveryReport,
    /// Serialises the operations that replace or remove sealed segments:
    /// compaction, retention deletes and truncation. Taken before the
    /// writer lock, never after it.
    maintenance: Mutex<()>,
}

impl Log {
    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's current settings.
    pub fn config(&self) -> Arc<LogConfig> {
        self.config.read().expect("config lock").clone()
    }

    /// Replaces the settings (an operator altering a topic). Appends after
    /// this call use the new ones; existing segments stay as they are.
    pub fn set_config(&self, mut config: LogConfig) -> Result<()> {
        config.validate()?;
        // The log stays on the disk it was opened on, counted in the same
        // registry of open segments.
        config.fs = self.fs.clone();
        config.open_segments = self.config().open_segments.clone();
        *self.config.write().expect("config lock") = Arc::new(config);
        Ok(())
    }

    /// What opening the log found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The first offset in the log.
    pub fn log_start(&self) -> Offset {
        Offset(self.log_start.load(Ordering::Acquire))
    }

    /// The offset the next appended record will get.
    pub fn log_end(&self) -> Offset {
        // From the active segment, not the writer's state: readers never
        // wait for the writer's lock.
        let segs = self.segments.read().expect("segments lock");
        let active = segs.last().expect("a log always has a segment");
        Offset(active.next_offset().max(active.base_offset()))
    }

    /// The offset below which readers see records.
    pub fn high_watermark(&self) -> Offset {
        Offset(self.high_watermark.load(Ordering::Acquire))
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments
            .read()
            .expect("segments lock")
            .iter()
            .map(|s| s.size())
            .sum()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.segments.read().expect("segments lock").len()
    }

    /// Base offsets of the segments, in order.
    pub fn segment_bases(&self) -> Vec<Offset> {
        self.segments
            .read()
            .expect("segments lock")
            .iter()
            .map(|s| Offset(s.base_offset()))
            .collect()
    }

    fn check_writable(&self, w: &Writer) -> Result<()> {
        if let Some(cause) = self.poisoned.get() {
            return Err(StorageError::Poisoned {
                dir: self.dir.clone(),
                cause: cause.clone(),
            });
        }
        if w.closed {
            return Err(StorageError::Closed(self.dir.clone()));
        }
        Ok(())
    }

    fn poison(&self, err: &StorageError) {
        let _ = self.poisoned.set(err.to_string());
        tracing::error!(dir = %self.dir.display(), error = %err, "log poisoned: refusing writes until reopened");
    }

    /// Retires a log whose directory is about to go (its topic is being
    /// deleted): from now on nothing writes through this `Log`. Appends,
    /// rolls, retention, compaction and closes are refused as on a closed
    /// log, and a background seal still running is waited for, so no
    /// segment, snapshot or checkpoint of the old log can land in a
    /// directory a new topic of the same name gets. Readers go on reading
    /// their open files.
    pub fn retire(&self) {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let mut w = self.writer.lock().expect("writer lock");
        w.closed = true;
        drop(w);
        // A failed seal poisons and ends the wait: nothing more is written.
        let _ = self.wait_for_seals();
    }

    /// Closes the log cleanly: fsyncs, trims the active segment's indexes,
    /// and writes the clean-shutdown marker, so the next open need not scan.
    pub fn close(&self) -> Result<()> {
        let mut w = self.writer.lock().expect("writer lock");
        self.check_writable(&w)?;
        w.closed = true;
        self.wait_for_seals()?;
        if let Err(e) = w.active.sync() {
            self.poison(&e);
            return Err(e);
        }
        // A full disk leaves the log unclosed, not poisoned: the next open
        // scans the active segment, as after a crash.
        if let Err(e) = w.active.finish_seal() {
            if !matches!(e, StorageError::DiskFull { .. }) {
                self.poison(&e);
            }
            return Err(e);
        }
        self.save_producers(&w)?;
        checkpoint::write(&*self.fs, &self.dir, Kind::RecoveryPoint, w.next_offset)?;
        checkpoint::write(&*self.fs, &self.dir, Kind::CleanShutdown, w.next_offset)?;
        Ok(())
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // Background sealers write the recovery point into our directory;
        // let them finish so they cannot race with whoever opens it next.
        drop(self.wait_for_running_seals());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_batch::BatchBuilder;
    use strata_batch::batch;

    fn batch(n: usize, ts: i64) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            b.push(ts + i as i64, None, Some(format!("v{i}").as_bytes()), &[]);
        }
        b.finish().to_vec()
    }

    fn sim_config(fs: &crate::SimFs) -> LogConfig {
        LogConfig {
            fs: Arc::new(fs.clone()),
            ..LogConfig::default()
        }
    }

    #[test]
    fn failed_fsync_poisons_the_log() {
        let fs = crate::SimFs::new();
        let dir = Path::new("/log");
        let log = Log::open(dir, sim_config(&fs)).unwrap();
        log.append(&batch(2, 10)).unwrap();
        fs.set_syncs_fail(true);
        let err = log.append(&batch(1, 20)).unwrap_err();
        fs.set_syncs_fail(false);
        assert!(
            matches!(
                err,
                StorageError::Io {
                    op: "fsync segment",
                    ..
                }
            ),
            "{err}"
        );
        // Even though fsync works again, the log refuses writes: the page
        // cache may have dropped what the failed fsync was to persist.
        let err = log.append(&batch(1, 30)).unwrap_err();
        assert!(matches!(err, StorageError::Poisoned { .. }), "{err}");
        assert!(err.to_string().contains("injected fsync failure"));
        // What was durable stays readable.
        let r = log.read(Offset(0), 1 << 20).unwrap();
        assert_eq!(r.high_watermark, Offset(2));
        drop(log);
        let fs = fs.restart_process();
        let log = Log::open(dir, sim_config(&fs)).unwrap();
        assert!(log.append(&batch(1, 40)).is_ok());
    }

    #[test]
    fn a_full_disk_refuses_writes_by_name_serves_reads_and_resumes() {
        let fs = crate::SimFs::new();
        let dir = Path::new("/log");
        let log = Log::open(dir, sim_config(&fs)).unwrap();
        log.append(&batch(3, 10)).unwrap();
        fs.set_space_bytes_max(Some(fs.used_bytes() + 10));
        let err = log.append(&batch(3, 20)).unwrap_err();
        assert!(matches!(err, StorageError::DiskFull { .. }), "{err}");
        assert!(err.to_string().contains("disk full"), "{err}");
        let r = log.read(Offset(0), 1 << 20).unwrap();
        assert_eq!(r.high_watermark, Offset(3));
        fs.set_space_bytes_max(None);
        let info = log.append(&batch(2, 30)).unwrap();
        assert_eq!(info.base_offset, Offset(3));
        assert_eq!(
            log.read(Offset(3), 1 << 20).unwrap().high_watermark,
            Offset(5)
        );
    }

    #[test]
    fn a_producer_batch_that_straddles_the_sequence_wrap_is_followed_in_order() {
        let fs = crate::SimFs::new();
        let log = Log::open(Path::new("/log"), sim_config(&fs)).unwrap();
        let producer = |n, seq| {
            let mut b = batch(n, 10);
            batch::set_producer(&mut b, 7, 0, seq);
            b
        };
        // Sequences MAX-1, MAX, 0: the next batch starts at 1.
        let first = producer(3, i32::MAX - 1);
        log.append(&first).unwrap();
        let second = log.append(&producer(2, 1)).unwrap();
        assert!(!second.duplicate);
        assert_eq!(second.base_offset, Offset(3));
        assert!(log.append(&first).unwrap().duplicate, "a retry is known");
        let err = log.append(&producer(1, 0)).unwrap_err();
        assert!(
            matches!(err, StorageError::OutOfOrderSequence { expected: 3, .. }),
            "{err}"
        );
        // The same after a restart, from the replayed headers.
        drop(log);
        let fs = fs.restart_process();
        let log = Log::open(Path::new("/log"), sim_config(&fs)).unwrap();
        assert_eq!(log.append(&producer(1, 3)).unwrap().base_offset, Offset(5));
    }
}
