//! Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup): the client-side-assignment protocol librdkafka and the
//! Java client use by default. The broker only runs the barrier: members
//! join, one generation is formed with a leader, the leader's assignments
//! (opaque bytes) are handed to every member at SyncGroup.
//!
//! States, as in Kafka: `Empty` → `PreparingRebalance` (members (re)join;
//! it ends when every known member has joined, or at the rebalance
//! deadline, dropping those that did not) → `CompletingRebalance` (the
//! leader's SyncGroup is awaited) → `Stable`. A member that joins, leaves
//! or misses its session moves the group back to `PreparingRebalance`.
//!
//! Membership lives in memory: after a broker restart members get
//! UNKNOWN_MEMBER_ID and join again, as after a coordinator failover in
//! Kafka. Committed offsets are the coordinator's (durable, shared with
//! gRPC groups); this module only says whether a commit's generation and
//! member are current.
//!
//! **Invariant:** a group's name is used by one protocol at a time: the
//! Kafka listener refuses a classic join while the coordinator's group of
//! that name has members, and the coordinator refuses a join while this
//! one has.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

/// Why a classic group request is refused (each is a Kafka error code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassicError {
    /// The member id is not (or no longer) in the group.
    #[error("member {member:?} is not in group {group:?}; join again")]
    UnknownMember { group: String, member: String },
    /// The generation is not the group's current one.
    #[error("generation {sent} of group {group:?} is stale (current: {current}); join again")]
    IllegalGeneration {
        group: String,
        sent: i32,
        current: i32,
    },
    /// The group is rebalancing: join again.
    #[error("group {0:?} is rebalancing; join again")]
    RebalanceInProgress(String),
    /// No protocol common to the member and the group.
    #[error("group {group:?}: {why}")]
    InconsistentProtocol { group: String, why: String },
    /// A session timeout outside the broker's bounds.
    #[error(
        "session timeout {asked} ms is outside [{min}, {max}] (group_session_timeout_ms_min/max)"
    )]
    InvalidSessionTimeout { asked: i32, min: u32, max: u32 },
    /// The group is full.
    #[error("group {group:?} has group_members_max ({max}) members")]
    GroupFull { group: String, max: u32 },
    /// The broker is shutting down.
    #[error("the broker is shutting down")]
    ShuttingDown,
}

type R<T> = Result<T, ClassicError>;

/// The bounds of classic groups (the broker's group settings).
#[derive(Debug, Clone)]
pub struct ClassicSettings {
    /// Shortest session a member may ask for.
    pub session_timeout_ms_min: u32,
    /// Longest session a member may ask for.
    pub session_timeout_ms_max: u32,
    /// Members of one group.
    pub group_members_max: u32,
    /// How long the first rebalance of an empty group waits for more
    /// members (Kafka's `group.initial.rebalance.delay.ms`).
    pub initial_rebalance_delay_ms: u32,
}

/// A JoinGroup, as the state machine takes it.
#[derive(Debug, Clone)]
pub struct Join {
    pub group: String,
    /// Empty on a member's first join.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub protocol_type: String,
    /// Protocol names with their metadata, in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// JoinGroup v4+: a first join gets an id (MEMBER_ID_REQUIRED) and
    /// must come back with it.
    pub require_known_member: bool,
}

/// What a join is answered with.
#[derive(Debug, Clone)]
pub enum Joined {
    /// v4+: join again with this id.
    MemberIdRequired(String),
    /// The new generation.
    Generation(Generation),
}

/// A formed generation, as one member sees it.
#[derive(Debug, Clone)]
pub struct Generation {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata, for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// A member's SyncGroup answer: its assignment.
pub type Synced = (String, String, Bytes);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

#[derive(Debug)]
struct Member {
    instance_id: Option<String>,
    client_id: String,
    host: String,
    protocols: Vec<(String, Bytes)>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    assignment: Bytes,
    heard: Instant,
    joining: Option<oneshot::Sender<R<Joined>>>,
    syncing: Option<oneshot::Sender<R<Synced>>>,
}

#[derive(Debug)]
struct Group {
    state: State,
    generation: i32,
    protocol_type: String,
    protocol: String,
    leader: String,
    members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, with when they lapse.
    pending: HashMap<String, Instant>,
    /// When PreparingRebalance ends whoever has joined.
    deadline: Instant,
    /// Before this, a new group's first rebalance waits for more joins.
    not_before: Instant,
}

/// A member as describe shows it.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as describe shows it.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberView>,
}

