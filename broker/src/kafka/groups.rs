//! Group APIs: the classic protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup) on [`crate::core::groups::classic`], and offsets and group
//! admin on the coordinator, shared with gRPC groups: a Kafka consumer
//! group and `strata consume --group` see each other's committed offsets.

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::Kafka;
use super::error::{code, of, of_classic};
use crate::core::BrokerError;
use crate::core::groups::classic::{ClassicError, Join, Joined};
use crate::core::groups::{Committer, Tp};

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// Waits for a classic-group answer, or for shutdown.
async fn answer<T>(
    k: &Kafka,
    rx: tokio::sync::oneshot::Receiver<Result<T, ClassicError>>,
) -> Result<T, ClassicError> {
    tokio::select! {
        r = rx => r.unwrap_or(Err(ClassicError::ShuttingDown)),
        _ = k.shutdown.cancelled() => Err(ClassicError::ShuttingDown),
    }
}

/// Answers JoinGroup once the generation forms.
pub async fn join_group(
    k: &Arc<Kafka>,
    r: JoinGroupRequest,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
) -> JoinGroupResponse {
    let out = JoinGroupResponse::default().with_generation_id(-1);
    if r.group_id.is_empty() {
        return out.with_error_code(code(E::InvalidGroupId));
    }
    if k.coordinator.member_count(&r.group_id) > 0 {
        tracing::info!(group = %r.group_id.as_str(), "classic join refused: the group's members use the consumer protocol");
        return out.with_error_code(code(E::InconsistentGroupProtocol));
    }
    if k.coordinator.share().exists(&r.group_id) {
        tracing::info!(group = %r.group_id.as_str(), "classic join refused: the name is a share group's");
        return out.with_error_code(code(E::InconsistentGroupProtocol));
    }
    let join = Join {
        group: r.group_id.to_string(),
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.map(|i| i.to_string()),
        client_id: client_id.to_string(),
        host: format!("/{}", peer.ip()),
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        session_timeout_ms: r.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves.
        rebalance_timeout_ms: if version >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        },
        require_known_member: version >= 4,
    };
    let rx = k.coordinator.classic().join(join);
    match answer(k, rx).await {
        Ok(Joined::MemberIdRequired(id)) => out
            .with_error_code(code(E::MemberIdRequired))
            .with_member_id(s(id)),
        Ok(Joined::Generation(g)) => out
            .with_generation_id(g.generation)
            .with_protocol_type(Some(s(g.protocol_type)))
            .with_protocol_name(Some(s(g.protocol)))
            .with_leader(s(g.leader))
            .with_member_id(s(g.member_id))
            .with_members(
                g.members
                    .into_iter()
                    .map(|(id, instance, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(s(id))
                            .with_group_instance_id(instance.map(s))
                            .with_metadata(metadata)
                    })
                    .collect(),
            ),
        Err(e) => out.with_error_code(code(of_classic(&e))),
    }
}

/// Answers SyncGroup with the member's assignment.
pub async fn sync_group(k: &Arc<Kafka>, r: SyncGroupRequest, _version: i16) -> SyncGroupResponse {
    let assignments = r
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let rx = k
        .coordinator
        .classic()
        .sync(&r.group_id, &r.member_id, r.generation_id, assignments);
    match answer(k, rx).await {
        Ok((ptype, proto, assignment)) => SyncGroupResponse::default()
            .with_protocol_type(Some(s(ptype)))
            .with_protocol_name(Some(s(proto)))
            .with_assignment(assignment),
        Err(e) => SyncGroupResponse::default().with_error_code(code(of_classic(&e))),
    }
}

/// Answers Heartbeat.
pub fn heartbeat(k: &Arc<Kafka>, r: HeartbeatRequest) -> HeartbeatResponse {
    let result = k
        .coordinator
        .classic()
        .heartbeat(&r.group_id, &r.member_id, r.generation_id);
    HeartbeatResponse::default()
        .with_error_code(result.map_or_else(|e| code(of_classic(&e)), |()| 0))
}

