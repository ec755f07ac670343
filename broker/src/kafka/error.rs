//! The one place broker errors become Kafka error codes.
//!
//! Errors arrive either as a [`BrokerError`] (produce, admin, groups) or
//! as the gRPC layer's per-partition `v1::Error` (fetch, which the Kafka
//! listener serves through the same long-poll); both go through
//! [`of_reason`], so one table decides what a Kafka client sees.

use kafka_protocol::error::ResponseError as E;
use strata_proto::v1::{self, ErrorReason as R};

use crate::core::BrokerError;
use crate::core::groups::Fenced;
use crate::core::groups::classic::ClassicError;
use crate::core::security::{ResourceType, SecurityError};
use crate::server::status;
use crate::storage::StorageError;

/// The wire code of an error (0 is none).
pub fn code(e: E) -> i16 {
    e.code()
}

/// The Kafka error for a broker error.
pub fn of(e: &BrokerError) -> E {
    match e {
        // The variants whose detail changes the Kafka code.
        BrokerError::Fenced(f) => match f {
            Fenced::UnknownMember { .. } => E::UnknownMemberId,
            Fenced::StaleEpoch { .. } => E::FencedMemberEpoch,
            Fenced::NotOwner { .. } => E::UnknownMemberId,
            Fenced::GroupActive { .. } => E::IllegalGeneration,
        },
        BrokerError::Storage { source, .. } | BrokerError::Disk(source) => of_storage(source),
        BrokerError::Security(SecurityError::Denied { resource_type, .. }) => match resource_type {
            ResourceType::Topic => E::TopicAuthorizationFailed,
            ResourceType::Group => E::GroupAuthorizationFailed,
            ResourceType::Cluster => E::ClusterAuthorizationFailed,
            ResourceType::TransactionalId => E::TransactionalIdAuthorizationFailed,
        },
        _ => of_reason(status::reason(e)),
    }
}

fn of_storage(e: &StorageError) -> E {
    match e {
        // Kafka's answer to a retry of a batch older than the ones the
        // broker remembers: the producer treats it as already written.
        StorageError::OutOfOrderSequence { expected, got, .. } if behind(*got, *expected) => {
            E::DuplicateSequenceNumber
        }
        other => of_reason(status::storage_reason(other)),
    }
}

/// Whether sequence `got` comes before `expected` (sequences wrap at
/// `i32::MAX` to 0, so "before" is less than half the ring behind).
fn behind(got: i32, expected: i32) -> bool {
    let ring = i64::from(i32::MAX) + 1;
    let distance = (i64::from(expected) - i64::from(got)).rem_euclid(ring);
    distance > 0 && distance < ring / 2
}

/// The Kafka error for a gRPC-layer per-partition error.
pub fn of_v1(e: &v1::Error) -> E {
    of_reason(R::try_from(e.reason).unwrap_or(R::Internal))
}

/// The table: a reason, as Kafka clients expect to see it.
pub fn of_reason(r: R) -> E {
    match r {
        R::UnknownTopic | R::UnknownPartition => E::UnknownTopicOrPartition,
        R::UnknownGroup => E::GroupIdNotFound,
        R::TopicExists => E::TopicAlreadyExists,
        R::InvalidTopicName => E::InvalidTopicException,
        R::InvalidConfig | R::UnknownConfigKey => E::InvalidConfig,
        R::InvalidArgument => E::InvalidRequest,
        R::LimitExceeded => E::PolicyViolation,
        R::RequestTooLarge | R::BatchTooLarge => E::MessageTooLarge,
        // Retriable: the client backs off and sends again.
        R::Busy => E::RequestTimedOut,
        R::ShuttingDown | R::LogClosed => E::NotLeaderOrFollower,
        R::PartitionFailed | R::Corrupt | R::LogPoisoned | R::Io | R::DiskFull => {
            E::KafkaStorageError
        }
        R::DataDirLocked | R::Internal | R::Unspecified => E::UnknownServerError,
        R::MemberFenced => E::UnknownMemberId,
        R::GroupNotEmpty => E::NonEmptyGroup,
        R::InvalidBatch | R::KeyRequired => E::InvalidRecord,
        R::OffsetOutOfRange => E::OffsetOutOfRange,
        R::ProducerFenced => E::InvalidProducerEpoch,
        R::OutOfOrderSequence => E::OutOfOrderSequenceNumber,
        // KIP-932's code for an ack of a lease the record no longer has.
        R::StaleDelivery => E::InvalidRecordState,
        R::GroupKindMismatch => E::InconsistentGroupProtocol,
        R::AuthenticationFailed => E::SaslAuthenticationFailed,
        // Without the resource (a per-partition error from the gRPC layer).
        R::NotAuthorized => E::TopicAuthorizationFailed,
        R::UnknownUser | R::UnknownToken | R::UnknownCredential => E::ResourceNotFound,
        R::UserExists => E::InvalidRequest,
        // Kafka throttles without an error (throttle_time_ms); a listener
        // that enforces quotas sets that field instead.
        R::Throttled => E::ThrottlingQuotaExceeded,
    }
}

/// The Kafka error for a classic-group refusal.
pub fn of_classic(e: &ClassicError) -> E {
    match e {
        ClassicError::UnknownMember { .. } => E::UnknownMemberId,
        ClassicError::IllegalGeneration { .. } => E::IllegalGeneration,
        ClassicError::RebalanceInProgress(_) => E::RebalanceInProgress,
        ClassicError::InconsistentProtocol { .. } => E::InconsistentGroupProtocol,
        ClassicError::InvalidSessionTimeout { .. } => E::InvalidSessionTimeout,
        ClassicError::GroupFull { .. } => E::GroupMaxSizeReached,
        ClassicError::ShuttingDown => E::CoordinatorNotAvailable,
    }
}
