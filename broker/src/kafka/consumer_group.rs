//! ConsumerGroupHeartbeat (KIP-848): Kafka's broker-assigned group
//! protocol, which is how the coordinator already works. A heartbeat
//! becomes the coordinator's own (the same member ids, epochs, sticky
//! assignment and revoke-before-assign reconciliation as gRPC members);
//! topics are named by id on the wire and by name inside.
//!
//! KIP-848 sends the subscription and the owned partitions only when they
//! changed (null otherwise); null is read as the member's last.
//! Regex subscriptions are refused.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::Kafka;
use super::error::{code, of};
use crate::core::BrokerError;
use crate::core::groups::{Fenced, HeartbeatRequest, Intent, Tp};

fn refused(e: E, message: String) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code(e))
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// The Kafka error of a refused heartbeat (its codes differ from the
/// commit path's for the same refusals).
fn heartbeat_error(e: &BrokerError) -> E {
    match e {
        BrokerError::Fenced(Fenced::StaleEpoch { .. }) => E::FencedMemberEpoch,
        BrokerError::Fenced(_) => E::UnknownMemberId,
        BrokerError::GroupNotEmpty { .. } => E::InconsistentGroupProtocol,
        BrokerError::LimitExceeded {
            limit: "group_members_max",
            ..
        } => E::GroupMaxSizeReached,
        other => of(other),
    }
}

/// Answers ConsumerGroupHeartbeat.
pub async fn heartbeat(
    k: &Arc<Kafka>,
    r: ConsumerGroupHeartbeatRequest,
    client_id: &str,
    peer: SocketAddr,
) -> ConsumerGroupHeartbeatResponse {
    if r.group_id.is_empty() {
        return refused(E::InvalidGroupId, "the group id is empty".into());
    }
    if r.subscribed_topic_regex
        .as_ref()
        .is_some_and(|x| !x.is_empty())
    {
        return refused(
            E::InvalidRequest,
            "regex subscriptions are not supported; subscribe to topic names".into(),
        );
    }
    if k.coordinator.classic().has_members(&r.group_id) {
        tracing::info!(group = %r.group_id.as_str(), "consumer-protocol heartbeat refused: the group's members use the classic protocol");
        return refused(
            E::InconsistentGroupProtocol,
            format!(
                "group {:?} is in use by classic-protocol members",
                r.group_id.as_str()
            ),
        );
    }
    let group = r.group_id.to_string();
    let member = r.member_id.to_string();
    let last = k.coordinator.member_holdings(&group, &member);
    let topics = match r.subscribed_topic_names {
        Some(names) => names.into_iter().map(|n| n.to_string()).collect(),
        None => last.as_ref().map(|l| l.0.clone()).unwrap_or_default(),
    };
    let owned: BTreeSet<Tp> = match r.topic_partitions {
        Some(tps) => {
            let mut owned = BTreeSet::new();
            for t in tps {
                // A topic deleted meanwhile is owned no more.
                if let Some(topic) = k.broker.topic_by_id(*t.topic_id.as_bytes()) {
                    owned.extend(
                        t.partitions
                            .iter()
                            .filter(|p| **p >= 0)
                            .map(|p| (topic.name().to_string(), *p as u32)),
                    );
                }
            }
            owned
        }
        None => last.map(|l| l.1).unwrap_or_default(),
    };
    let intent = match Intent::from_wire(member, r.member_epoch, owned) {
        Ok(i) => i,
        Err(e) => return refused(E::InvalidRequest, e.to_string()),
    };
    let req = HeartbeatRequest {
        group,
        intent,
        instance_id: r.instance_id.map(|i| i.to_string()).unwrap_or_default(),
        client_id: client_id.to_string(),
        host: format!("/{}", peer.ip()),
        topics,
        assignor: r.server_assignor.map(|a| a.to_string()).unwrap_or_default(),
        session_timeout_ms: 0,
        rebalance_timeout_ms: r.rebalance_timeout_ms.max(0) as u32,
    };
    let c = k.coordinator.clone();
    let answer = super::blocking("heartbeat", move || c.heartbeat(req)).await;
    match answer {
        Ok(a) => {
            let mut by_topic: Vec<TopicPartitions> = Vec::new();
            for (topic, p) in &a.assigned {
                let Ok(t) = k.broker.topic(topic) else {
                    continue;
                };
                let id = Uuid::from_bytes(t.id());
                match by_topic.last_mut() {
                    Some(last) if last.topic_id == id => last.partitions.push(*p as i32),
                    _ => by_topic.push(
                        TopicPartitions::default()
                            .with_topic_id(id)
                            .with_partitions(vec![*p as i32]),
                    ),
                }
            }
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(StrBytes::from_string(a.member_id)))
                .with_member_epoch(a.epoch)
                .with_heartbeat_interval_ms(a.heartbeat_interval_ms as i32)
                .with_assignment(Some(Assignment::default().with_topic_partitions(by_topic)))
        }
        Err(e) => refused(heartbeat_error(&e), e.to_string()),
    }
}
