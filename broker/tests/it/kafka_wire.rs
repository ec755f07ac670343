//! The Kafka listener against bad input, byte by byte over a raw socket:
//! ApiVersions' fallback (KIP-511), oversized, truncated and malformed
//! frames, unknown API keys, and a seeded run of random and mutated
//! frames. Whatever one connection sends, the broker goes on serving the
//! others and writes nothing it was not validly asked to.
//!
//! The random run names its seed on failure; rerun one with
//! `STRATA_PROP_SEED=N cargo test -p strata-broker --test it kafka_wire::`;
//! `STRATA_PROP_CASES` sets how many frames it sends (default 300).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::BrokerProcess;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, ListOffsetsRequest,
    MetadataRequest, ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_proto::v1;

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A request frame: size, header (at the version the API's schema says),
/// body.
fn frame<T: Encodable>(api: ApiKey, version: i16, correlation: i32, body: &T) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")))
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let n = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&n.to_be_bytes());
    buf.to_vec()
}

/// Reads one response frame; `None` if the broker closed the connection.
fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

/// ApiVersions at `version` on `s`: the answer decoded at v0 layout when
/// the broker fell back to it.
fn api_versions(s: &mut TcpStream, version: i16, correlation: i32) -> Option<ApiVersionsResponse> {
    // A version past the schema is written as v3 with its number patched.
    let mut f = frame(
        ApiKey::ApiVersions,
        version.min(4),
        correlation,
        &ApiVersionsRequest::default(),
    );
    f[6..8].copy_from_slice(&version.to_be_bytes());
    s.write_all(&f).ok()?;
    let mut b = read_frame(s)?;
    // ApiVersions answers always carry the v0 response header.
    let h = ResponseHeader::decode(&mut b, 0).unwrap();
    assert_eq!(h.correlation_id, correlation);
    let answered_at = if version > 4 { 0 } else { version };
    Some(ApiVersionsResponse::decode(&mut b, answered_at).unwrap())
}

/// The broker still answers a fresh connection.
fn serving(addr: SocketAddr) {
    let mut s = connect(addr);
    let r = api_versions(&mut s, 3, 7).expect("the broker answers a new connection");
    assert_eq!(r.error_code, 0);
}

/// The closed connection: the next read sees EOF (or a reset).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn start() -> (tempfile::TempDir, BrokerProcess, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    // Long-polls end within 100 ms: a mutated Fetch may ask for a long
    // max_wait, and that is an answer coming, not a hang.
    let b = BrokerProcess::start_in(
        &dir.path().join("data"),
        &[
            "--request-bytes-max",
            "1048576",
            "--fetch-wait-ms-max",
            "100",
        ],
    );
    let addr = b.kafka_addr.unwrap();
    (dir, b, addr)
}

#[test]
fn api_versions_lists_what_is_served_and_falls_back_to_v0() {
    let (_dir, _b, addr) = start();
    let mut s = connect(addr);
    let r = api_versions(&mut s, 3, 1).unwrap();
    assert_eq!(r.error_code, 0);
    let range = |k: ApiKey| {
        r.api_keys
            .iter()
            .find(|v| v.api_key == k as i16)
            .map(|v| (v.min_version, v.max_version))
    };
    // Batch v2 from 3, zstd from 7; listed from 0 for old librdkafka's
    // compression check.
    assert_eq!(range(ApiKey::Produce), Some((0, 10)));
    assert_eq!(range(ApiKey::Fetch), Some((4, 12)));
    assert!(
        range(ApiKey::FindCoordinator).is_some(),
        "librdkafka needs it for lz4"
    );
    assert!(range(ApiKey::InitProducerId).is_some(), "idempotence");
    // KIP-848: librdkafka uses it only with OffsetCommit/OffsetFetch 9+.
    assert_eq!(range(ApiKey::ConsumerGroupHeartbeat), Some((0, 1)));
    assert_eq!(range(ApiKey::OffsetCommit).map(|r| r.1), Some(9));
    assert_eq!(range(ApiKey::OffsetFetch).map(|r| r.1), Some(9));
    assert_eq!(
        range(ApiKey::Metadata).map(|r| r.1),
        Some(12),
        "topic ids (10+) for KIP-848"
    );
    // SASL: v1 of the handshake only (v0 sends raw SASL frames).
    assert_eq!(range(ApiKey::SaslHandshake), Some((1, 1)));
    assert_eq!(range(ApiKey::SaslAuthenticate), Some((0, 2)));
    for unserved in [
        ApiKey::AddPartitionsToTxn,
        ApiKey::EndTxn,
        ApiKey::CreateAcls,
        ApiKey::ShareFetch,
    ] {
        assert_eq!(range(unserved), None, "{unserved:?} is not advertised");
    }
    // KIP-511: a version we do not know is answered at v0, with an error
    // and our list, on the same connection, which stays open.
    let r = api_versions(&mut s, 99, 2).unwrap();
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(
        r.api_keys
            .iter()
            .any(|v| v.api_key == ApiKey::Produce as i16)
    );
    let r = api_versions(&mut s, 0, 3).unwrap();
    assert_eq!(r.error_code, 0);
}

