//! Reading what a share fetch leased: the whole batches that hold the
//! leased offsets (scattered: retries come among new records), and which
//! leased offsets are no longer in the log at all (below its start after
//! retention, or between batches after compaction), so the coordinator can
//! settle those without a delivery. Blocking: called off the async workers.

use bytes::{Bytes, BytesMut};
use strata_proto::BatchCursor;

use super::partition::Delivery;
use crate::core::error::{BrokerError, Result};
use crate::core::partition::Partition;
use crate::storage::StorageError;

/// What a read of leases found.
#[derive(Debug, Default)]
pub struct LeasedRecords {
    /// Whole batches, in offset order, holding every delivery of `found`
    /// (and other records, which the consumer skips).
    pub batches: Bytes,
    /// The leases whose batch is in `batches`.
    pub found: Vec<Delivery>,
    /// The leases of records the log no longer has.
    pub gone: Vec<Delivery>,
}

/// Reads the batches of `leased` from `partition`, `chunk_bytes` a read.
pub fn read_leased(
    partition: &Partition,
    leased: &[Delivery],
    chunk_bytes: usize,
) -> Result<LeasedRecords> {
    let mut want = leased.to_vec();
    want.sort();
    let mut out = LeasedRecords::default();
    let mut parts: Vec<Bytes> = Vec::new();
    let mut i = 0;
    while i < want.len() {
        let from = want[i].offset;
        let read = match partition.read_blocking(from, chunk_bytes) {
            Ok(r) => r,
            Err(BrokerError::Storage {
                source: StorageError::OffsetOutOfRange { start, .. },
                ..
            }) => {
                // Below the log start (retention), or past its end (the
                // log was truncated under the lease): not there either way.
                let gone_to = if from < start { start } else { u64::MAX };
                while i < want.len() && want[i].offset < gone_to {
                    out.gone.push(want[i]);
                    i += 1;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut cursor = BatchCursor::new(&read.batches);
        let mut pos = 0usize;
        let before = i;
        while let Some((h, bytes)) = cursor
            .next_batch()
            .map_err(|e| BrokerError::Internal(format!("stored batch: {e}")))?
        {
            let (base, last) = (h.base_offset as u64, h.last_offset() as u64);
            let range = pos..pos + bytes.len();
            pos = range.end;
            while i < want.len() && want[i].offset < base {
                out.gone.push(want[i]); // between batches: compacted away
                i += 1;
            }
            let first = i;
            while i < want.len() && want[i].offset <= last {
                out.found.push(want[i]);
                i += 1;
            }
            if i > first {
                parts.push(read.batches.slice(range));
            }
            if i == want.len() {
                break;
            }
        }
        if i == before {
            // Nothing at or after the offset: the log ends before it.
            out.gone.extend_from_slice(&want[i..]);
            break;
        }
    }
    out.batches = match parts.len() {
        0 => Bytes::new(),
        1 => parts.pop().unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
            for p in &parts {
                all.extend_from_slice(p);
            }
            all.freeze()
        }
    };
    Ok(out)
}
