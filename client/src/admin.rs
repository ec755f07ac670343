//! Topic and group administration, and offset look-ups.

use std::collections::HashMap;

use strata_proto::v1;

use crate::client::Client;
use crate::error::{Error, Result};

pub use strata_proto::v1::{
    CommittedOffset, GroupDescription, GroupSummary, MemberDescription, PartitionDescription,
    TopicDescription, TopicSummary,
};

/// Where [`Admin::reset_offsets`] moves a group's committed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetSpec {
    /// The first offset still in the log.
    Earliest,
    /// The end of the log.
    Latest,
    /// The first record at or after this time (ms), or the end.
    Timestamp(i64),
    /// This offset (clamped into the log).
    Offset(i64),
}

/// Where to look up an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The first offset still in the log.
    Earliest,
    /// The offset after the last readable record (the high watermark).
    Latest,
    /// The first offset whose record timestamp is at or after this (ms).
    Timestamp(i64),
}

/// Admin operations. Get one from [`Client::admin`].
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

fn config_map(config: &[(&str, &str)]) -> HashMap<String, String> {
    config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Admin {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// Creates a topic; `partitions` 0 takes the broker's default. `config`
    /// holds topic keys such as `("retention.ms", "3600000")`.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: &[(&str, &str)],
    ) -> Result<TopicDescription> {
        let resp = self
            .client
            .admin_rpc()
            .create_topic(v1::CreateTopicRequest {
                name: name.into(),
                partitions,
                config: config_map(config),
            })
            .await?;
        Ok(resp.into_inner().topic.unwrap_or_default())
    }

    /// Lists topics, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        Ok(self
            .client
            .admin_rpc()
            .list_topics(v1::ListTopicsRequest {})
            .await?
            .into_inner()
            .topics)
    }

    /// Partitions (offsets, sizes) and effective config of a topic.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let resp = self
            .client
            .admin_rpc()
            .describe_topic(v1::DescribeTopicRequest { name: name.into() })
            .await?;
        Ok(resp.into_inner().topic.unwrap_or_default())
    }

    /// Sets config keys; an empty value resets a key to the broker default.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        config: &[(&str, &str)],
    ) -> Result<TopicDescription> {
        let resp = self
            .client
            .admin_rpc()
            .alter_topic_config(v1::AlterTopicConfigRequest {
                name: name.into(),
                config: config_map(config),
            })
            .await?;
        Ok(resp.into_inner().topic.unwrap_or_default())
    }

    /// Grows a topic to `partitions` partitions.
    pub async fn create_partitions(&self, name: &str, partitions: u32) -> Result<TopicDescription> {
        let resp = self
            .client
            .admin_rpc()
            .create_partitions(v1::CreatePartitionsRequest {
                name: name.into(),
                partitions,
            })
            .await?;
        Ok(resp.into_inner().topic.unwrap_or_default())
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.client
            .admin_rpc()
            .delete_topic(v1::DeleteTopicRequest { name: name.into() })
            .await?;
        Ok(())
    }

    /// Looks up one partition's offset; `None` if no record is at or after
    /// a timestamp.
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<Option<i64>> {
        use v1::list_offsets_partition::Spec;
        let spec = match spec {
            OffsetSpec::Earliest => Spec::Earliest(true),
            OffsetSpec::Latest => Spec::Latest(true),
            OffsetSpec::Timestamp(t) => Spec::TimestampMs(t),
        };
        let resp = self
            .client
            .records()
            .list_offsets(v1::ListOffsetsRequest {
                partitions: vec![v1::ListOffsetsPartition {
                    topic: topic.into(),
                    partition,
                    spec: Some(spec),
                }],
            })
            .await?
            .into_inner();
        let r = resp
            .partitions
            .into_iter()
            .next()
            .ok_or_else(|| Error::InvalidArgument("empty list-offsets answer".into()))?;
        if let Some(e) = &r.error {
            return Err(Error::partition(topic, partition, e));
        }
        Ok((r.offset >= 0).then_some(r.offset))
    }

    /// Every consumer group on the broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        Ok(self
            .client
            .groups_rpc()
            .list_groups(v1::ListGroupsRequest {})
            .await?
            .into_inner()
            .groups)
    }

    /// A group's state, members, assignment, committed offsets and lag.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let resp = self
            .client
            .groups_rpc()
            .describe_group(v1::DescribeGroupRequest {
                group: group.into(),
            })
            .await?;
        Ok(resp.into_inner().group.unwrap_or_default())
    }

    /// Moves a group's committed offsets for `topic` (every partition if
    /// `partitions` is empty). The broker refuses while the group has members.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: &[u32],
        to: ResetSpec,
    ) -> Result<Vec<CommittedOffset>> {
        use v1::reset_offsets_request::To;
        let to = match to {
            ResetSpec::Earliest => To::Earliest(true),
            ResetSpec::Latest => To::Latest(true),
            ResetSpec::Timestamp(t) => To::TimestampMs(t),
            ResetSpec::Offset(o) => To::Offset(o),
        };
        let resp = self
            .client
            .groups_rpc()
            .reset_offsets(v1::ResetOffsetsRequest {
                group: group.into(),
                topic: topic.into(),
                partitions: partitions.to_vec(),
                to: Some(to),
            })
            .await?;
        Ok(resp.into_inner().offsets)
    }

    /// Deletes a group and its committed offsets; refused while it has members.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        self.client
            .groups_rpc()
            .delete_group(v1::DeleteGroupRequest {
                group: group.into(),
            })
            .await?;
        Ok(())
    }

    /// Every share group, with its member count.
    pub async fn list_share_groups(&self) -> Result<Vec<v1::ShareGroupListing>> {
        let resp = self
            .client
            .share_rpc()
            .list_share_groups(v1::ListShareGroupsRequest {})
            .await?;
        Ok(resp.into_inner().groups)
    }

    /// A share group's settings, members and partitions (leased, retrying,
    /// delayed, dead-lettered, lag).
    pub async fn describe_share_group(
        &self,
        group: &str,
    ) -> Result<v1::DescribeShareGroupResponse> {
        let resp = self
            .client
            .share_rpc()
            .describe_share_group(v1::DescribeShareGroupRequest {
                group: group.into(),
            })
            .await?;
        Ok(resp.into_inner())
    }

    /// Moves a share group's start on `topic` (one partition, or all); the
    /// broker refuses while the group has members.
    pub async fn reset_share_group(
        &self,
        group: &str,
        topic: &str,
        partition: Option<u32>,
        to: ResetSpec,
    ) -> Result<Vec<v1::SharePartitionStart>> {
        use v1::reset_share_group_request::To;
        let to = match to {
            ResetSpec::Earliest => To::Earliest(true),
            ResetSpec::Latest => To::Latest(true),
            ResetSpec::Timestamp(t) => To::TimestampMs(t),
            ResetSpec::Offset(o) => To::Offset(o),
        };
        let resp = self
            .client
            .share_rpc()
            .reset_share_group(v1::ResetShareGroupRequest {
                group: group.into(),
                topic: topic.into(),
                partition,
                to: Some(to),
            })
            .await?;
        Ok(resp.into_inner().starts)
    }

    /// Deletes a share group without members, and its state.
    pub async fn delete_share_group(&self, group: &str) -> Result<()> {
        self.client
            .share_rpc()
            .delete_share_group(v1::DeleteShareGroupRequest {
                group: group.into(),
            })
            .await?;
        Ok(())
    }

    /// A group's committed offsets for `partitions` (every partition it has
    /// committed, if empty), with lag.
    pub async fn committed_offsets(
        &self,
        group: &str,
        partitions: &[(String, u32)],
    ) -> Result<Vec<CommittedOffset>> {
        let resp = self
            .client
            .groups_rpc()
            .fetch_offsets(v1::FetchOffsetsRequest {
                group: group.into(),
                partitions: strata_proto::partitions::by_topic(partitions),
            })
            .await?;
        Ok(resp.into_inner().offsets)
    }

    /// Commits offsets to a group without being a member of it: for
    /// consumers that assign partitions themselves and use the group only
    /// to store offsets. Refused while the group has members. `offset` is
    /// the next offset to read. Returns once the commit is fsynced.
    pub async fn commit_offsets(&self, group: &str, offsets: &[(String, u32, i64)]) -> Result<()> {
        self.client
            .groups_rpc()
            .commit_offsets(v1::CommitOffsetsRequest {
                group: group.into(),
                member_id: String::new(),
                member_epoch: -1,
                partitions: crate::group::commit_partitions(offsets),
                acks: v1::Acks::Durable as i32,
            })
            .await?;
        Ok(())
    }
}