/// Every classic group of the broker.
#[derive(Debug)]
pub struct ClassicGroups {
    settings: ClassicSettings,
    groups: Mutex<HashMap<String, Group>>,
}

/// `member` is not in `group`.
fn unknown(group: &str, member: &str) -> ClassicError {
    ClassicError::UnknownMember {
        group: group.into(),
        member: member.into(),
    }
}

fn new_member_id(client_id: &str) -> String {
    format!(
        "{client_id}-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

impl Group {
    fn new(now: Instant) -> Self {
        Self {
            state: State::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: String::new(),
            leader: String::new(),
            members: BTreeMap::new(),
            pending: HashMap::new(),
            deadline: now,
            not_before: now,
        }
    }

    /// Starts (or keeps) a rebalance: every member must join again.
    fn prepare(&mut self, group: &str, now: Instant) {
        if self.state == State::PreparingRebalance {
            return;
        }
        let longest = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.deadline = now + longest;
        for m in self.members.values_mut() {
            if let Some(tx) = m.syncing.take() {
                let _ = tx.send(Err(ClassicError::RebalanceInProgress(group.into())));
            }
        }
        self.state = State::PreparingRebalance;
    }

    /// The protocol every member supports, by the first member's order.
    fn common_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .cloned()
    }

    /// Ends PreparingRebalance if every member has joined (and a new
    /// group's delay is over), or the deadline passed.
    fn maybe_complete(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let all = self.members.values().all(|m| m.joining.is_some());
        if !((all && now >= self.not_before) || now >= self.deadline) {
            return;
        }
        self.members.retain(|_, m| m.joining.is_some());
        self.generation += 1;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol.clear();
            self.leader.clear();
            return;
        }
        self.protocol = self.common_protocol().unwrap_or_default();
        if !self.members.contains_key(&self.leader) {
            self.leader = self.members.keys().next().cloned().unwrap_or_default();
        }
        self.state = State::CompletingRebalance;
        let everyone: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| {
                let meta = m
                    .protocols
                    .iter()
                    .find(|(n, _)| *n == self.protocol)
                    .map(|(_, b)| b.clone());
                (id.clone(), m.instance_id.clone(), meta.unwrap_or_default())
            })
            .collect();
        for (id, m) in self.members.iter_mut() {
            m.assignment = Bytes::new();
            m.heard = now;
            let members = if *id == self.leader {
                everyone.clone()
            } else {
                Vec::new()
            };
            if let Some(tx) = m.joining.take() {
                let _ = tx.send(Ok(Joined::Generation(Generation {
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: self.protocol.clone(),
                    leader: self.leader.clone(),
                    member_id: id.clone(),
                    members,
                })));
            }
        }
    }

    /// The member, if `id` is in the group at `generation`.
    fn current(&mut self, group: &str, id: &str, generation: i32) -> R<&mut Member> {
        let current = self.generation;
        let m = self
            .members
            .get_mut(id)
            .ok_or_else(|| ClassicError::UnknownMember {
                group: group.into(),
                member: id.into(),
            })?;
        if generation != current {
            return Err(ClassicError::IllegalGeneration {
                group: group.into(),
                sent: generation,
                current,
            });
        }
        Ok(m)
    }

    fn remove(&mut self, group: &str, id: &str, now: Instant) {
        if let Some(m) = self.members.remove(id) {
            if let Some(tx) = m.joining {
                let _ = tx.send(Err(ClassicError::UnknownMember {
                    group: group.into(),
                    member: id.into(),
                }));
            }
            if self.members.is_empty() {
                self.state = State::Empty;
                self.generation += 1;
                self.leader.clear();
                return;
            }
            self.prepare(group, now);
            self.maybe_complete(now);
        }
    }
}

