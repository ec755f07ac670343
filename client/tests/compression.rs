//! The producer compresses, the consumer decompresses: each codec through
//! the real broker, byte for byte, and stored with the codec the producer
//! chose.

#[path = "../../broker/tests/support/mod.rs"]
mod support;

use strata_client::proto::Batch;
use strata_client::{Client, Compression, ConsumerConfig, ProducerConfig, ProducerRecord, Seek};
use support::{BrokerProcess, fetch_one, only};

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
    }
}
