//! The codec's error type: every way a batch can be malformed, each naming
//! the field or limit involved, so that a broker can hand the message to the
//! producer unchanged.

use crate::batch::Compression;

/// A batch or record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ends before a field that must be there.
    #[error("record batch truncated: {what} needs {needed} bytes but only {available} remain")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The magic byte is not 2; only RecordBatch v2 is supported.
    #[error(
        "unsupported record batch magic {0} (only magic 2, Kafka's RecordBatch v2, is supported)"
    )]
    BadMagic(i8),
    /// The batch length field does not describe a possible batch.
    #[error("invalid record batch length {length}: {reason}")]
    BadLength {
        /// The batchLength field as read.
        length: i64,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The stored CRC-32C does not match the bytes.
    #[error("record batch CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The CRC in the batch header.
        stored: u32,
        /// The CRC of the bytes as received.
        computed: u32,
    },
    /// The compressed records could not be decompressed: truncated,
    /// garbage, or framed in a way the codec does not read.
    #[error("record batch compressed with {codec:?} does not decompress: {reason}")]
    Decompress {
        /// The batch's codec.
        codec: Compression,
        /// What the decoder said.
        reason: String,
    },
    /// The records decompress to more than a named limit allows (a
    /// decompression bomb, or a limit set too low).
    #[error(
        "record batch compressed with {codec:?} decompresses to more than {limit_name} ({limit} bytes)"
    )]
    DecompressedTooLarge {
        /// The batch's codec.
        codec: Compression,
        /// The limit's name, as configured.
        limit_name: &'static str,
        /// The limit's value.
        limit: usize,
    },
    /// Compressing records failed (the encoder's own error).
    #[error("compressing records with {codec:?} failed: {reason}")]
    Compress {
        /// The codec.
        codec: Compression,
        /// What the encoder said.
        reason: String,
    },
    /// The attributes field holds a compression codec id Kafka does not define.
    #[error("record batch attributes name unknown compression codec id {0}")]
    UnknownCompression(u8),
    /// A varint ran past its maximum width.
    #[error("malformed varint in {what}: more than {max_bytes} bytes")]
    VarintOverflow {
        /// The field being read.
        what: &'static str,
        /// The widest legal encoding.
        max_bytes: usize,
    },
    /// A record field is inconsistent with the batch or with itself.
    #[error("malformed record {index} in batch: {reason}")]
    BadRecord {
        /// Position of the record in its batch (0-based).
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The header fields disagree with the records.
    #[error("record batch header inconsistent with its records: {0}")]
    Inconsistent(String),
    /// A value is larger than a named limit allows.
    #[error("{what} of {size} bytes exceeds {limit_name} ({limit} bytes)")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit's name, as configured.
        limit_name: &'static str,
        /// The limit's value.
        limit: usize,
    },
}
