//! The client's errors, typed, each saying whether a retry can help.
//!
//! Whether to retry comes from the broker: every error it sends carries a
//! reason and a retriable flag (in a per-partition `v1::Error`, or as
//! `google.rpc.ErrorInfo` in a failed call's status details). Only a
//! failure the broker did not describe (the connection dropped, the call
//! timed out) falls back to its gRPC code.

use std::time::Duration;

pub use strata_proto::v1::ErrorReason;
use tonic_types::StatusExt;

/// An error from the Strata client. Cloneable, so one failed batch can
/// fail each of its records' futures with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The broker could not be reached at all.
    #[error("cannot connect to {url}: {detail}")]
    Connect {
        /// The broker's address.
        url: String,
        /// The error and its sources, as one line.
        detail: String,
        /// The transport's error.
        #[source]
        source: std::sync::Arc<tonic::transport::Error>,
    },
    /// A call failed as a whole (a gRPC status from the broker or the transport).
    #[error("{code:?}: {message}")]
    Status {
        /// The gRPC code.
        code: tonic::Code,
        /// The broker's message, naming the thing that failed.
        message: String,
        /// What failed, as the broker said (`Unspecified` from the transport).
        reason: ErrorReason,
        /// Whether the same call may succeed later.
        retriable: bool,
        /// How long the broker asked to wait first (a quota's throttle
        /// time, from `RetryInfo`).
        retry_after: Option<Duration>,
    },
    /// One partition's part of a call failed.
    #[error("{topic}/{partition}: {message} ({code:?})")]
    Partition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The gRPC code of the failure.
        code: tonic::Code,
        /// The broker's message.
        message: String,
        /// What failed.
        reason: ErrorReason,
        /// Whether the same request may succeed later.
        retriable: bool,
        /// How long the broker asked to wait first (`retry_after_ms`).
        retry_after: Option<Duration>,
    },
    /// A consumer's position is outside the log, and its reset policy is
    /// to report it.
    #[error("offset {offset} of {topic}/{partition} is out of range: {message}")]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The position the consumer asked for.
        offset: i64,
        /// The broker's message, with the valid range.
        message: String,
    },
    /// A record was not acknowledged within the producer's delivery timeout.
    #[error("record not delivered within delivery_timeout ({0:?}): {1}")]
    DeliveryTimeout(Duration, String),
    /// A record or setting the client refuses before sending anything.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The producer or consumer was closed.
    #[error("closed")]
    Closed,
}

/// For failures the broker did not describe: the transport's codes for a
/// dropped connection, a timeout or a cancelled call.
fn transport_retriable(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(code, Unavailable | DeadlineExceeded | Unknown | Cancelled)
}

impl Error {
    /// Whether the same request may succeed if tried again later (the
    /// broker was restarting, a connection dropped, a limit was busy, a
    /// batch arrived before an earlier one). Malformed records, unknown
    /// topics, limits a request can never fit and data loss are fatal.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Status { retriable, .. } | Error::Partition { retriable, .. } => *retriable,
            _ => false,
        }
    }

    /// The broker's reason, when it gave one.
    pub fn reason(&self) -> ErrorReason {
        match self {
            Error::Status { reason, .. } | Error::Partition { reason, .. } => *reason,
            _ => ErrorReason::Unspecified,
        }
    }

    /// How long the broker asked to wait before a retry (a quota's
    /// throttle time); retry loops wait at least this long.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } | Error::Partition { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The gRPC code, for errors that came with one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status { code, .. } | Error::Partition { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn partition(topic: &str, partition: u32, e: &strata_proto::v1::Error) -> Self {
        Error::Partition {
            topic: topic.to_string(),
            partition,
            code: tonic::Code::from_i32(e.code),
            message: e.message.clone(),
            reason: ErrorReason::try_from(e.reason).unwrap_or(ErrorReason::Unspecified),
            retriable: e.retriable,
            retry_after: (e.retry_after_ms > 0)
                .then(|| Duration::from_millis(e.retry_after_ms.into())),
        }
    }

    /// A failure the client itself detected, with no broker reason.
    pub(crate) fn local(code: tonic::Code, message: impl Into<String>) -> Self {
        Error::Status {
            code,
            message: message.into(),
            reason: ErrorReason::Unspecified,
            retriable: transport_retriable(code),
            retry_after: None,
        }
    }

    /// A per-partition failure the client itself detected (an undecodable
    /// answer).
    pub(crate) fn local_partition(
        topic: &str,
        partition: u32,
        code: tonic::Code,
        message: impl Into<String>,
    ) -> Self {
        Error::Partition {
            topic: topic.to_string(),
            partition,
            code,
            message: message.into(),
            reason: ErrorReason::Unspecified,
            retriable: transport_retriable(code),
            retry_after: None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        let info = s.get_details_error_info();
        let (reason, retriable) = match info {
            Some(info) => (
                ErrorReason::from_str_name(&format!("ERROR_REASON_{}", info.reason))
                    .unwrap_or(ErrorReason::Unspecified),
                info.metadata.get("retriable").is_some_and(|v| v == "true"),
            ),
            None => (ErrorReason::Unspecified, transport_retriable(s.code())),
        };
        Error::Status {
            code: s.code(),
            message: s.message().to_string(),
            reason,
            retriable,
            retry_after: s
                .get_details_retry_info()
                .and_then(|r| r.retry_delay)
                .filter(|d| !d.is_zero()),
        }
    }
}

/// Shorthand for the client's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
