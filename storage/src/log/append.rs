//! The writer: appends (validate outside the lock, `write` under it,
//! `complete` after it with the group-committed fsync), rolls, and the
//! fsyncs that durability asks for.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use strata_batch::TimestampType;
use strata_batch::batch;

use super::{AppendInfo, Log, Rolled, Writer, Written};
use crate::Offset;
use crate::checkpoint;
use crate::config::{Durability, LogConfig};
use crate::error::{Result, StorageError};
use crate::producers::{self, BatchMeta, Check, Refusal};
use crate::segment::Segment;

impl Log {
    /// Appends one record batch (Kafka v2, uncompressed, exactly one batch):
    /// [`Log::write`] then [`Log::complete`]. When the call returns depends
    /// on the log's [`Durability`]: in `Fsync` mode only once an fsync
    /// covers the batch.
    pub fn append(&self, batch: &[u8]) -> Result<AppendInfo> {
        let written = self.write(batch)?;
        self.complete(written)
    }

    /// The first half of an append, which never waits for an fsync: the
    /// batch is validated (framing, CRC-32C, every record) and written with
    /// its base offset stamped in (and, for log-append-time logs, its
    /// timestamp, with a new CRC); the caller's buffer is not modified.
    /// Batches written by one thread reach the log in the order of its
    /// calls, which is what lets a produce stream keep a producer's batches
    /// in order while their fsyncs overlap. Readers of an `Fsync` log see
    /// the batch only after [`Log::complete`] (or any later fsync).
    pub fn write(&self, batch: &[u8]) -> Result<Written> {
        let config = self.config();
        if batch.len() > config.batch_bytes_max as usize {
            return Err(StorageError::BatchTooLarge {
                size: batch.len(),
                limit: config.batch_bytes_max,
            });
        }
        let converted;
        let (valid, batch) = {
            let decompressed_max = config.batch_decompressed_bytes_max as usize;
            let codec = batch::BatchHeader::parse(batch)
                .and_then(|h| h.attributes.compression())
                .ok();
            let compressed = codec.is_some_and(|c| c != batch::Compression::None);
            let _held = compressed.then(|| config.decompression.reserve(decompressed_max));
            let valid = batch::validate(batch, decompressed_max)?;
            match config.compression {
                // The topic's own codec (`compression.type`): the records
                // are compressed again, every other field kept.
                Some(target) if codec != Some(target) => {
                    converted = batch::recompress(batch, target, decompressed_max)?;
                    // What is stored must fit the limit too.
                    if converted.len() > config.batch_bytes_max as usize {
                        return Err(StorageError::BatchTooLarge {
                            size: converted.len(),
                            limit: config.batch_bytes_max,
                        });
                    }
                    let header = batch::BatchHeader::parse(&converted)?;
                    (batch::ValidBatch { header, ..valid }, &converted[..])
                }
                _ => (valid, batch),
            }
        };
        if config.keys_required
            && let Some(index) = valid.first_keyless
        {
            return Err(StorageError::KeyRequired { index });
        }
        let now = config.clock.now_ms();
        let log_append_time_ms =
            (config.timestamp_type == TimestampType::LogAppendTime).then_some(now);
        let max_timestamp = log_append_time_ms.unwrap_or(valid.header.max_timestamp);
        let records = u64::from(valid.record_count);
        let h = valid.header;
        let idempotent = h.producer_id >= 0;
        let last_seq = h.last_sequence();

        let (base, last) = {
            let mut w = self.writer.lock().expect("writer lock");
            self.check_writable(&w)?;
            if idempotent && !w.producers.has_room_for(h.producer_id, now) {
                return Err(StorageError::ProducersFull {
                    dir: self.dir.clone(),
                    limit: producers::PRODUCERS_MAX,
                });
            }
            if idempotent {
                // Checked and recorded under the writer's lock, so two
                // copies of one batch racing each other append once.
                match w
                    .producers
                    .check(h.producer_id, h.producer_epoch, h.base_sequence, last_seq)
                {
                    Ok(Check::Append) => {}
                    Ok(Check::Duplicate(m)) => {
                        // Answered like the original: once it is as durable
                        // as an append would be (`complete`).
                        return Ok(Written {
                            info: AppendInfo {
                                base_offset: Offset(m.base_offset),
                                last_offset: Offset(m.last_offset),
                                log_append_time_ms: None,
                                durable: false,
                                duplicate: true,
                            },
                            now_ms: now,
                        });
                    }
                    Err(Refusal::Fenced { current }) => {
                        return Err(StorageError::ProducerFenced {
                            producer_id: h.producer_id,
                            epoch: h.producer_epoch,
                            current,
                        });
                    }
                    Err(Refusal::OutOfOrder { expected }) => {
                        return Err(StorageError::OutOfOrderSequence {
                            producer_id: h.producer_id,
                            expected,
                            got: h.base_sequence,
                        });
                    }
                }
            }
            let base = w.next_offset;
            let last = base + records - 1;
            let too_old = w
                .active_first_append_ms
                .is_some_and(|t| now.saturating_sub(t) >= config.segment_ms_max as i64);
            if too_old || w.active.is_full_for(batch.len() as u64, last, &config) {
                self.roll(&mut w, &config)?;
            }
            // Computed under the lock: the base offset is only known here.
            // The CRC (log-append time only) covers the records, read, not copied.
            let header = batch::stored_header(batch, base as i64, log_append_time_ms);
            let Writer {
                active, scratch, ..
            } = &mut *w;
            let records_bytes = &batch[batch::BATCH_HEADER_LEN..];
            if let Err(failure) = active.append(
                &header,
                records_bytes,
                scratch,
                base,
                last,
                max_timestamp,
                &config,
            ) {
                // A write that failed and could not be undone leaves bytes
                // we cannot account for: stop writing.
                if !failure.undone {
                    self.poison(&failure.error);
                }
                return Err(failure.error);
            }
            w.active_first_append_ms.get_or_insert(now);
            w.next_offset = last + 1;
            if idempotent {
                let meta = BatchMeta {
                    first_seq: h.base_sequence,
                    last_seq,
                    base_offset: base,
                    last_offset: last,
                };
                w.producers
                    .record(h.producer_id, h.producer_epoch, meta, now);
            }
            if config.durability != Durability::Fsync {
                self.high_watermark.store(w.next_offset, Ordering::Release);
            }
            (base, last)
        };
        Ok(Written {
            info: AppendInfo {
                base_offset: Offset(base),
                last_offset: Offset(last),
                log_append_time_ms,
                durable: false,
                duplicate: false,
            },
            now_ms: now,
        })
    }

