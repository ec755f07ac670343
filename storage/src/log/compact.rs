//! Log compaction: keep only the newest record for each key, as Kafka's log
//! cleaner does. Offsets never change; the log simply has gaps.
//!
//! A pass works on the *compactable* segments: sealed, fsynced (below the
//! recovery point) and never the active one.
//!
//! 1. **Map.** From the cleaner checkpoint (where the last pass stopped) to
//!    the end of the compactable segments, the newest offset of each key
//!    goes into a map bounded by `map_bytes_max`. If the map fills, it stops
//!    at a batch boundary (`map_end`); the next pass goes on from there.
//! 2. **Clean.** Every compactable segment that starts below `map_end` is
//!    rewritten, oldest first, keeping a record unless the map holds a newer
//!    offset for its key, or it is a tombstone older than
//!    `delete_retention_ms` (by its timestamp) below `map_end`, whose older
//!    values this same pass removes. Keyless records are kept: there is
//!    nothing to compact them by. Consecutive segments are merged while the
//!    result stays under `segment_bytes_max`, so a compacted log does not
//!    keep a file per tiny segment.
//! 3. **Swap**, one merged group at a time, oldest first. The new segment is
//!    built and fsynced in `cleaning/`; then a swap marker
//!    `{base}.swap` naming the old segments is written atomically (the
//!    commit point); then the new files are renamed into place, the other
//!    old segments deleted, and the marker removed. Opening a log finishes
//!    any swap whose marker exists and removes `cleaning/`, so after a crash
//!    each group is wholly old or wholly new. Groups commit in offset order,
//!    which is what makes every crash point consistent: a value is only
//!    removed once everything older than it is gone, and a tombstone only in
//!    the pass that removes (or removed) the values it deletes.
//! 4. The cleaner checkpoint moves to `map_end`.
//!
//! Memory: the map (bounded), one batch at a time, and the segment objects.
//! Readers are never blocked: they keep the old files open, and a read that
//! started on an old segment finishes on it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use strata_batch::batch::{self, BATCH_HEADER_LEN, BatchHeader, Filtered};

use super::Log;
use crate::checkpoint::{self, Kind, sync_dir};
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::segment::{self, Segment};
use crate::vfs::{self, Vfs};

/// What a compaction pass may use and removes.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Bytes of key map one pass may hold (each key's bytes plus
    /// `MAP_ENTRY_OVERHEAD`). A dirty part with more distinct keys takes
    /// several passes.
    pub map_bytes_max: usize,
    /// A tombstone is removed once its timestamp is this much older than
    /// the log's clock (`delete.retention.ms`), so consumers have that long
    /// to see it.
    pub delete_retention_ms: i64,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Segments rewritten (and merged into `segments_written`).
    pub segments_rewritten: usize,
    /// Segments that replaced them.
    pub segments_written: usize,
    /// Bytes of the rewritten segments before, and of their replacements.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
    /// Records removed because a newer record had the same key.
    pub records_removed: u64,
    /// Tombstones removed after `delete_retention_ms`.
    pub tombstones_removed: u64,
    /// The log is compacted below this offset (the new cleaner checkpoint).
    pub cleaned_to: u64,
    /// The map filled before the end of the dirty part: another pass has
    /// more to do.
    pub more: bool,
}

/// Bytes a map entry costs beyond its key (the hash table's slot, the
/// offset, the key's allocation header).
pub const MAP_ENTRY_OVERHEAD: usize = 48;
/// Where new segments are built before they are swapped in.
const CLEANING_DIR: &str = "cleaning";
/// The swap marker's magic and version.
const SWAP_MAGIC: [u8; 4] = *b"STSW";
const SWAP_VERSION: u16 = 1;
/// Bytes read at a time when walking a segment's batches.
const READ_CHUNK_BYTES: usize = 4 << 20;

fn swap_name(base: u64) -> String {
    format!("{base:020}.swap")
}

