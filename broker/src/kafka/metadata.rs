//! Metadata, FindCoordinator and InitProducerId: where things are (this
//! broker, a cluster of one, at its advertised address) and idempotent
//! producer ids (from the broker's one producer-id allocator, shared with
//! gRPC producers).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::error::{code, of};
use super::{Kafka, NODE_ID};
use crate::core::BrokerError;
use crate::core::broker::Topic;

/// FindCoordinator's key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

fn topic_entry(t: &Topic) -> MetadataResponseTopic {
    let partitions = t
        .partitions()
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.id() as i32)
                .with_leader_id(NODE_ID.into())
                .with_leader_epoch(0)
                .with_replica_nodes(vec![NODE_ID.into()])
                .with_isr_nodes(vec![NODE_ID.into()])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name().to_string()))))
        .with_topic_id(uuid::Uuid::from_bytes(t.id()))
        .with_partitions(partitions)
}

fn missing(name: TopicName, e: E) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(name))
        .with_error_code(code(e))
}

/// Answers Metadata: this broker, and every topic asked for (all of them
/// when the list is null). With `auto_create_topics` on and the request
/// allowing it, an unknown topic is created with the broker's defaults.
pub async fn metadata(k: &Arc<Kafka>, r: MetadataRequest, version: i16) -> MetadataResponse {
    let s = &k.settings;
    let mut out = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(NODE_ID.into())
                .with_host(StrBytes::from_string(s.advertised_host.clone()))
                .with_port(i32::from(s.advertised_port)),
        ])
        .with_cluster_id(Some(StrBytes::from_string(s.cluster_id.clone())))
        .with_controller_id(NODE_ID.into());
    let Some(asked) = r.topics else {
        out.topics = k.broker.topics().iter().map(|t| topic_entry(t)).collect();
        return out;
    };
    // Metadata v0-3 always allowed auto-creation; v4 made it a flag.
    let may_create = s.auto_create_topics && (version < 4 || r.allow_auto_topic_creation);
    for t in asked {
        // Metadata 10+ may name a topic by id alone (KIP-848 assignments;
        // a null name, or an empty one).
        let Some(name) = t.name.filter(|n| !n.is_empty() || t.topic_id.is_nil()) else {
            let entry = match k.broker.topic_by_id(*t.topic_id.as_bytes()) {
                Some(topic) => topic_entry(&topic),
                None => missing(TopicName::default(), E::UnknownTopicId).with_topic_id(t.topic_id),
            };
            out.topics.push(entry);
            continue;
        };
        let entry = match k.broker.topic(&name) {
            Ok(topic) => topic_entry(&topic),
            Err(BrokerError::UnknownTopic(_)) if may_create => {
                match create(k, name.to_string()).await {
                    Ok(topic) => topic_entry(&topic),
                    Err(BrokerError::TopicExists(_)) => match k.broker.topic(&name) {
                        Ok(topic) => topic_entry(&topic),
                        Err(e) => missing(name, of(&e)),
                    },
                    Err(e) => {
                        tracing::info!(topic = %name.as_str(), error = %e, "kafka metadata: auto-create refused");
                        missing(name, of(&e))
                    }
                }
            }
            Err(e) => missing(name, of(&e)),
        };
        out.topics.push(entry);
    }
    out
}

async fn create(k: &Arc<Kafka>, name: String) -> Result<Arc<Topic>, BrokerError> {
    let broker = k.broker.clone();
    let topic = super::blocking("create", move || {
        broker.create_topic(&name, 0, BTreeMap::new())
    })
    .await?;
    tracing::info!(topic = topic.name(), "kafka metadata: auto-created topic");
    Ok(topic)
}

/// Answers FindCoordinator: this broker coordinates every group.
/// Transactions are not served, so a transactional id has no coordinator.
pub fn find_coordinator(
    k: &Arc<Kafka>,
    r: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let s = &k.settings;
    let refusal = (r.key_type == KEY_TYPE_TRANSACTION).then_some((
        E::TransactionalIdAuthorizationFailed,
        "transactions are not supported by this broker",
    ));
    let host = StrBytes::from_string(s.advertised_host.clone());
    let port = i32::from(s.advertised_port);
    if version >= 4 {
        let coordinators = r
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                match refusal {
                    Some((e, m)) => c
                        .with_node_id((-1).into())
                        .with_port(-1)
                        .with_error_code(code(e))
                        .with_error_message(Some(StrBytes::from_static_str(m))),
                    None => c
                        .with_node_id(NODE_ID.into())
                        .with_host(host.clone())
                        .with_port(port),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match refusal {
        Some((e, m)) => FindCoordinatorResponse::default()
            .with_error_code(code(e))
            .with_error_message(Some(StrBytes::from_static_str(m)))
            .with_node_id((-1).into())
            .with_port(-1),
        None => FindCoordinatorResponse::default()
            .with_node_id(NODE_ID.into())
            .with_host(host)
            .with_port(port),
    }
}

/// Answers InitProducerId with a new idempotent producer id (epoch 0).
/// A transactional id is refused: transactions are not served.
pub async fn init_producer_id(k: &Arc<Kafka>, r: InitProducerIdRequest) -> InitProducerIdResponse {
    let out = InitProducerIdResponse::default()
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    if r.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        return out.with_error_code(code(E::TransactionalIdAuthorizationFailed));
    }
    let broker = k.broker.clone();
    let id = super::blocking("init producer", move || broker.init_producer()).await;
    match id {
        Ok(id) => out
            .with_producer_id(id.id.into())
            .with_producer_epoch(id.epoch),
        Err(e) => out.with_error_code(code(of(&e))),
    }
}
