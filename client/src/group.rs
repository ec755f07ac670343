//! Group membership for the consumer: a background task that heartbeats
//! to the broker's group coordinator and keeps the latest assignment, and
//! the state the consumer and that task share.
//!
//! The task never touches the consumer's positions: it records what the
//! broker wants (`target`) and wakes the consumer. The consumer applies it
//! at the start of its next `poll` (revocations first: listener, commit,
//! drop), then records what it `owned` now and wakes the task, whose next
//! heartbeat tells the broker. So a partition is released only after the
//! application has handled every record it got from it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_proto::v1;
use tokio::sync::{Notify, watch};

use crate::client::Client;
use crate::error::Error;

use strata_proto::partitions::flatten;
pub(crate) use strata_proto::partitions::{Tp, by_topic};

/// Epoch that joins a group.
const JOIN_EPOCH: i32 = 0;
/// Epoch that leaves.
const LEAVE_EPOCH: i32 = -1;
/// Epoch a static member leaves with when it will come back.
const STATIC_LEAVE_EPOCH: i32 = -2;
/// First wait after a failed heartbeat; doubles up to the interval.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// The API's form of `(topic, partition, next offset)` commits.
pub(crate) fn commit_partitions(offsets: &[(String, u32, i64)]) -> Vec<v1::CommitPartition> {
    offsets
        .iter()
        .map(|(topic, partition, offset)| v1::CommitPartition {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
            metadata: String::new(),
        })
        .collect()
}

/// How a member joins.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub group: String,
    pub topics: Vec<String>,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub assignor: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
}

/// What the consumer and the heartbeat task share.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The broker's id for us; empty until joined.
    pub member_id: String,
    /// Our member epoch; 0 to (re)join.
    pub epoch: i32,
    /// What the broker last said we may own.
    pub target: BTreeSet<Tp>,
    /// What the consumer has applied, reported in every heartbeat.
    pub owned: BTreeSet<Tp>,
    /// The broker fenced us: what we owned is lost (others may have it);
    /// drop it without committing. Cleared by the consumer.
    pub lost: bool,
    /// A failure that heartbeats cannot get past (a bad setting).
    pub fatal: Option<Error>,
    /// Heartbeats answered, for `wait_for_assignment`.
    pub answers: u64,
}

/// The handle the consumer keeps.
#[derive(Debug)]
pub(crate) struct Member {
    pub spec: Membership,
    pub state: Arc<Mutex<State>>,
    /// Wakes the heartbeat task (the consumer released partitions).
    pub wake_task: Arc<Notify>,
    /// Wakes the consumer (the assignment changed).
    pub wake_consumer: Arc<Notify>,
    /// Dropping this stops the task (without leaving: as a crash would).
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    /// Starts heartbeating; the first heartbeat joins.
    pub fn start(client: Client, spec: Membership) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let wake_task = Arc::new(Notify::new());
        let wake_consumer = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(heartbeat_loop(
            client,
            spec.clone(),
            state.clone(),
            wake_task.clone(),
            wake_consumer.clone(),
            stopped,
        ));
        Self {
            spec,
            state,
            wake_task,
            wake_consumer,
            stop,
            task,
        }
    }

    /// The member id and epoch to commit with.
    pub fn identity(&self) -> (String, i32) {
        let s = self.state.lock().expect("group state");
        (s.member_id.clone(), s.epoch)
    }

    /// Stops heartbeating and leaves the group (a static member leaves
    /// for now: its partitions wait for it for a session timeout).
    pub async fn leave(self, client: &Client) -> crate::Result<()> {
        let (member_id, _) = self.identity();
        let _ = self.stop.send(true);
        let _ = self.task.await;
        // The task may have rejoined under a new id in the meantime.
        let member_id = {
            let s = self.state.lock().expect("group state");
            if s.member_id.is_empty() {
                member_id
            } else {
                s.member_id.clone()
            }
        };
        if member_id.is_empty() {
            return Ok(());
        }
        let epoch = if self.spec.instance_id.is_some() {
            STATIC_LEAVE_EPOCH
        } else {
            LEAVE_EPOCH
        };
        client
            .groups_rpc()
            .heartbeat(v1::HeartbeatRequest {
                group: self.spec.group.clone(),
                member_id,
                member_epoch: epoch,
                instance_id: self.spec.instance_id.clone().unwrap_or_default(),
                ..Default::default()
            })
            .await?;
        Ok(())
    }
}

async fn heartbeat_loop(
    client: Client,
    spec: Membership,
    state: Arc<Mutex<State>>,
    wake_task: Arc<Notify>,
    wake_consumer: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut interval = Duration::from_millis(u64::from(spec.session_timeout_ms.max(300) / 3));
    let mut backoff = RETRY_BACKOFF;
    loop {
        let req = {
            let s = state.lock().expect("group state");
            v1::HeartbeatRequest {
                group: spec.group.clone(),
                member_id: s.member_id.clone(),
                member_epoch: s.epoch,
                instance_id: spec.instance_id.clone().unwrap_or_default(),
                client_id: spec.client_id.clone(),
                topics: spec.topics.clone(),
                assignor: spec.assignor.clone(),
                session_timeout_ms: spec.session_timeout_ms,
                rebalance_timeout_ms: spec.rebalance_timeout_ms,
                owned: by_topic(&s.owned),
            }
        };
        let joining = req.member_epoch == JOIN_EPOCH;
        let wait = match client.groups_rpc().heartbeat(req).await {
            Ok(resp) => {
                let r = resp.into_inner();
                let target = flatten(r.assignment);
                let mut s = state.lock().expect("group state");
                s.member_id = r.member_id;
                s.epoch = r.member_epoch;
                s.answers += 1;
                if joining {
                    tracing::info!(group = %spec.group, member = %s.member_id, epoch = s.epoch, "joined group");
                }
                // Wake the consumer only for news, so its long-poll is not
                // cut short by every heartbeat.
                let news = target != s.target || joining;
                s.target = target;
                drop(s);
                if news {
                    wake_consumer.notify_one();
                }
                backoff = RETRY_BACKOFF;
                interval = Duration::from_millis(u64::from(r.heartbeat_interval_ms.max(1)));
                interval
            }
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                // Fenced: the broker has given our partitions away. Drop
                // them and rejoin at once.
                tracing::warn!(group = %spec.group, message = status.message(), "fenced by the group coordinator; rejoining");
                let mut s = state.lock().expect("group state");
                s.member_id.clear();
                s.epoch = JOIN_EPOCH;
                s.target.clear();
                s.owned.clear();
                s.lost = true;
                drop(s);
                wake_consumer.notify_one();
                Duration::ZERO
            }
            Err(status) if Error::from(status.clone()).is_retriable() => {
                tracing::debug!(group = %spec.group, error = %status, "heartbeat failed; retrying");
                let wait = backoff;
                backoff = (backoff * 2).min(interval);
                wait
            }
            Err(status) => {
                let mut s = state.lock().expect("group state");
                s.fatal = Some(status.into());
                drop(s);
                wake_consumer.notify_one();
                return;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake_task.notified() => {}
            r = stopped.changed() => {
                if r.is_err() || *stopped.borrow() {
                    return;
                }
            }
        }
    }
}
