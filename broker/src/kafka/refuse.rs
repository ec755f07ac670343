//! Answers to a served API at a version outside the advertised range:
//! UNSUPPORTED_VERSION in every error field the answer has, encoded at
//! the asked version, so the client learns why and its connection stays
//! open. Only versions `kafka-protocol` can decode and encode have an
//! answer (the rest close their connection, as Kafka does for a request it
//! cannot parse); clients that read ApiVersions never send either.

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

use super::error::code;

/// The refusal of `request`, or `None` for an API without one here.
pub fn unsupported(request: RequestKind) -> Option<ResponseKind> {
    let c = code(E::UnsupportedVersion);
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
        _ => return None,
    })
}
