//! Consumer groups against the real broker binary: assignment, rebalances,
//! crashes, fencing, restarts. Short session timeouts keep them fast; every
//! wait is on an event (a listener callback, a consumed record), bounded by
//! a deadline, never a sleep.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::BrokerProcess;
use strata_client::proto::v1;
use strata_client::{
    Client, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, RebalanceListener,
    ResetSpec,
};
use tokio::sync::watch;

/// Broker flags that let tests use sub-second sessions.
const FAST_GROUPS: &[&str] = &[
    "--group-session-timeout-ms-min",
    "100",
    "--group-heartbeat-interval-ms",
    "50",
    "--group-check-interval-ms",
    "20",
];
/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

type Tp = (String, u32);

fn start(extra: &[&str]) -> (tempfile::TempDir, BrokerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = FAST_GROUPS.to_vec();
    flags.extend_from_slice(extra);
    let b = BrokerProcess::start_in(&dir.path().join("data"), &flags);
    (dir, b)
}

fn config(session_ms: u64) -> ConsumerConfig {
    ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        fetch_wait: Duration::from_millis(100),
        auto_commit_interval: Duration::from_millis(100),
        session_timeout: Some(Duration::from_millis(session_ms)),
        ..ConsumerConfig::default()
    }
}

/// What all members saw, for the test to check: who owns what (from the
/// members' own callbacks), any moment two owned one partition, and every
/// record consumed.
#[derive(Default)]
struct World {
    owners: BTreeMap<Tp, String>,
    overlaps: Vec<String>,
    consumed: Vec<(String, Tp, i64, String)>,
}

#[derive(Clone)]
struct Shared {
    world: Arc<Mutex<World>>,
    /// Bumped on every callback and consumed batch, to wake waiting tests.
    events: Arc<watch::Sender<u64>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            world: Arc::default(),
            events: Arc::new(watch::Sender::new(0)),
        }
    }

    fn bump(&self) {
        self.events.send_modify(|n| *n += 1);
    }

    /// Waits until `cond` holds on the world, re-checking on every event.
    async fn until(&self, what: &str, cond: impl Fn(&World) -> bool) {
        let mut rx = self.events.subscribe();
        let wait = async {
            loop {
                if cond(&self.world.lock().unwrap()) {
                    return;
                }
                rx.changed().await.unwrap();
            }
        };
        if tokio::time::timeout(DEADLINE, wait).await.is_err() {
            let w = self.world.lock().unwrap();
            panic!(
                "timed out waiting for {what}; owners {:?}, {} consumed",
                w.owners,
                w.consumed.len()
            );
        }
    }

    fn owned_by(&self, name: &str) -> usize {
        let w = self.world.lock().unwrap();
        w.owners.values().filter(|o| *o == name).count()
    }

    /// A member that died: it owns nothing any more.
    fn forget(&self, name: &str) {
        self.world.lock().unwrap().owners.retain(|_, o| o != name);
        self.bump();
    }
}

struct Tracker {
    name: String,
    shared: Shared,
}

impl RebalanceListener for Tracker {
    fn on_assigned(&mut self, partitions: &[(String, u32)]) {
        let mut w = self.shared.world.lock().unwrap();
        for tp in partitions {
            if let Some(other) = w.owners.insert(tp.clone(), self.name.clone()) {
                let msg = format!("{tp:?} given to {} while {other} owns it", self.name);
                w.overlaps.push(msg);
            }
        }
        drop(w);
        self.shared.bump();
    }

    fn on_revoked(&mut self, partitions: &[(String, u32)]) {
        let mut w = self.shared.world.lock().unwrap();
        for tp in partitions {
            if w.owners.get(tp) == Some(&self.name) {
                w.owners.remove(tp);
            }
        }
        drop(w);
        self.shared.bump();
    }
}

