//! A fetch's size is what it names: each listed partition costs a read per
//! round of its long-poll. The broker bounds the list (`fetch_partitions_max`),
//! refuses a partition listed twice, and never waits for more bytes than
//! the answer may hold. Answers and queued subscription messages together
//! hold at most `response_bytes_max`: a fetch that cannot get memory before
//! its deadline answers offsets only, and the memory comes back.

use std::time::{Duration, Instant};

use crate::support::*;
use strata_proto::v1;
use tonic::Code;

fn fetch_of(topic: &str, partitions: &[u32]) -> v1::FetchRequest {
    let mut req = fetch_one(topic, 0, 0, false);
    req.topics[0].partitions = partitions
        .iter()
        .map(|&partition| v1::FetchPartition {
            partition,
            offset: 0,
            max_bytes: 0,
        })
        .collect();
    req
}

#[tokio::test]
async fn a_fetch_names_each_partition_once_and_at_most_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &["--fetch-partitions-max", "3"]);
    let mut admin = b.admin().await;
    create_topic(&mut admin, "f", 4, &[]).await;
    let mut rec = b.records().await;

    let err = rec.fetch(fetch_of("f", &[0, 1, 0])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("f/0 is listed twice"), "{err}");

    let err = rec.fetch(fetch_of("f", &[0, 1, 2, 3])).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("fetch_partitions_max"), "{err}");

    // Within the limit, and the broker goes on serving.
    let got = rec
        .fetch(fetch_of("f", &[0, 1, 2]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.topics[0].partitions.len(), 3);
}

#[tokio::test]
async fn min_bytes_above_max_bytes_does_not_wait_for_what_cannot_come() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let mut admin = b.admin().await;
    create_topic(&mut admin, "m", 1, &[]).await;
    let mut rec = b.records().await;
    // One batch larger than the fetch's max_bytes: it comes whole (a fetch
    // always returns at least one batch), and that is all it can hold.
    rec.produce(produce_batch(
        "m",
        0,
        batch_of("big", 20),
        v1::Acks::Durable,
    ))
    .await
    .unwrap();
    let mut req = fetch_one("m", 0, 0, false);
    req.max_bytes = 100;
    req.min_bytes = 10_000_000;
    req.max_wait_ms = 20_000;
    let started = Instant::now();
    let got = only(rec.fetch(req).await.unwrap().into_inner());
    assert!(got.batches.len() > 100, "{} bytes", got.batches.len());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?} for bytes a 100-byte answer cannot hold",
        started.elapsed()
    );
}

/// A batch of one record with a value of `bytes` bytes.
fn big_batch(bytes: usize) -> bytes::Bytes {
    let mut b = strata_proto::BatchBuilder::new();
    b.push(1_700_000_000_000, None, Some(&vec![7u8; bytes]), &[]);
    b.finish()
}

fn held_bytes(b: &BrokerProcess) -> u64 {
    let (_, body) = b.http_get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix("strata_response_bytes_held "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn response_memory_is_bounded_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(
        &dir.path().join("data"),
        &[
            "--fetch-bytes-max",
            "1048576",
            "--response-bytes-max",
            "1048576",
        ],
    );
    let mut admin = b.admin().await;
    create_topic(&mut admin, "r", 1, &[]).await;
    let mut rec = b.records().await;
    for _ in 0..8 {
        rec.produce(produce_batch(
            "r",
            0,
            big_batch(900 << 10),
            v1::Acks::Written,
        ))
        .await
        .unwrap();
    }
    // The budget is one full fetch. A subscriber that never reads: its
    // queued messages hold part of it (how much depends on what the
    // transport has taken).
    let idle = rec
        .subscribe(subscribe_earliest("r", 0, 1 << 20))
        .await
        .unwrap()
        .into_inner();
    // Fetches still answer, within their wait, with the right offsets.
    for _ in 0..5 {
        let mut req = fetch_one("r", 0, 0, false);
        req.max_wait_ms = 100;
        let got = tokio::time::timeout(Duration::from_secs(20), rec.fetch(req))
            .await
            .expect("a fetch answers within its wait even when memory is short")
            .unwrap()
            .into_inner();
        let p = only(got);
        assert_eq!(p.high_watermark, 8);
        assert!(p.error.is_none(), "{:?}", p.error);
    }
    drop(idle);
    // Every byte comes back once the subscriber is gone: a fetch of the
    // whole budget waits (up to its max_wait) until it has all of it.
    let mut req = fetch_one("r", 0, 0, false);
    req.max_wait_ms = 30_000;
    let p = only(rec.fetch(req).await.unwrap().into_inner());
    assert!(
        !p.batches.is_empty(),
        "the subscriber's memory never came back"
    );
    // And nothing leaks: fetch after fetch gets its memory and its data.
    for i in 0..40 {
        let got = rec
            .fetch(fetch_one("r", 0, i % 8, false))
            .await
            .unwrap()
            .into_inner();
        let p = only(got);
        assert!(!p.batches.is_empty(), "fetch {i} got no data");
    }
    assert_eq!(held_bytes(&b), 0);
}
