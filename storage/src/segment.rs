//! One segment: a `.log` file of record batches and its two indexes.
//!
//! The log writer (serialised by [`super::log::Log`]) appends with `pwrite`
//! at the published size and then publishes the new size; readers `pread`
//! only below the published size, so they never see a half-written batch
//! and never take the writer's lock. Index updates take a short write lock.
//!
//! A sealed segment's files are opened on first use and may be closed
//! again to keep `sealed_segments_open_max` (see [`super::open_segments`]);
//! the active segment's stay open. Every operation takes the handles it
//! needs (an `Arc` of the file, so an fsync or a read never holds a lock),
//! reopening them if they were closed. Opening and recovery checks live in
//! [`recovery`].

mod recovery;

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use bytes::{Bytes, BytesMut};
use strata_batch::BatchCursor;
use strata_batch::batch::{BATCH_HEADER_LEN, BatchHeader};

pub use recovery::ScanEnd;

use super::config::LogConfig;
use super::error::{Result, StorageError};
use super::index::{IndexFile, OffsetEntry, TimeEntry};
use super::open_segments::{Closable, OpenSegments};
use super::vfs::{self, Fs, Open, VfsFile};

/// Batches up to this size are copied into one buffer and written with one
/// `pwrite`; larger ones are written in place with two.
const SMALL_BATCH_BYTES: usize = 64 * 1024;

/// `{base_offset:020}.{ext}` inside `dir`.
pub fn file_path(dir: &Path, base_offset: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// Parses a segment's base offset out of a `.log` file name.
pub fn parse_log_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[derive(Debug)]
struct Indexes {
    offset: IndexFile<OffsetEntry>,
    time: IndexFile<TimeEntry>,
    /// Log bytes appended since the last offset index entry.
    bytes_since_entry: u64,
}

impl Indexes {
    /// Fresh, empty, preallocated indexes (replacing any old files).
    fn create(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<Self> {
        let path = |ext| file_path(dir, base_offset, ext);
        let (fs, max) = (&*config.fs, config.index_bytes_max);
        Ok(Self {
            offset: IndexFile::create(fs, &path("index"), base_offset, max)?,
            time: IndexFile::create(fs, &path("timeindex"), base_offset, max)?,
            bytes_since_entry: 0,
        })
    }
}

/// A segment's open files.
#[derive(Debug)]
struct Handles {
    file: Arc<dyn VfsFile>,
    ix: Indexes,
}

/// The handles and what decides whether they may be closed; shared (weakly)
/// with the registry of open segments.
#[derive(Debug)]
struct Slot {
    id: u64,
    handles: RwLock<Option<Handles>>,
    /// Sealed, and not the active segment: the handles may be closed.
    closable: AtomicBool,
    last_used: AtomicU64,
}

impl Closable for Slot {
    fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    fn close(&self) -> bool {
        let mut h = self.handles.write().expect("handles lock");
        if !self.closable.load(Ordering::Acquire) {
            return false;
        }
        *h = None;
        true
    }
}

/// Open handles, read side.
struct Held<'a>(RwLockReadGuard<'a, Option<Handles>>);

impl Deref for Held<'_> {
    type Target = Handles;
    fn deref(&self) -> &Handles {
        self.0.as_ref().expect("held handles are open")
    }
}

/// Open handles, write side.
struct HeldMut<'a>(RwLockWriteGuard<'a, Option<Handles>>);

impl Deref for HeldMut<'_> {
    type Target = Handles;
    fn deref(&self) -> &Handles {
        self.0.as_ref().expect("held handles are open")
    }
}

impl DerefMut for HeldMut<'_> {
    fn deref_mut(&mut self) -> &mut Handles {
        self.0.as_mut().expect("held handles are open")
    }
}

/// A failed append: the error, and whether the partial write was removed.
#[derive(Debug)]
pub struct AppendFailure {
    /// What went wrong.
    pub error: StorageError,
    /// False if bytes of the failed write may remain in the file.
    pub undone: bool,
}

/// One segment of a partition log.
#[derive(Debug)]
pub struct Segment {
    fs: Fs,
    base_offset: u64,
    log_path: PathBuf,
    /// Bytes of whole batches in the file; readers stay below it.
    size: AtomicU64,
    /// One past the last offset stored here (`base_offset` when empty).
    next_offset: AtomicU64,
    /// Largest record timestamp stored here; `i64::MIN` when empty.
    max_timestamp: AtomicI64,
    slot: Arc<Slot>,
    open_segments: Arc<OpenSegments>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.open_segments.unregister(self.slot.id);
    }
}

