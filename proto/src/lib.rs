//! Strata's wire formats.
//!
//! This crate is the bottom layer of the workspace: both the broker and the
//! client depend on it, and it depends on neither. Today it holds the record
//! batch codec ([`batch`]), which is Apache Kafka's RecordBatch v2 (magic 2)
//! byte for byte, so that batches written by a Kafka client can be stored and
//! served unchanged, and so that an independent implementation (the
//! `kafka-protocol` crate, in our tests) can check ours. The gRPC API's
//! generated code is [`v1`]; [`partitions`] converts its partition sets.
//!
//! The codec never panics on input and never allocates more than the input
//! justifies: every length read from the wire is checked against the bytes
//! that are actually there before anything is reserved.

pub mod batch;
pub mod error;
pub mod partitions;
pub mod record;
pub mod sequence;
pub mod varint;

pub use batch::{Attributes, Batch, BatchHeader, Compression, TimestampType};
pub use error::CodecError;
pub use record::{BatchBuilder, Header, Record};

/// The gRPC API, package `strata.v1`, generated from
/// `proto/strata/v1/strata.proto`.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("strata.v1");
}

/// The encoded file descriptor set of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/strata_descriptor.bin"));
