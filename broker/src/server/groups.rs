//! The `strata.v1.Groups` service: consumer groups and committed offsets.
//! Translation only: the rules live in `crate::core::groups`, which runs
//! on blocking threads because a change waits for its fsync.

use std::sync::Arc;

use strata_proto::partitions::{by_topic, flatten};
use strata_proto::v1::{self, groups_server::Groups};
use tonic::{Request, Response, Status};

use super::auth::{Caller, caller};
use super::blocking;
use super::status::{to_error, to_status};
use crate::core::groups::{Committer, Coordinator, HeartbeatRequest, Intent, OffsetInfo};
use crate::core::security::{Operation, Resource};

/// The Groups service.
#[derive(Debug, Clone)]
pub struct GroupsService {
    coordinator: Arc<Coordinator>,
}

impl GroupsService {
    /// A service over `coordinator`.
    pub fn new(coordinator: Arc<Coordinator>) -> Self {
        Self { coordinator }
    }
}

fn offset(info: &OffsetInfo) -> v1::CommittedOffset {
    v1::CommittedOffset {
        topic: info.tp.0.clone(),
        partition: info.tp.1,
        offset: info.committed.as_ref().map_or(-1, |c| c.offset),
        metadata: info
            .committed
            .as_ref()
            .map(|c| c.metadata.clone())
            .unwrap_or_default(),
        commit_timestamp_ms: info.committed.as_ref().map_or(-1, |c| c.timestamp_ms),
        log_end_offset: info.end.as_ref().map_or(-1, |&e| e as i64),
        lag: info.lag().unwrap_or(-1),
        error: info.end.as_ref().err().map(to_error),
    }
}

/// A reset's target from the `to` oneof of `ResetOffsets` or
/// `ResetShareGroup`: two generated types with the same four cases, so a
/// macro (with the caller's `To` in scope) rather than a function.
macro_rules! reset_to {
    ($to:expr) => {
        match $to {
            Some(To::Earliest(_)) => Ok($crate::core::groups::ResetTo::Earliest),
            Some(To::Latest(_)) => Ok($crate::core::groups::ResetTo::Latest),
            Some(To::TimestampMs(t)) => Ok($crate::core::groups::ResetTo::Timestamp(t)),
            Some(To::Offset(o)) => Ok($crate::core::groups::ResetTo::Offset(o)),
            None => Err($crate::server::status::to_status(
                $crate::core::BrokerError::InvalidArgument(
                    "reset needs a target: earliest, latest, timestamp_ms or offset".into(),
                ),
            )),
        }
    };
}
pub(crate) use reset_to;

/// The offsets of the topics the caller may describe.
fn described(c: &Caller, infos: &[OffsetInfo]) -> Vec<v1::CommittedOffset> {
    infos
        .iter()
        .filter(|i| c.allowed(Operation::Describe, Resource::topic(&i.tp.0)))
        .map(offset)
        .collect()
}

#[tonic::async_trait]
impl Groups for GroupsService {
    async fn heartbeat(
        &self,
        req: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let host = super::listener::peer_host(&req);
        let c = caller(&req)?;
        let r = req.into_inner();
        c.authorize(Operation::Read, Resource::group(&r.group))?;
        c.check_topics(Operation::Describe, r.topics.iter().map(String::as_str))
            .map_err(to_status)?;
        let intent =
            Intent::from_wire(r.member_id, r.member_epoch, flatten(r.owned)).map_err(to_status)?;
        let hb = HeartbeatRequest {
            group: r.group,
            intent: intent.clone(),
            instance_id: r.instance_id,
            client_id: r.client_id,
            host,
            topics: r.topics,
            assignor: r.assignor,
            session_timeout_ms: r.session_timeout_ms,
            rebalance_timeout_ms: r.rebalance_timeout_ms,
        };
        let a = blocking(&self.coordinator, move |c| c.heartbeat(hb)).await?;
        Ok(Response::new(v1::HeartbeatResponse {
            member_id: a.member_id,
            member_epoch: intent.wire_reply_epoch(a.epoch),
            heartbeat_interval_ms: a.heartbeat_interval_ms,
            assignment: by_topic(&a.assigned),
            pending_partitions: a.pending,
        }))
    }

