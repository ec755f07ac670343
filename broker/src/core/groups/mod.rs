//! Consumer groups: members share a topic's partitions, each partition read
//! by one member at a time, and committed offsets survive anything.
//!
//! - [`assignor`]: pure functions from subscriptions to a target assignment
//!   (sticky, range, round-robin).
//! - [`group`]: one group's membership state machine (KIP-848 style):
//!   epochs, reconciliation that revokes before it assigns, fencing.
//! - [`intent`]: what one heartbeat asks (join, beat, leave), read from the
//!   wire's epoch convention in one place.
//! - [`fenced`]: why a member is refused, and how it recovers.
//! - [`store`]: the internal log the groups are written through to, and
//!   its replay at startup.
//! - [`classic`]: Kafka's classic group protocol (JoinGroup, SyncGroup):
//!   the broker runs the barrier, the leader assigns.
//! - [`requests`]: the coordinator's settings, requests and answers.
//! - [`coordinator`]: all groups behind one lock; validates, decides on a
//!   copy, persists, applies, and answers the server.

pub mod assignor;
pub mod classic;
pub mod coordinator;
pub mod fenced;
pub mod group;
pub mod intent;
pub mod requests;
pub mod store;

pub use assignor::{Assignor, Tp};
pub use coordinator::{
    Coordinator, GroupSettings, HeartbeatAnswer, HeartbeatRequest, OffsetInfo, ResetTo,
};
pub use group::{Committer, Fenced};
pub use intent::Intent;
