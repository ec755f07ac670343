//! Opening a log: finishing interrupted compaction swaps, listing the
//! segments, reading the checkpoints, removing what retention had
//! committed, trusting synced segments and scanning the others, cutting a
//! torn tail, and replaying idempotent producers.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};

use super::{Log, RecoveryReport, SealBook, SyncState, Writer, compact};
use crate::Offset;
use crate::checkpoint::{self, Kind};
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::producers::{self, BatchMeta, Producers};
use crate::segment::{self, ScanEnd, Segment};
use crate::vfs;

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
        let mut bases = list_segments(&*fs, &dir, &mut report)?;
        let ck = Checkpoints::read(&*fs, &dir, &mut report)?;
        // From here on the log may change: a crash must not look clean.
        checkpoint::remove(&*fs, &dir, Kind::CleanShutdown)?;
        report.clean_shutdown = ck.clean_end.is_some();
        remove_retention_leftovers(&*fs, &dir, &mut bases, ck.saved_start, &mut report)?;
        let (mut segments, scanned) = open_segments(&dir, &config, &bases, &ck, &mut report)?;
        let log_start_floor = ck.saved_start.unwrap_or(0);
        let (active, recovery_point) = settle(
            &dir,
            &config,
            &mut segments,
            &scanned,
            log_start_floor,
            ck.recovery_point,
            report.clean_shutdown,
        )?;
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
pub(super) fn remove_retention_leftovers(
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
pub(super) fn load_producers(
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
pub(super) fn replay_producers(
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

/// Makes what recovery left durable before anything builds on it (readers
/// of an `Fsync` log are about to see all of it), and returns the active
/// segment and the recovery point: an empty log gets its first segment;
/// a cleanly closed active segment takes appends again; scanned segments
/// before the active one are sealed, so the recovery point can pass them.
fn settle(
    dir: &Path,
    config: &LogConfig,
    segments: &mut Vec<Arc<Segment>>,
    scanned: &[bool],
    log_start_floor: u64,
    mut recovery_point: u64,
    clean_shutdown: bool,
) -> Result<(Arc<Segment>, u64)> {
    let fs = &*config.fs;
    if segments.is_empty() {
        let seg = Segment::create(dir, log_start_floor, config)?;
        checkpoint::sync_dir(fs, dir)?;
        segments.push(Arc::new(seg));
    } else if clean_shutdown {
        // After a clean shutdown the active segment was opened with
        // trimmed indexes; after a crash it was scanned into fresh,
        // writable ones.
        segments
            .last()
            .expect("non-empty")
            .reopen_for_append(config)?;
    }
    let active = segments.last().expect("non-empty").clone();
    for (seg, _) in segments.iter().zip(scanned).filter(|(_, s)| **s) {
        if !Arc::ptr_eq(seg, &active) {
            seg.seal()?;
        }
    }
    // (An empty active segment holds nothing to sync: a truncation to
    // zero synced itself. This is what keeps a restart after a crash of
    // thousands of empty partitions fast.)
    if active.size() > 0 {
        active.sync()?;
    }
    if active.base_offset() > recovery_point {
        checkpoint::write(fs, dir, Kind::RecoveryPoint, active.base_offset())?;
        recovery_point = active.base_offset();
    }
    Ok((active, recovery_point))
}

/// What the checkpoints say at open.
struct Checkpoints {
    /// The log end a clean close wrote, if the last close was clean.
    clean_end: Option<u64>,
    /// Everything below it is in sealed, fsynced segments (0 if missing:
    /// no seal ever finished).
    recovery_point: u64,
    /// The recovery point's file is damaged: something was synced, and we
    /// cannot say what.
    recovery_point_damaged: bool,
    /// The log start retention committed.
    saved_start: Option<u64>,
}

impl Checkpoints {
    fn read(fs: &dyn vfs::Vfs, dir: &Path, report: &mut RecoveryReport) -> Result<Self> {
        let mut read = |kind| -> Result<Option<u64>> {
            Ok(match checkpoint::read(fs, dir, kind)? {
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
        let clean_end = read(Kind::CleanShutdown)?;
        let recovery_point = read(Kind::RecoveryPoint)?;
        let saved_start = read(Kind::LogStart)?;
        let recovery_point_damaged = report
            .checkpoints_ignored
            .contains(&dir.join(checkpoint::file_name(Kind::RecoveryPoint)));
        Ok(Self {
            clean_end,
            recovery_point: recovery_point.unwrap_or(0),
            recovery_point_damaged,
            saved_start,
        })
    }
}

/// The base offsets of the segments in `dir`, in order; removes what an
/// interrupted checkpoint write left (`.tmp`: the old checkpoint stands).
fn list_segments(fs: &dyn vfs::Vfs, dir: &Path, report: &mut RecoveryReport) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in fs
        .list(dir)
        .map_err(StorageError::io(dir, "list log directory"))?
    {
        let path = dir.join(&entry.name);
        if entry.name.ends_with(".tmp") {
            fs.remove_file(&path)
                .map_err(StorageError::io(&path, "remove leftover"))?;
            report.leftovers_removed.push(path);
        } else if let Some(base) = segment::parse_log_name(&entry.name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    report.segments = bases.len();
    Ok(bases)
}

/// Opens the segments at `bases`: those the checkpoints say are synced are
/// trusted (their indexes checked), the others scanned batch by batch. A
/// torn batch or a lost tail ends the log there, and the segments after
/// it are removed. Returns the segments, and which were scanned (their
/// data may be unsynced).
fn open_segments(
    dir: &Path,
    config: &LogConfig,
    bases: &[u64],
    ck: &Checkpoints,
    report: &mut RecoveryReport,
) -> Result<(Vec<Arc<Segment>>, Vec<bool>)> {
    let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len());
    let mut scanned: Vec<bool> = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let next = bases.get(i + 1).copied();
        let synced = ck.clean_end.is_some() || next.is_some_and(|n| n <= ck.recovery_point);
        let (seg, ends_log) = if synced {
            (open_trusted(dir, base, config, report)?, false)
        } else {
            open_scanned(dir, base, next, config, ck, report)?
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
        if ends_log {
            remove_after_torn_write(&*config.fs, dir, &bases[i + 1..], report)?;
            break;
        }
    }
    Ok((segments, scanned))
}

fn open_trusted(
    dir: &Path,
    base: u64,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<Segment> {
    let (seg, rebuilt) = Segment::open_trusted(dir, base, config)?;
    if rebuilt {
        for ext in ["index", "timeindex"] {
            report
                .indexes_rebuilt
                .push(segment::file_path(dir, base, ext));
        }
    }
    Ok(seg)
}

/// Scans a segment past the recovery point; returns it, and whether the
/// log ends with it (a torn batch, or a gap before the `next` segment).
fn open_scanned(
    dir: &Path,
    base: u64,
    next: Option<u64>,
    config: &LogConfig,
    ck: &Checkpoints,
    report: &mut RecoveryReport,
) -> Result<(Segment, bool)> {
    let (seg, end) = Segment::open_scan(dir, base, config)?;
    report.segments_scanned += 1;
    if let ScanEnd::Bad { position, reason } = end {
        // Past the recovery point nothing was confirmed synced: a power
        // loss may have torn this segment while later ones reached the
        // disk, so the log ends here. With a damaged recovery point we
        // cannot tell a torn write from damage to synced data, and refuse.
        if next.is_some() && ck.recovery_point_damaged {
            return Err(StorageError::corrupt(
                seg.log_path(),
                position,
                format!(
                    "invalid batch in a segment that is not the last, with a damaged recovery point that cannot say it was never synced: {reason}"
                ),
            ));
        }
        let file_len = config
            .fs
            .file_len(seg.log_path())
            .map_err(StorageError::io(seg.log_path(), "stat segment"))?;
        seg.truncate_at(position, config)?;
        report.truncated_bytes = file_len - position;
        report.truncated_at = Some((seg.log_path().to_owned(), position));
        report.truncation_reason = Some(reason);
        return Ok((seg, next.is_some()));
    }
    if let Some(next) = next
        && next > seg.next_offset()
        && !ck.recovery_point_damaged
    {
        // Segments roll at the log end, so only a lost tail leaves a gap
        // above the recovery point (compaction, the other source of gaps,
        // works below it). What follows was never fsynced: an fsync covers
        // every older segment first. The log ends here, as at a torn
        // batch; otherwise readers at the gap would find nothing below the
        // high watermark.
        report.truncation_reason = Some(format!(
            "segment ends at offset {} but the next one starts at {next}",
            seg.next_offset()
        ));
        return Ok((seg, true));
    }
    Ok((seg, false))
}

/// Removes the segments after a torn write (they were never fsynced).
fn remove_after_torn_write(
    fs: &dyn vfs::Vfs,
    dir: &Path,
    bases: &[u64],
    report: &mut RecoveryReport,
) -> Result<()> {
    for &base in bases {
        for ext in ["log", "index", "timeindex"] {
            let path = segment::file_path(dir, base, ext);
            if ext == "log" {
                report.truncated_bytes += fs.file_len(&path).unwrap_or(0);
            }
            vfs::remove_if_present(fs, &path)
                .map_err(StorageError::io(&path, "remove segment past a torn write"))?;
        }
    }
    checkpoint::sync_dir(fs, dir)?;
    tracing::warn!(dir = %dir.display(), segments_removed = bases.len(), "a torn write ended the log before its last segment");
    Ok(())
}
