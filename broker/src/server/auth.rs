//! Authentication, in a tower layer in front of every gRPC service, and the
//! [`Caller`] each handler asks to authorize what it does.
//!
//! The layer reads only the request's headers: the path (which must have a
//! rule in [`super::authz`], or the call is refused) and, with `--auth`
//! on, `authorization: Bearer <token>`. A call that fails is answered at
//! once with UNAUTHENTICATED, before its body is polled: an unauthenticated
//! client never makes the broker buffer a request body (what it may still
//! send is bounded by the HTTP/2 windows and discarded).
//!
//! With mutual TLS, a call without a token runs as the principal its
//! connection's certificate maps to ([`super::listener::Peer`]).
//!
//! Invariant: every call that reaches a handler carries a [`Caller`] in its
//! extensions; a handler that finds none refuses (fails closed).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::http;
use tonic::{Request, Status};

use super::authz::{self, Rule};
use super::listener::Peer;
use super::status::to_status;
use crate::core::BrokerError;
use crate::core::security::failures::FailureLimit;
use crate::core::security::registry::CLIENT_ID_BYTES_MAX;
use crate::core::security::{
    Operation, Principal, QuotaKind, Resource, Security, SecurityError, Session, Throttled,
};
use crate::storage::{Clock, SystemClock};

/// The wall clock in ms, as token expiry counts it.
pub fn now_ms() -> u64 {
    SystemClock.now_ms().max(0) as u64
}

/// Where audit lines go: `RUST_LOG=strata::audit=info` keeps just them.
pub const AUDIT: &str = "strata::audit";

/// The broker's authentication settings and state.
#[derive(Debug)]
pub struct Auth {
    /// `--auth`: calls must present a token. Off: every call runs as the
    /// anonymous super user.
    pub enforced: bool,
    /// Users, tokens and ACLs.
    pub security: Arc<Security>,
    /// Failed token checks per client address (auth_failures_per_min_max).
    pub failures: Arc<FailureLimit>,
}

impl Auth {
    /// The caller of a request with these headers, or the status that
    /// refuses it.
    pub fn admit(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        peer: Option<&Peer>,
    ) -> Result<Option<Caller>, Status> {
        let rule = authz::rule(path).ok_or_else(|| {
            Status::permission_denied(format!("{path} has no authorization rule: refused"))
        })?;
        if matches!(rule, Rule::Public) {
            return Ok(None);
        }
        let cert = peer.and_then(|p| p.cert_principal.as_deref());
        let session = if self.enforced {
            let ip = peer.map(|p| p.addr.ip());
            let session = self.authenticate(path, headers, cert, ip)?;
            if let Some(p) = peer {
                p.authenticated();
            }
            session
        } else {
            Session {
                principal: Principal::anonymous(),
                token_id: None,
                expires_ms: None,
            }
        };
        let caller = Caller {
            session,
            client_id: client_id(headers)?,
            security: self.security.clone(),
            enforced: self.enforced,
        };
        // The requests quota, counted on every call from its headers.
        caller.charge(QuotaKind::Requests, 1).map_err(to_status)?;
        Ok(Some(caller))
    }

    /// A bearer token wins over a client certificate: the certificate
    /// admits the connection, the token names who a call runs as.
    fn authenticate(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        cert: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Session, Status> {
        let fail = |e: SecurityError| {
            tracing::warn!(target: AUDIT, event = "authentication_failed", rpc = path, peer = ?ip, reason = %e);
            to_status(BrokerError::Security(e))
        };
        let value = match (headers.get(http::header::AUTHORIZATION), cert) {
            (None, Some(name)) => {
                return Ok(Session {
                    principal: Principal::user(name),
                    token_id: None,
                    expires_ms: None,
                });
            }
            (v, _) => v,
        };
        let value = value.ok_or_else(|| {
            fail(SecurityError::Unauthenticated(
                "no credentials: send `authorization: Bearer <token>`".into(),
            ))
        })?;
        // Credentials were presented: a guess counts against its address.
        let now = now_ms();
        if let Some(ip) = ip
            && let Err(wait_ms) = self.failures.check(ip, now)
        {
            return Err(fail(SecurityError::Unauthenticated(format!(
                "too many failed attempts from {ip} (auth_failures_per_min_max {}): retry in {wait_ms} ms",
                self.failures.per_min
            ))));
        }
        let checked = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| SecurityError::Unauthenticated("invalid token".into()))
            .and_then(|token| self.security.authenticate(token.trim(), now));
        if checked.is_err()
            && let Some(ip) = ip
        {
            self.failures.failed(ip, now);
        }
        checked.map_err(fail)
    }
}

/// Who a call runs as; handlers authorize through it.
#[derive(Debug, Clone)]
pub struct Caller {
    session: Session,
    /// The call's `strata-client-id`, if any: quotas may name it.
    client_id: Option<Arc<str>>,
    security: Arc<Security>,
    enforced: bool,
}

