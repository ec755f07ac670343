//! One heartbeat as the group's state machine takes it and answers it, and
//! what the member asks with it: join, beat at its epoch, or leave. The wire (strata.v1 and KIP-848 alike) folds this into
//! a member epoch of 0 / -1 / -2 and an empty member id; [`Intent::from_wire`]
//! is the one place that convention is read, so the state machine never
//! sees a sentinel.

use std::collections::BTreeSet;

use super::assignor::Tp;
use crate::core::error::{BrokerError, Result};

/// The wire's member epoch to join.
const WIRE_JOIN_EPOCH: i32 = 0;
/// The wire's member epoch to leave.
const WIRE_LEAVE_EPOCH: i32 = -1;
/// The wire's member epoch to leave for now (a static member).
const WIRE_STATIC_LEAVE_EPOCH: i32 = -2;

/// What a heartbeat asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Join the group. A member that names the id it held before starts
    /// over under a new one; a static member (instance id) takes its
    /// predecessor's place, partitions included.
    Join {
        /// The id this process held before, if it says so.
        previous_id: Option<String>,
    },
    /// A member's heartbeat at the epoch it knows, reporting what it owns
    /// now (revocations it has finished are no longer in it).
    Beat {
        /// The member.
        member_id: String,
        /// The epoch its last reply carried.
        epoch: i32,
        /// What it owns now.
        owned: BTreeSet<Tp>,
    },
    /// Leave the group.
    Leave {
        /// The member (leaving twice, or unknown, is fine).
        member_id: String,
        /// A static member leaving for now: its partitions wait for it for
        /// one session timeout instead of moving at once.
        for_now: bool,
    },
}

impl Default for Intent {
    fn default() -> Self {
        Intent::Join { previous_id: None }
    }
}

impl Intent {
    /// Reads the wire's convention: member epoch 0 joins, -1 leaves, -2
    /// leaves for now, a positive epoch beats (and needs the member id).
    pub fn from_wire(member_id: String, epoch: i32, owned: BTreeSet<Tp>) -> Result<Intent> {
        let member = |id: String| (!id.is_empty()).then_some(id);
        Ok(match epoch {
            WIRE_JOIN_EPOCH => Intent::Join {
                previous_id: member(member_id),
            },
            WIRE_LEAVE_EPOCH | WIRE_STATIC_LEAVE_EPOCH => Intent::Leave {
                member_id,
                for_now: epoch == WIRE_STATIC_LEAVE_EPOCH,
            },
            e if e > 0 && member_id.is_empty() => {
                return Err(BrokerError::InvalidArgument(
                    "member_id is required with a member epoch above 0".into(),
                ));
            }
            e if e > 0 => Intent::Beat {
                member_id,
                epoch,
                owned,
            },
            e => {
                return Err(BrokerError::InvalidArgument(format!(
                    "member_epoch {e} means nothing: 0 joins, -1 leaves, -2 leaves \
                     for now, a positive epoch heartbeats"
                )));
            }
        })
    }

    /// The member epoch the wire answers with: after a leave, the one the
    /// member sent (-1 or -2); else the member's `epoch`.
    pub fn wire_reply_epoch(&self, epoch: i32) -> i32 {
        match self {
            Intent::Leave { for_now: false, .. } => WIRE_LEAVE_EPOCH,
            Intent::Leave { for_now: true, .. } => WIRE_STATIC_LEAVE_EPOCH,
            _ => epoch,
        }
    }

    /// The member id the heartbeat names, if any.
    pub fn member_id(&self) -> Option<&str> {
        match self {
            Intent::Join { previous_id } => previous_id.as_deref(),
            Intent::Beat { member_id, .. } | Intent::Leave { member_id, .. } => Some(member_id),
        }
    }
}

/// What a heartbeat carries, as the group needs it.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Join, beat or leave.
    pub intent: Intent,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// The client's name.
    pub client_id: String,
    /// The caller's address.
    pub host: String,
    /// The subscription.
    pub topics: BTreeSet<String>,
    /// Session timeout, already checked against the broker's bounds.
    pub session_timeout_ms: u32,
    /// Revocation timeout, already checked.
    pub rebalance_timeout_ms: u32,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// The member's id.
    pub member_id: String,
    /// Its epoch (after a leave: the one it left at, 0 if unknown).
    pub epoch: i32,
    /// What it may own.
    pub assigned: BTreeSet<Tp>,
    /// Target partitions still held by others.
    pub pending: usize,
}
