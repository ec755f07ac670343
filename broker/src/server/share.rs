//! The `strata.v1.Share` service: share groups (work queues on the log).
//! Translation and the long-poll only: the rules live in
//! `crate::core::share`, which runs on blocking threads because a change
//! waits for its fsync.

use std::sync::Arc;
use std::time::Duration;

use strata_proto::v1::{self, share_server::Share};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::blocking;
use super::records::{any_changed, consumed};
use super::status::{to_error, to_status};
use crate::core::BrokerError;
use crate::core::groups::Coordinator;
use crate::core::security::{Operation, Resource};
use crate::core::share::partition::{Ack, Delivery};
use crate::core::share::state::ShareGroupValue;
use crate::core::share::{ShareAck, ShareFetched, ShareHeartbeat};
use crate::storage::{Clock, SystemClock};

/// The Share service.
#[derive(Debug, Clone)]
pub struct ShareService {
    coordinator: Arc<Coordinator>,
    shutdown: CancellationToken,
    /// The longest a fetch may wait (`fetch_wait_ms_max`).
    wait_ms_max: u32,
    /// Decompression bound for decoded answers.
    decompressed_bytes_max: u32,
}

impl ShareService {
    /// A service over `coordinator`.
    pub fn new(
        coordinator: Arc<Coordinator>,
        shutdown: CancellationToken,
        wait_ms_max: u32,
        decompressed_bytes_max: u32,
    ) -> Self {
        Self {
            coordinator,
            shutdown,
            wait_ms_max,
            decompressed_bytes_max,
        }
    }
}

fn settings(c: &ShareGroupValue) -> v1::ShareGroupSettings {
    v1::ShareGroupSettings {
        dead_letter_topic: c.dlq_topic.clone(),
        delivery_limit: c.delivery_limit,
        lease_ms: c.lease_ms,
        start: c.start.clone(),
    }
}

/// The core's acks from the wire's; an unknown type refuses the call.
fn acks_of(acks: Vec<v1::ShareAck>) -> Result<Vec<ShareAck>, Status> {
    acks.into_iter()
        .map(|a| {
            let ack = match v1::AckType::try_from(a.r#type) {
                Ok(v1::AckType::Accept) => Ack::Accept,
                Ok(v1::AckType::Release) => Ack::Release {
                    delay_ms: a.delay_ms,
                    error: a.error,
                },
                Ok(v1::AckType::Reject) => Ack::Reject { error: a.error },
                Ok(v1::AckType::Renew) => Ack::Renew,
                _ => {
                    return Err(to_status(BrokerError::InvalidArgument(format!(
                        "ack of {}/{} offset {}: type {} is not accept, release, reject or renew",
                        a.topic, a.partition, a.offset, a.r#type
                    ))));
                }
            };
            if a.offset < 0 {
                return Err(to_status(BrokerError::InvalidArgument(format!(
                    "ack of {}/{}: offset {} is negative",
                    a.topic, a.partition, a.offset
                ))));
            }
            Ok(ShareAck {
                tp: (a.topic, a.partition),
                delivery: Delivery {
                    offset: a.offset as u64,
                    attempt: a.delivery,
                },
                ack,
            })
        })
        .collect()
}

fn ack_results(results: Vec<crate::core::error::Result<()>>) -> Vec<v1::ShareAckResult> {
    results
        .iter()
        .map(|r| v1::ShareAckResult {
            error: r.as_ref().err().map(to_error),
        })
        .collect()
}

impl ShareService {
    /// The wire's answer: leases and their batches (or decoded records).
    fn answer(
        &self,
        f: ShareFetched,
        acks: Vec<v1::ShareAckResult>,
        decode: bool,
    ) -> Result<v1::ShareFetchResponse, Status> {
        let mut partitions = Vec::with_capacity(f.partitions.len());
        for ((topic, partition), recs) in f.partitions {
            let leases: Vec<v1::ShareLease> = recs
                .found
                .iter()
                .map(|d| v1::ShareLease {
                    offset: d.offset as i64,
                    delivery: d.attempt,
                })
                .collect();
            let (batches, records) = if decode {
                let from = recs.found.first().map_or(0, |d| d.offset);
                let mut all = consumed(&recs.batches, from, self.decompressed_bytes_max as usize)
                    .map_err(to_status)?;
                let leased: std::collections::HashSet<i64> =
                    leases.iter().map(|l| l.offset).collect();
                all.retain(|r| leased.contains(&r.offset));
                (bytes::Bytes::new(), all)
            } else {
                (recs.batches, Vec::new())
            };
            partitions.push(v1::ShareFetchPartition {
                topic,
                partition,
                leases,
                batches,
                records,
            });
        }
        Ok(v1::ShareFetchResponse { acks, partitions })
    }
}

