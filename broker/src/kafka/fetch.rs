//! Fetch and ListOffsets.
//!
//! Fetch runs the gRPC layer's long-poll ([`RecordsService::fetch_batches`]):
//! `max_wait_ms` and `min_bytes` honoured (a client sending Fetch in a loop
//! waits on the broker, it does not spin), `max_bytes` and
//! `partition_max_bytes` bounded by the broker's `fetch_bytes_max`, and a
//! fetch from an offset inside a batch answering that whole batch (the
//! client skips the records before its offset). No fetch sessions
//! (KIP-227): `session_id` 0 tells the client to send full fetches.
//!
//! [`RecordsService::fetch_batches`]: crate::server::records::RecordsService

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use strata_proto::Batch;
use strata_proto::v1;

use super::Kafka;
use super::error::{code, of, of_v1};
use crate::core::{BrokerError, Partition};

/// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// Answers a Fetch.
pub async fn fetch(k: &Arc<Kafka>, r: FetchRequest, version: i16) -> FetchResponse {
    // Every partition asked, in request order; those that cannot be asked
    // at all (a negative partition) carry their error.
    let mut asked: Vec<(TopicName, i32, Option<E>)> = Vec::new();
    let mut topics: Vec<v1::FetchTopic> = Vec::new();
    for t in &r.topics {
        let mut partitions = Vec::new();
        for p in &t.partitions {
            if p.partition < 0 {
                asked.push((
                    t.topic.clone(),
                    p.partition,
                    Some(E::UnknownTopicOrPartition),
                ));
                continue;
            }
            asked.push((t.topic.clone(), p.partition, None));
            partitions.push(v1::FetchPartition {
                partition: p.partition as u32,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as u32,
            });
        }
        topics.push(v1::FetchTopic {
            topic: t.topic.to_string(),
            partitions,
        });
    }
    let req = v1::FetchRequest {
        topics,
        max_bytes: r.max_bytes.max(0) as u32,
        min_bytes: r.min_bytes.max(0) as u32,
        max_wait_ms: r.max_wait_ms.max(0) as u32,
        decode: false,
    };
    let (mut results, whole) = match k.records.fetch_batches(req).await {
        Ok(answer) => (
            answer
                .topics
                .into_iter()
                .flat_map(|t| t.partitions)
                .collect::<Vec<_>>()
                .into_iter(),
            None,
        ),
        Err(e) => (Vec::new().into_iter(), Some(of(&e))),
    };
    let mut out = FetchResponse::default().with_session_id(0);
    if version >= 7 {
        out.error_code = whole.map_or(0, code);
    }
    for (topic, partition, refused) in asked {
        let mut p = PartitionData::default()
            .with_partition_index(partition)
            .with_high_watermark(-1);
        match refused.or(whole) {
            Some(e) => p.error_code = code(e),
            None => match results.next() {
                Some(res) => match res.error {
                    Some(e) => p.error_code = code(of_v1(&e)),
                    None => {
                        p.high_watermark = res.high_watermark;
                        p.last_stable_offset = res.high_watermark;
                        p.log_start_offset = res.log_start_offset;
                        p.records = Some(res.batches);
                    }
                },
                None => p.error_code = code(E::UnknownServerError),
            },
        }
        match out.responses.last_mut() {
            Some(t) if t.topic == topic => t.partitions.push(p),
            _ => out.responses.push(
                FetchableTopicResponse::default()
                    .with_topic(topic)
                    .with_partitions(vec![p]),
            ),
        }
    }
    out
}

/// Answers a ListOffsets: the earliest (-2) or latest (-1) offset, or the
/// first record at or after a timestamp (-1/-1 when there is none).
pub async fn list_offsets(
    k: &Arc<Kafka>,
    r: ListOffsetsRequest,
    _version: i16,
) -> ListOffsetsResponse {
    let mut out = ListOffsetsResponse::default();
    let max = k.broker.limits().batch_decompressed_bytes_max as usize;
    for t in r.topics {
        let mut topic = ListOffsetsTopicResponse::default().with_name(t.name.clone());
        for p in t.partitions {
            let mut answer = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            let found = match u32::try_from(p.partition_index) {
                Err(_) => Err(E::UnknownTopicOrPartition),
                Ok(id) => match k.broker.partition(&t.name, id) {
                    Err(e) => Err(of(&e)),
                    Ok(part) => lookup(&part, p.timestamp, max).await.map_err(|e| of(&e)),
                },
            };
            match found {
                Ok((timestamp, offset)) => {
                    answer.timestamp = timestamp;
                    answer.offset = offset;
                }
                Err(e) => answer.error_code = code(e),
            }
            topic.partitions.push(answer);
        }
        out.topics.push(topic);
    }
    out
}

/// (timestamp, offset) for a ListOffsets target.
async fn lookup(p: &Arc<Partition>, timestamp: i64, max: usize) -> Result<(i64, i64), BrokerError> {
    let stats = p.stats()?;
    match timestamp {
        LATEST => Ok((-1, stats.high_watermark as i64)),
        EARLIEST => Ok((-1, stats.log_start as i64)),
        ts if ts < 0 => Err(BrokerError::InvalidArgument(format!(
            "timestamp {ts} is not supported (use -1, -2 or a time in ms)"
        ))),
        ts => match p.offset_for_timestamp(ts).await? {
            None => Ok((-1, -1)),
            Some(offset) => Ok((
                record_timestamp(p, offset, max).await.unwrap_or(ts),
                offset as i64,
            )),
        },
    }
}

/// The timestamp of the record at `offset` (read back from its batch, as
/// Kafka answers the found record's time, not the asked one).
async fn record_timestamp(p: &Arc<Partition>, offset: u64, max: usize) -> Option<i64> {
    let read = p.read(offset, 1).await.ok()?;
    for batch in Batch::decode_all(read.batches).ok()? {
        for r in batch.records_within(max) {
            let r = r.ok()?;
            if r.offset as u64 >= offset {
                return Some(r.timestamp);
            }
        }
    }
    None
}
