//! The authorization rule of every RPC: what it checks, on which resource.
//! The auth layer refuses a call whose path has no rule (fail closed), and
//! a test checks the table against the service descriptors, so a new RPC
//! without a rule fails CI rather than opening a hole. Handlers make the
//! checks through [`super::auth::Caller::authorize`], on the names in the
//! request; `client/tests/it/security.rs` calls every RPC without and with the
//! ACLs listed here.

use crate::core::security::{Operation as O, ResourceType as T};

/// What an RPC needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No authentication (health checks, for orchestrators).
    Public,
    /// Any authenticated principal.
    Authenticated,
    /// Any authenticated principal; the answer lists only the resources
    /// of the type the caller may do the operation on.
    Filtered(T, O),
    /// Each of these, on the resources the request names.
    Checks(&'static [(T, O)]),
}

/// Every RPC's rule. Kafka's choices where Kafka has the same API.
pub const RULES: &[(&str, Rule)] = &[
    ("/grpc.health.v1.Health/Check", Rule::Public),
    ("/grpc.health.v1.Health/Watch", Rule::Public),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Rule::Authenticated,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Rule::Authenticated,
    ),
    // Admin: topics. Create needs Create on the topic (or on the Cluster,
    // as in Kafka).
    (
        "/strata.v1.Admin/CreateTopic",
        Rule::Checks(&[(T::Topic, O::Create)]),
    ),
    (
        "/strata.v1.Admin/DeleteTopic",
        Rule::Checks(&[(T::Topic, O::Delete)]),
    ),
    (
        "/strata.v1.Admin/ListTopics",
        Rule::Filtered(T::Topic, O::Describe),
    ),
    (
        "/strata.v1.Admin/DescribeTopic",
        Rule::Checks(&[(T::Topic, O::Describe)]),
    ),
    (
        "/strata.v1.Admin/AlterTopicConfig",
        Rule::Checks(&[(T::Topic, O::AlterConfigs)]),
    ),
    (
        "/strata.v1.Admin/CreatePartitions",
        Rule::Checks(&[(T::Topic, O::Alter)]),
    ),
    // Records.
    (
        "/strata.v1.Records/Produce",
        Rule::Checks(&[(T::Topic, O::Write)]),
    ),
    (
        "/strata.v1.Records/ProduceStream",
        Rule::Checks(&[(T::Topic, O::Write)]),
    ),
    (
        "/strata.v1.Records/Fetch",
        Rule::Checks(&[(T::Topic, O::Read)]),
    ),
    (
        "/strata.v1.Records/Subscribe",
        Rule::Checks(&[(T::Topic, O::Read)]),
    ),
    (
        "/strata.v1.Records/ListOffsets",
        Rule::Checks(&[(T::Topic, O::Describe)]),
    ),
    // A producer id alone writes nothing: each write is checked per topic.
    ("/strata.v1.Records/InitProducer", Rule::Authenticated),
    // Consumer groups (Kafka's OffsetCommit, OffsetFetch, ... rules).
    (
        "/strata.v1.Groups/Heartbeat",
        Rule::Checks(&[(T::Group, O::Read), (T::Topic, O::Describe)]),
    ),
    (
        "/strata.v1.Groups/CommitOffsets",
        Rule::Checks(&[(T::Group, O::Read), (T::Topic, O::Read)]),
    ),
    (
        "/strata.v1.Groups/FetchOffsets",
        Rule::Checks(&[(T::Group, O::Describe), (T::Topic, O::Describe)]),
    ),
    (
        "/strata.v1.Groups/ListGroups",
        Rule::Filtered(T::Group, O::Describe),
    ),
    (
        "/strata.v1.Groups/DescribeGroup",
        Rule::Checks(&[(T::Group, O::Describe)]),
    ),
    (
        "/strata.v1.Groups/ResetOffsets",
        Rule::Checks(&[(T::Group, O::Read), (T::Topic, O::Read)]),
    ),
    (
        "/strata.v1.Groups/DeleteGroup",
        Rule::Checks(&[(T::Group, O::Delete)]),
    ),
    // Share groups: joining reads the topics and may write dead letters.
    (
        "/strata.v1.Share/ShareHeartbeat",
        Rule::Checks(&[
            (T::Group, O::Read),
            (T::Topic, O::Read),
            (T::Topic, O::Write),
        ]),
    ),
    (
        "/strata.v1.Share/ShareFetch",
        Rule::Checks(&[(T::Group, O::Read)]),
    ),
    (
        "/strata.v1.Share/ShareAcknowledge",
        Rule::Checks(&[(T::Group, O::Read)]),
    ),
    (
        "/strata.v1.Share/ListShareGroups",
        Rule::Filtered(T::Group, O::Describe),
    ),
    (
        "/strata.v1.Share/DescribeShareGroup",
        Rule::Checks(&[(T::Group, O::Describe)]),
    ),
    (
        "/strata.v1.Share/ResetShareGroup",
        Rule::Checks(&[(T::Group, O::Read), (T::Topic, O::Read)]),
    ),
    (
        "/strata.v1.Share/DeleteShareGroup",
        Rule::Checks(&[(T::Group, O::Delete)]),
    ),
    // Security admin: the Cluster.
    ("/strata.v1.Security/WhoAmI", Rule::Authenticated),
    (
        "/strata.v1.Security/CreateUser",
        Rule::Checks(&[(T::Cluster, O::Alter)]),
    ),
    (
        "/strata.v1.Security/DeleteUser",
        Rule::Checks(&[(T::Cluster, O::Alter)]),
    ),
    (
        "/strata.v1.Security/ListUsers",
        Rule::Checks(&[(T::Cluster, O::Describe)]),
    ),
    // Kafka's AlterUserScramCredentials.
    (
        "/strata.v1.Security/SetScramCredential",
        Rule::Checks(&[(T::Cluster, O::Alter)]),
    ),
    (
        "/strata.v1.Security/DeleteScramCredential",
        Rule::Checks(&[(T::Cluster, O::Alter)]),
    ),
    (
        "/strata.v1.Security/SetPlainCredential",
        Rule::Checks(&[(T::Cluster, O::Alter)]),
    ),
    (
        "/strata.v1.Security/DeletePlainCredential",
        Rule::Checks(&[(T::Cluster, O::Alter)]),
    ),
    (
        "/strata.v1.Security/CreateToken",
        Rule::Checks(&[(T::Cluster, O::Alter)]),
    ),
    (
        "/strata.v1.Security/RevokeToken",
        Rule::Checks(&[(T::Cluster, O::Alter)]),
    ),
    (
        "/strata.v1.Security/ListTokens",
        Rule::Checks(&[(T::Cluster, O::Describe)]),
    ),
    (
        "/strata.v1.Security/CreateAcls",
        Rule::Checks(&[(T::Cluster, O::Alter)]),
    ),
    (
        "/strata.v1.Security/DeleteAcls",
        Rule::Checks(&[(T::Cluster, O::Alter)]),
    ),
    (
        "/strata.v1.Security/ListAcls",
        Rule::Checks(&[(T::Cluster, O::Describe)]),
    ),
    // Kafka's AlterClientQuotas and DescribeClientQuotas.
    (
        "/strata.v1.Security/SetQuota",
        Rule::Checks(&[(T::Cluster, O::AlterConfigs)]),
    ),
    (
        "/strata.v1.Security/ListQuotas",
        Rule::Checks(&[(T::Cluster, O::DescribeConfigs)]),
    ),
];

/// The rule of the RPC at `path`.
pub fn rule(path: &str) -> Option<Rule> {
    RULES.iter().find(|(p, _)| *p == path).map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn every_rpc_of_every_service_has_an_authorization_rule() {
        let fds =
            prost_types::FileDescriptorSet::decode(strata_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut paths = Vec::new();
        for f in &fds.file {
            for s in &f.service {
                for m in &s.method {
                    paths.push(format!("/{}.{}/{}", f.package(), s.name(), m.name()));
                }
            }
        }
        assert_eq!(paths.len(), 42, "26 RPCs plus the Security service's 16");
        for p in &paths {
            assert!(rule(p).is_some(), "{p} has no authorization rule in RULES");
        }
        // Health and reflection are tonic's, outside our descriptors.
        assert_eq!(
            RULES.len(),
            paths.len() + 4,
            "a rule for an RPC that does not exist"
        );
        assert_eq!(rule("/strata.v1.Records/Nope"), None);
    }
}