/// `magic | version u16 | count u32 | count × old base u64 | crc32 (IEEE)`.
fn encode_swap(old: &[u64]) -> Vec<u8> {
    let mut b = Vec::with_capacity(14 + old.len() * 8);
    b.extend_from_slice(&SWAP_MAGIC);
    b.extend_from_slice(&SWAP_VERSION.to_be_bytes());
    b.extend_from_slice(&(old.len() as u32).to_be_bytes());
    for base in old {
        b.extend_from_slice(&base.to_be_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

fn decode_swap(b: &[u8]) -> Option<Vec<u64>> {
    let (body, crc) = b.split_at_checked(b.len().checked_sub(4)?)?;
    if crc != crc32fast::hash(body).to_be_bytes() || body.get(0..4)? != SWAP_MAGIC {
        return None;
    }
    if body.get(4..6)? != SWAP_VERSION.to_be_bytes() {
        return None;
    }
    let n = u32::from_be_bytes(body.get(6..10)?.try_into().ok()?) as usize;
    let rest = body.get(10..)?;
    if rest.len() != n * 8 {
        return None;
    }
    Some(
        rest.chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect(),
    )
}

fn remove_if_exists(fs: &dyn Vfs, path: &Path, op: &'static str) -> Result<()> {
    vfs::remove_if_present(fs, path)
        .map(drop)
        .map_err(StorageError::io(path, op))
}

/// Puts a committed group in place: the new files of `old[0]` from
/// `cleaning/` over the old ones, the other old segments deleted (indexes
/// before the log, so a crash never leaves a log without its name), then
/// the marker removed. Every step may already have happened: after a
/// crash, this runs again from the top.
fn finish_swap(fs: &dyn Vfs, dir: &Path, old: &[u64]) -> Result<()> {
    let base = *old.first().ok_or_else(|| {
        StorageError::corrupt(dir.join("(swap)"), 0, "swap marker names no segment")
    })?;
    let cleaning = dir.join(CLEANING_DIR);
    for ext in ["index", "timeindex", "log"] {
        let from = segment::file_path(&cleaning, base, ext);
        if fs.file_len(&from).is_ok() {
            let to = segment::file_path(dir, base, ext);
            fs.rename(&from, &to)
                .map_err(StorageError::io(&to, "swap in compacted segment"))?;
        }
    }
    for &other in &old[1..] {
        for ext in ["index", "timeindex", "log"] {
            remove_if_exists(
                fs,
                &segment::file_path(dir, other, ext),
                "remove compacted segment",
            )?;
        }
    }
    sync_dir(fs, dir)?;
    remove_if_exists(fs, &dir.join(swap_name(base)), "remove swap marker")?;
    sync_dir(fs, dir)
}

/// At open, before segments are listed: finishes every committed swap and
/// removes what an uncommitted one left in `cleaning/`. Returns how many
/// swaps it finished.
pub(super) fn recover(fs: &dyn Vfs, dir: &Path) -> Result<usize> {
    let mut finished = 0;
    let markers: Vec<_> = fs
        .list(dir)
        .map_err(StorageError::io(dir, "list log directory"))?
        .into_iter()
        .filter(|e| !e.is_dir && e.name.ends_with(".swap"))
        .map(|e| dir.join(e.name))
        .collect();
    for marker in markers {
        let bytes = fs
            .read(&marker)
            .map_err(StorageError::io(&marker, "read swap marker"))?;
        let Some(old) = decode_swap(&bytes) else {
            // Markers are written atomically: a damaged one is damage, and
            // guessing which segments it meant could lose data.
            return Err(StorageError::corrupt(&marker, 0, "damaged swap marker"));
        };
        finish_swap(fs, dir, &old)?;
        finished += 1;
        tracing::info!(dir = %dir.display(), base = old[0], merged = old.len(), "finished an interrupted compaction swap");
    }
    let cleaning = dir.join(CLEANING_DIR);
    if fs.is_dir(&cleaning) {
        fs.remove_dir_all(&cleaning)
            .map_err(StorageError::io(&cleaning, "remove cleaning"))?;
        sync_dir(fs, dir)?;
    }
    Ok(finished)
}

/// Index entries a rewrite of `bytes` of log can need: one offset entry
/// per `index_interval_bytes`, and a time entry beside each, plus the first
/// and the seal's.
fn index_entries_bound(bytes: u64, config: &LogConfig) -> u64 {
    bytes / u64::from(config.index_interval_bytes.max(1)) + 2
}

/// Entries the smaller of a segment's two indexes holds.
fn index_capacity(config: &LogConfig) -> u64 {
    (u64::from(config.index_bytes_max) - crate::index::HEADER_LEN as u64) / 12
}

/// Calls `f` with every batch of `seg` whose last offset is at or after
/// `from`, in order; `f` returns false to stop.
fn for_each_batch(
    seg: &Segment,
    from: u64,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<bool>,
) -> Result<()> {
    let Some(mut pos) = seg.position_of(from)? else {
        return Ok(());
    };
    loop {
        let chunk = seg.read_from(pos, READ_CHUNK_BYTES, u64::MAX)?;
        if chunk.is_empty() {
            return Ok(());
        }
        let mut at = 0;
        while at < chunk.len() {
            let h = BatchHeader::parse(&chunk[at..]).map_err(|e| {
                StorageError::corrupt(seg.log_path(), pos + at as u64, e.to_string())
            })?;
            let bytes = &chunk[at..at + h.total_len()];
            if !f(&h, bytes)? {
                return Ok(());
            }
            at += h.total_len();
        }
        pos += chunk.len() as u64;
    }
}

/// The key map of one pass.
struct KeyMap {
    newest: HashMap<Bytes, u64>,
    bytes: usize,
}

/// Test hooks: stop a pass after its Nth step, as a crash would.
#[cfg(test)]
pub(crate) mod fault {
    use std::cell::Cell;
    thread_local! {
        /// Steps left before the pass fails (None: never).
        pub(crate) static STEPS_LEFT: Cell<Option<u32>> = const { Cell::new(None) };
    }
}

/// A point where a test may stop the pass; a no-op otherwise.
fn step(_what: &'static str) -> Result<()> {
    #[cfg(test)]
    if let Some(n) = fault::STEPS_LEFT.get() {
        if n == 0 {
            return Err(StorageError::Io {
                path: _what.into(),
                op: "injected crash",
                source: std::io::Error::other("injected crash"),
            });
        }
        fault::STEPS_LEFT.set(Some(n - 1));
    }
    Ok(())
}

impl Log {
    /// The sealed, fsynced segments compaction may rewrite, oldest first.
    fn compactable(&self) -> Vec<Arc<Segment>> {
        let synced = self
            .seals
            .0
            .lock()
            .expect("seal lock")
            .written_recovery_point;
        let segs = self.segments.read().expect("segments lock");
        segs[..segs.len() - 1]
            .iter()
            .take_while(|s| s.next_offset() <= synced)
            .cloned()
            .collect()
    }

    fn cleaner_offset(&self) -> Result<u64> {
        let start = self.log_start.load(Ordering::Acquire);
        Ok(
            match checkpoint::read(&*self.fs, &self.dir, Kind::CleanerOffset)? {
                checkpoint::Read::Value(v) => v.max(start),
                // Missing or damaged: treat everything as dirty (more work,
                // same result).
                _ => start,
            },
        )
    }

    /// Bytes of compactable segments past the cleaner checkpoint, and of
    /// all compactable segments: their ratio is Kafka's dirty ratio, which
    /// the broker uses to decide when a pass is worth its I/O.
    pub fn dirty_bytes(&self) -> Result<(u64, u64)> {
        let from = self.cleaner_offset()?;
        let segs = self.compactable();
        let total = segs.iter().map(|s| s.size()).sum();
        let dirty = segs
            .iter()
            .filter(|s| s.next_offset() > from)
            .map(|s| s.size())
            .sum();
        Ok((dirty, total))
    }

    fn build_map(&self, segs: &[Arc<Segment>], from: u64, max: usize) -> Result<(KeyMap, u64)> {
        let mut map = KeyMap {
            newest: HashMap::new(),
            bytes: 0,
        };
        let mut end = segs.last().map_or(from, |s| s.next_offset()).max(from);
        let mut full = false;
        for seg in segs.iter().filter(|s| s.next_offset() > from) {
            for_each_batch(seg, from, |h, bytes| {
                let mut keys: Vec<(Bytes, u64)> = Vec::new();
                batch::visit(bytes, |r| {
                    if let Some(k) = r.key
                        && r.offset as u64 >= from
                    {
                        keys.push((Bytes::copy_from_slice(k), r.offset as u64));
                    }
                })?;
                let cost: usize = keys
                    .iter()
                    .filter(|(k, _)| !map.newest.contains_key(k))
                    .map(|(k, _)| k.len() + MAP_ENTRY_OVERHEAD)
                    .sum();
                // Always take the first batch, so every pass progresses.
                if map.bytes + cost > max && !map.newest.is_empty() {
                    end = h.base_offset as u64;
                    full = true;
                    return Ok(false);
                }
                map.bytes += cost;
                map.newest.extend(keys);
                Ok(true)
            })?;
            if full {
                break;
            }
        }
        Ok((map, end))
    }

    /// One compaction pass (see the module doc). Runs beside appends and
    /// reads; serialised with retention and truncation.
    pub fn compact(&self, opts: &CompactOptions) -> Result<CompactReport> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        if let Some(cause) = self.poisoned.get() {
            return Err(StorageError::Poisoned {
                dir: self.dir.clone(),
                cause: cause.clone(),
            });
        }
        let config = self.config();
        let segs = self.compactable();
        let from = self.cleaner_offset()?;
        let mut report = CompactReport {
            cleaned_to: from,
            ..CompactReport::default()
        };
        if segs.is_empty() {
            return Ok(report);
        }
        let (map, map_end) = self.build_map(&segs, from, opts.map_bytes_max)?;
        report.more = map_end < segs.last().expect("non-empty").next_offset();
        let horizon = config
            .clock
            .now_ms()
            .saturating_sub(opts.delete_retention_ms);
        let todo: Vec<Arc<Segment>> = segs
            .iter()
            .filter(|s| s.base_offset() < map_end)
            .cloned()
            .collect();
        let cleaning = self.dir.join(CLEANING_DIR);
        let fs = &*self.fs;
        if fs.is_dir(&cleaning) {
            fs.remove_dir_all(&cleaning)
                .map_err(StorageError::io(&cleaning, "remove cleaning"))?;
        }
        fs.create_dir(&cleaning)
            .map_err(StorageError::io(&cleaning, "create cleaning"))?;

        // Group by group: `group` holds the old segments of the one being
        // built, `building` the new segment.
        let mut group: Vec<Arc<Segment>> = Vec::new();
        let mut building: Option<Segment> = None;
        // Index entries the open group's rewrite may need, at most.
        let mut planned_entries = 0u64;
        let mut scratch = Vec::new();
        for seg in &todo {
            let needed = index_entries_bound(seg.size(), &config);
            let fits =
                building.as_ref().is_none_or(|b| {
                    b.size() == 0 || b.size() + seg.size() <= config.segment_bytes_max
                }) && group.first().is_none_or(|g| {
                    seg.next_offset().saturating_sub(g.base_offset()) <= u64::from(u32::MAX)
                }) && (group.is_empty() || planned_entries + needed <= index_capacity(&config));
            if !fits {
                let done = building.take().expect("a group is open");
                self.commit_group(&group, done, &mut report)?;
                group.clear();
                planned_entries = 0;
            }
            planned_entries += needed;
            if building.is_none() {
                building = Some(Segment::create(&cleaning, seg.base_offset(), &config)?);
            }
            let out = building.as_ref().expect("just made");
            group.push(seg.clone());
            report.bytes_before += seg.size();
            for_each_batch(seg, 0, |h, bytes| {
                let kept = batch::filter(bytes, |r| {
                    let offset = r.offset as u64;
                    if offset >= map_end {
                        return true;
                    }
                    let Some(key) = r.key else {
                        return true;
                    };
                    if map.newest.get(key).is_some_and(|&newest| newest > offset) {
                        report.records_removed += 1;
                        return false;
                    }
                    if r.tombstone && r.timestamp < horizon {
                        report.tombstones_removed += 1;
                        return false;
                    }
                    true
                })?;
                let bytes: &[u8] = match &kept {
                    Filtered::Empty => return Ok(true),
                    Filtered::Unchanged => bytes,
                    Filtered::Rewritten(b) => b,
                };
                let nh = BatchHeader::parse(bytes)?;
                debug_assert_eq!(
                    (nh.base_offset, nh.last_offset()),
                    (h.base_offset, h.last_offset())
                );
                // The plan above keeps merges inside the indexes; an old
                // segment that alone overflows them (index_bytes_max was
                // lowered since) fails the pass instead of a push panicking.
                if out.size() > 0
                    && out.is_full_for(bytes.len() as u64, nh.last_offset() as u64, &config)
                {
                    return Err(StorageError::Config(format!(
                        "compacting {}: the segment at {} would overflow its index (index_bytes_max {})",
                        self.dir.display(),
                        seg.base_offset(),
                        config.index_bytes_max
                    )));
                }
                out.append(
                    &bytes[..BATCH_HEADER_LEN],
                    &bytes[BATCH_HEADER_LEN..],
                    &mut scratch,
                    nh.base_offset as u64,
                    nh.last_offset() as u64,
                    nh.max_timestamp,
                    &config,
                )
                .map_err(|f| f.error)?;
                Ok(true)
            })?;
        }
        if let Some(done) = building.take() {
            self.commit_group(&group, done, &mut report)?;
        }
        step("before the cleaner checkpoint")?;
        checkpoint::write(fs, &self.dir, Kind::CleanerOffset, map_end)?;
        report.cleaned_to = map_end;
        fs.remove_dir_all(&cleaning)
            .map_err(StorageError::io(&cleaning, "remove cleaning"))?;
        tracing::info!(
            dir = %self.dir.display(),
            rewritten = report.segments_rewritten,
            written = report.segments_written,
            bytes_before = report.bytes_before,
            bytes_after = report.bytes_after,
            removed = report.records_removed,
            tombstones_removed = report.tombstones_removed,
            cleaned_to = report.cleaned_to,
            more = report.more,
            "compacted"
        );
        Ok(report)
    }

    /// Seals the new segment of a group, commits it with a swap marker,
    /// swaps it in on disk and in the segment list.
    fn commit_group(
        &self,
        old: &[Arc<Segment>],
        new: Segment,
        report: &mut CompactReport,
    ) -> Result<()> {
        let config = self.config();
        let cleaning = self.dir.join(CLEANING_DIR);
        new.seal()?;
        sync_dir(&*self.fs, &cleaning)?;
        let base = new.base_offset();
        report.bytes_after += new.size();
        drop(new);
        step("before the swap marker")?;
        let bases: Vec<u64> = old.iter().map(|s| s.base_offset()).collect();
        // Readers holding an old segment must keep its file, not reopen
        // the new one that takes its name.
        for s in old {
            s.pin_open()?;
        }
        checkpoint::write_atomic(&*self.fs, &self.dir, &swap_name(base), &encode_swap(&bases))?;
        step("after the swap marker")?;
        finish_swap(&*self.fs, &self.dir, &bases)?;
        step("after the swap")?;
        let (seg, _) = Segment::open_trusted(&self.dir, base, &config)?;
        let seg = Arc::new(seg);
        // Rolls may have added segments at the end meanwhile; the group is
        // still where it was, since only this pass (under the maintenance
        // lock) replaces or removes sealed segments.
        let mut segs = self.segments.write().expect("segments lock");
        let i = segs
            .iter()
            .position(|s| Arc::ptr_eq(s, &old[0]))
            .expect("the group's first segment is listed");
        assert!(
            old.iter().zip(&segs[i..]).all(|(a, b)| Arc::ptr_eq(a, b)),
            "a compaction group must be consecutive segments"
        );
        segs.splice(i..i + old.len(), [seg]);
        report.segments_rewritten += old.len();
        report.segments_written += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
                *o >= cut
                    || (newest[&k[0]] == *o && !(v.is_none() && sample_record(*o).2 < horizon))
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
        assert_eq!(decode_swap(&b), Some(vec![5, 9, 12]));
        let mut bad = b.clone();
        bad[8] ^= 1;
        assert_eq!(decode_swap(&bad), None);
        assert_eq!(decode_swap(&b[..b.len() - 1]), None);
        assert_eq!(decode_swap(b""), None);
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
}
