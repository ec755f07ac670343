//! The security state on disk: users, tokens (hashed) and ACLs in one
//! file, `security.state` in the data directory, rewritten whole and
//! atomically (`checkpoint::write_atomic`: temporary file, fsync, rename,
//! directory fsync) before a change takes effect. Changes are rare admin
//! calls and the state is bounded (`SecurityLimits`), so a whole rewrite
//! is simpler than a log and as durable. `docs/FORMAT.md` lays it out.
//!
//! Invariant: a change is on disk before any request sees it, and a
//! damaged file stops the broker from starting (it is never read as
//! "no users, no ACLs", which would fail open or lock everyone out).

use std::path::Path;

use prost::Message;

use super::acl::{Acl, Operation, PatternType, Permission, ResourceType};
use super::scram::{Credential, Mechanism};
use crate::core::BrokerError;
use crate::storage::checkpoint;
use crate::storage::envelope::{FileType, Reader, Writer};
use crate::storage::vfs::Vfs;

/// The file's name in the data directory.
pub const FILE: &str = "security.state";

/// The envelope: magic, version, and a CRC over everything.
pub const FILE_TYPE: FileType = FileType {
    magic: *b"STSE",
    version: 1,
    what: "security state",
};

/// A user: tokens (and later SCRAM credentials) belong to its id, which
/// is never reused, so a user deleted and created again under the same
/// name does not get the old one's tokens back.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct UserValue {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(uint64, tag = "3")]
    pub created_ms: u64,
    /// The first admin, made at first start: always a super user.
    #[prost(bool, tag = "4")]
    pub bootstrap_admin: bool,
    /// SCRAM credentials, at most one per mechanism (SASL on the Kafka
    /// listener).
    #[prost(message, repeated, tag = "5")]
    pub scram: Vec<ScramValue>,
    /// SASL PLAIN's password hash: an Argon2id PHC string ("": none).
    #[prost(string, tag = "6")]
    pub plain_hash: String,
}

/// One SCRAM credential as RFC 5802 has a server keep it: never the
/// password, nor anything that logs in as the user.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ScramValue {
    /// 1: SCRAM-SHA-256, 2: SCRAM-SHA-512 (Kafka's numbers).
    #[prost(uint32, tag = "1")]
    pub mechanism: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub salt: Vec<u8>,
    #[prost(uint32, tag = "3")]
    pub iterations: u32,
    #[prost(bytes = "vec", tag = "4")]
    pub stored_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    pub server_key: Vec<u8>,
}

/// A token: its id, its secret's SHA-256, whose it is, until when.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TokenValue {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(uint64, tag = "2")]
    pub user_id: u64,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(uint64, tag = "4")]
    pub created_ms: u64,
    #[prost(uint64, optional, tag = "5")]
    pub expires_ms: Option<u64>,
    #[prost(bytes = "vec", tag = "6")]
    pub hash: Vec<u8>,
}

/// An ACL entry; the enums as their numbers.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AclValue {
    #[prost(string, tag = "1")]
    pub principal: String,
    #[prost(uint32, tag = "2")]
    pub resource_type: u32,
    #[prost(uint32, tag = "3")]
    pub pattern_type: u32,
    #[prost(string, tag = "4")]
    pub resource_name: String,
    #[prost(uint32, tag = "5")]
    pub operation: u32,
    #[prost(uint32, tag = "6")]
    pub permission: u32,
}

/// The quotas of one entity, Kafka's way: a principal, a client id, or
/// both (empty: any). Unset rates fall through to the next entity.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct QuotaValue {
    #[prost(string, tag = "1")]
    pub principal: String,
    #[prost(string, tag = "5")]
    pub client_id: String,
    #[prost(uint64, optional, tag = "2")]
    pub produce_bytes_per_sec: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub fetch_bytes_per_sec: Option<u64>,
    #[prost(uint64, optional, tag = "4")]
    pub requests_per_sec: Option<u64>,
}

/// The whole state.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StateValue {
    #[prost(message, repeated, tag = "1")]
    pub users: Vec<UserValue>,
    #[prost(message, repeated, tag = "2")]
    pub tokens: Vec<TokenValue>,
    #[prost(message, repeated, tag = "3")]
    pub acls: Vec<AclValue>,
    /// The next user id; only grows.
    #[prost(uint64, tag = "4")]
    pub next_user_id: u64,
    #[prost(message, repeated, tag = "5")]
    pub quotas: Vec<QuotaValue>,
    /// The secret unknown users' SCRAM decoys derive from (random, made
    /// with the first SCRAM credential), so a decoy's salt stays the same
    /// across restarts like a real one's.
    #[prost(bytes = "vec", tag = "6")]
    pub scram_secret: Vec<u8>,
}

