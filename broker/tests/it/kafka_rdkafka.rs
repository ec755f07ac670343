//! The Kafka listener driven by a client we did not write: librdkafka,
//! through the `rdkafka` crate (its bundled source, built by rdkafka-sys).
//! The real broker on ephemeral ports, a temporary data directory.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::support::BrokerProcess;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use strata_proto::v1;

fn start(extra: &[&str]) -> (tempfile::TempDir, BrokerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), extra);
    (dir, b)
}

fn bootstrap(b: &BrokerProcess) -> String {
    b.kafka_addr.expect("kafka listener").to_string()
}

fn producer(bootstrap: &str, codec: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.codec", codec)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

fn consumer(bootstrap: &str, group: Option<&str>) -> BaseConsumer {
    consumer_of(bootstrap, group, "classic")
}

/// A consumer of `group` speaking `protocol`: "classic" (JoinGroup and
/// SyncGroup, the client assigns) or "consumer" (KIP-848, the broker
/// assigns; its session and heartbeat are the broker's settings).
fn consumer_of(bootstrap: &str, group: Option<&str>, protocol: &str) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("group.protocol", protocol);
    if protocol == "classic" {
        c.set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "300");
    }
    c.set("group.id", group.unwrap_or("unused"));
    c.create().expect("consumer")
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin")
}

async fn create_topic(b: &str, name: &str, partitions: i32) {
    let r = admin(b)
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
}

