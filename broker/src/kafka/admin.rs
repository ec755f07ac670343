//! Topic admin: CreateTopics, DeleteTopics, CreatePartitions, and topic
//! configs (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs), over
//! the same core calls as the gRPC Admin service. Replication factors
//! other than 1 (or -1, the default) and explicit replica assignments are
//! refused: this is a broker of one. Broker configs are set by flags: they
//! describe as an empty list and cannot be altered here.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, TopicName, alter_configs_response,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::Kafka;
use super::error::{code, of};
use crate::core::BrokerError;
use crate::core::config::KEYS;

/// DescribeConfigs' resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
/// IncrementalAlterConfigs' operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// An error as Kafka's code and message pair.
fn failure(e: &BrokerError) -> (i16, Option<StrBytes>) {
    (code(of(e)), Some(s(e.to_string())))
}

/// Runs a core admin call on a blocking thread (they write and fsync).
async fn blocking<T: Send + 'static>(
    k: &Arc<Kafka>,
    f: impl FnOnce(&crate::core::Broker) -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, BrokerError> {
    let broker = k.broker.clone();
    super::blocking("admin", move || f(&broker)).await
}

/// Checks a replication factor and explicit replica assignments (each a
/// partition's broker ids): one replica, on this broker, is all there is.
fn check_replication<'a>(
    factor: i16,
    mut assignments: impl Iterator<Item = &'a [kafka_protocol::messages::BrokerId]>,
) -> Result<(), (E, String)> {
    if factor != -1 && factor != 1 {
        return Err((
            E::InvalidReplicationFactor,
            format!("replication factor {factor}: this broker keeps one replica (use 1 or -1)"),
        ));
    }
    if let Some(bad) = assignments.find(|ids| ids.len() != 1 || ids[0].0 != super::NODE_ID) {
        let ids: Vec<i32> = bad.iter().map(|b| b.0).collect();
        return Err((
            E::InvalidReplicaAssignment,
            format!(
                "replica assignment {ids:?}: this broker keeps one replica, on broker {}",
                super::NODE_ID
            ),
        ));
    }
    Ok(())
}

/// Answers CreateTopics (with `validate_only`, checks and creates nothing).
pub async fn create_topics(
    k: &Arc<Kafka>,
    r: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut out = CreateTopicsResponse::default();
    for t in r.topics {
        let mut res = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let overrides: BTreeMap<String, String> = t
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let assigned = t.assignments.iter().map(|a| a.broker_ids.as_slice());
        if let Err((e, m)) = check_replication(t.replication_factor, assigned) {
            res.error_code = code(e);
            res.error_message = Some(s(m));
            out.topics.push(res);
            continue;
        }
        // Explicit assignments (one per partition) give the count.
        let partitions = match t.assignments.len() {
            0 => t.num_partitions.max(0) as u32,
            n => n as u32,
        };
        let name = t.name.to_string();
        let done = if r.validate_only {
            blocking(k, move |b| b.check_new_topic(&name, partitions, &overrides))
                .await
                .map(|()| None)
        } else {
            blocking(k, move |b| b.create_topic(&name, partitions, overrides))
                .await
                .map(Some)
        };
        match done {
            Ok(topic) => {
                if let Some(topic) = topic.filter(|_| version >= 5) {
                    res.num_partitions = topic.partitions().len() as i32;
                    res.replication_factor = 1;
                    res.configs = Some(
                        topic
                            .config()
                            .to_map()
                            .into_iter()
                            .map(|(key, value)| {
                                let source = if topic.overrides().contains_key(&key) {
                                    SOURCE_TOPIC
                                } else {
                                    SOURCE_DEFAULT
                                };
                                CreatableTopicConfigs::default()
                                    .with_name(s(key))
                                    .with_value(Some(s(value)))
                                    .with_config_source(source)
                            })
                            .collect(),
                    );
                }
            }
            Err(e) => (res.error_code, res.error_message) = failure(&e),
        }
        out.topics.push(res);
    }
    out
}

