//! The sparse indexes of a segment.
//!
//! Both files share one layout: a 16-byte header
//! (`magic [4] | version u16 = 1 | entry_len u16 | base_offset u64`, big-endian)
//! followed by fixed-size entries. The offset index (`.index`, magic
//! `SXOI`) maps a batch's base offset, relative to the segment's, to the
//! batch's byte position (u32 + u32). The time index (`.timeindex`, magic
//! `SXTI`) maps the largest timestamp seen up to a batch to that batch's
//! last offset (i64 + u32).
//!
//! The active segment's entries live in memory (its file holds only the
//! header); sealing writes them after the header, fsyncs the file and maps
//! it read-only (memmap2 on the real file system). Indexes are derived
//! data: recovery rebuilds a missing or damaged one from the log, and the
//! active segment's always, so they are fsynced only when sealed, never
//! per append. A failed seal leaves the entries in memory, still usable.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::envelope::{FileType, Reader, Writer};
use super::error::{Result, StorageError};
use super::vfs::{Open, Vfs, VfsFile};

/// Bytes of the header at the start of every index file.
pub const HEADER_LEN: usize = 16;
/// Current index format version.
pub const VERSION: u16 = 1;
/// The offset index's header prefix.
pub const OFFSET_INDEX_TYPE: FileType = FileType {
    magic: *b"SXOI",
    version: VERSION,
    what: "offset index",
};
/// The time index's header prefix.
pub const TIME_INDEX_TYPE: FileType = FileType {
    magic: *b"SXTI",
    version: VERSION,
    what: "time index",
};

