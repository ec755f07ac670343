//! Kafka's RecordBatch v2, the unit of storage, transfer and checksum.
//!
//! Layout (all integers big-endian; see `docs/FORMAT.md` for the full table):
//!
//! ```text
//! off len field
//!   0   8 baseOffset            i64   stamped by the broker, not covered by the CRC
//!   8   4 batchLength           i32   bytes after this field
//!  12   4 partitionLeaderEpoch  i32   not covered by the CRC
//!  16   1 magic                 i8    = 2
//!  17   4 crc                   u32   CRC-32C of bytes 21..end
//!  21   2 attributes            i16
//!  23   4 lastOffsetDelta       i32
//!  27   8 baseTimestamp         i64
//!  35   8 maxTimestamp          i64
//!  43   8 producerId            i64
//!  51   2 producerEpoch         i16
//!  53   4 baseSequence          i32
//!  57   4 recordCount           i32
//!  61   … records
//! ```
//!
//! Because the CRC starts at `attributes`, a broker can stamp `baseOffset`
//! into the producer's bytes without recomputing it; only log-append-time
//! topics, which overwrite `maxTimestamp`, pay for a new CRC.

use std::borrow::Cow;

use bytes::Bytes;

use crate::error::CodecError;
use crate::record::{Record, RecordIter};

/// The only batch magic we read or write.
pub const MAGIC_V2: i8 = 2;
/// Bytes before `batchLength` ends: `baseOffset` and `batchLength` (Kafka's LOG_OVERHEAD).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed batch header, up to the first record.
pub const BATCH_HEADER_LEN: usize = 61;
/// Field positions inside a batch.
pub mod field {
    /// `baseOffset` i64.
    pub const BASE_OFFSET: usize = 0;
    /// `batchLength` i32.
    pub const BATCH_LENGTH: usize = 8;
    /// `partitionLeaderEpoch` i32.
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    /// `magic` i8.
    pub const MAGIC: usize = 16;
    /// `crc` u32.
    pub const CRC: usize = 17;
    /// `attributes` i16; the CRC covers from here to the end.
    pub const ATTRIBUTES: usize = 21;
    /// `lastOffsetDelta` i32.
    pub const LAST_OFFSET_DELTA: usize = 23;
    /// `baseTimestamp` i64.
    pub const BASE_TIMESTAMP: usize = 27;
    /// `maxTimestamp` i64.
    pub const MAX_TIMESTAMP: usize = 35;
    /// `producerId` i64.
    pub const PRODUCER_ID: usize = 43;
    /// `producerEpoch` i16.
    pub const PRODUCER_EPOCH: usize = 51;
    /// `baseSequence` i32.
    pub const BASE_SEQUENCE: usize = 53;
    /// `recordCount` i32.
    pub const RECORD_COUNT: usize = 57;
}
/// The smallest possible encoded record: length, attributes, timestamp
/// delta, offset delta, key length, value length and header count, one
/// byte each.
pub const RECORD_MIN_BYTES: usize = 7;

/// The compression codec in bits 0-2 of the attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed records.
    None,
    /// gzip.
    Gzip,
    /// Snappy (xerial framing).
    Snappy,
    /// LZ4 frame.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec's id in the attributes (bits 0-2).
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec's name as Kafka's `compression.type` spells it (`none`
    /// for no codec; the topic key's `uncompressed` is parsed elsewhere).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The codec a name means (as [`Compression::name`] spells it).
    pub fn parse(name: &str) -> Option<Compression> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What a batch's timestamps mean (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer when it created the record.
    CreateTime,
    /// Set by the broker when it appended the batch; every record of the
    /// batch then has the batch's `maxTimestamp`.
    LogAppendTime,
}

/// The batch attributes field (i16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attributes(pub i16);

impl Attributes {
    const COMPRESSION_MASK: i16 = 0x07;
    const TIMESTAMP_TYPE: i16 = 0x08;
    const TRANSACTIONAL: i16 = 0x10;
    const CONTROL: i16 = 0x20;

