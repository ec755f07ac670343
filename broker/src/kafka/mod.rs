//! The Kafka wire protocol listener: existing Kafka clients (librdkafka,
//! the Java client, kafka-python, kcat) talk to the broker unchanged.
//!
//! It sits beside the gRPC server on the same core (topics, partition
//! logs, the groups coordinator, the producer-state table), with no gRPC
//! hop: a Kafka request becomes the same core calls a gRPC one does, and
//! where the gRPC service already holds the logic (produce's in-order
//! write then fsync, fetch's long-poll) it is called directly.
//!
//! - [`frame`]: size-prefixed frames (checked against `request_bytes_max`
//!   before anything is allocated), request headers, response encoding.
//! - [`connection`]: one connection: requests read and handled one at a
//!   time, answers written in order; a produce's fsync is awaited on the
//!   answer side, so the next request is read while it completes.
//! - [`versions`]: the APIs and versions served (ApiVersions).
//! - [`sasl`]: SaslHandshake and SaslAuthenticate (SCRAM), the only
//!   requests answered before a connection authenticates under --auth.
//! - [`authorize`]: Kafka's ACL rule for every API, checked before the
//!   request is handled.
//! - [`quota`]: the principal's quotas, charged after a request is served;
//!   `throttle_time_ms` and a muted connection while in debt.
//! - [`error`]: the one place broker errors become Kafka error codes.
//! - [`refuse`]: UNSUPPORTED_VERSION answers to served APIs at versions
//!   outside the advertised range.
//! - [`produce`], [`fetch`], [`metadata`], [`admin`], [`groups`] (classic
//!   groups and offsets), [`consumer_group`] (KIP-848): the APIs, by
//!   family.
//!
//! `kafka-protocol` (Kafka's schemas, generated) is used only inside this
//! module.

pub mod admin;
pub mod authorize;
pub mod connection;
pub mod consumer_group;
pub mod error;
pub mod fetch;
pub mod frame;
pub mod groups;
pub mod metadata;
pub mod produce;
pub mod quota;
pub mod refuse;
pub mod sasl;
pub mod versions;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::core::Broker;
use crate::core::groups::Coordinator;
use crate::core::security::Security;
use crate::core::security::failures::FailureLimit;
use crate::server::listener::Conn;
use crate::server::produce::Producing;
use crate::server::records::RecordsService;

/// The node id this broker gives itself in Metadata (a cluster of one).
pub const NODE_ID: i32 = 0;

/// What the listener needs from the broker's settings.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// The host clients are told to connect to (Metadata, FindCoordinator).
    pub advertised_host: String,
    /// The port clients are told to connect to.
    pub advertised_port: u16,
    /// The largest request frame accepted (the 4-byte size prefix is read
    /// and checked before the frame is allocated).
    pub request_bytes_max: u32,
    /// Kafka connections open at once; one more is closed at accept.
    pub connections_max: u32,
    /// Metadata creates a topic it is asked about that does not exist
    /// (Kafka's `auto.create.topics.enable`), when the request allows it.
    pub auto_create_topics: bool,
    /// The cluster id Metadata reports.
    pub cluster_id: String,
}

/// Authentication and authorization, shared with the gRPC listener.
#[derive(Debug, Clone)]
pub struct KafkaAuth {
    /// Users, credentials, ACLs.
    pub security: Arc<Security>,
    /// Failed logins per address (auth_failures_per_min_max).
    pub failures: Arc<FailureLimit>,
    /// --auth: connections authenticate and requests are authorized.
    pub enforced: bool,
}

/// Everything a connection's handlers reach.
#[derive(Debug)]
pub struct Kafka {
    pub(crate) broker: Arc<Broker>,
    pub(crate) coordinator: Arc<Coordinator>,
    pub(crate) records: RecordsService,
    pub(crate) producing: Producing,
    pub(crate) settings: KafkaSettings,
    pub(crate) auth: KafkaAuth,
    pub(crate) shutdown: CancellationToken,
    connections: AtomicU32,
}

impl Kafka {
    /// The listener's state over the broker's core.
    pub fn new(
        broker: Arc<Broker>,
        coordinator: Arc<Coordinator>,
        records: RecordsService,
        producing: Producing,
        settings: KafkaSettings,
        auth: KafkaAuth,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            broker,
            coordinator,
            records,
            producing,
            settings,
            auth,
            shutdown,
            connections: AtomicU32::new(0),
        }
    }
}

/// Runs a core call on a blocking thread (the core is synchronous: it
/// writes and waits for fsyncs); the one place a failed task becomes a
/// [`BrokerError`] for the listener.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> crate::core::error::Result<T> + Send + 'static,
) -> crate::core::error::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::core::BrokerError::Internal(format!("{what} task: {e}")))?
}

/// Serves the connections `incoming` yields (accepted under the
/// listener's per-address and rate limits, through the TLS handshake when
/// TLS is on: `server::listener::incoming`) until `shutdown` is
/// cancelled; each runs on a task of its own, so a bad client ends only
/// its own connection.
pub async fn serve(
    incoming: impl futures::Stream<Item = std::io::Result<Conn>>,
    kafka: Arc<Kafka>,
) {
    let mut incoming = std::pin::pin!(incoming);
    loop {
        let conn = tokio::select! {
            c = incoming.next() => match c {
                Some(Ok(c)) => c,
                Some(Err(_)) => continue,
                None => return,
            },
            _ = kafka.shutdown.cancelled() => return,
        };
        let peer = conn.peer().addr;
        let open = kafka.connections.fetch_add(1, Ordering::AcqRel);
        if open >= kafka.settings.connections_max {
            kafka.connections.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(%peer, limit = "kafka_connections_max", max = kafka.settings.connections_max,
                "kafka connection refused: kafka_connections_max reached");
            drop(conn);
            continue;
        }
        let kafka = kafka.clone();
        tokio::spawn(async move {
            connection::run(&kafka, conn).await;
            kafka.connections.fetch_sub(1, Ordering::AcqRel);
        });
    }
}