/// A member polling on a task until told to stop (then it closes: commits
/// and leaves) or aborted (a crash: no commit, no leave).
struct Running {
    name: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn member(
    client: &Client,
    shared: &Shared,
    name: &str,
    group: &str,
    topic: &str,
    session_ms: u64,
) -> Running {
    member_with(client, shared, name, group, topic, config(session_ms)).await
}

async fn member_with(
    client: &Client,
    shared: &Shared,
    name: &str,
    group: &str,
    topic: &str,
    config: ConsumerConfig,
) -> Running {
    let mut c = client.consumer(config);
    c.subscribe_with(
        group,
        &[topic],
        Tracker {
            name: name.into(),
            shared: shared.clone(),
        },
    )
    .await
    .unwrap();
    let (stop, mut stopped) = watch::channel(false);
    let (shared, who) = (shared.clone(), name.to_string());
    let task = tokio::spawn(async move {
        while !*stopped.borrow_and_update() {
            let records = c.poll().await.unwrap();
            if records.is_empty() {
                continue;
            }
            let mut w = shared.world.lock().unwrap();
            for r in records {
                let value = String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned();
                w.consumed
                    .push((who.clone(), (r.topic, r.partition), r.offset, value));
            }
            drop(w);
            shared.bump();
        }
        c.close().await.unwrap();
    });
    Running {
        name: name.into(),
        stop,
        task,
    }
}

impl Running {
    async fn close(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("member closes")
            .unwrap();
    }

