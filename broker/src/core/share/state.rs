//! The persisted form of share groups, in the groups log beside consumer
//! groups (`groups::store`): prost messages, one per record kind.
//!
//! - `ShareGroupValue` under `Key::ShareGroup(group)`: the group's settings
//!   (its dead-letter topic, delivery limit, lease).
//! - `ShareUpdateValue` under `Key::ShareUpdate { group, tp, slot }`: the
//!   [`Change`]s of one decision (each the whole new state of a record).
//! - `ShareSnapshotValue` under `Key::ShareSnapshot { group, tp }`: a
//!   partition's whole state.
//!
//! Replay applies records in log order, so a snapshot replaces what came
//! before it. Updates go to a ring of `UPDATE_RING` keys per partition and
//! a snapshot is written at least every `UPDATE_RING` updates, so an update
//! newer than the last snapshot is never the older record of its key:
//! compaction (newest record per key) keeps every update replay needs and
//! drops the rest, and a partition holds at most `UPDATE_RING + 1` records
//! of the log after compaction. `docs/FORMAT.md` lays the values out.

use super::partition::{Change, DeadLetter, Restored, SharePartition, Slot, SlotState};

/// Update keys per partition; also the most updates between snapshots.
pub const UPDATE_RING: u32 = 256;

/// A record not done, as persisted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SlotValue {
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    #[prost(uint32, tag = "2")]
    pub attempts: u32,
    /// Leased to this member (empty: available).
    #[prost(string, tag = "3")]
    pub member: String,
    /// Leased: the deadline; available: from when.
    #[prost(uint64, tag = "4")]
    pub at_ms: u64,
    #[prost(string, optional, tag = "5")]
    pub last_error: Option<String>,
    #[prost(uint64, optional, tag = "6")]
    pub first_failure_ms: Option<u64>,
    #[prost(uint64, tag = "7")]
    pub last_failure_ms: u64,
}

/// A dead letter, as persisted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeadValue {
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    #[prost(uint32, tag = "2")]
    pub attempts: u32,
    #[prost(string, optional, tag = "3")]
    pub last_error: Option<String>,
    #[prost(uint64, tag = "4")]
    pub first_failure_ms: u64,
    #[prost(uint64, tag = "5")]
    pub last_failure_ms: u64,
    #[prost(uint64, tag = "6")]
    pub dlq_from: u64,
}

/// One change, as persisted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChangeValue {
    #[prost(oneof = "ChangeKind", tags = "1, 2, 3, 4, 5")]
    pub kind: Option<ChangeKind>,
}

/// Which change.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ChangeKind {
    #[prost(message, tag = "1")]
    Slot(SlotValue),
    #[prost(uint64, tag = "2")]
    Accepted(u64),
    #[prost(message, tag = "3")]
    DeadLettered(DeadValue),
    #[prost(uint64, tag = "4")]
    DeadLetterWritten(u64),
    #[prost(uint64, tag = "5")]
    SkipTo(u64),
}

/// One decision's changes of one partition.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShareUpdateValue {
    #[prost(message, repeated, tag = "1")]
    pub changes: Vec<ChangeValue>,
}

/// A partition's whole state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShareSnapshotValue {
    #[prost(uint64, tag = "1")]
    pub start: u64,
    #[prost(uint64, tag = "2")]
    pub fresh: u64,
    #[prost(message, repeated, tag = "3")]
    pub slots: Vec<SlotValue>,
    #[prost(uint64, repeated, tag = "4")]
    pub done: Vec<u64>,
    #[prost(message, repeated, tag = "5")]
    pub dead_pending: Vec<DeadValue>,
    #[prost(uint64, tag = "6")]
    pub dead_lettered_total: u64,
}

/// A share group's settings, as persisted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShareGroupValue {
    /// The dead-letter topic.
    #[prost(string, tag = "1")]
    pub dlq_topic: String,
    #[prost(uint32, tag = "2")]
    pub delivery_limit: u32,
    #[prost(uint64, tag = "3")]
    pub lease_ms: u64,
    /// Wall-clock time the group was made.
    #[prost(int64, tag = "4")]
    pub created_ms: i64,
    /// Where a partition new to the group starts: "earliest" (the log
    /// start) or "latest" (its end then).
    #[prost(string, tag = "5")]
    pub start: String,
}