#[tonic::async_trait]
impl Share for ShareService {
    async fn share_heartbeat(
        &self,
        req: Request<v1::ShareHeartbeatRequest>,
    ) -> Result<Response<v1::ShareHeartbeatResponse>, Status> {
        let host = super::listener::peer_host(&req);
        let c = caller(&req)?;
        let r = req.into_inner();
        let create = r.create.unwrap_or_default();
        c.authorize(Operation::Read, Resource::group(&r.group))?;
        c.check_topics(Operation::Read, r.topics.iter().map(String::as_str))
            .map_err(to_status)?;
        // Any member's failures may dead-letter: each needs Write there.
        let dead_letters = self
            .coordinator
            .share()
            .dead_letter_topic(&r.group)
            .or_else(|| {
                (!create.dead_letter_topic.is_empty()).then(|| create.dead_letter_topic.clone())
            })
            .or_else(|| r.topics.first().map(|t| format!("{t}.{}.dlq", r.group)));
        if let Some(t) = &dead_letters {
            c.authorize(Operation::Write, Resource::topic(t))?;
        }
        let hb = ShareHeartbeat {
            group: r.group,
            member_id: r.member_id,
            leave: r.leave,
            topics: r.topics,
            client_id: r.client_id,
            host,
            session_timeout_ms: r.session_timeout_ms,
            create: ShareGroupValue {
                dlq_topic: create.dead_letter_topic,
                delivery_limit: create.delivery_limit,
                lease_ms: create.lease_ms,
                created_ms: 0,
                start: create.start,
            },
        };
        let a = blocking(&self.coordinator, move |c| c.share_heartbeat(hb)).await?;
        Ok(Response::new(v1::ShareHeartbeatResponse {
            member_id: a.member_id,
            heartbeat_interval_ms: a.heartbeat_interval_ms,
            session_timeout_ms: a.session_timeout_ms,
            settings: Some(settings(&a.config)),
        }))
    }

    async fn share_fetch(
        &self,
        req: Request<v1::ShareFetchRequest>,
    ) -> Result<Response<v1::ShareFetchResponse>, Status> {
        caller(&req)?.authorize(Operation::Read, Resource::group(&req.get_ref().group))?;
        let r = req.into_inner();
        let mut acks = Some(acks_of(r.acks)?);
        let wait = Duration::from_millis(r.max_wait_ms.min(self.wait_ms_max).into());
        let deadline = Instant::now() + wait;
        let share = || self.coordinator.share();
        let mut wake = share().wake();
        let mut ack_answers = Vec::new();
        loop {
            wake.borrow_and_update();
            // Subscribed before the fetch: a record that comes after it
            // looked wakes the wait below.
            let (partitions, retry_at_ms) = share().wait_hints(&r.group, &r.member_id);
            let mut watches: Vec<_> = partitions.iter().map(|p| p.watch()).collect();
            let (group, member, max) = (r.group.clone(), r.member_id.clone(), r.max_records);
            let these = acks.take().unwrap_or_default();
            let first_round = !these.is_empty();
            let mut fetched = blocking(&self.coordinator, move |c| {
                c.share().fetch(&group, &member, these, max)
            })
            .await?;
            if first_round {
                ack_answers = ack_results(std::mem::take(&mut fetched.acks));
            }
            let now = Instant::now();
            if !fetched.partitions.is_empty()
                || max == 0
                || now >= deadline
                || self.shutdown.is_cancelled()
            {
                return Ok(Response::new(self.answer(
                    fetched,
                    ack_answers,
                    r.decode,
                )?));
            }
            let until = match retry_at_ms {
                Some(at) => {
                    let in_ms = (at as i64 - SystemClock.now_ms()).max(0) as u64;
                    deadline.min(now + Duration::from_millis(in_ms))
                }
                None => deadline,
            };
            tokio::select! {
                _ = wake.changed() => {}
                _ = any_changed(&mut watches) => {}
                _ = tokio::time::sleep_until(until) => {}
                _ = self.shutdown.cancelled() => {}
            }
        }
    }

