//! Open files are bounded: sealed segments open on use and the least
//! recently used close past `sealed_segments_open_max`, shared by every
//! log of a broker, while reads, time lookups, retention and restarts go on
//! as before.

use std::sync::Arc;

use crate::common::*;
use strata_broker::storage::open_segments::OpenSegments;
use strata_broker::storage::{Durability, Log, LogConfig, Offset, StorageError};
use strata_proto::v1;

fn bounded(open: &Arc<OpenSegments>) -> LogConfig {
    LogConfig {
        open_segments: open.clone(),
        seal_in_background: false,
        segment_bytes_max: 1024,
        ..small_config(Durability::Fsync)
    }
}

#[test]
fn sealed_segments_close_past_the_bound_and_reopen_on_use() {
    let open = OpenSegments::new(3);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    // Two logs share the one bound.
    let logs: Vec<Log> = dirs
        .iter()
        .map(|d| Log::open(d.path(), bounded(&open)).unwrap())
        .collect();
    for i in 0..200i64 {
        for log in &logs {
            log.append(&make_batch(&format!("b{i}"), 2, i * 10))
                .unwrap();
            assert!(open.open_count() <= 3, "{} open", open.open_count());
        }
    }
    for log in &logs {
        assert!(log.segment_count() > 10, "{} segments", log.segment_count());
        // Every offset reads back, from whichever segment, reopened or not.
        for off in (0..400).step_by(7) {
            let r = log.read(Offset(off), 1).unwrap();
            let recs = records(&r.batches);
            let rec = recs.iter().find(|r| r.offset == off as i64).unwrap();
            let want = format!("b{}-{}", off / 2, off % 2);
            assert_eq!(rec.value.as_deref(), Some(want.as_bytes()));
            assert!(open.open_count() <= 3, "{} open", open.open_count());
        }
        assert_eq!(log.offset_for_timestamp(995).unwrap(), Some(Offset(200)));
    }
    // Retention deletes closed segments too.
    let bases = logs[0].segment_bases();
    assert_eq!(logs[0].delete_segments_before(bases[5]).unwrap(), 5);
    assert_eq!(logs[0].log_start(), bases[5]);
    // A clean restart opens every segment to check it, and keeps the bound.
    for log in logs {
        log.close().unwrap();
    }
    let logs: Vec<Log> = dirs
        .iter()
        .map(|d| Log::open(d.path(), bounded(&open)).unwrap())
        .collect();
    assert!(open.open_count() <= 3, "{} open", open.open_count());
    assert_eq!(logs[1].log_end(), Offset(400));
    let r = logs[1].read(Offset(0), 1).unwrap();
    assert_eq!(records(&r.batches)[0].value.as_deref(), Some(&b"b0-0"[..]));
    logs[1].append(&make_batch("after", 1, 5000)).unwrap();
    assert_eq!(logs[1].log_end(), Offset(401));
}

/// Descriptors the process holds on files under `dir`.
fn fds_under(pid: u32, dir: &std::path::Path) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(dir))
        .count()
}

#[tokio::test]
async fn the_broker_keeps_its_descriptors_within_the_bound() {
    use crate::support::*;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let b = BrokerProcess::start_in(&data, &["--sealed-segments-open-max", "4"]);
    let mut admin = b.admin().await;
    // 1 MiB segments (the floor), 24 of them.
    create_topic(&mut admin, "fd", 1, &[("segment.bytes", "1048576")]).await;
    let mut rec = b.records().await;
    let mut value = vec![0u8; 256 << 10];
    for i in 0..96u32 {
        value[..4].copy_from_slice(&i.to_be_bytes());
        let mut batch = strata_proto::BatchBuilder::new();
        batch.push(1_700_000_000_000, None, Some(&value), &[]);
        rec.produce(produce_batch("fd", 0, batch.finish(), v1::Acks::Durable))
            .await
            .unwrap();
    }
    // Read it all, segment after segment.
    for offset in 0..96 {
        let got = rec
            .fetch(fetch_one("fd", 0, offset, false))
            .await
            .unwrap()
            .into_inner();
        let p = only(got);
        let recs = strata_proto::Batch::decode_all(p.batches).unwrap();
        let first = recs[0].decode_records().unwrap();
        let v = first[0].value.as_deref().unwrap();
        assert_eq!(
            u32::from_be_bytes(v[..4].try_into().unwrap()),
            offset as u32
        );
    }
    let topic_dir = data.join("topics").join("fd");
    let segments = std::fs::read_dir(topic_dir.join("0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(segments >= 20, "{segments} segments");
    // Three descriptors per open segment: four sealed ones and the
    // active one, not one per segment on disk.
    let fds = fds_under(b.pid(), &topic_dir);
    assert!(
        fds <= 5 * 3,
        "{fds} descriptors open under the topic for {segments} segments"
    );
}

#[test]
fn a_closed_segment_of_a_log_whose_directory_went_reads_as_closed() {
    let open = OpenSegments::new(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let log = Log::open(&path, bounded(&open)).unwrap();
    for i in 0..100i64 {
        log.append(&make_batch(&format!("b{i}"), 2, i)).unwrap();
    }
    assert!(log.segment_count() > 3);
    // The first segment is read (opened), then a later one closes it.
    log.read(Offset(0), 1).unwrap();
    log.read(Offset(100), 1).unwrap();
    // Its topic is deleted: the directory moves away (as into trash/).
    std::fs::rename(&path, dir.path().join("trash")).unwrap();
    let err = log.read(Offset(0), 1).unwrap_err();
    assert!(matches!(err, StorageError::Closed(_)), "{err}");
}
