//! Strata's wire formats.
//!
//! Both the broker and the client depend on this crate, and it depends on
//! neither. It holds the gRPC API's generated code ([`v1`]; [`partitions`]
//! converts its partition sets) and re-exports the record batch codec of
//! `strata-batch` ([`batch`], [`record`], ...), which is Apache Kafka's
//! RecordBatch v2 byte for byte, so that clients need one crate for both.
//! The codec lives apart so that the storage engine can use it without
//! tonic, prost or tokio.

pub mod partitions;

pub use strata_batch::{Attributes, Batch, BatchHeader, Compression, TimestampType};
pub use strata_batch::{BatchBuilder, BatchCursor, CodecError, Header, Record};
pub use strata_batch::{batch, compression, cursor, error, record, sequence, varint};

/// The gRPC API, package `strata.v1`, generated from
/// `proto/strata/v1/strata.proto`.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("strata.v1");
}

/// The encoded file descriptor set of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/strata_descriptor.bin"));
