//! The groups coordinator's settings, requests and answers: what the
//! server hands it and gets back.

use std::collections::BTreeSet;

use super::assignor::Tp;
use super::group::{Committed, Intent};
use crate::core::error::Result;
use crate::core::share::ShareDefaults;

/// Bounds and defaults of groups, set by the broker's flags.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// Session timeout of a member that does not ask for one.
    pub session_timeout_ms: u32,
    /// The shortest session timeout a member may ask for.
    pub session_timeout_ms_min: u32,
    /// The longest session timeout a member may ask for.
    pub session_timeout_ms_max: u32,
    /// How often members heartbeat (capped at a third of their session).
    pub heartbeat_interval_ms: u32,
    /// How long a member that does not ask otherwise may take to release a
    /// revoked partition before it is removed from the group.
    pub rebalance_timeout_ms: u32,
    /// Groups on the broker.
    pub groups_max: u32,
    /// Members of one group.
    pub group_members_max: u32,
    /// Bytes of metadata in one committed offset.
    pub commit_metadata_bytes_max: u32,
    /// Topics one member may subscribe to: a change of subscription walks
    /// every member's topics under the groups lock.
    pub member_topics_max: u32,
    /// How long a new classic (Kafka JoinGroup) group's first rebalance
    /// waits for more members.
    pub initial_rebalance_delay_ms: u32,
    /// Share groups' bounds and defaults.
    pub share: ShareDefaults,
    /// Segment size of the groups log (`groups/log`).
    pub log_segment_bytes: u64,
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            session_timeout_ms: 45_000,
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 300_000,
            heartbeat_interval_ms: 3_000,
            rebalance_timeout_ms: 60_000,
            groups_max: 10_000,
            group_members_max: 1_000,
            commit_metadata_bytes_max: 4_096,
            member_topics_max: 1_000,
            initial_rebalance_delay_ms: 3_000,
            share: ShareDefaults::default(),
            log_segment_bytes: super::store::SEGMENT_BYTES,
        }
    }
}

/// A heartbeat, as the coordinator takes it.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    /// The group.
    pub group: String,
    /// Join, beat (with what the member owns now) or leave.
    pub intent: Intent,
    /// Static membership id (empty: none).
    pub instance_id: String,
    /// The client's name.
    pub client_id: String,
    /// The caller's address.
    pub host: String,
    /// Subscription.
    pub topics: Vec<String>,
    /// Assignor name (empty: sticky).
    pub assignor: String,
    /// 0: the default.
    pub session_timeout_ms: u32,
    /// 0: the default.
    pub rebalance_timeout_ms: u32,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatAnswer {
    /// The member's id.
    pub member_id: String,
    /// Its epoch.
    pub epoch: i32,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: u32,
    /// What it may own.
    pub assigned: BTreeSet<Tp>,
    /// Target partitions still held by others.
    pub pending: u32,
}

/// One partition's committed offset and lag.
#[derive(Debug)]
pub struct OffsetInfo {
    /// The partition.
    pub tp: Tp,
    /// What is committed, if anything.
    pub committed: Option<Committed>,
    /// The partition's high watermark (the end consumers see), or why it
    /// is unknown.
    pub end: Result<u64>,
}

impl OffsetInfo {
    /// End minus committed, when both are known.
    pub fn lag(&self) -> Option<i64> {
        match (&self.committed, &self.end) {
            (Some(c), Ok(end)) => Some((*end as i64 - c.offset).max(0)),
            _ => None,
        }
    }
}

/// Where a reset moves offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The log start.
    Earliest,
    /// The end (high watermark).
    Latest,
    /// The first record at or after this time (ms); the end if none.
    Timestamp(i64),
    /// This offset, clamped into the log.
    Offset(i64),
}
