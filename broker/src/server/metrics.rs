//! What an operator watches: Prometheus metrics, `/healthz` and `/readyz`,
//! served over plain HTTP on their own port (`--metrics-listen`).
//!
//! Counters and histograms are recorded where things happen, through the
//! `metrics` facade (as logs go through `tracing`): produce and fetch here
//! and in `records`, fsyncs in the storage engine, recovery in the core.
//! Figures that describe state (partition sizes and offsets, group lag)
//! are read at scrape time, so they are never stale. The exporter is
//! `metrics-exporter-prometheus`, rendering the text format itself; axum
//! (already in the tree through tonic) serves it.
//!
//! Every metric name is listed in `docs/OPERATIONS.md`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::server::Connected;

use super::body::Hooked;
use crate::core::Broker;
use crate::core::groups::Coordinator;

/// Latency buckets (seconds): 50 µs to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Size buckets (bytes): 256 B to 64 MiB.
const BYTES_BUCKETS: &[f64] = &[
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];
/// A gauge not set for this long disappears (a deleted topic's partitions).
const GAUGE_IDLE: Duration = Duration::from_secs(600);

/// The RPCs we label by name; anything else (a bad path) is "other", so a
/// client cannot grow the label set without bound.
const KNOWN_RPCS: &[&str] = &[
    "strata.v1.Share/ShareHeartbeat",
    "strata.v1.Share/ShareFetch",
    "strata.v1.Share/ShareAcknowledge",
    "strata.v1.Share/ListShareGroups",
    "strata.v1.Share/DescribeShareGroup",
    "strata.v1.Share/ResetShareGroup",
    "strata.v1.Share/DeleteShareGroup",
    "strata.v1.Admin/CreateTopic",
    "strata.v1.Admin/DeleteTopic",
    "strata.v1.Admin/ListTopics",
    "strata.v1.Admin/DescribeTopic",
    "strata.v1.Admin/AlterTopicConfig",
    "strata.v1.Admin/CreatePartitions",
    "strata.v1.Records/Produce",
    "strata.v1.Records/ProduceStream",
    "strata.v1.Records/Fetch",
    "strata.v1.Records/Subscribe",
    "strata.v1.Records/ListOffsets",
    "strata.v1.Records/InitProducer",
    "strata.v1.Groups/Heartbeat",
    "strata.v1.Groups/CommitOffsets",
    "strata.v1.Groups/FetchOffsets",
    "strata.v1.Groups/ListGroups",
    "strata.v1.Groups/DescribeGroup",
    "strata.v1.Groups/ResetOffsets",
    "strata.v1.Groups/DeleteGroup",
    "strata.v1.Security/WhoAmI",
    "strata.v1.Security/CreateUser",
    "strata.v1.Security/DeleteUser",
    "strata.v1.Security/ListUsers",
    "strata.v1.Security/SetScramCredential",
    "strata.v1.Security/DeleteScramCredential",
    "strata.v1.Security/SetPlainCredential",
    "strata.v1.Security/DeletePlainCredential",
    "strata.v1.Security/CreateToken",
    "strata.v1.Security/RevokeToken",
    "strata.v1.Security/ListTokens",
    "strata.v1.Security/CreateAcls",
    "strata.v1.Security/DeleteAcls",
    "strata.v1.Security/ListAcls",
    "strata.v1.Security/SetQuota",
    "strata.v1.Security/ListQuotas",
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
];

