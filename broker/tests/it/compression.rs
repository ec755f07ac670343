//! Compressed batches through the real broker over gRPC: each codec is
//! accepted, stored as sent, served raw and decoded, and survives a
//! restart and a `kill -9`; a decompression bomb, a truncated body and a
//! wrong codec id are refused with INVALID_ARGUMENT while the partition
//! goes on serving.

use crate::support::*;
use bytes::Bytes;
use strata_proto::batch::{self, BATCH_HEADER_LEN, Compression, compute_crc, field};
use strata_proto::v1;
use strata_proto::{Batch, BatchBuilder};
use tonic::Code;

/// `n` JSON-like records, tagged, compressed with `codec`.
fn json_batch(tag: &str, n: usize, codec: Compression) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        let value = format!(r#"{{"tag":"{tag}","seq":{i},"event":"page_view","path":"/a/b"}}"#);
        b.push(
            1_700_000_000_000 + i as i64,
            None,
            Some(value.as_bytes()),
            &[],
        );
    }
    b.finish_compressed(codec).unwrap()
}

/// `batch` with its records section replaced by `body`, CRC fixed.
fn with_body(batch: &[u8], body: &[u8], codec: Compression) -> Bytes {
    let mut out = batch[..BATCH_HEADER_LEN].to_vec();
    out.extend_from_slice(body);
    batch::finish_header(&mut out, codec);
    Bytes::from(out)
}

fn values(records: &[v1::ConsumedRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).unwrap())
        .collect()
}

async fn produce(rec: &mut RecordsClient, topic: &str, batch: Bytes) -> v1::PartitionProduceResult {
    rec.produce(produce_batch(topic, 0, batch, v1::Acks::Durable))
        .await
        .unwrap()
        .into_inner()
        .topics
        .remove(0)
        .partitions
        .remove(0)
}

type RecordsClient = strata_proto::v1::records_client::RecordsClient<tonic::transport::Channel>;

