//! The readers: reads of whole batches below the high watermark, the
//! record walk, and time lookups. They take no lock a writer holds for
//! long.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{Log, RECORD_WALK_BYTES, ReadResult};
use crate::Offset;
use crate::error::{Result, StorageError};
use crate::segment::Segment;

impl Log {
    pub(super) fn out_of_range(&self, offset: u64, start: u64, end: u64) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset,
            start,
            end,
            dir: self.dir.clone(),
        }
    }

    /// The segments that may hold `offset`: the one whose base is at or
    /// below it and the next few (a compacted segment may hold nothing past
    /// some offset, so a read can continue into the next).
    pub(super) fn segments_from(&self, offset: u64) -> Vec<Arc<Segment>> {
        let segs = self.segments.read().expect("segments lock");
        let i = segs
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        segs[i..].iter().take(4).cloned().collect()
    }

    /// Reads whole batches from `offset`, up to `max_bytes` (but at least
    /// one batch, so a consumer always makes progress). An empty result
    /// means `offset` is the high watermark.
    pub fn read(&self, offset: Offset, max_bytes: usize) -> Result<ReadResult> {
        let offset = offset.0;
        let start = self.log_start.load(Ordering::Acquire);
        let hwm = self.high_watermark.load(Ordering::Acquire);
        if offset < start || offset > hwm {
            return Err(self.out_of_range(offset, start, hwm));
        }
        let result = |batches| ReadResult {
            batches,
            high_watermark: Offset(hwm),
            log_start: Offset(start),
        };
        if offset == hwm {
            return Ok(result(Bytes::new()));
        }
        for seg in self.segments_from(offset) {
            if let Some(pos) = seg.position_of(offset)? {
                let bytes = seg.read_from(pos, max_bytes, hwm)?;
                if !bytes.is_empty() {
                    return Ok(result(bytes));
                }
            }
        }
        Ok(result(Bytes::new()))
    }

    /// Calls `f` with every visible record from `from` (or the log start,
    /// if later) to the high watermark, in order, and returns the offset it
    /// stopped at. It resumes after each batch's header end, not after its
    /// last record: compaction may have removed a batch's last records, and
    /// a reader that resumed after the last one it saw would get the same
    /// batch back forever. `f`'s error stops the walk and is returned.
    pub fn for_each_record<E: From<StorageError>>(
        &self,
        from: Offset,
        mut f: impl FnMut(strata_batch::Record) -> Result<(), E>,
    ) -> Result<Offset, E> {
        let mut at = from.0.max(self.log_start().0);
        loop {
            let r = self.read(Offset(at), RECORD_WALK_BYTES)?;
            if r.batches.is_empty() {
                return Ok(Offset(at));
            }
            let batches = strata_batch::Batch::decode_all(r.batches)
                .map_err(|e| StorageError::corrupt(&self.dir, at, e.to_string()))?;
            for b in batches {
                let first = at;
                at = at.max(b.header().last_offset() as u64 + 1);
                for rec in b.records() {
                    let rec =
                        rec.map_err(|e| StorageError::corrupt(&self.dir, first, e.to_string()))?;
                    if rec.offset as u64 >= first {
                        f(rec)?;
                    }
                }
            }
        }
    }

    /// The first offset whose record timestamp is at or after `timestamp`,
    /// or `None` if every visible record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<Offset>> {
        let start = self.log_start.load(Ordering::Acquire);
        let hwm = self.high_watermark.load(Ordering::Acquire);
        let segs: Vec<Arc<Segment>> = self.segments.read().expect("segments lock").clone();
        for seg in segs.iter().filter(|s| s.next_offset() > start) {
            if let Some(o) = seg.offset_for_timestamp(timestamp, start, hwm)? {
                return Ok(Some(Offset(o)));
            }
        }
        Ok(None)
    }
}
