//! Refusals of a whole request in its own terms: one error code in every
//! error field the answer has, encoded at the asked version, so the
//! client learns why and its connection stays open. For a served API at
//! a version outside the advertised range (UNSUPPORTED_VERSION; only
//! versions `kafka-protocol` can decode and encode have an answer, the
//! rest close their connection, as Kafka does for a request it cannot
//! parse), and for a request the principal may not make (`authorize`:
//! TOPIC_AUTHORIZATION_FAILED and the like).

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    DeleteTopicsResponse, DescribeGroupsResponse, FetchResponse, FindCoordinatorResponse,
    InitProducerIdResponse, JoinGroupResponse, ListGroupsResponse, ListOffsetsResponse,
    MetadataResponse, ProduceResponse, RequestKind, ResponseKind,
};

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResourceResponse;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    AlterConfigsResponse, ConsumerGroupHeartbeatResponse, CreatePartitionsResponse,
    CreateTopicsResponse, DeleteGroupsResponse, DescribeConfigsResponse, HeartbeatResponse,
    IncrementalAlterConfigsResponse, LeaveGroupResponse, OffsetCommitResponse, OffsetFetchResponse,
    SyncGroupResponse,
};

use super::error::code;

/// The UNSUPPORTED_VERSION refusal of `request`, or `None` for an API
/// without one here.
pub fn unsupported(request: RequestKind) -> Option<ResponseKind> {
    refusal(request, code(E::UnsupportedVersion))
}

/// The refusal of `request` with error code `c` everywhere, or `None` for
/// an API without one here.
pub fn refusal(request: RequestKind, c: i16) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::Produce(r) => ResponseKind::Produce(
            ProduceResponse::default().with_responses(
                r.topic_data
                    .into_iter()
                    .map(|t| {
                        let parts = t.partition_data.iter().map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(c)
                                .with_base_offset(-1)
                        });
                        TopicProduceResponse::default()
                            .with_name(t.name)
                            .with_topic_id(t.topic_id)
                            .with_partition_responses(parts.collect())
                    })
                    .collect(),
            ),
        ),
        RequestKind::Fetch(r) => ResponseKind::Fetch(
            FetchResponse::default().with_error_code(c).with_responses(
                r.topics
                    .into_iter()
                    .map(|t| {
                        let parts = t.partitions.iter().map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition)
                                .with_error_code(c)
                                .with_high_watermark(-1)
                        });
                        FetchableTopicResponse::default()
                            .with_topic(t.topic)
                            .with_topic_id(t.topic_id)
                            .with_partitions(parts.collect())
                    })
                    .collect(),
            ),
        ),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(
            ListOffsetsResponse::default().with_topics(
                r.topics
                    .into_iter()
                    .map(|t| {
                        let parts = t.partitions.iter().map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(c)
                                .with_timestamp(-1)
                                .with_offset(-1)
                        });
                        ListOffsetsTopicResponse::default()
                            .with_name(t.name)
                            .with_partitions(parts.collect())
                    })
                    .collect(),
            ),
        ),
        RequestKind::Metadata(r) => ResponseKind::Metadata(
            MetadataResponse::default().with_topics(
                r.topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| {
                        MetadataResponseTopic::default()
                            .with_name(t.name)
                            .with_topic_id(t.topic_id)
                            .with_error_code(c)
                    })
                    .collect(),
            ),
        ),
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default()
                .with_error_code(c)
                .with_node_id((-1).into())
                .with_port(-1)
                .with_coordinators(
                    r.coordinator_keys
                        .into_iter()
                        .map(|key| {
                            Coordinator::default()
                                .with_key(key)
                                .with_error_code(c)
                                .with_node_id((-1).into())
                                .with_port(-1)
                        })
                        .collect(),
                ),
        ),
        RequestKind::JoinGroup(_) => ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(c)
                .with_generation_id(-1),
        ),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(
            DescribeGroupsResponse::default().with_groups(
                r.groups
                    .into_iter()
                    .map(|g| {
                        DescribedGroup::default()
                            .with_group_id(g)
                            .with_error_code(c)
                    })
                    .collect(),
            ),
        ),
        RequestKind::ListGroups(_) => {
            ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(c))
        }
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(
            DeleteTopicsResponse::default().with_responses(
                r.topics
                    .into_iter()
                    .map(|t| {
                        DeletableTopicResult::default()
                            .with_name(t.name)
                            .with_topic_id(t.topic_id)
                            .with_error_code(c)
                    })
                    .chain(r.topic_names.into_iter().map(|n| {
                        DeletableTopicResult::default()
                            .with_name(Some(n))
                            .with_error_code(c)
                    }))
                    .collect(),
            ),
        ),
        RequestKind::InitProducerId(_) => ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_error_code(c)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        ),
        other => return more(other, c),
    })
}

