//! Sealing rolled segments, and what may advance once they are sealed:
//! the producer snapshot and the recovery point.
//!
//! **Invariant:** the recovery point never passes a segment that is not
//! sealed, and a producer snapshot never reaches the disk before every
//! batch it covers is fsynced.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use super::super::checkpoint::{self, Kind};
use super::super::error::{Result, StorageError};
use super::super::producers;
use super::super::segment::Segment;
use super::super::vfs::Fs;

/// Segments rolled but not yet sealed. Sealing (fsync of the whole
/// segment, index trim) runs on a background thread so that a roll never
/// stalls appends for the time it takes to write a gigabyte back.
#[derive(Debug)]
pub(super) struct SealBook {
    /// Rolled segments whose seal is running (or failed), or that are
    /// sealed but wait for an older one, oldest first.
    pub(super) sealing: Vec<Rolled>,
    /// Base offset of the newest segment: everything below was rolled.
    pub(super) rolled_to: u64,
    /// The recovery point last written to disk.
    pub(super) written_recovery_point: u64,
    /// The offset of the producer snapshot on disk (0: none). Snapshots
    /// only move forward, except when truncation rewrites one.
    pub(super) snapshot_offset: u64,
}

/// A rolled segment on its way to being sealed.
#[derive(Debug)]
pub(super) struct Rolled {
    pub(super) seg: Arc<Segment>,
    pub(super) sealed: bool,
    /// Its seal met a full disk: it waits for space, and is tried again
    /// by [`Sealer::retry`] (no seal is running for it now).
    pub(super) waiting_for_space: bool,
    /// The producer state as of the roll (the segment's end), encoded. It
    /// is written only once this segment and every older one are sealed:
    /// a snapshot that reached the disk before the batches it covers would
    /// answer a retry of a batch a power loss took as "duplicate".
    pub(super) snapshot: Option<(u64, Vec<u8>)>,
}

/// What sealing a rolled segment needs of its log.
#[derive(Debug, Clone)]
pub(super) struct Sealer {
    pub(super) seals: Arc<(Mutex<SealBook>, Condvar)>,
    pub(super) poisoned: Arc<OnceLock<String>>,
    pub(super) dir: PathBuf,
    pub(super) fs: Fs,
}

impl Sealer {
    /// Seals a rolled segment (fsync, index trim). Once it and every older
    /// one are sealed, writes the newest producer snapshot among them and
    /// advances the recovery point past them. Runs on its own thread,
    /// unless the log seals in the foreground.
    ///
    /// The data's fsync comes first, and its failure poisons the log: what
    /// reached the disk is then unknown. Writing the indexes may meet a
    /// full disk: that segment waits for space (the recovery point stays
    /// before it, appends go on in the new segment) and is sealed again by
    /// [`Sealer::retry`]. Any other failure poisons.
    pub(super) fn seal(&self, seg: Arc<Segment>) {
        let result = seg.sync().map_err(|e| (e, false)).and_then(|()| {
            seg.finish_seal().map_err(|e| {
                let full = matches!(e, StorageError::DiskFull { .. });
                (e, full)
            })
        });
        let (lock, cv) = &*self.seals;
        let mut book = lock.lock().expect("seal lock");
        let retry_others = match result {
            Ok(()) => {
                if let Some(r) = book.sealing.iter_mut().find(|r| Arc::ptr_eq(&r.seg, &seg)) {
                    r.sealed = true;
                }
                let mut snapshot = None;
                while book.sealing.first().is_some_and(|r| r.sealed) {
                    let r = book.sealing.remove(0);
                    snapshot = r.snapshot.or(snapshot);
                }
                self.advance(&mut book, snapshot);
                // There was space for this one: try the ones that waited.
                book.sealing.iter().any(|r| r.waiting_for_space)
            }
            Err((e, true)) => {
                if let Some(r) = book.sealing.iter_mut().find(|r| Arc::ptr_eq(&r.seg, &seg)) {
                    r.waiting_for_space = true;
                }
                tracing::warn!(dir = %self.dir.display(), error = %e, "sealing a segment waits for disk space");
                false
            }
            Err((e, false)) => {
                // The segment stays in `sealing`, so the recovery point never
                // passes it, and the log refuses writes from now on.
                let _ = self.poisoned.set(e.to_string());
                tracing::error!(dir = %self.dir.display(), error = %e, "sealing a segment failed: log poisoned");
                false
            }
        };
        cv.notify_all();
        drop(book);
        if retry_others {
            self.retry();
        }
    }

