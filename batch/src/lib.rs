//! Kafka's RecordBatch v2 (magic 2), byte for byte: the format Strata
//! stores and serves, so that batches written by a Kafka client are kept
//! and returned unchanged, and an independent implementation (the
//! `kafka-protocol` crate, in `strata-proto`'s tests) can check ours.
//!
//! A crate of its own so that the storage engine can depend on the codec
//! without the gRPC layer (tonic, prost, tokio) that `strata-proto` adds.
//!
//! - [`batch`]: batch headers, validation, and the fields the broker
//!   stamps (base offset, producer, log-append time).
//! - [`compression`]: the records section through gzip, snappy, lz4 and
//!   zstd, as Kafka's clients frame them, decompressed within a bound.
//! - [`cursor`]: the one walk over batches laid end to end.
//! - [`record`]: records inside a batch, and the builder.
//! - [`varint`]: zig-zag varints, as records use them.
//! - [`sequence`]: idempotent producers' sequence numbers (mod 2^31).
//! - [`error`]: what the codec refuses, and why.
//!
//! The codec never panics on input and never allocates more than the input
//! justifies: every length read from the wire is checked against the bytes
//! that are actually there before anything is reserved.

pub mod batch;
pub mod compression;
pub mod cursor;
pub mod error;
pub mod record;
pub mod sequence;
pub mod varint;

pub use batch::{Attributes, Batch, BatchHeader, Compression, TimestampType};
pub use cursor::BatchCursor;
pub use error::CodecError;
pub use record::{BatchBuilder, Header, Record};