#[test]
fn bad_frames_close_only_their_own_connection() {
    let (_dir, b, addr) = start();
    let mut bystander = connect(addr);
    assert!(api_versions(&mut bystander, 3, 1).is_some());

    // Oversized: refused on the size prefix alone.
    let mut s = connect(addr);
    s.write_all(&(64i32 << 20).to_be_bytes()).unwrap();
    assert!(
        closed(&mut s),
        "a frame over request_bytes_max closes the connection"
    );
    // Negative and too-short sizes.
    for size in [-1i32, 3] {
        let mut s = connect(addr);
        s.write_all(&size.to_be_bytes()).unwrap();
        s.write_all(&[0u8; 8]).unwrap();
        assert!(closed(&mut s), "size {size}");
    }
    // An unknown API key.
    let mut s = connect(addr);
    let mut f = frame(ApiKey::ApiVersions, 3, 9, &ApiVersionsRequest::default());
    f[4..6].copy_from_slice(&1000i16.to_be_bytes());
    s.write_all(&f).unwrap();
    assert!(closed(&mut s));
    // A served API outside the advertised range (transactions are not).
    let mut s = connect(addr);
    let mut f = frame(ApiKey::Metadata, 9, 9, &MetadataRequest::default());
    f[6..8].copy_from_slice(&77i16.to_be_bytes());
    s.write_all(&f).unwrap();
    assert!(closed(&mut s));
    // A body cut short: the frame is whole, the message is not.
    let mut s = connect(addr);
    let mut f = frame(
        ApiKey::Metadata,
        9,
        9,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    f.truncate(f.len() - 1);
    let n = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&n.to_be_bytes());
    s.write_all(&f).unwrap();
    assert!(closed(&mut s));
    // A frame that never finishes: the peer goes away mid-frame.
    let mut s = connect(addr);
    s.write_all(&100i32.to_be_bytes()).unwrap();
    s.write_all(&[1, 2, 3]).unwrap();
    drop(s);

    // The first connection and new ones are served as before.
    assert_eq!(api_versions(&mut bystander, 3, 2).unwrap().error_code, 0);
    serving(addr);
    assert!(!b.stderr().contains("panicked"));
}

#[test]
fn a_version_past_the_advertised_range_is_refused_in_its_own_terms() {
    use kafka_protocol::messages::{JoinGroupResponse, MetadataResponse, ProduceResponse};
    let (_dir, _b, addr) = start();
    let mut s = connect(addr);
    let topic = TopicName(StrBytes::from_static_str("wire"));
    // Metadata 13 (we serve up to 12): each topic answered UNSUPPORTED_VERSION.
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(topic.clone())),
    ]));
    s.write_all(&frame(ApiKey::Metadata, 13, 5, &metadata))
        .unwrap();
    let mut b = read_frame(&mut s).expect("answered, not closed");
    assert_eq!(ResponseHeader::decode(&mut b, 1).unwrap().correlation_id, 5);
    let r = MetadataResponse::decode(&mut b, 13).unwrap();
    assert_eq!(r.topics.len(), 1);
    assert_eq!(r.topics[0].error_code, 35);
    // Produce 11 (we serve up to 10): every partition refused, nothing written.
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![
            kafka_protocol::messages::produce_request::TopicProduceData::default()
                .with_name(topic)
                .with_partition_data(vec![
                    kafka_protocol::messages::produce_request::PartitionProduceData::default()
                        .with_index(3),
                ]),
        ]);
    s.write_all(&frame(ApiKey::Produce, 11, 6, &produce))
        .unwrap();
    let mut b = read_frame(&mut s).expect("answered, not closed");
    assert_eq!(ResponseHeader::decode(&mut b, 1).unwrap().correlation_id, 6);
    let r = ProduceResponse::decode(&mut b, 11).unwrap();
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.index, p.error_code), (3, 35));
    // JoinGroup 8: the top-level error.
    let join = kafka_protocol::messages::JoinGroupRequest::default().with_group_id(
        kafka_protocol::messages::GroupId(StrBytes::from_static_str("g")),
    );
    s.write_all(&frame(ApiKey::JoinGroup, 8, 7, &join)).unwrap();
    let mut b = read_frame(&mut s).expect("answered, not closed");
    assert_eq!(ResponseHeader::decode(&mut b, 1).unwrap().correlation_id, 7);
    assert_eq!(JoinGroupResponse::decode(&mut b, 8).unwrap().error_code, 35);
    // And the connection goes on.
    assert_eq!(api_versions(&mut s, 3, 8).unwrap().error_code, 0);
}