    async fn commit_offsets(
        &self,
        req: Request<v1::CommitOffsetsRequest>,
    ) -> Result<Response<v1::CommitOffsetsResponse>, Status> {
        let c = caller(&req)?;
        let r = req.into_inner();
        c.authorize(Operation::Read, Resource::group(&r.group))?;
        c.check_topics(
            Operation::Read,
            r.partitions.iter().map(|p| p.topic.as_str()),
        )
        .map_err(to_status)?;
        let durable = !matches!(
            v1::Acks::try_from(r.acks),
            Ok(v1::Acks::Written | v1::Acks::None)
        );
        let offsets = r
            .partitions
            .into_iter()
            .map(|p| ((p.topic, p.partition), p.offset, p.metadata))
            .collect();
        blocking(&self.coordinator, move |c| {
            // proto3 has no optional member: an empty id is a standalone
            // commit (Kafka's convention too).
            let committer = if r.member_id.is_empty() {
                Committer::Standalone
            } else {
                Committer::Member {
                    id: &r.member_id,
                    epoch: r.member_epoch,
                }
            };
            c.commit(&r.group, committer, offsets, durable)
        })
        .await?;
        Ok(Response::new(v1::CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        req: Request<v1::FetchOffsetsRequest>,
    ) -> Result<Response<v1::FetchOffsetsResponse>, Status> {
        let c = caller(&req)?;
        let r = req.into_inner();
        c.authorize(Operation::Describe, Resource::group(&r.group))?;
        c.check_topics(
            Operation::Describe,
            r.partitions.iter().map(|p| p.topic.as_str()),
        )
        .map_err(to_status)?;
        let tps = flatten(r.partitions).into_iter().collect();
        let infos = blocking(&self.coordinator, move |c| c.fetch_offsets(&r.group, tps)).await?;
        Ok(Response::new(v1::FetchOffsetsResponse {
            offsets: described(&c, &infos),
        }))
    }

    async fn list_groups(
        &self,
        req: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::ListGroupsResponse>, Status> {
        let c = caller(&req)?;
        let groups = self
            .coordinator
            .list()
            .into_iter()
            .filter(|(g, _, _)| c.allowed(Operation::Describe, Resource::group(g)))
            .map(|(group, state, members)| v1::GroupSummary {
                group,
                state: state.into(),
                members: members as u32,
            })
            .collect();
        Ok(Response::new(v1::ListGroupsResponse { groups }))
    }

    async fn describe_group(
        &self,
        req: Request<v1::DescribeGroupRequest>,
    ) -> Result<Response<v1::DescribeGroupResponse>, Status> {
        let c = caller(&req)?;
        let name = req.into_inner().group;
        c.authorize(Operation::Describe, Resource::group(&name))?;
        let (g, infos) = blocking(&self.coordinator, move |c| c.describe(&name)).await?;
        let members = g
            .members()
            .map(|m| v1::MemberDescription {
                member_id: m.id().to_string(),
                instance_id: m.instance_id().unwrap_or_default().to_string(),
                client_id: m.client_id().to_string(),
                host: m.host().to_string(),
                member_epoch: m.epoch(),
                topics: m.topics().iter().cloned().collect(),
                assignment: by_topic(m.assigned()),
                revoking: by_topic(m.revoking()),
                target: g.target_of(m.id()).map(by_topic).unwrap_or_default(),
                session_timeout_ms: m.session_timeout_ms(),
            })
            .collect();
        Ok(Response::new(v1::DescribeGroupResponse {
            group: Some(v1::GroupDescription {
                group: g.id().to_string(),
                state: g.state().into(),
                epoch: g.epoch(),
                assignor: g.assignor().as_str().into(),
                members,
                offsets: described(&c, &infos),
            }),
        }))
    }

    async fn reset_offsets(
        &self,
        req: Request<v1::ResetOffsetsRequest>,
    ) -> Result<Response<v1::ResetOffsetsResponse>, Status> {
        use v1::reset_offsets_request::To;
        let c = caller(&req)?;
        let r = req.into_inner();
        c.authorize(Operation::Read, Resource::group(&r.group))?;
        c.authorize(Operation::Read, Resource::topic(&r.topic))?;
        let to = reset_to!(r.to)?;
        let infos = blocking(&self.coordinator, move |c| {
            c.reset_offsets(&r.group, &r.topic, r.partitions, to)
        })
        .await?;
        Ok(Response::new(v1::ResetOffsetsResponse {
            offsets: infos.iter().map(offset).collect(),
        }))
    }

    async fn delete_group(
        &self,
        req: Request<v1::DeleteGroupRequest>,
    ) -> Result<Response<v1::DeleteGroupResponse>, Status> {
        let c = caller(&req)?;
        let name = req.into_inner().group;
        c.authorize(Operation::Delete, Resource::group(&name))?;
        blocking(&self.coordinator, move |c| c.delete(&name)).await?;
        Ok(Response::new(v1::DeleteGroupResponse {}))
    }
}
