//! The storage engine's error type. Every variant names the file, directory
//! or limit involved, because these messages end up in gRPC statuses and in
//! operators' logs.

use std::io;
use std::path::PathBuf;

use strata_batch::CodecError;

/// An error from the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system call failed.
    #[error("I/O error during {op} on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The disk is full (ENOSPC). Writes are refused with this until there
    /// is room again; reads go on, and nothing written before is lost.
    #[error("disk full during {op} on {path}: no space left on the data directory's device")]
    DiskFull {
        /// The file or directory.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
    },
    /// A file of ours holds something that cannot be a torn tail: data we
    /// wrote and synced is not what we read back. The log refuses to open
    /// rather than drop it.
    #[error("corruption in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the damage.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// The producer's batch is malformed.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] CodecError),
    /// The batch is larger than `batch_bytes_max`.
    #[error("record batch of {size} bytes exceeds batch_bytes_max ({limit} bytes)")]
    BatchTooLarge {
        /// The batch's size.
        size: usize,
        /// The configured limit.
        limit: u32,
    },
    /// An fsync failed earlier (or a write whose effect on disk is
    /// unknown); the page cache may have dropped the data, so the log
    /// accepts no more writes until it is reopened (and recovered).
    #[error("log {dir} refuses writes until it is reopened, after: {cause}")]
    Poisoned {
        /// The log's directory.
        dir: PathBuf,
        /// What failed.
        cause: String,
    },
    /// An offset outside `[log_start, log_end]`.
    #[error("offset {offset} is out of range for {dir}: valid offsets are {start} to {end}")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: u64,
        /// The log start offset.
        start: u64,
        /// The log end offset (the next offset to be written).
        end: u64,
        /// The log's directory.
        dir: PathBuf,
    },
    /// Truncation must land between two batches.
    #[error("offset {offset} is not the start of a batch in {dir}")]
    NotBatchBoundary {
        /// The offset asked for.
        offset: u64,
        /// The log's directory.
        dir: PathBuf,
    },
    /// A batch from an older epoch of an idempotent producer.
    #[error("producer {producer_id} epoch {epoch} is fenced: the current epoch is {current}")]
    ProducerFenced {
        /// The producer id.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The epoch the log knows.
        current: i16,
    },
    /// A gap or reordering in an idempotent producer's sequence numbers.
    #[error("out-of-order sequence from producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: i64,
        /// The sequence the log expected.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
    },
    /// A record without a key, on a log that compaction keeps by key.
    #[error(
        "record {index} of the batch has no key; a compacted log (cleanup.policy=compact) needs a key on every record"
    )]
    KeyRequired {
        /// The record's index in its batch.
        index: usize,
    },
    /// A new idempotent producer, and the partition already remembers
    /// `limit` producers none of which has expired.
    #[error(
        "{dir} remembers {limit} idempotent producers (PRODUCERS_MAX), none idle long enough to forget; retry later"
    )]
    ProducersFull {
        /// The log's directory.
        dir: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// A setting is out of its allowed range.
    #[error("invalid log config: {0}")]
    Config(String),
    /// The log was closed.
    #[error("log {0} is closed")]
    Closed(PathBuf),
}

impl StorageError {
    /// The error of an I/O operation `op` on `path`: [`StorageError::DiskFull`]
    /// for ENOSPC, else [`StorageError::Io`].
    pub fn io(path: impl Into<PathBuf>, op: &'static str) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source: io::Error| {
            if source.kind() == io::ErrorKind::StorageFull {
                Self::DiskFull { path, op }
            } else {
                Self::Io { path, op, source }
            }
        }
    }

    /// Damage at byte `position` of `path`.
    pub fn corrupt(path: impl Into<PathBuf>, position: u64, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.into(),
            position,
            reason: reason.into(),
        }
    }
}

/// Shorthand for the engine's results.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
