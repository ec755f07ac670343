//! The client's errors, typed, each saying whether a retry can help.

use std::time::Duration;

/// An error from the Strata client. Cloneable, so one failed batch can
/// fail each of its records' futures with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The broker could not be reached at all.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The broker's address.
        url: String,
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

fn retriable_code(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unavailable | DeadlineExceeded | Unknown | Cancelled | Aborted | ResourceExhausted
    )
}

impl Error {
    /// Whether the same request may succeed if tried again later (the
    /// broker was restarting, a connection dropped, a limit was busy).
    /// Malformed records, unknown topics and data loss are fatal.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Status { code, .. } | Error::Partition { code, .. } => retriable_code(*code),
            _ => false,
        }
    }

    pub(crate) fn partition(topic: &str, partition: u32, e: &strata_proto::v1::Error) -> Self {
        Error::Partition {
            topic: topic.to_string(),
            partition,
            code: tonic::Code::from_i32(e.code),
            message: e.message.clone(),
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Status {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

/// Shorthand for the client's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