/// Installs the process-wide recorder. Call once, before anything records.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS)?
        .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    gauge!("strata_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// Where the broker is in its life, for `/readyz` (and gRPC health).
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

const RECOVERING: u8 = 0;
const SERVING: u8 = 1;
const STOPPING: u8 = 2;

impl Readiness {
    /// Recovery has finished and the gRPC server accepts calls.
    pub fn serving(&self) {
        self.0.store(SERVING, Ordering::Release);
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.0.store(STOPPING, Ordering::Release);
    }
}

/// What the HTTP handlers read.
#[derive(Debug)]
pub struct Scrape {
    handle: PrometheusHandle,
    /// The broker's life stage.
    pub readiness: Readiness,
    /// Set once recovery has finished.
    pub state: OnceLock<(Arc<Broker>, Arc<Coordinator>)>,
}

impl Scrape {
    /// Before recovery: nothing to describe yet.
    pub fn new(handle: PrometheusHandle) -> Self {
        Self {
            handle,
            readiness: Readiness::default(),
            state: OnceLock::new(),
        }
    }
}

/// The HTTP app: `/metrics`, `/healthz`, `/readyz`.
pub fn router(scrape: Arc<Scrape>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(scrape)
}

async fn render(State(s): State<Arc<Scrape>>) -> String {
    if let Some((broker, coordinator)) = s.state.get() {
        let (b, c) = (broker.clone(), coordinator.clone());
        // Reading every partition's and group's figures touches locks the
        // request path uses; do it off the async threads.
        let _ = tokio::task::spawn_blocking(move || collect(&b, &c)).await;
    }
    s.handle.run_upkeep();
    s.handle.render()
}

/// Liveness: the process is up and answering (during recovery too, so an
/// orchestrator does not kill a broker that is replaying a large log).
async fn healthz(State(s): State<Arc<Scrape>>) -> (StatusCode, &'static str) {
    match s.readiness.0.load(Ordering::Acquire) {
        STOPPING => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        _ => (StatusCode::OK, "ok\n"),
    }
}

/// Readiness: the same as gRPC health: SERVING only between the end of
/// recovery and the start of shutdown.
async fn readyz(State(s): State<Arc<Scrape>>) -> (StatusCode, &'static str) {
    match s.readiness.0.load(Ordering::Acquire) {
        SERVING => (StatusCode::OK, "ready\n"),
        RECOVERING => (StatusCode::SERVICE_UNAVAILABLE, "recovering\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}

/// Sets the state gauges: per partition and per group.
fn collect(broker: &Broker, coordinator: &Coordinator) {
    gauge!("strata_response_bytes_held").set(broker.response_budget().held_bytes() as f64);
    for t in broker.topics() {
        for p in t.partitions() {
            let labels = [
                ("topic", t.name().to_string()),
                ("partition", p.id().to_string()),
            ];
            match p.stats() {
                Ok(s) => {
                    gauge!("strata_partition_size_bytes", &labels).set(s.size_bytes as f64);
                    gauge!("strata_partition_segments", &labels).set(f64::from(s.segments));
                    gauge!("strata_partition_start_offset", &labels).set(s.log_start as f64);
                    gauge!("strata_partition_end_offset", &labels).set(s.log_end as f64);
                    gauge!("strata_partition_high_watermark", &labels).set(s.high_watermark as f64);
                    gauge!("strata_partition_unavailable", &labels).set(0.0);
                }
                Err(_) => gauge!("strata_partition_unavailable", &labels).set(1.0),
            }
        }
    }
    for (group, state, members) in coordinator.list() {
        gauge!("strata_group_members", "group" => group.clone()).set(members as f64);
        gauge!("strata_group_stable", "group" => group.clone()).set(if state == "stable" {
            1.0
        } else {
            0.0
        });
        let Ok(offsets) = coordinator.fetch_offsets(&group, Vec::new()) else {
            continue;
        };
        for o in offsets {
            let labels = [
                ("group", group.clone()),
                ("topic", o.tp.0.clone()),
                ("partition", o.tp.1.to_string()),
            ];
            if let Some(c) = &o.committed {
                gauge!("strata_group_committed_offset", &labels).set(c.offset as f64);
            }
            if let Some(lag) = o.lag() {
                gauge!("strata_group_lag", &labels).set(lag as f64);
            }
        }
    }
}

/// Rolled segments whose seal waits for disk space (after a cleanup pass).
pub fn seals_waiting_for_space(n: usize) {
    gauge!("strata_seals_waiting_for_space").set(n as f64);
}

/// Counts a produced batch.
pub fn produced(topic: &str, bytes: usize, records: u64) {
    counter!("strata_topic_bytes_in_total", "topic" => topic.to_string()).increment(bytes as u64);
    counter!("strata_topic_records_in_total", "topic" => topic.to_string()).increment(records);
    histogram!("strata_produce_batch_bytes").record(bytes as f64);
}

/// Counts what a fetch or a subscription sent.
pub fn consumed(topic: &str, bytes: usize, records: u64) {
    if bytes == 0 {
        return;
    }
    counter!("strata_topic_bytes_out_total", "topic" => topic.to_string()).increment(bytes as u64);
    counter!("strata_topic_records_out_total", "topic" => topic.to_string()).increment(records);
}

/// A subscription opened (+1) or ended (-1).
pub fn subscriptions(delta: f64) {
    gauge!("strata_subscriptions_active").increment(delta);
}

/// The RPC's label: its path without the leading slash if known.
fn rpc_label(path: &str) -> &'static str {
    let path = path.trim_start_matches('/');
    KNOWN_RPCS
        .iter()
        .find(|k| **k == path)
        .copied()
        .unwrap_or("other")
}

fn record_status(rpc: &'static str, headers: &http::HeaderMap) {
    let Some(code) = headers.get("grpc-status") else {
        return;
    };
    let code = code.to_str().unwrap_or("?");
    if code != "0" {
        let name = code
            .parse::<i32>()
            .map(|c| format!("{:?}", tonic::Code::from_i32(c)))
            .unwrap_or_else(|_| "Unknown".into());
        counter!("strata_rpc_errors_total", "rpc" => rpc, "code" => name).increment(1);
    }
}

/// A tower layer that counts every gRPC call, its errors by code (from the
/// status in the response headers or trailers) and its latency (to the
/// response headers: for a stream, the time to open it).
#[derive(Debug, Clone, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

/// The service [`RpcMetricsLayer`] wraps around the server.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let rpc = rpc_label(req.uri().path());
        let start = Instant::now();
        // The clone that was made ready is the one that must serve.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let resp = inner.call(req).await?;
            counter!("strata_rpc_requests_total", "rpc" => rpc).increment(1);
            histogram!("strata_rpc_duration_seconds", "rpc" => rpc)
                .record(start.elapsed().as_secs_f64());
            record_status(rpc, resp.headers());
            // A call that did not fail at once carries its status in the
            // trailers.
            Ok(resp.map(|body| {
                Hooked::body(body, move |frame| {
                    if let Some(t) = frame.trailers_ref() {
                        record_status(rpc, t);
                    }
                    Ok(())
                })
            }))
        })
    }
}