/// Answers LeaveGroup (v0-2: one member; v3+: a list).
pub fn leave_group(k: &Arc<Kafka>, r: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let classic = k.coordinator.classic();
    if version < 3 {
        let result = classic.leave(&r.group_id, &r.member_id);
        return LeaveGroupResponse::default()
            .with_error_code(result.map_or_else(|e| code(of_classic(&e)), |()| 0));
    }
    let members = r
        .members
        .into_iter()
        .map(|m| {
            let result = classic.leave(&r.group_id, &m.member_id);
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(result.map_or_else(|e| code(of_classic(&e)), |()| 0))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

/// A partition of a commit and why it is refused, if it is.
type Refusal = (i32, Option<E>);

/// Answers OffsetCommit: generation and member checked by the classic
/// group, offsets written (durably) by the coordinator.
pub async fn offset_commit(
    k: &Arc<Kafka>,
    r: OffsetCommitRequest,
    _version: i16,
) -> OffsetCommitResponse {
    let group = r.group_id.to_string();
    // A consumer-protocol (KIP-848) group checks the member and its epoch
    // in the coordinator; a classic one its generation here.
    let consumer_protocol = k.coordinator.member_count(&group) > 0;
    let whole = if consumer_protocol {
        None
    } else {
        k.coordinator
            .classic()
            .check_commit(&group, &r.member_id, r.generation_id_or_member_epoch)
            .err()
            .map(|e| of_classic(&e))
    };
    let max = k.coordinator.settings().commit_metadata_bytes_max as usize;
    // Each partition's early refusal, or its place in the commit.
    let mut plan: Vec<(TopicName, Vec<Refusal>)> = Vec::new();
    let mut offsets = Vec::new();
    for t in r.topics {
        let mut parts = Vec::new();
        for p in t.partitions {
            let metadata = p
                .committed_metadata
                .map(|m| m.to_string())
                .unwrap_or_default();
            let refused = match (whole, u32::try_from(p.partition_index)) {
                (Some(e), _) => Some(e),
                (None, Err(_)) => Some(E::UnknownTopicOrPartition),
                (None, Ok(id)) => match k.broker.partition(&t.name, id) {
                    Err(e) => Some(of(&e)),
                    Ok(_) if metadata.len() > max => Some(E::OffsetMetadataTooLarge),
                    Ok(_) if p.committed_offset < 0 => Some(E::InvalidCommitOffsetSize),
                    Ok(_) => {
                        offsets.push(((t.name.to_string(), id), p.committed_offset, metadata));
                        None
                    }
                },
            };
            parts.push((p.partition_index, refused));
        }
        plan.push((t.name, parts));
    }
    let committed = if offsets.is_empty() {
        Ok(())
    } else {
        let c = k.coordinator.clone();
        let (member, epoch) = (r.member_id.to_string(), r.generation_id_or_member_epoch);
        super::blocking("commit", move || {
            let committer = if consumer_protocol {
                Committer::Member { id: &member, epoch }
            } else {
                Committer::Classic
            };
            c.commit(&group, committer, offsets, true)
        })
        .await
    };
    let failed = committed.err().map(|e| {
        tracing::info!(error = %e, "kafka offset commit refused");
        match e {
            BrokerError::Fenced(crate::core::groups::Fenced::StaleEpoch { .. }) => {
                E::StaleMemberEpoch
            }
            e => of(&e),
        }
    });
    let mut out = OffsetCommitResponse::default();
    for (name, parts) in plan {
        let partitions = parts
            .into_iter()
            .map(|(index, refused)| {
                let e = refused.or(failed);
                OffsetCommitResponsePartition::default()
                    .with_partition_index(index)
                    .with_error_code(e.map_or(0, code))
            })
            .collect();
        out.topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions),
        );
    }
    out
}

/// One group's committed offsets: (topic, [(partition, offset, metadata)]).
type Fetched = Vec<(TopicName, Vec<(i32, i64, String)>)>;

fn fetch_group(
    k: &Kafka,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Result<Fetched, BrokerError> {
    let tps: Vec<Tp> = topics
        .iter()
        .flatten()
        .flat_map(|(t, ps)| {
            ps.iter()
                .filter(|p| **p >= 0)
                .map(move |p| (t.to_string(), *p as u32))
        })
        .collect();
    if topics.as_ref().is_some_and(|t| t.is_empty()) {
        return Ok(Vec::new());
    }
    let infos = k.coordinator.fetch_offsets(group, tps)?;
    let mut out: Fetched = Vec::new();
    let mut push = |topic: TopicName, p: i32, offset: i64, metadata: String| match out.last_mut() {
        Some((t, ps)) if *t == topic => ps.push((p, offset, metadata)),
        _ => out.push((topic, vec![(p, offset, metadata)])),
    };
    match topics {
        // Every partition asked, in the order asked; -1 where none is committed.
        Some(topics) => {
            for (t, ps) in topics {
                for p in ps {
                    let found = infos
                        .iter()
                        .find(|i| i.tp.0 == t.as_str() && i.tp.1 as i64 == i64::from(p));
                    let c = found.and_then(|i| i.committed.as_ref());
                    push(
                        t.clone(),
                        p,
                        c.map_or(-1, |c| c.offset),
                        c.map(|c| c.metadata.clone()).unwrap_or_default(),
                    );
                }
            }
        }
        None => {
            for i in infos {
                if let Some(c) = i.committed {
                    push(
                        TopicName(s(i.tp.0.clone())),
                        i.tp.1 as i32,
                        c.offset,
                        c.metadata,
                    );
                }
            }
        }
    }
    Ok(out)
}

/// Answers OffsetFetch (v8: several groups at once).
pub async fn offset_fetch(
    k: &Arc<Kafka>,
    r: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let mut out = OffsetFetchResponse::default();
    if version >= 8 {
        for g in r.groups {
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name, t.partition_indexes))
                    .collect()
            });
            let mut group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            match fetch_group(k, &g.group_id, topics) {
                Ok(found) => {
                    group.topics = found
                        .into_iter()
                        .map(|(name, ps)| {
                            let partitions = ps
                                .into_iter()
                                .map(|(p, offset, meta)| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(offset)
                                        .with_metadata(Some(s(meta)))
                                })
                                .collect();
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(partitions)
                        })
                        .collect();
                }
                Err(e) => group.error_code = code(of(&e)),
            }
            out.groups.push(group);
        }
        return out;
    }
    let topics = r.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    match fetch_group(k, &r.group_id, topics) {
        Ok(found) => {
            out.topics = found
                .into_iter()
                .map(|(name, ps)| {
                    let partitions = ps
                        .into_iter()
                        .map(|(p, offset, meta)| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_metadata(Some(s(meta)))
                        })
                        .collect();
                    OffsetFetchResponseTopic::default()
                        .with_name(name)
                        .with_partitions(partitions)
                })
                .collect();
        }
        Err(e) => out.error_code = code(of(&e)),
    }
    out
}

