//! The one place broker errors become gRPC status codes.

use strata_proto::v1;
use tonic::{Code, Status};

use crate::core::BrokerError;
use crate::storage::StorageError;

/// The gRPC code for an error.
pub fn code(e: &BrokerError) -> Code {
    use BrokerError as B;
    match e {
        B::UnknownTopic(_) | B::UnknownPartition { .. } => Code::NotFound,
        B::TopicExists(_) => Code::AlreadyExists,
        B::InvalidTopicName { .. }
        | B::InvalidConfig { .. }
        | B::UnknownConfigKey { .. }
        | B::InvalidArgument(_) => Code::InvalidArgument,
        B::LimitExceeded { .. } => Code::ResourceExhausted,
        B::PartitionFailed { .. } => Code::DataLoss,
        B::ShuttingDown => Code::Unavailable,
        B::DataDirLocked(_) => Code::FailedPrecondition,
        B::Io { .. } | B::Internal(_) => Code::Internal,
        B::Storage { source, .. } => match source {
            StorageError::InvalidBatch(_)
            | StorageError::BatchTooLarge { .. }
            | StorageError::Config(_)
            | StorageError::NotBatchBoundary { .. } => Code::InvalidArgument,
            StorageError::OffsetOutOfRange { .. } => Code::OutOfRange,
            StorageError::Corrupt { .. } => Code::DataLoss,
            StorageError::Closed(_) => Code::Unavailable,
            StorageError::Poisoned { .. } | StorageError::Io { .. } => Code::Internal,
        },
    }
}

/// The error as a call's status.
pub fn to_status(e: BrokerError) -> Status {
    Status::new(code(&e), e.to_string())
}

/// The error as a per-partition `Error` in a response.
pub fn to_error(e: &BrokerError) -> v1::Error {
    v1::Error {
        code: code(e) as i32,
        message: e.to_string(),
    }
}