    async fn share_acknowledge(
        &self,
        req: Request<v1::ShareAcknowledgeRequest>,
    ) -> Result<Response<v1::ShareAcknowledgeResponse>, Status> {
        caller(&req)?.authorize(Operation::Read, Resource::group(&req.get_ref().group))?;
        let r = req.into_inner();
        let acks = acks_of(r.acks)?;
        let f = blocking(&self.coordinator, move |c| {
            c.share().fetch(&r.group, &r.member_id, acks, 0)
        })
        .await?;
        Ok(Response::new(v1::ShareAcknowledgeResponse {
            acks: ack_results(f.acks),
        }))
    }

    async fn list_share_groups(
        &self,
        req: Request<v1::ListShareGroupsRequest>,
    ) -> Result<Response<v1::ListShareGroupsResponse>, Status> {
        let c = caller(&req)?;
        let groups = self
            .coordinator
            .share()
            .list()
            .into_iter()
            .filter(|(g, _)| c.allowed(Operation::Describe, Resource::group(g)))
            .map(|(group, members)| v1::ShareGroupListing {
                group,
                members: members as u32,
            })
            .collect();
        Ok(Response::new(v1::ListShareGroupsResponse { groups }))
    }

    async fn describe_share_group(
        &self,
        req: Request<v1::DescribeShareGroupRequest>,
    ) -> Result<Response<v1::DescribeShareGroupResponse>, Status> {
        caller(&req)?.authorize(Operation::Describe, Resource::group(&req.get_ref().group))?;
        let group = req.into_inner().group;
        let d = blocking(&self.coordinator, move |c| c.share().describe(&group)).await?;
        Ok(Response::new(v1::DescribeShareGroupResponse {
            group: d.name,
            settings: Some(settings(&d.config)),
            members: d
                .members
                .into_iter()
                .map(|(id, m)| v1::ShareMemberDescription {
                    member_id: id,
                    client_id: m.client_id,
                    host: m.host,
                    topics: m.topics.into_iter().collect(),
                })
                .collect(),
            partitions: d
                .partitions
                .into_iter()
                .map(|p| v1::SharePartitionDescription {
                    topic: p.tp.0,
                    partition: p.tp.1,
                    start_offset: p.start as i64,
                    end_offset: p.end as i64,
                    lag: p.lag as i64,
                    leased: p.counts.leased,
                    retrying: p.counts.retrying,
                    delayed: p.counts.delayed,
                    dead_letters_pending: p.counts.dead_pending,
                    dead_lettered: p.dead_lettered_total,
                })
                .collect(),
        }))
    }

    async fn reset_share_group(
        &self,
        req: Request<v1::ResetShareGroupRequest>,
    ) -> Result<Response<v1::ResetShareGroupResponse>, Status> {
        use v1::reset_share_group_request::To;
        let c = caller(&req)?;
        let r = req.into_inner();
        c.authorize(Operation::Read, Resource::group(&r.group))?;
        c.authorize(Operation::Read, Resource::topic(&r.topic))?;
        let to = super::groups::reset_to!(r.to)?;
        let starts = blocking(&self.coordinator, move |c| {
            c.share().reset(&r.group, &r.topic, r.partition, to)
        })
        .await?;
        Ok(Response::new(v1::ResetShareGroupResponse {
            starts: starts
                .into_iter()
                .map(|((topic, partition), o)| v1::SharePartitionStart {
                    topic,
                    partition,
                    start_offset: o as i64,
                })
                .collect(),
        }))
    }

    async fn delete_share_group(
        &self,
        req: Request<v1::DeleteShareGroupRequest>,
    ) -> Result<Response<v1::DeleteShareGroupResponse>, Status> {
        caller(&req)?.authorize(Operation::Delete, Resource::group(&req.get_ref().group))?;
        let group = req.into_inner().group;
        blocking(&self.coordinator, move |c| c.share().delete(&group)).await?;
        Ok(Response::new(v1::DeleteShareGroupResponse {}))
    }
}