/// An accepted connection, counted in `strata_connections_active` for as
/// long as it lives.
#[derive(Debug)]
pub struct Counted<IO>(IO);

impl<IO> Counted<IO> {
    /// Counts `io` until it is dropped.
    pub fn new(io: IO) -> Self {
        gauge!("strata_connections_active").increment(1.0);
        counter!("strata_connections_total").increment(1);
        Self(io)
    }
}

impl<IO> Drop for Counted<IO> {
    fn drop(&mut self) {
        gauge!("strata_connections_active").decrement(1.0);
    }
}

impl<IO: Connected> Connected for Counted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.connect_info()
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn every_rpc_of_the_api_has_its_own_label() {
        let fds =
            prost_types::FileDescriptorSet::decode(strata_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut n = 0;
        for f in &fds.file {
            for s in &f.service {
                for m in &s.method {
                    let path = format!("/{}.{}/{}", f.package(), s.name(), m.name());
                    assert_ne!(
                        rpc_label(&path),
                        "other",
                        "{path} is missing from KNOWN_RPCS"
                    );
                    n += 1;
                }
            }
        }
        assert_eq!(
            n, 42,
            "19 RPCs, the Share service's 7, the Security service's 16"
        );
        assert_eq!(rpc_label("/strata.v1.Records/Nope"), "other");
    }
}
