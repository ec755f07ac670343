//! The APIs and versions the listener serves, as ApiVersions advertises
//! them. Clients switch features on from these ranges (librdkafka: batch
//! v2 from Produce 3 / Fetch 4, idempotence from InitProducerId, zstd from
//! Produce 7 / Fetch 10, KIP-848 from ConsumerGroupHeartbeat with
//! OffsetCommit/OffsetFetch 9), so only what is implemented is listed.
//!
//! Not listed, on purpose: transactions (AddPartitionsToTxn, EndTxn, ...),
//! SaslHandshake v0, ACL and SCRAM-credential APIs, share groups, and the versions that name topics by id
//! outside Metadata and KIP-848 (Fetch 13+, OffsetCommit/OffsetFetch 10,
//! DeleteTopics 6).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use super::error::code;
use kafka_protocol::error::ResponseError;

/// Served APIs: key, lowest and highest version.
pub const SERVED: &[(ApiKey, i16, i16)] = &[
    // From 0, though v0-2 (message sets before batch v2) are not served:
    // librdkafka before 2.3 compresses gzip, snappy and lz4 only if the
    // broker lists Produce v0 (its check asks for a version <= 0). A
    // v0-2 request does not decode and closes its connection; clients
    // pick the highest common version, 10, so only a pre-0.11 client
    // (which could not write batch v2 anyway) ever sends one.
    (ApiKey::Produce, 0, 10),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    // v1 only: v0 carries the SASL tokens in raw frames.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The served range of `api`, if it is served.
pub fn range(api: ApiKey) -> Option<(i16, i16)> {
    SERVED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|(_, min, max)| (*min, *max))
}

/// The ApiVersions answer; `error` set when the request's own version was
/// not understood (KIP-511: the client retries at v0 with what we list).
pub fn api_versions(error: Option<ResponseError>) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error.map_or(0, code);
    r.api_keys = SERVED
        .iter()
        .map(|(k, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *k as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect();
    r
}
