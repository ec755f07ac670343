//! The broker's core: topics, partitions and their rules. No transport:
//! the gRPC layer (`crate::server`) translates requests into calls here and
//! [`BrokerError`]s into statuses.
//!
//! - [`config`]: topic settings (Kafka-style keys), defaults and limits.
//! - [`topic`]: topic names and the `topic.meta` file.
//! - [`partition`]: one partition: its log, appends (group-committed by the
//!   storage engine) and reads on blocking threads, and a watch channel
//!   that wakes long-polls and subscriptions when records become visible.
//! - [`broker`]: the set of topics on disk: create, delete, alter, grow,
//!   recover at startup, close at shutdown.
//! - [`groups`]: consumer groups: membership, assignment, committed offsets.
//! - [`budget`]: the broker-wide budget of response memory.
//! - [`share`]: share groups (work queues on the log): leases, acks,
//!   retries and dead letters.
//! - [`security`]: principals, users, tokens and ACLs.

pub mod broker;
pub mod budget;
pub mod config;
pub mod error;
pub mod groups;
pub mod partition;
pub mod security;
pub mod share;
pub mod topic;

pub use broker::{Broker, BrokerOptions};
pub use config::{Limits, TopicConfig, TopicDefaults};
pub use error::BrokerError;
pub use partition::{Acks, Partition};
