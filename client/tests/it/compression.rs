//! The producer compresses, the consumer decompresses: each codec through
//! the real broker, byte for byte, and stored with the codec the producer
//! chose.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::read_everything;

use crate::support::{BrokerProcess, fetch_one, only};
use strata_client::proto::Batch;
use strata_client::{Client, Compression, ConsumerConfig, ProducerConfig, ProducerRecord, Seek};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_codec_round_trips_through_producer_and_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let client = Client::connect(b.url()).await.unwrap();
    let mut raw = b.records().await;
    for codec in Compression::ALL {
        let topic = format!("t-{}", codec.name());
        client.admin().create_topic(&topic, 1, &[]).await.unwrap();
        let producer = client.producer(ProducerConfig {
            compression: codec,
            ..ProducerConfig::default()
        });
        let value = |i: usize| format!(r#"{{"id":{i},"kind":"order","total":{}.50}}"#, i * 3);
        let mut pending = Vec::new();
        for i in 0..500 {
            let r = ProducerRecord::new(topic.as_str())
                .key(format!("k{}", i % 9))
                .value(value(i))
                .header("i", i.to_string());
            pending.push(producer.send(r).await.unwrap());
        }
        for p in pending {
            p.await.unwrap();
        }
        producer.close().await.unwrap();

        let mut c = client.consumer(ConsumerConfig::default());
        c.assign_topic(&topic, Seek::Beginning).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 500 {
            got.extend(c.poll().await.unwrap());
        }
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, i as i64, "{codec:?}");
            assert_eq!(r.key.as_deref(), Some(format!("k{}", i % 9).as_bytes()));
            assert_eq!(r.value.as_deref(), Some(value(i).as_bytes()), "{codec:?}");
            assert_eq!(
                r.headers[0].value.as_deref(),
                Some(i.to_string().as_bytes())
            );
        }
        // Stored as the producer sent it: every batch carries its codec.
        let stored = only(
            raw.fetch(fetch_one(&topic, 0, 0, false))
                .await
                .unwrap()
                .into_inner(),
        );
        let batches = Batch::decode_all(stored.batches).unwrap();
        assert!(!batches.is_empty());
        for batch in &batches {
            assert_eq!(batch.header().attributes.compression().unwrap(), codec);
        }
        // A consumer bound below a batch's records refuses it by name.
        if codec != Compression::None {
            let mut tight = client.consumer(ConsumerConfig {
                batch_decompressed_bytes_max: 1000,
                ..ConsumerConfig::default()
            });
            tight.assign_topic(&topic, Seek::Beginning).await.unwrap();
            let err = tight.poll().await.unwrap_err();
            assert!(
                err.to_string().contains("batch_decompressed_bytes_max"),
                "{codec:?}: {err}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_of_an_lz4_topic_keeps_the_newest_value_per_key_and_the_codec() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), crate::support::FAST_CLEANUP);
    let client = Client::connect(b.url()).await.unwrap();
    let config = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "1024"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ];
    client.admin().create_topic("c", 1, &config).await.unwrap();
    let producer = client.producer(ProducerConfig {
        compression: Compression::Lz4,
        ..ProducerConfig::default()
    });
    // Rounds of five records over seven keys: each batch holds some keys'
    // newest values and some that later rounds replace, so compaction
    // rewrites batches rather than only dropping whole ones.
    let mut newest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for round in 0..30 {
        let mut pending = Vec::new();
        for j in 0..5 {
            let key = format!("k{}", (round + j) % 7);
            let value = format!("{key}-r{round}");
            let r = ProducerRecord::new("c")
                .key(key.clone())
                .value(value.clone());
            pending.push((key, value, producer.send(r).await.unwrap()));
        }
        for (key, value, p) in pending {
            newest.insert(key, (p.await.unwrap().offset, value));
        }
    }
    // Fillers with keys of their own, so the rounds lie in sealed segments.
    for f in 0..40 {
        producer
            .send_and_wait(
                ProducerRecord::new("c")
                    .key(format!("f{f}"))
                    .value("filler"),
            )
            .await
            .unwrap();
    }
    // Wait (bounded) for the background pass; each check is a full read.
    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        let records = read_everything(&client, "c").await;
        let ks = records
            .iter()
            .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(b"k")))
            .count();
        if ks == newest.len() {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "compaction never ran ({ks} k-records)"
        );
    };
    for (key, (offset, value)) in &newest {
        let got: Vec<_> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(key.as_bytes()))
            .collect();
        assert_eq!(got.len(), 1, "{key}");
        assert_eq!(got[0].value.as_deref(), Some(value.as_bytes()), "{key}");
        assert_eq!(got[0].offset, *offset, "{key}: offsets never change");
    }
    // Rewritten batches are still lz4.
    let mut raw = b.records().await;
    let stored = only(
        raw.fetch(fetch_one("c", 0, 0, false))
            .await
            .unwrap()
            .into_inner(),
    );
    let batches = Batch::decode_all(stored.batches).unwrap();
    assert!(!batches.is_empty());
    let rewritten = batches
        .iter()
        .filter(|b| b.header().record_count < b.header().last_offset_delta + 1)
        .count();
    assert!(rewritten > 0, "some batch lost records and kept the rest");
    for batch in &batches {
        assert_eq!(
            batch.header().attributes.compression().unwrap(),
            Compression::Lz4
        );
    }
}
