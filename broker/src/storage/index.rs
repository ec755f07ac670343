//! The sparse indexes of a segment, memory-mapped with memmap2.
//!
//! Both files share one layout: a 16-byte header
//! (`magic [4] | version u16 = 1 | entry_len u16 | base_offset u64`, big-endian)
//! followed by fixed-size entries. The offset index (`.index`, magic
//! `SXOI`) maps a batch's base offset, relative to the segment's, to the
//! batch's byte position (u32 + u32). The time index (`.timeindex`, magic
//! `SXTI`) maps the largest timestamp seen up to a batch to that batch's
//! last offset (i64 + u32).
//!
//! The active segment's index is preallocated to `index_bytes_max` and
//! mapped writable; sealing trims it to its entries and maps it read-only.
//! Indexes are derived data: recovery rebuilds a missing or damaged one from
//! the log, so they are fsynced only when sealed, never per append.

use std::fs::{File, OpenOptions};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut};

use super::checkpoint::sync_file;
use super::error::{Result, StorageError};

/// Bytes of the header at the start of every index file.
pub const HEADER_LEN: usize = 16;
/// Current index format version.
pub const VERSION: u16 = 1;

/// One fixed-size entry type of an index file.
pub trait Entry: Copy + std::fmt::Debug {
    /// The file's magic.
    const MAGIC: [u8; 4];
    /// Bytes per entry.
    const LEN: usize;
    /// Decodes an entry from exactly `LEN` bytes.
    fn read(b: &[u8]) -> Self;
    /// Encodes an entry into exactly `LEN` bytes.
    fn write(&self, b: &mut [u8]);
}

/// An offset index entry: a batch's base offset (relative) and its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Base offset of the batch minus the segment's base offset.
    pub rel_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

impl Entry for OffsetEntry {
    const MAGIC: [u8; 4] = *b"SXOI";
    const LEN: usize = 8;
    fn read(b: &[u8]) -> Self {
        Self {
            rel_offset: u32::from_be_bytes(b[0..4].try_into().expect("4 bytes")),
            position: u32::from_be_bytes(b[4..8].try_into().expect("4 bytes")),
        }
    }
    fn write(&self, b: &mut [u8]) {
        b[0..4].copy_from_slice(&self.rel_offset.to_be_bytes());
        b[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
}

/// A time index entry: every record up to and including `rel_offset` has a
/// timestamp of at most `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp in the segment up to this point.
    pub timestamp: i64,
    /// Last offset (relative) of the batch the entry was written after.
    pub rel_offset: u32,
}

impl Entry for TimeEntry {
    const MAGIC: [u8; 4] = *b"SXTI";
    const LEN: usize = 12;
    fn read(b: &[u8]) -> Self {
        Self {
            timestamp: i64::from_be_bytes(b[0..8].try_into().expect("8 bytes")),
            rel_offset: u32::from_be_bytes(b[8..12].try_into().expect("4 bytes")),
        }
    }
    fn write(&self, b: &mut [u8]) {
        b[0..8].copy_from_slice(&self.timestamp.to_be_bytes());
        b[8..12].copy_from_slice(&self.rel_offset.to_be_bytes());
    }
}

#[derive(Debug)]
enum Map {
    /// Active: preallocated and writable.
    Writable(MmapMut),
    /// Sealed: trimmed to its entries.
    ReadOnly(Mmap),
}

impl Map {
    fn bytes(&self) -> &[u8] {
        match self {
            Map::Writable(m) => m,
            Map::ReadOnly(m) => m,
        }
    }
}

/// Why an existing index file cannot be used as it is (it is then rebuilt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage(pub String);

/// One index file.
#[derive(Debug)]
pub struct IndexFile<E: Entry> {
    path: PathBuf,
    file: File,
    /// `None` only while the file is being resized: touching a mapping past
    /// the end of its file is SIGBUS, so the old one is dropped first.
    map: Option<Map>,
    /// Valid entries; the rest of a preallocated file is zeros.
    entries: usize,
    _entry: PhantomData<E>,
}

fn header(magic: [u8; 4], entry_len: usize, base_offset: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&magic);
    h[4..6].copy_from_slice(&VERSION.to_be_bytes());
    h[6..8].copy_from_slice(&(entry_len as u16).to_be_bytes());
    h[8..16].copy_from_slice(&base_offset.to_be_bytes());
    h
}