/// One fixed-size entry type of an index file.
pub trait Entry: Copy + std::fmt::Debug {
    /// The file's magic and version.
    const FILE: FileType;
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
    const FILE: FileType = OFFSET_INDEX_TYPE;
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
    const FILE: FileType = TIME_INDEX_TYPE;
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
enum State {
    /// Active: the encoded entries (no header), growing in memory.
    Active(Vec<u8>),
    /// Sealed: the whole file, header included, read-only.
    Sealed(Bytes),
}

/// Why an existing index file cannot be used as it is (it is then rebuilt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage(pub String);

/// One index file.
#[derive(Debug)]
pub struct IndexFile<E: Entry> {
    path: PathBuf,
    file: Box<dyn VfsFile>,
    state: State,
    /// Valid entries.
    entries: usize,
    /// Entries an active index may hold (`index_bytes_max` less the header).
    capacity: usize,
    _entry: PhantomData<E>,
}

fn header<E: Entry>(base_offset: u64) -> Vec<u8> {
    let mut w = Writer::new(E::FILE);
    w.u16(E::LEN as u16).u64(base_offset);
    let h = w.into_header();
    debug_assert_eq!(h.len(), HEADER_LEN);
    h
}

/// Checks a sealed index's header against the segment it belongs to.
fn check_header<E: Entry>(b: &[u8], base_offset: u64) -> Result<(), String> {
    let mut r = Reader::open_header(E::FILE, b).map_err(|e| e.to_string())?;
    let entry_len = r.u16("entry length").map_err(|e| e.to_string())?;
    let base = r.u64("base offset").map_err(|e| e.to_string())?;
    if usize::from(entry_len) != E::LEN {
        return Err(format!("entry length {entry_len}, expected {}", E::LEN));
    }
    if base != base_offset {
        return Err(format!(
            "base offset {base}, but the segment's is {base_offset}"
        ));
    }
    Ok(())
}

fn capacity<E: Entry>(bytes_max: u32) -> usize {
    (bytes_max as usize).saturating_sub(HEADER_LEN) / E::LEN
}

impl<E: Entry> IndexFile<E> {
    /// Creates (or replaces) an empty active index that may grow to
    /// `bytes_max`; the file gets its header now, its entries when sealed.
    pub fn create(fs: &dyn Vfs, path: &Path, base_offset: u64, bytes_max: u32) -> Result<Self> {
        let io = |op| StorageError::io(path, op);
        let file = fs.open(path, Open::Truncate).map_err(io("create index"))?;
        file.write_all_at(&header::<E>(base_offset), 0)
            .map_err(io("write index header"))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            state: State::Active(Vec::new()),
            entries: 0,
            capacity: capacity::<E>(bytes_max),
            _entry: PhantomData,
        })
    }

    /// Opens a sealed (or cleanly closed) index read-only.
    /// Returns `Ok(Err(damage))` if the file is missing or not a valid
    /// index for this segment; the caller rebuilds it.
    pub fn open_sealed(
        fs: &dyn Vfs,
        path: &Path,
        base_offset: u64,
    ) -> Result<Result<Self, Damage>> {
        let io = |op| StorageError::io(path, op);
        let file = match fs.open(path, Open::Existing) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err(Damage("missing".into())));
            }
            Err(e) => return Err(io("open index")(e)),
        };
        let len = file.len().map_err(io("stat index"))? as usize;
        if len < HEADER_LEN || !(len - HEADER_LEN).is_multiple_of(E::LEN) {
            return Ok(Err(Damage(format!(
                "size {len} is not a header plus whole entries"
            ))));
        }
        let map = file.map().map_err(io("map index"))?;
        if let Err(why) = check_header::<E>(&map[..HEADER_LEN], base_offset) {
            return Ok(Err(Damage(format!("bad header: {why}"))));
        }
        Ok(Ok(Self {
            path: path.to_owned(),
            file,
            entries: (len - HEADER_LEN) / E::LEN,
            state: State::Sealed(map),
            capacity: 0,
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

    /// Entries the index can take before it is full (none once sealed).
    pub fn free_slots(&self) -> usize {
        match &self.state {
            State::Active(_) => self.capacity.saturating_sub(self.entries),
            State::Sealed(_) => 0,
        }
    }

    /// Entry `i` (which must be below `len`).
    pub fn get(&self, i: usize) -> E {
        assert!(i < self.entries, "index entry {i} of {}", self.entries);
        let at = i * E::LEN;
        match &self.state {
            State::Active(buf) => E::read(&buf[at..at + E::LEN]),
            State::Sealed(map) => E::read(&map[HEADER_LEN + at..HEADER_LEN + at + E::LEN]),
        }
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
        assert!(
            self.entries < self.capacity,
            "index {} is full",
            self.path.display()
        );
        let State::Active(buf) = &mut self.state else {
            panic!("push to sealed index {}", self.path.display());
        };
        let at = buf.len();
        buf.resize(at + E::LEN, 0);
        e.write(&mut buf[at..]);
        self.entries += 1;
    }

    /// Drops entries from `n` on (truncation and recovery; active only).
    pub fn truncate_entries(&mut self, n: usize) {
        if n >= self.entries {
            return;
        }
        let State::Active(buf) = &mut self.state else {
            panic!("truncate of sealed index {}", self.path.display());
        };
        buf.truncate(n * E::LEN);
        self.entries = n;
    }

    /// Writes the entries after the header, cuts the file there, fsyncs it
    /// and maps it read-only. A sealed index is left as it is.
    pub fn seal(&mut self) -> Result<()> {
        let io = |op| StorageError::io(&self.path, op);
        let State::Active(buf) = &self.state else {
            return Ok(());
        };
        self.file
            .write_all_at(buf, HEADER_LEN as u64)
            .map_err(io("write index"))?;
        self.file
            .set_len((HEADER_LEN + buf.len()) as u64)
            .map_err(io("trim index"))?;
        self.file.sync_data().map_err(io("fsync index"))?;
        let map = self.file.map().map_err(io("map index"))?;
        self.state = State::Sealed(map);
        Ok(())
    }

    /// Makes a sealed index active again, able to grow to `bytes_max`, so
    /// a cleanly closed active segment can take appends again.
    pub fn reopen_for_append(&mut self, bytes_max: u32) -> Result<()> {
        if let State::Sealed(map) = &self.state {
            self.state = State::Active(map[HEADER_LEN..].to_vec());
        }
        self.capacity = capacity::<E>(bytes_max).max(self.entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::RealFs;

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
        let fs = RealFs;
        let mut ix = IndexFile::<OffsetEntry>::create(&fs, &path, 500, 1024).unwrap();
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

        let mut ix = IndexFile::<OffsetEntry>::open_sealed(&fs, &path, 500)
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
        let fs = RealFs;
        assert!(
            IndexFile::<OffsetEntry>::open_sealed(&fs, &path, 0)
                .unwrap()
                .is_err(),
            "missing"
        );
        let mut ix = IndexFile::<OffsetEntry>::create(&fs, &path, 7, 1024).unwrap();
        ix.push(entry(1));
        ix.seal().unwrap();
        drop(ix);
        // Another segment's index, or a time index, is not this one.
        assert!(
            IndexFile::<OffsetEntry>::open_sealed(&fs, &path, 8)
                .unwrap()
                .is_err()
        );
        assert!(
            IndexFile::<TimeEntry>::open_sealed(&fs, &path, 7)
                .unwrap()
                .is_err()
        );
        // A partial entry.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.push(0);
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            IndexFile::<OffsetEntry>::open_sealed(&fs, &path, 7)
                .unwrap()
                .is_err()
        );
    }
}
