//! The broker over gRPC, end to end: the real binary on an ephemeral port,
//! a temporary data directory, generated tonic clients.

use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use futures::StreamExt;
use strata_proto::v1::{self, partition_produce_data::Data};
use strata_proto::{Batch, BatchBuilder, Header};
use tonic::Code;

fn start() -> (tempfile::TempDir, BrokerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    (dir, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_admin_round_trip() {
    let (_d, b) = start();
    let mut admin = b.admin().await;
    create_topic(&mut admin, "orders", 3, &[("retention.ms", "60000")]).await;
    create_topic(&mut admin, "audit", 0, &[]).await;
    let list = admin
        .list_topics(v1::ListTopicsRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<(String, u32)> = list
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.partitions))
        .collect();
    assert_eq!(names, vec![("audit".into(), 1), ("orders".into(), 3)]);

    let d = admin
        .describe_topic(v1::DescribeTopicRequest {
            name: "orders".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    assert_eq!(d.partitions.len(), 3);
    assert_eq!(d.config["retention.ms"], "60000");
    assert_eq!(d.config["durability"], "fsync");
    assert_eq!(d.overridden_keys, vec!["retention.ms".to_string()]);
    assert!(
        d.partitions
            .iter()
            .all(|p| p.log_end_offset == 0 && p.segment_count == 1)
    );

    let altered = admin
        .alter_topic_config(v1::AlterTopicConfigRequest {
            name: "orders".into(),
            config: [
                ("retention.ms".to_string(), String::new()),
                ("segment.bytes".to_string(), "1048576".to_string()),
            ]
            .into(),
        })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    assert_eq!(
        altered.config["retention.ms"], "604800000",
        "reset to the default"
    );
    assert_eq!(altered.config["segment.bytes"], "1048576");

    let grown = admin
        .create_partitions(v1::CreatePartitionsRequest {
            name: "orders".into(),
            partitions: 5,
        })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    assert_eq!(grown.partitions.len(), 5);
    let err = admin
        .create_partitions(v1::CreatePartitionsRequest {
            name: "orders".into(),
            partitions: 2,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("never removed"), "{}", err.message());

    admin
        .delete_topic(v1::DeleteTopicRequest {
            name: "audit".into(),
        })
        .await
        .unwrap();
    let err = admin
        .describe_topic(v1::DescribeTopicRequest {
            name: "audit".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("audit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_errors_name_the_problem() {
    let (_d, b) = start();
    let mut admin = b.admin().await;
    create_topic(&mut admin, "t", 1, &[]).await;
    let cases: Vec<(v1::CreateTopicRequest, Code, &str)> = vec![
        (
            v1::CreateTopicRequest {
                name: "bad/name".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
            "bad/name",
        ),
        (
            v1::CreateTopicRequest {
                name: "..".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
            "..",
        ),
        (
            v1::CreateTopicRequest {
                name: "__internal".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
            "reserved",
        ),
        (
            v1::CreateTopicRequest {
                name: "x".repeat(250),
                ..Default::default()
            },
            Code::InvalidArgument,
            "249",
        ),
        (
            v1::CreateTopicRequest {
                name: "t".into(),
                ..Default::default()
            },
            Code::AlreadyExists,
            "\"t\"",
        ),
        (
            v1::CreateTopicRequest {
                name: "c".into(),
                partitions: 1,
                config: [("retention.ms".into(), "soon".into())].into(),
            },
            Code::InvalidArgument,
            "retention.ms",
        ),
        (
            v1::CreateTopicRequest {
                name: "c".into(),
                partitions: 1,
                config: [("colour".into(), "blue".into())].into(),
            },
            Code::InvalidArgument,
            "colour",
        ),
        (
            v1::CreateTopicRequest {
                name: "c".into(),
                partitions: 1_000_000,
                ..Default::default()
            },
            Code::ResourceExhausted,
            "partitions_max",
        ),
    ];
    for (req, code, needle) in cases {
        let name = req.name.clone();
        let err = admin.create_topic(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{name}: {}", err.message());
        assert!(err.message().contains(needle), "{name}: {}", err.message());
        // Every refusal says why and that retrying will not help.
        let (reason, retriable) = error_info(&err);
        assert!(!retriable, "{name}: {reason}");
        if code == Code::ResourceExhausted {
            assert_eq!(reason, "LIMIT_EXCEEDED");
        }
        if code == Code::AlreadyExists {
            assert_eq!(reason, "TOPIC_EXISTS");
        }
    }
    // The broker keeps serving after every refusal.
    create_topic(&mut admin, "still-fine", 1, &[]).await;
}

/// The `ErrorInfo` reason and retriable flag of a failed call.
fn error_info(status: &tonic::Status) -> (String, bool) {
    use tonic_types::StatusExt;
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "strata.v1");
    let retriable = info.metadata.get("retriable").map(String::as_str);
    assert!(matches!(retriable, Some("true" | "false")), "{info:?}");
    (info.reason, retriable == Some("true"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_limit_is_busy_and_retriable_one_that_never_fits_is_not() {
    use tonic_types::StatusExt;
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &["--subscriptions-max", "1"]);
    let mut admin = b.admin().await;
    create_topic(&mut admin, "s", 1, &[]).await;
    let mut rec = b.records().await;
    let sub = || v1::SubscribeRequest {
        partitions: vec![v1::SubscribePartition {
            topic: "s".into(),
            partition: 0,
            start: Some(v1::subscribe_partition::Start::Latest(true)),
        }],
        max_bytes: 0,
        decode: false,
    };
    let _open = rec.subscribe(sub()).await.unwrap();
    let err = rec.subscribe(sub()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("subscriptions_max"),
        "{}",
        err.message()
    );
    assert_eq!(error_info(&err), ("BUSY".into(), true));
    assert!(
        err.get_details_retry_info().is_some(),
        "RetryInfo on a retriable error"
    );
    // The same code for a limit a request can never fit, but not retriable.
    let err = admin
        .create_topic(v1::CreateTopicRequest {
            name: "wide".into(),
            partitions: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(error_info(&err), ("LIMIT_EXCEEDED".into(), false));
    assert!(err.get_details_retry_info().is_none());
}

fn record_list(tag: &str) -> v1::RecordList {
    v1::RecordList {
        records: (0..5)
            .map(|i| v1::Record {
                key: (i % 2 == 0).then(|| Bytes::from(format!("key-{i}"))),
                value: (i != 3).then(|| Bytes::from(format!("{tag}-{i}"))),
                headers: vec![
                    v1::Header {
                        key: "trace".into(),
                        value: Some(Bytes::from(vec![0, 1, 2, i as u8])),
                    },
                    v1::Header {
                        key: "empty".into(),
                        value: None,
                    },
                ],
                timestamp_ms: Some(1_600_000_000_000 + i),
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_fetch_round_trip_in_both_encodings() {
    let (_d, b) = start();
    let mut admin = b.admin().await;
    create_topic(&mut admin, "a", 2, &[]).await;
    create_topic(&mut admin, "b", 1, &[]).await;
    let mut rec = b.records().await;

    // A raw batch built by us, with keys, headers and timestamps.
    let mut bb = BatchBuilder::new();
    bb.push(
        1_500_000_000_000,
        Some(b"k0"),
        Some(b"v0"),
        &[Header::new("h", Some(b"x".as_slice()))],
    );
    bb.push(1_500_000_000_500, None, None, &[]);
    let raw = bb.finish();

    let req = v1::ProduceRequest {
        acks: v1::Acks::Durable as i32,
        topics: vec![
            v1::TopicProduceData {
                topic: "a".into(),
                partitions: vec![
                    v1::PartitionProduceData {
                        partition: 0,
                        data: Some(Data::Batch(raw.clone())),
                    },
                    v1::PartitionProduceData {
                        partition: 1,
                        data: Some(Data::Records(record_list("a1"))),
                    },
                    v1::PartitionProduceData {
                        partition: 0,
                        data: Some(Data::Records(record_list("a0"))),
                    },
                ],
            },
            v1::TopicProduceData {
                topic: "b".into(),
                partitions: vec![v1::PartitionProduceData {
                    partition: 0,
                    data: Some(Data::Batch(raw.clone())),
                }],
            },
        ],
    };
    let resp = rec.produce(req).await.unwrap().into_inner();
    let offsets: Vec<Vec<(u32, i64)>> = resp
        .topics
        .iter()
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition, p.base_offset))
                .collect()
        })
        .collect();
    assert_eq!(offsets, vec![vec![(0, 0), (1, 0), (0, 2)], vec![(0, 0)]]);
    assert!(
        resp.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .all(|p| p.error.is_none())
    );

    // Raw: the bytes we sent, with only the base offset stamped in.
    let got = only(
        rec.fetch(fetch_one("b", 0, 0, false))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(got.high_watermark, 2);
    let mut expected = raw.to_vec();
    strata_proto::batch::set_base_offset(&mut expected, 0);
    assert_eq!(got.batches.as_ref(), &expected[..]);

    // Structured: every field back, from the requested offset on.
    let got = only(
        rec.fetch(fetch_one("a", 1, 1, true))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(got.batches.is_empty());
    let sent = record_list("a1").records;
    assert_eq!(got.records.len(), 4, "records before offset 1 are skipped");
    for (r, s) in got.records.iter().zip(&sent[1..]) {
        assert_eq!(r.key, s.key);
        assert_eq!(r.value, s.value);
        assert_eq!(Some(r.timestamp_ms), s.timestamp_ms);
        assert_eq!(r.headers, s.headers);
    }
    // The structured records the broker encoded decode as a Kafka batch too.
    let got = only(
        rec.fetch(fetch_one("a", 0, 2, false))
            .await
            .unwrap()
            .into_inner(),
    );
    let batches = Batch::decode_all(got.batches).unwrap();
    let recs = batches.last().unwrap().decode_records().unwrap();
    assert_eq!(recs[0].offset, 2);
    assert_eq!(recs[0].value.as_deref(), Some(&b"a0-0"[..]));
    assert_eq!(recs[3].value, None, "a tombstone stays a tombstone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_long_polls_until_data_or_timeout() {
    let (_d, b) = start();
    let mut admin = b.admin().await;
    create_topic(&mut admin, "lp", 1, &[]).await;
    let mut rec = b.records().await;

    // Nothing arrives: an empty answer after max_wait_ms.
    let mut req = fetch_one("lp", 0, 0, false);
    req.min_bytes = 1;
    req.max_wait_ms = 200;
    let started = Instant::now();
    let got = only(rec.fetch(req.clone()).await.unwrap().into_inner());
    assert!(got.batches.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(200));

    // A record arrives while the fetch waits (up to 30 s): it wakes. Its
    // answer comes long before the deadline (a broken wake would answer
    // at it, with the record too, and pass the checks below it).
    req.max_wait_ms = 30_000;
    let mut waiter = rec.clone();
    let pending = tokio::spawn(async move { waiter.fetch(req).await });
    // Produce only once the fetch is waiting: the broker answers a fetch at
    // the end with nothing until min_bytes arrive, so this cannot race.
    tokio::task::yield_now().await;
    rec.produce(produce_batch(
        "lp",
        0,
        batch_of("wake", 3),
        v1::Acks::Durable,
    ))
    .await
    .unwrap();
    let produced = Instant::now();
    let got = only(pending.await.unwrap().unwrap().into_inner());
    assert!(
        produced.elapsed() < Duration::from_secs(15),
        "the fetch answered {:?} after the produce: at its deadline, not woken",
        produced.elapsed()
    );
    let recs = Batch::decode_all(got.batches).unwrap()[0]
        .decode_records()
        .unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(got.high_watermark, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_sees_every_record_in_order() {
    let (_d, b) = start();
    let mut admin = b.admin().await;
    create_topic(&mut admin, "s", 2, &[("durability", "page_cache")]).await;
    let mut rec = b.records().await;
    rec.produce(produce_batch(
        "s",
        0,
        batch_of("before", 2),
        v1::Acks::Written,
    ))
    .await
    .unwrap();

    let mut stream = rec
        .subscribe(v1::SubscribeRequest {
            partitions: (0..2)
                .map(|p| v1::SubscribePartition {
                    topic: "s".into(),
                    partition: p,
                    start: Some(v1::subscribe_partition::Start::Latest(true)),
                })
                .collect(),
            max_bytes: 0,
            decode: true,
        })
        .await
        .unwrap()
        .into_inner();
    let mut producer = rec.clone();
    let produced = tokio::spawn(async move {
        for i in 0..50 {
            let p = i % 2;
            producer
                .produce(produce_batch(
                    "s",
                    p,
                    batch_of(&format!("m{i}"), 2),
                    v1::Acks::Written,
                ))
                .await
                .unwrap();
        }
    });
    let mut seen: [Vec<String>; 2] = Default::default();
    let mut next = [2i64, 0];
    while seen[0].len() + seen[1].len() < 100 {
        let msg = stream.next().await.unwrap().unwrap();
        let p = msg.partition as usize;
        for r in &msg.records {
            assert_eq!(r.offset, next[p], "partition {p} in order, no gaps");
            next[p] += 1;
            seen[p].push(String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap());
        }
        assert_eq!(msg.next_offset, next[p]);
    }
    produced.await.unwrap();
    let expect = |p: usize| -> Vec<String> {
        (0..50)
            .filter(|i| i % 2 == p)
            .flat_map(|i| [format!("m{i}-0"), format!("m{i}-1")])
            .collect()
    };
    assert_eq!(
        seen[0],
        expect(0),
        "records from before the subscription are not replayed"
    );
    assert_eq!(seen[1], expect(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_does_not_grow_broker_memory() {
    let (_d, b) = start();
    let mut admin = b.admin().await;
    create_topic(&mut admin, "big", 1, &[("durability", "page_cache")]).await;
    let mut rec = b.records().await;
    // Subscribe from the start and never read.
    let _stream = rec
        .subscribe(subscribe_earliest("big", 0, 1 << 20))
        .await
        .unwrap()
        .into_inner();
    let value = vec![7u8; 1000];
    let mut bb = BatchBuilder::new();
    for _ in 0..1000 {
        bb.push(0, None, Some(&value), &[]);
    }
    let batch = bb.finish(); // about 1 MiB
    // Warm up allocator and page cache, then measure.
    for _ in 0..16 {
        rec.produce(produce_batch("big", 0, batch.clone(), v1::Acks::Written))
            .await
            .unwrap();
    }
    let before = b.rss_kib();
    for _ in 0..256 {
        rec.produce(produce_batch("big", 0, batch.clone(), v1::Acks::Written))
            .await
            .unwrap();
    }
    let after = b.rss_kib();
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 96,
        "broker grew {grown_mib} MiB while 256 MiB went to a subscriber that never reads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_time() {
    let (_d, b) = start();
    let mut admin = b.admin().await;
    create_topic(&mut admin, "time", 1, &[]).await;
    let mut rec = b.records().await;
    let mut bb = BatchBuilder::new();
    for i in 0..10 {
        bb.push(1000 * i, None, Some(b"v"), &[]);
    }
    rec.produce(produce_batch("time", 0, bb.finish(), v1::Acks::Durable))
        .await
        .unwrap();
    use v1::list_offsets_partition::Spec;
    let ask = |spec| v1::ListOffsetsPartition {
        topic: "time".into(),
        partition: 0,
        spec: Some(spec),
    };
    let resp = rec
        .list_offsets(v1::ListOffsetsRequest {
            partitions: vec![
                ask(Spec::Earliest(true)),
                ask(Spec::Latest(true)),
                ask(Spec::TimestampMs(0)),
                ask(Spec::TimestampMs(2500)),
                ask(Spec::TimestampMs(9000)),
                ask(Spec::TimestampMs(9001)),
                v1::ListOffsetsPartition {
                    topic: "nope".into(),
                    partition: 0,
                    spec: Some(Spec::Latest(true)),
                },
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let offsets: Vec<i64> = resp.partitions.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![0, 10, 0, 3, 9, -1, -1]);
    assert_eq!(
        resp.partitions[6].error.as_ref().unwrap().code,
        Code::NotFound as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_the_broker_keeps_serving() {
    let (_d, b) = start();
    let mut admin = b.admin().await;
    create_topic(&mut admin, "e", 1, &[("max.message.bytes", "4096")]).await;
    let mut rec = b.records().await;

    let produce_err = |resp: v1::ProduceResponse| {
        resp.topics[0].partitions[0]
            .error
            .clone()
            .expect("an error")
    };
    // Unknown topic and partition.
    let e = produce_err(
        rec.produce(produce_batch(
            "ghost",
            0,
            batch_of("x", 1),
            v1::Acks::Durable,
        ))
        .await
        .unwrap()
        .into_inner(),
    );
    assert_eq!(e.code, Code::NotFound as i32);
    assert!(e.message.contains("ghost"), "{}", e.message);
    let e = produce_err(
        rec.produce(produce_batch("e", 7, batch_of("x", 1), v1::Acks::Durable))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(e.code, Code::NotFound as i32);
    assert!(e.message.contains("no partition 7"), "{}", e.message);
    // CRC mismatch.
    let mut bad = batch_of("x", 2).to_vec();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let e = produce_err(
        rec.produce(produce_batch("e", 0, bad.into(), v1::Acks::Durable))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(e.code, Code::InvalidArgument as i32);
    assert!(e.message.contains("CRC-32C"), "{}", e.message);
    // Garbage.
    let e = produce_err(
        rec.produce(produce_batch(
            "e",
            0,
            Bytes::from_static(b"hello"),
            v1::Acks::Durable,
        ))
        .await
        .unwrap()
        .into_inner(),
    );
    assert_eq!(e.code, Code::InvalidArgument as i32);
    // Oversized for the topic.
    let e = produce_err(
        rec.produce(produce_batch(
            "e",
            0,
            batch_of("big", 500),
            v1::Acks::Durable,
        ))
        .await
        .unwrap()
        .into_inner(),
    );
    assert_eq!(e.code, Code::InvalidArgument as i32);
    assert!(e.message.contains("max.message.bytes"), "{}", e.message);
    // No data at all.
    let req = v1::ProduceRequest {
        acks: 0,
        topics: vec![v1::TopicProduceData {
            topic: "e".into(),
            partitions: vec![v1::PartitionProduceData {
                partition: 0,
                data: None,
            }],
        }],
    };
    assert_eq!(
        produce_err(rec.produce(req).await.unwrap().into_inner()).code,
        Code::InvalidArgument as i32
    );

    // Fetch out of range names the valid range.
    rec.produce(produce_batch("e", 0, batch_of("ok", 2), v1::Acks::Durable))
        .await
        .unwrap();
    let got = only(
        rec.fetch(fetch_one("e", 0, 99, false))
            .await
            .unwrap()
            .into_inner(),
    );
    let e = got.error.unwrap();
    assert_eq!(e.code, Code::OutOfRange as i32);
    assert!(
        e.message.contains("valid offsets are 0 to 2"),
        "{}",
        e.message
    );

    // A request over request_bytes_max is refused whole.
    let huge = Bytes::from(vec![0u8; 65 << 20]);
    let err = rec
        .produce(produce_batch("e", 0, huge, v1::Acks::Durable))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("request_bytes_max"),
        "{}",
        err.message()
    );
    assert_eq!(error_info(&err), ("REQUEST_TOO_LARGE".into(), false));
    // The same limit holds for each message of a produce stream, and the
    // stream ends with that status rather than quietly.
    let too_big = v1::ProduceStreamRequest {
        id: 1,
        request: Some(produce_batch(
            "e",
            0,
            Bytes::from(vec![0u8; 65 << 20]),
            v1::Acks::Durable,
        )),
    };
    let mut answers = rec
        .produce_stream(futures::stream::iter([too_big]))
        .await
        .unwrap()
        .into_inner();
    let err = answers.message().await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("request_bytes_max"), "{err}");

    // And everything still works.
    let resp = rec
        .produce(produce_batch("e", 0, batch_of("ok", 1), v1::Acks::Durable))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.topics[0].partitions[0].base_offset, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut b = BrokerProcess::start_in(&data, &[]);
    let mut admin = b.admin().await;
    create_topic(&mut admin, "keep", 2, &[("retention.ms", "123456")]).await;
    let mut rec = b.records().await;
    for i in 0..20 {
        rec.produce(produce_batch(
            "keep",
            i % 2,
            batch_of(&format!("r{i}"), 3),
            v1::Acks::Written,
        ))
        .await
        .unwrap();
    }
    let status = b.terminate();
    assert!(status.success(), "exit status {status:?}: {}", b.stderr());

    let b = BrokerProcess::start_in(&data, &[]);
    assert!(b.stderr().contains("clean=true"), "{}", b.stderr());
    let mut admin = b.admin().await;
    let d = admin
        .describe_topic(v1::DescribeTopicRequest {
            name: "keep".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    assert_eq!(d.config["retention.ms"], "123456");
    assert_eq!(
        d.partitions
            .iter()
            .map(|p| p.log_end_offset)
            .collect::<Vec<_>>(),
        vec![30, 30]
    );
    let mut rec = b.records().await;
    let got = only(
        rec.fetch(fetch_one("keep", 1, 0, true))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(got.records.len(), 30);
    assert_eq!(got.records[0].value.as_deref(), Some(&b"r1-0"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_durable_records_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut b = BrokerProcess::start_in(&data, &[]);
    let mut admin = b.admin().await;
    create_topic(&mut admin, "d", 1, &[]).await;
    let rec = b.records().await;
    // Four producers; each records what was acknowledged and reports every
    // acknowledgement. The kill comes while they are still producing.
    let (acks_tx, mut acks_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let mut rec = rec.clone();
            let acks_tx = acks_tx.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0.. {
                    match rec
                        .produce(produce_batch(
                            "d",
                            0,
                            batch_of(&format!("t{t}-{i}"), 2),
                            v1::Acks::Durable,
                        ))
                        .await
                    {
                        Ok(r) if r.get_ref().topics[0].partitions[0].error.is_none() => {
                            acked.push((
                                r.get_ref().topics[0].partitions[0].base_offset,
                                format!("t{t}-{i}"),
                            ));
                            let _ = acks_tx.send(());
                        }
                        _ => return acked,
                    }
                }
                acked
            })
        })
        .collect();
    // Let 100 acknowledgements happen, then kill.
    for _ in 0..100 {
        acks_rx.recv().await.unwrap();
    }
    b.kill9();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(acked.len() >= 100);

    let b = BrokerProcess::start_in(&data, &[]);
    let mut rec = b.records().await;
    let mut all = Vec::new();
    let mut off = 0;
    loop {
        let got = only(
            rec.fetch(fetch_one("d", 0, off, true))
                .await
                .unwrap()
                .into_inner(),
        );
        if got.records.is_empty() {
            break;
        }
        off = got.records.last().unwrap().offset + 1;
        all.extend(got.records);
    }
    for (base, tag) in &acked {
        let r = &all[*base as usize];
        assert_eq!(r.offset, *base);
        assert_eq!(
            r.value.as_deref(),
            Some(format!("{tag}-0").as_bytes()),
            "acknowledged batch {tag} at {base}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_partition_is_data_loss_and_the_others_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Small segments (below the default floor) so that the log has several.
    let mut b = BrokerProcess::start_in(&data, &["--segment-bytes-min", "1024"]);
    let mut admin = b.admin().await;
    create_topic(&mut admin, "c", 2, &[("segment.bytes", "16384")]).await;
    let mut rec = b.records().await;
    for i in 0..80 {
        rec.produce(produce_batch(
            "c",
            i % 2,
            batch_of(&format!("x{i}"), 50),
            v1::Acks::Durable,
        ))
        .await
        .unwrap();
    }
    assert!(b.terminate().success());
    // Damage partition 0's first, sealed segment: its index now points past its log.
    let idx = data.join("topics/c/0/00000000000000000000.index");
    let mut bytes = std::fs::read(&idx).unwrap();
    assert!(bytes.len() >= 24, "the sealed segment has index entries");
    bytes[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
    std::fs::write(&idx, bytes).unwrap();

    let b = BrokerProcess::start_in(&data, &[]);
    let mut admin = b.admin().await;
    let d = admin
        .describe_topic(v1::DescribeTopicRequest { name: "c".into() })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    let e = d.partitions[0]
        .error
        .clone()
        .expect("partition 0 is unavailable");
    assert_eq!(e.code, Code::DataLoss as i32);
    assert!(
        e.message.contains("00000000000000000000.index"),
        "{}",
        e.message
    );
    assert!(d.partitions[1].error.is_none());
    let mut rec = b.records().await;
    let got = only(
        rec.fetch(fetch_one("c", 0, 0, false))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(got.error.unwrap().code, Code::DataLoss as i32);
    let resp = rec
        .produce(produce_batch("c", 1, batch_of("ok", 1), v1::Acks::Durable))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.topics[0].partitions[0].error.is_none());
    // Nothing was thrown away on disk.
    assert!(data.join("topics/c/0/00000000000000000000.log").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_subscriptions_with_unavailable() {
    let (_d, mut b) = start();
    let mut admin = b.admin().await;
    create_topic(&mut admin, "bye", 1, &[]).await;
    let mut rec = b.records().await;
    let mut stream = rec
        .subscribe(v1::SubscribeRequest {
            partitions: vec![v1::SubscribePartition {
                topic: "bye".into(),
                partition: 0,
                start: None,
            }],
            max_bytes: 0,
            decode: false,
        })
        .await
        .unwrap()
        .into_inner();
    let waiting = tokio::spawn(async move { stream.next().await });
    tokio::task::yield_now().await;
    let status = tokio::task::spawn_blocking(move || b.terminate())
        .await
        .unwrap();
    assert!(status.success());
    match waiting.await.unwrap() {
        Some(Err(s)) => assert_eq!(s.code(), Code::Unavailable, "{s:?}"),
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving_and_a_second_broker_cannot_take_the_directory() {
    let (_d, b) = start();
    let mut health = tonic_health::pb::health_client::HealthClient::new(b.channel().await);
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "strata.v1.Records".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let out = std::process::Command::new(broker_bin())
        .arg("--data-dir")
        .arg(&b.data_dir)
        .args(["--listen", "127.0.0.1:0", "--no-metrics", "--no-kafka"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("locked by another running broker"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_flags_then_environment_then_the_toml_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strata.toml");
    std::fs::write(
        &file,
        "default-partitions = 3\nsegment_bytes = 4096\nsegment-bytes-min = 1024\nretention-ms = 1000\n",
    )
    .unwrap();
    // The file sets three; the environment overrides one; a flag another.
    let mut child = std::process::Command::new(broker_bin())
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-metrics",
            "--no-kafka",
            "--retention-ms",
            "2000",
        ])
        .env("STRATA_DEFAULT_PARTITIONS", "2")
        .env("STRATA_RETENTION_MS", "5000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let line = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let addr = line
        .strip_prefix("strata-broker listening on ")
        .unwrap()
        .to_string();
    let mut admin = v1::admin_client::AdminClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let d = admin
        .create_topic(v1::CreateTopicRequest {
            name: "t".into(),
            partitions: 0,
            config: Default::default(),
        })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(d.partitions.len(), 2, "environment beats the file");
    assert_eq!(
        d.config["retention.ms"], "2000",
        "a flag beats the environment"
    );
    assert_eq!(
        d.config["segment.bytes"], "4096",
        "the file beats the default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_ids_and_sequences_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut b = BrokerProcess::start_in(&data, &[]);
    let mut admin = b.admin().await;
    create_topic(&mut admin, "idem", 1, &[]).await;
    let mut rec = b.records().await;
    let id = rec
        .init_producer(v1::InitProducerRequest {})
        .await
        .unwrap()
        .into_inner();
    let batch = |seq: i32, tag: &str| {
        let mut bb = BatchBuilder::new();
        bb.producer(id.producer_id, id.producer_epoch as i16, seq);
        bb.push(0, None, Some(tag.as_bytes()), &[]);
        bb.push(0, None, Some(tag.as_bytes()), &[]);
        bb.finish()
    };
    rec.produce(produce_batch("idem", 0, batch(0, "a"), v1::Acks::Durable))
        .await
        .unwrap();
    rec.produce(produce_batch("idem", 0, batch(2, "b"), v1::Acks::Durable))
        .await
        .unwrap();
    drop((admin, rec));

    for kill in [true, false] {
        if kill {
            b.kill9();
        } else {
            assert!(b.terminate().success());
        }
        b = BrokerProcess::start_in(&data, &[]);
        let mut rec = b.records().await;
        // The retry of an acknowledged batch is recognised: same offsets.
        let r = rec
            .produce(produce_batch("idem", 0, batch(2, "b"), v1::Acks::Durable))
            .await
            .unwrap()
            .into_inner();
        let p = &r.topics[0].partitions[0];
        assert!(
            p.duplicate && p.base_offset == 2,
            "after kill={kill}: {p:?}"
        );
        // A gap is refused as out of order, retriable (an earlier batch
        // may still be on its way), naming the sequences.
        let r = rec
            .produce(produce_batch("idem", 0, batch(9, "gap"), v1::Acks::Durable))
            .await
            .unwrap()
            .into_inner();
        let e = r.topics[0].partitions[0].error.clone().unwrap();
        assert_eq!(e.code, Code::Aborted as i32);
        assert_eq!(e.reason, v1::ErrorReason::OutOfOrderSequence as i32);
        assert!(e.retriable);
        assert!(e.message.contains("expected 4, got 9"), "{}", e.message);
        // New producer ids never repeat one handed out before.
        let next = rec
            .init_producer(v1::InitProducerRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(next.producer_id > id.producer_id);
    }
    let mut rec = b.records().await;
    let got = only(
        rec.fetch(fetch_one("idem", 0, 0, true))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(got.records.len(), 4, "nothing was appended twice");
}
