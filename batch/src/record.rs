//! Records inside a v2 batch: decoding them from a batch's bytes, and
//! building a batch from records.
//!
//! A record on the wire (every length a zig-zag varint, -1 meaning null):
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint | key | valueLength varint | value |
//! headerCount varint | (headerKeyLength varint | headerKey | headerValueLength varint | headerValue)*
//! ```

use std::ops::Range;

use bytes::Bytes;

use crate::batch::{
    BATCH_HEADER_LEN, BatchHeader, Compression, MAGIC_V2, TimestampType, compute_crc, field,
};
use crate::error::CodecError;
use crate::varint::{get_varint, get_varlong, put_varint, put_varlong, varint_len, varlong_len};

/// A record header: an ordered (key, value) pair. Keys are UTF-8 strings;
/// values are bytes and may be null, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub key: String,
    /// The header's value; `None` is Kafka's null header value.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header from borrowed parts (copies them).
    pub fn new(key: impl Into<String>, value: Option<&[u8]>) -> Self {
        Self {
            key: key.into(),
            value: value.map(Bytes::copy_from_slice),
        }
    }
}

/// A decoded record with its absolute offset and timestamp. Keys and values
/// share the batch's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset (the batch's base offset plus the record's delta).
    pub offset: i64,
    /// Create time or log-append time, per the batch's timestamp type.
    pub timestamp: i64,
    /// The key; `None` for a keyless record.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers in the order the producer gave them.
    pub headers: Vec<Header>,
}

/// The positions of one record's parts inside a batch body, found without
/// allocating.
#[derive(Debug, Clone)]
pub(crate) struct RawRecord {
    pub(crate) timestamp_delta: i64,
    pub(crate) offset_delta: i32,
    pub(crate) key: Option<Range<usize>>,
    pub(crate) value: Option<Range<usize>>,
    headers: Range<usize>,
    header_count: usize,
}

fn bad(index: usize, reason: impl Into<String>) -> CodecError {
    CodecError::BadRecord {
        index,
        reason: reason.into(),
    }
}

/// Reads a nullable byte field (varint length then bytes), bounded by `end`.
fn nullable_bytes(
    buf: &[u8],
    pos: &mut usize,
    end: usize,
    index: usize,
    what: &'static str,
) -> Result<Option<Range<usize>>, CodecError> {
    let len = get_varint(&buf[..end], pos, what)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| bad(index, format!("{what} {len} is negative")))?;
    if len > end - *pos {
        return Err(bad(
            index,
            format!(
                "{what} {len} runs past the record's end ({} bytes left)",
                end - *pos
            ),
        ));
    }
    let r = *pos..*pos + len;
    *pos += len;
    Ok(Some(r))
}

/// Reads one header's key and value ranges.
fn next_header(
    buf: &[u8],
    pos: &mut usize,
    end: usize,
    index: usize,
) -> Result<(Range<usize>, Option<Range<usize>>), CodecError> {
    let key = nullable_bytes(buf, pos, end, index, "header key length")?
        .ok_or_else(|| bad(index, "header key is null"))?;
    if std::str::from_utf8(&buf[key.clone()]).is_err() {
        return Err(bad(index, "header key is not UTF-8"));
    }
    let value = nullable_bytes(buf, pos, end, index, "header value length")?;
    Ok((key, value))
}

