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

use bytes::{BufMut, Bytes, BytesMut};
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

/// A Fetch answer as frame pieces: everything but the record batches is
/// encoded into small buffers, and each partition's batches go out as the
/// `Bytes` the read returned, so a large answer is never copied into a
/// response buffer. Byte for byte what `kafka-protocol` would encode
/// (checked by the tests below), for the versions served (4-12).
pub fn encode_response(
    version: i16,
    correlation_id: i32,
    r: FetchResponse,
) -> anyhow::Result<Vec<Bytes>> {
    use kafka_protocol::messages::{ApiKey, ResponseHeader};
    use kafka_protocol::protocol::Encodable;
    anyhow::ensure!(
        (4..=12).contains(&version),
        "Fetch v{version} is not encoded here"
    );
    let flexible = version >= 12;
    let mut out: Vec<Bytes> = Vec::new();
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // the frame size, set at the end
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, ApiKey::Fetch.response_header_version(version))?;
    buf.put_i32(r.throttle_time_ms);
    if version >= 7 {
        buf.put_i16(r.error_code);
        buf.put_i32(r.session_id);
    }
    put_len(&mut buf, r.responses.len(), flexible);
    for t in r.responses {
        put_str(&mut buf, t.topic.as_str(), flexible);
        put_len(&mut buf, t.partitions.len(), flexible);
        for mut p in t.partitions {
            let records = p.records.take();
            p.encode(&mut buf, version)?;
            // The partition ends with its (null) records, then, when
            // flexible, an empty tagged-field count: swap in the real ones.
            let tail = if flexible { 2 } else { 4 };
            buf.truncate(buf.len() - tail);
            match records {
                None if flexible => buf.put_u8(0),
                None => buf.put_i32(-1),
                Some(batches) => {
                    if flexible {
                        put_uvarint(&mut buf, batches.len() as u64 + 1);
                    } else {
                        buf.put_i32(batches.len() as i32);
                    }
                    out.push(buf.split().freeze());
                    out.push(batches);
                }
            }
            if flexible {
                buf.put_u8(0);
            }
        }
        if flexible {
            buf.put_u8(0);
        }
    }
    if flexible {
        buf.put_u8(0);
    }
    out.push(buf.freeze());
    let size: usize = out.iter().map(Bytes::len).sum::<usize>() - 4;
    let mut first = BytesMut::from(&out[0][..]);
    first[..4].copy_from_slice(&(size as i32).to_be_bytes());
    out[0] = first.freeze();
    Ok(out)
}

/// A string: an i16 length, or (flexible) a compact varint of length + 1.
fn put_str(buf: &mut BytesMut, s: &str, flexible: bool) {
    if flexible {
        put_uvarint(buf, s.len() as u64 + 1);
    } else {
        buf.put_i16(s.len() as i16);
    }
    buf.put_slice(s.as_bytes());
}

/// An array's length: an i32, or (flexible) a compact varint of n + 1.
fn put_len(buf: &mut BytesMut, n: usize, flexible: bool) {
    if flexible {
        put_uvarint(buf, n as u64 + 1);
    } else {
        buf.put_i32(n as i32);
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn answer(seed: u64) -> FetchResponse {
        let mut rng = fastrand::Rng::with_seed(seed);
        let topics = (0..rng.usize(0..4))
            .map(|t| {
                let partitions = (0..rng.usize(0..4))
                    .map(|p| {
                        let mut d = PartitionData::default()
                            .with_partition_index(p as i32)
                            .with_error_code(rng.i16(0..3))
                            .with_high_watermark(rng.i64(-1..1 << 40))
                            .with_last_stable_offset(rng.i64(-1..1 << 40))
                            .with_log_start_offset(rng.i64(-1..1 << 40));
                        d.records = match rng.u8(0..3) {
                            0 => None,
                            1 => Some(Bytes::new()),
                            _ => Some(Bytes::from(
                                (0..rng.usize(1..300))
                                    .map(|_| rng.u8(..))
                                    .collect::<Vec<u8>>(),
                            )),
                        };
                        d
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string("t".repeat(t + 1))))
                    .with_partitions(partitions)
            })
            .collect();
        FetchResponse::default()
            .with_throttle_time_ms(rng.i32(0..10))
            .with_responses(topics)
    }

    #[test]
    fn the_piecewise_fetch_answer_is_what_kafka_protocol_encodes() {
        for seed in 0..200 {
            for version in 4..=12 {
                let mut r = answer(seed);
                if version >= 7 {
                    r.error_code = (seed % 3) as i16;
                }
                let whole = crate::kafka::frame::encode(
                    ApiKey::Fetch,
                    version,
                    42,
                    &ResponseKind::Fetch(r.clone()),
                )
                .unwrap();
                let pieces: Vec<u8> = encode_response(version, 42, r).unwrap().concat();
                assert_eq!(pieces, whole.to_vec(), "seed {seed} version {version}");
            }
        }
    }
}
