//! Strata's storage engine: one partition's log on disk.
//!
//! A [`Log`] is a directory of segments named by their base offset. Each
//! segment is a `.log` file of Kafka v2 record batches, exactly as producers
//! sent them with the base offset stamped in, plus a sparse `.index`
//! (offset to file position) and `.timeindex` (timestamp to offset), both
//! memory-mapped once sealed. Small checkpoint files hold the recovery point, the log
//! start offset and the clean-shutdown marker. `docs/FORMAT.md` lays out
//! every file byte by byte.
//!
//! Module map:
//! - [`config`]: per-log settings and their limits, and the durability modes.
//! - [`error`]: the one error type of the engine.
//! - [`vfs`]: the one interface to the file system, and the real one.
//! - [`sim`]: a simulated disk that loses power, for tests.
//! - [`envelope`]: the one codec of every small file (magic, version,
//!   body, CRC).
//! - [`checkpoint`]: the small atomic files (and directory fsync).
//! - [`index`]: the memory-mapped offset and time indexes.
//! - [`segment`]: one `.log` file and its indexes; appends, reads, scans.
//! - [`open_segments`]: the broker-wide bound on open sealed segments.
//! - [`decompression`]: the broker-wide bound on memory that compressed
//!   batches take while an append validates them.
//! - [`log`]: the segment list, appends with group commit, reads, recovery.
//! - [`producers`]: idempotent producers' sequence state, and its snapshot.
//! - [`log::compact`]: compaction: keep the newest record per key, swap
//!   rewritten segments in atomically.
//!
//! **Invariant:** this crate uses only `std` threads and locks: no tokio, no
//! gRPC, no prost. Its manifest holds that (`tests/it/dependencies.rs` checks
//! the resolved tree); the broker calls it from blocking tasks.

pub mod checkpoint;
pub mod config;
pub mod decompression;
pub mod envelope;
pub mod error;
pub mod index;
pub mod log;
pub mod open_segments;
pub mod producers;
pub mod segment;
pub mod sim;
pub mod vfs;

pub use config::{Clock, Durability, LogConfig, SystemClock};
pub use error::StorageError;
pub use log::compact::{CompactOptions, CompactReport};
pub use log::{AppendInfo, Log, ReadResult, RecoveryReport, Written};
pub use sim::SimFs;
pub use vfs::{Fs, Vfs};

/// A record offset: its position in the partition, counting records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A byte position inside one segment's `.log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FilePos(pub u64);

impl std::fmt::Display for FilePos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The default `batch_decompressed_bytes_max` (64 MiB).
pub fn batch_decompressed_bytes_max_default() -> usize {
    strata_batch::batch::BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT
}
