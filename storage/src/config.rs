//! Per-log settings, their limits, and the durability modes.
//!
//! Names carry their unit last (`segment_bytes_max`, `segment_ms_max`), as
//! everywhere in Strata, so a reader never guesses whether a number is bytes
//! or records, milliseconds or seconds.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use strata_batch::TimestampType;

use super::decompression::{DECOMPRESSION_BYTES_MAX_DEFAULT, DecompressionBudget};
use super::error::{Result, StorageError};
use super::open_segments::{OpenSegments, SEALED_SEGMENTS_OPEN_MAX};
use super::vfs::{self, Fs};

/// When appended data is forced to disk. Every mode fsyncs when a segment
/// is sealed and when the log is closed cleanly; they differ in what an
/// acknowledged append promises if the machine loses power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// An append returns once its bytes are in the page cache. Survives a
    /// crash of the broker process; a power loss or kernel crash loses what
    /// was appended since the last fsync (at worst, the active segment).
    PageCache,
    /// An append returns once in the page cache; the log fsyncs when
    /// `interval_ms` has passed or `interval_records` records have been
    /// appended since the last fsync, whichever comes first. A power loss
    /// loses at most that window. The time trigger fires on the next append
    /// or on [`crate::Log::flush_if_due`], which the broker calls on
    /// a timer.
    Interval {
        /// Milliseconds between fsyncs, if a time trigger is wanted.
        interval_ms: Option<u64>,
        /// Records between fsyncs, if a count trigger is wanted.
        interval_records: Option<u64>,
    },
    /// An append returns only after an fsync covering it (the default).
    /// Concurrent appends share one fsync (group commit). Readers see only
    /// fsynced records, so no consumer can act on a record a power loss
    /// could take back. Nothing acknowledged is ever lost.
    Fsync,
}

/// Where the current time comes from: the system clock in production, a
/// controllable one in tests of time-based behaviour.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// Hard ceiling on `segment_bytes_max`: index entries store positions as u32.
pub const SEGMENT_BYTES_CEILING: u64 = u32::MAX as u64;
/// Hard ceiling on `batch_bytes_max`.
pub const BATCH_BYTES_CEILING: u32 = 1 << 30;
/// Hard ceiling on `index_bytes_max` (and the smallest useful value below).
pub const INDEX_BYTES_CEILING: u32 = 1 << 30;
/// The smallest `index_bytes_max`: a header and a few entries.
pub const INDEX_BYTES_FLOOR: u32 = 1024;