/// A consumer-protocol group's state by Kafka's names (KIP-848).
fn kafka_state(state: &str) -> &'static str {
    match state {
        "empty" => "Empty",
        "stable" => "Stable",
        "reconciling" => "Reconciling",
        _ => "Assigning",
    }
}

/// Answers ListGroups: classic groups with members, and the coordinator's
/// groups (consumer-protocol groups and groups that hold only offsets).
pub fn list_groups(k: &Arc<Kafka>, r: ListGroupsRequest) -> ListGroupsResponse {
    let classic = k.coordinator.classic().list();
    let mut groups: Vec<(String, String)> = classic
        .iter()
        .map(|(n, st)| (n.clone(), st.to_string()))
        .collect();
    for (name, state, _) in k.coordinator.list() {
        if !classic.iter().any(|(n, _)| *n == name) {
            groups.push((name, kafka_state(state).to_string()));
        }
    }
    let wanted = |state: &str| {
        r.states_filter.is_empty()
            || r.states_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(state))
    };
    let listed = groups
        .into_iter()
        .filter(|(_, st)| wanted(st))
        .map(|(name, st)| {
            ListedGroup::default()
                .with_group_id(GroupId(s(name)))
                .with_protocol_type(s("consumer"))
                .with_group_state(s(st))
        })
        .collect();
    ListGroupsResponse::default().with_groups(listed)
}

/// Answers DescribeGroups; an unknown group is described as `Dead`, as
/// Kafka does.
pub fn describe_groups(
    k: &Arc<Kafka>,
    r: DescribeGroupsRequest,
    _version: i16,
) -> DescribeGroupsResponse {
    let mut out = DescribeGroupsResponse::default();
    for name in r.groups {
        let mut d = DescribedGroup::default().with_group_id(name.clone());
        if let Some(g) = k.coordinator.classic().describe(&name) {
            d.group_state = s(g.state);
            d.protocol_type = s(g.protocol_type);
            d.protocol_data = s(g.protocol);
            d.members = g
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(s(m.id))
                        .with_group_instance_id(m.instance_id.map(s))
                        .with_client_id(s(m.client_id))
                        .with_client_host(s(m.host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
        } else {
            match k.coordinator.describe(&name) {
                Ok((g, _)) => {
                    d.group_state = s(kafka_state(g.state()));
                    d.protocol_type = s("consumer");
                    d.members = g
                        .members()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(s(m.id()))
                                .with_group_instance_id(m.instance_id().map(s))
                                .with_client_id(s(m.client_id()))
                                .with_client_host(s(m.host()))
                        })
                        .collect();
                }
                Err(_) => d.group_state = s("Dead"),
            }
        }
        out.groups.push(d);
    }
    out
}

/// Answers DeleteGroups: a group and its offsets, refused while it has
/// members.
pub async fn delete_groups(k: &Arc<Kafka>, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut out = DeleteGroupsResponse::default();
    for name in r.groups_names {
        let c = k.coordinator.clone();
        let group = name.to_string();
        let done = super::blocking("delete group", move || c.delete(&group)).await;
        let e = done.err().map(|e| of(&e));
        out.results.push(
            DeletableGroupResult::default()
                .with_group_id(name)
                .with_error_code(e.map_or(0, code)),
        );
    }
    out
}
