//! One segment: a `.log` file of record batches and its two indexes.
//!
//! The log writer (serialised by [`super::log::Log`]) appends with `pwrite`
//! at the published size and then publishes the new size; readers `pread`
//! only below the published size, so they never see a half-written batch
//! and never take the writer's lock. Index updates take a short write lock.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use strata_proto::batch::{self, BATCH_HEADER_LEN, BatchHeader};

use super::config::LogConfig;
use super::error::{Result, StorageError};
use super::index::{IndexFile, OffsetEntry, TimeEntry};
use super::vfs::{self, Fs, Open, VfsFile};

/// Batches up to this size are copied into one buffer and written with one
/// `pwrite`; larger ones are written in place with two.
const SMALL_BATCH_BYTES: usize = 64 * 1024;
/// Bytes read at a time when scanning a segment during recovery.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

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

/// How a scan of a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte belongs to a valid batch.
    Clean,
    /// The bytes from `position` on are not a valid batch.
    Bad {
        /// Where the first invalid batch starts.
        position: u64,
        /// Why it is invalid.
        reason: String,
    },
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
    file: Box<dyn VfsFile>,
    /// Bytes of whole batches in the file; readers stay below it.
    size: AtomicU64,
    /// One past the last offset stored here (`base_offset` when empty).
    next_offset: AtomicU64,
    /// Largest record timestamp stored here; `i64::MIN` when empty.
    max_timestamp: AtomicI64,
    indexes: RwLock<Indexes>,
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
        indexes: Indexes,
    ) -> Self {
        Self {
            fs: config.fs.clone(),
            base_offset,
            log_path,
            file,
            size: AtomicU64::new(size),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
            indexes: RwLock::new(indexes),
        }
    }

    fn open_file(
        config: &LogConfig,
        dir: &Path,
        base_offset: u64,
    ) -> Result<(PathBuf, Box<dyn VfsFile>, u64)> {
        let log_path = file_path(dir, base_offset, "log");
        let file = config
            .fs
            .open(&log_path, Open::Existing)
            .map_err(StorageError::io(&log_path, "open segment"))?;
        let size = file
            .len()
            .map_err(StorageError::io(&log_path, "stat segment"))?;
        Ok((log_path, file, size))
    }

    /// Opens a segment and rebuilds its indexes by scanning and validating
    /// every batch (recovery past the recovery point). The scan stops at the
    /// first invalid batch; the caller decides whether that is a torn tail
    /// to truncate or corruption.
    pub fn open_scan(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<(Self, ScanEnd)> {
        let (log_path, file, file_size) = Self::open_file(config, dir, base_offset)?;
        let indexes = Indexes::create(dir, base_offset, config)?;
        let seg = Self::new(config, base_offset, log_path, file, 0, indexes);
        let end = seg.scan(file_size, config)?;
        Ok((seg, end))
    }

    /// Opens a segment whose data is known to be synced (before the
    /// recovery point, or after a clean shutdown), trusting its indexes
    /// after checking them. A missing or damaged index is rebuilt (the
    /// returned flag says so). An index entry pointing past the log, or a
    /// log that does not end on a batch boundary, is corruption.
    pub fn open_trusted(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<(Self, bool)> {
        let (log_path, file, size) = Self::open_file(config, dir, base_offset)?;
        let offset = IndexFile::<OffsetEntry>::open_sealed(
            &*config.fs,
            &file_path(dir, base_offset, "index"),
            base_offset,
        )?;
        let time = IndexFile::<TimeEntry>::open_sealed(
            &*config.fs,
            &file_path(dir, base_offset, "timeindex"),
            base_offset,
        )?;
        if let (Ok(offset), Ok(time)) = (offset, time) {
            let indexes = Indexes {
                offset,
                time,
                bytes_since_entry: 0,
            };
            let seg = Self::new(config, base_offset, log_path, file, size, indexes);
            if seg.check_trusted_indexes(size)? {
                return Ok((seg, false));
            }
            let Self { log_path, file, .. } = seg;
            return Self::rebuild(dir, base_offset, config, log_path, file, size);
        }
        Self::rebuild(dir, base_offset, config, log_path, file, size)
    }

    fn rebuild(
        dir: &Path,
        base_offset: u64,
        config: &LogConfig,
        log_path: PathBuf,
        file: Box<dyn VfsFile>,
        size: u64,
    ) -> Result<(Self, bool)> {
        let indexes = Indexes::create(dir, base_offset, config)?;
        let seg = Self::new(config, base_offset, log_path, file, 0, indexes);
        match seg.scan(size, config)? {
            ScanEnd::Clean => {}
            ScanEnd::Bad { position, reason } => {
                return Err(StorageError::corrupt(
                    &seg.log_path,
                    position,
                    format!("invalid batch in a segment that was synced: {reason}"),
                ));
            }
        }
        seg.seal_indexes()?;
        Ok((seg, true))
    }

    /// Checks trusted indexes against the log and derives `next_offset` and
    /// `max_timestamp`. Returns false if an index is damaged (rebuild it).
    fn check_trusted_indexes(&self, size: u64) -> Result<bool> {
        let ix = self.indexes.read().expect("index lock");
        let mut prev: Option<OffsetEntry> = None;
        for i in 0..ix.offset.len() {
            let e = ix.offset.get(i);
            if prev.is_some_and(|p| e.rel_offset <= p.rel_offset || e.position <= p.position) {
                return Ok(false);
            }
            if u64::from(e.position) >= size {
                return Err(StorageError::corrupt(
                    ix.offset.path(),
                    (super::index::HEADER_LEN + i * 8) as u64,
                    format!(
                        "index entry points to byte {} past the log's end ({size} bytes)",
                        e.position
                    ),
                ));
            }
            prev = Some(e);
        }
        // Walk the batch headers from the last indexed batch to the end.
        let mut pos = prev.map_or(0, |e| u64::from(e.position));
        let mut next = self.base_offset;
        while pos < size {
            let h = self.header_at(pos, size)?;
            if let Some(p) = prev.filter(|p| u64::from(p.position) == pos)
                && h.base_offset as u64 != self.base_offset + u64::from(p.rel_offset)
            {
                return Err(StorageError::corrupt(
                    &self.log_path,
                    pos,
                    format!(
                        "index says offset {} starts here, the batch says {}",
                        self.base_offset + u64::from(p.rel_offset),
                        h.base_offset
                    ),
                ));
            }
            next = h.last_offset() as u64 + 1;
            pos += h.total_len() as u64;
        }
        if pos != size {
            return Err(StorageError::corrupt(
                &self.log_path,
                size,
                "the last batch runs past the end of a synced segment",
            ));
        }
        let mut prev_t: Option<TimeEntry> = None;
        for i in 0..ix.time.len() {
            let e = ix.time.get(i);
            if prev_t.is_some_and(|p| e.timestamp <= p.timestamp || e.rel_offset < p.rel_offset) {
                return Ok(false);
            }
            if self.base_offset + u64::from(e.rel_offset) >= next {
                return Err(StorageError::corrupt(
                    ix.time.path(),
                    (super::index::HEADER_LEN + i * 12) as u64,
                    format!(
                        "time index entry names offset {} past the log's end {next}",
                        self.base_offset + u64::from(e.rel_offset)
                    ),
                ));
            }
            prev_t = Some(e);
        }
        // A sealed non-empty segment always ends with a time entry holding its
        // largest timestamp (see `seal`); without one we cannot know it.
        if size > 0 && prev_t.is_none() {
            return Ok(false);
        }
        drop(ix);
        self.next_offset.store(next, Ordering::Release);
        self.max_timestamp
            .store(prev_t.map_or(i64::MIN, |e| e.timestamp), Ordering::Release);
        Ok(true)
    }

    /// Scans `[0, file_size)` validating every batch and indexing it, and
    /// stops at the first invalid one. Sets size, next offset and max
    /// timestamp to the valid prefix.
    fn scan(&self, file_size: u64, config: &LogConfig) -> Result<ScanEnd> {
        let mut ix = self.indexes.write().expect("index lock");
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_start = 0u64;
        let mut pos = 0u64;
        let mut expected = self.base_offset;
        let bad = |position, reason: String| Ok(ScanEnd::Bad { position, reason });
        while pos < file_size {
            let remaining = file_size - pos;
            if remaining < BATCH_HEADER_LEN as u64 {
                return bad(
                    pos,
                    format!("{remaining} bytes at the end are too few for a batch header"),
                );
            }
            // Refill the chunk if the header is not entirely inside it.
            if pos + BATCH_HEADER_LEN as u64 > chunk_start + chunk.len() as u64 {
                chunk_start = pos;
                self.fill(&mut chunk, pos, SCAN_CHUNK_BYTES.min(remaining as usize))?;
            }
            let at = (pos - chunk_start) as usize;
            let header = match BatchHeader::parse(&chunk[at..]) {
                Ok(h) => h,
                Err(e) => return bad(pos, e.to_string()),
            };
            let len = header.total_len() as u64;
            if len > remaining {
                return bad(
                    pos,
                    format!(
                        "batch of {len} bytes runs past the end of the file ({remaining} bytes left)"
                    ),
                );
            }
            if pos + len > chunk_start + chunk.len() as u64 {
                chunk_start = pos;
                self.fill(
                    &mut chunk,
                    pos,
                    (len as usize).max(SCAN_CHUNK_BYTES.min(remaining as usize)),
                )?;
            }
            let at = (pos - chunk_start) as usize;
            let bytes = &chunk[at..at + len as usize];
            let valid = match batch::validate_stored(bytes) {
                Ok(v) => v,
                Err(e) => return bad(pos, e.to_string()),
            };
            let base = valid.header.base_offset;
            if base < 0 || (base as u64) < expected {
                return bad(
                    pos,
                    format!("batch base offset {base} is below the expected {expected}"),
                );
            }
            let last = valid.header.last_offset() as u64;
            if last - self.base_offset > u64::from(u32::MAX) {
                return bad(
                    pos,
                    format!(
                        "offset {last} is too far from the segment base {}",
                        self.base_offset
                    ),
                );
            }
            if ix.offset.free_slots() < 1 || ix.time.free_slots() < 2 {
                return bad(
                    pos,
                    "the segment holds more batches than its index can take".into(),
                );
            }
            self.index_batch(
                &mut ix,
                pos,
                len,
                base as u64,
                last,
                valid.header.max_timestamp,
                config.index_interval_bytes,
            );
            expected = last + 1;
            pos += len;
        }
        Ok(ScanEnd::Clean)
    }

    fn fill(&self, chunk: &mut Vec<u8>, pos: u64, len: usize) -> Result<()> {
        chunk.resize(len, 0);
        self.file
            .read_exact_at(chunk, pos)
            .map_err(StorageError::io(&self.log_path, "read segment"))
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
    /// to a new segment (size, index room, or relative offset overflow).
    pub fn is_full_for(&self, len: u64, last: u64, config: &LogConfig) -> bool {
        let size = self.size();
        if size == 0 {
            return false;
        }
        let ix = self.indexes.read().expect("index lock");
        size + len > config.segment_bytes_max
            || ix.offset.free_slots() < 1
            || ix.time.free_slots() < 2
            || last - self.base_offset > u64::from(u32::MAX)
    }

    /// Writes one validated batch at the end: its stored `header` (see
    /// [`strata_proto::batch::stored_header`]) then the producer's `records`
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
        let pos = self.size();
        let len = (header.len() + records.len()) as u64;
        let written = if records.len() <= SMALL_BATCH_BYTES {
            scratch.clear();
            scratch.extend_from_slice(header);
            scratch.extend_from_slice(records);
            self.file.write_all_at(scratch, pos)
        } else {
            self.file
                .write_all_at(header, pos)
                .and_then(|()| self.file.write_all_at(records, pos + header.len() as u64))
        };
        if let Err(e) = written {
            let undone = self.file.set_len(pos).is_ok();
            return Err(AppendFailure {
                error: StorageError::io(&self.log_path, "append")(e),
                undone,
            });
        }
        let mut ix = self.indexes.write().expect("index lock");
        self.index_batch(
            &mut ix,
            pos,
            len,
            base,
            last,
            max_timestamp,
            config.index_interval_bytes,
        );
        Ok(())
    }

    /// `fdatasync` of the `.log` file.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(StorageError::io(&self.log_path, "fsync segment"))
    }

    /// Makes the segment read-only on disk: a final time index entry with
    /// the largest timestamp, the log fsynced, indexes trimmed and fsynced.
    pub fn seal(&self) -> Result<()> {
        self.sync()?;
        self.seal_indexes()
    }

    fn seal_indexes(&self) -> Result<()> {
        let mut ix = self.indexes.write().expect("index lock");
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
    /// becoming the active one).
    pub fn reopen_for_append(&self, config: &LogConfig) -> Result<()> {
        let mut ix = self.indexes.write().expect("index lock");
        ix.offset.reopen_for_append(config.index_bytes_max)?;
        ix.time.reopen_for_append(config.index_bytes_max)?;
        let last_pos = ix.offset.last().map_or(0, |e| u64::from(e.position));
        ix.bytes_since_entry = self.size().saturating_sub(last_pos);
        Ok(())
    }

    /// Reads and parses the batch header at `pos`, which must lie below `size`.
    fn header_at(&self, pos: u64, size: u64) -> Result<BatchHeader> {
        if pos + BATCH_HEADER_LEN as u64 > size {
            return Err(StorageError::corrupt(
                &self.log_path,
                pos,
                "batch header runs past the end of the segment",
            ));
        }
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.file
            .read_exact_at(&mut buf, pos)
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
        let mut pos = if offset <= self.base_offset {
            0
        } else {
            let rel = (offset - self.base_offset).min(u64::from(u32::MAX)) as u32;
            let ix = self.indexes.read().expect("index lock");
            ix.offset
                .last_where(|e| e.rel_offset <= rel)
                .map_or(0, |i| u64::from(ix.offset.get(i).position))
        };
        while pos < size {
            let h = self.header_at(pos, size)?;
            if h.last_offset() as u64 >= offset {
                return Ok(Some(pos));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Calls `f` with the header of every batch whose base offset is at or
    /// after `from` (headers only: 61 bytes read per batch).
    pub fn walk_headers(&self, from: u64, mut f: impl FnMut(&BatchHeader)) -> Result<()> {
        let Some(mut pos) = self.position_of(from)? else {
            return Ok(());
        };
        let size = self.size();
        while pos < size {
            let h = self.header_at(pos, size)?;
            if h.base_offset as u64 >= from {
                f(&h);
            }
            pos += h.total_len() as u64;
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
        let first = self.header_at(pos, size)?;
        if first.base_offset as u64 >= visible_end {
            return Ok(Bytes::new());
        }
        let want = (first.total_len() as u64).max((max_bytes as u64).min(size - pos));
        let mut buf = BytesMut::zeroed(want as usize);
        self.file
            .read_exact_at(&mut buf, pos)
            .map_err(StorageError::io(&self.log_path, "read segment"))?;
        // Keep whole, visible batches only.
        let mut end = 0usize;
        while end < buf.len() {
            let h = match BatchHeader::parse(&buf[end..]) {
                Ok(h) => h,
                Err(_) if buf.len() - end < BATCH_HEADER_LEN => break,
                Err(e) => {
                    return Err(StorageError::corrupt(
                        &self.log_path,
                        pos + end as u64,
                        e.to_string(),
                    ));
                }
            };
            if end + h.total_len() > buf.len() || h.base_offset as u64 >= visible_end {
                break;
            }
            end += h.total_len();
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
            let ix = self.indexes.read().expect("index lock");
            ix.time
                .last_where(|e| e.timestamp < timestamp)
                .map_or(self.base_offset, |i| {
                    self.base_offset + u64::from(ix.time.get(i).rel_offset) + 1
                })
        }
        .max(from);
        let Some(mut pos) = self.position_of(start)? else {
            return Ok(None);
        };
        let size = self.size();
        while pos < size {
            let h = self.header_at(pos, size)?;
            if h.base_offset as u64 >= visible_end {
                return Ok(None);
            }
            if h.max_timestamp >= timestamp {
                let bytes = self.read_from(pos, 0, visible_end)?;
                let b = strata_proto::Batch::split_from(&mut bytes.clone())
                    .map_err(|e| StorageError::corrupt(&self.log_path, pos, e.to_string()))?;
                for r in b.records() {
                    let r =
                        r.map_err(|e| StorageError::corrupt(&self.log_path, pos, e.to_string()))?;
                    if r.timestamp >= timestamp && r.offset as u64 >= start {
                        return Ok(Some(r.offset as u64));
                    }
                }
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Cuts the segment so that it ends just before the batch at `pos`,
    /// fsyncs it, and rebuilds its indexes to match.
    pub fn truncate_at(&self, pos: u64, config: &LogConfig) -> Result<()> {
        self.file
            .set_len(pos)
            .map_err(StorageError::io(&self.log_path, "truncate segment"))?;
        self.sync()?;
        let mut ix = self.indexes.write().expect("index lock");
        ix.offset.reopen_for_append(config.index_bytes_max)?;
        ix.time.reopen_for_append(config.index_bytes_max)?;
        ix.offset.truncate_entries(0);
        ix.time.truncate_entries(0);
        ix.bytes_since_entry = 0;
        self.max_timestamp.store(i64::MIN, Ordering::Release);
        self.next_offset.store(self.base_offset, Ordering::Release);
        self.size.store(0, Ordering::Release);
        drop(ix);
        match self.scan(pos, config)? {
            ScanEnd::Clean => Ok(()),
            ScanEnd::Bad { position, reason } => {
                Err(StorageError::corrupt(&self.log_path, position, reason))
            }
        }
    }

    /// Removes the segment's files. Readers that hold the segment keep
    /// reading: on Unix an open file outlives its name.
    pub fn delete(&self) -> Result<()> {
        self.fs
            .remove_file(&self.log_path)
            .map_err(StorageError::io(&self.log_path, "remove segment"))?;
        let ix = self.indexes.read().expect("index lock");
        ix.offset.delete(&*self.fs)?;
        ix.time.delete(&*self.fs)
    }
}