/// Walks one record at `*pos` of a batch body, validating its structure,
/// and returns where its parts are. Allocates nothing.
pub(crate) fn skim_record(
    body: &[u8],
    pos: &mut usize,
    index: usize,
) -> Result<RawRecord, CodecError> {
    let len = get_varint(body, pos, "record length")?;
    let len = usize::try_from(len).map_err(|_| bad(index, format!("length {len} is negative")))?;
    if len > body.len() - *pos {
        return Err(bad(
            index,
            format!(
                "length {len} runs past the batch ({} bytes left)",
                body.len() - *pos
            ),
        ));
    }
    let end = *pos + len;
    if *pos >= end {
        return Err(bad(index, "record has no attributes byte"));
    }
    *pos += 1; // Record attributes: unused by Kafka, kept as they are.
    let timestamp_delta = get_varlong(&body[..end], pos, "record timestamp delta")?;
    let offset_delta = get_varint(&body[..end], pos, "record offset delta")?;
    let key = nullable_bytes(body, pos, end, index, "key length")?;
    let value = nullable_bytes(body, pos, end, index, "value length")?;
    let header_count = get_varint(&body[..end], pos, "header count")?;
    let header_count = usize::try_from(header_count)
        .map_err(|_| bad(index, format!("header count {header_count} is negative")))?;
    // Each header takes at least two bytes, so a larger count is a lie.
    if header_count > (end - *pos) / 2 {
        return Err(bad(
            index,
            format!("header count {header_count} cannot fit"),
        ));
    }
    let headers_start = *pos;
    for _ in 0..header_count {
        next_header(body, pos, end, index)?;
    }
    if *pos != end {
        return Err(bad(
            index,
            format!("{} bytes follow the last header", end - *pos),
        ));
    }
    Ok(RawRecord {
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers: headers_start..end,
        header_count,
    })
}

/// Iterates the records of one batch. See [`crate::Batch::records`].
#[derive(Debug)]
pub struct RecordIter {
    header: BatchHeader,
    /// The records section, decompressed.
    body: Bytes,
    pos: usize,
    index: usize,
    failed: bool,
    /// Why the records section could not be had, yielded once.
    pending: Option<CodecError>,
}

impl RecordIter {
    pub(crate) fn new(header: BatchHeader, body: Bytes) -> Self {
        Self {
            header,
            body,
            pos: 0,
            index: 0,
            failed: false,
            pending: None,
        }
    }

    /// An iterator whose one item is `e`.
    pub(crate) fn failed(header: BatchHeader, e: CodecError) -> Self {
        Self {
            pending: Some(e),
            ..Self::new(header, Bytes::new())
        }
    }

    fn decode_next(&mut self) -> Result<Record, CodecError> {
        let raw = skim_record(&self.body, &mut self.pos, self.index)?;
        let h = &self.header;
        let timestamp = match h.attributes.timestamp_type() {
            TimestampType::LogAppendTime => h.max_timestamp,
            TimestampType::CreateTime => h.base_timestamp.wrapping_add(raw.timestamp_delta),
        };
        let mut headers = Vec::with_capacity(raw.header_count);
        let mut hpos = raw.headers.start;
        for _ in 0..raw.header_count {
            let (k, v) = next_header(&self.body, &mut hpos, raw.headers.end, self.index)?;
            headers.push(Header {
                key: String::from_utf8_lossy(&self.body[k]).into_owned(),
                value: v.map(|r| self.body.slice(r)),
            });
        }
        Ok(Record {
            offset: h.base_offset.wrapping_add(i64::from(raw.offset_delta)),
            timestamp,
            key: raw.key.map(|r| self.body.slice(r)),
            value: raw.value.map(|r| self.body.slice(r)),
            headers,
        })
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            self.failed = true;
            return Some(Err(e));
        }
        if self.failed || self.index >= self.header.record_count.max(0) as usize {
            return None;
        }
        let item = self.decode_next();
        self.index += 1;
        if item.is_err() {
            self.failed = true;
        }
        Some(item)
    }
}

