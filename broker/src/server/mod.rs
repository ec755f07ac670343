//! The broker's server: configuration, the gRPC services, startup and
//! graceful shutdown.
//!
//! - [`config`]: flags, environment and TOML file.
//! - [`admin`], [`records`] and [`groups`]: the three `strata.v1` services.
//! - [`status`]: the one place errors become gRPC statuses.
//! - [`request_limit`]: `request_bytes_max` on every message's length
//!   prefix, before tonic buffers it.
//! - [`body`]: an HTTP body with a hook on each frame (request limits,
//!   status metrics).
//! - [`metrics`]: Prometheus metrics and the `/healthz` and `/readyz` probes.
//! - [`auth`]: authentication of every call's headers (a tower layer) and
//!   the `Caller` handlers authorize through; [`authz`]: each RPC's rule;
//!   [`security`]: the `strata.v1.Security` service (users, tokens, ACLs);
//!   [`security_args`]: `--auth`, the loopback rule, the first admin.
//! - [`listener`]: the gRPC accept loop (connection limits, the TLS
//!   handshake, each connection's peer); [`tls`]: the rustls
//!   configuration, reloaded on SIGHUP; [`listener_args`]: their flags.
//!
//! The Kafka protocol listener ([`crate::kafka`]) is started here too, on
//! the same broker and coordinator, after recovery.
//!
//! Startup: serve metrics and probes (`/readyz` says "recovering"), print
//! `strata-broker metrics on ADDR`, recover every partition and the groups
//! (blocking), bind, print `strata-broker listening on ADDR`, report
//! SERVING on gRPC health and `/readyz`.
//! Shutdown (SIGINT or SIGTERM): report NOT_SERVING, stop accepting, end
//! long-polls and subscriptions, let in-flight calls finish (bounded by
//! `--shutdown-timeout-ms`), close every log cleanly, return.

pub mod admin;
pub mod auth;
pub mod authz;
pub mod body;
pub mod config;
pub mod groups;
pub mod listener;
pub mod listener_args;
pub mod metrics;
pub mod produce;
pub mod records;
pub mod request_limit;
pub mod security;
pub mod security_args;
pub mod share;
pub mod share_args;
pub mod status;
pub mod tls;

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use strata_proto::v1::admin_server::AdminServer;
use strata_proto::v1::groups_server::GroupsServer;
use strata_proto::v1::records_server::RecordsServer;
use strata_proto::v1::security_server::SecurityServer;
use strata_proto::v1::share_server::ShareServer;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;

pub use config::Args;

use crate::core::Broker;
use crate::core::groups::Coordinator;
use crate::storage::{Clock, SystemClock};

/// How often interval-durability partitions are checked for a due fsync.
const FLUSH_CHECK_MS: u64 = 50;

/// Runs `f` on a blocking thread (the core is synchronous: it waits for
/// fsyncs) and turns its error into the call's status.
pub(crate) async fn blocking<S, T>(
    state: &Arc<S>,
    f: impl FnOnce(&S) -> crate::core::error::Result<T> + Send + 'static,
) -> Result<T, tonic::Status>
where
    S: Send + Sync + 'static,
    T: Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| {
            status::to_status(crate::core::BrokerError::Internal(format!(
                "blocking task failed: {e}"
            )))
        })?
        .map_err(status::to_status)
}

/// Reloads the TLS files on every SIGHUP until `token` is cancelled
/// (without TLS, SIGHUP is logged and ignored rather than ending the
/// process).
fn reload_on_sighup(
    tls: Option<Arc<tls::Tls>>,
    token: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let token = token.clone();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                got = hup.recv() => if got.is_none() { return },
                _ = token.cancelled() => return,
            }
            let Some(tls) = &tls else {
                tracing::info!("SIGHUP: no TLS configured, nothing to reload");
                continue;
            };
            // Also on stdout, next to the startup lines, for scripts and tests.
            match tls.reload() {
                Ok(()) => {
                    tracing::info!("SIGHUP: TLS certificate, key and CA reloaded");
                    println!("strata-broker tls reloaded");
                }
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "SIGHUP: TLS reload failed; the previous files stay in use"
                    );
                    println!("strata-broker tls reload failed: {e:#}");
                }
            }
            std::io::stdout().flush().ok();
        }
    }))
}

/// Runs `work` on a blocking thread every `ms` milliseconds (a late tick
/// is delayed, not doubled) until `token` is cancelled.
fn every_ms(
    ms: u64,
    token: &CancellationToken,
    work: impl Fn() + Clone + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let token = token.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = token.cancelled() => return,
            }
            let _ = tokio::task::spawn_blocking(work.clone()).await;
        }
    })
}