impl<E: Entry> IndexFile<E> {
    /// Creates (or replaces) an empty index, preallocated to `bytes_max`.
    pub fn create(path: &Path, base_offset: u64, bytes_max: u32) -> Result<Self> {
        let io = |op| StorageError::io(path, op);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io("create index"))?;
        file.set_len(u64::from(bytes_max))
            .map_err(io("preallocate index"))?;
        // SAFETY: the file is ours alone (the data directory is locked by the
        // broker) and is never shrunk while this mapping exists: `seal` and
        // `truncate_file` drop the mapping first.
        let mut map = unsafe { MmapMut::map_mut(&file) }.map_err(io("map index"))?;
        map[..HEADER_LEN].copy_from_slice(&header(E::MAGIC, E::LEN, base_offset));
        Ok(Self {
            path: path.to_owned(),
            file,
            map: Some(Map::Writable(map)),
            entries: 0,
            _entry: PhantomData,
        })
    }

    /// Opens a trimmed (sealed, or cleanly closed) index read-only.
    /// Returns `Ok(Err(damage))` if the file is missing or not a valid
    /// index for this segment; the caller rebuilds it.
    pub fn open_sealed(path: &Path, base_offset: u64) -> Result<Result<Self, Damage>> {
        let io = |op| StorageError::io(path, op);
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err(Damage("missing".into())));
            }
            Err(e) => return Err(io("open index")(e)),
        };
        let len = file.metadata().map_err(io("stat index"))?.len() as usize;
        if len < HEADER_LEN || !(len - HEADER_LEN).is_multiple_of(E::LEN) {
            return Ok(Err(Damage(format!(
                "size {len} is not a header plus whole entries"
            ))));
        }
        // SAFETY: as in `create`; this file is not resized while mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(io("map index"))?;
        if map[..HEADER_LEN] != header(E::MAGIC, E::LEN, base_offset) {
            return Ok(Err(Damage(
                "bad header (magic, version, entry size or base offset)".into(),
            )));
        }
        Ok(Ok(Self {
            path: path.to_owned(),
            file,
            entries: (len - HEADER_LEN) / E::LEN,
            map: Some(Map::ReadOnly(map)),
            _entry: PhantomData,
        }))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of valid entries.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Entries the file can hold before it is full.
    pub fn free_slots(&self) -> usize {
        match &self.map {
            Some(Map::Writable(m)) => (m.len() - HEADER_LEN) / E::LEN - self.entries,
            _ => 0,
        }
    }

    /// Entry `i` (which must be below `len`).
    pub fn get(&self, i: usize) -> E {
        assert!(i < self.entries, "index entry {i} of {}", self.entries);
        let at = HEADER_LEN + i * E::LEN;
        E::read(&self.map.as_ref().expect("index is mapped").bytes()[at..at + E::LEN])
    }

    /// The last entry.
    pub fn last(&self) -> Option<E> {
        self.entries.checked_sub(1).map(|i| self.get(i))
    }

    /// Index of the last entry for which `is_at_or_before` holds, given
    /// that it holds for a prefix of the entries (binary search).
    pub fn last_where(&self, is_at_or_before: impl Fn(&E) -> bool) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if is_at_or_before(&self.get(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// Appends an entry. The caller checks `free_slots` first.
    pub fn push(&mut self, e: E) {
        let Some(Map::Writable(m)) = &mut self.map else {
            panic!("push to sealed index {}", self.path.display());
        };
        let at = HEADER_LEN + self.entries * E::LEN;
        assert!(
            at + E::LEN <= m.len(),
            "index {} is full",
            self.path.display()
        );
        e.write(&mut m[at..at + E::LEN]);
        self.entries += 1;
    }

    /// Drops entries from `n` on (used by truncation and recovery).
    pub fn truncate_entries(&mut self, n: usize) {
        if n >= self.entries {
            return;
        }
        if let Some(Map::Writable(m)) = &mut self.map {
            let from = HEADER_LEN + n * E::LEN;
            let to = HEADER_LEN + self.entries * E::LEN;
            m[from..to].fill(0);
        }
        self.entries = n;
    }

    /// Trims the file to its entries, fsyncs it and maps it read-only.
    pub fn seal(&mut self) -> Result<()> {
        let io = |op| StorageError::io(&self.path, op);
        if let Some(Map::Writable(m)) = &self.map {
            m.flush().map_err(io("msync index"))?;
        }
        self.map = None;
        let len = (HEADER_LEN + self.entries * E::LEN) as u64;
        self.file.set_len(len).map_err(io("trim index"))?;
        sync_file(&self.file).map_err(io("fsync index"))?;
        // SAFETY: as in `create`.
        self.map = Some(Map::ReadOnly(
            unsafe { Mmap::map(&self.file) }.map_err(io("map index"))?,
        ));
        Ok(())
    }

    /// Extends a trimmed index back to `bytes_max` and maps it writable, so
    /// a cleanly closed active segment can take appends again.
    pub fn reopen_for_append(&mut self, bytes_max: u32) -> Result<()> {
        let io = |op| StorageError::io(&self.path, op);
        let needed = (HEADER_LEN + self.entries * E::LEN) as u64;
        let len = u64::from(bytes_max).max(needed);
        self.map = None;
        self.file.set_len(len).map_err(io("preallocate index"))?;
        // SAFETY: as in `create`.
        self.map = Some(Map::Writable(
            unsafe { MmapMut::map_mut(&self.file) }.map_err(io("map index"))?,
        ));
        Ok(())
    }

    /// Removes the file.
    pub fn delete(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(&self.path, "remove index")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u32) -> OffsetEntry {
        OffsetEntry {
            rel_offset: i * 10,
            position: i * 4096,
        }
    }

    #[test]
    fn push_search_seal_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut ix = IndexFile::<OffsetEntry>::create(&path, 500, 1024).unwrap();
        assert_eq!(ix.free_slots(), (1024 - HEADER_LEN) / 8);
        for i in 0..20 {
            ix.push(entry(i));
        }
        assert_eq!(ix.last_where(|e| e.rel_offset <= 55), Some(5));
        assert_eq!(ix.last_where(|e| e.rel_offset <= 9), Some(0));
        assert_eq!(ix.last_where(|e| e.position < 1), Some(0));
        assert_eq!(ix.last_where(|_| false), None);
        assert_eq!(ix.last_where(|e| e.rel_offset <= 10_000), Some(19));
        ix.truncate_entries(15);
        ix.seal().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (HEADER_LEN + 15 * 8) as u64
        );
        assert_eq!(ix.free_slots(), 0);
        drop(ix);

        let mut ix = IndexFile::<OffsetEntry>::open_sealed(&path, 500)
            .unwrap()
            .unwrap();
        assert_eq!(ix.len(), 15);
        assert_eq!(ix.last(), Some(entry(14)));
        ix.reopen_for_append(1024).unwrap();
        ix.push(entry(15));
        assert_eq!(ix.get(15), entry(15));
    }

    #[test]
    fn damaged_files_are_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        assert!(
            IndexFile::<OffsetEntry>::open_sealed(&path, 0)
                .unwrap()
                .is_err(),
            "missing"
        );
        let mut ix = IndexFile::<OffsetEntry>::create(&path, 7, 1024).unwrap();
        ix.push(entry(1));
        ix.seal().unwrap();
        drop(ix);
        // Another segment's index, or a time index, is not this one.
        assert!(
            IndexFile::<OffsetEntry>::open_sealed(&path, 8)
                .unwrap()
                .is_err()
        );
        assert!(
            IndexFile::<TimeEntry>::open_sealed(&path, 7)
                .unwrap()
                .is_err()
        );
        // A partial entry.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.push(0);
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            IndexFile::<OffsetEntry>::open_sealed(&path, 7)
                .unwrap()
                .is_err()
        );
    }
}
