//! One Kafka connection: requests are read and handled one at a time, in
//! arrival order, and answered in that order, as Kafka clients expect.
//!
//! A produce request is written to its logs before the next request is
//! read (so an idempotent producer's pipelined batches reach the log in
//! the order it sent them), but its fsync is awaited on the answer side:
//! the writer task awaits each answer in turn, so the fsyncs of several
//! pipelined produce requests overlap and group-commit while the order of
//! answers stays the order of requests.
//!
//! Each request passes [`gate`] first: the SASL requests are answered
//! there, and under --auth nothing else is served before the connection
//! authenticates; then `authorize::check` before its handler runs.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

use super::frame::{self, ParseError, Request};
use super::sasl::{Identity, SASL_REQUEST_BYTES_MAX, Sasl};
use super::{
    Kafka, admin, authorize, consumer_group, error, fetch, groups, metadata, produce, quota,
    refuse, versions,
};
use crate::core::security::{Principal, QuotaKind};
use crate::server::auth::AUDIT;
use crate::server::listener::{Conn, Peer};

/// Answers a connection may have due (written, not yet sent) before the
/// broker stops reading its requests: back-pressure, not an error.
/// librdkafka keeps at most 5 produce requests in flight per connection.
pub const ANSWERS_IN_FLIGHT_MAX: usize = 16;

/// What a request is answered with.
#[derive(Debug)]
pub enum Reply {
    /// This frame, in pieces (a fetch answer's batches are not copied).
    Send(Vec<Bytes>),
    /// Nothing (a produce with acks=0).
    Nothing,
    /// Close the connection (an answer that could not be encoded).
    Close,
}

/// A reply that may still be completing (a produce awaiting its fsync).
pub type Answer = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// An answer that is ready now.
pub fn ready(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: impl Into<ResponseKind>,
) -> Answer {
    let reply = encode(api, version, correlation_id, body.into());
    Box::pin(std::future::ready(reply))
}

/// Encodes a response, or asks to close the connection if it cannot be
/// (a bug: a field set outside the versions that have it).
pub fn encode(api: ApiKey, version: i16, correlation_id: i32, body: ResponseKind) -> Reply {
    match frame::encode(api, version, correlation_id, &body) {
        Ok(b) => Reply::Send(vec![b]),
        Err(e) => {
            tracing::error!(?api, version, error = %format!("{e:#}"), "encoding a kafka response failed; closing the connection");
            Reply::Close
        }
    }
}

/// What [`gate`] makes of a request.
enum Gate {
    /// Handle it, as this principal.
    Handle(Box<Request>, Principal),
    /// Answered (a SASL request).
    Answer(Answer),
    /// Answered, then the connection closes (a failed login).
    AnswerThenClose(Answer),
    /// Close the connection without an answer.
    Close,
}

/// The SASL requests, and who may send the rest.
async fn gate(k: &Kafka, sasl: &mut Sasl, peer: &Peer, req: Request) -> Gate {
    let (api, v, corr) = (req.api, req.version, req.correlation_id);
    match &req.body {
        RequestKind::SaslHandshake(r) => {
            return Gate::Answer(ready(api, v, corr, sasl.handshake(r, peer.tls)));
        }
        RequestKind::SaslAuthenticate(r) => {
            let a = sasl.authenticate(k, peer.addr.ip(), r).await;
            if sasl.identity.is_some() {
                peer.authenticated();
            }
            let answer = ready(api, v, corr, a.response);
            return if a.close {
                Gate::AnswerThenClose(answer)
            } else {
                Gate::Answer(answer)
            };
        }
        _ => {}
    }
    let Some(id) = &sasl.identity else {
        if api == ApiKey::ApiVersions {
            return Gate::Handle(Box::new(req), Principal::anonymous());
        }
        tracing::warn!(target: AUDIT, event = "connection_closed", listener = "kafka", peer = %peer.addr, ?api,
            reason = "a request before SASL authentication");
        return Gate::Close;
    };
    if let Some(user_id) = id.user_id
        && !k.auth.security.user_exists(user_id)
    {
        tracing::warn!(target: AUDIT, event = "connection_closed", listener = "kafka", peer = %peer.addr,
            principal = %id.principal, reason = "its user was deleted");
        return Gate::Close;
    }
    Gate::Handle(Box::new(req), id.principal.clone())
}