/// Settings of one partition log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A new segment starts when the active one would grow past this many
    /// bytes (a soft limit: a batch is never split). Default 1 GiB.
    pub segment_bytes_max: u64,
    /// A new segment starts when the active one received its first batch
    /// this long ago. The age counts from the broker's clock at that first
    /// append, and restarts from the reopening after a restart. Default 7 days.
    pub segment_ms_max: u64,
    /// Log bytes between two sparse index entries. Default 4 KiB, as Kafka.
    pub index_interval_bytes: u32,
    /// Size of each preallocated index file; a segment rolls when either
    /// index is full. Default 10 MiB, as Kafka.
    pub index_bytes_max: u32,
    /// The largest batch an append accepts. Default 16 MiB.
    pub batch_bytes_max: u32,
    /// When appends reach the disk.
    pub durability: Durability,
    /// Whether records keep the producer's timestamps or get the broker's.
    pub timestamp_type: TimestampType,
    /// The clock for log-append time and segment age.
    pub clock: Arc<dyn Clock>,
    /// The file system the log lives on: the real one, or a simulated
    /// disk in tests.
    pub fs: Fs,
    /// Seal rolled segments on a background thread (the default), or in
    /// the roll itself: deterministic, for simulation tests that replay a
    /// seed operation by operation.
    pub seal_in_background: bool,
    /// Every record must have a key (the log is compacted by key): an
    /// append with a keyless record is refused.
    pub keys_required: bool,
    /// The registry that bounds open sealed segments; the broker shares one
    /// among all its logs (`sealed_segments_open_max`).
    pub open_segments: Arc<OpenSegments>,
    /// The most a compressed batch's records may decompress to; past it the
    /// append is refused, naming this limit. Default 64 MiB.
    pub batch_decompressed_bytes_max: u32,
    /// The budget compressed batches reserve `batch_decompressed_bytes_max`
    /// of while they are validated; the broker shares one among all its
    /// logs (`decompression_bytes_max`).
    pub decompression: Arc<DecompressionBudget>,
    /// The codec batches are stored with: `None` keeps the producer's
    /// (Kafka's `compression.type=producer`); a codec recompresses every
    /// batch that arrives with another one.
    pub compression: Option<strata_batch::Compression>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes_max: 1 << 30,
            segment_ms_max: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            index_bytes_max: 10 << 20,
            batch_bytes_max: 16 << 20,
            durability: Durability::Fsync,
            timestamp_type: TimestampType::CreateTime,
            clock: Arc::new(SystemClock),
            fs: vfs::real(),
            seal_in_background: true,
            keys_required: false,
            open_segments: OpenSegments::new(SEALED_SEGMENTS_OPEN_MAX),
            batch_decompressed_bytes_max: strata_batch::batch::BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT
                as u32,
            decompression: DecompressionBudget::new(DECOMPRESSION_BYTES_MAX_DEFAULT),
            compression: None,
        }
    }
}

impl LogConfig {
    /// Checks every setting against its bounds, naming the setting that is off.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(StorageError::Config(m));
        if self.segment_bytes_max < 1024 || self.segment_bytes_max > SEGMENT_BYTES_CEILING {
            return err(format!(
                "segment_bytes_max {} must be between 1024 and {SEGMENT_BYTES_CEILING}",
                self.segment_bytes_max
            ));
        }
        // A batch larger than segment_bytes_max is allowed: it goes alone
        // into a fresh segment, as in Kafka. Positions stay below u32::MAX
        // because both limits are.
        if self.batch_bytes_max > BATCH_BYTES_CEILING {
            return err(format!(
                "batch_bytes_max {} must not exceed {BATCH_BYTES_CEILING}",
                self.batch_bytes_max
            ));
        }
        if (self.batch_bytes_max as usize) < strata_batch::batch::BATCH_HEADER_LEN {
            return err(format!(
                "batch_bytes_max {} is smaller than a batch header",
                self.batch_bytes_max
            ));
        }
        if self.index_bytes_max < INDEX_BYTES_FLOOR || self.index_bytes_max > INDEX_BYTES_CEILING {
            return err(format!(
                "index_bytes_max {} must be between {INDEX_BYTES_FLOOR} and {INDEX_BYTES_CEILING}",
                self.index_bytes_max
            ));
        }
        if self.batch_decompressed_bytes_max == 0
            || self.batch_decompressed_bytes_max as usize > self.decompression.bytes_max()
        {
            return err(format!(
                "batch_decompressed_bytes_max {} must be between 1 and decompression_bytes_max ({})",
                self.batch_decompressed_bytes_max,
                self.decompression.bytes_max()
            ));
        }
        if self.index_interval_bytes == 0 {
            return err("index_interval_bytes must be at least 1".into());
        }
        if self.segment_ms_max == 0 {
            return err("segment_ms_max must be at least 1".into());
        }
        if let Durability::Interval {
            interval_ms,
            interval_records,
        } = self.durability
        {
            if interval_ms.is_none() && interval_records.is_none() {
                return err("durability interval needs interval_ms or interval_records".into());
            }
            if interval_ms == Some(0) || interval_records == Some(0) {
                return err(
                    "durability interval_ms and interval_records must be at least 1".into(),
                );
            }
        }
        Ok(())
    }
}