impl From<&Acl> for AclValue {
    fn from(a: &Acl) -> Self {
        Self {
            principal: a.principal.clone(),
            resource_type: a.resource_type as u32,
            pattern_type: a.pattern_type as u32,
            resource_name: a.resource_name.clone(),
            operation: a.operation as u32,
            permission: a.permission as u32,
        }
    }
}

/// Decodes an enum stored by number.
fn pick<T: Copy>(all: &[T], n: u32, num: impl Fn(T) -> u32, what: &str) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|v| num(*v) == n)
        .ok_or_else(|| format!("unknown {what} {n}"))
}

impl TryFrom<&AclValue> for Acl {
    type Error = String;
    fn try_from(v: &AclValue) -> Result<Self, String> {
        use Operation as O;
        Ok(Acl {
            principal: v.principal.clone(),
            resource_type: pick(
                &[
                    ResourceType::Topic,
                    ResourceType::Group,
                    ResourceType::Cluster,
                    ResourceType::TransactionalId,
                ],
                v.resource_type,
                |t| t as u32,
                "resource type",
            )?,
            pattern_type: pick(
                &[PatternType::Literal, PatternType::Prefixed],
                v.pattern_type,
                |t| t as u32,
                "pattern type",
            )?,
            resource_name: v.resource_name.clone(),
            operation: pick(
                &[
                    O::All,
                    O::Read,
                    O::Write,
                    O::Create,
                    O::Delete,
                    O::Alter,
                    O::Describe,
                    O::DescribeConfigs,
                    O::AlterConfigs,
                ],
                v.operation,
                |t| t as u32,
                "operation",
            )?,
            permission: pick(
                &[Permission::Allow, Permission::Deny],
                v.permission,
                |t| t as u32,
                "permission",
            )?,
        })
    }
}

impl From<&Credential> for ScramValue {
    fn from(c: &Credential) -> Self {
        Self {
            mechanism: c.mechanism.number(),
            salt: c.salt.clone(),
            iterations: c.iterations,
            stored_key: c.stored_key.clone(),
            server_key: c.server_key.clone(),
        }
    }
}

impl TryFrom<&ScramValue> for Credential {
    type Error = String;
    fn try_from(v: &ScramValue) -> Result<Self, String> {
        let mechanism = Mechanism::from_number(v.mechanism)
            .ok_or_else(|| format!("unknown SCRAM mechanism {}", v.mechanism))?;
        Ok(Credential {
            mechanism,
            salt: v.salt.clone(),
            iterations: v.iterations,
            stored_key: v.stored_key.clone(),
            server_key: v.server_key.clone(),
        })
    }
}

/// Reads the state; a missing file is the empty state (first start).
pub fn read(fs: &dyn Vfs, dir: &Path) -> Result<StateValue, BrokerError> {
    let path = dir.join(FILE);
    let bytes = match fs.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StateValue {
                next_user_id: 1,
                ..Default::default()
            });
        }
        Err(e) => return Err(BrokerError::io(path, "read the security state")(e)),
    };
    let damaged = |why: String| {
        BrokerError::Internal(format!(
            "{} is damaged ({why}); restore it from a backup: the broker does not start \
             without its users and ACLs",
            path.display()
        ))
    };
    let mut r = Reader::open(FILE_TYPE, &bytes).map_err(|e| damaged(e.to_string()))?;
    let n = r.u32("length").map_err(|e| damaged(e.to_string()))? as usize;
    let body = r.bytes("state", n).map_err(|e| damaged(e.to_string()))?;
    r.finish().map_err(|e| damaged(e.to_string()))?;
    let state = StateValue::decode(body).map_err(|e| damaged(e.to_string()))?;
    for a in &state.acls {
        Acl::try_from(a).map_err(damaged)?;
    }
    for u in &state.users {
        for c in &u.scram {
            Credential::try_from(c).map_err(damaged)?;
        }
    }
    Ok(state)
}

/// Writes the state atomically.
pub fn write(fs: &dyn Vfs, dir: &Path, state: &StateValue) -> Result<(), BrokerError> {
    let body = state.encode_to_vec();
    let mut w = Writer::new(FILE_TYPE);
    w.u32(body.len() as u32).bytes(&body);
    Ok(checkpoint::write_atomic(fs, dir, FILE, &w.finish())?)
}
