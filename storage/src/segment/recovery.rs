//! Opening a segment at startup: trusting a synced one after checking its
//! indexes against the log, or scanning one past the recovery point batch
//! by batch, and cutting a torn tail.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use strata_batch::BatchCursor;
use strata_batch::batch::{self, BATCH_HEADER_LEN, BatchHeader};

use super::{Indexes, Segment, file_path};
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::index::{IndexFile, OffsetEntry, TimeEntry};
use crate::vfs::{Open, VfsFile};

/// Bytes read at a time when scanning a segment during recovery.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

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

impl Segment {
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
    /// log that does not end on a batch boundary, is corruption. The
    /// segment counts as sealed: its files may be closed while idle.
    pub fn open_trusted(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<(Self, bool)> {
        let (seg, rebuilt) = Self::open_checked(dir, base_offset, config)?;
        seg.mark_sealed();
        Ok((seg, rebuilt))
    }

    fn open_checked(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<(Self, bool)> {
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
            let file = seg.file()?;
            let log_path = seg.log_path.clone();
            drop(seg);
            return Self::rebuild(dir, base_offset, config, log_path, file, size);
        }
        let file: std::sync::Arc<dyn VfsFile> = std::sync::Arc::from(file);
        Self::rebuild(dir, base_offset, config, log_path, file, size)
    }

    fn rebuild(
        dir: &Path,
        base_offset: u64,
        config: &LogConfig,
        log_path: PathBuf,
        file: std::sync::Arc<dyn VfsFile>,
        size: u64,
    ) -> Result<(Self, bool)> {
        let indexes = Indexes::create(dir, base_offset, config)?;
        let seg = Self::with_file(config, base_offset, log_path, file, indexes);
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
        let h = self.held()?;
        let (ix, file) = (&h.ix, &*h.file);
        let mut prev: Option<OffsetEntry> = None;
        for i in 0..ix.offset.len() {
            let e = ix.offset.get(i);
            if prev.is_some_and(|p| e.rel_offset <= p.rel_offset || e.position <= p.position) {
                return Ok(false);
            }
            if u64::from(e.position) >= size {
                return Err(StorageError::corrupt(
                    ix.offset.path(),
                    (crate::index::HEADER_LEN + i * 8) as u64,
                    format!(
                        "index entry points to byte {} past the log's end ({size} bytes)",
                        e.position
                    ),
                ));
            }
            prev = Some(e);
        }
        // Walk the batch headers from the last indexed batch to the end.
        let mut end = prev.map_or(0, |e| u64::from(e.position));
        let mut next = self.base_offset;
        for step in self.headers(file, end, size) {
            let (pos, hd) = step?;
            if let Some(p) = prev.filter(|p| u64::from(p.position) == pos)
                && hd.base_offset as u64 != self.base_offset + u64::from(p.rel_offset)
            {
                return Err(StorageError::corrupt(
                    &self.log_path,
                    pos,
                    format!(
                        "index says offset {} starts here, the batch says {}",
                        self.base_offset + u64::from(p.rel_offset),
                        hd.base_offset
                    ),
                ));
            }
            next = hd.last_offset() as u64 + 1;
            end = pos + hd.total_len() as u64;
        }
        if end != size {
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
                    (crate::index::HEADER_LEN + i * 12) as u64,
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
        drop(h);
        self.next_offset.store(next, Ordering::Release);
        self.max_timestamp
            .store(prev_t.map_or(i64::MIN, |e| e.timestamp), Ordering::Release);
        Ok(true)
    }

    /// Scans `[0, file_size)` validating every batch and indexing it, and
    /// stops at the first invalid one. Sets size, next offset and max
    /// timestamp to the valid prefix.
    fn scan(&self, file_size: u64, config: &LogConfig) -> Result<ScanEnd> {
        let mut h = self.held_mut()?;
        let file = h.file.clone();
        let ix = &mut h.ix;
        let mut chunk: Vec<u8> = Vec::new();
        let mut pos = 0u64;
        let mut expected = self.base_offset;
        let bad = |position, reason: String| Ok(ScanEnd::Bad { position, reason });
        while pos < file_size {
            // Read a chunk from `pos`, at least the whole batch there.
            let remaining = file_size - pos;
            if remaining < BATCH_HEADER_LEN as u64 {
                return bad(
                    pos,
                    format!("{remaining} bytes at the end are too few for a batch header"),
                );
            }
            self.fill(
                &*file,
                &mut chunk,
                pos,
                SCAN_CHUNK_BYTES.min(remaining as usize),
            )?;
            let len = match BatchHeader::parse(&chunk) {
                Ok(h) => h.total_len() as u64,
                Err(e) => return bad(pos, e.to_string()),
            };
            if len > remaining {
                return bad(
                    pos,
                    format!(
                        "batch of {len} bytes runs past the end of the file ({remaining} bytes left)"
                    ),
                );
            }
            if len > chunk.len() as u64 {
                self.fill(&*file, &mut chunk, pos, len as usize)?;
            }
            // Every whole batch of the chunk; the one it cuts short is read
            // again at the top of the loop.
            let mut cursor = BatchCursor::new(&chunk);
            loop {
                let (header, bytes) = match cursor.next_batch() {
                    Ok(Some(b)) => b,
                    Ok(None) => break,
                    Err(e) => return bad(pos, e.to_string()),
                };
                let len = bytes.len() as u64;
                let valid = match batch::validate_stored(bytes) {
                    Ok(v) => v,
                    Err(e) => return bad(pos, e.to_string()),
                };
                debug_assert_eq!(valid.header, header);
                let base = header.base_offset;
                if base < 0 || (base as u64) < expected {
                    return bad(
                        pos,
                        format!("batch base offset {base} is below the expected {expected}"),
                    );
                }
                let last = header.last_offset() as u64;
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
                    ix,
                    pos,
                    len,
                    base as u64,
                    last,
                    header.max_timestamp,
                    config.index_interval_bytes,
                );
                expected = last + 1;
                pos += len;
            }
        }
        Ok(ScanEnd::Clean)
    }

    fn fill(&self, file: &dyn VfsFile, chunk: &mut Vec<u8>, pos: u64, len: usize) -> Result<()> {
        chunk.resize(len, 0);
        file.read_exact_at(chunk, pos)
            .map_err(StorageError::io(&self.log_path, "read segment"))
    }

    /// Cuts the segment so that it ends just before the batch at `pos`,
    /// fsyncs it, and rebuilds its indexes to match. The segment becomes
    /// the active one: its files stay open.
    pub fn truncate_at(&self, pos: u64, config: &LogConfig) -> Result<()> {
        self.file()?
            .set_len(pos)
            .map_err(StorageError::io(&self.log_path, "truncate segment"))?;
        self.sync()?;
        let mut h = self.held_mut()?;
        self.slot.closable.store(false, Ordering::Release);
        let ix = &mut h.ix;
        ix.offset.reopen_for_append(config.index_bytes_max)?;
        ix.time.reopen_for_append(config.index_bytes_max)?;
        ix.offset.truncate_entries(0);
        ix.time.truncate_entries(0);
        ix.bytes_since_entry = 0;
        self.max_timestamp.store(i64::MIN, Ordering::Release);
        self.next_offset.store(self.base_offset, Ordering::Release);
        self.size.store(0, Ordering::Release);
        drop(h);
        self.open_segments.unregister(self.slot.id);
        match self.scan(pos, config)? {
            ScanEnd::Clean => Ok(()),
            ScanEnd::Bad { position, reason } => {
                Err(StorageError::corrupt(&self.log_path, position, reason))
            }
        }
    }
}
