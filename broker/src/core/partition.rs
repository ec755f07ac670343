//! One partition of a topic: its log, and the async face the server uses.
//!
//! Appends and reads run on tokio's blocking threads, because the storage
//! engine is synchronous: an append may wait for a group-commit fsync, a
//! read is a `pread`. Concurrent appends to one partition are serialised
//! and group-committed inside the engine. After every append the partition
//! publishes its high watermark on a watch channel, which is what wakes
//! long-polling fetches and subscriptions: nobody polls.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use tokio::sync::{Semaphore, watch};

use super::error::{BrokerError, Result};
use crate::storage::{
    AppendInfo, Clock, Log, LogConfig, Offset, ReadResult, StorageError, SystemClock, Written,
};

/// When a produce request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// At once; failures are only logged.
    None,
    /// Once the append call returns (page cache, or fsynced on `fsync` topics).
    Written,
    /// Once fsynced.
    Durable,
}

/// Size and offsets of a partition, for describe.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartitionStats {
    /// First offset served.
    pub log_start: u64,
    /// Next offset to be written.
    pub log_end: u64,
    /// Offset below which readers see records.
    pub high_watermark: u64,
    /// Bytes in all segments.
    pub size_bytes: u64,
    /// Segments, the active one included.
    pub segments: u32,
}

/// One partition.
#[derive(Debug)]
pub struct Partition {
    topic: Arc<str>,
    id: u32,
    /// The log, or why it could not be opened (the broker serves the other
    /// partitions, and answers this one's requests with the reason).
    log: std::result::Result<Arc<Log>, String>,
    /// The high watermark, published after appends.
    visible: watch::Sender<u64>,
    /// Wall-clock time of the last compaction pass (or of the open): a
    /// quiet compacted partition still gets a pass every
    /// `delete.retention.ms`, so its expired tombstones go.
    last_compaction_ms: AtomicI64,
}

impl Partition {
    /// Opens (or creates) the partition's log in `dir`. A failure to open is
    /// kept, not returned: the partition then answers with it.
    pub fn open(topic: Arc<str>, id: u32, dir: &Path, config: LogConfig) -> Self {
        let log = match Log::open(dir, config) {
            Ok(log) => {
                let r = log.recovery_report();
                tracing::info!(
                    topic = %topic,
                    partition = id,
                    clean = r.clean_shutdown,
                    segments = r.segments,
                    scanned = r.segments_scanned,
                    truncated_bytes = r.truncated_bytes,
                    truncation_reason = r.truncation_reason.as_deref().unwrap_or(""),
                    indexes_rebuilt = r.indexes_rebuilt.len(),
                    start = r.log_start.0,
                    end = r.log_end.0,
                    "partition recovered"
                );
                let clean = if r.clean_shutdown { "true" } else { "false" };
                metrics::counter!("strata_recovery_partitions_total", "clean" => clean)
                    .increment(1);
                metrics::counter!("strata_recovery_segments_scanned_total")
                    .increment(r.segments_scanned as u64);
                metrics::counter!("strata_recovery_truncated_bytes_total")
                    .increment(r.truncated_bytes);
                metrics::counter!("strata_recovery_indexes_rebuilt_total")
                    .increment(r.indexes_rebuilt.len() as u64);
                Ok(Arc::new(log))
            }
            Err(e) => {
                metrics::counter!("strata_recovery_failed_partitions_total").increment(1);
                tracing::error!(topic = %topic, partition = id, error = %e, "partition cannot be opened; serving the others");
                Err(e.to_string())
            }
        };
        let hwm = log.as_ref().map_or(0, |l| l.high_watermark().0);
        Self {
            topic,
            id,
            log,
            visible: watch::Sender::new(hwm),
            last_compaction_ms: AtomicI64::new(SystemClock.now_ms()),
        }
    }

    /// A partition that cannot be served, and why.
    pub fn failed(topic: Arc<str>, id: u32, reason: String) -> Self {
        tracing::error!(topic = %topic, partition = id, %reason, "partition unavailable; serving the others");
        Self {
            topic,
            id,
            log: Err(reason),
            visible: watch::Sender::new(0),
            last_compaction_ms: AtomicI64::new(SystemClock.now_ms()),
        }
    }

    /// The partition's number.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The log, or the error that it could not be opened.
    fn log(&self) -> Result<&Arc<Log>> {
        self.log
            .as_ref()
            .map_err(|reason| BrokerError::PartitionFailed {
                topic: self.topic.to_string(),
                partition: self.id,
                reason: reason.clone(),
            })
    }

