//! The producer with several batches of a partition in flight, against the
//! real broker: answers lost on the way back, a broker restart, a `kill -9`,
//! a batch refused in the middle of the window, a sequence gap at the
//! broker, and the batch API. Every test checks what users depend on: each
//! acknowledged record is in the log exactly once, and a partition's
//! records are in the order they were sent.

use std::sync::Arc;
use std::time::Duration;

use crate::common::read_everything;
use crate::support::BrokerProcess;
use strata_client::{Client, DeliveryFuture, Error, ErrorReason, ProducerConfig, ProducerRecord};

/// Small batches (a few records each), so that a few hundred records make
/// many batches and the window of five fills.
fn config() -> ProducerConfig {
    ProducerConfig {
        batch_bytes: 4096,
        linger: Duration::from_millis(1),
        retry_backoff: Duration::from_millis(5),
        retry_backoff_max: Duration::from_millis(50),
        delivery_timeout: Duration::from_secs(60),
        max_in_flight: 5,
        ..ProducerConfig::default()
    }
}

fn value(i: usize) -> Vec<u8> {
    let mut v = format!("{i:08}-").into_bytes();
    v.resize(500, b'.');
    v
}

/// Every value in `topic`/0 from the start, as record numbers.
async fn read_all(client: &Client, topic: &str) -> Vec<usize> {
    read_everything(client, topic)
        .await
        .into_iter()
        .map(|r| {
            let v = r.value.unwrap();
            std::str::from_utf8(&v[..8]).unwrap().parse().unwrap()
        })
        .collect()
}

/// Sends `n` records to `topic`/0 without waiting, then awaits them all;
/// returns each record's offset (or error), in send order.
async fn send_many(
    producer: &strata_client::Producer,
    topic: &Arc<str>,
    range: std::ops::Range<usize>,
) -> Vec<Result<i64, Error>> {
    let mut pending: Vec<DeliveryFuture> = Vec::new();
    for i in range {
        pending.push(
            producer
                .send(ProducerRecord::new(topic).partition(0).value(value(i)))
                .await
                .unwrap(),
        );
    }
    let mut out = Vec::new();
    for d in pending {
        out.push(d.await.map(|m| m.offset));
    }
    out
}

fn assert_in_order_once(got: &[usize], n: usize) {
    let want: Vec<usize> = (0..n).collect();
    assert_eq!(got.len(), n, "records in the log");
    assert_eq!(got, want.as_slice(), "every record once, in send order");
}