fn slot_value(offset: u64, s: &Slot) -> SlotValue {
    let (member, at_ms) = match &s.state {
        SlotState::Available { at_ms } => (String::new(), *at_ms),
        SlotState::Leased {
            member,
            deadline_ms,
        } => (member.clone(), *deadline_ms),
    };
    SlotValue {
        offset,
        attempts: s.attempts,
        member,
        at_ms,
        last_error: s.last_error.clone(),
        first_failure_ms: s.first_failure_ms,
        last_failure_ms: s.last_failure_ms,
    }
}

fn slot(v: SlotValue) -> (u64, Slot) {
    let state = if v.member.is_empty() {
        SlotState::Available { at_ms: v.at_ms }
    } else {
        SlotState::Leased {
            member: v.member,
            deadline_ms: v.at_ms,
        }
    };
    let s = Slot {
        attempts: v.attempts,
        state,
        last_error: v.last_error,
        first_failure_ms: v.first_failure_ms,
        last_failure_ms: v.last_failure_ms,
    };
    (v.offset, s)
}

fn dead_value(d: &DeadLetter) -> DeadValue {
    DeadValue {
        offset: d.offset,
        attempts: d.attempts,
        last_error: d.last_error.clone(),
        first_failure_ms: d.first_failure_ms,
        last_failure_ms: d.last_failure_ms,
        dlq_from: d.dlq_from,
    }
}

fn dead(v: DeadValue) -> DeadLetter {
    DeadLetter {
        offset: v.offset,
        attempts: v.attempts,
        last_error: v.last_error,
        first_failure_ms: v.first_failure_ms,
        last_failure_ms: v.last_failure_ms,
        dlq_from: v.dlq_from,
    }
}

/// The persisted form of changes.
pub fn update_value(changes: &[Change]) -> ShareUpdateValue {
    let changes = changes
        .iter()
        .map(|c| ChangeValue {
            kind: Some(match c {
                Change::Slot { offset, slot } => ChangeKind::Slot(slot_value(*offset, slot)),
                Change::Accepted(o) => ChangeKind::Accepted(*o),
                Change::DeadLettered(d) => ChangeKind::DeadLettered(dead_value(d)),
                Change::DeadLetterWritten(o) => ChangeKind::DeadLetterWritten(*o),
                Change::SkipTo(o) => ChangeKind::SkipTo(*o),
            }),
        })
        .collect();
    ShareUpdateValue { changes }
}

/// Changes from their persisted form; `Err` names what is missing.
pub fn changes(v: ShareUpdateValue) -> Result<Vec<Change>, String> {
    v.changes
        .into_iter()
        .map(|c| {
            Ok(match c.kind.ok_or("a share change without a kind")? {
                ChangeKind::Slot(s) => {
                    let (offset, slot) = slot(s);
                    Change::Slot { offset, slot }
                }
                ChangeKind::Accepted(o) => Change::Accepted(o),
                ChangeKind::DeadLettered(d) => Change::DeadLettered(dead(d)),
                ChangeKind::DeadLetterWritten(o) => Change::DeadLetterWritten(o),
                ChangeKind::SkipTo(o) => Change::SkipTo(o),
            })
        })
        .collect()
}

/// A partition's snapshot.
pub fn snapshot_value(p: &SharePartition) -> ShareSnapshotValue {
    ShareSnapshotValue {
        start: p.start(),
        fresh: p.fresh(),
        slots: p.slots().iter().map(|(o, s)| slot_value(*o, s)).collect(),
        done: p.done().iter().copied().collect(),
        dead_pending: p.dead_pending().values().map(dead_value).collect(),
        dead_lettered_total: p.dead_lettered_total(),
    }
}

/// What a snapshot holds, for [`SharePartition::restore`].
pub fn restored(v: ShareSnapshotValue) -> Restored {
    Restored {
        start: v.start,
        fresh: v.fresh,
        slots: v.slots.into_iter().map(slot).collect(),
        done: v.done,
        dead_pending: v.dead_pending.into_iter().map(dead).collect(),
        dead_lettered_total: v.dead_lettered_total,
    }
}