impl Segment {
    /// Creates an empty segment's three files. The caller fsyncs the
    /// directory. If the indexes cannot be made, the `.log` is removed
    /// again, so that a later roll to the same offset can succeed.
    pub fn create(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<Self> {
        let log_path = file_path(dir, base_offset, "log");
        let file = config
            .fs
            .open(&log_path, Open::CreateNew)
            .map_err(StorageError::io(&log_path, "create segment"))?;
        let indexes = match Indexes::create(dir, base_offset, config) {
            Ok(ix) => ix,
            Err(e) => {
                Self::remove_files(config, dir, base_offset);
                return Err(e);
            }
        };
        Ok(Self::new(config, base_offset, log_path, file, 0, indexes))
    }

    /// Best-effort removal of a segment's files that were never used.
    pub fn remove_files(config: &LogConfig, dir: &Path, base_offset: u64) {
        for ext in ["log", "index", "timeindex"] {
            let path = file_path(dir, base_offset, ext);
            if let Err(e) = vfs::remove_if_present(&*config.fs, &path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove an unused segment file");
            }
        }
    }

    fn new(
        config: &LogConfig,
        base_offset: u64,
        log_path: PathBuf,
        file: Box<dyn VfsFile>,
        size: u64,
        ix: Indexes,
    ) -> Self {
        let seg = Self::with_file(config, base_offset, log_path, Arc::from(file), ix);
        seg.size.store(size, Ordering::Release);
        seg
    }

    fn with_file(
        config: &LogConfig,
        base_offset: u64,
        log_path: PathBuf,
        file: Arc<dyn VfsFile>,
        ix: Indexes,
    ) -> Self {
        let slot = Slot {
            id: config.open_segments.id(),
            handles: RwLock::new(Some(Handles { file, ix })),
            closable: AtomicBool::new(false),
            last_used: AtomicU64::new(config.open_segments.stamp()),
        };
        Self {
            fs: config.fs.clone(),
            base_offset,
            log_path,
            size: AtomicU64::new(0),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
            slot: Arc::new(slot),
            open_segments: config.open_segments.clone(),
        }
    }

    /// Stamps a use, for the LRU; the active segment is never closed, so
    /// its appends and reads skip the shared counter.
    fn touch(&self) {
        if self.slot.closable.load(Ordering::Relaxed) {
            let now = self.open_segments.stamp();
            self.slot.last_used.store(now, Ordering::Relaxed);
        }
    }

    /// The handles, opened again if they were closed.
    fn held(&self) -> Result<Held<'_>> {
        self.touch();
        loop {
            let g = self.slot.handles.read().expect("handles lock");
            if g.is_some() {
                return Ok(Held(g));
            }
            drop(g);
            self.reopen()?;
        }
    }