impl ClassicGroups {
    /// No groups yet.
    pub fn new(settings: ClassicSettings) -> Self {
        Self {
            settings,
            groups: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins `j.group`; the answer comes when the generation forms (or at
    /// once: MEMBER_ID_REQUIRED, or a refusal).
    pub fn join(&self, j: Join) -> oneshot::Receiver<R<Joined>> {
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let s = &self.settings;
        let refuse = |tx: oneshot::Sender<R<Joined>>, e| {
            let _ = tx.send(Err(e));
        };
        let session = j.session_timeout_ms;
        if session < s.session_timeout_ms_min as i32 || session > s.session_timeout_ms_max as i32 {
            refuse(
                tx,
                ClassicError::InvalidSessionTimeout {
                    asked: session,
                    min: s.session_timeout_ms_min,
                    max: s.session_timeout_ms_max,
                },
            );
            return rx;
        }
        if j.protocol_type.is_empty() || j.protocols.is_empty() {
            refuse(
                tx,
                ClassicError::InconsistentProtocol {
                    group: j.group.clone(),
                    why: "a join needs a protocol type and at least one protocol".into(),
                },
            );
            return rx;
        }
        let mut groups = self.lock();
        let g = groups
            .entry(j.group.clone())
            .or_insert_with(|| Group::new(now));
        if g.state != State::Empty && !g.members.is_empty() {
            if g.protocol_type != j.protocol_type {
                refuse(
                    tx,
                    ClassicError::InconsistentProtocol {
                        group: j.group.clone(),
                        why: format!(
                            "protocol type {:?} differs from the group's {:?}",
                            j.protocol_type, g.protocol_type
                        ),
                    },
                );
                return rx;
            }
            let shared = j.protocols.iter().any(|(n, _)| {
                g.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == n))
            });
            if !shared {
                refuse(
                    tx,
                    ClassicError::InconsistentProtocol {
                        group: j.group.clone(),
                        why: "no assignment protocol in common with the group's members".into(),
                    },
                );
                return rx;
            }
        }
        let mut id = j.member_id.clone();
        if id.is_empty() {
            if g.members.len() + g.pending.len() >= s.group_members_max as usize {
                refuse(
                    tx,
                    ClassicError::GroupFull {
                        group: j.group.clone(),
                        max: s.group_members_max,
                    },
                );
                return rx;
            }
            id = new_member_id(&j.client_id);
            if j.require_known_member {
                g.pending
                    .insert(id.clone(), now + Duration::from_millis(session as u64));
                let _ = tx.send(Ok(Joined::MemberIdRequired(id)));
                return rx;
            }
        } else if !g.members.contains_key(&id) && g.pending.remove(&id).is_none() {
            refuse(
                tx,
                ClassicError::UnknownMember {
                    group: j.group.clone(),
                    member: id,
                },
            );
            return rx;
        }
        if g.members.is_empty() {
            g.protocol_type = j.protocol_type.clone();
            g.not_before = now + Duration::from_millis(u64::from(s.initial_rebalance_delay_ms));
        }
        let member = g.members.entry(id.clone()).or_insert_with(|| Member {
            instance_id: None,
            client_id: String::new(),
            host: String::new(),
            protocols: Vec::new(),
            session_timeout: Duration::ZERO,
            rebalance_timeout: Duration::ZERO,
            assignment: Bytes::new(),
            heard: now,
            joining: None,
            syncing: None,
        });
        member.instance_id = j.instance_id;
        member.client_id = j.client_id;
        member.host = j.host;
        member.protocols = j.protocols;
        member.session_timeout = Duration::from_millis(session as u64);
        member.rebalance_timeout =
            Duration::from_millis(j.rebalance_timeout_ms.max(session) as u64);
        member.heard = now;
        if let Some(old) = member.joining.replace(tx) {
            let _ = old.send(Err(ClassicError::RebalanceInProgress(j.group.clone())));
        }
        g.prepare(&j.group, now);
        g.deadline = g.deadline.max(g.not_before);
        g.maybe_complete(now);
        rx
    }

    /// SyncGroup: the leader hands in every assignment; each member gets
    /// its own once the leader has.
    pub fn sync(
        &self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> oneshot::Receiver<R<Synced>> {
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group) else {
            let _ = tx.send(Err(ClassicError::UnknownMember {
                group: group.into(),
                member: member.into(),
            }));
            return rx;
        };
        let (state, is_leader) = (g.state, g.leader == member);
        let (ptype, proto) = (g.protocol_type.clone(), g.protocol.clone());
        let m = match g.current(group, member, generation) {
            Ok(m) => m,
            Err(e) => {
                let _ = tx.send(Err(e));
                return rx;
            }
        };
        m.heard = now;
        match state {
            State::Stable => {
                let _ = tx.send(Ok((ptype, proto, m.assignment.clone())));
            }
            State::CompletingRebalance => {
                m.syncing = Some(tx);
                if is_leader {
                    let given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for (id, m) in g.members.iter_mut() {
                        m.assignment = given.get(id).cloned().unwrap_or_default();
                        if let Some(tx) = m.syncing.take() {
                            let _ =
                                tx.send(Ok((ptype.clone(), proto.clone(), m.assignment.clone())));
                        }
                    }
                    g.state = State::Stable;
                }
            }
            _ => {
                let _ = tx.send(Err(ClassicError::RebalanceInProgress(group.into())));
            }
        }
        rx
    }

    /// Heartbeat: keeps the session; says when to join again.
    pub fn heartbeat(&self, group: &str, member: &str, generation: i32) -> R<()> {
        let mut groups = self.lock();
        let g = groups
            .get_mut(group)
            .ok_or_else(|| unknown(group, member))?;
        let state = g.state;
        let m = g.current(group, member, generation)?;
        m.heard = Instant::now();
        match state {
            State::PreparingRebalance => Err(ClassicError::RebalanceInProgress(group.into())),
            _ => Ok(()),
        }
    }

    /// LeaveGroup for one member; the others rebalance.
    pub fn leave(&self, group: &str, member: &str) -> R<()> {
        let mut groups = self.lock();
        let g = groups
            .get_mut(group)
            .ok_or_else(|| unknown(group, member))?;
        if !g.members.contains_key(member) {
            return Err(ClassicError::UnknownMember {
                group: group.into(),
                member: member.into(),
            });
        }
        g.remove(group, member, Instant::now());
        Ok(())
    }

    /// Whether an offset commit from (`member`, `generation`) may go in:
    /// a standalone commit (no member, generation -1) only to a group
    /// without classic members.
    pub fn check_commit(&self, group: &str, member: &str, generation: i32) -> R<()> {
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group).filter(|g| !g.members.is_empty()) else {
            if member.is_empty() && generation < 0 {
                return Ok(());
            }
            return Err(ClassicError::UnknownMember {
                group: group.into(),
                member: member.into(),
            });
        };
        let state = g.state;
        let m = g.current(group, member, generation)?;
        m.heard = Instant::now();
        if state == State::CompletingRebalance {
            return Err(ClassicError::RebalanceInProgress(group.into()));
        }
        Ok(())
    }

