//! A fetch's size is what it names: each listed partition costs a read per
//! round of its long-poll. The broker bounds the list (`fetch_partitions_max`),
//! refuses a partition listed twice, and never waits for more bytes than
//! the answer may hold.

mod support;

use std::time::{Duration, Instant};

use strata_proto::v1;
use support::*;
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
