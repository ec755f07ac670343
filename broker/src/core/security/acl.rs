//! Access control lists with Kafka's semantics, so the Kafka listener maps
//! onto them one to one: resources (Topic, Group, Cluster, and
//! TransactionalId reserved), LITERAL (`*` included) and PREFIXED
//! patterns, ALLOW and DENY entries, DENY wins, Read/Write/Delete/Alter
//! imply Describe, AlterConfigs implies DescribeConfigs, super users are
//! always granted, and anything else is denied.
//!
//! Invariant: [`Acls::authorize`] is default-deny. Adding a DENY never
//! grants, removing an ALLOW never grants (there is no "allow everyone if
//! no ACL matches the resource" switch, the hole Kafka's
//! `allow.everyone.if.no.acl.found` opens when a resource's last ACL goes).

use std::fmt;

use super::principal::Principal;

/// What an ACL protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    /// A topic, by name.
    Topic = 1,
    /// A consumer group or share group, by id.
    Group = 2,
    /// The broker as a whole (its one resource is named [`CLUSTER`]).
    Cluster = 3,
    /// Reserved for transactions (nothing checks it yet).
    TransactionalId = 4,
}

/// The one Cluster resource's name, as Kafka names it.
pub const CLUSTER: &str = "kafka-cluster";

/// How an ACL's resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PatternType {
    /// The exact name; `*` matches every resource of the type.
    Literal = 1,
    /// Every name that starts with the pattern's name.
    Prefixed = 2,
}

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Every operation (in an ACL only).
    All = 1,
    /// Read records, join or commit in a group.
    Read = 2,
    /// Append records.
    Write = 3,
    /// Create the resource.
    Create = 4,
    /// Delete it.
    Delete = 5,
    /// Change it (partitions; ACLs, users and tokens on the Cluster).
    Alter = 6,
    /// See that it exists and its metadata.
    Describe = 7,
    /// Read its configuration.
    DescribeConfigs = 8,
    /// Change its configuration.
    AlterConfigs = 9,
}

/// Whether a matching ACL grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Grants, unless a DENY also matches.
    Allow = 1,
    /// Refuses, whatever else matches.
    Deny = 2,
}

/// One ACL entry: `principal` is (or is not) allowed `operation` on the
/// resources of `resource_type` that `pattern` matches. Hosts are not
/// part of Strata's ACLs (every entry is Kafka's host `*`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acl {
    /// `User:alice`, or `User:*` for every authenticated principal.
    pub principal: String,
    /// The resource type.
    pub resource_type: ResourceType,
    /// How `resource_name` matches.
    pub pattern_type: PatternType,
    /// The name or prefix (for Cluster, [`CLUSTER`] or `*`).
    pub resource_name: String,
    /// The operation.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

/// A resource a request touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    /// Its type.
    pub resource_type: ResourceType,
    /// Its name.
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    /// A topic.
    pub fn topic(name: &'a str) -> Self {
        Self {
            resource_type: ResourceType::Topic,
            name,
        }
    }
    /// A consumer group or share group.
    pub fn group(name: &'a str) -> Self {
        Self {
            resource_type: ResourceType::Group,
            name,
        }
    }
    /// The cluster.
    pub fn cluster() -> Resource<'static> {
        Resource {
            resource_type: ResourceType::Cluster,
            name: CLUSTER,
        }
    }
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}:{}", self.resource_type, self.name)
    }
}

impl Acl {
    fn matches_principal(&self, p: &Principal) -> bool {
        match self.principal.split_once(':') {
            Some((kind, "*")) => kind == p.kind(),
            _ => self.principal == p.to_string(),
        }
    }

    fn matches_resource(&self, r: &Resource<'_>) -> bool {
        if self.resource_type != r.resource_type {
            return false;
        }
        match self.pattern_type {
            PatternType::Literal => self.resource_name == "*" || self.resource_name == r.name,
            PatternType::Prefixed => r.name.starts_with(&self.resource_name),
        }
    }

    /// Whether this entry's operation covers `op`: the same, All, or (for
    /// an ALLOW) one that implies it.
    fn covers(&self, op: Operation) -> bool {
        use Operation as O;
        if self.operation == op || self.operation == O::All {
            return true;
        }
        self.permission == Permission::Allow
            && match op {
                O::Describe => matches!(self.operation, O::Read | O::Write | O::Delete | O::Alter),
                O::DescribeConfigs => self.operation == O::AlterConfigs,
                _ => false,
            }
    }

    fn applies(&self, p: &Principal, op: Operation, r: &Resource<'_>) -> bool {
        self.covers(op) && self.matches_principal(p) && self.matches_resource(r)
    }
}

/// What [`Acls::authorize`] decided, and why (for the audit log and the
/// error message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A super user: no ACL consulted.
    SuperUser,
    /// An ALLOW matched and no DENY did.
    Allowed,
    /// A DENY matched.
    Denied,
    /// Nothing matched: denied by default.
    NoMatch,
}

impl Decision {
    /// Whether the request may go on.
    pub fn granted(&self) -> bool {
        matches!(self, Decision::SuperUser | Decision::Allowed)
    }
}

/// A set of ACLs and the super users.
#[derive(Debug, Clone, Default)]
pub struct Acls {
    entries: Vec<Acl>,
    super_users: Vec<Principal>,
}

impl Acls {
    /// `entries` with `super_users` always granted.
    pub fn new(entries: Vec<Acl>, super_users: Vec<Principal>) -> Self {
        Self {
            entries,
            super_users,
        }
    }

    /// The entries.
    pub fn entries(&self) -> &[Acl] {
        &self.entries
    }

    /// Whether `p` is a super user.
    pub fn is_super_user(&self, p: &Principal) -> bool {
        self.super_users.contains(p)
    }

    /// May `p` do `op` on `r`? Super users always; otherwise a matching
    /// DENY refuses, a matching ALLOW grants, and nothing matching refuses.
    /// Whether `p` may do `op` on some resource of type `t`: an ALLOW
    /// entry of `p` for it, and no DENY of `p` covering every name
    /// (literal `*`, or the empty prefix). Kafka's
    /// `authorizeByResourceType`, used for idempotent producers.
    pub fn may_on_some(&self, p: &Principal, op: Operation, t: ResourceType) -> bool {
        if self.is_super_user(p) {
            return true;
        }
        let applies = |a: &&Acl| a.resource_type == t && a.covers(op) && a.matches_principal(p);
        let denied_everywhere = self.entries.iter().filter(applies).any(|a| {
            a.permission == Permission::Deny
                && match a.pattern_type {
                    PatternType::Literal => a.resource_name == "*",
                    PatternType::Prefixed => a.resource_name.is_empty(),
                }
        });
        !denied_everywhere
            && self
                .entries
                .iter()
                .filter(applies)
                .any(|a| a.permission == Permission::Allow)
    }

    pub fn authorize(&self, p: &Principal, op: Operation, r: &Resource<'_>) -> Decision {
        if self.is_super_user(p) {
            return Decision::SuperUser;
        }
        let mut allowed = false;
        for acl in self.entries.iter().filter(|a| a.applies(p, op, r)) {
            match acl.permission {
                Permission::Deny => return Decision::Denied,
                Permission::Allow => allowed = true,
            }
        }
        if allowed {
            Decision::Allowed
        } else {
            Decision::NoMatch
        }
    }
}
