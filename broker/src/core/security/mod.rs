//! Security: who a request runs as (principals, users, bearer tokens) and
//! what it may do (ACLs with Kafka's semantics). No transport: the server
//! authenticates a call's headers with [`Security::authenticate`] and
//! every RPC asks [`Security::authorize`].
//!
//! - [`principal`]: principals, `User:name`.
//! - [`acl`]: ACL entries and the default-deny authorizer.
//! - [`token`]: token text, hashing, constant-time checks.
//! - [`store`]: the durable state file.
//! - [`failures`]: failed authentication attempts, limited per address.
//! - [`mapping`]: Kafka's `ssl.principal.mapping.rules`, client
//!   certificate subject to principal name.
//! - [`quota`]: token buckets per principal (bytes and requests per second).
//! - [`scram`]: SCRAM-SHA-256/512 credentials and the server side of
//!   the exchange (for SASL on the Kafka listener).
//! - [`registry`]: users, tokens and ACLs in memory, changed only after
//!   the change is on disk.

pub mod acl;
#[cfg(test)]
mod acl_props;
pub mod failures;
pub mod mapping;
pub mod principal;
pub mod quota;
pub mod registry;
pub mod scram;
pub mod store;
pub mod token;

pub use acl::{Acl, Decision, Operation, PatternType, Permission, Resource, ResourceType};
pub use principal::Principal;
pub use quota::{QuotaKind, QuotaRates, Throttled};
pub use registry::{AclFilter, Security, SecurityLimits, Session, TokenInfo, UserInfo};

/// Why a request was refused by security.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    /// No credentials, or credentials that do not hold. Wrong and unknown
    /// tokens get the same message.
    #[error("authentication failed: {0}")]
    Unauthenticated(String),
    /// The principal may not do this.
    #[error("{principal} is not authorized to {operation:?} {resource_type:?}:{name}")]
    Denied {
        /// Who asked.
        principal: String,
        /// What it asked to do.
        operation: Operation,
        /// On what type of resource.
        resource_type: ResourceType,
        /// Its name.
        name: String,
    },
    /// No user of that name.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// No token with that id.
    #[error("unknown token {0:?}")]
    UnknownToken(String),
    /// The user has no SCRAM credential of that mechanism.
    #[error("{0}")]
    UnknownCredential(String),
    /// A user of that name exists.
    #[error("user {0:?} already exists")]
    UserExists(String),
}