/// Who a new connection is before any SASL: the anonymous super user
/// without --auth; with it, its certificate's principal (mutual TLS) or
/// no one yet.
fn first_identity(k: &Kafka, peer: &Peer) -> Option<Identity> {
    if !k.auth.enforced {
        return Some(Identity {
            principal: Principal::anonymous(),
            user_id: None,
        });
    }
    let name = peer.cert_principal.as_deref()?;
    peer.authenticated();
    Some(Identity {
        principal: Principal::user(name),
        user_id: None,
    })
}

/// Serves one connection until the client closes it, sends something that
/// is not a request we serve, or the broker shuts down.
pub async fn run(kafka: &Arc<Kafka>, conn: Conn) {
    let peer_info = conn.peer().clone();
    let peer = peer_info.addr;
    let mut sasl = Sasl::new(first_identity(kafka, &peer_info));
    let (rd, wr) = tokio::io::split(conn);
    // Small pieces gather in the buffer; a large one (a batch) goes
    // straight to the socket after what is buffered.
    let mut wr = BufWriter::with_capacity(64 << 10, wr);
    let mut rd = BufReader::with_capacity(64 << 10, rd);
    let (tx, mut rx) = mpsc::channel::<Answer>(ANSWERS_IN_FLIGHT_MAX);
    let writer = tokio::spawn(async move {
        while let Some(answer) = rx.recv().await {
            match answer.await {
                Reply::Send(pieces) => {
                    for b in pieces {
                        if wr.write_all(&b).await.is_err() {
                            return;
                        }
                    }
                    if wr.flush().await.is_err() {
                        return;
                    }
                }
                Reply::Nothing => {}
                Reply::Close => return,
            }
        }
    });
    let request_max = kafka.settings.request_bytes_max;
    let mut mute_ms = 0;
    loop {
        let (max, limit) = if sasl.identity.is_some() {
            (request_max, "request_bytes_max")
        } else {
            (
                SASL_REQUEST_BYTES_MAX.min(request_max),
                "sasl_request_bytes_max",
            )
        };
        let read = tokio::select! {
            r = frame::read(&mut rd, max, limit) => r,
            _ = kafka.shutdown.cancelled() => break,
            _ = tx.closed() => break,
        };
        let frame = match read {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "kafka connection closed");
                break;
            }
        };
        let answer = match frame::parse(frame) {
            Ok(req) => match gate(kafka, &mut sasl, &peer_info, req).await {
                Gate::Handle(req, principal) => {
                    handle(kafka, *req, peer, &principal, &mut mute_ms).await
                }
                Gate::Answer(a) => a,
                Gate::AnswerThenClose(a) => {
                    let _ = tx.send(a).await;
                    break;
                }
                Gate::Close => break,
            },
            // KIP-511: answer at v0 with our versions; the client retries.
            Err(ParseError::UnsupportedVersion {
                api: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => ready(
                ApiKey::ApiVersions,
                0,
                correlation_id,
                versions::api_versions(Some(ResponseError::UnsupportedVersion)),
            ),
            // Another served API past its range: refused in its own
            // terms, at its own version, where that decodes.
            Err(ParseError::UnsupportedVersion {
                api,
                version,
                correlation_id,
                request,
                ..
            }) => match request.and_then(|r| refuse::unsupported(*r)) {
                Some(body) => {
                    tracing::info!(%peer, ?api, version, "kafka request at an unsupported version refused");
                    Box::pin(std::future::ready(encode(
                        api,
                        version,
                        correlation_id,
                        body,
                    )))
                }
                None => {
                    tracing::warn!(%peer, ?api, version, "kafka request at a version that does not decode; closing the connection");
                    break;
                }
            },
            Err(e) => {
                tracing::warn!(%peer, error = %e, "kafka request refused; closing the connection");
                break;
            }
        };
        if tx.send(answer).await.is_err() {
            break;
        }
        // Over a quota: read nothing more until the debt is paid (KIP-219).
        if mute_ms > 0 {
            let muted = tokio::time::sleep(std::time::Duration::from_millis(mute_ms));
            tokio::select! {
                _ = muted => {}
                _ = kafka.shutdown.cancelled() => break,
            }
            mute_ms = 0;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// Handles one request; its answer may still be completing. `mute_ms`:
/// how long the connection then waits before reading the next request
/// (a quota in debt).
async fn handle(
    k: &Arc<Kafka>,
    req: Request,
    peer: SocketAddr,
    principal: &Principal,
    mute_ms: &mut u64,
) -> Answer {
    let Request {
        api,
        version,
        correlation_id,
        client_id,
        mut body,
    } = req;
    let v = version;
    tracing::debug!(%peer, ?api, version, correlation_id, client = %client_id, %principal, "kafka request");
    let done = |body: ResponseKind| ready(api, v, correlation_id, body);
    *mute_ms = quota::charge(k, principal, &client_id, &[(QuotaKind::Requests, 1)]);
    if let Err(e) = authorize::check(k, principal, &mut body) {
        let c = error::code(error::of(&e));
        return match refuse::refusal(body, c) {
            Some(answer) => done(answer),
            None => Box::pin(std::future::ready(Reply::Close)),
        };
    }
    match body {
        RequestKind::ApiVersions(_) => done(versions::api_versions(None).into()),
        RequestKind::Produce(r) => {
            let bytes = quota::produce_bytes(&r);
            let wait_ms = quota::charge(
                k,
                principal,
                &client_id,
                &[(QuotaKind::ProduceBytes, bytes)],
            );
            *mute_ms = (*mute_ms).max(wait_ms);
            produce::produce(k, r, v, correlation_id, *mute_ms as i32).await
        }
        RequestKind::Fetch(r) => {
            let mut answer = fetch::fetch(k, r, v).await;
            let fetched = quota::fetch_bytes(&answer);
            let wait_ms = quota::charge(
                k,
                principal,
                &client_id,
                &[(QuotaKind::FetchBytes, fetched)],
            );
            *mute_ms = (*mute_ms).max(wait_ms);
            answer.throttle_time_ms = *mute_ms as i32;
            let reply = match fetch::encode_response(v, correlation_id, answer) {
                Ok(pieces) => Reply::Send(pieces),
                Err(e) => {
                    tracing::error!(version = v, error = %format!("{e:#}"), "encoding a kafka fetch answer failed; closing the connection");
                    Reply::Close
                }
            };
            Box::pin(std::future::ready(reply))
        }
        RequestKind::ListOffsets(r) => done(fetch::list_offsets(k, r, v).await.into()),
        RequestKind::Metadata(r) => {
            let all = r.topics.is_none();
            let mut answer = metadata::metadata(k, r, v).await;
            authorize::filter_metadata(k, principal, all, &mut answer);
            done(answer.into())
        }
        RequestKind::FindCoordinator(r) => done(metadata::find_coordinator(k, r, v).into()),
        RequestKind::InitProducerId(r) => done(metadata::init_producer_id(k, r).await.into()),
        RequestKind::CreateTopics(r) => done(admin::create_topics(k, r, v).await.into()),
        RequestKind::DeleteTopics(r) => done(admin::delete_topics(k, r, v).await.into()),
        RequestKind::CreatePartitions(r) => done(admin::create_partitions(k, r).await.into()),
        RequestKind::DescribeConfigs(r) => done(admin::describe_configs(k, r, v).into()),
        RequestKind::AlterConfigs(r) => done(admin::alter_configs(k, r).await.into()),
        RequestKind::IncrementalAlterConfigs(r) => {
            done(admin::incremental_alter_configs(k, r).await.into())
        }
        RequestKind::JoinGroup(r) => {
            done(groups::join_group(k, r, v, &client_id, peer).await.into())
        }
        RequestKind::SyncGroup(r) => done(groups::sync_group(k, r, v).await.into()),
        RequestKind::Heartbeat(r) => done(groups::heartbeat(k, r).into()),
        RequestKind::LeaveGroup(r) => done(groups::leave_group(k, r, v).into()),
        RequestKind::OffsetCommit(r) => done(groups::offset_commit(k, r, v).await.into()),
        RequestKind::OffsetFetch(r) => done(groups::offset_fetch(k, r, v).await.into()),
        RequestKind::ListGroups(r) => {
            let mut answer = groups::list_groups(k, r);
            authorize::filter_groups(k, principal, &mut answer);
            done(answer.into())
        }
        RequestKind::DescribeGroups(r) => done(groups::describe_groups(k, r, v).into()),
        RequestKind::DeleteGroups(r) => done(groups::delete_groups(k, r).await.into()),
        RequestKind::ConsumerGroupHeartbeat(r) => done(
            consumer_group::heartbeat(k, r, &client_id, peer)
                .await
                .into(),
        ),
        other => {
            // frame::parse admits only served APIs, and each has an arm.
            tracing::error!(?api, request = ?std::mem::discriminant(&other), "no handler for a served kafka api");
            Box::pin(std::future::ready(Reply::Close))
        }
    }
}