/// Everything a topic holds, as raw batches and as decoded values.
async fn read_back(rec: &mut RecordsClient, topic: &str) -> (Bytes, Vec<String>) {
    let raw = only(
        rec.fetch(fetch_one(topic, 0, 0, false))
            .await
            .unwrap()
            .into_inner(),
    );
    let decoded = only(
        rec.fetch(fetch_one(topic, 0, 0, true))
            .await
            .unwrap()
            .into_inner(),
    );
    (raw.batches, values(&decoded.records))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_is_stored_as_sent_served_raw_and_decoded_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut b = BrokerProcess::start_in(&data, &[]);
    let mut admin = b.admin().await;
    let mut rec = b.records().await;
    let mut sent = Vec::new();
    for codec in Compression::ALL {
        let topic = format!("t-{}", codec.name());
        create_topic(&mut admin, &topic, 1, &[]).await;
        let first = json_batch("a", 40, codec);
        let second = json_batch("b", 25, codec);
        for (batch, base) in [(&first, 0), (&second, 40)] {
            let r = produce(&mut rec, &topic, batch.clone()).await;
            assert!(r.error.is_none(), "{codec:?}: {:?}", r.error);
            assert_eq!(r.base_offset, base, "{codec:?}");
        }
        // Raw: the bytes sent, with only the base offset stamped in.
        let mut want = first.to_vec();
        let mut tail = second.to_vec();
        batch::set_base_offset(&mut tail, 40);
        want.extend_from_slice(&tail);
        sent.push((topic, want, codec));
    }
    let expected: Vec<String> = {
        let mut v: Vec<String> = Batch::decode_all(json_batch("a", 40, Compression::None)).unwrap()
            [0]
        .decode_records()
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
        v.extend(
            Batch::decode_all(json_batch("b", 25, Compression::None)).unwrap()[0]
                .decode_records()
                .unwrap()
                .iter()
                .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()),
        );
        v
    };
    let check = |label: &'static str| {
        let sent = &sent;
        let expected = &expected;
        move |got: Vec<(Bytes, Vec<String>)>| {
            for ((raw, decoded), (topic, want, codec)) in got.into_iter().zip(sent) {
                assert_eq!(raw.as_ref(), &want[..], "{label}: {topic} raw");
                assert_eq!(&decoded, expected, "{label}: {topic} decoded");
                let stored = Batch::decode_all(raw).unwrap();
                assert_eq!(stored[0].header().attributes.compression().unwrap(), *codec);
            }
        }
    };
    let mut got = Vec::new();
    for (topic, _, _) in &sent {
        got.push(read_back(&mut rec, topic).await);
    }
    check("served")(got);

    // A clean restart, then a kill -9: recovery checks the compressed
    // batches by their CRC and keeps them.
    b.terminate();
    let mut b = BrokerProcess::start_in(&data, &[]);
    let mut rec = b.records().await;
    let mut got = Vec::new();
    for (topic, _, _) in &sent {
        got.push(read_back(&mut rec, topic).await);
    }
    check("after a restart")(got);
    b.kill9();
    let b = BrokerProcess::start_in(&data, &[]);
    let mut rec = b.records().await;
    let mut got = Vec::new();
    for (topic, _, _) in &sent {
        got.push(read_back(&mut rec, topic).await);
    }
    check("after kill -9")(got);

    // A decoded subscription reads compressed batches too.
    for (topic, _, codec) in &sent {
        let mut stream = rec
            .subscribe(v1::SubscribeRequest {
                decode: true,
                ..subscribe_earliest(topic, 0, 1 << 20)
            })
            .await
            .unwrap()
            .into_inner();
        let mut values_seen = Vec::new();
        while values_seen.len() < expected.len() {
            let msg = stream
                .message()
                .await
                .unwrap()
                .expect("the subscription goes on");
            values_seen.extend(values(&msg.records));
        }
        assert_eq!(&values_seen, &expected, "{codec:?} subscription");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bombs_truncated_bodies_and_wrong_codecs_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(
        &dir.path().join("data"),
        &["--batch-decompressed-bytes-max", "1048576"],
    );
    let mut admin = b.admin().await;
    create_topic(&mut admin, "t", 1, &[]).await;
    let mut rec = b.records().await;
    let ok = produce(&mut rec, "t", json_batch("ok", 10, Compression::Lz4)).await;
    assert!(ok.error.is_none(), "{:?}", ok.error);

    let template = json_batch("x", 10, Compression::None);
    let plain_body = &template[BATCH_HEADER_LEN..];
    for codec in &Compression::ALL[1..] {
        // 8 MiB of zeros inside a few KiB: past the 1 MiB bound.
        let zeros = vec![0u8; 8 << 20];
        let bomb_body = strata_proto::compression::compress(*codec, &zeros).unwrap();
        let bomb = with_body(&template, &bomb_body, *codec);
        let whole = json_batch("y", 10, *codec);
        let body = &whole[BATCH_HEADER_LEN..];
        let truncated = with_body(&whole, &body[..body.len() - 3], *codec);
        // Uncompressed records labelled with this codec.
        let mislabelled = with_body(&template, plain_body, *codec);
        for (what, batch, says) in [
            ("bomb", bomb, "batch_decompressed_bytes_max"),
            ("truncated", truncated, "does not decompress"),
            ("wrong codec", mislabelled, "does not decompress"),
        ] {
            let r = produce(&mut rec, "t", batch).await;
            let e = r
                .error
                .unwrap_or_else(|| panic!("{codec:?} {what} was accepted"));
            assert_eq!(
                e.code,
                Code::InvalidArgument as i32,
                "{codec:?} {what}: {e:?}"
            );
            assert!(e.message.contains(says), "{codec:?} {what}: {}", e.message);
        }
    }
    // A codec id Kafka does not define (5).
    let r = produce(&mut rec, "t", {
        let mut b = template.to_vec();
        b[field::ATTRIBUTES + 1] |= 5;
        let crc = compute_crc(&b);
        b[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(b)
    })
    .await;
    let e = r.error.expect("codec 5 refused");
    assert_eq!(e.code, Code::InvalidArgument as i32, "{e:?}");
    assert!(
        e.message.contains("unknown compression codec id 5"),
        "{}",
        e.message
    );

    // Nothing refused was written, and the partition goes on serving.
    let r = produce(&mut rec, "t", json_batch("after", 5, Compression::Zstd)).await;
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.base_offset, 10);
    let (_, decoded) = read_back(&mut rec, "t").await;
    assert_eq!(decoded.len(), 15);
    assert!(decoded[10].contains(r#""tag":"after""#), "{}", decoded[10]);
}

/// The codecs of the batches stored in a topic's partition 0, in order.
async fn stored_codecs(rec: &mut RecordsClient, topic: &str) -> Vec<Compression> {
    let raw = only(
        rec.fetch(fetch_one(topic, 0, 0, false))
            .await
            .unwrap()
            .into_inner(),
    );
    Batch::decode_all(raw.batches)
        .unwrap()
        .iter()
        .map(|b| b.header().attributes.compression().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_compression_type_recompresses_and_can_be_altered() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let mut admin = b.admin().await;
    let mut rec = b.records().await;
    create_topic(&mut admin, "z", 1, &[("compression.type", "zstd")]).await;
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let r = produce(&mut rec, "z", json_batch(codec.name(), 20, codec)).await;
        assert!(r.error.is_none(), "{codec:?}: {:?}", r.error);
    }
    assert_eq!(
        stored_codecs(&mut rec, "z").await,
        vec![Compression::Zstd; 3]
    );

    // Altered at run time: producer keeps the batch's codec again, and
    // uncompressed stores records plain.
    for (value, sent, stored) in [
        ("producer", Compression::Gzip, Compression::Gzip),
        ("uncompressed", Compression::Snappy, Compression::None),
    ] {
        let altered = admin
            .alter_topic_config(v1::AlterTopicConfigRequest {
                name: "z".into(),
                config: [("compression.type".to_string(), value.to_string())].into(),
            })
            .await
            .unwrap()
            .into_inner()
            .topic
            .unwrap();
        assert_eq!(altered.config["compression.type"], value);
        let r = produce(&mut rec, "z", json_batch(value, 20, sent)).await;
        assert!(r.error.is_none(), "{value}: {:?}", r.error);
        assert_eq!(
            stored_codecs(&mut rec, "z").await.last(),
            Some(&stored),
            "{value}"
        );
    }
    // Every record, whatever it was stored as, reads back in order.
    let (_, decoded) = read_back(&mut rec, "z").await;
    assert_eq!(decoded.len(), 100);
    for (i, v) in decoded.iter().enumerate() {
        assert!(v.contains(&format!(r#""seq":{}"#, i % 20)), "{i}: {v}");
    }
    // A codec Kafka does not know is refused, naming the key.
    let err = admin
        .alter_topic_config(v1::AlterTopicConfigRequest {
            name: "z".into(),
            config: [("compression.type".to_string(), "brotli".to_string())].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("compression.type"), "{err}");
}