    fn storage(&self, source: StorageError) -> BrokerError {
        if let StorageError::BatchTooLarge { size, limit } = source {
            // Operators know this limit by its topic key.
            return BrokerError::InvalidArgument(format!(
                "{}/{}: record batch of {size} bytes exceeds max.message.bytes ({limit} bytes)",
                self.topic, self.id
            ));
        }
        BrokerError::Storage {
            topic: self.topic.to_string(),
            partition: self.id,
            source,
        }
    }

    fn publish(&self, log: &Log) {
        let hwm = log.high_watermark().0;
        self.visible.send_if_modified(|v| {
            let newer = hwm > *v;
            if newer {
                *v = hwm;
            }
            newer
        });
    }

    /// Appends one batch: [`Partition::write_blocking`] then
    /// [`Partition::complete_blocking`], on a blocking thread. `slots`
    /// bounds the appends in flight (`appends_in_flight_max`); a request
    /// waits for a slot. With `Acks::None` it returns `None` at once,
    /// before the batch is written.
    pub async fn append(
        self: &Arc<Self>,
        batch: Bytes,
        acks: Acks,
        slots: &Arc<Semaphore>,
    ) -> Result<Option<AppendInfo>> {
        self.log()?;
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BrokerError::ShuttingDown)?;
        let this = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            this.write_blocking(&batch)
                .and_then(|written| this.complete_blocking(written, acks))
        });
        if acks == Acks::None {
            let (topic, id) = (self.topic.clone(), self.id);
            tokio::spawn(async move {
                if let Ok(Err(e)) = task.await {
                    tracing::warn!(topic = %topic, partition = id, error = %e, "append with acks=none failed");
                }
            });
            return Ok(None);
        }
        task.await
            .map_err(|e| BrokerError::Internal(format!("append task: {e}")))?
            .map(Some)
    }

    /// Writes one batch to the log without waiting for an fsync (call on a
    /// blocking thread). Batches one thread writes reach the log in the
    /// order of its calls.
    pub fn write_blocking(&self, batch: &[u8]) -> Result<Written> {
        let log = self.log()?;
        let result = log.write(batch);
        self.publish(log);
        result.map_err(|e| self.storage(e))
    }

    /// Makes a written batch as durable as the log's durability and `acks`
    /// ask (blocking: it may wait for a group-commit fsync).
    pub fn complete_blocking(&self, written: Written, acks: Acks) -> Result<AppendInfo> {
        let log = self.log()?;
        let result = log.complete(written).and_then(|info| {
            if acks == Acks::Durable && !info.durable {
                log.sync_to(info.last_offset.0 + 1)?;
            }
            Ok(info)
        });
        self.publish(log);
        result.map_err(|e| self.storage(e))
    }

    /// Reads whole batches from `offset`, up to `max_bytes` (at least one).
    pub async fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        let log = self.log()?.clone();
        let r = tokio::task::spawn_blocking(move || log.read(Offset(offset), max_bytes))
            .await
            .map_err(|e| BrokerError::Internal(format!("read task: {e}")))?;
        r.map_err(|e| self.storage(e))
    }

    /// [`Partition::read`] on the caller's thread.
    pub fn read_blocking(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        let log = self.log()?;
        log.read(Offset(offset), max_bytes)
            .map_err(|e| self.storage(e))
    }

    /// The first offset still in the log.
    pub fn log_start(&self) -> Result<u64> {
        Ok(self.log()?.log_start().0)
    }

    /// First offset with a record timestamp at or after `timestamp_ms`.
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        let log = self.log()?.clone();
        let r = tokio::task::spawn_blocking(move || log.offset_for_timestamp(timestamp_ms))
            .await
            .map_err(|e| BrokerError::Internal(format!("lookup task: {e}")))?;
        r.map(|o| o.map(|o| o.0)).map_err(|e| self.storage(e))
    }

    /// Fails with the partition's reason if it could not be opened.
    pub fn check_open(&self) -> Result<()> {
        self.log().map(drop)
    }

    /// Makes the log refuse every write from now on (its topic is being
    /// deleted while threads may still hold it). A failed partition has
    /// nothing to retire.
    pub fn retire(&self) {
        if let Ok(log) = self.log() {
            log.retire();
        }
    }

    /// The offset below which consumers see records.
    pub fn high_watermark(&self) -> Result<u64> {
        Ok(self.log()?.high_watermark().0)
    }

    /// [`Partition::offset_for_timestamp`] on the caller's thread.
    pub fn offset_for_timestamp_blocking(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        let log = self.log()?;
        log.offset_for_timestamp(timestamp_ms)
            .map(|o| o.map(|o| o.0))
            .map_err(|e| self.storage(e))
    }

    /// Retries seals that met a full disk, then applies retention (`delete`
    /// topics) and compaction (`compact` topics) as `config` asks, at
    /// `now_ms`. Failures are logged. Blocking.
    pub fn clean(
        &self,
        c: &super::TopicConfig,
        map_bytes_max: u64,
        now_ms: i64,
    ) -> super::broker::CleanupDone {
        let mut done = super::broker::CleanupDone::default();
        let Ok(log) = self.log() else {
            return done; // An unavailable partition has nothing to clean.
        };
        // Seals that met a full disk go first: retention may just have
        // freed the space they need.
        done.seals_waiting_for_space += log.retry_seals();
        if c.cleanup.delete && (c.retention_ms >= 0 || c.retention_bytes >= 0) {
            match log.apply_retention(c.retention_ms, c.retention_bytes, now_ms) {
                Ok(n) => done.segments_deleted += n,
                Err(e) => {
                    tracing::error!(topic = %self.topic, partition = self.id, error = %e, "retention failed")
                }
            }
        }
        if c.cleanup.compact {
            match self.compact_if_due(c, map_bytes_max, now_ms) {
                Ok(Some(removed)) => {
                    done.partitions_compacted += 1;
                    done.records_removed += removed;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(topic = %self.topic, partition = self.id, error = %e, "compaction failed")
                }
            }
        }
        done
    }

    /// A receiver that changes whenever the high watermark advances.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.visible.subscribe()
    }

    /// Offsets and sizes.
    pub fn stats(&self) -> Result<PartitionStats> {
        let log = self.log()?;
        Ok(PartitionStats {
            log_start: log.log_start().0,
            log_end: log.log_end().0,
            high_watermark: log.high_watermark().0,
            size_bytes: log.size_bytes(),
            segments: log.segment_count() as u32,
        })
    }

    /// Compacts this partition if it is due (see
    /// [`crate::core::Broker::apply_cleanup`]): passes until the key map no
    /// longer fills, each bounded by `map_bytes_max`. Returns the records
    /// and tombstones removed, or `None` if no pass was due. Blocking.
    pub fn compact_if_due(
        &self,
        config: &super::TopicConfig,
        map_bytes_max: u64,
        now_ms: i64,
    ) -> Result<Option<u64>> {
        let log = self.log()?;
        let (dirty, total) = log.dirty_bytes().map_err(|e| self.storage(e))?;
        if total == 0 {
            return Ok(None);
        }
        let ratio = dirty as f64 / total as f64;
        let quiet_for = now_ms - self.last_compaction_ms.load(Ordering::Acquire);
        if ratio < config.min_cleanable_dirty_ratio && quiet_for < config.delete_retention_ms {
            return Ok(None);
        }
        let opts = crate::storage::CompactOptions {
            map_bytes_max: map_bytes_max as usize,
            delete_retention_ms: config.delete_retention_ms,
        };
        let started = std::time::Instant::now();
        let mut removed = 0;
        loop {
            let r = log.compact(&opts).map_err(|e| self.storage(e))?;
            removed += r.records_removed + r.tombstones_removed;
            if !r.more {
                break;
            }
        }
        self.last_compaction_ms.store(now_ms, Ordering::Release);
        metrics::counter!("strata_compaction_passes_total").increment(1);
        metrics::counter!("strata_compaction_records_removed_total").increment(removed);
        metrics::histogram!("strata_compaction_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(Some(removed))
    }

    /// Applies new settings to the log.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        if let Ok(log) = &self.log {
            log.set_config(config).map_err(|e| self.storage(e))?;
        }
        Ok(())
    }

    /// For interval durability: fsyncs if the interval has passed.
    pub fn flush_if_due(&self) -> Result<()> {
        if let Ok(log) = &self.log {
            log.flush_if_due().map_err(|e| self.storage(e))?;
        }
        Ok(())
    }

    /// Closes the log cleanly (clean-shutdown marker).
    pub fn close(&self) -> Result<()> {
        match &self.log {
            Ok(log) => log.close().map_err(|e| self.storage(e)),
            Err(_) => Ok(()),
        }
    }
}