/// Builds one uncompressed v2 batch from records, in the order they are
/// pushed. The first record's timestamp becomes the batch's base timestamp.
#[derive(Debug)]
pub struct BatchBuilder {
    /// Header placeholder followed by the encoded records; the header is
    /// filled in by `finish`, once the counts and timestamps are known.
    buf: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder without producer id (Kafka's -1 sentinels).
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty builder whose buffer can take `bytes` of records without
    /// reallocating.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(BATCH_HEADER_LEN + bytes);
        buf.resize(BATCH_HEADER_LEN, 0);
        Self {
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }

    /// Sets the idempotent producer's id, epoch and first sequence number.
    pub fn producer(&mut self, id: i64, epoch: i16, base_sequence: i32) -> &mut Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Records pushed so far.
    pub fn record_count(&self) -> usize {
        self.count as usize
    }

    /// Bytes the batch would take if finished now.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Bytes that pushing this record would add (an upper bound: the
    /// timestamp delta is counted at its widest).
    pub fn record_len_hint(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[Header]) -> usize {
        let body = body_len(i64::MAX, i32::MAX, key, value, headers);
        varint_len(body as i32) + body
    }

    /// Appends one record.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) {
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let ts_delta = timestamp.wrapping_sub(self.base_timestamp);
        let offset_delta = self.count;
        let body = body_len(ts_delta, offset_delta, key, value, headers);
        let b = &mut self.buf;
        put_varint(b, body as i32);
        b.push(0); // record attributes
        put_varlong(b, ts_delta);
        put_varint(b, offset_delta);
        put_nullable(b, key);
        put_nullable(b, value);
        put_varint(b, headers.len() as i32);
        for h in headers {
            put_nullable(b, Some(h.key.as_bytes()));
            put_nullable(b, h.value.as_deref());
        }
        self.count += 1;
    }

    /// Writes the header and CRC and returns the batch, uncompressed. The
    /// base offset is 0; the broker stamps the real one.
    ///
    /// # Panics
    /// If no record was pushed: an empty batch is not a valid v2 batch.
    pub fn finish(self) -> Bytes {
        self.finish_compressed(Compression::None)
            .expect("an uncompressed batch has nothing to fail")
    }

    /// [`BatchBuilder::finish`], with the records compressed by `codec`.
    ///
    /// # Panics
    /// If no record was pushed.
    pub fn finish_compressed(mut self, codec: Compression) -> Result<Bytes, CodecError> {
        assert!(self.count > 0, "a record batch needs at least one record");
        if codec != Compression::None {
            let body = crate::compression::compress(codec, &self.buf[BATCH_HEADER_LEN..])?;
            self.buf.truncate(BATCH_HEADER_LEN);
            self.buf.extend_from_slice(&body);
        }
        let len = self.buf.len();
        let b = &mut self.buf;
        let put = |b: &mut Vec<u8>, at: usize, bytes: &[u8]| {
            b[at..at + bytes.len()].copy_from_slice(bytes);
        };
        put(b, field::BASE_OFFSET, &0i64.to_be_bytes());
        put(
            b,
            field::BATCH_LENGTH,
            &((len - crate::batch::LOG_OVERHEAD) as i32).to_be_bytes(),
        );
        put(b, field::PARTITION_LEADER_EPOCH, &(-1i32).to_be_bytes());
        b[field::MAGIC] = MAGIC_V2 as u8;
        let attributes = crate::batch::Attributes::default().with_compression(codec);
        put(b, field::ATTRIBUTES, &attributes.0.to_be_bytes());
        put(b, field::LAST_OFFSET_DELTA, &(self.count - 1).to_be_bytes());
        put(b, field::BASE_TIMESTAMP, &self.base_timestamp.to_be_bytes());
        put(b, field::MAX_TIMESTAMP, &self.max_timestamp.to_be_bytes());
        put(b, field::PRODUCER_ID, &self.producer_id.to_be_bytes());
        put(b, field::PRODUCER_EPOCH, &self.producer_epoch.to_be_bytes());
        put(b, field::BASE_SEQUENCE, &self.base_sequence.to_be_bytes());
        put(b, field::RECORD_COUNT, &self.count.to_be_bytes());
        let crc = compute_crc(b);
        put(b, field::CRC, &crc.to_be_bytes());
        Ok(Bytes::from(self.buf))
    }
}

fn nullable_len(v: Option<&[u8]>) -> usize {
    match v {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i32) + b.len(),
    }
}

fn put_nullable(buf: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.extend_from_slice(b);
        }
    }
}

fn body_len(
    ts_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> usize {
    1 + varlong_len(ts_delta)
        + varint_len(offset_delta)
        + nullable_len(key)
        + nullable_len(value)
        + varint_len(headers.len() as i32)
        + headers
            .iter()
            .map(|h| nullable_len(Some(h.key.as_bytes())) + nullable_len(h.value.as_deref()))
            .sum::<usize>()
}