    /// The handles for a change, opened again if they were closed.
    fn held_mut(&self) -> Result<HeldMut<'_>> {
        self.touch();
        loop {
            let g = self.slot.handles.write().expect("handles lock");
            if g.is_some() {
                return Ok(HeldMut(g));
            }
            drop(g);
            self.reopen()?;
        }
    }

    /// The `.log` file, to use without holding a lock.
    fn file(&self) -> Result<Arc<dyn VfsFile>> {
        Ok(self.held()?.file.clone())
    }

    /// Opens a closed sealed segment's files again (its sealed indexes were
    /// checked when the log opened; damage since then is corruption).
    fn reopen(&self) -> Result<()> {
        {
            let mut g = self.slot.handles.write().expect("handles lock");
            if g.is_some() {
                return Ok(());
            }
            let dir = self.log_path.parent().unwrap_or(Path::new("."));
            // Retention and compaction pin a segment open before they
            // remove or replace its file, so a file gone here went with its
            // whole log (a topic deleted while this read ran): closed.
            let file =
                self.fs
                    .open(&self.log_path, Open::Existing)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => StorageError::Closed(dir.to_owned()),
                        _ => StorageError::io(&self.log_path, "reopen segment")(e),
                    })?;
            let damaged = |path: PathBuf, why: String| {
                StorageError::corrupt(
                    path,
                    0,
                    format!("index damaged since the log opened: {why}"),
                )
            };
            let opath = file_path(dir, self.base_offset, "index");
            let offset = IndexFile::open_sealed(&*self.fs, &opath, self.base_offset)?
                .map_err(|d| damaged(opath, d.0))?;
            let tpath = file_path(dir, self.base_offset, "timeindex");
            let time = IndexFile::open_sealed(&*self.fs, &tpath, self.base_offset)?
                .map_err(|d| damaged(tpath, d.0))?;
            let ix = Indexes {
                offset,
                time,
                bytes_since_entry: 0,
            };
            *g = Some(Handles {
                file: Arc::from(file),
                ix,
            });
        }
        self.register();
        Ok(())
    }

    /// Makes the handles closable (the segment is sealed and not active)
    /// and counts them against `sealed_segments_open_max`.
    fn mark_sealed(&self) {
        self.slot.closable.store(true, Ordering::Release);
        self.register();
    }

    fn register(&self) {
        let weak: Weak<dyn Closable> = Arc::downgrade(&self.slot) as Weak<dyn Closable>;
        self.open_segments.register(self.slot.id, weak);
    }

    /// The segment's base offset.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// The `.log` file's path.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Bytes of whole batches.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// One past the last offset stored here.
    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Largest record timestamp, or `None` when empty.
    pub fn max_timestamp(&self) -> Option<i64> {
        let t = self.max_timestamp.load(Ordering::Acquire);
        (t != i64::MIN).then_some(t)
    }

    /// Whether an append of `len` bytes holding offsets up to `last` must go
    /// to a new segment (size, index room, or relative offset overflow). A
    /// closed segment is sealed, so full.
    pub fn is_full_for(&self, len: u64, last: u64, config: &LogConfig) -> bool {
        let size = self.size();
        if size == 0 {
            return false;
        }
        let g = self.slot.handles.read().expect("handles lock");
        let Some(h) = g.as_ref() else { return true };
        size + len > config.segment_bytes_max
            || h.ix.offset.free_slots() < 1
            || h.ix.time.free_slots() < 2
            || last - self.base_offset > u64::from(u32::MAX)
    }

    /// Writes one validated batch at the end: its stored `header` (see
    /// [`strata_batch::batch::stored_header`]) then the producer's `records`
    /// bytes, unchanged. Small batches are joined in `scratch` so that they
    /// take one `pwrite`; large ones take two and are never copied. Only the
    /// log's writer calls this, one at a time. On a failed write the file is
    /// cut back to its previous size; `undone` says whether that worked.
    #[allow(clippy::too_many_arguments)]
    pub fn append(
        &self,
        header: &[u8],
        records: &[u8],
        scratch: &mut Vec<u8>,
        base: u64,
        last: u64,
        max_timestamp: i64,
        config: &LogConfig,
    ) -> Result<(), AppendFailure> {
        let failed = |error| AppendFailure {
            error,
            undone: true,
        };
        let file = self.file().map_err(failed)?;
        let pos = self.size();
        let len = (header.len() + records.len()) as u64;
        let written = if records.len() <= SMALL_BATCH_BYTES {
            scratch.clear();
            scratch.extend_from_slice(header);
            scratch.extend_from_slice(records);
            file.write_all_at(scratch, pos)
        } else {
            file.write_all_at(header, pos)
                .and_then(|()| file.write_all_at(records, pos + header.len() as u64))
        };
        if let Err(e) = written {
            let undone = file.set_len(pos).is_ok();
            return Err(AppendFailure {
                error: StorageError::io(&self.log_path, "append")(e),
                undone,
            });
        }
        let mut h = self.held_mut().map_err(failed)?;
        self.index_batch(
            &mut h.ix,
            pos,
            len,
            base,
            last,
            max_timestamp,
            config.index_interval_bytes,
        );
        Ok(())
    }

    /// Records a batch just written at `pos` in the indexes and publishes
    /// the new size, next offset and max timestamp.
    #[allow(clippy::too_many_arguments)]
    fn index_batch(
        &self,
        ix: &mut Indexes,
        pos: u64,
        len: u64,
        base: u64,
        last: u64,
        batch_max_timestamp: i64,
        interval_bytes: u32,
    ) {
        let seg_max = self
            .max_timestamp
            .load(Ordering::Relaxed)
            .max(batch_max_timestamp);
        if ix.bytes_since_entry >= u64::from(interval_bytes) {
            ix.offset.push(OffsetEntry {
                rel_offset: (base - self.base_offset) as u32,
                position: pos as u32,
            });
            if ix.time.last().is_none_or(|t| seg_max > t.timestamp) {
                ix.time.push(TimeEntry {
                    timestamp: seg_max,
                    rel_offset: (last - self.base_offset) as u32,
                });
            }
            ix.bytes_since_entry = 0;
        }
        ix.bytes_since_entry += len;
        self.max_timestamp.store(seg_max, Ordering::Release);
        self.next_offset.store(last + 1, Ordering::Release);
        self.size.store(pos + len, Ordering::Release);
    }

    /// `fdatasync` of the `.log` file (holding no lock: appends go on).
    pub fn sync(&self) -> Result<()> {
        self.file()?
            .sync_data()
            .map_err(StorageError::io(&self.log_path, "fsync segment"))
    }

    /// Makes the segment read-only on disk: a final time index entry with
    /// the largest timestamp, the log fsynced, indexes trimmed and fsynced.
    /// From then on its files may be closed while idle.
    pub fn seal(&self) -> Result<()> {
        self.sync()?;
        self.finish_seal()
    }

    /// The second half of [`Segment::seal`], once the data is fsynced:
    /// the indexes written, fsynced and mapped. Safe to call again after
    /// it failed (an index already sealed stays as it is).
    pub fn finish_seal(&self) -> Result<()> {
        self.seal_indexes()?;
        self.mark_sealed();
        Ok(())
    }

    fn seal_indexes(&self) -> Result<()> {
        let mut h = self.held_mut()?;
        let ix = &mut h.ix;
        let next = self.next_offset();
        if let Some(max) = self.max_timestamp()
            && ix.time.last().is_none_or(|t| max > t.timestamp)
        {
            ix.time.push(TimeEntry {
                timestamp: max,
                rel_offset: (next - 1 - self.base_offset) as u32,
            });
        }
        ix.offset.seal()?;
        ix.time.seal()
    }

    /// Makes a trimmed index writable again (a cleanly closed segment
    /// becoming the active one); its files stay open from now on.
    pub fn reopen_for_append(&self, config: &LogConfig) -> Result<()> {
        let mut h = self.held_mut()?;
        self.slot.closable.store(false, Ordering::Release);
        let ix = &mut h.ix;
        ix.offset.reopen_for_append(config.index_bytes_max)?;
        ix.time.reopen_for_append(config.index_bytes_max)?;
        let last_pos = ix.offset.last().map_or(0, |e| u64::from(e.position));
        ix.bytes_since_entry = self.size().saturating_sub(last_pos);
        drop(h);
        self.open_segments.unregister(self.slot.id);
        Ok(())
    }

    /// The batch headers of `file` from `pos` up to `size`, each with its
    /// position, reading 61 bytes per batch: the file-side twin of
    /// `BatchCursor`, which walks batches already in memory.
    pub(crate) fn headers<'s>(&'s self, file: &'s dyn VfsFile, pos: u64, size: u64) -> Headers<'s> {
        Headers {
            segment: self,
            file,
            pos,
            size,
        }
    }

    /// Reads and parses the batch header at `pos`, which must lie below `size`.
    fn header_at(&self, file: &dyn VfsFile, pos: u64, size: u64) -> Result<BatchHeader> {
        if pos + BATCH_HEADER_LEN as u64 > size {
            return Err(StorageError::corrupt(
                &self.log_path,
                pos,
                "batch header runs past the end of the segment",
            ));
        }
        let mut buf = [0u8; BATCH_HEADER_LEN];
        file.read_exact_at(&mut buf, pos)
            .map_err(StorageError::io(&self.log_path, "read segment"))?;
        let h = BatchHeader::parse(&buf)
            .map_err(|e| StorageError::corrupt(&self.log_path, pos, e.to_string()))?;
        if pos + h.total_len() as u64 > size {
            return Err(StorageError::corrupt(
                &self.log_path,
                pos,
                "batch runs past the end of the segment",
            ));
        }
        Ok(h)
    }

    /// Position of the batch holding `offset`, or of the first batch after
    /// it; `None` if the segment has nothing at or after `offset`.
    pub fn position_of(&self, offset: u64) -> Result<Option<u64>> {
        let size = self.size();
        let (file, pos) = {
            let h = self.held()?;
            let pos = if offset <= self.base_offset {
                0
            } else {
                let rel = (offset - self.base_offset).min(u64::from(u32::MAX)) as u32;
                h.ix.offset
                    .last_where(|e| e.rel_offset <= rel)
                    .map_or(0, |i| u64::from(h.ix.offset.get(i).position))
            };
            (h.file.clone(), pos)
        };
        for step in self.headers(&*file, pos, size) {
            let (pos, h) = step?;
            if h.last_offset() as u64 >= offset {
                return Ok(Some(pos));
            }
        }
        Ok(None)
    }

    /// Calls `f` with the header of every batch whose base offset is at or
    /// after `from` (headers only: 61 bytes read per batch).
    pub fn walk_headers(&self, from: u64, mut f: impl FnMut(&BatchHeader)) -> Result<()> {
        let Some(pos) = self.position_of(from)? else {
            return Ok(());
        };
        let file = self.file()?;
        for step in self.headers(&*file, pos, self.size()) {
            let (_, h) = step?;
            if h.base_offset as u64 >= from {
                f(&h);
            }
        }
        Ok(())
    }

    /// Reads whole batches from `pos`: as many as fit in `max_bytes`, but at
    /// least one, and none whose base offset is at or past `visible_end`.
    pub fn read_from(&self, pos: u64, max_bytes: usize, visible_end: u64) -> Result<Bytes> {
        let size = self.size();
        if pos >= size {
            return Ok(Bytes::new());
        }
        let file = self.file()?;
        let first = self.header_at(&*file, pos, size)?;
        if first.base_offset as u64 >= visible_end {
            return Ok(Bytes::new());
        }
        let want = (first.total_len() as u64).max((max_bytes as u64).min(size - pos));
        let mut buf = BytesMut::zeroed(want as usize);
        file.read_exact_at(&mut buf, pos)
            .map_err(StorageError::io(&self.log_path, "read segment"))?;
        // Keep whole, visible batches only.
        let mut cursor = BatchCursor::new(&buf);
        let mut end = 0usize;
        while let Some((h, _)) = cursor
            .next_batch()
            .map_err(|e| StorageError::corrupt(&self.log_path, pos + end as u64, e.to_string()))?
        {
            if h.base_offset as u64 >= visible_end {
                break;
            }
            end = cursor.position();
        }
        buf.truncate(end);
        Ok(buf.freeze())
    }

    /// First offset at or after `from` whose record timestamp is at least
    /// `timestamp`, below `visible_end`.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        from: u64,
        visible_end: u64,
    ) -> Result<Option<u64>> {
        if self.max_timestamp().is_none_or(|m| m < timestamp) {
            return Ok(None);
        }
        let start = {
            let h = self.held()?;
            h.ix.time
                .last_where(|e| e.timestamp < timestamp)
                .map_or(self.base_offset, |i| {
                    self.base_offset + u64::from(h.ix.time.get(i).rel_offset) + 1
                })
        }
        .max(from);
        let Some(pos) = self.position_of(start)? else {
            return Ok(None);
        };
        let file = self.file()?;
        for step in self.headers(&*file, pos, self.size()) {
            let (pos, h) = step?;
            if h.base_offset as u64 >= visible_end {
                return Ok(None);
            }
            if h.max_timestamp >= timestamp {
                let bytes = self.read_from(pos, 0, visible_end)?;
                let b = strata_batch::Batch::split_from(&mut bytes.clone())
                    .map_err(|e| StorageError::corrupt(&self.log_path, pos, e.to_string()))?;
                for r in b.records() {
                    let r =
                        r.map_err(|e| StorageError::corrupt(&self.log_path, pos, e.to_string()))?;
                    if r.timestamp >= timestamp && r.offset as u64 >= start {
                        return Ok(Some(r.offset as u64));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The segment's files are about to be unlinked or replaced on disk
    /// (retention, truncation, a compaction swap): opens them if they were
    /// closed and keeps them open until the segment is dropped, so a reader
    /// that still holds it reads what it held, never a file that took its
    /// name.
    pub fn pin_open(&self) -> Result<()> {
        let h = self.held_mut()?;
        self.slot.closable.store(false, Ordering::Release);
        drop(h);
        self.open_segments.unregister(self.slot.id);
        Ok(())
    }

    /// Removes the segment's files. Readers that hold the segment keep
    /// reading: its files are pinned open first, and on Unix an open file
    /// outlives its name.
    pub fn delete(&self) -> Result<()> {
        self.pin_open()?;
        self.fs
            .remove_file(&self.log_path)
            .map_err(StorageError::io(&self.log_path, "remove segment"))?;
        let dir = self.log_path.parent().unwrap_or(Path::new("."));
        for ext in ["index", "timeindex"] {
            let path = file_path(dir, self.base_offset, ext);
            vfs::remove_if_present(&*self.fs, &path)
                .map_err(StorageError::io(&path, "remove index"))?;
        }
        Ok(())
    }
}

/// See [`Segment::headers`]. A header that cannot be read ends the walk
/// with its error.
pub(crate) struct Headers<'s> {
    segment: &'s Segment,
    file: &'s dyn VfsFile,
    pos: u64,
    size: u64,
}

impl Iterator for Headers<'_> {
    type Item = Result<(u64, BatchHeader)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.size {
            return None;
        }
        let at = self.pos;
        match self.segment.header_at(self.file, at, self.size) {
            Ok(h) => {
                self.pos += h.total_len() as u64;
                Some(Ok((at, h)))
            }
            Err(e) => {
                self.pos = self.size;
                Some(Err(e))
            }
        }
    }
}
