//! Share groups against the real broker binary, through `ShareConsumer`:
//! acks of every kind, retries with their delays measured, dead letters
//! and their headers, stale acks, lease expiry and renewal, the shared
//! namespace with consumer groups, durability across `kill -9`, and eight
//! members failing at random on one partition. Every wait is on an event
//! (a poll's answer) bounded by a deadline, never a sleep.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::support::BrokerProcess;
use strata_client::proto::v1;
use strata_client::{
    Client, ErrorReason, ProducerConfig, ProducerRecord, ShareConfig, ShareConsumer,
};

/// Broker flags that let tests use short leases, sessions and backoffs.
const FAST: &[&str] = &[
    "--group-session-timeout-ms-min",
    "100",
    "--group-heartbeat-interval-ms",
    "50",
    "--group-check-interval-ms",
    "20",
    "--share-lease-ms-min",
    "50",
];
const DEADLINE: Duration = Duration::from_secs(60);

fn start(extra: &[&str]) -> (tempfile::TempDir, BrokerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = FAST.to_vec();
    flags.extend_from_slice(extra);
    let b = BrokerProcess::start_in(&dir.path().join("data"), &flags);
    (dir, b)
}

async fn produce(client: &Client, topic: &str, n: usize) {
    let p = client.producer(ProducerConfig::default());
    let mut all = Vec::new();
    for i in 0..n {
        let r = ProducerRecord::new(topic)
            .partition(0)
            .key(format!("k{i}"))
            .value(format!("r{i}"))
            .header("origin", "test");
        all.push(p.send(r).await.unwrap());
    }
    for d in all {
        d.await.unwrap();
    }
    p.close().await.unwrap();
}

fn config(group: &str, topic: &str, lease_ms: u64) -> ShareConfig {
    ShareConfig {
        lease: Some(Duration::from_millis(lease_ms)),
        max_wait: Duration::from_millis(100),
        session_timeout_ms: 2_000,
        ..ShareConfig::new(group, &[topic])
    }
}

fn header<'a>(r: &'a strata_client::ConsumerRecord, key: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| std::str::from_utf8(h.value.as_deref()?).ok())
}