fn assert_offsets_follow_send_order(offsets: &[Result<i64, Error>]) {
    let offsets: Vec<i64> = offsets
        .iter()
        .map(|r| *r.as_ref().unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert!(
        offsets.windows(2).all(|w| w[1] == w[0] + 1),
        "offsets grow by one in send order: {offsets:?}"
    );
}

/// A broker that loses every third answer after its appends, as if the
/// connection dropped (the stream ends and every batch in flight is sent
/// again), with a one-partition `topic`.
async fn losing_broker(dir: &tempfile::TempDir, topic: &str) -> (BrokerProcess, Client) {
    let b = BrokerProcess::start_in(
        &dir.path().join("data"),
        &["--test-lose-produce-responses", "3"],
    );
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic(topic, 1, &[]).await.unwrap();
    (b, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_with_five_in_flight_append_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_b, client) = losing_broker(&dir, "lost").await;
    let producer = client.producer(config());
    let topic: Arc<str> = "lost".into();
    let n = 2000;
    let offsets = send_many(&producer, &topic, 0..n).await;
    assert_offsets_follow_send_order(&offsets);
    assert_eq!(offsets[0].as_ref().unwrap(), &0);
    let stats = producer.stats();
    assert!(
        stats.in_flight_peak > 1,
        "several batches were in flight: {stats:?}"
    );
    assert!(stats.batches_retried > 0, "answers were lost: {stats:?}");
    assert_in_order_once(&read_all(&client, "lost").await, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_idempotence_lost_answers_duplicate() {
    // The same loss without idempotence appends retried batches again:
    // the hook bites, and it is idempotence that keeps the test above clean.
    let dir = tempfile::tempdir().unwrap();
    let (_b, client) = losing_broker(&dir, "dup").await;
    let producer = client.producer(ProducerConfig {
        idempotence: false,
        ..config()
    });
    let topic: Arc<str> = "dup".into();
    for r in send_many(&producer, &topic, 0..500).await {
        r.unwrap();
    }
    let got = read_all(&client, "dup").await;
    assert!(got.len() > 500, "expected duplicates, got {}", got.len());
}

/// Sends `n` records while `disrupt` runs against the broker once
/// `n / 4` have been sent; returns the records read back afterwards.
async fn produce_through(
    n: usize,
    disrupt: impl FnOnce(BrokerProcess) -> BrokerProcess + Send + 'static,
) -> Vec<usize> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let b = BrokerProcess::start_in(&data, &[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("r", 1, &[]).await.unwrap();
    let producer = client.producer(config());
    let topic: Arc<str> = "r".into();
    let mut pending = Vec::new();
    let mut b = Some(b);
    let mut disrupt = Some(disrupt);
    for i in 0..n {
        if i == n / 4 {
            let (b0, f) = (b.take().unwrap(), disrupt.take().unwrap());
            b = Some(tokio::task::spawn_blocking(move || f(b0)).await.unwrap());
        }
        pending.push(
            producer
                .send(ProducerRecord::new(&topic).partition(0).value(value(i)))
                .await
                .unwrap(),
        );
    }
    let mut offsets = Vec::new();
    for d in pending {
        offsets.push(d.await.map(|m| m.offset));
    }
    assert_offsets_follow_send_order(&offsets);
    let stats = producer.stats();
    assert!(stats.in_flight_peak > 1, "{stats:?}");
    let b = b.unwrap();
    read_all(&Client::connect(b.url()).await.unwrap(), "r").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_with_five_in_flight_loses_and_repeats_nothing() {
    let n = 3000;
    let got = produce_through(n, |mut b| {
        let (addr, data) = (b.addr.to_string(), b.data_dir.clone());
        assert!(b.terminate().success());
        BrokerProcess::start_in(&data, &["--listen", &addr])
    })
    .await;
    assert_in_order_once(&got, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_with_five_in_flight_loses_and_repeats_nothing() {
    let n = 3000;
    let got = produce_through(n, |mut b| {
        let (addr, data) = (b.addr.to_string(), b.data_dir.clone());
        b.kill9();
        BrokerProcess::start_in(&data, &["--listen", &addr])
    })
    .await;
    assert_in_order_once(&got, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_fails_alone_and_the_ones_behind_it_follow_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let client = Client::connect(b.url()).await.unwrap();
    // A compacted topic refuses a batch with a keyless record.
    client
        .admin()
        .create_topic("c", 1, &[("cleanup.policy", "compact")])
        .await
        .unwrap();
    // One record per batch, sent at once: up to five in flight.
    let producer = client.producer(ProducerConfig {
        batch_bytes: 100,
        linger: Duration::ZERO,
        ..config()
    });
    let mut pending = Vec::new();
    for i in 0..40usize {
        let mut r = ProducerRecord::new("c").partition(0).value(value(i));
        if i != 7 {
            r = r.key(format!("k{i}"));
        }
        pending.push(producer.send(r).await.unwrap());
    }
    let mut offsets = Vec::new();
    for (i, d) in pending.into_iter().enumerate() {
        match d.await {
            Ok(m) => offsets.push(Ok(m.offset)),
            Err(e) => {
                assert_eq!(i, 7, "only the keyless record fails: {e}");
                assert_eq!(e.reason(), ErrorReason::KeyRequired, "{e}");
                assert!(!e.is_retriable());
            }
        }
    }
    assert_offsets_follow_send_order(&offsets);
    let want: Vec<usize> = (0..40).filter(|&i| i != 7).collect();
    assert_eq!(read_all(&client, "c").await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_gap_fails_that_batch_and_the_next_starts_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("gap", 1, &[]).await.unwrap();
    let producer = client.producer(config());
    let m = producer
        .send_and_wait(ProducerRecord::new("gap").value(value(0)))
        .await
        .unwrap();
    assert_eq!(m.offset, 0);
    // Learn the producer's id from what it stored, then put ten records
    // under that id in the log, as if sent by it: the broker now expects
    // sequence 11 where the producer goes on at 1, a real gap. (Only an id
    // the broker issued is accepted.)
    let mut rec = b.records().await;
    let first = crate::support::only(
        rec.fetch(crate::support::fetch_one("gap", 0, 0, false))
            .await
            .unwrap()
            .into_inner(),
    );
    let mine = strata_proto::BatchHeader::parse(&first.batches)
        .unwrap()
        .producer_id;
    let mut planted = strata_proto::BatchBuilder::new();
    for i in 0..10 {
        planted.push(i, None, Some(b"planted"), &[]);
    }
    planted.producer(mine, 0, 1);
    let r = rec
        .produce(crate::support::produce_batch(
            "gap",
            0,
            planted.finish(),
            strata_proto::v1::Acks::Durable,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.topics[0].partitions[0].error.is_none());

    let err = producer
        .send_and_wait(ProducerRecord::new("gap").value(value(1)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), ErrorReason::OutOfOrderSequence, "{err}");
    // The next batch starts over under the next epoch, same producer id.
    let m = producer
        .send_and_wait(ProducerRecord::new("gap").value(value(2)))
        .await
        .unwrap();
    assert_eq!(m.offset, 11);
    let fetched = crate::support::only(
        rec.fetch(crate::support::fetch_one("gap", 0, 11, false))
            .await
            .unwrap()
            .into_inner(),
    );
    let h = strata_proto::BatchHeader::parse(&fetched.batches).unwrap();
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (mine, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_id_the_broker_never_issued_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("ids", 1, &[]).await.unwrap();
    let mut rec = b.records().await;
    let issued = rec
        .init_producer(strata_proto::v1::InitProducerRequest {})
        .await
        .unwrap()
        .into_inner()
        .producer_id;
    let mut forged = strata_proto::BatchBuilder::new();
    forged.push(0, None, Some(b"forged"), &[]);
    forged.producer(issued + 1, 0, 0);
    let r = rec
        .produce(crate::support::produce_batch(
            "ids",
            0,
            forged.finish(),
            strata_proto::v1::Acks::Durable,
        ))
        .await
        .unwrap()
        .into_inner();
    let e = r.topics[0].partitions[0].error.clone().expect("refused");
    assert_eq!(e.code, tonic::Code::InvalidArgument as i32, "{e:?}");
    assert!(e.message.contains("never issued"), "{e:?}");
    // The issued one is accepted.
    let mut ok = strata_proto::BatchBuilder::new();
    ok.push(0, None, Some(b"mine"), &[]);
    ok.producer(issued, 0, 0);
    let r = rec
        .produce(crate::support::produce_batch(
            "ids",
            0,
            ok.finish(),
            strata_proto::v1::Acks::Durable,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.topics[0].partitions[0].error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_answers_each_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("all", 2, &[]).await.unwrap();
    let producer = client.producer(config());
    let topic: Arc<str> = "all".into();
    let records = (0..1000usize).map(|i| {
        // Record 500 names a partition the topic does not have.
        let p = if i == 500 { 9 } else { 0 };
        ProducerRecord::new(&topic)
            .partition(p)
            .value(value(i))
            .timestamp_ms(i as i64)
    });
    let results = producer.send_all(records).await.unwrap().await;
    assert_eq!(results.len(), 1000);
    let mut next = 0;
    for (i, r) in results.iter().enumerate() {
        if i == 500 {
            let e = r.as_ref().unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
            continue;
        }
        let m = r.as_ref().unwrap();
        assert_eq!((m.partition, m.offset, m.timestamp_ms), (0, next, i as i64));
        next += 1;
    }
    let want: Vec<usize> = (0..1000).filter(|&i| i != 500).collect();
    assert_eq!(read_all(&client, "all").await, want);
    assert!(producer.stats().batches_sent > 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_is_bounded_by_what_the_broker_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let client = Client::connect(b.url()).await.unwrap();
    let producer = client.producer(ProducerConfig {
        max_in_flight: 6,
        ..ProducerConfig::default()
    });
    let err = producer
        .send(ProducerRecord::new("t").value("x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("MAX_IN_FLIGHT_MAX"), "{err}");
}
