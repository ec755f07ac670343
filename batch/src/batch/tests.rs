//! Unit tests of `batch`.

use super::*;
use crate::record::{BatchBuilder, Header};

fn validate(batch: &[u8]) -> Result<ValidBatch, CodecError> {
    super::validate(batch, BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT)
}

fn sample() -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.push(
        1_000,
        Some(b"k1"),
        Some(b"v1"),
        &[Header::new("h", Some(b"x".as_slice()))],
    );
    b.push(1_005, None, Some(b"v2"), &[]);
    b.push(998, Some(b"k3"), None, &[]);
    b.finish().to_vec()
}

#[test]
fn header_round_trip_and_validate() {
    let bytes = sample();
    let v = validate(&bytes).unwrap();
    assert_eq!(v.record_count, 3);
    assert_eq!(v.header.base_timestamp, 1_000);
    assert_eq!(v.header.max_timestamp, 1_005);
    assert_eq!(v.header.last_offset_delta, 2);
    assert_eq!(v.header.total_len(), bytes.len());
}

#[test]
fn producer_stamp_keeps_crc_valid() {
    let mut bytes = sample();
    set_producer(&mut bytes, 42, 3, 1000);
    let v = validate(&bytes).expect("still valid");
    assert_eq!(
        (
            v.header.producer_id,
            v.header.producer_epoch,
            v.header.base_sequence
        ),
        (42, 3, 1000)
    );
}

#[test]
fn base_offset_stamp_keeps_crc_valid() {
    let mut bytes = sample();
    set_base_offset(&mut bytes, 4242);
    let v = validate(&bytes).unwrap();
    assert_eq!(v.header.base_offset, 4242);
    assert_eq!(v.header.last_offset(), 4244);
}

#[test]
fn log_append_time_rewrites_crc() {
    let mut bytes = sample();
    set_log_append_time(&mut bytes, 77);
    let v = validate(&bytes).unwrap();
    assert_eq!(
        v.header.attributes.timestamp_type(),
        TimestampType::LogAppendTime
    );
    let batch = Batch::split_from(&mut Bytes::from(bytes)).unwrap();
    for r in batch.decode_records().unwrap() {
        assert_eq!(r.timestamp, 77);
    }
}

#[test]
fn stored_header_matches_in_place_stamping() {
    let bytes = sample();
    let h = stored_header(&bytes, 99, None);
    let mut whole = h.to_vec();
    whole.extend_from_slice(&bytes[BATCH_HEADER_LEN..]);
    let mut expect = bytes.clone();
    set_base_offset(&mut expect, 99);
    assert_eq!(whole, expect);
    let h = stored_header(&bytes, 5, Some(1234));
    let mut whole = h.to_vec();
    whole.extend_from_slice(&bytes[BATCH_HEADER_LEN..]);
    set_log_append_time(&mut expect, 1234);
    set_base_offset(&mut expect, 5);
    assert_eq!(whole, expect);
    validate(&whole).unwrap();
}

#[test]
fn every_flipped_byte_is_caught() {
    let bytes = sample();
    for i in 0..bytes.len() {
        // The base offset and leader epoch are outside the CRC by design.
        if i < field::MAGIC {
            continue;
        }
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        assert!(validate(&bad).is_err(), "flip at byte {i} went unnoticed");
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample();
    for cut in 0..bytes.len() {
        assert!(validate(&bytes[..cut]).is_err(), "cut at {cut}");
        assert_eq!(
            first_batch_len(&bytes[..cut]).unwrap(),
            None,
            "cut at {cut}"
        );
    }
    assert_eq!(first_batch_len(&bytes).unwrap(), Some(bytes.len()));
}

#[test]
fn a_wrong_codec_and_old_magic_are_refused_clearly() {
    // Uncompressed records labelled with each codec: not that codec's data.
    for codec in &Compression::ALL[1..] {
        let mut bytes = sample();
        bytes[field::ATTRIBUTES + 1] |= codec.id();
        let crc = compute_crc(&bytes);
        bytes[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        let err = validate(&bytes).unwrap_err();
        assert!(
            matches!(err, CodecError::Decompress { codec: c, .. } if c == *codec),
            "{codec:?}: {err}"
        );
    }
    let mut old = sample();
    old[field::MAGIC] = 1;
    assert_eq!(validate(&old), Err(CodecError::BadMagic(1)));
}

#[test]
fn absurd_record_count_is_refused_without_allocating() {
    let mut bytes = sample();
    bytes[field::RECORD_COUNT..field::RECORD_COUNT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    bytes[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    let crc = compute_crc(&bytes);
    bytes[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(validate(&bytes), Err(CodecError::Inconsistent(_))));
    let batch = Batch::split_from(&mut Bytes::from(bytes)).unwrap();
    assert!(batch.decode_records().is_err());
}