    /// The compression codec, or an error for an id Kafka does not define.
    pub fn compression(self) -> Result<Compression, CodecError> {
        match (self.0 & Self::COMPRESSION_MASK) as u8 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(CodecError::UnknownCompression(other)),
        }
    }

    /// These attributes with the compression codec set to `c`.
    pub fn with_compression(self, c: Compression) -> Self {
        Self((self.0 & !Self::COMPRESSION_MASK) | i16::from(c.id()))
    }

    /// The timestamp type.
    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & Self::TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// These attributes with the timestamp type set to `t`.
    pub fn with_timestamp_type(self, t: TimestampType) -> Self {
        match t {
            TimestampType::CreateTime => Self(self.0 & !Self::TIMESTAMP_TYPE),
            TimestampType::LogAppendTime => Self(self.0 | Self::TIMESTAMP_TYPE),
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }

    /// Whether the batch is a control batch (transaction markers).
    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }
}

/// The fixed header of a v2 batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch; -1 when unknown.
    pub partition_leader_epoch: i32,
    /// Always 2 once parsed.
    pub magic: i8,
    /// CRC-32C of bytes 21..end.
    pub crc: u32,
    /// Codec, timestamp type and flags.
    pub attributes: Attributes,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp that record deltas are relative to.
    pub base_timestamp: i64,
    /// Largest record timestamp (or the log append time).
    pub max_timestamp: i64,
    /// Idempotent producer id; -1 for none.
    pub producer_id: i64,
    /// Producer epoch; -1 for none.
    pub producer_epoch: i16,
    /// Sequence number of the first record; -1 for none.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8-byte slice"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2-byte slice"))
}

impl BatchHeader {
    /// Parses the fixed header at the start of `buf`. Checks only what the
    /// header itself can tell: there are 61 bytes, magic is 2, and
    /// `batchLength` is large enough for a header. It does not require the
    /// whole batch to be present, so it can read a header from a file.
    pub fn parse(buf: &[u8]) -> Result<Self, CodecError> {
        if buf.len() < BATCH_HEADER_LEN {
            // Report the magic first when it is there: a v0/v1 message set
            // is a clearer error than a truncation.
            if buf.len() > field::MAGIC && buf[field::MAGIC] as i8 != MAGIC_V2 {
                return Err(CodecError::BadMagic(buf[field::MAGIC] as i8));
            }
            return Err(CodecError::Truncated {
                what: "record batch header",
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        }
        let magic = buf[field::MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(CodecError::BadMagic(magic));
        }
        let batch_length = be_i32(buf, field::BATCH_LENGTH);
        if (batch_length as i64) < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(CodecError::BadLength {
                length: batch_length as i64,
                reason: "smaller than the 49 bytes of header it must hold",
            });
        }
        Ok(Self {
            base_offset: be_i64(buf, field::BASE_OFFSET),
            batch_length,
            partition_leader_epoch: be_i32(buf, field::PARTITION_LEADER_EPOCH),
            magic,
            crc: be_i32(buf, field::CRC) as u32,
            attributes: Attributes(be_i16(buf, field::ATTRIBUTES)),
            last_offset_delta: be_i32(buf, field::LAST_OFFSET_DELTA),
            base_timestamp: be_i64(buf, field::BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, field::MAX_TIMESTAMP),
            producer_id: be_i64(buf, field::PRODUCER_ID),
            producer_epoch: be_i16(buf, field::PRODUCER_EPOCH),
            base_sequence: be_i32(buf, field::BASE_SEQUENCE),
            record_count: be_i32(buf, field::RECORD_COUNT),
        })
    }

    /// Total bytes of the batch, `baseOffset` included.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the last record. Saturating: a client may send any base
    /// offset (the broker replaces it), and this runs before validation.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Sequence number of the last record (idempotent producers), wrapping
    /// at `i32::MAX` (see [`crate::sequence`]).
    pub fn last_sequence(&self) -> i32 {
        crate::sequence::add(self.base_sequence, i64::from(self.last_offset_delta))
    }
}

/// Computes the CRC-32C that belongs in a batch (bytes 21..end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[field::ATTRIBUTES..])
}

/// Summary of a batch that passed [`validate`]: what the log needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidBatch {
    /// The parsed header.
    pub header: BatchHeader,
    /// Number of records (`last_offset_delta + 1`, unless compacted).
    pub record_count: u32,
    /// The index of the first record without a key (compacted topics
    /// refuse them); `None` when every record has one, or when the records
    /// were not looked at (a stored compressed batch).
    pub first_keyless: Option<usize>,
}

