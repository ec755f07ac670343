//! Quotas on the Kafka listener, Kafka's way (KIP-219): a request is
//! served, its cost charged to the principal's (and client id's) buckets
//! after the fact, and when that leaves a bucket in debt the answer
//! carries `throttle_time_ms` (Produce and Fetch, which have the byte
//! quotas) and the connection reads nothing more from the client for that
//! long. The buckets are the gRPC listener's (`Security::charge`), so a
//! principal's rate is one rate over both listeners.

use kafka_protocol::messages::{FetchResponse, ProduceRequest};

use super::Kafka;
use crate::core::security::{Principal, QuotaKind};
use crate::server::auth::now_ms;

/// The longest a connection is muted for one request
/// (kafka_throttle_ms_max): a client times a request out after 30 s by
/// default, so longer waits are spread over the next requests instead.
pub const THROTTLE_MS_MAX: u64 = 30_000;

/// Charges `charges` (kind, cost) to `p` from `client_id`: the time the
/// connection waits before its next request, 0 when every bucket is out
/// of debt. Super users are not charged.
pub fn charge(k: &Kafka, p: &Principal, client_id: &str, charges: &[(QuotaKind, u64)]) -> u64 {
    let security = &k.auth.security;
    let now = now_ms();
    let mut wait_ms = 0;
    for &(kind, cost) in charges {
        security.charge_after(p, client_id, kind, cost, now);
        if let Err(t) = security.charge(p, client_id, kind, 0, now) {
            wait_ms = wait_ms.max(t.throttle_time_ms);
        }
    }
    wait_ms.min(THROTTLE_MS_MAX)
}

/// The record bytes a Produce request carries.
pub fn produce_bytes(r: &ProduceRequest) -> u64 {
    r.topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_ref())
        .map(|b| b.len() as u64)
        .sum()
}

/// The record bytes a Fetch answer carries.
pub fn fetch_bytes(r: &FetchResponse) -> u64 {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref())
        .map(|b| b.len() as u64)
        .sum()
}