    /// Seals again, on this thread, every segment whose seal waited for
    /// disk space; returns how many still wait.
    pub(super) fn retry(&self) -> usize {
        let waiting: Vec<Arc<Segment>> = {
            let mut book = self.seals.0.lock().expect("seal lock");
            book.sealing
                .iter_mut()
                .filter(|r| r.waiting_for_space)
                .map(|r| {
                    r.waiting_for_space = false;
                    r.seg.clone()
                })
                .collect()
        };
        for seg in waiting {
            self.seal(seg);
        }
        Self::waiting_count(&self.seals.0.lock().expect("seal lock"))
    }

    /// Segments whose seal waits for disk space.
    pub(super) fn waiting_count(book: &SealBook) -> usize {
        book.sealing.iter().filter(|r| r.waiting_for_space).count()
    }

    /// Writes what the sealed prefix allows: the producer snapshot, then
    /// the recovery point. Both only save work at the next open; if one
    /// cannot be written, recovery replays or scans more, and loses nothing.
    fn advance(&self, book: &mut SealBook, snapshot: Option<(u64, Vec<u8>)>) {
        let warn = |what: &str, e: &StorageError| {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not write the {what}");
        };
        if let Some((offset, bytes)) = snapshot
            && offset > book.snapshot_offset
        {
            match checkpoint::write_atomic(&*self.fs, &self.dir, producers::SNAPSHOT_FILE, &bytes) {
                Ok(()) => book.snapshot_offset = offset,
                Err(e) => warn("producer snapshot", &e),
            }
        }
        let rp = book
            .sealing
            .first()
            .map_or(book.rolled_to, |r| r.seg.base_offset());
        if rp > book.written_recovery_point {
            match checkpoint::write(&*self.fs, &self.dir, Kind::RecoveryPoint, rp) {
                Ok(()) => book.written_recovery_point = rp,
                Err(e) => warn("recovery point", &e),
            }
        }
    }
}

impl super::Log {
    pub(super) fn sealer(&self) -> Sealer {
        Sealer {
            seals: self.seals.clone(),
            poisoned: self.poisoned.clone(),
            dir: self.dir.clone(),
            fs: self.fs.clone(),
        }
    }

    /// Seals again the segments whose seal met a full disk; returns how
    /// many still wait for space. The broker calls it on its cleanup timer.
    pub fn retry_seals(&self) -> usize {
        self.sealer().retry()
    }

    /// Waits until no seal is running (each is done, waits for space, or
    /// the log is poisoned); returns the book, still locked.
    pub(super) fn wait_for_running_seals(&self) -> std::sync::MutexGuard<'_, SealBook> {
        let (lock, cv) = &*self.seals;
        let mut book = lock.lock().expect("seal lock");
        while book
            .sealing
            .iter()
            .any(|r| !r.sealed && !r.waiting_for_space)
            && self.poisoned.get().is_none()
        {
            book = cv.wait(book).expect("seal lock");
        }
        book
    }

    /// Waits until every rolled segment is sealed (retrying the ones that
    /// waited for space), or a seal failed: poisoned, or still no space.
    pub(super) fn wait_for_seals(&self) -> Result<()> {
        let waiting = self.retry_seals();
        let book = self.wait_for_running_seals();
        let still = book
            .sealing
            .iter()
            .find(|r| r.waiting_for_space)
            .map(|r| r.seg.log_path().to_owned());
        drop(book);
        if let Some(cause) = self.poisoned.get() {
            return Err(StorageError::Poisoned {
                dir: self.dir.clone(),
                cause: cause.clone(),
            });
        }
        debug_assert!(still.is_none() || waiting > 0);
        match still {
            Some(path) => Err(StorageError::DiskFull {
                path,
                op: "seal segment",
            }),
            None => Ok(()),
        }
    }
}
