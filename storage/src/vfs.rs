//! The one narrow interface through which the broker touches its data
//! directory: files (create, open, `pread`, `pwrite`, `set_len`,
//! `fdatasync`, a read-only view), and directory entries (create, list,
//! rename, remove, directory fsync). Production uses [`RealFs`], the
//! operating system's file system; tests may use [`super::sim::SimFs`], a
//! simulated disk that knows what is durable and can lose power.
//!
//! Why a trait object and not a generic: a `dyn` call costs a few
//! nanoseconds beside a system call that costs microseconds, and keeping
//! `Log` non-generic keeps every signature of the engine readable.
//!
//! **Invariant:** nothing under the data directory is read or written
//! except through a [`Vfs`] (the lock file included), so that the
//! simulated disk sees every operation whose durability matters.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

/// How [`Vfs::open`] opens a file. Every handle can read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Create it; fail with `AlreadyExists` if the name is taken.
    CreateNew,
    /// Create it, or cut an existing file to zero bytes.
    Truncate,
    /// Open an existing file; `NotFound` if there is none.
    Existing,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (lossy UTF-8: every name we create is UTF-8).
    pub name: String,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// An open file. Positions are absolute (`pread`/`pwrite`), so one handle
/// is shared by the writer and many readers without a cursor to race on.
pub trait VfsFile: Send + Sync + fmt::Debug {
    /// Fills `buf` from `pos`; `UnexpectedEof` if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    /// Writes all of `buf` at `pos`. On an error, part of it may be written.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Cuts or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's current length.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// `fdatasync`: what was written so far survives a power loss.
    fn sync_data(&self) -> io::Result<()>;
    /// A read-only view of the whole file as it is now (a memory map on
    /// the real file system). The file must not shrink while it is held.
    fn map(&self) -> io::Result<Bytes>;
}

/// A directory lock, held for as long as the value lives.
pub type LockGuard = Box<dyn Send + Sync + fmt::Debug>;

/// The file system under the data directory.
pub trait Vfs: Send + Sync + fmt::Debug {
    /// Opens a file.
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn VfsFile>>;
    /// The whole content of a (small) file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let f = self.open(path, Open::Existing)?;
        let mut buf = vec![0; f.len()? as usize];
        f.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
    /// Length of a file.
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.open(path, Open::Existing)?.len()
    }
    /// Renames a file or directory, replacing a file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory (fails with `AlreadyExists` if there is one).
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The entries of a directory, sorted by name.
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>>;
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Fsyncs a directory: entries created, renamed or removed in it
    /// survive a power loss.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on the file `path` (created if missing);
    /// `WouldBlock` if another holder has it.
    fn lock(&self, path: &Path) -> io::Result<LockGuard>;
}

/// The shared handle the engine and the broker pass around.
pub type Fs = Arc<dyn Vfs>;

/// The production file system.
pub fn real() -> Fs {
    Arc::new(RealFs)
}

/// Creates `path` and any missing parents, and fsyncs the parent of every
/// directory it created, so the new directories survive a power loss.
pub fn create_dir_durable(fs: &dyn Vfs, path: &Path) -> io::Result<()> {
    if fs.is_dir(path) {
        return Ok(());
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dir_durable(fs, parent)?;
    }
    match fs.create_dir(path) {
        Ok(()) => {}
        // Someone else made it meanwhile: theirs to make durable.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match parent {
        Some(parent) => fs.sync_dir(parent),
        None => Ok(()),
    }
}

/// Removes a file; a missing one is not an error.
pub fn remove_if_present(fs: &dyn Vfs, path: &Path) -> io::Result<bool> {
    match fs.remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The operating system's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

/// A file of the real file system.
#[derive(Debug)]
struct RealFile(File);

/// Every fsync of the engine passes here, so this is where fsyncs are
/// counted and timed (`strata_fsync_duration_seconds`, through the
/// `metrics` facade, which records nothing unless the broker installed an
/// exporter).
fn timed_sync(f: &File) -> io::Result<()> {
    let start = std::time::Instant::now();
    let result = f.sync_data();
    metrics::histogram!("strata_fsync_duration_seconds").record(start.elapsed().as_secs_f64());
    if result.is_err() {
        metrics::counter!("strata_fsync_errors_total").increment(1);
    }
    result
}

impl VfsFile for RealFile {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.0.write_all_at(buf, pos)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn sync_data(&self) -> io::Result<()> {
        timed_sync(&self.0)
    }
    fn map(&self) -> io::Result<Bytes> {
        if self.len()? == 0 {
            // mmap of zero bytes is EINVAL.
            return Ok(Bytes::new());
        }
        // SAFETY: the data directory is locked by one broker, and the
        // engine never shrinks a file while a view of it is held (indexes
        // are mapped only once sealed, and sealed files are immutable
        // until removed; an unlinked file stays mapped intact).
        let map = unsafe { memmap2::Mmap::map(&self.0) }?;
        Ok(Bytes::from_owner(map))
    }
}

#[derive(Debug)]
struct RealLock {
    _file: File,
    _path: PathBuf,
}

impl Vfs for RealFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn VfsFile>> {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        match how {
            Open::CreateNew => o.create_new(true),
            Open::Truncate => o.create(true).truncate(true),
            Open::Existing => &mut o,
        };
        Ok(Box::new(RealFile(o.open(path)?)))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            out.push(DirEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                is_dir: e.file_type()?.is_dir(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        timed_sync(&File::open(dir)?)
    }
    fn lock(&self, path: &Path) -> io::Result<LockGuard> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Box::new(RealLock {
                _file: f,
                _path: path.to_owned(),
            })),
            Err(fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}
