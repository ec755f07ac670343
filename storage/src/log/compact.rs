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
use strata_batch::BatchCursor;
use strata_batch::batch::{self, BATCH_HEADER_LEN, BatchHeader, Filtered};

use super::Log;
use crate::checkpoint::{self, Kind, sync_dir};
use crate::config::LogConfig;
use crate::envelope::{EnvelopeError, FileType, Reader, Writer};
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
/// The swap marker's envelope.
pub const SWAP_FILE: FileType = FileType {
    magic: *b"STSW",
    version: 1,
    what: "compaction swap marker",
};
/// Bytes read at a time when walking a segment's batches.
const READ_CHUNK_BYTES: usize = 4 << 20;

fn swap_name(base: u64) -> String {
    format!("{base:020}.swap")
}

/// `magic | version u16 | count u32 | count × old base u64 | crc32 (IEEE)`.
fn encode_swap(old: &[u64]) -> Vec<u8> {
    let mut w = Writer::new(SWAP_FILE);
    w.u32(old.len() as u32);
    for &base in old {
        w.u64(base);
    }
    w.finish()
}

fn decode_swap(b: &[u8]) -> Result<Vec<u64>, EnvelopeError> {
    let mut r = Reader::open(SWAP_FILE, b)?;
    let n = r.u32("count")?;
    // Collecting reserves nothing up front: a damaged count fails as
    // truncated at the first missing base, without a large allocation.
    let old = (0..n)
        .map(|_| r.u64("old base"))
        .collect::<Result<_, _>>()?;
    r.finish()?;
    Ok(old)
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
        // Markers are written atomically: a damaged one is damage, and
        // guessing which segments it meant could lose data.
        let old = match decode_swap(&bytes) {
            Ok(old) if !old.is_empty() => old,
            Ok(_) => {
                return Err(StorageError::corrupt(
                    &marker,
                    0,
                    "swap marker names no segment",
                ));
            }
            Err(e) => {
                return Err(StorageError::corrupt(
                    &marker,
                    0,
                    format!("damaged swap marker: {e}"),
                ));
            }
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
        // `read_from` returns whole batches only.
        let mut cursor = BatchCursor::new(&chunk);
        while let Some((h, bytes)) = cursor.next_batch().map_err(|e| {
            StorageError::corrupt(
                seg.log_path(),
                pos + cursor.position() as u64,
                e.to_string(),
            )
        })? {
            if !f(&h, bytes)? {
                return Ok(());
            }
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
        let decompressed_max = self.config().batch_decompressed_bytes_max as usize;
        let mut map = KeyMap {
            newest: HashMap::new(),
            bytes: 0,
        };
        let mut end = segs.last().map_or(from, |s| s.next_offset()).max(from);
        let mut full = false;
        for seg in segs.iter().filter(|s| s.next_offset() > from) {
            for_each_batch(seg, from, |h, bytes| {
                let mut keys: Vec<(Bytes, u64)> = Vec::new();
                batch::visit(bytes, decompressed_max, |r| {
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
                let kept =
                    batch::filter(bytes, config.batch_decompressed_bytes_max as usize, |r| {
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
mod tests;
