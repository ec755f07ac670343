//! Authorization on the Kafka listener: Kafka's ACL rule for each API, on
//! the same ACLs and through the same check (`server::auth::check`) as
//! every gRPC call, so a principal may do the same things on either
//! listener.
//!
//! [`check`] runs before a request is handled, on every resource it
//! names; one refusal refuses the whole request, in its own terms (the
//! resource type's code in every error field: TOPIC_, GROUP_,
//! CLUSTER_ or TRANSACTIONAL_ID_AUTHORIZATION_FAILED; `refuse`), so
//! nothing of it runs. Kafka refuses per resource and serves the rest; we
//! refuse all of it, which is stricter and never serves less safely.
//! Listings are filtered instead: Metadata for every topic and ListGroups
//! show only what the principal may Describe, and a Metadata entry for a
//! topic it may not Describe says TOPIC_AUTHORIZATION_FAILED whether or
//! not the topic exists (the answer does not tell).
//!
//! Invariant: every served API has an arm in [`needs`] (the match is
//! exhaustive over what `versions::SERVED` lists; a test checks it).

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{ListGroupsResponse, MetadataResponse, RequestKind};

use super::Kafka;
use super::error::code;
use crate::core::BrokerError;
use crate::core::security::acl::CLUSTER;
use crate::core::security::{Operation as O, Principal, Resource, ResourceType as T};
use crate::server::auth;

/// FindCoordinator's key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// DescribeConfigs' and AlterConfigs' resource type of a topic.
const CONFIG_TOPIC: i8 = 2;

/// One check: `op` on the resource of type `t` named `name`.
type Need = (T, String, O);

fn topic(name: &str, op: O) -> Need {
    (T::Topic, name.to_string(), op)
}

fn group(name: &str, op: O) -> Need {
    (T::Group, name.to_string(), op)
}

fn cluster(op: O) -> Need {
    (T::Cluster, CLUSTER.to_string(), op)
}

/// Config resources: a topic's, or the broker's (the Cluster, as Kafka).
fn config(resource_type: i8, name: &str, op: O) -> Need {
    if resource_type == CONFIG_TOPIC {
        topic(name, op)
    } else {
        cluster(op)
    }
}

/// What `req` needs, Kafka's rule per API. `Err` for an API without one
/// (a served API missing here is refused, never served unchecked).
fn needs(req: &RequestKind) -> Result<Vec<Need>, ()> {
    use RequestKind as R;
    Ok(match req {
        R::ApiVersions(_) | R::SaslHandshake(_) | R::SaslAuthenticate(_) => Vec::new(),
        R::Produce(r) => {
            let mut n: Vec<Need> = r
                .topic_data
                .iter()
                .map(|t| topic(&t.name, O::Write))
                .collect();
            if let Some(id) = &r.transactional_id {
                n.push((T::TransactionalId, id.to_string(), O::Write));
            }
            n
        }
        R::Fetch(r) => r.topics.iter().map(|t| topic(&t.topic, O::Read)).collect(),
        R::ListOffsets(r) => r
            .topics
            .iter()
            .map(|t| topic(&t.name, O::Describe))
            .collect(),
        // Filtered on the way out (`filter_metadata`).
        R::Metadata(_) => Vec::new(),
        R::FindCoordinator(r) => {
            let kind = if r.key_type == KEY_TYPE_TRANSACTION {
                T::TransactionalId
            } else {
                T::Group
            };
            std::iter::once(&r.key)
                .filter(|k| !k.is_empty())
                .chain(&r.coordinator_keys)
                .map(|k| (kind, k.to_string(), O::Describe))
                .collect()
        }
        // Kafka 3's rule for idempotence: Write on some topic (checked by
        // the caller), or the transactional id's Write.
        R::InitProducerId(r) => match &r.transactional_id {
            Some(id) => vec![(T::TransactionalId, id.to_string(), O::Write)],
            None => Vec::new(),
        },
        R::CreateTopics(r) => r.topics.iter().map(|t| topic(&t.name, O::Create)).collect(),
        R::DeleteTopics(r) => r
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref())
            .chain(&r.topic_names)
            .map(|n| topic(n, O::Delete))
            .collect(),
        R::CreatePartitions(r) => r.topics.iter().map(|t| topic(&t.name, O::Alter)).collect(),
        R::DescribeConfigs(r) => r
            .resources
            .iter()
            .map(|c| config(c.resource_type, &c.resource_name, O::DescribeConfigs))
            .collect(),
        R::AlterConfigs(r) => r
            .resources
            .iter()
            .map(|c| config(c.resource_type, &c.resource_name, O::AlterConfigs))
            .collect(),
        R::IncrementalAlterConfigs(r) => r
            .resources
            .iter()
            .map(|c| config(c.resource_type, &c.resource_name, O::AlterConfigs))
            .collect(),
        R::JoinGroup(r) => vec![group(&r.group_id, O::Read)],
        R::SyncGroup(r) => vec![group(&r.group_id, O::Read)],
        R::Heartbeat(r) => vec![group(&r.group_id, O::Read)],
        R::LeaveGroup(r) => vec![group(&r.group_id, O::Read)],
        R::OffsetCommit(r) => std::iter::once(group(&r.group_id, O::Read))
            .chain(r.topics.iter().map(|t| topic(&t.name, O::Read)))
            .collect(),
        R::OffsetFetch(r) => {
            let mut n = Vec::new();
            if !r.group_id.is_empty() {
                n.push(group(&r.group_id, O::Describe));
            }
            for t in r.topics.iter().flatten() {
                n.push(topic(&t.name, O::Describe));
            }
            for g in &r.groups {
                n.push(group(&g.group_id, O::Describe));
                for t in g.topics.iter().flatten() {
                    n.push(topic(&t.name, O::Describe));
                }
            }
            n
        }
        // Filtered on the way out (`filter_groups`).
        R::ListGroups(_) => Vec::new(),
        R::DescribeGroups(r) => r.groups.iter().map(|g| group(g, O::Describe)).collect(),
        R::DeleteGroups(r) => r.groups_names.iter().map(|g| group(g, O::Delete)).collect(),
        R::ConsumerGroupHeartbeat(r) => vec![group(&r.group_id, O::Read)],
        _ => return Err(()),
    })
}

