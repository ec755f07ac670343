//! The one place broker errors become gRPC status codes.

use std::collections::HashMap;
use std::time::Duration;

use strata_proto::v1::{self, ErrorReason};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::core::BrokerError;
use crate::core::security::SecurityError;
use crate::storage::StorageError;

/// The gRPC code for an error.
pub fn code(e: &BrokerError) -> Code {
    use BrokerError as B;
    match e {
        B::UnknownTopic(_) | B::UnknownPartition { .. } | B::UnknownGroup(_) => Code::NotFound,
        B::Fenced(_) | B::GroupNotEmpty { .. } | B::Share(_) | B::GroupKindMismatch { .. } => {
            Code::FailedPrecondition
        }
        B::TopicExists(_) => Code::AlreadyExists,
        B::InvalidTopicName { .. }
        | B::InvalidConfig { .. }
        | B::UnknownConfigKey { .. }
        | B::InvalidArgument(_) => Code::InvalidArgument,
        B::LimitExceeded { .. } | B::Busy { .. } | B::Throttled { .. } => Code::ResourceExhausted,
        B::PartitionFailed { .. } => Code::DataLoss,
        B::ShuttingDown => Code::Unavailable,
        B::DataDirLocked(_) => Code::FailedPrecondition,
        B::Io { .. } | B::Internal(_) => Code::Internal,
        B::Storage { source, .. } | B::Disk(source) => storage_code(source),
        B::Security(e) => security_code(e),
    }
}

/// Exactly what failed, for clients to act on.
pub fn reason(e: &BrokerError) -> ErrorReason {
    use BrokerError as B;
    use ErrorReason as R;
    match e {
        B::UnknownTopic(_) => R::UnknownTopic,
        B::UnknownPartition { .. } => R::UnknownPartition,
        B::UnknownGroup(_) => R::UnknownGroup,
        B::TopicExists(_) => R::TopicExists,
        B::InvalidTopicName { .. } => R::InvalidTopicName,
        B::InvalidConfig { .. } => R::InvalidConfig,
        B::UnknownConfigKey { .. } => R::UnknownConfigKey,
        B::InvalidArgument(_) => R::InvalidArgument,
        B::LimitExceeded { .. } => R::LimitExceeded,
        B::Busy { .. } => R::Busy,
        B::Throttled { .. } => R::Throttled,
        B::PartitionFailed { .. } => R::PartitionFailed,
        B::ShuttingDown => R::ShuttingDown,
        B::DataDirLocked(_) => R::DataDirLocked,
        B::Io { .. } => R::Io,
        B::Internal(_) => R::Internal,
        B::Fenced(_) => R::MemberFenced,
        B::GroupNotEmpty { .. } => R::GroupNotEmpty,
        B::Share(_) => R::StaleDelivery,
        B::GroupKindMismatch { .. } => R::GroupKindMismatch,
        B::Storage { source, .. } | B::Disk(source) => storage_reason(source),
        B::Security(e) => match e {
            SecurityError::Unauthenticated(_) => R::AuthenticationFailed,
            SecurityError::Denied { .. } => R::NotAuthorized,
            SecurityError::UnknownUser(_) => R::UnknownUser,
            SecurityError::UnknownToken(_) => R::UnknownToken,
            SecurityError::UnknownCredential(_) => R::UnknownCredential,
            SecurityError::UserExists(_) => R::UserExists,
        },
    }
}

fn security_code(e: &SecurityError) -> Code {
    match e {
        SecurityError::Unauthenticated(_) => Code::Unauthenticated,
        SecurityError::Denied { .. } => Code::PermissionDenied,
        SecurityError::UnknownUser(_)
        | SecurityError::UnknownToken(_)
        | SecurityError::UnknownCredential(_) => Code::NotFound,
        SecurityError::UserExists(_) => Code::AlreadyExists,
    }
}

fn storage_code(e: &StorageError) -> Code {
    match e {
        StorageError::InvalidBatch(_)
        | StorageError::BatchTooLarge { .. }
        | StorageError::Config(_)
        | StorageError::NotBatchBoundary { .. }
        | StorageError::KeyRequired { .. } => Code::InvalidArgument,
        StorageError::OffsetOutOfRange { .. } => Code::OutOfRange,
        // A zombie: the producer must stop.
        StorageError::ProducerFenced { .. } => Code::FailedPrecondition,
        // A concurrency conflict, retried by sending in order.
        StorageError::OutOfOrderSequence { .. } => Code::Aborted,
        StorageError::Corrupt { .. } => Code::DataLoss,
        StorageError::Closed(_) => Code::Unavailable,
        StorageError::DiskFull { .. } | StorageError::ProducersFull { .. } => {
            Code::ResourceExhausted
        }
        StorageError::Poisoned { .. } | StorageError::Io { .. } => Code::Internal,
    }
}