/// The name of the bound on a batch's decompressed records, in errors.
pub const DECOMPRESSED_LIMIT_NAME: &str = "batch_decompressed_bytes_max";

/// The default bound on a batch's decompressed records, for readers that
/// are given none (the broker's `batch_decompressed_bytes_max` default).
pub const BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// A batch's records section, decompressed if it is compressed, within
/// `max_bytes`.
pub fn records_section<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    max_bytes: usize,
) -> Result<Cow<'a, [u8]>, CodecError> {
    let body = &batch[BATCH_HEADER_LEN..header.total_len().min(batch.len())];
    match header.attributes.compression()? {
        Compression::None => Ok(Cow::Borrowed(body)),
        codec => crate::compression::decompress(codec, body, max_bytes, DECOMPRESSED_LIMIT_NAME)
            .map(Cow::Owned),
    }
}

/// One record as [`filter`] shows it to its callback.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Absolute offset.
    pub offset: i64,
    /// Create time or log-append time, per the batch's timestamp type.
    pub timestamp: i64,
    /// The key; `None` for a keyless record.
    pub key: Option<&'a [u8]>,
    /// Whether the value is null (a tombstone).
    pub tombstone: bool,
}

/// What [`filter`] made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Every record was kept: use the batch as it is.
    Unchanged,
    /// No record was kept.
    Empty,
    /// Some records were kept, in this new batch.
    Rewritten(Bytes),
}

/// The same batch with its records compressed by `codec` instead: every
/// header field is kept (producer, sequence, timestamps, attributes but
/// the codec), the records section is decompressed (into at most
/// `decompressed_bytes_max`) and compressed again, and the length and CRC
/// are recomputed. This is what a topic with a `compression.type` of its
/// own does to a batch that arrives with another codec. `batch` must have
/// passed [`validate`].
pub fn recompress(
    batch: &[u8],
    codec: Compression,
    decompressed_bytes_max: usize,
) -> Result<Vec<u8>, CodecError> {
    let header = BatchHeader::parse(batch)?;
    let records = records_section(batch, &header, decompressed_bytes_max)?;
    let body = match codec {
        Compression::None => records,
        c => Cow::Owned(crate::compression::compress(c, &records)?),
    };
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + body.len());
    out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
    out.extend_from_slice(&body);
    finish_header(&mut out, codec);
    Ok(out)
}

