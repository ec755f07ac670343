//! Small files of one number each (recovery point, log start offset, clean
//! shutdown marker), written atomically, plus directory fsync and the
//! atomic-write helper other small files of ours use.
//!
//! Layout, 20 bytes, big-endian:
//! `magic "STCK" | version u16 = 1 | kind u16 | value u64 | crc32 u32`
//! where the CRC (IEEE, crc32fast) covers the first 16 bytes. A file that
//! is short, has the wrong magic, version or kind, or fails its CRC is
//! treated as absent: every checkpoint has a safe fallback (recover more,
//! or derive the value from the segments), so a damaged one costs time,
//! never data.

use std::path::Path;

use super::envelope::{FileType, Reader, Writer};
use super::error::{Result, StorageError};
use super::vfs::{Open, Vfs};

/// Magic at the start of every checkpoint file.
pub const MAGIC: [u8; 4] = *b"STCK";
/// Current checkpoint format version.
pub const VERSION: u16 = 1;
/// Bytes in a checkpoint file.
pub const LEN: usize = 20;

/// What a checkpoint file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    /// Every offset below the value is fsynced in sealed segments.
    RecoveryPoint = 1,
    /// The log start offset: nothing below it is served.
    LogStart = 2,
    /// Written last by a clean close; the value is the log end offset.
    CleanShutdown = 3,
    /// In a broker's data directory: producer ids below it may have been
    /// handed out; the next block starts there.
    ProducerIdBlock = 4,
    /// Compaction has cleaned the log below this offset; records from it
    /// on are the dirty part the next pass maps.
    CleanerOffset = 5,
}

impl Kind {
    /// Every kind, in number order.
    pub const ALL: [Kind; 5] = [
        Kind::RecoveryPoint,
        Kind::LogStart,
        Kind::CleanShutdown,
        Kind::ProducerIdBlock,
        Kind::CleanerOffset,
    ];
}

/// File name of each kind inside a partition directory.
pub fn file_name(kind: Kind) -> &'static str {
    match kind {
        Kind::RecoveryPoint => "recovery-point.checkpoint",
        Kind::LogStart => "log-start-offset.checkpoint",
        Kind::CleanShutdown => "clean-shutdown.checkpoint",
        Kind::ProducerIdBlock => "producer-id-block.checkpoint",
        Kind::CleanerOffset => "cleaner-offset.checkpoint",
    }
}

/// The checkpoint envelope.
pub const FILE_TYPE: FileType = FileType {
    magic: MAGIC,
    version: VERSION,
    what: "checkpoint",
};

fn encode(kind: Kind, value: u64) -> Vec<u8> {
    let mut w = Writer::new(FILE_TYPE);
    w.u16(kind as u16).u64(value);
    let b = w.finish();
    debug_assert_eq!(b.len(), LEN);
    b
}

fn decode(kind: Kind, b: &[u8]) -> Option<u64> {
    let mut r = Reader::open(FILE_TYPE, b).ok()?;
    if r.u16("kind").ok()? != kind as u16 {
        return None;
    }
    let value = r.u64("value").ok()?;
    r.finish().ok()?;
    Some(value)
}

/// What reading a checkpoint found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// No such file.
    Missing,
    /// A file that is not a valid checkpoint of this kind.
    Damaged,
    /// A valid value.
    Value(u64),
}

/// Reads the checkpoint of `kind` in `dir`.
pub fn read(fs: &dyn Vfs, dir: &Path, kind: Kind) -> Result<Read> {
    let path = dir.join(file_name(kind));
    match fs.read(&path) {
        Ok(b) => Ok(decode(kind, &b).map_or(Read::Damaged, Read::Value)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Read::Missing),
        Err(e) => Err(StorageError::io(path, "read checkpoint")(e)),
    }
}

/// Writes the checkpoint atomically (see [`write_atomic`]).
pub fn write(fs: &dyn Vfs, dir: &Path, kind: Kind, value: u64) -> Result<()> {
    write_atomic(fs, dir, file_name(kind), &encode(kind, value))
}

/// Writes `dir/name` atomically: a temporary `name.tmp`, fsync, rename over
/// the old file, fsync the directory. A crash leaves the old or the new
/// content, never a mix; a leftover `.tmp` is removed by the next open.
pub fn write_atomic(fs: &dyn Vfs, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let io = |op| StorageError::io(&tmp, op);
    let f = fs.open(&tmp, Open::Truncate).map_err(io("create"))?;
    f.write_all_at(bytes, 0).map_err(io("write"))?;
    f.sync_data().map_err(io("fsync"))?;
    drop(f);
    fs.rename(&tmp, &path)
        .map_err(StorageError::io(&path, "rename"))?;
    sync_dir(fs, dir)
}

/// Removes the checkpoint of `kind` (if any) and fsyncs the directory.
pub fn remove(fs: &dyn Vfs, dir: &Path, kind: Kind) -> Result<()> {
    let path = dir.join(file_name(kind));
    match fs.remove_file(&path) {
        Ok(()) => sync_dir(fs, dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, "remove checkpoint")(e)),
    }
}

/// Fsyncs a directory, so that files created, renamed or removed in it
/// survive a power loss.
pub fn sync_dir(fs: &dyn Vfs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir)
        .map_err(StorageError::io(dir, "fsync directory"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::RealFs;
    use std::fs;

    #[test]
    fn round_trip_and_damage_detection() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read(&RealFs, dir.path(), Kind::RecoveryPoint).unwrap(),
            Read::Missing
        );
        write(&RealFs, dir.path(), Kind::RecoveryPoint, 12345).unwrap();
        assert_eq!(
            read(&RealFs, dir.path(), Kind::RecoveryPoint).unwrap(),
            Read::Value(12345)
        );
        let path = dir.path().join(file_name(Kind::RecoveryPoint));
        let good = fs::read(&path).unwrap();
        for i in 0..LEN {
            let mut bad = good.clone();
            bad[i] ^= 1;
            fs::write(&path, &bad).unwrap();
            assert_eq!(
                read(&RealFs, dir.path(), Kind::RecoveryPoint).unwrap(),
                Read::Damaged,
                "flip at {i}"
            );
        }
        fs::write(&path, &good[..10]).unwrap();
        assert_eq!(
            read(&RealFs, dir.path(), Kind::RecoveryPoint).unwrap(),
            Read::Damaged
        );
        // A checkpoint of another kind is not mistaken for this one.
        fs::write(dir.path().join(file_name(Kind::LogStart)), &good).unwrap();
        assert_eq!(
            read(&RealFs, dir.path(), Kind::LogStart).unwrap(),
            Read::Damaged
        );
    }
}