    /// Kills the member as a crash would: it stops mid-poll, without a
    /// commit or a leave.
    async fn crash(self, shared: &Shared) {
        self.task.abort();
        let _ = self.task.await;
        shared.forget(&self.name);
    }
}

async fn produce_numbers(client: &Client, topic: &str, range: std::ops::Range<u64>) {
    let p = client.producer(ProducerConfig::default());
    let mut pending = Vec::new();
    for i in range {
        let r = ProducerRecord::new(topic)
            .key(format!("k{}", i % 97))
            .value(i.to_string());
        pending.push(p.send(r).await.unwrap());
    }
    for d in pending {
        d.await.unwrap();
    }
    p.close().await.unwrap();
}

fn numbers_seen(w: &World) -> BTreeSet<u64> {
    w.consumed
        .iter()
        .map(|(_, _, _, v)| v.parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_split_six_partitions_and_a_fourth_moves_the_least() {
    let (_d, b) = start(&[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("t", 6, &[]).await.unwrap();
    let shared = Shared::new();
    let mut members = Vec::new();
    for name in ["a", "b", "c"] {
        members.push(member(&client, &shared, name, "g", "t", 5_000).await);
    }
    shared
        .until("2 partitions each", |w| {
            w.owners.len() == 6
                && ["a", "b", "c"]
                    .iter()
                    .all(|m| w.owners.values().filter(|o| o == m).count() == 2)
        })
        .await;
    let before = shared.world.lock().unwrap().owners.clone();
    members.push(member(&client, &shared, "d", "g", "t", 5_000).await);
    shared
        .until("d gets a partition", |w| {
            w.owners.len() == 6 && w.owners.values().any(|o| o == "d")
        })
        .await;
    let after = shared.world.lock().unwrap().owners.clone();
    let moved = before
        .iter()
        .filter(|(tp, o)| after.get(*tp) != Some(o))
        .count();
    assert_eq!(
        moved, 1,
        "sticky moves one partition: {before:?} -> {after:?}"
    );
    assert_eq!(shared.owned_by("d"), 1);
    let d = client.admin().describe_group("g").await.unwrap();
    assert_eq!(d.assignor, "sticky");
    assert_eq!(d.members.len(), 4);
    for m in members {
        m.close().await;
    }
    assert!(shared.world.lock().unwrap().overlaps.is_empty());
    let d = client.admin().describe_group("g").await.unwrap();
    assert_eq!(d.state, "empty", "close leaves the group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_member_loses_its_partitions_and_nothing_is_skipped() {
    let (_d, b) = start(&[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("t", 6, &[]).await.unwrap();
    let shared = Shared::new();
    let a = member(&client, &shared, "a", "g", "t", 1500).await;
    let bm = member(&client, &shared, "b", "g", "t", 1500).await;
    let c = member(&client, &shared, "c", "g", "t", 1500).await;
    shared
        .until("all six owned by three", |w| {
            w.owners.len() == 6 && w.owners.values().collect::<BTreeSet<_>>().len() == 3
        })
        .await;
    produce_numbers(&client, "t", 0..3000).await;
    shared
        .until("c consumed something", |w| {
            w.consumed.iter().any(|(m, ..)| m == "c")
        })
        .await;
    c.crash(&shared).await;
    // Its partitions move to a and b within the session timeout (1.5 s);
    // the deadline is generous only because CI machines stall.
    shared
        .until("a and b own everything", |w| {
            w.owners.len() == 6 && w.owners.values().all(|o| o == "a" || o == "b")
        })
        .await;
    produce_numbers(&client, "t", 3000..4000).await;
    shared
        .until("every number consumed", |w| numbers_seen(w).len() == 4000)
        .await;
    a.close().await;
    bm.close().await;
    let w = shared.world.lock().unwrap();
    assert!(w.overlaps.is_empty(), "{:?}", w.overlaps);
    // Per partition, the offsets consumed are contiguous from 0: nothing skipped.
    let mut per: BTreeMap<Tp, BTreeSet<i64>> = BTreeMap::new();
    for (_, tp, o, _) in &w.consumed {
        per.entry(tp.clone()).or_default().insert(*o);
    }
    for (tp, offsets) in per {
        let max = *offsets.iter().max().unwrap();
        assert_eq!(offsets.len() as i64, max + 1, "{tp:?} has gaps");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_while_members_join_leave_and_crash() {
    let (_d, b) = start(&[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("t", 6, &[]).await.unwrap();
    let shared = Shared::new();
    let total = 6000u64;
    let producer = {
        let client = client.clone();
        tokio::spawn(async move {
            for chunk in 0..12 {
                produce_numbers(&client, "t", chunk * 500..(chunk + 1) * 500).await;
            }
        })
    };
    let mut live = vec![member(&client, &shared, "m0", "g", "t", 1500).await];
    // Churn: joins, clean leaves and crashes, each after the group has
    // consumed a little more.
    for step in 1..=6u64 {
        let consumed = shared.world.lock().unwrap().consumed.len();
        shared
            .until("progress", |w| {
                w.consumed.len() > consumed || numbers_seen(w).len() as u64 == total
            })
            .await;
        let name = format!("m{step}");
        live.push(member(&client, &shared, &name, "g", "t", 1500).await);
        match step % 3 {
            0 => live.remove(0).close().await,
            1 => live.remove(0).crash(&shared).await,
            _ => {}
        }
    }
    producer.await.unwrap();
    shared
        .until("every number consumed", |w| {
            numbers_seen(w).len() as u64 == total
        })
        .await;
    for m in live {
        m.close().await;
    }
    let w = shared.world.lock().unwrap();
    assert!(w.overlaps.is_empty(), "{:?}", w.overlaps);
    assert_eq!(numbers_seen(&w), (0..total).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_comes_back_to_its_partitions_without_a_rebalance() {
    let (_d, b) = start(&[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("t", 4, &[]).await.unwrap();
    let shared = Shared::new();
    let static_config = || ConsumerConfig {
        group_instance_id: Some("instance-1".into()),
        ..config(10_000)
    };
    let s = member_with(&client, &shared, "s", "g", "t", static_config()).await;
    let other = member(&client, &shared, "b", "g", "t", 10_000).await;
    shared
        .until("two partitions each", |w| {
            w.owners.len() == 4 && w.owners.values().filter(|o| *o == "s").count() == 2
        })
        .await;
    let mine: BTreeSet<Tp> = {
        let w = shared.world.lock().unwrap();
        w.owners
            .iter()
            .filter(|(_, o)| *o == "s")
            .map(|(tp, _)| tp.clone())
            .collect()
    };
    let epoch = client.admin().describe_group("g").await.unwrap().epoch;
    s.close().await; // a static member leaves "for now"
    let d = client.admin().describe_group("g").await.unwrap();
    assert_eq!(
        d.epoch, epoch,
        "no rebalance when a static member steps out"
    );
    assert_eq!(d.members.len(), 2, "its place is kept");
    let back = member_with(&client, &shared, "s2", "g", "t", static_config()).await;
    shared
        .until("the same partitions back", |w| {
            w.owners.values().filter(|o| *o == "s2").count() == 2
        })
        .await;
    let again: BTreeSet<Tp> = {
        let w = shared.world.lock().unwrap();
        w.owners
            .iter()
            .filter(|(_, o)| *o == "s2")
            .map(|(tp, _)| tp.clone())
            .collect()
    };
    assert_eq!(again, mine);
    assert_eq!(shared.owned_by("b"), 2, "b never got them");
    assert_eq!(
        client.admin().describe_group("g").await.unwrap().epoch,
        epoch
    );
    back.close().await;
    other.close().await;
    assert!(shared.world.lock().unwrap().overlaps.is_empty());
}

async fn heartbeat(
    rpc: &mut v1::groups_client::GroupsClient<tonic::transport::Channel>,
    member_id: &str,
    epoch: i32,
) -> Result<v1::HeartbeatResponse, tonic::Status> {
    rpc.heartbeat(v1::HeartbeatRequest {
        group: "g".into(),
        member_id: member_id.into(),
        member_epoch: epoch,
        topics: vec!["t".into()],
        session_timeout_ms: 10_000,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

fn commit_req(
    member_id: &str,
    epoch: i32,
    partition: u32,
    offset: i64,
) -> v1::CommitOffsetsRequest {
    v1::CommitOffsetsRequest {
        group: "g".into(),
        member_id: member_id.into(),
        member_epoch: epoch,
        partitions: vec![v1::CommitPartition {
            topic: "t".into(),
            partition,
            offset,
            metadata: "m".into(),
        }],
        acks: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_and_stale_members_cannot_commit_or_heartbeat() {
    let (_d, b) = start(&[]);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("t", 2, &[]).await.unwrap();
    let mut rpc = v1::groups_client::GroupsClient::new(b.channel().await);
    let a = heartbeat(&mut rpc, "", 0).await.unwrap();
    assert_eq!(a.assignment[0].partitions, vec![0, 1]);
    rpc.commit_offsets(commit_req(&a.member_id, a.member_epoch, 0, 5))
        .await
        .unwrap();
    // A second member joins: the group epoch moves on; a commit with an
    // epoch a never had is stale.
    let b2 = heartbeat(&mut rpc, "", 0).await.unwrap();
    let err = rpc
        .commit_offsets(commit_req(&a.member_id, a.member_epoch + 5, 0, 6))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
    assert!(err.message().contains("stale epoch"), "{err}");
    // b does not own partition 0 yet (a has not released it).
    let err = rpc
        .commit_offsets(commit_req(&b2.member_id, b2.member_epoch, 0, 6))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("does not own"), "{err}");
    // A standalone commit while members are active is refused.
    let err = rpc
        .commit_offsets(commit_req("", -1, 0, 6))
        .await
        .unwrap_err();
    assert!(err.message().contains("active member"), "{err}");
    // a leaves; its id is fenced from then on.
    heartbeat(&mut rpc, &a.member_id, -1).await.unwrap();
    let err = rpc
        .commit_offsets(commit_req(&a.member_id, a.member_epoch, 0, 7))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("not in group"), "{err}");
    let err = heartbeat(&mut rpc, &a.member_id, a.member_epoch)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    // Nothing a fenced member sent was stored.
    let offsets = client
        .admin()
        .committed_offsets("g", &[("t".into(), 0)])
        .await
        .unwrap();
    assert_eq!(offsets[0].offset, 5);
    // Bad input names the problem.
    let err = rpc
        .commit_offsets(v1::CommitOffsetsRequest {
            partitions: vec![v1::CommitPartition {
                topic: "nope".into(),
                ..Default::default()
            }],
            ..commit_req("", -1, 0, 0)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(err.message().contains("nope"), "{err}");
    let err = rpc
        .heartbeat(v1::HeartbeatRequest {
            group: "g".into(),
            topics: vec!["t".into()],
            session_timeout_ms: 5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("group_session_timeout_ms_min"),
        "{err}"
    );
    // An epoch the wire gives no meaning, and a beat without a member.
    for (member, epoch, says) in [("m", -3, "member_epoch -3"), ("", 4, "member_id")] {
        let err = rpc
            .heartbeat(v1::HeartbeatRequest {
                group: "g".into(),
                topics: vec!["t".into()],
                member_id: member.into(),
                member_epoch: epoch,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        assert!(err.message().contains(says), "{err}");
    }
}

/// A port that is free now, so a broker can come back on the same address.
fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_membership_survive_restart_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let addr = free_port();
    let mut flags = FAST_GROUPS.to_vec();
    flags.extend_from_slice(&["--listen", &addr]);
    let mut b = BrokerProcess::start_in(&data, &flags);
    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("t", 2, &[]).await.unwrap();
    produce_numbers(&client, "t", 0..100).await;
    let shared = Shared::new();
    let mut c = client.consumer(ConsumerConfig {
        auto_commit: false,
        ..config(20_000)
    });
    c.subscribe_with(
        "g",
        &["t"],
        Tracker {
            name: "a".into(),
            shared: shared.clone(),
        },
    )
    .await
    .unwrap();
    let mut got = 0;
    while got < 100 {
        got += c.poll().await.unwrap().len();
    }
    c.commit().await.unwrap(); // durable: acknowledged once fsynced
    let (member_id, epoch) = c.member().unwrap();
    let committed = |client: Client| async move {
        let mut o = client.admin().committed_offsets("g", &[]).await.unwrap();
        o.sort_by_key(|o| o.partition);
        o.iter().map(|o| o.offset).collect::<Vec<_>>()
    };
    let mut before = committed(client.clone()).await;
    assert_eq!(before.iter().sum::<i64>(), 100);

    for (round, kill) in [(0, true), (1, false)] {
        if kill {
            b.kill9();
        } else {
            assert!(b.terminate().success());
        }
        b = BrokerProcess::start_in(&data, &flags);
        let client2 = Client::connect(b.url()).await.unwrap();
        assert_eq!(committed(client2.clone()).await, before, "round {round}");
        let d = client2.admin().describe_group("g").await.unwrap();
        assert_eq!(d.members.len(), 1, "round {round}");
        assert_eq!(d.members[0].member_id, member_id, "round {round}");
        assert_eq!(d.members[0].member_epoch, epoch, "round {round}");
        // The member carries on through the restart: new records arrive,
        // and its commits are accepted under the same id.
        produce_numbers(&client2, "t", 100..110).await;
        let mut got = 0;
        while got < 10 {
            got += c.poll().await.unwrap().len();
        }
        c.commit().await.unwrap();
        assert_eq!(
            c.member().unwrap().0,
            member_id,
            "round {round}: not fenced"
        );
        before = committed(client2).await;
        assert_eq!(
            before.iter().sum::<i64>(),
            110 + 10 * round,
            "round {round}"
        );
    }
    c.close().await.unwrap();
    assert!(shared.world.lock().unwrap().overlaps.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_describes_resets_and_deletes_groups() {
    let (_d, b) = start(&[]);
    let client = Client::connect(b.url()).await.unwrap();
    let admin = client.admin();
    admin.create_topic("t", 2, &[]).await.unwrap();
    produce_numbers(&client, "t", 0..50).await;
    let shared = Shared::new();
    let m = member(&client, &shared, "a", "g", "t", 5_000).await;
    shared
        .until("50 consumed", |w| w.consumed.len() >= 50)
        .await;
    let d = admin.describe_group("g").await.unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].client_id, "strata-client");
    assert!(
        d.members[0].host.starts_with("127.0.0.1:"),
        "{:?}",
        d.members[0]
    );
    let err = admin
        .reset_offsets("g", "t", &[], ResetSpec::Earliest)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("active member"), "{err}");
    assert!(admin.delete_group("g").await.is_err());
    m.close().await;
    // close committed everything: lag is zero on both partitions.
    let d = admin.describe_group("g").await.unwrap();
    assert_eq!(d.state, "empty");
    assert_eq!(d.offsets.iter().map(|o| o.offset).sum::<i64>(), 50);
    assert!(d.offsets.iter().all(|o| o.lag == 0), "{:?}", d.offsets);
    let groups = admin.list_groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (groups[0].group.as_str(), groups[0].state.as_str()),
        ("g", "empty")
    );
    // Reset to earliest: the lag is the whole partition again.
    let reset = admin
        .reset_offsets("g", "t", &[], ResetSpec::Earliest)
        .await
        .unwrap();
    assert!(
        reset
            .iter()
            .all(|o| o.offset == 0 && o.lag == o.log_end_offset)
    );
    let reset = admin
        .reset_offsets("g", "t", &[1], ResetSpec::Offset(3))
        .await
        .unwrap();
    assert_eq!(
        (reset.len(), reset[0].offset),
        (1, 3.min(reset[0].log_end_offset))
    );
    let reset = admin
        .reset_offsets("g", "t", &[], ResetSpec::Latest)
        .await
        .unwrap();
    assert!(reset.iter().all(|o| o.lag == 0));
    let reset = admin
        .reset_offsets("g", "t", &[], ResetSpec::Timestamp(0))
        .await
        .unwrap();
    assert!(reset.iter().all(|o| o.offset == 0), "{reset:?}");
    admin.delete_group("g").await.unwrap();
    assert!(admin.list_groups().await.unwrap().is_empty());
    // A standalone consumer stores its offsets in a group it never joins.
    admin
        .commit_offsets("solo", &[("t".into(), 1, 7)])
        .await
        .unwrap();
    let o = admin.committed_offsets("solo", &[]).await.unwrap();
    assert_eq!((o.len(), o[0].partition, o[0].offset), (1, 1, 7));
    assert_eq!(admin.list_groups().await.unwrap()[0].group, "solo");
    let err = admin.describe_group("g").await.unwrap_err();
    assert!(err.to_string().contains("unknown group"), "{err}");
}
