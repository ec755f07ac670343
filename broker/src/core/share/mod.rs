//! Share groups (work queues on the log): any number of members read the
//! same partitions, and each record is leased to one member at a time and
//! acknowledged on its own.
//!
//! - [`partition`]: one share partition's record states, without I/O:
//!   leases named by their delivery, acks (accept, release with a delay,
//!   reject, renew), expiry, retries with exponential backoff and jitter,
//!   the delivery limit and dead letters, the in-flight limit on leased
//!   records, and poison isolation; decisions as [`partition::Change`]s.
//! - [`state`]: the persisted form of groups, changes and snapshots in the
//!   groups log, and why the log stays bounded.
//! - [`group`]: one share group: settings, sessions, partitions, and the
//!   records each change needs.
//! - [`coordinator`]: every share group behind one lock: heartbeats,
//!   fetches with their acks, expiry; decide → records → apply.
//! - [`fetch`]: a fetch: acks, new leases, the read of their batches.
//! - [`read`]: reading the batches of what a fetch leased.
//! - [`dead_letter`]: copies to the dead-letter topic, exactly once.
//! - [`admin`]: list, describe, reset, delete.
//! - [`metrics`]: what share groups count.

pub mod admin;
pub mod coordinator;
pub mod dead_letter;
pub mod fetch;
pub mod group;
pub mod metrics;
pub mod partition;
pub mod read;
pub mod state;

pub use coordinator::{
    ShareAck, ShareDefaults, ShareFetched, ShareGroups, ShareHeartbeat, ShareHeartbeatAnswer,
};