/// The reason of a storage error.
pub fn storage_reason(e: &StorageError) -> ErrorReason {
    use ErrorReason as R;
    match e {
        StorageError::InvalidBatch(_) => R::InvalidBatch,
        StorageError::BatchTooLarge { .. } => R::BatchTooLarge,
        StorageError::Config(_) => R::InvalidConfig,
        StorageError::NotBatchBoundary { .. } => R::InvalidArgument,
        StorageError::KeyRequired { .. } => R::KeyRequired,
        StorageError::OffsetOutOfRange { .. } => R::OffsetOutOfRange,
        StorageError::ProducerFenced { .. } => R::ProducerFenced,
        StorageError::OutOfOrderSequence { .. } => R::OutOfOrderSequence,
        StorageError::Corrupt { .. } => R::Corrupt,
        StorageError::Closed(_) => R::LogClosed,
        StorageError::Poisoned { .. } => R::LogPoisoned,
        StorageError::DiskFull { .. } => R::DiskFull,
        StorageError::ProducersFull { .. } => R::Busy,
        StorageError::Io { .. } => R::Io,
    }
}

/// Whether the same request may succeed if sent again later. This, not the
/// gRPC code, is what clients retry on: RESOURCE_EXHAUSTED is both "busy"
/// ([`BrokerError::Busy`]) and "can never fit" (`LimitExceeded`).
pub fn retriable(e: &BrokerError) -> bool {
    matches!(
        reason(e),
        ErrorReason::Busy
            | ErrorReason::Throttled
            | ErrorReason::ShuttingDown
            | ErrorReason::OutOfOrderSequence
            | ErrorReason::LogClosed
            | ErrorReason::DiskFull
    )
}

/// The error as a call's status, with `ErrorInfo` (and, when retriable,
/// `RetryInfo`) in its details.
pub fn to_status(e: BrokerError) -> Status {
    let mut details = details(reason(&e), retriable(&e));
    if let BrokerError::Throttled {
        throttle_time_ms, ..
    } = e
    {
        // Kafka's throttle_time_ms, as gRPC says it.
        details.set_retry_info(Some(Duration::from_millis(throttle_time_ms)));
    }
    Status::with_error_details(code(&e), e.to_string(), details)
}

/// The standard details for a reason: `ErrorInfo` always, `RetryInfo` when
/// retriable (no wait of its own: the client's backoff applies).
pub fn details(reason: ErrorReason, retriable: bool) -> ErrorDetails {
    let name = reason.as_str_name();
    let name = name.strip_prefix("ERROR_REASON_").unwrap_or(name);
    let metadata = HashMap::from([("retriable".to_string(), retriable.to_string())]);
    let mut details = ErrorDetails::with_error_info(name, ERROR_DOMAIN, metadata);
    if retriable {
        details.set_retry_info(Some(Duration::ZERO));
    }
    details
}

/// A produce answer the `--test-lose-produce-responses` hook drops: what
/// a client sees when the connection fails after the broker acted, a bare
/// UNAVAILABLE without details, as a transport error carries none.
pub fn response_lost_by_test_hook() -> Status {
    Status::unavailable("test hook: this produce response was lost")
}

/// The `ErrorInfo` domain of every Strata error.
pub const ERROR_DOMAIN: &str = "strata.v1";

/// The error as a per-partition `Error` in a response.
pub fn to_error(e: &BrokerError) -> v1::Error {
    v1::Error {
        code: code(e) as i32,
        message: e.to_string(),
        reason: reason(e) as i32,
        retriable: retriable(e),
        retry_after_ms: match e {
            BrokerError::Throttled {
                throttle_time_ms, ..
            } => (*throttle_time_ms).min(u64::from(u32::MAX)) as u32,
            _ => 0,
        },
    }
}

/// A request message of `found_bytes` over `request_bytes_max`: refused
/// as RESOURCE_EXHAUSTED naming the setting, so the client learns which
/// bound it hit and how to raise it (see [`super::request_limit`]).
pub fn request_too_large(found_bytes: u64, limit_bytes: u32) -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        format!(
            "request of {found_bytes} bytes exceeds request_bytes_max ({limit_bytes} bytes); \
             send smaller requests or raise --request-bytes-max"
        ),
        details(ErrorReason::RequestTooLarge, false),
    )
}