/// Polls `c` until `want` records arrived or `limit` passed; returns
/// (partition, offset, key, value, headers) of each.
type Got = (i32, i64, Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>);
fn poll_n(c: &BaseConsumer, want: usize, limit: Duration) -> Vec<Got> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.partition(),
                m.offset(),
                m.key().map(<[u8]>::to_vec),
                m.payload().unwrap_or_default().to_vec(),
                headers,
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producer_with_every_codec_round_trips() {
    let (_dir, b) = start(&[]);
    let bs = bootstrap(&b);
    create_topic(&bs, "codecs", 1).await;
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let per = 300;
    for codec in codecs {
        let p = producer(&bs, codec);
        let sends = (0..per).map(|i| {
            let value = format!("{codec}-{i}-{}", "x".repeat(i % 50));
            let key = format!("k{i}");
            let p = p.clone();
            async move {
                p.send(
                    FutureRecord::to("codecs")
                        .key(&key)
                        .payload(&value)
                        .headers(OwnedHeaders::new().insert(Header {
                            key: "codec",
                            value: Some(codec),
                        })),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
            }
        });
        for r in futures::future::join_all(sends).await {
            r.unwrap_or_else(|e| panic!("{codec}: {e}"));
        }
    }
    let c = consumer(&bs, None);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("codecs", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let got = poll_n(&c, codecs.len() * per, Duration::from_secs(60));
    assert_eq!(got.len(), codecs.len() * per, "every record comes back");
    let offsets: Vec<i64> = got.iter().map(|g| g.1).collect();
    assert_eq!(
        offsets,
        (0..got.len() as i64).collect::<Vec<_>>(),
        "once each, in order"
    );
    let mut seen = BTreeSet::new();
    for (_, _, key, value, headers) in &got {
        let value = String::from_utf8(value.clone()).unwrap();
        let codec = value.split('-').next().unwrap().to_string();
        let i: usize = value.split('-').nth(1).unwrap().parse().unwrap();
        assert_eq!(key.as_deref(), Some(format!("k{i}").as_bytes()));
        assert_eq!(
            headers,
            &vec![("codec".to_string(), codec.clone().into_bytes())]
        );
        assert!(seen.insert((codec, i)), "no duplicates");
    }
    // Our own fetch sees the same records, in the batches librdkafka
    // compressed: the bytes stored are the bytes the producer sent.
    let mut records = b.records().await;
    let fetched = records
        .fetch(v1::FetchRequest {
            topics: vec![v1::FetchTopic {
                topic: "codecs".into(),
                partitions: vec![v1::FetchPartition {
                    partition: 0,
                    offset: 0,
                    max_bytes: 0,
                }],
            }],
            max_bytes: 64 << 20,
            decode: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let n = fetched.topics[0].partitions[0].records.len();
    assert!(n > 0 && n <= codecs.len() * per);
}

/// Group members' current assignments, polled until `done` or `limit`.
fn assignment(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|t| t.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_consumer_group_of_three_rebalances_and_commits_where_our_client_sees_them() {
    group_of_three("classic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kip_848_consumer_group_of_three_rebalances_and_commits_where_our_client_sees_them() {
    group_of_three("consumer").await;
}

/// Three members share six partitions; one leaves and two share them,
/// a new one joins and three share them again; every record is read,
/// and the commits are what our own client reads back.
async fn group_of_three(protocol: &str) {
    let (_dir, b) = start(&[
        "--group-initial-rebalance-delay-ms",
        "0",
        "--group-heartbeat-interval-ms",
        "200",
    ]);
    let bs = bootstrap(&b);
    create_topic(&bs, "grouped", 6).await;
    let p = producer(&bs, "lz4");
    let total = 600;
    let sends = (0..total).map(|i| {
        let p = p.clone();
        async move {
            let v = format!("{i}");
            p.send(
                FutureRecord::to("grouped").key(&v).payload(&v),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
        }
    });
    for r in futures::future::join_all(sends).await {
        r.unwrap();
    }
    let members: Vec<BaseConsumer> = (0..3)
        .map(|_| consumer_of(&bs, Some("g3"), protocol))
        .collect();
    for m in &members {
        m.subscribe(&["grouped"]).unwrap();
    }
    // Poll everyone until the six partitions are split three ways.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for m in &members {
            for (_, _, _, v, _) in poll_n(m, 50, Duration::from_millis(50)) {
                *seen.entry(String::from_utf8(v).unwrap()).or_default() += 1;
            }
        }
        let sets: Vec<BTreeSet<i32>> = members.iter().map(assignment).collect();
        let all: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        if sets.iter().all(|s| s.len() == 2) && all.len() == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "no 3-way split: {sets:?}");
    }
    // One leaves; the other two take its partitions.
    let mut members = members;
    let gone = members.pop().unwrap();
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for m in &members {
            for (_, _, _, v, _) in poll_n(m, 50, Duration::from_millis(50)) {
                *seen.entry(String::from_utf8(v).unwrap()).or_default() += 1;
            }
        }
        let sets: Vec<BTreeSet<i32>> = members.iter().map(assignment).collect();
        if sets.iter().all(|s| s.len() == 3) {
            break;
        }
        assert!(Instant::now() < deadline, "no 2-way split: {sets:?}");
    }
    // A new member joins and the three share again; then read the rest.
    members.push(consumer_of(&bs, Some("g3"), protocol));
    members[2].subscribe(&["grouped"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for m in &members {
            for (_, _, _, v, _) in poll_n(m, 100, Duration::from_millis(50)) {
                *seen.entry(String::from_utf8(v).unwrap()).or_default() += 1;
            }
        }
        let sets: Vec<BTreeSet<i32>> = members.iter().map(assignment).collect();
        if sets.iter().all(|s| s.len() == 2) && seen.len() == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rejoin: {sets:?}, {} of {total} seen",
            seen.len()
        );
    }
    for i in 0..total {
        assert!(
            seen.contains_key(&i.to_string()),
            "record {i} was never consumed"
        );
    }
    // Commit where each member is, synchronously, with metadata...
    for m in &members {
        let mut tpl = TopicPartitionList::new();
        for p in assignment(m) {
            tpl.add_partition_offset("grouped", p, Offset::Offset(100))
                .unwrap();
        }
        m.commit(&tpl, CommitMode::Sync).unwrap();
    }
    // ...and our own client reads those commits.
    let mut groups = strata_proto::v1::groups_client::GroupsClient::new(b.channel().await);
    let offsets = groups
        .fetch_offsets(v1::FetchOffsetsRequest {
            group: "g3".into(),
            partitions: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .offsets;
    let committed: BTreeMap<u32, i64> = offsets.iter().map(|o| (o.partition, o.offset)).collect();
    assert_eq!(committed, (0..6).map(|p| (p, 100)).collect());
    // The other protocol cannot use the group's name meanwhile: the
    // broker refuses it (INCONSISTENT_GROUP_PROTOCOL, which librdkafka
    // hands the application for a JoinGroup and retries quietly for a
    // ConsumerGroupHeartbeat), and it never gets a partition.
    let other = if protocol == "classic" {
        "consumer"
    } else {
        "classic"
    };
    let intruder = consumer_of(&bs, Some("g3"), other);
    intruder.subscribe(&["grouped"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match intruder.poll(Duration::from_millis(100)) {
            Some(Err(e)) => {
                assert!(e.to_string().to_lowercase().contains("inconsistent"), "{e}");
                break;
            }
            Some(Ok(m)) => panic!(
                "a {other} member of a {protocol} group read {:?}",
                m.offset()
            ),
            None if b.stderr().contains("refused: the group's members use the") => break,
            None => assert!(
                Instant::now() < deadline,
                "the {other} member was never refused"
            ),
        }
    }
    assert!(assignment(&intruder).is_empty());
    if protocol == "classic" {
        // A gRPC member is refused too, naming the protocol in use.
        let refused = groups
            .heartbeat(v1::HeartbeatRequest {
                group: "g3".into(),
                topics: vec!["grouped".into()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(
            refused.message().contains("classic"),
            "{}",
            refused.message()
        );
        // So is a standalone commit or reset while its members are there,
        // and the members' commits stay as they were.
        let refused = groups
            .commit_offsets(v1::CommitOffsetsRequest {
                group: "g3".into(),
                partitions: vec![v1::CommitPartition {
                    topic: "grouped".into(),
                    partition: 0,
                    offset: 1,
                    metadata: String::new(),
                }],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(
            refused.message().contains("classic"),
            "{}",
            refused.message()
        );
        let offsets = groups
            .fetch_offsets(v1::FetchOffsetsRequest {
                group: "g3".into(),
                partitions: vec![],
            })
            .await
            .unwrap()
            .into_inner()
            .offsets;
        assert!(offsets.iter().all(|o| o.offset == 100), "{offsets:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_describes_alters_grows_and_deletes_topics() {
    let (_dir, b) = start(&[]);
    let bs = bootstrap(&b);
    let a = admin(&bs);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let created = a
        .create_topics(
            &[NewTopic::new("adm", 2, TopicReplication::Fixed(1)).set("retention.ms", "3600000")],
            &opts,
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let again = a
        .create_topics(
            &[NewTopic::new("adm", 2, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    assert!(
        matches!(&again[0], Err((t, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) if t == "adm"),
        "{again:?}"
    );
    let bad = a
        .create_topics(
            &[NewTopic::new("three", 1, TopicReplication::Fixed(3))],
            &opts,
        )
        .await
        .unwrap();
    assert!(
        matches!(
            &bad[0],
            Err((
                _,
                rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor
            ))
        ),
        "{bad:?}"
    );

    // Explicit assignments: one replica on broker 0 per partition is all
    // a broker of one has; anything else is refused.
    let placed = a
        .create_topics(
            &[
                NewTopic::new("placed", 3, TopicReplication::Variable(&[&[0], &[0], &[0]])),
                NewTopic::new("elsewhere", 1, TopicReplication::Variable(&[&[1]])),
            ],
            &opts,
        )
        .await
        .unwrap();
    assert!(placed[0].is_ok(), "{placed:?}");
    assert!(
        matches!(
            &placed[1],
            Err((
                _,
                rdkafka::types::RDKafkaErrorCode::InvalidReplicaAssignment
            ))
        ),
        "{placed:?}"
    );
    let mut admin_grpc = b.admin().await;
    let topic = admin_grpc
        .describe_topic(v1::DescribeTopicRequest {
            name: "placed".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(topic.topic.unwrap().partitions.len(), 3);

    let described = a
        .describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)
        .await
        .unwrap();
    let res = described[0].as_ref().unwrap();
    let entries = res.entry_map();
    assert_eq!(entries["retention.ms"].value.as_deref(), Some("3600000"));
    assert!(!entries["retention.ms"].is_default);
    assert!(entries["segment.bytes"].is_default);

    let altered = a
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("adm")).set("retention.ms", "7200000")],
            &opts,
        )
        .await
        .unwrap();
    assert!(altered[0].is_ok(), "{altered:?}");
    let described = a
        .describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)
        .await
        .unwrap();
    let value = described[0].as_ref().unwrap().entry_map()["retention.ms"]
        .value
        .clone();
    assert_eq!(value.as_deref(), Some("7200000"));
    let refused = a
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("adm")).set("no.such.key", "1")],
            &opts,
        )
        .await
        .unwrap();
    // (The rdkafka crate reports every AlterConfigs resource as Ok, so the
    // refusal shows in what it left alone: nothing of that request.)
    assert_eq!(refused.len(), 1);
    let described = a
        .describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)
        .await
        .unwrap();
    let entries = described[0].as_ref().unwrap().entry_map();
    assert!(!entries.contains_key("no.such.key"));
    assert_eq!(
        entries["retention.ms"].value.as_deref(),
        Some("7200000"),
        "a refused alter changes nothing"
    );

    let grown = a
        .create_partitions(&[NewPartitions::new("adm", 5)], &opts)
        .await
        .unwrap();
    assert!(grown[0].is_ok(), "{grown:?}");
    let topic = admin_grpc
        .describe_topic(v1::DescribeTopicRequest { name: "adm".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(topic.topic.unwrap().partitions.len(), 5);

    let deleted = a.delete_topics(&["adm"], &opts).await.unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    let missing = a.delete_topics(&["adm"], &opts).await.unwrap();
    assert!(
        matches!(
            &missing[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition))
        ),
        "{missing:?}"
    );
}

/// A port free now on 127.0.0.1 (for a broker restarted on the same
/// Kafka address, which the producer's bootstrap list names).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_an_idempotent_producer_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let kafka = format!("127.0.0.1:{}", free_port());
    let flags = ["--kafka-listen", kafka.as_str()];
    let mut b = BrokerProcess::start_in(&data, &flags);
    create_topic(&kafka, "crash", 2).await;
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("retry.backoff.ms", "50")
        .set("message.timeout.ms", "120000")
        .create()
        .unwrap();
    let total = 4000usize;
    // How many sends are answered so far, watched by the test.
    let (acked, mut acked_rx) = tokio::sync::watch::channel(0usize);
    let acked = std::sync::Arc::new(acked);
    let sender = {
        let (p, acked) = (p.clone(), acked.clone());
        tokio::spawn(async move {
            let mut pending = futures::stream::FuturesUnordered::new();
            for i in 0..total {
                let (p, acked) = (p.clone(), acked.clone());
                pending.push(async move {
                    let v = i.to_string();
                    let r = p
                        .send(
                            FutureRecord::to("crash").key(&v).payload(&v),
                            Duration::from_secs(120),
                        )
                        .await;
                    acked.send_modify(|n| *n += 1);
                    r.map(|_| i).map_err(|(e, _)| e)
                });
                // A bounded number in flight, so the kill lands mid-stream.
                while pending.len() >= 200 {
                    use futures::StreamExt;
                    pending.next().await.unwrap().unwrap();
                }
            }
            use futures::StreamExt;
            while let Some(r) = pending.next().await {
                r.unwrap();
            }
        })
    };
    // Kill once a share is acknowledged, while the rest is in flight.
    tokio::time::timeout(
        Duration::from_secs(60),
        acked_rx.wait_for(|n| *n >= total / 4),
    )
    .await
    .expect("no progress before the kill")
    .unwrap();
    b.kill9();
    assert!(
        *acked_rx.borrow() < total,
        "the kill landed with sends in flight"
    );
    let again = kafka.clone();
    let b = tokio::task::spawn_blocking(move || {
        BrokerProcess::start_in(&data, &["--kafka-listen", again.as_str()])
    })
    .await
    .unwrap();
    sender
        .await
        .expect("every send is acknowledged after the restart");
    let c = consumer(&bootstrap(&b), None);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("crash", 0, Offset::Beginning)
        .unwrap();
    tpl.add_partition_offset("crash", 1, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let got = poll_n(&c, total, Duration::from_secs(60));
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for (_, _, _, v, _) in &got {
        *counts
            .entry(String::from_utf8(v.clone()).unwrap().parse().unwrap())
            .or_default() += 1;
    }
    let missing: Vec<usize> = (0..total).filter(|i| !counts.contains_key(i)).collect();
    let doubled: Vec<usize> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| *i)
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(doubled.is_empty(), "written twice: {doubled:?}");
    // Nothing more arrives: exactly `total` records are stored.
    assert!(poll_n(&c, 1, Duration::from_millis(500)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_our_client_commits_are_where_a_kafka_group_starts() {
    let (_dir, b) = start(&["--group-initial-rebalance-delay-ms", "0"]);
    let bs = bootstrap(&b);
    create_topic(&bs, "shared", 1).await;
    let p = producer(&bs, "none");
    for i in 0..10 {
        let v = i.to_string();
        p.send(
            FutureRecord::to("shared").key(&v).payload(&v),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    }
    // A standalone commit over gRPC, as `strata group reset-offsets` does...
    let mut groups = strata_proto::v1::groups_client::GroupsClient::new(b.channel().await);
    groups
        .commit_offsets(v1::CommitOffsetsRequest {
            group: "shared-g".into(),
            partitions: vec![v1::CommitPartition {
                topic: "shared".into(),
                partition: 0,
                offset: 7,
                metadata: "from grpc".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    // ...is where a librdkafka member of that group starts, metadata kept.
    let c = consumer(&bs, Some("shared-g"));
    c.subscribe(&["shared"]).unwrap();
    let got = poll_n(&c, 3, Duration::from_secs(30));
    let values: Vec<String> = got
        .iter()
        .map(|g| String::from_utf8(g.3.clone()).unwrap())
        .collect();
    assert_eq!(values, ["7", "8", "9"]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("shared", 0);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let e = committed.find_partition("shared", 0).unwrap();
    assert_eq!((e.offset(), e.metadata()), (Offset::Offset(7), "from grpc"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_creates_unknown_topics_only_when_the_broker_allows_it() {
    for allowed in [false, true] {
        let flags: &[&str] = if allowed {
            &["--auto-create-topics"]
        } else {
            &[]
        };
        let (_dir, b) = start(flags);
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap(&b))
            .set("message.timeout.ms", "3000")
            .create()
            .unwrap();
        let sent = p
            .send(
                FutureRecord::to("typo").key("k").payload("v"),
                Duration::from_secs(5),
            )
            .await;
        let mut admin = b.admin().await;
        let described = admin
            .describe_topic(v1::DescribeTopicRequest {
                name: "typo".into(),
            })
            .await;
        if allowed {
            sent.map_err(|(e, _)| e).expect("auto-created");
            assert!(described.is_ok());
        } else {
            assert!(sent.is_err(), "an unknown topic is not created");
            assert_eq!(described.unwrap_err().code(), tonic::Code::NotFound);
        }
    }
}