    /// The second half of an append: the fsync the log's [`Durability`]
    /// asks for (shared with every other batch written meanwhile: group
    /// commit). A duplicate is completed like the original batch would be.
    pub fn complete(&self, written: Written) -> Result<AppendInfo> {
        let Written { mut info, now_ms } = written;
        let config = self.config();
        let last = info.last_offset.0;
        info.durable = match config.durability {
            Durability::Fsync => {
                self.sync_to(last + 1)?;
                true
            }
            Durability::Interval { .. } if info.duplicate => false,
            Durability::Interval {
                interval_ms,
                interval_records,
            } => {
                let due = {
                    let s = self.sync.lock().expect("sync lock");
                    interval_records.is_some_and(|n| last + 1 - s.synced_offset.min(last + 1) >= n)
                        || interval_ms
                            .is_some_and(|ms| now_ms.saturating_sub(s.last_sync_ms) >= ms as i64)
                };
                if due {
                    self.sync_to(last + 1)?;
                }
                due
            }
            Durability::PageCache => false,
        };
        Ok(info)
    }

    /// Starts a new segment at the log end and hands the old one to a
    /// background thread to seal. Called with the writer lock held.
    pub(super) fn roll(&self, w: &mut Writer, config: &LogConfig) -> Result<()> {
        // The producer state up to here, so the next open replays at most
        // the segments after this one; written once the segment is sealed.
        let snapshot =
            (!w.producers.is_empty()).then(|| (w.next_offset, w.producers.encode(w.next_offset)));
        let seg = Arc::new(Segment::create(&self.dir, w.next_offset, config)?);
        if let Err(e) = checkpoint::sync_dir(&*self.fs, &self.dir) {
            // Whether the new name would survive a power loss is unknown:
            // drop the segment, and refuse writes as after any failed fsync.
            drop(seg);
            Segment::remove_files(config, &self.dir, w.next_offset);
            self.poison(&e);
            return Err(e);
        }
        self.segments
            .write()
            .expect("segments lock")
            .push(seg.clone());
        let old = std::mem::replace(&mut w.active, seg);
        w.active_first_append_ms = None;
        {
            let mut book = self.seals.0.lock().expect("seal lock");
            book.sealing.push(Rolled {
                seg: old.clone(),
                sealed: false,
                waiting_for_space: false,
                snapshot,
            });
            book.rolled_to = w.next_offset;
        }
        let sealer = self.sealer();
        if !config.seal_in_background {
            sealer.seal(old);
        } else {
            let background = old.clone();
            let s2 = sealer.clone();
            let spawned = std::thread::Builder::new()
                .name("strata-seal".into())
                .spawn(move || s2.seal(background));
            if spawned.is_err() {
                // No thread to be had: seal here, slower but just as correct.
                sealer.seal(old);
            }
        }
        tracing::debug!(dir = %self.dir.display(), base = w.next_offset, "rolled segment");
        Ok(())
    }