/// Checks `req` for `p` (`enforced`: --auth is on). A Metadata request
/// that may not create what it names has its auto-creation turned off.
pub fn check(k: &Kafka, p: &Principal, req: &mut RequestKind) -> Result<(), BrokerError> {
    let enforced = k.auth.enforced;
    let security = &k.auth.security;
    if !enforced || security.is_super_user(p) {
        return Ok(());
    }
    let allowed = |t: T, name: &str, op: O| {
        auth::check(
            security,
            p,
            true,
            op,
            Resource {
                resource_type: t,
                name,
            },
        )
    };
    let needs = needs(req)
        .map_err(|()| BrokerError::Internal("a Kafka API without an authorization rule".into()))?;
    for (t, name, op) in &needs {
        // Kafka: Create on the Cluster covers every topic.
        if *op == O::Create && *t == T::Topic && allowed(T::Cluster, CLUSTER, O::Create).is_ok() {
            continue;
        }
        allowed(*t, name, *op)?;
    }
    match req {
        RequestKind::InitProducerId(r)
            if r.transactional_id.is_none() && !security.may_write_some_topic(p) =>
        {
            return allowed(T::Cluster, CLUSTER, O::Write);
        }
        RequestKind::Metadata(r) if r.allow_auto_topic_creation => {
            let may_create = |n: &str| {
                security
                    .authorize(p, O::Create, &Resource::cluster())
                    .granted()
                    || security
                        .authorize(p, O::Create, &Resource::topic(n))
                        .granted()
            };
            let all = r
                .topics
                .iter()
                .flatten()
                .filter_map(|t| t.name.as_deref())
                .all(|n| may_create(n));
            r.allow_auto_topic_creation = all;
        }
        _ => {}
    }
    Ok(())
}

/// Metadata's topics: those `p` may not Describe are dropped from a
/// listing of every topic (`all`), or answer TOPIC_AUTHORIZATION_FAILED.
pub fn filter_metadata(k: &Kafka, p: &Principal, all: bool, resp: &mut MetadataResponse) {
    let security = &k.auth.security;
    if !k.auth.enforced || security.is_super_user(p) {
        return;
    }
    let may = |n: &str| {
        security
            .authorize(p, O::Describe, &Resource::topic(n))
            .granted()
    };
    if all {
        resp.topics
            .retain(|t| t.name.as_deref().is_some_and(|n| may(n)));
        return;
    }
    for t in &mut resp.topics {
        if !t.name.as_deref().is_some_and(|n| may(n)) {
            t.error_code = code(E::TopicAuthorizationFailed);
            t.partitions.clear();
            t.topic_id = uuid::Uuid::nil();
        }
    }
}

/// ListGroups: only the groups `p` may Describe.
pub fn filter_groups(k: &Kafka, p: &Principal, resp: &mut ListGroupsResponse) {
    let security = &k.auth.security;
    if !k.auth.enforced || security.is_super_user(p) {
        return;
    }
    resp.groups.retain(|g| {
        security
            .authorize(p, O::Describe, &Resource::group(&g.group_id))
            .granted()
    });
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;

    use super::*;

    #[test]
    fn every_served_api_has_an_authorization_rule() {
        for (api, min, max) in super::super::versions::SERVED {
            // Zeros (empty strings and arrays), or ones (the same in the
            // compact encoding of flexible versions), decode at some
            // served version of every API; the rule depends on the kind.
            let req = [0u8, 1]
                .iter()
                .flat_map(|b| (*min..=*max).map(move |v| (*b, v)))
                .find_map(|(b, v)| {
                    RequestKind::decode(*api, &mut bytes::Bytes::from(vec![b; 64]), v).ok()
                })
                .unwrap_or_else(|| panic!("{api:?} decodes from zeros at no version"));
            assert!(needs(&req).is_ok(), "{api:?} has no authorization rule");
        }
        assert!(matches!(
            needs(
                &RequestKind::decode(ApiKey::EndTxn, &mut bytes::Bytes::from(vec![0u8; 64]), 0)
                    .unwrap()
            ),
            Err(())
        ));
    }
}
