//! A partition log: the list of segments, appends with group commit, reads,
//! and recovery on open.
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
use strata_batch::TimestampType;
use strata_batch::batch;

use super::Offset;
use super::checkpoint::{self, Kind};
use super::config::{Durability, LogConfig};
use super::error::{Result, StorageError};
use super::producers::{self, BatchMeta, Check, Producers, Refusal};
use super::segment::{self, ScanEnd, Segment};
use super::vfs::{self, Fs};

pub mod compact;
mod seal;

use seal::{Rolled, SealBook, Sealer};

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
    /// Opens (or creates) the log in `dir`, recovering it if the last
    /// process did not close it cleanly.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Self> {
        config.validate()?;
        let dir = dir.as_ref().to_owned();
        let fs = config.fs.clone();
        vfs::create_dir_durable(&*fs, &dir)
            .map_err(StorageError::io(&dir, "create log directory"))?;
        // A compaction interrupted after its commit point is finished
        // before anything looks at the segments.
        let mut report = RecoveryReport {
            compactions_finished: compact::recover(&*fs, &dir)?,
            ..RecoveryReport::default()
        };

        let mut bases = Vec::new();
        for entry in fs
            .list(&dir)
            .map_err(StorageError::io(&dir, "list log directory"))?
        {
            let name = entry.name;
            let path = dir.join(&name);
            if name.ends_with(".tmp") {
                // An interrupted checkpoint write; the old checkpoint stands.
                fs.remove_file(&path)
                    .map_err(StorageError::io(&path, "remove leftover"))?;
                report.leftovers_removed.push(path);
            } else if let Some(base) = segment::parse_log_name(&name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        report.segments = bases.len();

        let mut read_ck = |kind| -> Result<Option<u64>> {
            Ok(match checkpoint::read(&*fs, &dir, kind)? {
                checkpoint::Read::Value(v) => Some(v),
                checkpoint::Read::Missing => None,
                checkpoint::Read::Damaged => {
                    report
                        .checkpoints_ignored
                        .push(dir.join(checkpoint::file_name(kind)));
                    None
                }
            })
        };
        let clean_end = read_ck(Kind::CleanShutdown)?;
        let recovery_point_read = read_ck(Kind::RecoveryPoint)?;
        let saved_start = read_ck(Kind::LogStart)?;
        // Missing: no seal ever finished, and nothing is known synced (as
        // if it were 0). Damaged: something was, and we cannot say what.
        let recovery_point_damaged = report
            .checkpoints_ignored
            .contains(&dir.join(checkpoint::file_name(Kind::RecoveryPoint)));
        let recovery_point = recovery_point_read.unwrap_or(0);
        // From here on the log may change: a crash must not look clean.
        checkpoint::remove(&*fs, &dir, Kind::CleanShutdown)?;
        report.clean_shutdown = clean_end.is_some();
        remove_retention_leftovers(&*fs, &dir, &mut bases, saved_start, &mut report)?;

        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len());
        // Which of `segments` were scanned (their data may be unsynced).
        let mut scanned: Vec<bool> = Vec::with_capacity(bases.len());
        // Set when a torn write ends the log early: later segments go.
        let mut cut_after: Option<usize> = None;
        for (i, &base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            let synced =
                clean_end.is_some() || bases.get(i + 1).is_some_and(|&next| next <= recovery_point);
            let seg = if synced {
                let (seg, rebuilt) = Segment::open_trusted(&dir, base, &config)?;
                if rebuilt {
                    report
                        .indexes_rebuilt
                        .push(segment::file_path(&dir, base, "index"));
                    report
                        .indexes_rebuilt
                        .push(segment::file_path(&dir, base, "timeindex"));
                }
                seg
            } else {
                let (seg, end) = Segment::open_scan(&dir, base, &config)?;
                report.segments_scanned += 1;
                if let ScanEnd::Bad { position, reason } = end {
                    // Past the recovery point nothing was confirmed synced:
                    // a power loss may have torn this segment while later
                    // ones reached the disk, so the log ends here. With a
                    // damaged recovery point we cannot tell a torn write
                    // from damage to synced data, and refuse.
                    if !is_last && recovery_point_damaged {
                        return Err(StorageError::corrupt(
                            seg.log_path(),
                            position,
                            format!(
                                "invalid batch in a segment that is not the last, with a damaged recovery point that cannot say it was never synced: {reason}"
                            ),
                        ));
                    }
                    if !is_last {
                        cut_after = Some(i);
                    }
                    let file_len = fs
                        .file_len(seg.log_path())
                        .map_err(StorageError::io(seg.log_path(), "stat segment"))?;
                    seg.truncate_at(position, &config)?;
                    report.truncated_bytes = file_len - position;
                    report.truncated_at = Some((seg.log_path().to_owned(), position));
                    report.truncation_reason = Some(reason);
                } else if let Some(&next) = bases.get(i + 1)
                    && next > seg.next_offset()
                    && !recovery_point_damaged
                {
                    // Segments roll at the log end, so only a lost tail
                    // leaves a gap above the recovery point (compaction,
                    // the other source of gaps, works below it). What
                    // follows was never fsynced: an fsync covers every
                    // older segment first. The log ends here, as at a torn
                    // batch; otherwise readers at the gap would find nothing
                    // below the high watermark.
                    cut_after = Some(i);
                    report.truncation_reason = Some(format!(
                        "segment ends at offset {} but the next one starts at {next}",
                        seg.next_offset()
                    ));
                }
                seg
            };
            if let Some(prev) = segments.last()
                && seg.base_offset() < prev.next_offset()
            {
                return Err(StorageError::corrupt(
                    seg.log_path(),
                    0,
                    format!(
                        "segment starts at offset {} but the previous one ends at {}",
                        seg.base_offset(),
                        prev.next_offset()
                    ),
                ));
            }
            segments.push(Arc::new(seg));
            scanned.push(!synced);
            if cut_after.is_some() {
                break;
            }
        }
        if let Some(i) = cut_after {
            for &base in &bases[i + 1..] {
                for ext in ["log", "index", "timeindex"] {
                    let path = segment::file_path(&dir, base, ext);
                    if ext == "log" {
                        report.truncated_bytes += fs.file_len(&path).unwrap_or(0);
                    }
                    vfs::remove_if_present(&*fs, &path)
                        .map_err(StorageError::io(&path, "remove segment past a torn write"))?;
                }
            }
            checkpoint::sync_dir(&*fs, &dir)?;
            tracing::warn!(dir = %dir.display(), segments_removed = bases.len() - i - 1, "a torn write ended the log before its last segment");
        }

        let log_start_floor = saved_start.unwrap_or(0);
        if segments.is_empty() {
            let seg = Segment::create(&dir, log_start_floor, &config)?;
            checkpoint::sync_dir(&*fs, &dir)?;
            segments.push(Arc::new(seg));
        } else if report.clean_shutdown {
            // After a clean shutdown the active segment was opened with
            // trimmed indexes; after a crash it was scanned into fresh,
            // writable ones.
            segments
                .last()
                .expect("non-empty")
                .reopen_for_append(&config)?;
        }
        let active = segments.last().expect("non-empty").clone();
        // Whatever recovery left must itself be durable before we build on
        // it: readers of an `Fsync` log are about to see all of it. Scanned
        // segments before the active one are sealed (fsync, indexes
        // written), so the recovery point can pass them.
        for (seg, _) in segments.iter().zip(&scanned).filter(|(_, s)| **s) {
            if !Arc::ptr_eq(seg, &active) {
                seg.seal()?;
            }
        }
        // (An empty active segment holds nothing to sync: a truncation to
        // zero synced itself. This is what keeps a restart after a crash
        // of thousands of empty partitions fast.)
        if active.size() > 0 {
            active.sync()?;
        }
        let mut recovery_point = recovery_point;
        if active.base_offset() > recovery_point {
            checkpoint::write(&*fs, &dir, Kind::RecoveryPoint, active.base_offset())?;
            recovery_point = active.base_offset();
        }
        let log_start = log_start_floor.max(segments[0].base_offset());
        let log_end = active.next_offset().max(active.base_offset());
        let log_end_base = active.base_offset();
        let (producers, snapshot_offset) = load_producers(
            &*fs,
            &dir,
            &segments,
            log_end,
            &mut report,
            config.clock.now_ms(),
        )?;
        report.log_start = Offset(log_start);
        report.log_end = Offset(log_end);

        let now = config.clock.now_ms();
        Ok(Self {
            writer: Mutex::new(Writer {
                active,
                next_offset: log_end,
                active_first_append_ms: None,
                closed: false,
                scratch: Vec::new(),
                producers,
            }),
            sync: Mutex::new(SyncState {
                synced_offset: log_end,
                in_progress: false,
                last_sync_ms: now,
            }),
            synced: Condvar::new(),
            high_watermark: AtomicU64::new(log_end),
            log_start: AtomicU64::new(log_start),
            poisoned: Arc::new(OnceLock::new()),
            seals: Arc::new((
                Mutex::new(SealBook {
                    sealing: Vec::new(),
                    rolled_to: log_end_base,
                    written_recovery_point: recovery_point,
                    snapshot_offset,
                }),
                Condvar::new(),
            )),
            segments: RwLock::new(segments),
            recovery: report,
            maintenance: Mutex::new(()),
            dir,
            fs,
            config: RwLock::new(Arc::new(config)),
        })
    }

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

    /// Appends one record batch (Kafka v2, uncompressed, exactly one batch):
    /// [`Log::write`] then [`Log::complete`]. When the call returns depends
    /// on the log's [`Durability`]: in `Fsync` mode only once an fsync
    /// covers the batch.
    pub fn append(&self, batch: &[u8]) -> Result<AppendInfo> {
        let written = self.write(batch)?;
        self.complete(written)
    }

    /// The first half of an append, which never waits for an fsync: the
    /// batch is validated (framing, CRC-32C, every record) and written with
    /// its base offset stamped in (and, for log-append-time logs, its
    /// timestamp, with a new CRC); the caller's buffer is not modified.
    /// Batches written by one thread reach the log in the order of its
    /// calls, which is what lets a produce stream keep a producer's batches
    /// in order while their fsyncs overlap. Readers of an `Fsync` log see
    /// the batch only after [`Log::complete`] (or any later fsync).
    pub fn write(&self, batch: &[u8]) -> Result<Written> {
        let config = self.config();
        if batch.len() > config.batch_bytes_max as usize {
            return Err(StorageError::BatchTooLarge {
                size: batch.len(),
                limit: config.batch_bytes_max,
            });
        }
        let valid = batch::validate(batch)?;
        if config.keys_required
            && let Some(index) = batch::first_keyless(batch)?
        {
            return Err(StorageError::KeyRequired { index });
        }
        let now = config.clock.now_ms();
        let log_append_time_ms =
            (config.timestamp_type == TimestampType::LogAppendTime).then_some(now);
        let max_timestamp = log_append_time_ms.unwrap_or(valid.header.max_timestamp);
        let records = u64::from(valid.record_count);
        let h = valid.header;
        let idempotent = h.producer_id >= 0;
        let last_seq = h.last_sequence();

        let (base, last, duplicate) = {
            let mut w = self.writer.lock().expect("writer lock");
            self.check_writable(&w)?;
            if idempotent && !w.producers.has_room_for(h.producer_id, now) {
                return Err(StorageError::ProducersFull {
                    dir: self.dir.clone(),
                    limit: producers::PRODUCERS_MAX,
                });
            }
            if idempotent {
                // Checked and recorded under the writer's lock, so two
                // copies of one batch racing each other append once.
                match w
                    .producers
                    .check(h.producer_id, h.producer_epoch, h.base_sequence, last_seq)
                {
                    Ok(Check::Append) => {}
                    Ok(Check::Duplicate(m)) => {
                        // Answered like the original: once it is as durable
                        // as an append would be (`complete`).
                        return Ok(Written {
                            info: AppendInfo {
                                base_offset: Offset(m.base_offset),
                                last_offset: Offset(m.last_offset),
                                log_append_time_ms: None,
                                durable: false,
                                duplicate: true,
                            },
                            now_ms: now,
                        });
                    }
                    Err(Refusal::Fenced { current }) => {
                        return Err(StorageError::ProducerFenced {
                            producer_id: h.producer_id,
                            epoch: h.producer_epoch,
                            current,
                        });
                    }
                    Err(Refusal::OutOfOrder { expected }) => {
                        return Err(StorageError::OutOfOrderSequence {
                            producer_id: h.producer_id,
                            expected,
                            got: h.base_sequence,
                        });
                    }
                }
            }
            let base = w.next_offset;
            let last = base + records - 1;
            let too_old = w
                .active_first_append_ms
                .is_some_and(|t| now.saturating_sub(t) >= config.segment_ms_max as i64);
            if too_old || w.active.is_full_for(batch.len() as u64, last, &config) {
                self.roll(&mut w, &config)?;
            }
            // Computed under the lock: the base offset is only known here.
            // The CRC (log-append time only) covers the records, read, not copied.
            let header = batch::stored_header(batch, base as i64, log_append_time_ms);
            let Writer {
                active, scratch, ..
            } = &mut *w;
            let records_bytes = &batch[batch::BATCH_HEADER_LEN..];
            if let Err(failure) = active.append(
                &header,
                records_bytes,
                scratch,
                base,
                last,
                max_timestamp,
                &config,
            ) {
                // A write that failed and could not be undone leaves bytes
                // we cannot account for: stop writing.
                if !failure.undone {
                    self.poison(&failure.error);
                }
                return Err(failure.error);
            }
            w.active_first_append_ms.get_or_insert(now);
            w.next_offset = last + 1;
            if idempotent {
                let meta = BatchMeta {
                    first_seq: h.base_sequence,
                    last_seq,
                    base_offset: base,
                    last_offset: last,
                };
                w.producers
                    .record(h.producer_id, h.producer_epoch, meta, now);
            }
            if config.durability != Durability::Fsync {
                self.high_watermark.store(w.next_offset, Ordering::Release);
            }
            (base, last, false)
        };
        Ok(Written {
            info: AppendInfo {
                base_offset: Offset(base),
                last_offset: Offset(last),
                log_append_time_ms,
                durable: false,
                duplicate,
            },
            now_ms: now,
        })
    }

    /// The second half of an append: the fsync the log's [`Durability`]
    /// asks for (shared with every other batch written meanwhile: group
    /// commit). A duplicate is completed like the original batch would be.
    pub fn complete(&self, written: Written) -> Result<AppendInfo> {
        let Written { mut info, now_ms } = written;
        let config = self.config();
        let last = info.last_offset.0;
        info.durable = match config.durability {
            Durability::Fsync => {
                self.sync_to(last + 1)?;
                true
            }
            Durability::Interval { .. } if info.duplicate => false,
            Durability::Interval {
                interval_ms,
                interval_records,
            } => {
                let due = {
                    let s = self.sync.lock().expect("sync lock");
                    interval_records.is_some_and(|n| last + 1 - s.synced_offset.min(last + 1) >= n)
                        || interval_ms
                            .is_some_and(|ms| now_ms.saturating_sub(s.last_sync_ms) >= ms as i64)
                };
                if due {
                    self.sync_to(last + 1)?;
                }
                due
            }
            Durability::PageCache => false,
        };
        Ok(info)
    }

    /// Starts a new segment at the log end and hands the old one to a
    /// background thread to seal. Called with the writer lock held.
    fn roll(&self, w: &mut Writer, config: &LogConfig) -> Result<()> {
        // The producer state up to here, so the next open replays at most
        // the segments after this one; written once the segment is sealed.
        let snapshot =
            (!w.producers.is_empty()).then(|| (w.next_offset, w.producers.encode(w.next_offset)));
        let seg = Arc::new(Segment::create(&self.dir, w.next_offset, config)?);
        if let Err(e) = checkpoint::sync_dir(&*self.fs, &self.dir) {
            // Whether the new name would survive a power loss is unknown:
            // drop the segment, and refuse writes as after any failed fsync.
            drop(seg);
            Segment::remove_files(config, &self.dir, w.next_offset);
            self.poison(&e);
            return Err(e);
        }
        self.segments
            .write()
            .expect("segments lock")
            .push(seg.clone());
        let old = std::mem::replace(&mut w.active, seg);
        w.active_first_append_ms = None;
        {
            let mut book = self.seals.0.lock().expect("seal lock");
            book.sealing.push(Rolled {
                seg: old.clone(),
                sealed: false,
                waiting_for_space: false,
                snapshot,
            });
            book.rolled_to = w.next_offset;
        }
        let sealer = self.sealer();
        if !config.seal_in_background {
            sealer.seal(old);
        } else {
            let background = old.clone();
            let s2 = sealer.clone();
            let spawned = std::thread::Builder::new()
                .name("strata-seal".into())
                .spawn(move || s2.seal(background));
            if spawned.is_err() {
                // No thread to be had: seal here, slower but just as correct.
                sealer.seal(old);
            }
        }
        tracing::debug!(dir = %self.dir.display(), base = w.next_offset, "rolled segment");
        Ok(())
    }

    /// Writes the producer snapshot at the log end. Everything below it
    /// must already be durable (the callers fsynced it).
    fn save_producers(&self, w: &Writer) -> Result<()> {
        if w.producers.is_empty() {
            return Ok(());
        }
        checkpoint::write_atomic(
            &*self.fs,
            &self.dir,
            producers::SNAPSHOT_FILE,
            &w.producers.encode(w.next_offset),
        )?;
        self.seals.0.lock().expect("seal lock").snapshot_offset = w.next_offset;
        Ok(())
    }

    /// Called by retention with the writer lock held: makes sure a producer
    /// snapshot at or past `new_start` is on disk, fsyncing what it covers.
    fn snapshot_before_deleting(&self, w: &Writer, new_start: u64) -> Result<()> {
        let unsealed: Vec<Arc<Segment>> = {
            let book = self.seals.0.lock().expect("seal lock");
            if w.producers.is_empty() || book.snapshot_offset >= new_start {
                return Ok(());
            }
            let rolled = book.sealing.iter().filter(|r| !r.sealed);
            rolled.map(|r| r.seg.clone()).collect()
        };
        for seg in unsealed.iter().chain([&w.active]) {
            if let Err(e) = seg.sync() {
                self.poison(&e);
                return Err(e);
            }
        }
        self.save_producers(w)
    }

    fn sealer(&self) -> Sealer {
        Sealer {
            seals: self.seals.clone(),
            poisoned: self.poisoned.clone(),
            dir: self.dir.clone(),
            fs: self.fs.clone(),
        }
    }

    /// Seals again the segments whose seal met a full disk; returns how
    /// many still wait for space. The broker calls it on its cleanup timer.
    pub fn retry_seals(&self) -> usize {
        self.sealer().retry()
    }

    /// Waits until every rolled segment is sealed (retrying the ones that
    /// waited for space), or a seal failed: poisoned, or still no space.
    fn wait_for_seals(&self) -> Result<()> {
        let waiting = self.retry_seals();
        let (lock, cv) = &*self.seals;
        let mut book = lock.lock().expect("seal lock");
        while book
            .sealing
            .iter()
            .any(|r| !r.sealed && !r.waiting_for_space)
            && self.poisoned.get().is_none()
        {
            book = cv.wait(book).expect("seal lock");
        }
        let still = book
            .sealing
            .iter()
            .find(|r| r.waiting_for_space)
            .map(|r| r.seg.log_path().to_owned());
        drop(book);
        if let Some(cause) = self.poisoned.get() {
            return Err(StorageError::Poisoned {
                dir: self.dir.clone(),
                cause: cause.clone(),
            });
        }
        debug_assert!(still.is_none() || waiting > 0);
        match still {
            Some(path) => Err(StorageError::DiskFull {
                path,
                op: "seal segment",
            }),
            None => Ok(()),
        }
    }

    /// Blocks until every offset below `target` is fsynced. One caller
    /// fsyncs on behalf of all who wait (group commit): it captures the log
    /// end, fsyncs, and wakes everyone that end covers.
    pub fn sync_to(&self, target: u64) -> Result<()> {
        let mut s = self.sync.lock().expect("sync lock");
        loop {
            if let Some(cause) = self.poisoned.get() {
                return Err(StorageError::Poisoned {
                    dir: self.dir.clone(),
                    cause: cause.clone(),
                });
            }
            if s.synced_offset >= target {
                return Ok(());
            }
            if s.in_progress {
                s = self.synced.wait(s).expect("sync lock");
                continue;
            }
            s.in_progress = true;
            drop(s);
            // Sealed segments were fsynced when sealed; the ones still being
            // sealed and the active one cover everything else up to `end`.
            let (segs, end) = {
                let w = self.writer.lock().expect("writer lock");
                let book = self.seals.0.lock().expect("seal lock");
                let mut segs: Vec<Arc<Segment>> = book
                    .sealing
                    .iter()
                    .filter(|r| !r.sealed)
                    .map(|r| r.seg.clone())
                    .collect();
                drop(book);
                segs.push(w.active.clone());
                (segs, w.next_offset)
            };
            let result = segs.iter().try_for_each(|s| s.sync());
            s = self.sync.lock().expect("sync lock");
            s.in_progress = false;
            match result {
                Ok(()) => {
                    s.synced_offset = s.synced_offset.max(end);
                    s.last_sync_ms = self.config().clock.now_ms();
                    if self.config().durability == Durability::Fsync {
                        self.high_watermark
                            .fetch_max(s.synced_offset, Ordering::AcqRel);
                    }
                    self.synced.notify_all();
                }
                Err(e) => {
                    self.poison(&e);
                    self.synced.notify_all();
                    return Err(e);
                }
            }
        }
    }

    /// Fsyncs everything appended so far.
    pub fn flush(&self) -> Result<()> {
        let end = self.writer.lock().expect("writer lock").next_offset;
        self.sync_to(end)
    }

    /// In `Interval` mode, fsyncs if `interval_ms` has passed since the
    /// last fsync and there is something to sync. The broker calls this on
    /// a timer so that a quiet log still meets its interval.
    pub fn flush_if_due(&self) -> Result<bool> {
        let Durability::Interval {
            interval_ms: Some(ms),
            ..
        } = self.config().durability
        else {
            return Ok(false);
        };
        let end = self.writer.lock().expect("writer lock").next_offset;
        let due = {
            let s = self.sync.lock().expect("sync lock");
            s.synced_offset < end
                && self.config().clock.now_ms().saturating_sub(s.last_sync_ms) >= ms as i64
        };
        if due {
            self.sync_to(end)?;
        }
        Ok(due)
    }

    fn out_of_range(&self, offset: u64, start: u64, end: u64) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset,
            start,
            end,
            dir: self.dir.clone(),
        }
    }

    /// The segments that may hold `offset`: the one whose base is at or
    /// below it and the next few (a compacted segment may hold nothing past
    /// some offset, so a read can continue into the next).
    fn segments_from(&self, offset: u64) -> Vec<Arc<Segment>> {
        let segs = self.segments.read().expect("segments lock");
        let i = segs
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        segs[i..].iter().take(4).cloned().collect()
    }

    /// Reads whole batches from `offset`, up to `max_bytes` (but at least
    /// one batch, so a consumer always makes progress). An empty result
    /// means `offset` is the high watermark.
    pub fn read(&self, offset: Offset, max_bytes: usize) -> Result<ReadResult> {
        let offset = offset.0;
        let start = self.log_start.load(Ordering::Acquire);
        let hwm = self.high_watermark.load(Ordering::Acquire);
        if offset < start || offset > hwm {
            return Err(self.out_of_range(offset, start, hwm));
        }
        let result = |batches| ReadResult {
            batches,
            high_watermark: Offset(hwm),
            log_start: Offset(start),
        };
        if offset == hwm {
            return Ok(result(Bytes::new()));
        }
        for seg in self.segments_from(offset) {
            if let Some(pos) = seg.position_of(offset)? {
                let bytes = seg.read_from(pos, max_bytes, hwm)?;
                if !bytes.is_empty() {
                    return Ok(result(bytes));
                }
            }
        }
        Ok(result(Bytes::new()))
    }

    /// Calls `f` with every visible record from `from` (or the log start,
    /// if later) to the high watermark, in order, and returns the offset it
    /// stopped at. It resumes after each batch's header end, not after its
    /// last record: compaction may have removed a batch's last records, and
    /// a reader that resumed after the last one it saw would get the same
    /// batch back forever. `f`'s error stops the walk and is returned.
    pub fn for_each_record<E: From<StorageError>>(
        &self,
        from: Offset,
        mut f: impl FnMut(strata_batch::Record) -> Result<(), E>,
    ) -> Result<Offset, E> {
        let mut at = from.0.max(self.log_start().0);
        loop {
            let r = self.read(Offset(at), RECORD_WALK_BYTES)?;
            if r.batches.is_empty() {
                return Ok(Offset(at));
            }
            let batches = strata_batch::Batch::decode_all(r.batches)
                .map_err(|e| StorageError::corrupt(&self.dir, at, e.to_string()))?;
            for b in batches {
                let first = at;
                at = at.max(b.header().last_offset() as u64 + 1);
                for rec in b.records() {
                    let rec =
                        rec.map_err(|e| StorageError::corrupt(&self.dir, first, e.to_string()))?;
                    if rec.offset as u64 >= first {
                        f(rec)?;
                    }
                }
            }
        }
    }

    /// The first offset whose record timestamp is at or after `timestamp`,
    /// or `None` if every visible record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<Offset>> {
        let start = self.log_start.load(Ordering::Acquire);
        let hwm = self.high_watermark.load(Ordering::Acquire);
        let segs: Vec<Arc<Segment>> = self.segments.read().expect("segments lock").clone();
        for seg in segs.iter().filter(|s| s.next_offset() > start) {
            if let Some(o) = seg.offset_for_timestamp(timestamp, start, hwm)? {
                return Ok(Some(Offset(o)));
            }
        }
        Ok(None)
    }

    /// Removes every record at or after `offset`, which must be the start of
    /// a batch (or the log end). For recovery and repair, not for clients.
    pub fn truncate_to(&self, offset: Offset) -> Result<()> {
        let offset = offset.0;
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let mut w = self.writer.lock().expect("writer lock");
        self.check_writable(&w)?;
        self.wait_for_seals()?;
        let start = self.log_start.load(Ordering::Acquire);
        if offset < start || offset > w.next_offset {
            return Err(self.out_of_range(offset, start, w.next_offset));
        }
        if offset == w.next_offset {
            return Ok(());
        }
        let mut segs = self.segments.write().expect("segments lock");
        let keep = segs.partition_point(|s| s.base_offset() <= offset).max(1);
        let target = segs[keep - 1].clone();
        let pos = match target.position_of(offset)? {
            Some(pos) if offset > target.base_offset() => {
                let bytes = target.read_from(pos, 0, u64::MAX)?;
                let h = batch::BatchHeader::parse(&bytes)
                    .map_err(|e| StorageError::corrupt(target.log_path(), pos, e.to_string()))?;
                if h.base_offset as u64 != offset {
                    return Err(StorageError::NotBatchBoundary {
                        offset,
                        dir: self.dir.clone(),
                    });
                }
                pos
            }
            _ => 0,
        };
        for seg in segs.drain(keep..) {
            seg.delete()?;
        }
        target.truncate_at(pos, &self.config())?;
        checkpoint::sync_dir(&*self.fs, &self.dir)?;
        w.active = target;
        w.next_offset = offset;
        // Batches past the cut are gone: derive the producers again.
        w.producers = Producers::default();
        // (The segment list's write lock is still held: use that guard.)
        replay_producers(&segs, 0, &mut w.producers, self.config().clock.now_ms())?;
        let mut s = self.sync.lock().expect("sync lock");
        s.synced_offset = s.synced_offset.min(offset);
        self.high_watermark.store(offset, Ordering::Release);
        if let checkpoint::Read::Value(rp) =
            checkpoint::read(&*self.fs, &self.dir, Kind::RecoveryPoint)?
            && rp > offset
        {
            checkpoint::write(
                &*self.fs,
                &self.dir,
                Kind::RecoveryPoint,
                w.active.base_offset(),
            )?;
        }
        // A snapshot past the cut would name batches that are gone once
        // appends pass its offset again; the one derived above replaces it
        // (everything it covers was just fsynced).
        self.save_producers(&w)?;
        Ok(())
    }

    /// Deletes whole sealed segments that lie entirely below `offset` (never
    /// the active one) and advances the log start offset to the first
    /// remaining record. Returns the number of segments deleted. Readers
    /// already inside a deleted segment finish their read.
    pub fn delete_segments_before(&self, offset: Offset) -> Result<usize> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let w = self.writer.lock().expect("writer lock");
        self.check_writable(&w)?;
        let doomed: Vec<Arc<Segment>> = {
            let segs = self.segments.read().expect("segments lock");
            // A segment may still be sealing: its sealer works on open file
            // handles, so unlinking the names under it is harmless.
            let n = segs[..segs.len() - 1]
                .iter()
                .take_while(|s| s.next_offset() <= offset.0)
                .count();
            segs[..n].to_vec()
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        // Never below the current start: segments whose removal a power
        // loss undid may still be listed below it.
        let new_start = doomed
            .last()
            .expect("non-empty")
            .next_offset()
            .max(self.log_start.load(Ordering::Acquire));
        // The producer state of the doomed segments' batches must outlive
        // them: if no snapshot on disk covers the new start (after a
        // recovery replayed them, or while a seal is behind), write one now.
        self.snapshot_before_deleting(&w, new_start)?;
        // Persist the new start first: after a crash, the old segments may
        // still be there, but no reader will be served from them.
        checkpoint::write(&*self.fs, &self.dir, Kind::LogStart, new_start)?;
        self.log_start.fetch_max(new_start, Ordering::AcqRel);
        self.segments
            .write()
            .expect("segments lock")
            .drain(..doomed.len());
        for seg in &doomed {
            seg.delete()?;
        }
        checkpoint::sync_dir(&*self.fs, &self.dir)?;
        drop(w);
        Ok(doomed.len())
    }

    /// Deletes the sealed segments that retention no longer keeps, oldest
    /// first, and returns how many went. Time: a segment whose newest
    /// record is older than `retention_ms` before `now_ms` (-1 keeps
    /// forever). Size: while the partition is larger than `retention_bytes`
    /// (-1 is unlimited), its oldest sealed segment. The active segment is
    /// never deleted, and a segment goes only if all before it go too.
    pub fn apply_retention(
        &self,
        retention_ms: i64,
        retention_bytes: i64,
        now_ms: i64,
    ) -> Result<usize> {
        let cutoff = {
            let segs = self.segments.read().expect("segments lock");
            let mut total: u64 = segs.iter().map(|s| s.size()).sum();
            let mut cutoff = None;
            for seg in &segs[..segs.len() - 1] {
                let too_old = retention_ms >= 0
                    && seg
                        .max_timestamp()
                        .is_none_or(|t| t < now_ms.saturating_sub(retention_ms));
                let too_big = retention_bytes >= 0 && total > retention_bytes as u64;
                if !(too_old || too_big) {
                    break;
                }
                total -= seg.size();
                cutoff = Some(seg.next_offset());
            }
            cutoff
        };
        match cutoff {
            Some(offset) => {
                let n = self.delete_segments_before(Offset(offset))?;
                tracing::info!(dir = %self.dir.display(), segments = n, log_start = offset, "retention deleted segments");
                Ok(n)
            }
            None => Ok(0),
        }
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

/// Segments wholly below the saved log start are what a retention delete
/// had committed (the log-start checkpoint is its commit point) but not
/// removed when the process stopped; a power loss may keep any of its
/// unlinks and lose others. They are removed here, before anything looks
/// for gaps between segments: otherwise a survivor below a removed one
/// would look like a log whose tail was lost, and recovery would cut the
/// live segments after it. Retention only ever starts the log at a
/// segment's base, so every base before the last one at or below the
/// start holds only deleted offsets.
fn remove_retention_leftovers(
    fs: &dyn vfs::Vfs,
    dir: &Path,
    bases: &mut Vec<u64>,
    saved_start: Option<u64>,
    report: &mut RecoveryReport,
) -> Result<()> {
    let Some(start) = saved_start else {
        return Ok(());
    };
    let keep_from = bases.iter().rposition(|&b| b <= start).unwrap_or(0);
    if keep_from == 0 {
        return Ok(());
    }
    for base in bases.drain(..keep_from) {
        for ext in ["log", "index", "timeindex"] {
            let path = segment::file_path(dir, base, ext);
            if vfs::remove_if_present(fs, &path).map_err(StorageError::io(
                &path,
                "remove a segment below the log start",
            ))? {
                report.leftovers_removed.push(path);
            }
        }
    }
    checkpoint::sync_dir(fs, dir)
}

/// The producer state at open: the snapshot (if valid and not past the log
/// end), then every batch header after its offset replayed over it; and
/// the snapshot's offset (0 without one).
fn load_producers(
    fs: &dyn vfs::Vfs,
    dir: &Path,
    segments: &[Arc<Segment>],
    log_end: u64,
    report: &mut RecoveryReport,
    now_ms: i64,
) -> Result<(Producers, u64)> {
    let path = dir.join(producers::SNAPSHOT_FILE);
    let (from, mut state) = match fs.read(&path) {
        Ok(bytes) => match Producers::decode(&bytes) {
            Ok((offset, state)) if offset <= log_end => (offset, state),
            // A snapshot past the end (a torn tail was cut): start over.
            Ok(_) => (0, Producers::default()),
            Err(_) => {
                report.checkpoints_ignored.push(path);
                (0, Producers::default())
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, Producers::default()),
        Err(e) => return Err(StorageError::io(path, "read producer snapshot")(e)),
    };
    // Loaded producers count as active from now: the snapshot keeps no times.
    state.touch_all(now_ms);
    replay_producers(segments, from, &mut state, now_ms)?;
    Ok((state, from))
}

/// Replays the producer fields of every batch from offset `from` on.
fn replay_producers(
    segments: &[Arc<Segment>],
    from: u64,
    state: &mut Producers,
    now_ms: i64,
) -> Result<()> {
    for seg in segments.iter().filter(|s| s.next_offset() > from) {
        seg.walk_headers(from, |h| {
            if h.producer_id >= 0 {
                let meta = BatchMeta {
                    first_seq: h.base_sequence,
                    last_seq: h.last_sequence(),
                    base_offset: h.base_offset as u64,
                    last_offset: h.last_offset() as u64,
                };
                state.record(h.producer_id, h.producer_epoch, meta, now_ms);
            }
        })?;
    }
    Ok(())
}

impl Drop for Log {
    fn drop(&mut self) {
        // Background sealers write the recovery point into our directory;
        // let them finish so they cannot race with whoever opens it next.
        let (lock, cv) = &*self.seals;
        let mut book = lock.lock().expect("seal lock");
        while book
            .sealing
            .iter()
            .any(|r| !r.sealed && !r.waiting_for_space)
            && self.poisoned.get().is_none()
        {
            book = cv.wait(book).expect("seal lock");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_batch::BatchBuilder;

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