/// The refusals of the admin and group APIs.
fn more(request: RequestKind, c: i16) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(
            CreateTopicsResponse::default().with_topics(
                r.topics
                    .into_iter()
                    .map(|t| {
                        CreatableTopicResult::default()
                            .with_name(t.name)
                            .with_error_code(c)
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                    })
                    .collect(),
            ),
        ),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(
            CreatePartitionsResponse::default().with_results(
                r.topics
                    .into_iter()
                    .map(|t| {
                        CreatePartitionsTopicResult::default()
                            .with_name(t.name)
                            .with_error_code(c)
                    })
                    .collect(),
            ),
        ),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(
            DescribeConfigsResponse::default().with_results(
                r.resources
                    .into_iter()
                    .map(|x| {
                        DescribeConfigsResult::default()
                            .with_error_code(c)
                            .with_resource_type(x.resource_type)
                            .with_resource_name(x.resource_name)
                    })
                    .collect(),
            ),
        ),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(
            AlterConfigsResponse::default().with_responses(
                r.resources
                    .into_iter()
                    .map(|x| {
                        AlterConfigsResourceResponse::default()
                            .with_error_code(c)
                            .with_resource_type(x.resource_type)
                            .with_resource_name(x.resource_name)
                    })
                    .collect(),
            ),
        ),
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(
                r.resources
                    .into_iter()
                    .map(|x| {
                        IncrementalResourceResponse::default()
                            .with_error_code(c)
                            .with_resource_type(x.resource_type)
                            .with_resource_name(x.resource_name)
                    })
                    .collect(),
            ),
        ),
        RequestKind::SyncGroup(_) => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(c))
        }
        RequestKind::Heartbeat(_) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(c))
        }
        RequestKind::LeaveGroup(_) => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(c))
        }
        RequestKind::ConsumerGroupHeartbeat(_) => ResponseKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(c)
                .with_member_epoch(-1),
        ),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(
            OffsetCommitResponse::default().with_topics(
                r.topics
                    .into_iter()
                    .map(|t| {
                        let parts = t.partitions.iter().map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(c)
                        });
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name)
                            .with_topic_id(t.topic_id)
                            .with_partitions(parts.collect())
                    })
                    .collect(),
            ),
        ),
        // Each group's code (v8+, where requests list groups), else the
        // top-level one (v2-7; v8+ must leave it 0).
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(if r.groups.is_empty() {
            OffsetFetchResponse::default().with_error_code(c)
        } else {
            OffsetFetchResponse::default().with_groups(
                r.groups
                    .into_iter()
                    .map(|g| {
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(c)
                    })
                    .collect(),
            )
        }),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(
            DeleteGroupsResponse::default().with_results(
                r.groups_names
                    .into_iter()
                    .map(|g| {
                        DeletableGroupResult::default()
                            .with_group_id(g)
                            .with_error_code(c)
                    })
                    .collect(),
            ),
        ),
        _ => return None,
    })
}
