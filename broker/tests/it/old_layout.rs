//! A data directory written by an older build opens and serves: every small
//! file (checkpoints, `topic.meta`, producer snapshots, the groups log) and
//! every segment and index of `tests/fixtures/layout-v1/data`, which
//! `generate.sh` beside it wrote with 3ea4b93, the last build before the
//! small files moved to one envelope codec. The format did not change, so
//! nothing may be rebuilt or lost.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::*;
use bytes::Bytes;
use strata_proto::v1;
use strata_proto::v1::groups_client::GroupsClient;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn fixture_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layout-v1/data")
}

fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&fixture_dir(), &data);
    (dir, data)
}

async fn describe(
    admin: &mut v1::admin_client::AdminClient<tonic::transport::Channel>,
    name: &str,
) -> v1::TopicDescription {
    admin
        .describe_topic(v1::DescribeTopicRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap()
}

/// Every record of one partition, decoded, from `start`.
async fn read_all(
    rec: &mut v1::records_client::RecordsClient<tonic::transport::Channel>,
    topic: &str,
    partition: u32,
    start: i64,
) -> Vec<v1::ConsumedRecord> {
    let mut out = Vec::new();
    let mut next = start;
    loop {
        let got = only(
            rec.fetch(fetch_one(topic, partition, next, true))
                .await
                .unwrap()
                .into_inner(),
        );
        assert!(got.error.is_none(), "{topic}/{partition}: {:?}", got.error);
        let Some(last) = got.records.last() else {
            assert_eq!(next, got.high_watermark, "{topic}/{partition}");
            return out;
        };
        next = last.offset + 1;
        out.extend(got.records);
    }
}

fn text(b: &Option<Bytes>) -> String {
    String::from_utf8(b.clone().unwrap_or_default().to_vec()).unwrap()
}

#[tokio::test]
async fn a_directory_written_by_the_old_build_opens_with_everything_in_it() {
    let (_dir, data) = fixture();
    let b = BrokerProcess::start_in(&data, &["--segment-bytes-min", "4096"]);
    let mut admin = b.admin().await;
    let mut rec = b.records().await;

    // topic.meta: partition counts and overrides.
    let orders = describe(&mut admin, "orders").await;
    assert_eq!(orders.partitions.len(), 2);
    assert_eq!(orders.config["retention.ms"], "-1");
    assert_eq!(orders.config["segment.bytes"], "4096");
    assert_eq!(orders.partitions[0].segment_count, 5);
    let latest = describe(&mut admin, "latest").await;
    assert_eq!(latest.config["cleanup.policy"], "compact");

    // Segments and indexes: every record, in order, from offset 0.
    assert_eq!(orders.partitions[0].log_start_offset, 0);
    let records = read_all(&mut rec, "orders", 0, 0).await;
    assert_eq!(records.len(), 300);
    for (i, r) in records.iter().enumerate() {
        let round = i / 60 + 1;
        let n = round * 100 + i % 60;
        assert_eq!(r.offset, i as i64);
        assert_eq!(
            text(&r.value),
            format!("order-{n} with a payload long enough to roll segments")
        );
    }
    let events = read_all(&mut rec, "orders", 1, 0).await;
    assert_eq!(events.len(), 20);
    assert_eq!(text(&events[19].value), "event-20");
    assert_eq!(events[0].headers[0].key, "src");

    // The log-start checkpoint: retention had trimmed the front.
    let start = describe(&mut admin, "trimmed").await.partitions[0].log_start_offset;
    assert_eq!(start, 160);
    let trimmed = read_all(&mut rec, "trimmed", 0, start).await;
    assert_eq!(trimmed.first().map(|r| r.offset), Some(160));
    assert_eq!(trimmed.len(), 80);

    // The compacted topic: the newest value of every key survives.
    let compacted = read_all(&mut rec, "latest", 0, 0).await;
    let newest: BTreeMap<String, String> = compacted
        .iter()
        .map(|r| (text(&r.key), text(&r.value)))
        .collect();
    assert_eq!(newest.len(), 30);
    for (k, v) in &newest {
        let n = k.strip_prefix("key-").unwrap();
        assert_eq!(v, &format!("value-6-{n} padding padding padding"));
    }
    assert!(compacted.len() < 180, "the old build had compacted it");

    // The groups log: the committed offset.
    let mut groups = GroupsClient::new(b.channel().await);
    let committed = groups
        .fetch_offsets(v1::FetchOffsetsRequest {
            group: "billing".into(),
            partitions: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .offsets;
    // `strata consume --group billing --max-messages 120` printed and
    // committed all 20 of partition 1 and the first 100 of partition 0.
    let at = |partition| {
        committed
            .iter()
            .find(|c| c.topic == "orders" && c.partition == partition)
            .unwrap_or_else(|| panic!("billing's commit on orders/{partition}"))
            .offset
    };
    assert_eq!((at(0), at(1)), (100, 20));

    // The producer snapshot: the last batch sent again is a duplicate,
    // answered with its original offset, and appended nowhere.
    let raw = only(
        rec.fetch(fetch_one("orders", 0, 240, false))
            .await
            .unwrap()
            .into_inner(),
    );
    let mut batch = raw.batches.to_vec();
    batch[0..8].copy_from_slice(&0i64.to_be_bytes());
    let answer = rec
        .produce(produce_batch(
            "orders",
            0,
            Bytes::from(batch),
            v1::Acks::Durable,
        ))
        .await
        .unwrap()
        .into_inner();
    let p = &answer.topics[0].partitions[0];
    assert!(p.error.is_none(), "{:?}", p.error);
    assert!(p.duplicate, "the retry was appended again: {p:?}");
    assert_eq!(p.base_offset, 240);

    // The producer-id block: new ids come after every id handed out before.
    let old_ids_below = {
        let bytes = std::fs::read(fixture_dir().join("producer-id-block.checkpoint")).unwrap();
        i64::from_be_bytes(bytes[8..16].try_into().unwrap())
    };
    let fresh = rec
        .init_producer(v1::InitProducerRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        fresh.producer_id >= old_ids_below,
        "id {} below the old block's end {old_ids_below}",
        fresh.producer_id
    );

    // And it goes on appending where the old build stopped.
    let answer = rec
        .produce(produce_batch(
            "orders",
            0,
            batch_of("new", 3),
            v1::Acks::Durable,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.topics[0].partitions[0].base_offset, 300);
}