    /// Writes the producer snapshot at the log end. Everything below it
    /// must already be durable (the callers fsynced it).
    pub(super) fn save_producers(&self, w: &Writer) -> Result<()> {
        if w.producers.is_empty() {
            return Ok(());
        }
        checkpoint::write_atomic(
            &*self.fs,
            &self.dir,
            producers::SNAPSHOT_FILE,
            &w.producers.encode(w.next_offset),
        )?;
        self.seals.0.lock().expect("seal lock").snapshot_offset = w.next_offset;
        Ok(())
    }

    /// Blocks until every offset below `target` is fsynced. One caller
    /// fsyncs on behalf of all who wait (group commit): it captures the log
    /// end, fsyncs, and wakes everyone that end covers.
    pub fn sync_to(&self, target: u64) -> Result<()> {
        let mut s = self.sync.lock().expect("sync lock");
        loop {
            if let Some(cause) = self.poisoned.get() {
                return Err(StorageError::Poisoned {
                    dir: self.dir.clone(),
                    cause: cause.clone(),
                });
            }
            if s.synced_offset >= target {
                return Ok(());
            }
            if s.in_progress {
                s = self.synced.wait(s).expect("sync lock");
                continue;
            }
            s.in_progress = true;
            drop(s);
            // Sealed segments were fsynced when sealed; the ones still being
            // sealed and the active one cover everything else up to `end`.
            let (segs, end) = {
                let w = self.writer.lock().expect("writer lock");
                let book = self.seals.0.lock().expect("seal lock");
                let mut segs: Vec<Arc<Segment>> = book
                    .sealing
                    .iter()
                    .filter(|r| !r.sealed)
                    .map(|r| r.seg.clone())
                    .collect();
                drop(book);
                segs.push(w.active.clone());
                (segs, w.next_offset)
            };
            let result = segs.iter().try_for_each(|s| s.sync());
            s = self.sync.lock().expect("sync lock");
            s.in_progress = false;
            match result {
                Ok(()) => {
                    s.synced_offset = s.synced_offset.max(end);
                    s.last_sync_ms = self.config().clock.now_ms();
                    if self.config().durability == Durability::Fsync {
                        self.high_watermark
                            .fetch_max(s.synced_offset, Ordering::AcqRel);
                    }
                    self.synced.notify_all();
                }
                Err(e) => {
                    self.poison(&e);
                    self.synced.notify_all();
                    return Err(e);
                }
            }
        }
    }

    /// Fsyncs everything appended so far.
    pub fn flush(&self) -> Result<()> {
        let end = self.writer.lock().expect("writer lock").next_offset;
        self.sync_to(end)
    }

    /// In `Interval` mode, fsyncs if `interval_ms` has passed since the
    /// last fsync and there is something to sync. The broker calls this on
    /// a timer so that a quiet log still meets its interval.
    pub fn flush_if_due(&self) -> Result<bool> {
        let Durability::Interval {
            interval_ms: Some(ms),
            ..
        } = self.config().durability
        else {
            return Ok(false);
        };
        let end = self.writer.lock().expect("writer lock").next_offset;
        let due = {
            let s = self.sync.lock().expect("sync lock");
            s.synced_offset < end
                && self.config().clock.now_ms().saturating_sub(s.last_sync_ms) >= ms as i64
        };
        if due {
            self.sync_to(end)?;
        }
        Ok(due)
    }
}