/// Polls until `want` records came (or the deadline passes).
async fn poll_n(c: &mut ShareConsumer, want: usize) -> Vec<strata_client::ShareRecord> {
    let until = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    while out.len() < want {
        assert!(
            Instant::now() < until,
            "only {} of {want} records came",
            out.len()
        );
        out.extend(c.poll().await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_of_every_kind_and_dead_letters_with_their_history() {
    let (_dir, b) = start(&[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("jobs", 1, &[]).await.unwrap();
    produce(&client, "jobs", 10).await;
    let mut c = ShareConsumer::new(client.clone(), config("workers", "jobs", 10_000))
        .await
        .unwrap();
    let first = poll_n(&mut c, 10).await;
    let offsets: Vec<i64> = first.iter().map(|r| r.record.offset).collect();
    assert_eq!(
        offsets,
        (0..10).collect::<Vec<_>>(),
        "one fetch, in offset order"
    );
    assert!(first.iter().all(|r| r.lease.delivery == 1));
    let stale = first[0].ack().clone();
    let released_at = Instant::now();
    for r in first {
        let (rec, ack) = r.into_parts();
        match rec.offset {
            0..=4 => ack.accept(),
            5..=7 => ack.release(
                Some(Duration::from_millis(300)),
                Some(format!("busy {}", rec.offset)),
            ),
            _ => ack.reject(format!("poison {}", rec.offset)),
        }
    }
    let results = c.commit().await.unwrap();
    assert_eq!(results.len(), 10);
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    // An ack of a lease that is done is refused and changes nothing.
    stale.accept();
    let again = c.commit().await.unwrap();
    let err = again[0].1.as_ref().unwrap_err();
    assert_eq!(err.reason(), ErrorReason::StaleDelivery, "{err}");
    // The released ones come back, no sooner than asked.
    let back = poll_n(&mut c, 3).await;
    assert!(
        released_at.elapsed() >= Duration::from_millis(300),
        "{:?}",
        released_at.elapsed()
    );
    let mut back_offsets: Vec<i64> = back.iter().map(|r| r.record.offset).collect();
    back_offsets.sort();
    assert_eq!(back_offsets, vec![5, 6, 7]);
    assert!(back.iter().all(|r| r.lease.delivery == 2));
    for r in back {
        let offset = r.record.offset;
        if offset == 7 {
            r.ack().clone().reject("still poison");
        } else {
            r.ack().clone().accept();
        }
    }
    assert!(c.commit().await.unwrap().iter().all(|(_, r)| r.is_ok()));
    // The dead-letter topic has 7, 8, 9 once each, with their history.
    let dlq = crate::common::read_everything(&client, "jobs.workers.dlq").await;
    let by_offset: BTreeMap<&str, &strata_client::ConsumerRecord> = dlq
        .iter()
        .map(|r| (header(r, "strata.dlq.source.offset").unwrap(), r))
        .collect();
    assert_eq!(
        by_offset.keys().copied().collect::<Vec<_>>(),
        vec!["7", "8", "9"],
        "once each"
    );
    let seven = by_offset["7"];
    assert_eq!(seven.value.as_deref(), Some(&b"r7"[..]));
    assert_eq!(seven.key.as_deref(), Some(&b"k7"[..]));
    assert_eq!(
        header(seven, "origin"),
        Some("test"),
        "the record's own headers"
    );
    assert_eq!(header(seven, "strata.dlq.group"), Some("workers"));
    assert_eq!(header(seven, "strata.dlq.source.topic"), Some("jobs"));
    assert_eq!(header(seven, "strata.dlq.source.partition"), Some("0"));
    assert_eq!(header(seven, "strata.dlq.delivery.count"), Some("2"));
    assert_eq!(header(seven, "strata.dlq.error"), Some("still poison"));
    let first_ms: i64 = header(seven, "strata.dlq.first.failure.ms")
        .unwrap()
        .parse()
        .unwrap();
    let last_ms: i64 = header(seven, "strata.dlq.last.failure.ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(last_ms - first_ms >= 300, "first {first_ms} last {last_ms}");
    assert_eq!(
        header(by_offset["8"], "strata.dlq.delivery.count"),
        Some("1")
    );
    // Describe: nothing left, three dead-lettered.
    let d = describe(&client, "workers").await;
    let p = &d.partitions[0];
    assert_eq!(
        (p.start_offset, p.end_offset, p.lag, p.leased),
        (10, 10, 0, 0),
        "{p:?}"
    );
    assert_eq!(p.dead_lettered, 3);
    assert_eq!(d.settings.unwrap().dead_letter_topic, "jobs.workers.dlq");
    c.close().await.unwrap();
}

async fn describe(client: &Client, group: &str) -> v1::DescribeShareGroupResponse {
    client.admin().describe_share_group(group).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_wait_the_backoff_and_a_delayed_record_blocks_no_other() {
    let (_dir, b) = start(&[
        "--share-retry-backoff-initial-ms",
        "200",
        "--share-retry-backoff-max-ms",
        "1000",
    ]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("jobs", 1, &[]).await.unwrap();
    produce(&client, "jobs", 2).await;
    let mut cfg = config("retry", "jobs", 10_000);
    cfg.delivery_limit = 3;
    let mut c = ShareConsumer::new(client.clone(), cfg).await.unwrap();
    let first = poll_n(&mut c, 2).await;
    let mut it = first.into_iter();
    // Record 0 waits 5 s; record 1 takes the group's backoff (200 ms, then
    // 400 ms, each ±20%) and is delivered meanwhile.
    it.next()
        .unwrap()
        .ack()
        .clone()
        .release(Some(Duration::from_secs(5)), None);
    let mut one = it.next().unwrap();
    for (delivery, base_ms) in [(2u32, 200u64), (3, 400)] {
        one.ack()
            .clone()
            .release(None, Some(format!("failed {}", delivery - 1)));
        let released = Instant::now();
        let got = poll_n(&mut c, 1).await;
        let waited = released.elapsed();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].record.offset, got[0].lease.delivery), (1, delivery));
        assert!(
            waited >= Duration::from_millis(base_ms * 8 / 10),
            "retry {delivery} after {waited:?}"
        );
        assert!(
            waited < Duration::from_millis(base_ms * 12 / 10 + 2_000),
            "retry {delivery} after {waited:?}"
        );
        one = got.into_iter().next().unwrap();
    }
    // The third failure reaches the delivery limit: a dead letter.
    one.ack().clone().release(None, Some("failed 3".into()));
    assert!(c.commit().await.unwrap().iter().all(|(_, r)| r.is_ok()));
    let dlq = crate::common::read_everything(&client, "jobs.retry.dlq").await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(header(&dlq[0], "strata.dlq.source.offset"), Some("1"));
    assert_eq!(header(&dlq[0], "strata.dlq.delivery.count"), Some("3"));
    assert_eq!(header(&dlq[0], "strata.dlq.error"), Some("failed 3"));
    let p = &describe(&client, "retry").await.partitions[0];
    assert_eq!(
        (p.start_offset, p.retrying, p.delayed),
        (0, 1, 1),
        "record 0 still waits: {p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_renew_and_fence_late_or_foreign_acks() {
    let (_dir, b) = start(&[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("jobs", 1, &[]).await.unwrap();
    produce(&client, "jobs", 2).await;
    let mut cfg = config("leases", "jobs", 400);
    cfg.max_records = 1;
    let mut a = ShareConsumer::new(client.clone(), cfg.clone())
        .await
        .unwrap();
    let mut b2 = ShareConsumer::new(client.clone(), cfg).await.unwrap();
    let held = poll_n(&mut a, 1).await.pop().unwrap();
    assert_eq!(held.record.offset, 0);
    let leased_at = Instant::now();
    // b gets record 1 at once, and record 0 only once a's lease ran out.
    let one = poll_n(&mut b2, 1).await.pop().unwrap();
    assert_eq!(one.record.offset, 1);
    one.ack().clone().accept();
    let again = poll_n(&mut b2, 1).await.pop().unwrap();
    assert!(
        leased_at.elapsed() >= Duration::from_millis(400),
        "{:?}",
        leased_at.elapsed()
    );
    assert_eq!((again.record.offset, again.lease.delivery), (0, 2));
    // a's late ack names delivery 1: refused, and b's lease stands.
    held.ack().clone().accept();
    let late = a.commit().await.unwrap();
    assert_eq!(
        late[0].1.as_ref().unwrap_err().reason(),
        ErrorReason::StaleDelivery
    );
    // An ack from a member that does not hold the lease is refused too.
    let mut raw = v1::share_client::ShareClient::new(b.channel().await);
    let foreign = raw
        .share_acknowledge(v1::ShareAcknowledgeRequest {
            group: "leases".into(),
            member_id: a.member_id(),
            acks: vec![v1::ShareAck {
                topic: "jobs".into(),
                partition: 0,
                offset: 0,
                delivery: 2,
                r#type: v1::AckType::Accept as i32,
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let e = foreign.acks[0].error.as_ref().expect("refused");
    assert_eq!(e.reason, v1::ErrorReason::StaleDelivery as i32);
    assert!(e.message.contains("not leased to member"), "{}", e.message);
    // b renews past the lease; a gets nothing meanwhile.
    let renew_until = Instant::now() + Duration::from_millis(1_000);
    while Instant::now() < renew_until {
        again.ack().renew().await.unwrap();
        assert!(
            a.poll().await.unwrap().is_empty(),
            "a renewed lease was leased again"
        );
    }
    again.ack().clone().accept();
    assert!(
        b2.commit().await.unwrap()[0].1.is_ok(),
        "accepted after renewing"
    );
    let p = &describe(&client, "leases").await.partitions[0];
    assert_eq!((p.start_offset, p.leased, p.lag), (2, 0, 0), "{p:?}");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_failed_twice_is_delivered_alone() {
    let (_dir, b) = start(&[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("jobs", 1, &[]).await.unwrap();
    produce(&client, "jobs", 3).await;
    let mut c = ShareConsumer::new(client.clone(), config("poison", "jobs", 10_000))
        .await
        .unwrap();
    for round in 1..=2 {
        let got = poll_n(&mut c, 3).await;
        assert_eq!(got.len(), 3, "round {round}");
        for r in got {
            r.ack().clone().release(Some(Duration::ZERO), None);
        }
    }
    for offset in 0..3 {
        let got = poll_n(&mut c, 1).await;
        assert_eq!(got.len(), 1, "a suspect record goes out alone");
        assert_eq!((got[0].record.offset, got[0].lease.delivery), (offset, 3));
        got[0].ack().clone().accept();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_and_consumer_groups_share_one_namespace() {
    let (_dir, b) = start(&[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("jobs", 1, &[]).await.unwrap();
    let _share = ShareConsumer::new(client.clone(), config("queue", "jobs", 10_000))
        .await
        .unwrap();
    let mut groups = v1::groups_client::GroupsClient::new(b.channel().await);
    let hb = |group: &str| v1::HeartbeatRequest {
        group: group.into(),
        topics: vec!["jobs".into()],
        ..Default::default()
    };
    let e = groups.heartbeat(hb("queue")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("is a share group"), "{}", e.message());
    groups.heartbeat(hb("stream")).await.unwrap();
    let e = ShareConsumer::new(client.clone(), config("stream", "jobs", 10_000))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), ErrorReason::GroupKindMismatch, "{e}");
    assert!(e.to_string().contains("is a consumer group"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_redelivers_only_what_was_not_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut b = BrokerProcess::start_in(&data, FAST);
    let addr = b.addr.to_string();
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("jobs", 1, &[]).await.unwrap();
    produce(&client, "jobs", 100).await;
    let mut c = ShareConsumer::new(client.clone(), config("durable", "jobs", 10_000))
        .await
        .unwrap();
    let got = poll_n(&mut c, 100).await;
    for r in got.into_iter().filter(|r| r.record.offset % 2 == 0) {
        r.ack().clone().accept();
    }
    assert!(c.commit().await.unwrap().iter().all(|(_, r)| r.is_ok()));
    b.kill9();
    let mut flags = FAST.to_vec();
    flags.extend(["--listen", &addr]);
    let b = BrokerProcess::start_in(&data, &flags);
    let client = Client::connect(b.url()).await.unwrap();
    let mut c = ShareConsumer::new(client.clone(), config("durable", "jobs", 10_000))
        .await
        .unwrap();
    let again = poll_n(&mut c, 50).await;
    let offsets: BTreeSet<i64> = again.iter().map(|r| r.record.offset).collect();
    assert_eq!(
        offsets,
        (0..100).filter(|o| o % 2 == 1).collect(),
        "only the unaccepted"
    );
    assert!(
        again.iter().all(|r| r.lease.delivery == 2),
        "the lost lease counted"
    );
    let p = &describe(&client, "durable").await.partitions[0];
    assert_eq!(p.start_offset, 1);
    assert_eq!(p.lag, 50);
}

/// A dead letter whose broker dies just before or just after its copy is
/// appended is in the dead-letter topic exactly once after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_around_the_dead_letter_copy_neither_loses_nor_doubles_it() {
    for at in ["before", "after"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut flags = FAST.to_vec();
        flags.extend(["--test-abort-at-dead-letter", at]);
        let b = BrokerProcess::start_in(&data, &flags);
        let addr = b.addr.to_string();
        let client = Client::connect(b.url()).await.unwrap();
        client.admin().create_topic("jobs", 1, &[]).await.unwrap();
        produce(&client, "jobs", 3).await;
        let mut c = ShareConsumer::new(client.clone(), config("crashy", "jobs", 10_000))
            .await
            .unwrap();
        let got = poll_n(&mut c, 3).await;
        got[1].ack().clone().reject("poison");
        got[0].ack().clone().accept();
        // The broker aborts while answering: the reject was durable first.
        assert!(
            c.commit().await.is_err(),
            "{at}: the broker should have aborted"
        );
        drop(b);
        let mut flags = FAST.to_vec();
        flags.extend(["--listen", &addr]);
        let b = BrokerProcess::start_in(&data, &flags);
        let client = Client::connect(b.url()).await.unwrap();
        let until = Instant::now() + DEADLINE;
        let dlq = loop {
            let d = describe(&client, "crashy").await;
            if d.partitions[0].dead_letters_pending == 0 {
                break crate::common::read_everything(&client, "jobs.crashy.dlq").await;
            }
            assert!(Instant::now() < until, "{at}: dead letter still pending");
            tokio::task::yield_now().await;
        };
        let offsets: Vec<_> = dlq
            .iter()
            .map(|r| header(r, "strata.dlq.source.offset"))
            .collect();
        assert_eq!(offsets, vec![Some("1")], "{at}: exactly one copy");
        assert_eq!(header(&dlq[0], "strata.dlq.error"), Some("poison"));
    }
}

/// What the chaos test's members saw.
#[derive(Default)]
struct Seen {
    /// Accepts the broker confirmed, per offset.
    accepted: BTreeMap<i64, u32>,
    /// Accepts whose outcome is unknown (refused as stale after a resend:
    /// they may have been applied before the broker died).
    unsure: BTreeSet<i64>,
    /// The highest delivery number seen, per offset.
    deliveries: BTreeMap<i64, u32>,
    /// Late acks refused as stale.
    stale: u32,
}

/// One member: polls, and for each record accepts (most), releases,
/// rejects, abandons (a crash without ack), or works past its lease and
/// then accepts (which must be refused, the lease having moved on).
async fn member(
    client: Client,
    cfg: ShareConfig,
    seed: u64,
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let lease = cfg.lease.unwrap();
    // The leases this member accepted (results come back for every kind).
    let mut accepts: BTreeSet<(i64, u32)> = BTreeSet::new();
    // Leases being "worked on" past their deadline, with when to ack them.
    let mut slow: Vec<(Instant, strata_client::AckHandle)> = Vec::new();
    let mut c = loop {
        match ShareConsumer::new(client.clone(), cfg.clone()).await {
            Ok(c) => break c,
            Err(_) if !done.load(std::sync::atomic::Ordering::Relaxed) => {
                tokio::task::yield_now().await
            }
            Err(e) => panic!("join: {e}"),
        }
    };
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        let Ok(records) = c.poll().await else {
            continue;
        };
        let results = c.take_ack_results();
        {
            let mut s = seen.lock().unwrap();
            for (l, r) in results {
                if !accepts.remove(&(l.offset, l.delivery)) {
                    continue;
                }
                match r {
                    Ok(()) => *s.accepted.entry(l.offset).or_default() += 1,
                    Err(_) => {
                        s.unsure.insert(l.offset);
                    }
                }
            }
            for r in &records {
                let d = s.deliveries.entry(r.record.offset).or_default();
                *d = (*d).max(r.lease.delivery);
            }
        }
        for r in records {
            match rng.u8(0..100) {
                0..=69 => {
                    accepts.insert((r.lease.offset, r.lease.delivery));
                    r.ack().clone().accept()
                }
                70..=79 => r.ack().clone().release(
                    rng.bool().then(|| Duration::from_millis(rng.u64(0..30))),
                    Some("released".into()),
                ),
                80..=84 => r.ack().clone().reject("rejected"),
                85..=94 => {} // crashed: never acked, the lease runs out
                // Work that outlasts the lease: accepted by a later turn
                // of the loop, once the lease is past.
                _ => slow.push((
                    Instant::now() + lease + Duration::from_millis(100),
                    r.ack().clone(),
                )),
            }
        }
        let (late, still): (Vec<_>, Vec<_>) =
            slow.drain(..).partition(|(at, _)| *at <= Instant::now());
        slow = still;
        if late.is_empty() {
            continue;
        }
        for (_, h) in late {
            accepts.insert((h.lease().offset, h.lease().delivery));
            h.accept();
        }
        if let Ok(results) = c.commit().await {
            let mut s = seen.lock().unwrap();
            for (l, r) in results {
                if !accepts.remove(&(l.offset, l.delivery)) {
                    continue; // a release or reject sent along
                }
                match r {
                    Ok(()) => *s.accepted.entry(l.offset).or_default() += 1,
                    Err(_) => {
                        s.stale += 1;
                        s.unsure.insert(l.offset);
                    }
                }
            }
        }
    }
    let _ = c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_members_failing_at_random_with_a_kill_9_lose_and_double_nothing() {
    const RECORDS: usize = 1_000;
    const LIMIT: u32 = 4;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut flags = FAST.to_vec();
    flags.extend([
        "--share-retry-backoff-initial-ms",
        "10",
        "--share-retry-backoff-max-ms",
        "50",
    ]);
    let mut b = BrokerProcess::start_in(&data, &flags);
    let addr = b.addr.to_string();
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("jobs", 1, &[]).await.unwrap();
    produce(&client, "jobs", RECORDS).await;
    let seed = fastrand::u64(..);
    println!("share chaos seed {seed}");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut cfg = config("chaos", "jobs", 300);
    cfg.max_records = 20;
    cfg.delivery_limit = LIMIT;
    cfg.session_timeout_ms = 1_000;
    let members: Vec<_> = (0..8)
        .map(|i| {
            tokio::spawn(member(
                client.clone(),
                cfg.clone(),
                seed + i,
                seen.clone(),
                done.clone(),
            ))
        })
        .collect();
    // Kill the broker once a third is accepted, and bring it back.
    let until = Instant::now() + DEADLINE;
    while seen.lock().unwrap().accepted.len() < RECORDS / 3 {
        assert!(Instant::now() < until, "seed {seed}: no progress");
        tokio::task::yield_now().await;
    }
    b.kill9();
    flags.extend(["--listen", &addr]);
    let b = BrokerProcess::start_in(&data, &flags);
    let admin = Client::connect(b.url()).await.unwrap();
    // Done when every record is accepted or dead-lettered.
    loop {
        let p = describe(&admin, "chaos").await.partitions.remove(0);
        if p.lag == 0
            && p.leased == 0
            && p.dead_letters_pending == 0
            && p.end_offset == RECORDS as i64
        {
            break;
        }
        assert!(Instant::now() < until, "seed {seed}: not done: {p:?}");
        tokio::task::yield_now().await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for m in members {
        m.await.unwrap();
    }
    let dlq = crate::common::read_everything(&admin, "jobs.chaos.dlq").await;
    let s = seen.lock().unwrap();
    let mut dead = BTreeMap::new();
    for r in &dlq {
        let offset: i64 = header(r, "strata.dlq.source.offset")
            .unwrap()
            .parse()
            .unwrap();
        let count: u32 = header(r, "strata.dlq.delivery.count")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            r.value.as_deref(),
            Some(format!("r{offset}").as_bytes()),
            "seed {seed}"
        );
        assert!(
            (1..=LIMIT).contains(&count),
            "seed {seed}: offset {offset} count {count}"
        );
        assert!(
            count >= s.deliveries.get(&offset).copied().unwrap_or(0),
            "seed {seed}: {offset}"
        );
        assert!(
            dead.insert(offset, count).is_none(),
            "seed {seed}: {offset} dead-lettered twice"
        );
    }
    for offset in 0..RECORDS as i64 {
        let accepted = s.accepted.get(&offset).copied().unwrap_or(0);
        assert!(
            accepted <= 1,
            "seed {seed}: {offset} accepted {accepted} times"
        );
        assert!(
            !(accepted == 1 && dead.contains_key(&offset)),
            "seed {seed}: {offset} accepted and dead"
        );
        assert!(
            accepted == 1 || dead.contains_key(&offset) || s.unsure.contains(&offset),
            "seed {seed}: {offset} neither accepted nor dead-lettered"
        );
    }
    println!(
        "seed {seed}: {} accepted, {} dead letters, {} unsure after the kill, {} late acks refused",
        s.accepted.len(),
        dead.len(),
        s.unsure.len(),
        s.stale
    );
    assert!(s.stale > 0, "seed {seed}: a late ack was never refused");
}