impl Caller {
    /// The call's client id ("" if it sent none).
    fn client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or("")
    }

    /// The call's principal.
    pub fn principal(&self) -> &Principal {
        &self.session.principal
    }

    /// The token the call presented and when it expires.
    pub fn token(&self) -> (Option<String>, Option<u64>) {
        (self.session.token_id.clone(), self.session.expires_ms)
    }

    /// Whether the caller is a super user (always, with `--auth` off).
    pub fn is_super_user(&self) -> bool {
        !self.enforced || self.security.is_super_user(&self.session.principal)
    }

    /// Whether the caller may do `op` on `r` (for filtering lists).
    pub fn allowed(&self, op: Operation, r: Resource<'_>) -> bool {
        !self.enforced
            || self
                .security
                .authorize(&self.session.principal, op, &r)
                .granted()
    }

    /// The one authorization check every RPC makes: `op` on `r`, or
    /// PERMISSION_DENIED naming both.
    pub fn authorize(&self, op: Operation, r: Resource<'_>) -> Result<(), Status> {
        self.check(op, r).map_err(to_status)
    }

    /// [`Caller::authorize`] as a broker error (for one message of a
    /// stream, or one partition of an answer).
    pub fn check(&self, op: Operation, r: Resource<'_>) -> Result<(), BrokerError> {
        check(
            &self.security,
            &self.session.principal,
            self.enforced,
            op,
            r,
        )
    }

    /// [`Caller::check`] of `op` on each topic.
    pub fn check_topics<'a>(
        &self,
        op: Operation,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), BrokerError> {
        topics
            .into_iter()
            .try_for_each(|t| self.check(op, Resource::topic(t)))
    }

    /// Takes `cost` of the caller's `kind` quota, or refuses with the time
    /// to wait (RESOURCE_EXHAUSTED, `THROTTLED`, retriable).
    pub fn charge(&self, kind: QuotaKind, cost: u64) -> Result<(), BrokerError> {
        self.security
            .charge(
                &self.session.principal,
                self.client_id(),
                kind,
                cost,
                now_ms(),
            )
            .map_err(|t| self.throttled(t))
    }

    /// Takes `cost` after it was served (a fetch's bytes): the next
    /// request waits out any debt.
    pub fn charge_after(&self, kind: QuotaKind, cost: u64) {
        self.security.charge_after(
            &self.session.principal,
            self.client_id(),
            kind,
            cost,
            now_ms(),
        );
    }

    /// Waits until the caller's `kind` quota is out of debt (paces a
    /// stream, where refusing would end it).
    pub async fn pace(&self, kind: QuotaKind) {
        while let Err(BrokerError::Throttled {
            throttle_time_ms, ..
        }) = self.charge(kind, 0)
        {
            tokio::time::sleep(Duration::from_millis(throttle_time_ms)).await;
        }
    }

    fn throttled(&self, t: Throttled) -> BrokerError {
        BrokerError::Throttled {
            principal: self.session.principal.to_string(),
            kind: t.kind,
            rate_per_sec: t.rate_per_sec,
            throttle_time_ms: t.throttle_time_ms,
        }
    }

    /// Resolves (with the status to end a stream with) once the session
    /// stops holding: its token revoked or expired, or its user deleted.
    /// Never, for a session without a token.
    pub async fn ended(&self) -> Status {
        if !self.enforced || self.session.token_id.is_none() {
            return std::future::pending().await;
        }
        let mut revocations = self.security.revocations();
        loop {
            let now = now_ms();
            if let Err(e) = self.security.check_session(&self.session, now) {
                return to_status(BrokerError::Security(e));
            }
            let expiry = self
                .session
                .expires_ms
                .map(|e| e.saturating_sub(now).max(1));
            tokio::select! {
                changed = revocations.changed() => {
                    if changed.is_err() {
                        return std::future::pending().await;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(expiry.unwrap_or(0))), if expiry.is_some() => {}
            }
        }
    }
}

/// The metadata a client names itself with, as Kafka's client.id.
pub const CLIENT_ID_HEADER: &str = "strata-client-id";

/// A call's client id, if it sent one, bounded by `client_id_bytes_max`.
fn client_id(headers: &http::HeaderMap) -> Result<Option<Arc<str>>, Status> {
    let Some(v) = headers.get(CLIENT_ID_HEADER) else {
        return Ok(None);
    };
    let bad = |why: String| to_status(BrokerError::InvalidArgument(why));
    let text = v
        .to_str()
        .map_err(|_| bad(format!("{CLIENT_ID_HEADER} is not visible ASCII")))?;
    if text.len() > CLIENT_ID_BYTES_MAX {
        return Err(bad(format!(
            "{CLIENT_ID_HEADER} is {} bytes, over client_id_bytes_max ({CLIENT_ID_BYTES_MAX})",
            text.len()
        )));
    }
    Ok(Some(Arc::from(text)))
}

/// The caller the layer put on a request.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("no caller on this call: refused"))
}

/// The layer that runs [`Auth::admit`] on every call.
#[derive(Debug, Clone)]
pub struct AuthLayer(pub Arc<Auth>);

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            auth: self.0.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around the server.
#[derive(Debug, Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: Arc<Auth>,
}

impl<S, B> tower::Service<http::Request<B>> for Authenticated<S>
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

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let peer = req.extensions().get::<Peer>();
        match self.auth.admit(req.uri().path(), req.headers(), peer) {
            Ok(caller) => {
                if let Some(c) = caller {
                    req.extensions_mut().insert(c);
                }
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { inner.call(req).await })
            }
            // Answered from the headers alone: the body is dropped unread.
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

/// The one authorization check, for the gRPC and the Kafka listener: `op`
/// on `r` for `p` (anything, when `enforced` is off), or a denial naming
/// both, with its audit line.
pub fn check(
    security: &Security,
    p: &Principal,
    enforced: bool,
    op: Operation,
    r: Resource<'_>,
) -> Result<(), BrokerError> {
    if !enforced || security.authorize(p, op, &r).granted() {
        return Ok(());
    }
    tracing::info!(target: AUDIT, event = "denied", principal = %p, ?op, resource = %r);
    Err(BrokerError::Security(SecurityError::Denied {
        principal: p.to_string(),
        operation: op,
        resource_type: r.resource_type,
        name: r.name.to_string(),
    }))
}