/// Makes the header of `batch` (a header followed by a new records
/// section, compressed with `codec`) agree with it: `batchLength`, the
/// codec bits of the attributes, and the CRC. Every other field is left as
/// it is. The one place a rewritten batch gets its framing.
pub fn finish_header(batch: &mut [u8], codec: Compression) {
    let len = (batch.len() - LOG_OVERHEAD) as i32;
    batch[field::BATCH_LENGTH..field::BATCH_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
    let at = field::ATTRIBUTES;
    let attributes = Attributes(i16::from_be_bytes([batch[at], batch[at + 1]]));
    batch[at..at + 2].copy_from_slice(&attributes.with_compression(codec).0.to_be_bytes());
    let crc = compute_crc(batch);
    batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Keeps the records of one stored batch for which `keep` says yes, as
/// compaction does: the kept records' bytes are copied unchanged (their
/// offset and timestamp deltas stay valid, because the header keeps its
/// base offset, base timestamp and `lastOffsetDelta`); the header gets the
/// new record count, maximum timestamp (create-time batches), length and
/// CRC. Producer id, epoch and base sequence are kept. A compressed batch
/// is decompressed (into at most `decompressed_bytes_max`) and the kept
/// records compressed again with its codec. `batch` must have passed
/// [`validate_stored`].
pub fn filter(
    batch: &[u8],
    decompressed_bytes_max: usize,
    mut keep: impl FnMut(&RecordRef<'_>) -> bool,
) -> Result<Filtered, CodecError> {
    let mut out: Vec<u8> = Vec::new();
    let mut kept = 0i32;
    let mut max_delta = i64::MIN;
    let header = walk_records(
        batch,
        decompressed_bytes_max,
        |r, bytes, timestamp_delta| {
            if keep(r) {
                if out.is_empty() {
                    out.reserve(batch.len());
                    out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
                }
                out.extend_from_slice(bytes);
                kept += 1;
                max_delta = max_delta.max(timestamp_delta);
            }
        },
    )?;
    let log_append = header.attributes.timestamp_type() == TimestampType::LogAppendTime;
    if kept == header.record_count {
        return Ok(Filtered::Unchanged);
    }
    if kept == 0 {
        return Ok(Filtered::Empty);
    }
    let codec = header.attributes.compression()?;
    if codec != Compression::None {
        // The kept records, compressed again with the batch's codec.
        let body = crate::compression::compress(codec, &out[BATCH_HEADER_LEN..])?;
        out.truncate(BATCH_HEADER_LEN);
        out.extend_from_slice(&body);
    }
    out[field::RECORD_COUNT..field::RECORD_COUNT + 4].copy_from_slice(&kept.to_be_bytes());
    if !log_append {
        let max_ts = header.base_timestamp.wrapping_add(max_delta);
        out[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8].copy_from_slice(&max_ts.to_be_bytes());
    }
    finish_header(&mut out, codec);
    Ok(Filtered::Rewritten(Bytes::from(out)))
}

/// Calls `f` with every record of one stored batch, in order, without
/// copying anything (a compressed batch is decompressed first, into at
/// most `decompressed_bytes_max`). `batch` must have passed
/// [`validate_stored`].
pub fn visit(
    batch: &[u8],
    decompressed_bytes_max: usize,
    mut f: impl FnMut(&RecordRef<'_>),
) -> Result<(), CodecError> {
    walk_records(batch, decompressed_bytes_max, |r, _, _| f(r)).map(drop)
}

/// The one walk behind [`filter`] and [`visit`]: calls `f` with each record
/// of a stored batch as a [`RecordRef`], its bytes in the batch and its
/// timestamp delta, and returns the batch's header.
fn walk_records(
    batch: &[u8],
    decompressed_bytes_max: usize,
    mut f: impl FnMut(&RecordRef<'_>, &[u8], i64),
) -> Result<BatchHeader, CodecError> {
    let header = BatchHeader::parse(batch)?;
    let body = records_section(batch, &header, decompressed_bytes_max)?;
    let body = &body[..];
    let log_append = header.attributes.timestamp_type() == TimestampType::LogAppendTime;
    let mut pos = 0;
    for index in 0..header.record_count.max(0) as usize {
        let start = pos;
        let raw = crate::record::skim_record(body, &mut pos, index)?;
        let r = RecordRef {
            offset: header.base_offset + i64::from(raw.offset_delta),
            timestamp: if log_append {
                header.max_timestamp
            } else {
                header.base_timestamp.wrapping_add(raw.timestamp_delta)
            },
            key: raw.key.map(|k| &body[k]),
            tombstone: raw.value.is_none(),
        };
        f(&r, &body[start..pos], raw.timestamp_delta);
    }
    Ok(header)
}

/// Fully validates one complete batch: framing, CRC, and every record's
/// structure (lengths, offset deltas 0..n, timestamps within the header's
/// maximum). An uncompressed batch is checked in place; a compressed one
/// is decompressed first, into at most `decompressed_bytes_max` (past it:
/// [`CodecError::DecompressedTooLarge`]). `batch` must be exactly one
/// batch.
///
/// This is what a broker runs on a producer's bytes before appending them.
pub fn validate(batch: &[u8], decompressed_bytes_max: usize) -> Result<ValidBatch, CodecError> {
    validate_with(batch, true, decompressed_bytes_max)
}

/// Like [`validate`], but for batches a broker has stored and may have
/// compacted: the records' offset deltas must increase and stay within
/// `lastOffsetDelta`, and need not be contiguous (compaction removes
/// records and keeps the others' offsets, as Kafka's cleaner does). This is
/// what recovery runs on stored batches. A compressed batch is checked by
/// its header and CRC only (the CRC covers the compressed bytes): it was
/// checked whole when it was produced, and recovery does not decompress.
pub fn validate_stored(batch: &[u8]) -> Result<ValidBatch, CodecError> {
    validate_with(batch, false, 0)
}

fn validate_with(
    batch: &[u8],
    contiguous: bool,
    decompressed_bytes_max: usize,
) -> Result<ValidBatch, CodecError> {
    let header = validate_framing(batch)?;
    let compression = header.attributes.compression()?;
    if header.record_count < 1 {
        return Err(CodecError::Inconsistent(format!(
            "recordCount is {}, a batch must hold at least one record",
            header.record_count
        )));
    }
    if contiguous && header.last_offset_delta != header.record_count - 1 {
        return Err(CodecError::Inconsistent(format!(
            "lastOffsetDelta {} does not match recordCount {} (expected recordCount - 1)",
            header.last_offset_delta, header.record_count
        )));
    }
    if header.last_offset_delta < header.record_count - 1 {
        return Err(CodecError::Inconsistent(format!(
            "lastOffsetDelta {} is too small for recordCount {}",
            header.last_offset_delta, header.record_count
        )));
    }
    if compression != Compression::None && !contiguous {
        return Ok(ValidBatch {
            header,
            record_count: header.record_count as u32,
            first_keyless: None,
        });
    }
    let body = records_section(batch, &header, decompressed_bytes_max)?;
    let body = &body[..];
    if (header.record_count as usize) > body.len() / RECORD_MIN_BYTES {
        return Err(CodecError::Inconsistent(format!(
            "recordCount {} cannot fit in {} bytes of records",
            header.record_count,
            body.len()
        )));
    }
    let mut pos = 0;
    let mut max_delta = i64::MIN;
    let mut previous = -1i32;
    let mut first_keyless = None;
    for index in 0..header.record_count as usize {
        let rec = crate::record::skim_record(body, &mut pos, index)?;
        if rec.key.is_none() && first_keyless.is_none() {
            first_keyless = Some(index);
        }
        let expected = contiguous.then_some(index as i32);
        let in_order = rec.offset_delta > previous && rec.offset_delta <= header.last_offset_delta;
        if expected.is_some_and(|e| e != rec.offset_delta) || !in_order {
            return Err(CodecError::BadRecord {
                index,
                reason: match expected {
                    Some(e) => format!("offset delta {} where {e} was expected", rec.offset_delta),
                    None => format!(
                        "offset delta {} after {previous} (must increase, up to lastOffsetDelta {})",
                        rec.offset_delta, header.last_offset_delta
                    ),
                },
            });
        }
        previous = rec.offset_delta;
        max_delta = max_delta.max(rec.timestamp_delta);
    }
    if pos != body.len() {
        return Err(CodecError::Inconsistent(format!(
            "{} bytes follow the last of {} records",
            body.len() - pos,
            header.record_count
        )));
    }
    if header.attributes.timestamp_type() == TimestampType::CreateTime {
        let max_ts = header
            .base_timestamp
            .checked_add(max_delta)
            .ok_or_else(|| {
                CodecError::Inconsistent("baseTimestamp plus a timestamp delta overflows".into())
            })?;
        if max_ts != header.max_timestamp {
            return Err(CodecError::Inconsistent(format!(
                "maxTimestamp {} but the largest record timestamp is {}",
                header.max_timestamp, max_ts
            )));
        }
    }
    Ok(ValidBatch {
        header,
        record_count: header.record_count as u32,
        first_keyless,
    })
}

/// Checks that `batch` is exactly one v2 batch with a matching CRC, without
/// looking at the records. This is the cheap check for bytes read back from
/// our own files.
pub fn validate_framing(batch: &[u8]) -> Result<BatchHeader, CodecError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() != batch.len() {
        return Err(CodecError::BadLength {
            length: header.batch_length as i64,
            reason: if header.total_len() > batch.len() {
                "batch is longer than the bytes given"
            } else {
                "bytes follow the batch"
            },
        });
    }
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(CodecError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Writes `base_offset` into a batch. The CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[field::BASE_OFFSET..field::BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes an idempotent producer's id, epoch and base sequence into an
/// encoded batch and recomputes its CRC (which covers them). A producer
/// uses it to renumber a batch it sends again under a new epoch.
pub fn set_producer(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    batch[field::PRODUCER_ID..field::PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[field::PRODUCER_EPOCH..field::PRODUCER_EPOCH + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[field::BASE_SEQUENCE..field::BASE_SEQUENCE + 4]
        .copy_from_slice(&base_sequence.to_be_bytes());
    let crc = compute_crc(batch);
    batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Marks a batch as log-append-time with timestamp `now_ms` and recomputes
/// its CRC (the attributes and `maxTimestamp` are covered by it).
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = Attributes(be_i16(batch, field::ATTRIBUTES))
        .with_timestamp_type(TimestampType::LogAppendTime);
    batch[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&attrs.0.to_be_bytes());
    batch[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The header a batch is stored with: a copy of its first 61 bytes with
/// the base offset stamped in and, for log-append-time logs, the timestamp
/// type, `maxTimestamp` and a CRC recomputed over the new header and the
/// unchanged records. The records themselves are never copied, so a broker
/// can write the producer's buffer as it is, after this header.
pub fn stored_header(
    batch: &[u8],
    base_offset: i64,
    log_append_time_ms: Option<i64>,
) -> [u8; BATCH_HEADER_LEN] {
    let mut h: [u8; BATCH_HEADER_LEN] = batch[..BATCH_HEADER_LEN]
        .try_into()
        .expect("61-byte header");
    set_base_offset(&mut h, base_offset);
    if let Some(now_ms) = log_append_time_ms {
        let attrs = Attributes(be_i16(&h, field::ATTRIBUTES))
            .with_timestamp_type(TimestampType::LogAppendTime);
        h[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&attrs.0.to_be_bytes());
        h[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&h[field::ATTRIBUTES..]),
            &batch[BATCH_HEADER_LEN..],
        );
        h[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
    h
}

/// Returns the length of the first complete batch in `buf`, `Ok(None)` if
/// `buf` holds only part of one, or an error if the header is invalid.
pub fn first_batch_len(buf: &[u8]) -> Result<Option<usize>, CodecError> {
    let first = crate::cursor::BatchCursor::new(buf).next_batch()?;
    Ok(first.map(|(header, _)| header.total_len()))
}

/// One batch held as shared bytes; records decode from it without copying
/// their keys and values.
#[derive(Debug, Clone)]
pub struct Batch {
    header: BatchHeader,
    bytes: Bytes,
}

impl Batch {
    /// Takes the first batch off the front of `buf`, checking framing and
    /// CRC (not the records, which [`Batch::records`] checks as it goes).
    pub fn split_from(buf: &mut Bytes) -> Result<Self, CodecError> {
        let header = BatchHeader::parse(buf)?;
        if header.total_len() > buf.len() {
            return Err(CodecError::Truncated {
                what: "record batch",
                needed: header.total_len(),
                available: buf.len(),
            });
        }
        let bytes = buf.split_to(header.total_len());
        validate_framing(&bytes)?;
        Ok(Self { header, bytes })
    }

    /// Decodes every batch in `buf`, which must hold whole batches only.
    pub fn decode_all(mut buf: Bytes) -> Result<Vec<Self>, CodecError> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            out.push(Self::split_from(&mut buf)?);
        }
        Ok(out)
    }

    /// The header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes, exactly as stored.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Iterates the records; each item is an error if that record is
    /// malformed. A compressed batch is decompressed first, within
    /// [`BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT`]; if that fails, the one
    /// item is the error.
    pub fn records(&self) -> RecordIter {
        self.records_within(BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT)
    }

    /// [`Batch::records`], decompressing into at most `max_bytes`.
    pub fn records_within(&self, max_bytes: usize) -> RecordIter {
        match records_section(&self.bytes, &self.header, max_bytes) {
            Ok(Cow::Borrowed(_)) => {
                RecordIter::new(self.header, self.bytes.slice(BATCH_HEADER_LEN..))
            }
            Ok(Cow::Owned(body)) => RecordIter::new(self.header, Bytes::from(body)),
            Err(e) => RecordIter::failed(self.header, e),
        }
    }

    /// Decodes all records, or the first error.
    pub fn decode_records(&self) -> Result<Vec<Record>, CodecError> {
        self.records().collect()
    }
}

#[cfg(test)]
mod filter_tests;

#[cfg(test)]
mod tests;
