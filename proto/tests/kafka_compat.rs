//! Cross-checks our RecordBatch v2 codec against an independent
//! implementation, the `kafka-protocol` crate: batches it encodes decode to
//! the same records with ours, ours decode to the same records with it, and
//! for records in timestamp order both encoders produce the same bytes.
//! Also: the decoder survives arbitrary bytes.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KCompression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType as KTimestampType,
};
use proptest::prelude::*;
use strata_proto::batch::{self, Batch};
use strata_proto::{BatchBuilder, Header};

/// One record as a test generates it: headers have distinct keys, because
/// `kafka-protocol` keeps headers in a map.
#[derive(Debug, Clone)]
struct Rec {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn rec_strategy() -> impl Strategy<Value = Rec> {
    (
        0i64..4_000_000_000_000,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        proptest::collection::btree_map(
            "[a-zA-Z0-9_.-]{0,12}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            0..4,
        ),
    )
        .prop_map(|(timestamp, key, value, headers)| Rec {
            timestamp,
            key,
            value,
            headers: headers.into_iter().collect(),
        })
}

/// Every codec, ours beside kafka-protocol's.
const CODECS: [(batch::Compression, KCompression); 5] = [
    (batch::Compression::None, KCompression::None),
    (batch::Compression::Gzip, KCompression::Gzip),
    (batch::Compression::Snappy, KCompression::Snappy),
    (batch::Compression::Lz4, KCompression::Lz4),
    (batch::Compression::Zstd, KCompression::Zstd),
];

fn ours(recs: &[Rec]) -> Bytes {
    ours_with(recs, batch::Compression::None)
}

fn ours_with(recs: &[Rec], codec: batch::Compression) -> Bytes {
    let mut b = BatchBuilder::new();
    for r in recs {
        let headers: Vec<Header> = r
            .headers
            .iter()
            .map(|(k, v)| Header::new(k.clone(), v.as_deref()))
            .collect();
        b.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
    }
    b.finish_compressed(codec).expect("compresses")
}

fn theirs(recs: &[Rec]) -> Bytes {
    theirs_with(recs, KCompression::None)
}

fn theirs_with(recs: &[Rec], compression: KCompression) -> Bytes {
    let krecs: Vec<KRecord> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| KRecord {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: KTimestampType::Creation,
            offset: i as i64,
            // Kafka groups records into one batch while offset - sequence is
            // constant; -1 for the first record gives base sequence -1.
            sequence: i as i32 - 1,
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
                .collect::<IndexMap<_, _>>(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &krecs,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("kafka-protocol encodes");
    buf.freeze()
}

fn check_ours_decode(bytes: Bytes, recs: &[Rec]) -> Result<(), TestCaseError> {
    batch::validate(&bytes, batch::BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT)
        .map_err(|e| TestCaseError::fail(format!("validate: {e}")))?;
    let batches = Batch::decode_all(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(batches.len(), 1);
    let decoded = batches[0]
        .decode_records()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(decoded.len(), recs.len());
    for (i, (d, r)) in decoded.iter().zip(recs).enumerate() {
        prop_assert_eq!(d.offset, i as i64);
        prop_assert_eq!(d.timestamp, r.timestamp);
        prop_assert_eq!(d.key.as_deref(), r.key.as_deref());
        prop_assert_eq!(d.value.as_deref(), r.value.as_deref());
        let hs: Vec<(String, Option<Vec<u8>>)> = d
            .headers
            .iter()
            .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
            .collect();
        prop_assert_eq!(&hs, &r.headers);
    }
    Ok(())
}

fn check_theirs_decode(bytes: Bytes, recs: &[Rec]) -> Result<(), TestCaseError> {
    let mut buf = bytes;
    let set =
        RecordBatchDecoder::decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(set.records.len(), recs.len());
    for (i, (d, r)) in set.records.iter().zip(recs).enumerate() {
        prop_assert_eq!(d.offset, i as i64);
        prop_assert_eq!(d.timestamp, r.timestamp);
        prop_assert_eq!(d.key.as_deref(), r.key.as_deref());
        prop_assert_eq!(d.value.as_deref(), r.value.as_deref());
        let hs: Vec<(String, Option<Vec<u8>>)> = d
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_ref().map(|v| v.to_vec())))
            .collect();
        prop_assert_eq!(&hs, &r.headers);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn kafka_protocol_batches_decode_with_ours(recs in proptest::collection::vec(rec_strategy(), 1..20)) {
        check_ours_decode(theirs(&recs), &recs)?;
    }

    #[test]
    fn our_batches_decode_with_kafka_protocol(recs in proptest::collection::vec(rec_strategy(), 1..20)) {
        check_theirs_decode(ours(&recs), &recs)?;
    }

    /// Each codec both ways: kafka-protocol compresses (gzip, xerial
    /// snappy, an LZ4 frame from the lz4 C library, zstd) and we decompress,
    /// and the other way round; the batch keeps its codec id.
    #[test]
    fn compressed_batches_cross_decode(
        recs in proptest::collection::vec(rec_strategy(), 1..20),
        codec in proptest::sample::select(CODECS.to_vec()),
    ) {
        let (ours_codec, their_codec) = codec;
        let from_them = theirs_with(&recs, their_codec);
        let header = batch::BatchHeader::parse(&from_them).unwrap();
        prop_assert_eq!(header.attributes.compression().unwrap(), ours_codec);
        check_ours_decode(from_them, &recs)?;
        check_theirs_decode(ours_with(&recs, ours_codec), &recs)?;
    }

    #[test]
    fn both_encoders_agree_byte_for_byte(mut recs in proptest::collection::vec(rec_strategy(), 1..20)) {
        // kafka-protocol takes the smallest timestamp as the base, the Java
        // producer (and ours) the first; in timestamp order they coincide.
        recs.sort_by_key(|r| r.timestamp);
        prop_assert_eq!(ours(&recs), theirs(&recs));
    }

    #[test]
    fn decoder_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = batch::validate(&bytes, batch::BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT);
        let _ = batch::first_batch_len(&bytes);
        if let Ok(batches) = Batch::decode_all(Bytes::from(bytes)) {
            for b in batches {
                for r in b.records() {
                    let _ = r;
                }
            }
        }
    }

    #[test]
    fn decoder_never_panics_on_mutated_batches(
        recs in proptest::collection::vec(rec_strategy(), 1..5),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = ours(&recs).to_vec();
        for (i, x) in flips {
            let at = i.index(bytes.len());
            bytes[at] = x;
        }
        // Recompute the CRC so the record decoder, not the CRC, meets the damage.
        if bytes.len() >= batch::BATCH_HEADER_LEN {
            let crc = batch::compute_crc(&bytes);
            bytes[batch::field::CRC..batch::field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        }
        let _ = batch::validate(&bytes, batch::BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT);
        if let Ok(b) = Batch::split_from(&mut Bytes::from(bytes)) {
            for r in b.records() {
                let _ = r;
            }
        }
    }
}

#[test]
fn a_known_kafka_batch_decodes() {
    // A single-record batch as kafka-protocol writes it: its header fields
    // and CRC-32C read back with our parser and our checksum.
    let recs = vec![Rec {
        timestamp: 1_700_000_000_000,
        key: Some(b"hello".to_vec()),
        value: Some(b"world".to_vec()),
        headers: vec![("trace".into(), Some(b"1".to_vec()))],
    }];
    let bytes = theirs(&recs);
    let header = batch::BatchHeader::parse(&bytes).unwrap();
    assert_eq!(header.magic, 2);
    assert_eq!(header.crc, batch::compute_crc(&bytes));
    check_ours_decode(bytes, &recs).unwrap();
}