/// A future that resolves when the broker should shut down.
pub type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs the broker until `shutdown` resolves, then shuts down gracefully.
///
/// Not generic over the shutdown future: the whole server is compiled once,
/// here, instead of again in every binary that calls it (the release build
/// in CI spent most of a minute on that copy).
pub async fn run(args: Args, shutdown: Shutdown) -> anyhow::Result<()> {
    args.validate()?;
    let options = args.broker_options();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %options.data_dir.display(),
        listen = %args.listen,
        metrics_listen = %if args.no_metrics { "off".to_string() } else { args.metrics_listen.to_string() },
        ?args,
        "starting strata-broker"
    );
    let token = CancellationToken::new();
    // The data directory's lock first: a second broker on it must fail on
    // that, not on a port the first one holds.
    let lock = {
        let (fs, dir) = (options.fs.clone(), options.data_dir.clone());
        tokio::task::spawn_blocking(move || Broker::lock(&*fs, &dir))
            .await
            .context("lock task")??
    };
    // Stops the metrics endpoint once everything else has stopped, so
    // `/readyz` answers "shutting down" while calls drain.
    let metrics_stop = CancellationToken::new();
    // Probes and metrics come up first, so an orchestrator sees a broker
    // that is recovering rather than one that does not answer.
    let scrape = if args.no_metrics {
        None
    } else {
        let scrape = Arc::new(metrics::Scrape::new(metrics::install()?));
        let listener = tokio::net::TcpListener::bind(args.metrics_listen)
            .await
            .with_context(|| format!("binding the metrics address {}", args.metrics_listen))?;
        let addr = listener.local_addr()?;
        let app = metrics::router(scrape.clone());
        let stop = metrics_stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
        tracing::info!(%addr, "metrics and probes on /metrics, /healthz, /readyz");
        println!("strata-broker metrics on {addr}");
        std::io::stdout().flush().ok();
        Some(scrape)
    };
    let security = {
        let (fs, dir) = (options.fs.clone(), options.data_dir.clone());
        let (limits, supers) = (args.security.limits(), args.security.super_users()?);
        let security = tokio::task::spawn_blocking(move || {
            crate::core::security::Security::open(fs, dir, limits, supers)
        })
        .await
        .context("security state task")??;
        args.security.bootstrap(&security, auth::now_ms())?;
        Arc::new(security)
    };
    let failures = Arc::new(args.security.failure_limit());
    let auth = Arc::new(auth::Auth {
        enforced: args.security.auth,
        security: security.clone(),
        failures: failures.clone(),
    });
    let broker = Arc::new(
        tokio::task::spawn_blocking(move || Broker::open_locked(options, lock))
            .await
            .context("recovery task")??,
    );
    let coordinator = {
        let (broker, settings) = (broker.clone(), args.group_settings());
        Arc::new(
            tokio::task::spawn_blocking(move || Coordinator::open(broker, settings))
                .await
                .context("groups recovery task")??,
        )
    };
    let topics = broker.topics();
    tracing::info!(
        topics = topics.len(),
        partitions = topics.iter().map(|t| t.partitions().len()).sum::<usize>(),
        "recovery finished"
    );

    if let Some(s) = &scrape {
        let _ = s.state.set((broker.clone(), coordinator.clone()));
    }
    let tls = args.listener.tls()?.map(Arc::new);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let reloader = reload_on_sighup(tls.clone(), &token)?;
    let kafka = if args.no_kafka {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(args.kafka_listen)
            .await
            .with_context(|| format!("binding the Kafka address {}", args.kafka_listen))?;
        let bound = listener.local_addr()?;
        let state = Arc::new(crate::kafka::Kafka::new(
            broker.clone(),
            coordinator.clone(),
            records::RecordsService::new(broker.clone(), token.clone(), 0),
            produce::Producing::new(broker.clone(), token.clone(), produce::LoseHook::new(0)),
            args.kafka_settings(bound)?,
            crate::kafka::KafkaAuth {
                security: security.clone(),
                failures,
                enforced: args.security.auth,
            },
            token.clone(),
        ));
        Some((listener, bound, state))
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    // Reflection in both versions: grpcurl and most tools speak v1, but
    // Python's grpcio-reflection and older GUI clients only v1alpha.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(strata_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(strata_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("building the v1alpha reflection service")?;
    let request_max = args.request_bytes_max as usize;
    // A fetch response holds up to fetch_bytes_max of batches plus framing.
    let response_max = args.fetch_bytes_max as usize + (1 << 20);
    let admin = AdminServer::new(admin::AdminService::new(broker.clone()))
        .max_decoding_message_size(request_max)
        .max_encoding_message_size(response_max);
    let records = RecordsServer::new(records::RecordsService::new(
        broker.clone(),
        token.clone(),
        args.test_lose_produce_responses,
    ))
    .max_decoding_message_size(request_max)
    .max_encoding_message_size(response_max);
    let groups = GroupsServer::new(groups::GroupsService::new(coordinator.clone()))
        .max_decoding_message_size(request_max)
        .max_encoding_message_size(response_max);
    let share = ShareServer::new(share::ShareService::new(
        coordinator.clone(),
        token.clone(),
        args.fetch_wait_ms_max,
        args.batch_decompressed_bytes_max,
    ))
    .max_decoding_message_size(request_max)
    .max_encoding_message_size(response_max);
    let security_service = SecurityServer::new(security::SecurityService::new(security))
        .max_decoding_message_size(request_max)
        .max_encoding_message_size(response_max);

    // Expires members whose session ran out, and follows topics that grow.
    let group_ticker = {
        let c = coordinator.clone();
        every_ms(args.group_check_interval_ms, &token, move || {
            if let Err(e) = c.tick() {
                tracing::error!(error = %e, "group expiry failed");
            }
        })
    };
    let flusher = {
        let b = broker.clone();
        every_ms(FLUSH_CHECK_MS, &token, move || b.flush_due())
    };
    // Retention and compaction, of topics and of the groups log.
    let retention = {
        let (b, c) = (broker.clone(), coordinator.clone());
        every_ms(args.retention_check_interval_ms, &token, move || {
            let now = SystemClock.now_ms();
            let done = b.apply_cleanup(now);
            metrics::seals_waiting_for_space(done.seals_waiting_for_space);
            if let Err(e) = c.compact_if_due(now) {
                tracing::error!(error = %e, "compacting the groups log failed");
            }
        })
    };

    let stop = {
        let (token, health, scrape) = (token.clone(), health.clone(), scrape.clone());
        async move {
            shutdown.await;
            tracing::info!("shutting down: refusing new calls, finishing in-flight ones");
            if let Some(s) = &scrape {
                s.readiness.stopping();
            }
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            health
                .set_not_serving::<RecordsServer<records::RecordsService>>()
                .await;
            health
                .set_not_serving::<AdminServer<admin::AdminService>>()
                .await;
            health
                .set_not_serving::<GroupsServer<groups::GroupsService>>()
                .await;
            health
                .set_not_serving::<ShareServer<share::ShareService>>()
                .await;
            health
                .set_not_serving::<SecurityServer<security::SecurityService>>()
                .await;
            token.cancel();
        }
    };
    let server = tonic::transport::Server::builder()
        .layer(tower::util::MapRequestLayer::new(
            request_limit::limit_requests(args.request_bytes_max),
        ))
        .layer(metrics::RpcMetricsLayer)
        // Before any body is read: see `auth`.
        .layer(auth::AuthLayer(auth))
        .tcp_nodelay(true)
        .initial_stream_window_size(args.http2_stream_window_bytes)
        .initial_connection_window_size(args.http2_connection_window_bytes)
        .max_frame_size(args.http2_frame_bytes)
        .max_concurrent_streams(args.streams_per_connection_max)
        .http2_max_header_list_size(args.listener.request_headers_bytes_max)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(admin)
        .add_service(records)
        .add_service(groups)
        .add_service(share)
        .add_service(security_service)
        // Our own accept loop (limits, TLS, the peer's principal), which
        // sets TCP_NODELAY itself: tonic's setting above does not reach it.
        .serve_with_incoming_shutdown(
            listener::incoming(
                listener,
                tls.clone(),
                args.listener.limits(args.security.auth),
                token.clone(),
            )
            .map(|conn| conn.map(metrics::Counted::new)),
            stop,
        );

    health.set_service_status("", ServingStatus::Serving).await;
    health
        .set_serving::<RecordsServer<records::RecordsService>>()
        .await;
    health
        .set_serving::<AdminServer<admin::AdminService>>()
        .await;
    health
        .set_serving::<GroupsServer<groups::GroupsService>>()
        .await;
    health
        .set_serving::<ShareServer<share::ShareService>>()
        .await;
    health
        .set_serving::<SecurityServer<security::SecurityService>>()
        .await;
    if let Some(s) = &scrape {
        s.readiness.serving();
    }
    let kafka_served = kafka.map(|(listener, bound, state)| {
        tracing::info!(%bound, advertised = %format!("{}:{}", state.settings.advertised_host, state.settings.advertised_port), "kafka protocol listener");
        println!("strata-broker kafka on {bound}");
        // The gRPC listener's accept loop: the same connection limits,
        // TLS (and SIGHUP reloads) and client-certificate principals.
        let incoming = listener::incoming(
            listener,
            tls.clone(),
            args.listener.limits(args.security.auth),
            token.clone(),
        );
        tokio::spawn(crate::kafka::serve(incoming, state))
    });
    tracing::info!(%addr, tls = tls.is_some(), "serving");
    println!("strata-broker listening on {addr}");
    std::io::stdout().flush().ok();

    let served = tokio::spawn(server);
    let served = tokio::select! {
        r = served => r,
        _ = async {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_millis(args.shutdown_timeout_ms)).await;
        } => {
            tracing::warn!(timeout_ms = args.shutdown_timeout_ms, "in-flight calls did not finish in time; closing anyway");
            Ok(Ok(()))
        }
    };
    token.cancel();
    if let Some(k) = kafka_served {
        let _ = k.await;
    }
    let _ = reloader.await;
    let _ = flusher.await;
    let _ = retention.await;
    let _ = group_ticker.await;
    let closed = tokio::task::spawn_blocking(move || {
        let groups = coordinator.close();
        broker.close().and(groups)
    })
    .await
    .context("close task")?;
    metrics_stop.cancel();
    served.context("server task")?.context("gRPC server")?;
    closed?;
    tracing::info!("stopped cleanly");
    Ok(())
}