/// Answers DeleteTopics (by name; topic ids are not served).
pub async fn delete_topics(
    k: &Arc<Kafka>,
    r: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let names: Vec<TopicName> = if version >= 6 {
        r.topics.into_iter().filter_map(|t| t.name).collect()
    } else {
        r.topic_names
    };
    let mut out = DeleteTopicsResponse::default();
    for name in names {
        let mut res = DeletableTopicResult::default().with_name(Some(name.clone()));
        let topic = name.to_string();
        if let Err(e) = blocking(k, move |b| b.delete_topic(&topic)).await {
            (res.error_code, res.error_message) = failure(&e);
        }
        out.responses.push(res);
    }
    out
}

/// Answers CreatePartitions: grows each topic to its new count.
pub async fn create_partitions(
    k: &Arc<Kafka>,
    r: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut out = CreatePartitionsResponse::default();
    for t in r.topics {
        let mut res = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let assigned = t
            .assignments
            .iter()
            .flatten()
            .map(|a| a.broker_ids.as_slice());
        if let Err((e, m)) = check_replication(1, assigned) {
            res.error_code = code(e);
            res.error_message = Some(s(m));
            out.results.push(res);
            continue;
        }
        let (name, count, validate) = (t.name.to_string(), t.count.max(0) as u32, r.validate_only);
        let done = blocking(k, move |b| {
            let topic = b.topic(&name)?;
            let now = topic.partitions().len() as u32;
            if count <= now {
                return Err(BrokerError::InvalidArgument(format!(
                    "topic {name:?} has {now} partitions; ask for more (partitions can be added, never removed)"
                )));
            }
            if !validate {
                b.create_partitions(&name, count)?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = done {
            (res.error_code, res.error_message) = failure(&e);
            if matches!(e, BrokerError::InvalidArgument(_)) {
                res.error_code = code(E::InvalidPartitions);
            }
        }
        out.results.push(res);
    }
    out
}

/// Kafka's config type of a key (for DescribeConfigs v3+).
fn config_type(key: &str) -> i8 {
    match key {
        "cleanup.policy" => 7,            // LIST
        "min.cleanable.dirty.ratio" => 6, // DOUBLE
        k if k.ends_with(".ms") || k.ends_with(".bytes") || k.ends_with(".messages") => 5, // LONG
        _ => 2,                           // STRING
    }
}

/// Answers DescribeConfigs: a topic's effective config, each key marked
/// as the topic's own or the broker's default.
pub fn describe_configs(
    k: &Arc<Kafka>,
    r: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let mut out = DescribeConfigsResponse::default();
    for res in r.resources {
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        match res.resource_type {
            RESOURCE_TOPIC => match k.broker.topic(&res.resource_name) {
                Ok(topic) => {
                    let overrides = topic.overrides();
                    let wanted = res.configuration_keys.as_ref();
                    for (key, value) in topic.config().to_map() {
                        if wanted.is_some_and(|w| !w.iter().any(|x| x.as_str() == key)) {
                            continue;
                        }
                        let source = if overrides.contains_key(&key) {
                            SOURCE_TOPIC
                        } else {
                            SOURCE_DEFAULT
                        };
                        let mut c = DescribeConfigsResourceResult::default()
                            .with_name(s(key.clone()))
                            .with_value(Some(s(value)))
                            .with_config_source(source);
                        if version >= 3 {
                            c.config_type = config_type(&key);
                            if r.include_documentation {
                                c.documentation =
                                    KEYS.iter().find(|(k, _)| *k == key).map(|(_, d)| s(*d));
                            }
                        }
                        result.configs.push(c);
                    }
                }
                Err(e) => (result.error_code, result.error_message) = failure(&e),
            },
            RESOURCE_BROKER => {}
            other => {
                result.error_code = code(E::InvalidRequest);
                result.error_message = Some(s(format!(
                    "resource type {other} is not served (topics: 2, broker: 4)"
                )));
            }
        }
        out.results.push(result);
    }
    out
}

/// Why a resource's configs cannot be altered here, if they cannot.
fn unalterable(resource_type: i8) -> Option<(i16, Option<StrBytes>)> {
    match resource_type {
        RESOURCE_TOPIC => None,
        RESOURCE_BROKER => Some((
            code(E::InvalidRequest),
            Some(s(
                "broker settings are set by flags, STRATA_* variables or the config file",
            )),
        )),
        other => Some((
            code(E::InvalidRequest),
            Some(s(format!("resource type {other} is not served"))),
        )),
    }
}

/// Applies `changes` to a topic (an empty value removes an override);
/// with `validate`, only checks them.
async fn alter(
    k: &Arc<Kafka>,
    name: String,
    changes: BTreeMap<String, String>,
    validate: bool,
) -> Result<(), BrokerError> {
    blocking(k, move |b| {
        b.topic(&name)?;
        if validate {
            for (key, value) in &changes {
                if value.is_empty() {
                    crate::core::config::check_key(key)?;
                } else {
                    crate::core::TopicConfig::check_override(key, value)?;
                }
            }
            return Ok(());
        }
        b.alter_topic_config(&name, changes).map(|_| ())
    })
    .await
}

/// Answers AlterConfigs: the listed configs replace all of a topic's
/// overrides (keys not listed go back to the default), as in Kafka.
pub async fn alter_configs(k: &Arc<Kafka>, r: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut out = AlterConfigsResponse::default();
    for res in r.resources {
        let mut answer = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        if let Some((c, m)) = unalterable(res.resource_type) {
            (answer.error_code, answer.error_message) = (c, m);
            out.responses.push(answer);
            continue;
        }
        let name = res.resource_name.to_string();
        let mut changes: BTreeMap<String, String> = match k.broker.topic(&name) {
            Ok(t) => t
                .overrides()
                .into_keys()
                .map(|key| (key, String::new()))
                .collect(),
            Err(_) => BTreeMap::new(),
        };
        for c in res.configs {
            changes.insert(
                c.name.to_string(),
                c.value.map(|v| v.to_string()).unwrap_or_default(),
            );
        }
        if let Err(e) = alter(k, name, changes, r.validate_only).await {
            (answer.error_code, answer.error_message) = failure(&e);
        }
        out.responses.push(answer);
    }
    out
}

/// Answers IncrementalAlterConfigs: SET and DELETE on any key, APPEND and
/// SUBTRACT on the one list key, `cleanup.policy`.
pub async fn incremental_alter_configs(
    k: &Arc<Kafka>,
    r: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut out = IncrementalAlterConfigsResponse::default();
    for res in r.resources {
        let mut answer =
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
        if let Some((c, m)) = unalterable(res.resource_type) {
            (answer.error_code, answer.error_message) = (c, m);
            out.responses.push(answer);
            continue;
        }
        let name = res.resource_name.to_string();
        let current = k
            .broker
            .topic(&name)
            .map(|t| t.config().to_map())
            .unwrap_or_default();
        let mut changes = BTreeMap::new();
        let mut refused = None;
        for c in res.configs {
            let key = c.name.to_string();
            let value = c.value.map(|v| v.to_string()).unwrap_or_default();
            let list = |key: &str| -> Vec<String> {
                current
                    .get(key)
                    .map(|v| {
                        v.split(',')
                            .filter(|x| !x.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let new = match c.config_operation {
                OP_SET => value,
                OP_DELETE => String::new(),
                OP_APPEND | OP_SUBTRACT if key == "cleanup.policy" => {
                    let mut items = list(&key);
                    for v in value.split(',').filter(|x| !x.is_empty()) {
                        items.retain(|x| x != v);
                        if c.config_operation == OP_APPEND {
                            items.push(v.to_string());
                        }
                    }
                    items.join(",")
                }
                op => {
                    refused = Some(format!(
                        "operation {op} on {key}: APPEND and SUBTRACT apply to list configs (cleanup.policy) only"
                    ));
                    break;
                }
            };
            changes.insert(key, new);
        }
        if let Some(m) = refused {
            answer.error_code = code(E::InvalidConfig);
            answer.error_message = Some(s(m));
        } else if let Err(e) = alter(k, name, changes, r.validate_only).await {
            (answer.error_code, answer.error_message) = failure(&e);
        }
        out.responses.push(answer);
    }
    out
}