    /// Expires sessions and pending ids, and ends rebalances whose
    /// deadline passed. Call periodically.
    pub fn tick(&self) {
        let now = Instant::now();
        let mut groups = self.lock();
        for (name, g) in groups.iter_mut() {
            g.pending.retain(|_, lapses| *lapses > now);
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| {
                    m.joining.is_none() && now.duration_since(m.heard) > m.session_timeout
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = %name, member = %id, "classic group member's session expired");
                g.remove(name, &id, now);
            }
            g.maybe_complete(now);
        }
        groups.retain(|_, g| {
            !(g.members.is_empty() && g.pending.is_empty() && g.state == State::Empty)
        });
    }

    /// Whether `group` has classic members now.
    pub fn has_members(&self, group: &str) -> bool {
        self.lock()
            .get(group)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Every classic group with members: name and state.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.lock()
            .iter()
            .filter(|(_, g)| !g.members.is_empty())
            .map(|(n, g)| (n.clone(), g.state.name()))
            .collect()
    }

    /// A group's state and members, if it has members.
    pub fn describe(&self, group: &str) -> Option<GroupView> {
        let groups = self.lock();
        let g = groups.get(group).filter(|g| !g.members.is_empty())?;
        Some(GroupView {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberView {
                    id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    host: m.host.clone(),
                    metadata: m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == g.protocol)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// Ends every waiting join and sync (shutdown).
    pub fn close(&self) {
        for g in self.lock().values_mut() {
            for m in g.members.values_mut() {
                if let Some(tx) = m.joining.take() {
                    let _ = tx.send(Err(ClassicError::ShuttingDown));
                }
                if let Some(tx) = m.syncing.take() {
                    let _ = tx.send(Err(ClassicError::ShuttingDown));
                }
            }
        }
    }
}
