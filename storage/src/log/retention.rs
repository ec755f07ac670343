//! Removing data: retention by time and size, deleting segments before an
//! offset, and truncation (for recovery and repair).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use strata_batch::batch;

use super::recovery::replay_producers;
use super::{Log, Writer};
use crate::Offset;
use crate::checkpoint::{self, Kind};
use crate::error::{Result, StorageError};
use crate::producers::Producers;
use crate::segment::Segment;

impl Log {
    /// Called by retention with the writer lock held: makes sure a producer
    /// snapshot at or past `new_start` is on disk, fsyncing what it covers.
    pub(super) fn snapshot_before_deleting(&self, w: &Writer, new_start: u64) -> Result<()> {
        let unsealed: Vec<Arc<Segment>> = {
            let book = self.seals.0.lock().expect("seal lock");
            if w.producers.is_empty() || book.snapshot_offset >= new_start {
                return Ok(());
            }
            let rolled = book.sealing.iter().filter(|r| !r.sealed);
            rolled.map(|r| r.seg.clone()).collect()
        };
        for seg in unsealed.iter().chain([&w.active]) {
            if let Err(e) = seg.sync() {
                self.poison(&e);
                return Err(e);
            }
        }
        self.save_producers(w)
    }

    /// Removes every record at or after `offset`, which must be the start of
    /// a batch (or the log end). For recovery and repair, not for clients.
    pub fn truncate_to(&self, offset: Offset) -> Result<()> {
        let offset = offset.0;
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let mut w = self.writer.lock().expect("writer lock");
        self.check_writable(&w)?;
        self.wait_for_seals()?;
        let start = self.log_start.load(Ordering::Acquire);
        if offset < start || offset > w.next_offset {
            return Err(self.out_of_range(offset, start, w.next_offset));
        }
        if offset == w.next_offset {
            return Ok(());
        }
        let mut segs = self.segments.write().expect("segments lock");
        let keep = segs.partition_point(|s| s.base_offset() <= offset).max(1);
        let target = segs[keep - 1].clone();
        let pos = match target.position_of(offset)? {
            Some(pos) if offset > target.base_offset() => {
                let bytes = target.read_from(pos, 0, u64::MAX)?;
                let h = batch::BatchHeader::parse(&bytes)
                    .map_err(|e| StorageError::corrupt(target.log_path(), pos, e.to_string()))?;
                if h.base_offset as u64 != offset {
                    return Err(StorageError::NotBatchBoundary {
                        offset,
                        dir: self.dir.clone(),
                    });
                }
                pos
            }
            _ => 0,
        };
        for seg in segs.drain(keep..) {
            seg.delete()?;
        }
        target.truncate_at(pos, &self.config())?;
        checkpoint::sync_dir(&*self.fs, &self.dir)?;
        w.active = target;
        w.next_offset = offset;
        // Batches past the cut are gone: derive the producers again.
        w.producers = Producers::default();
        // (The segment list's write lock is still held: use that guard.)
        replay_producers(&segs, 0, &mut w.producers, self.config().clock.now_ms())?;
        let mut s = self.sync.lock().expect("sync lock");
        s.synced_offset = s.synced_offset.min(offset);
        self.high_watermark.store(offset, Ordering::Release);
        if let checkpoint::Read::Value(rp) =
            checkpoint::read(&*self.fs, &self.dir, Kind::RecoveryPoint)?
            && rp > offset
        {
            checkpoint::write(
                &*self.fs,
                &self.dir,
                Kind::RecoveryPoint,
                w.active.base_offset(),
            )?;
        }
        // A snapshot past the cut would name batches that are gone once
        // appends pass its offset again; the one derived above replaces it
        // (everything it covers was just fsynced).
        self.save_producers(&w)?;
        Ok(())
    }

    /// Deletes whole sealed segments that lie entirely below `offset` (never
    /// the active one) and advances the log start offset to the first
    /// remaining record. Returns the number of segments deleted. Readers
    /// already inside a deleted segment finish their read.
    pub fn delete_segments_before(&self, offset: Offset) -> Result<usize> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let w = self.writer.lock().expect("writer lock");
        self.check_writable(&w)?;
        let doomed: Vec<Arc<Segment>> = {
            let segs = self.segments.read().expect("segments lock");
            // A segment may still be sealing: its sealer works on open file
            // handles, so unlinking the names under it is harmless.
            let n = segs[..segs.len() - 1]
                .iter()
                .take_while(|s| s.next_offset() <= offset.0)
                .count();
            segs[..n].to_vec()
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        // Never below the current start: segments whose removal a power
        // loss undid may still be listed below it.
        let new_start = doomed
            .last()
            .expect("non-empty")
            .next_offset()
            .max(self.log_start.load(Ordering::Acquire));
        // The producer state of the doomed segments' batches must outlive
        // them: if no snapshot on disk covers the new start (after a
        // recovery replayed them, or while a seal is behind), write one now.
        self.snapshot_before_deleting(&w, new_start)?;
        // Persist the new start first: after a crash, the old segments may
        // still be there, but no reader will be served from them.
        checkpoint::write(&*self.fs, &self.dir, Kind::LogStart, new_start)?;
        self.log_start.fetch_max(new_start, Ordering::AcqRel);
        self.segments
            .write()
            .expect("segments lock")
            .drain(..doomed.len());
        for seg in &doomed {
            seg.delete()?;
        }
        checkpoint::sync_dir(&*self.fs, &self.dir)?;
        drop(w);
        Ok(doomed.len())
    }

    /// Deletes the sealed segments that retention no longer keeps, oldest
    /// first, and returns how many went. Time: a segment whose newest
    /// record is older than `retention_ms` before `now_ms` (-1 keeps
    /// forever). Size: while the partition is larger than `retention_bytes`
    /// (-1 is unlimited), its oldest sealed segment. The active segment is
    /// never deleted, and a segment goes only if all before it go too.
    pub fn apply_retention(
        &self,
        retention_ms: i64,
        retention_bytes: i64,
        now_ms: i64,
    ) -> Result<usize> {
        let cutoff = {
            let segs = self.segments.read().expect("segments lock");
            let mut total: u64 = segs.iter().map(|s| s.size()).sum();
            let mut cutoff = None;
            for seg in &segs[..segs.len() - 1] {
                let too_old = retention_ms >= 0
                    && seg
                        .max_timestamp()
                        .is_none_or(|t| t < now_ms.saturating_sub(retention_ms));
                let too_big = retention_bytes >= 0 && total > retention_bytes as u64;
                if !(too_old || too_big) {
                    break;
                }
                total -= seg.size();
                cutoff = Some(seg.next_offset());
            }
            cutoff
        };
        match cutoff {
            Some(offset) => {
                let n = self.delete_segments_before(Offset(offset))?;
                tracing::info!(dir = %self.dir.display(), segments = n, log_start = offset, "retention deleted segments");
                Ok(n)
            }
            None => Ok(0),
        }
    }
}
