//! Batches built by two independent implementations of Kafka's client,
//! one per codec, produced raw over gRPC to the real broker: each is
//! accepted, stored byte for byte, and decodes to the records it was built
//! from. kafka-python's are fixtures, written once by
//! `fixtures/kafka-python/generate.py` (which says how), so the test needs
//! no Python; the `kafka-protocol` crate's are built in the test.

use crate::support::*;
use bytes::Bytes;
use strata_proto::v1;

fn fixture(codec: &str) -> Bytes {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kafka-python")
        .join(format!("{codec}.batch"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Produces `sent` raw to a new one-partition `topic`, checks that it is
/// stored byte for byte and carries the codec `codec` names, and returns
/// its records decoded by the broker.
async fn produce_and_decode(
    b: &BrokerProcess,
    topic: &str,
    sent: &Bytes,
    codec: &str,
) -> Vec<v1::ConsumedRecord> {
    let mut admin = b.admin().await;
    let mut rec = b.records().await;
    create_topic(&mut admin, topic, 1, &[]).await;
    let header = strata_proto::BatchHeader::parse(sent).unwrap();
    assert_eq!(header.attributes.compression().unwrap().name(), codec);
    let r = rec
        .produce(produce_batch(topic, 0, sent.clone(), v1::Acks::Durable))
        .await
        .unwrap()
        .into_inner();
    let p = &r.topics[0].partitions[0];
    assert!(p.error.is_none(), "{codec}: {:?}", p.error);
    assert_eq!(p.base_offset, 0);
    let fetch = |decode| fetch_one(topic, 0, 0, decode);
    let raw = only(rec.fetch(fetch(false)).await.unwrap().into_inner());
    assert_eq!(&raw.batches, sent, "{codec}: stored as sent");
    only(rec.fetch(fetch(true)).await.unwrap().into_inner()).records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_batches_of_every_codec_are_stored_and_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let got = produce_and_decode(&b, &format!("py-{codec}"), &fixture(codec), codec).await;
        assert_eq!(got.len(), 50, "{codec}");
        for (i, r) in got.iter().enumerate() {
            let value = format!(r#"{{"n":{i},"source":"kafka-python","codec":"{codec}"}}"#);
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.timestamp_ms, 1_700_000_000_000 + i as i64);
            assert_eq!(r.key.as_deref(), Some(format!("k{}", i % 5).as_bytes()));
            assert_eq!(
                r.value.as_deref(),
                Some(value.as_bytes()),
                "{codec} record {i}"
            );
            assert_eq!(r.headers.len(), 1);
            assert_eq!(r.headers[0].key, "i");
            assert_eq!(
                r.headers[0].value.as_deref(),
                Some(i.to_string().as_bytes())
            );
        }
    }
}

/// `n` records encoded by kafka-protocol with `compression`.
fn kafka_protocol_batch(n: usize, compression: kafka_protocol::records::Compression) -> Bytes {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("k{}", i % 5))),
            value: Some(Bytes::from(format!(
                r#"{{"n":{i},"source":"kafka-protocol"}}"#
            ))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("kafka-protocol encodes");
    buf.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_protocol_batches_of_every_codec_are_stored_and_decoded() {
    use kafka_protocol::records::Compression as K;
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    for (name, codec) in [
        ("none", K::None),
        ("gzip", K::Gzip),
        ("snappy", K::Snappy),
        ("lz4", K::Lz4),
        ("zstd", K::Zstd),
    ] {
        let sent = kafka_protocol_batch(40, codec);
        let got = produce_and_decode(&b, &format!("kp-{name}"), &sent, name).await;
        assert_eq!(got.len(), 40, "{name}");
        for (i, r) in got.iter().enumerate() {
            let value = format!(r#"{{"n":{i},"source":"kafka-protocol"}}"#);
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.key.as_deref(), Some(format!("k{}", i % 5).as_bytes()));
            assert_eq!(
                r.value.as_deref(),
                Some(value.as_bytes()),
                "{name} record {i}"
            );
        }
    }
}