/// Valid requests of several APIs, to mutate. The produce request's
/// batch has a wrong CRC, so no mutation of it can be a valid append.
fn seeds() -> Vec<Vec<u8>> {
    let topic = TopicName(StrBytes::from_static_str("wire"));
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(topic.clone())),
    ]));
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![
            kafka_protocol::messages::fetch_request::FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(vec![
                    kafka_protocol::messages::fetch_request::FetchPartition::default()
                        .with_partition_max_bytes(1 << 16),
                ]),
        ]);
    let list = ListOffsetsRequest::default().with_topics(vec![
        kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic.clone())
            .with_partitions(vec![
                kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default()
                    .with_timestamp(-1),
            ]),
    ]);
    let mut batch = strata_proto::BatchBuilder::new();
    batch.push(0, Some(b"k"), Some(b"v"), &[]);
    let mut batch = batch.finish().to_vec();
    batch[17] ^= 0xff; // the CRC
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![
            kafka_protocol::messages::produce_request::TopicProduceData::default()
                .with_name(topic)
                .with_partition_data(vec![
                    kafka_protocol::messages::produce_request::PartitionProduceData::default()
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    vec![
        frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default()),
        frame(ApiKey::Metadata, 9, 2, &metadata),
        frame(ApiKey::Metadata, 1, 3, &metadata),
        frame(ApiKey::Fetch, 12, 4, &fetch),
        frame(ApiKey::Fetch, 4, 5, &fetch),
        frame(ApiKey::ListOffsets, 6, 6, &list),
        frame(ApiKey::Produce, 9, 7, &produce),
        frame(ApiKey::Produce, 3, 8, &produce),
    ]
}

/// One random frame: a mutated seed (bytes flipped, cut, or grown), or
/// bytes from nowhere.
fn random_frame(rng: &mut fastrand::Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut f = if rng.u8(..) < 40 {
        let n = rng.usize(8..200);
        let mut f = (n as i32).to_be_bytes().to_vec();
        f.extend((0..n).map(|_| rng.u8(..)));
        f
    } else {
        seeds[rng.usize(..seeds.len())].clone()
    };
    for _ in 0..rng.usize(1..6) {
        match rng.u8(..4) {
            // Flip a byte after the size (the size is bounded separately).
            0 | 1 if f.len() > 4 => {
                let i = rng.usize(4..f.len());
                f[i] = rng.u8(..);
            }
            // Cut the body, keeping the size prefix honest.
            2 if f.len() > 12 => {
                let cut = rng.usize(12..f.len());
                f.truncate(cut);
                let n = (f.len() - 4) as i32;
                f[..4].copy_from_slice(&n.to_be_bytes());
            }
            // A huge length inside (array counts, string lengths).
            _ if f.len() > 16 => {
                let i = rng.usize(12..f.len() - 4);
                f[i..i + 4].copy_from_slice(&0x7fff_fff0i32.to_be_bytes());
            }
            _ => {}
        }
    }
    f
}

#[test]
fn random_and_mutated_frames_never_stop_the_listener_or_write_anything() {
    let (_dir, b, addr) = start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        b.admin()
            .await
            .create_topic(v1::CreateTopicRequest {
                name: "wire".into(),
                partitions: 1,
                ..Default::default()
            })
            .await
            .unwrap();
    });
    let seed: u64 = std::env::var("STRATA_PROP_SEED")
        .ok()
        .map(|s| s.parse().expect("STRATA_PROP_SEED is a number"))
        .unwrap_or_else(|| fastrand::u64(..));
    let cases: usize = std::env::var("STRATA_PROP_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    println!("kafka_wire seed {seed} (replay with STRATA_PROP_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let seeds = seeds();
    for case in 0..cases {
        let f = random_frame(&mut rng, &seeds);
        let mut s = connect(addr);
        s.write_all(&f).ok();
        // Either an answer or a closed connection; never a hang.
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = [0u8; 4];
        match s.read_exact(&mut answer) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => {
                panic!("seed {seed} case {case}: no answer and no close ({e}); frame {f:02x?}")
            }
        }
        if case % 50 == 49 {
            serving(addr);
        }
    }
    serving(addr);
    let end = rt.block_on(async {
        let mut r = b.records().await;
        let f = r
            .fetch(v1::FetchRequest {
                topics: vec![v1::FetchTopic {
                    topic: "wire".into(),
                    partitions: vec![v1::FetchPartition {
                        partition: 0,
                        offset: 0,
                        max_bytes: 0,
                    }],
                }],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        f.topics[0].partitions[0].high_watermark
    });
    assert_eq!(end, 0, "seed {seed}: nothing was written");
    let log = b.stderr();
    assert!(
        !log.contains("panicked"),
        "seed {seed}: a connection task panicked:\n{log}"
    );
}
