//! The core's error type. Each variant names the topic, partition, key or
//! limit involved; `crate::server::status` is the one place that maps them
//! to gRPC codes.

use std::path::PathBuf;

use crate::storage::StorageError;

/// An error from the broker's core.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No topic of that name.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// The topic exists but has fewer partitions.
    #[error("topic {topic:?} has no partition {partition} (it has {count})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many the topic has.
        count: u32,
    },
    /// Create of a name in use.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// A topic name that breaks the naming rules.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A config key with a bad value.
    #[error("invalid config {key}={value:?}: {reason}")]
    InvalidConfig {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A config key we do not know.
    #[error("unknown config key {key:?} (known keys: {known})")]
    UnknownConfigKey {
        /// The key given.
        key: String,
        /// The keys that exist.
        known: String,
    },
    /// Any other malformed request.
    #[error("{0}")]
    InvalidArgument(String),
    /// A named limit that the request can never fit was hit (retrying
    /// the same request cannot help).
    #[error("{limit} ({max}) exceeded: {what}")]
    LimitExceeded {
        /// The limit's name, as configured.
        limit: &'static str,
        /// The limit's value.
        max: u64,
        /// What exceeded it.
        what: String,
    },
    /// A named limit that is full now: the same request may fit later,
    /// once others finish (clients retry it).
    #[error("{limit} ({max}) is full: {what}; try again later")]
    Busy {
        /// The limit's name, as configured.
        limit: &'static str,
        /// The limit's value.
        max: u64,
        /// What did not fit.
        what: String,
    },
    /// A partition (or topic) that could not be opened, for example because
    /// of corruption. Other partitions keep serving.
    #[error("partition {topic}/{partition} is unavailable: {reason}")]
    PartitionFailed {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// Why it could not be opened.
        reason: String,
    },
    /// The broker is stopping.
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// The storage engine refused or failed.
    #[error("{topic}/{partition}: {source}")]
    Storage {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The engine's error.
        #[source]
        source: StorageError,
    },
    /// A file of the broker outside a partition log (topic metadata, the
    /// producer-id block) is damaged, or its disk is full.
    #[error("{0}")]
    Disk(StorageError),
    /// A file operation outside a partition log failed.
    #[error("I/O error during {op} on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A bug: a task panicked or a channel closed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
    /// A group member (or a standalone committer) that may not do what it
    /// asked: unknown, stale, or not the owner.
    #[error("{0}")]
    Fenced(#[from] super::groups::Fenced),
    /// An admin operation that needs a group without members.
    #[error("group {group:?} has {members} active member(s); stop them before you {what}")]
    GroupNotEmpty {
        /// The group.
        group: String,
        /// How many members it has.
        members: usize,
        /// What was refused.
        what: String,
    },
    /// No group of that name.
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    /// An ack that names a lease the record no longer has, or another
    /// member's lease.
    #[error("{0}")]
    Share(#[from] super::share::partition::ShareError),
    /// A group name used by the other kind of group (consumer groups and
    /// share groups share one namespace).
    #[error("group {group:?} is a {is}; it cannot be used as a {asked}")]
    GroupKindMismatch {
        /// The group.
        group: String,
        /// What it is.
        is: &'static str,
        /// What the request treated it as.
        asked: &'static str,
    },
    /// Refused by security: not authenticated, not authorized, or an
    /// unknown user or token in a security admin call.
    #[error("{0}")]
    Security(#[from] super::security::SecurityError),
    /// Over a quota: the same request fits after `throttle_time_ms`.
    #[error(
        "{principal} is over its {kind:?} quota ({rate_per_sec}/s): retry in {throttle_time_ms} ms"
    )]
    Throttled {
        /// Who.
        principal: String,
        /// Which quota.
        kind: super::security::QuotaKind,
        /// Its rate.
        rate_per_sec: u64,
        /// How long to wait.
        throttle_time_ms: u64,
    },
    /// Another broker holds the data directory.
    #[error(
        "data directory {0} is locked by another running broker; stop it, or use another --data-dir"
    )]
    DataDirLocked(PathBuf),
}

impl BrokerError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        op: &'static str,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| match StorageError::io(path, op)(source) {
            StorageError::Io { path, op, source } => Self::Io { path, op, source },
            other => Self::Disk(other),
        }
    }
}

impl From<StorageError> for BrokerError {
    /// Storage errors outside a partition (topic metadata files, the
    /// producer-id block): every variant keeps its meaning (and so its
    /// status), none is turned into a client's mistake.
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Io { path, op, source } => Self::Io { path, op, source },
            other => Self::Disk(other),
        }
    }
}

/// Shorthand for the core's results.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
