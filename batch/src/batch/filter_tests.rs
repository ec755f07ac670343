//! Unit tests of `filter` and `visit`: what compaction keeps.

use proptest::prelude::*;

use super::*;
use crate::record::BatchBuilder;

fn validate(batch: &[u8]) -> Result<ValidBatch, CodecError> {
    super::validate(batch, BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT)
}

/// A record as the tests write it: key, value, timestamp.
type Rec = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// A stored batch at `base` of `records`.
fn stored(base: i64, records: &[Rec]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.producer(7, 1, 40);
    for (k, v, t) in records {
        b.push(*t, k.as_deref(), v.as_deref(), &[]);
    }
    let mut out = b.finish().to_vec();
    out[field::BASE_OFFSET..field::BASE_OFFSET + 8].copy_from_slice(&base.to_be_bytes());
    out
}

#[test]
fn kept_records_keep_their_offsets_and_the_header_its_identity() {
    let recs: Vec<_> = (0..5)
        .map(|i| {
            (
                Some(vec![b'k', i]),
                (i != 3).then(|| vec![i]),
                100 + i64::from(i),
            )
        })
        .collect();
    let batch = stored(1000, &recs);
    let Filtered::Rewritten(out) = filter(&batch, BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT, |r| {
        r.offset % 2 == 1
    })
    .unwrap() else {
        panic!("expected a rewrite");
    };
    validate(&out).unwrap_err(); // gaps: not a producer's batch
    let v = validate_stored(&out).unwrap();
    assert_eq!(v.record_count, 2);
    assert_eq!(v.header.last_offset(), 1004, "lastOffsetDelta kept");
    assert_eq!(v.header.max_timestamp, 103);
    assert_eq!((v.header.producer_id, v.header.base_sequence), (7, 40));
    let b = Batch::decode_all(out).unwrap().remove(0);
    let got: Vec<(i64, bool)> = b
        .records()
        .map(|r| r.unwrap())
        .map(|r| (r.offset, r.value.is_none()))
        .collect();
    assert_eq!(got, vec![(1001, false), (1003, true)]);
    assert_eq!(
        filter(&batch, BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT, |_| true).unwrap(),
        Filtered::Unchanged
    );
    assert_eq!(
        filter(&batch, BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT, |_| false).unwrap(),
        Filtered::Empty
    );
    assert_eq!(validate(&batch).unwrap().first_keyless, None);
    let keyless = stored(
        0,
        &[
            (Some(b"a".to_vec()), None, 1),
            (None, Some(b"v".to_vec()), 1),
        ],
    );
    assert_eq!(validate(&keyless).unwrap().first_keyless, Some(1));
}

proptest! {
    /// Any subset of any batch's records survives filtering exactly,
    /// and the result passes the stored-batch validation.
    #[test]
    fn filtering_keeps_exactly_the_chosen_records(
        records in proptest::collection::vec(
            (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
             proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
             0i64..1_000),
            1..20),
        mask in proptest::collection::vec(any::<bool>(), 20),
        base in 0i64..1_000_000,
    ) {
        let batch = stored(base, &records);
        let keep = |r: &RecordRef<'_>| mask[(r.offset - base) as usize];
        let expected: Vec<(i64, Option<Vec<u8>>, bool)> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| mask[*i])
            .map(|(i, (k, v, _))| (base + i as i64, k.clone(), v.is_none()))
            .collect();
        let got = match filter(&batch, BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT, keep).unwrap() {
            Filtered::Unchanged => Batch::decode_all(Bytes::from(batch.clone())).unwrap(),
            Filtered::Empty => Vec::new(),
            Filtered::Rewritten(b) => {
                validate_stored(&b).unwrap();
                Batch::decode_all(b).unwrap()
            }
        };
        let got: Vec<(i64, Option<Vec<u8>>, bool)> = got
            .iter()
            .flat_map(|b| b.records())
            .map(|r| r.unwrap())
            .map(|r| (r.offset, r.key.map(|k| k.to_vec()), r.value.is_none()))
            .collect();
        prop_assert_eq!(got, expected);
    }
}
