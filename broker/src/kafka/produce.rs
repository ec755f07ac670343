//! Produce: Kafka's acks 0 / 1 / -1 are our none / written / durable.
//!
//! A request becomes the gRPC layer's produce request (each partition's
//! records split into their batches, zero-copy) and goes through the same
//! in-order write and fsync ([`crate::server::produce::Producing`]); the
//! batches are validated and idempotent sequences checked by the log, so a
//! Kafka producer and a gRPC producer share one producer-state table.

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_proto::BatchCursor;
use strata_proto::v1;

use super::Kafka;
use super::connection::{Answer, Reply, encode};
use super::error::{code, of};
use crate::server::produce::Answer as Appended;
use kafka_protocol::messages::ApiKey;
use std::sync::Arc;

/// One partition of the request: how many batches it sent, or why none
/// is written.
struct Slot {
    index: i32,
    batches: usize,
    refused: Option<(E, String)>,
}

/// The batches laid end to end in a partition's `records`, as slices of
/// the request's buffer (no copy).
fn split(records: &Bytes) -> Result<Vec<Bytes>, String> {
    let mut cursor = BatchCursor::new(records);
    let mut out = Vec::new();
    let mut start = 0;
    while let Some((h, _)) = cursor.next_batch().map_err(|e| e.to_string())? {
        if h.magic != 2 {
            return Err(format!(
                "record batch magic {} (only v2 batches are accepted)",
                h.magic
            ));
        }
        let end = cursor.position();
        out.push(records.slice(start..end));
        start = end;
    }
    if start != records.len() {
        return Err(format!(
            "{} bytes after the last batch",
            records.len() - start
        ));
    }
    if out.is_empty() {
        return Err("no record batch".into());
    }
    Ok(out)
}

fn acks_of(acks: i16) -> Option<v1::Acks> {
    match acks {
        0 => Some(v1::Acks::None),
        1 => Some(v1::Acks::Written),
        -1 => Some(v1::Acks::Durable),
        _ => None,
    }
}

/// Handles a produce request: its batches are written before this returns
/// (so the next request on the connection is written after them); the
/// answer completes when the fsyncs its acks ask for are done.
pub async fn produce(
    k: &Arc<Kafka>,
    r: ProduceRequest,
    version: i16,
    correlation_id: i32,
    throttle_time_ms: i32,
) -> Answer {
    let acks = acks_of(r.acks);
    let refuse_all = match (acks, &r.transactional_id) {
        (None, _) => Some((
            E::InvalidRequiredAcks,
            format!("acks={} (use 0, 1 or -1)", r.acks),
        )),
        (_, Some(id)) => Some((
            E::TransactionalIdAuthorizationFailed,
            format!(
                "transactional id {:?}: transactions are not supported",
                id.as_str()
            ),
        )),
        _ => None,
    };
    let mut shape: Vec<(kafka_protocol::messages::TopicName, Vec<Slot>)> = Vec::new();
    let mut topics: Vec<v1::TopicProduceData> = Vec::new();
    for t in r.topic_data {
        let mut slots = Vec::with_capacity(t.partition_data.len());
        let mut data = Vec::new();
        for p in t.partition_data {
            let batches = match (&refuse_all, p.index, &p.records) {
                (Some(why), _, _) => Err(why.clone()),
                (None, i, _) if i < 0 => Err((
                    E::UnknownTopicOrPartition,
                    format!("partition {i} does not exist"),
                )),
                (None, _, None) => Err((E::InvalidRecord, "no records".into())),
                (None, _, Some(records)) => split(records).map_err(|e| (E::InvalidRecord, e)),
            };
            match batches {
                Ok(batches) => {
                    slots.push(Slot {
                        index: p.index,
                        batches: batches.len(),
                        refused: None,
                    });
                    data.extend(batches.into_iter().map(|b| v1::PartitionProduceData {
                        partition: p.index as u32,
                        data: Some(v1::partition_produce_data::Data::Batch(b)),
                    }));
                }
                Err(why) => slots.push(Slot {
                    index: p.index,
                    batches: 0,
                    refused: Some(why),
                }),
            }
        }
        if !data.is_empty() {
            topics.push(v1::TopicProduceData {
                topic: t.name.to_string(),
                partitions: data,
            });
        }
        shape.push((t.name, slots));
    }
    let req = v1::ProduceRequest {
        acks: acks.unwrap_or(v1::Acks::Durable) as i32,
        topics,
    };
    let silent = acks == Some(v1::Acks::None);
    let written = k.producing.write_request(req).await;
    let producing = k.producing.clone();
    Box::pin(async move {
        let answers = match written {
            Ok(w) => Ok(producing.complete_answers(w).await.1),
            Err(e) => Err(e),
        };
        if silent {
            return Reply::Nothing;
        }
        let body = response(shape, answers).with_throttle_time_ms(throttle_time_ms);
        encode(ApiKey::Produce, version, correlation_id, body.into())
    })
}

/// The Kafka answer from each batch's result, in request order.
fn response(
    shape: Vec<(kafka_protocol::messages::TopicName, Vec<Slot>)>,
    answers: Result<Vec<(u32, Appended)>, crate::core::BrokerError>,
) -> ProduceResponse {
    let (mut answers, whole) = match answers {
        Ok(a) => (a.into_iter(), None),
        Err(e) => (Vec::new().into_iter(), Some(e)),
    };
    let mut out = ProduceResponse::default();
    for (name, slots) in shape {
        let mut t = TopicProduceResponse::default().with_name(name);
        for slot in slots {
            let mut p = PartitionProduceResponse::default()
                .with_index(slot.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let mut failed: Option<(E, String)> = slot.refused;
            if let Some(e) = &whole {
                failed = failed.or(Some((of(e), e.to_string())));
            }
            for (i, (_, a)) in answers.by_ref().take(slot.batches).enumerate() {
                match a {
                    Ok(Some(info)) if i == 0 => {
                        p.base_offset = info.base_offset.0 as i64;
                        p.log_append_time_ms = info.log_append_time_ms.unwrap_or(-1);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failed = failed.or(Some((of(&e), e.to_string())));
                    }
                }
            }
            if let Some((e, message)) = failed {
                p.error_code = code(e);
                p.error_message = Some(StrBytes::from_string(message));
                p.base_offset = -1;
            }
            t.partition_responses.push(p);
        }
        out.responses.push(t);
    }
    out
}
