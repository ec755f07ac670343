//! The client against the real broker binary on an ephemeral port.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::read_everything;
use crate::support::BrokerProcess;
use futures::{FutureExt, StreamExt};
use strata_client::partitioner::partition_for_key;
use strata_client::{
    Client, ConsumerConfig, Error, OffsetReset, ProducerConfig, ProducerRecord, Seek,
};

fn start() -> (tempfile::TempDir, BrokerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    (dir, b)
}

async fn drain(client: &Client, topic: &str, want: usize) -> Vec<strata_client::ConsumerRecord> {
    let mut c = client.consumer(ConsumerConfig::default());
    c.assign_topic(topic, Seek::Beginning).await.unwrap();
    let mut out = Vec::new();
    while out.len() < want {
        out.extend(c.poll().await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_round_trips_and_partitions_keep_order() {
    let (_d, b) = start();
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("t", 3, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig::default());
    let mut deliveries = Vec::new();
    for i in 0..300i64 {
        let mut r = ProducerRecord::new("t")
            .key(format!("key-{}", i % 7))
            .value(format!("value-{i}"))
            .header("n", i.to_string())
            .header("empty", "")
            .timestamp_ms(1_600_000_000_000 + i);
        if i % 10 == 0 {
            r.value = None; // a tombstone
        }
        deliveries.push((i, producer.send(r).await.unwrap()));
    }
    let mut sent = BTreeMap::new();
    for (i, d) in deliveries {
        let m = d.await.unwrap();
        assert_eq!(
            m.partition,
            partition_for_key(format!("key-{}", i % 7).as_bytes(), 3)
        );
        assert_eq!(m.timestamp_ms, 1_600_000_000_000 + i);
        sent.insert((m.partition, m.offset), i);
    }
    producer.close().await.unwrap();

    let got = drain(&client, "t", 300).await;
    assert_eq!(got.len(), 300);
    let mut last: BTreeMap<u32, i64> = BTreeMap::new();
    for r in got {
        let i = sent[&(r.partition, r.offset)];
        assert_eq!(r.key.as_deref(), Some(format!("key-{}", i % 7).as_bytes()));
        let want_value = (i % 10 != 0).then(|| format!("value-{i}"));
        assert_eq!(r.value.as_deref(), want_value.as_deref().map(str::as_bytes));
        assert_eq!(r.timestamp_ms, 1_600_000_000_000 + i);
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.headers[0].key, "n");
        assert_eq!(
            r.headers[0].value.as_deref(),
            Some(i.to_string().as_bytes())
        );
        // Within a partition, records come back in the order they were sent.
        if let Some(prev) = last.insert(r.partition, i) {
            assert!(prev < i, "partition {} out of order", r.partition);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_where_kafka_puts_them() {
    let (_d, b) = start();
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("k", 8, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig::default());
    // Kafka's default partitioner: murmur2(key) & 0x7fffffff % 8.
    let expected = [
        ("21", -973_932_308i32),
        ("foobar", -790_332_482),
        ("abc", 479_470_107),
    ];
    for (key, hash) in expected {
        let m = producer
            .send_and_wait(ProducerRecord::new("k").key(key).value("v"))
            .await
            .unwrap();
        assert_eq!(m.partition, ((hash & 0x7fff_ffff) as u32) % 8, "key {key}");
        let again = producer
            .send_and_wait(ProducerRecord::new("k").key(key).value("w"))
            .await
            .unwrap();
        assert_eq!(
            again.partition, m.partition,
            "the same key, the same partition"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_makes_send_wait_and_flush_delivers_everything() {
    let (_d, b) = start();
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("bp", 3, &[]).await.unwrap();
    let value = vec![b'x'; 1000];
    let hint = strata_client::proto::BatchBuilder::record_len_hint(None, Some(&value), &[]);
    // A batch reserves batch_bytes of the buffer when it opens: room for
    // two open batches and half of a third.
    let batch_bytes = 4 * hint;
    let buffer = 2 * batch_bytes + batch_bytes / 2;
    let producer = client.producer(ProducerConfig {
        buffer_bytes: buffer,
        batch_bytes,
        linger: Duration::from_secs(3600),
        ..ProducerConfig::default()
    });
    let record = |p| ProducerRecord::new("bp").partition(p).value(value.clone());
    let mut deliveries = Vec::new();
    // Two records in each of two partitions: nothing is sent yet (the
    // batches are not full and linger for an hour).
    for p in [0, 0, 1, 1] {
        deliveries.push(producer.send(record(p)).await.unwrap());
        assert_eq!(
            producer.buffer_available(),
            buffer - (p as usize + 1) * batch_bytes,
            "one reservation per open batch, none per record"
        );
    }
    // A third partition's batch does not fit: send waits.
    let blocked = producer.send(record(2));
    tokio::pin!(blocked);
    assert!(
        blocked.as_mut().now_or_never().is_none(),
        "send must wait while the buffer is full"
    );
    // Flushing delivers the four records and frees their room.
    producer.flush().await.unwrap();
    for d in deliveries {
        let m = d.now_or_never().expect("resolved by flush").unwrap();
        assert!(m.offset == 0 || m.offset == 1, "{m:?}");
    }
    let third = blocked.await.unwrap();
    producer.flush().await.unwrap();
    let m = third.now_or_never().unwrap().unwrap();
    assert_eq!((m.partition, m.offset), (2, 0));
    assert_eq!(producer.buffer_available(), buffer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_survive_a_broker_restart_by_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut b = BrokerProcess::start_in(&data, &[]);
    let addr = b.addr;
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("r", 1, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig {
        delivery_timeout: Duration::from_secs(60),
        retry_backoff: Duration::from_millis(20),
        ..ProducerConfig::default()
    });
    producer
        .send_and_wait(ProducerRecord::new("r").value("before"))
        .await
        .unwrap();
    assert!(
        tokio::task::spawn_blocking(move || b.terminate())
            .await
            .unwrap()
            .success()
    );
    // The broker is down: this record's batch fails and is retried.
    let pending = producer
        .send(ProducerRecord::new("r").value("during"))
        .await
        .unwrap();
    let listen = addr.to_string();
    let b =
        tokio::task::spawn_blocking(move || BrokerProcess::start_in(&data, &["--listen", &listen]))
            .await
            .unwrap();
    let m = pending.await.unwrap();
    assert_eq!(m.offset, 1);
    let got = drain(&Client::connect(b.url()).await.unwrap(), "r", 2).await;
    let values: Vec<_> = got.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, vec!["before", "during"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed_and_say_whether_to_retry() {
    let (_d, b) = start();
    let client = Client::connect(b.url()).await.unwrap();
    let producer = client.producer(ProducerConfig::default());
    let err = producer
        .send(ProducerRecord::new("ghost").value("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Status {
                code: tonic::Code::NotFound,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_retriable());
    assert_eq!(
        err.reason(),
        strata_client::ErrorReason::UnknownTopic,
        "{err}"
    );
    client.admin().create_topic("e", 2, &[]).await.unwrap();
    let err = producer
        .send(ProducerRecord::new("e").partition(5).value("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let err = client.admin().create_topic("e", 1, &[]).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Status {
                code: tonic::Code::AlreadyExists,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.reason(),
        strata_client::ErrorReason::TopicExists,
        "{err}"
    );
    assert!(!err.is_retriable());
    let err = Client::connect("http://127.0.0.1:1").await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_positions_follow_the_reset_policy() {
    let (_d, b) = start();
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("o", 1, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig::default());
    for i in 0..5 {
        producer
            .send(ProducerRecord::new("o").value(format!("v{i}")))
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();

    let strict = ConsumerConfig {
        offset_reset: OffsetReset::Error,
        ..ConsumerConfig::default()
    };
    let mut c = client.consumer(strict);
    c.assign("o", 0, Seek::Offset(100)).await.unwrap();
    let err = c.poll().await.unwrap_err();
    assert!(
        matches!(err, Error::OffsetOutOfRange { offset: 100, .. }),
        "{err}"
    );

    let mut c = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    });
    c.assign("o", 0, Seek::Offset(100)).await.unwrap();
    assert!(c.poll().await.unwrap().is_empty());
    assert_eq!(c.position("o", 0), Some(0));
    let got = c.poll().await.unwrap();
    assert_eq!(got.len(), 5);

    let mut c = client.consumer(ConsumerConfig::default()); // Latest
    c.assign("o", 0, Seek::Offset(100)).await.unwrap();
    c.poll().await.unwrap();
    assert_eq!(c.position("o", 0), Some(5));
    // Seeking by time and to the ends.
    c.seek("o", 0, Seek::Beginning).await.unwrap();
    assert_eq!(c.position("o", 0), Some(0));
    c.seek("o", 0, Seek::End).await.unwrap();
    assert_eq!(c.position("o", 0), Some(5));
    c.seek("o", 0, Seek::Timestamp(0)).await.unwrap();
    assert_eq!(c.position("o", 0), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_delivers_new_records_as_they_arrive() {
    let (_d, b) = start();
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("s", 2, &[]).await.unwrap();
    let mut c = client.consumer(ConsumerConfig::default());
    c.assign_topic("s", Seek::End).await.unwrap();
    let mut stream = c.into_stream();
    let producer = client.producer(ProducerConfig::default());
    for i in 0..20 {
        producer
            .send(
                ProducerRecord::new("s")
                    .key(format!("{i}"))
                    .value(format!("{i}")),
            )
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 20 {
        got.push(stream.next().await.unwrap().unwrap());
    }
    let mut values: Vec<i32> = got
        .iter()
        .map(|r| {
            std::str::from_utf8(r.value.as_ref().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    values.sort();
    assert_eq!(values, (0..20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_advances_the_start_and_consumers_reset_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), crate::support::FAST_CLEANUP);
    let client = Client::connect(b.url()).await.unwrap();
    // Small segments, and records stamped in 1970: every sealed segment is
    // past a one-hour retention at the first check.
    client
        .admin()
        .create_topic(
            "old",
            1,
            &[("segment.bytes", "4096"), ("retention.ms", "3600000")],
        )
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig {
        linger: Duration::from_millis(0),
        ..ProducerConfig::default()
    });
    for i in 0..200 {
        producer
            .send_and_wait(
                ProducerRecord::new("old")
                    .value(vec![b'x'; 100])
                    .timestamp_ms(i),
            )
            .await
            .unwrap();
    }
    // Wait (bounded) for the retention task to delete the sealed segments.
    let admin = client.admin();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let start = loop {
        let d = admin.describe_topic("old").await.unwrap();
        let p = &d.partitions[0];
        // Done when only the active segment remains (retention may have
        // run several times while the records were produced).
        if p.log_start_offset > 0 && p.segment_count == 1 {
            break p.log_start_offset;
        }
        // Each describe is a round trip; no sleep is needed between them.
        assert!(std::time::Instant::now() < deadline, "retention never ran");
    };
    // A consumer below the start: reset to earliest or latest, or an error.
    let mut c = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    });
    c.assign("old", 0, Seek::Offset(0)).await.unwrap();
    c.poll().await.unwrap();
    assert_eq!(c.position("old", 0), Some(start));
    let got = c.poll().await.unwrap();
    assert_eq!(got[0].offset, start);
    let mut c = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Error,
        ..ConsumerConfig::default()
    });
    c.assign("old", 0, Seek::Offset(0)).await.unwrap();
    assert!(matches!(
        c.poll().await.unwrap_err(),
        Error::OffsetOutOfRange { offset: 0, .. }
    ));
    // A group whose committed offset fell below the start resets the same
    // way when a member picks the partition up.
    client
        .admin()
        .commit_offsets("g", &[("old".into(), 0, 0)])
        .await
        .unwrap();
    let mut m = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        fetch_wait: Duration::from_millis(50),
        ..ConsumerConfig::default()
    });
    m.subscribe("g", &["old"]).await.unwrap();
    let first = loop {
        if let Some(r) = m.poll().await.unwrap().into_iter().next() {
            break r;
        }
    };
    assert_eq!(first.offset, start);
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_the_newest_value_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut b = BrokerProcess::start_in(&data, crate::support::FAST_CLEANUP);
    let client = Client::connect(b.url()).await.unwrap();
    let admin = client.admin();
    admin
        .create_topic(
            "c",
            1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.bytes", "1024"),
                ("min.cleanable.dirty.ratio", "0.01"),
                ("delete.retention.ms", "0"),
            ],
        )
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig {
        linger: Duration::from_millis(0),
        ..ProducerConfig::default()
    });
    // Keyless records are refused, with the reason.
    let err = producer
        .send_and_wait(ProducerRecord::new("c").value("no key"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("needs a key") && err.to_string().contains("c/0"),
        "{err}"
    );
    // Keys k0..k4 rewritten 20 times; then k4 deleted; then fillers with
    // keys of their own, so all of that lies in sealed segments.
    for round in 0..20 {
        for k in 0..5 {
            producer
                .send_and_wait(
                    ProducerRecord::new("c")
                        .key(format!("k{k}"))
                        .value(format!("k{k}-r{round}")),
                )
                .await
                .unwrap();
        }
    }
    producer
        .send_and_wait(ProducerRecord::new("c").key("k4"))
        .await
        .unwrap();
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
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let records = loop {
        let records = read_everything(&client, "c").await;
        let ks: Vec<_> = records
            .iter()
            .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(b"k")))
            .collect();
        if ks.len() == 4 {
            break records;
        }
        assert!(std::time::Instant::now() < deadline, "compaction never ran");
    };
    for k in 0..4 {
        let latest: Vec<_> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(format!("k{k}").as_bytes()))
            .collect();
        assert_eq!(latest.len(), 1);
        assert_eq!(
            latest[0].value.as_deref(),
            Some(format!("k{k}-r19").as_bytes())
        );
        // Offsets never change: round 19 of key k was record 95 + k.
        assert_eq!(latest[0].offset, 95 + k);
    }
    assert!(
        !records.iter().any(|r| r.key.as_deref() == Some(b"k4")),
        "k4 was deleted by its tombstone, and the tombstone is gone"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(b"f")))
            .count(),
        40
    );

    // The policy can change at run time, and the change survives a restart.
    admin
        .alter_topic_config("c", &[("cleanup.policy", "compact,delete")])
        .await
        .unwrap();
    assert!(b.terminate().success());
    let b = BrokerProcess::start_in(&data, &[]);
    let client = Client::connect(b.url()).await.unwrap();
    let d = client.admin().describe_topic("c").await.unwrap();
    assert_eq!(d.config["cleanup.policy"], "compact,delete");
    assert_eq!(d.config["delete.retention.ms"], "0");
    assert_eq!(read_everything(&client, "c").await.len(), records.len());
    client
        .admin()
        .alter_topic_config("c", &[("cleanup.policy", "delete")])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    producer
        .send_and_wait(ProducerRecord::new("c").value("keyless is fine now"))
        .await
        .unwrap();
    let err = client
        .admin()
        .alter_topic_config("c", &[("cleanup.policy", "shred")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cleanup.policy"), "{err}");
}

/// With no linger, records go as soon as their partition's sender is free,
/// and those that arrive meanwhile batch up behind the one in flight:
/// nothing is lost, order holds, and they share requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_linger_sends_at_once_and_batches_behind_the_one_in_flight() {
    let (_d, b) = start();
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("z", 1, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig {
        linger: Duration::ZERO,
        ..ProducerConfig::default()
    });
    let mut deliveries = Vec::new();
    for i in 0..2000 {
        deliveries.push(
            producer
                .send(ProducerRecord::new("z").value(format!("{i}")))
                .await
                .unwrap(),
        );
    }
    let mut offsets = Vec::new();
    for d in deliveries {
        offsets.push(d.await.unwrap().offset);
    }
    assert_eq!(
        offsets,
        (0..2000).collect::<Vec<i64>>(),
        "in order, none lost"
    );
    let records = drain(&client, "z", 2000).await;
    let values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, (0..2000).map(|i| i.to_string()).collect::<Vec<_>>());
    // Fewer batches than records: they gathered behind the first.
    let fetched = client.admin().describe_topic("z").await.unwrap().partitions[0].size_bytes;
    assert!(
        fetched < 2000 * 61,
        "{fetched} bytes: each record in its own batch would take at least {}",
        2000 * 61
    );
    producer.close().await.unwrap();
}
