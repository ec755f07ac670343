//! SASL on the Kafka listener: SaslHandshake (v1) then SaslAuthenticate
//! round trips, with SCRAM-SHA-256 and SCRAM-SHA-512 over the credentials
//! `strata user scram-set` stores (`core::security::scram` runs the
//! exchange). A connection's principal is the SASL user's `User:<name>`,
//! or its client certificate's mapped name on a mutual-TLS connection that
//! does not authenticate with SASL.
//!
//! With `--auth`, only ApiVersions and the SASL requests are answered
//! before a connection authenticates; anything else closes it, as Kafka
//! does. Frames before authentication are bounded by
//! `sasl_request_bytes_max`, failed logins count against the address's
//! `auth_failures_per_min_max` (shared with the gRPC listener), and a
//! failure answers SASL_AUTHENTICATION_FAILED, the same words for a wrong
//! password and an unknown user, then closes the connection.
//!
//! Not served: PLAIN (it needs a password hash at rest, Argon2id, not
//! built yet), SaslHandshake v0 (raw SASL frames), KIP-368
//! re-authentication (a session holds until its user is deleted, checked
//! on every request).

use std::net::IpAddr;

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Kafka;
use super::error::code;
use crate::core::security::Principal;
use crate::core::security::scram::{Mechanism, ScramError, ServerExchange};
use crate::server::auth::{AUDIT, now_ms};

/// The largest frame read before a connection authenticates
/// (sasl_request_bytes_max): a SCRAM message is well under 4 KiB.
pub const SASL_REQUEST_BYTES_MAX: u32 = 64 * 1024;

/// The mechanisms served, as SaslHandshake lists them.
const MECHANISMS: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

/// Who a connection runs as.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The principal.
    pub principal: Principal,
    /// The SASL user's id: the session ends when that user is deleted.
    pub user_id: Option<u64>,
}

#[derive(Debug)]
enum Stage {
    /// Nothing asked yet.
    Start,
    /// SaslHandshake named this mechanism.
    Handshaken(Mechanism),
    /// client-first answered; client-final due.
    Exchanging(Box<ServerExchange>),
    /// Done (or failed: the connection is closing).
    Over,
}

/// One connection's SASL state.
#[derive(Debug)]
pub struct Sasl {
    stage: Stage,
    /// Set once the connection has authenticated (or, without SASL, is
    /// the certificate's or the anonymous principal).
    pub identity: Option<Identity>,
}

/// A SaslAuthenticate answer, and whether the connection closes after it.
#[derive(Debug)]
pub struct Answer {
    /// The response.
    pub response: SaslAuthenticateResponse,
    /// Close after sending it (a failed login).
    pub close: bool,
}

fn names() -> Vec<StrBytes> {
    MECHANISMS
        .iter()
        .map(|m| StrBytes::from_static_str(m.name()))
        .collect()
}

fn failed(e: E, message: String) -> Answer {
    Answer {
        response: SaslAuthenticateResponse::default()
            .with_error_code(code(e))
            .with_error_message(Some(StrBytes::from_string(message))),
        close: true,
    }
}

impl Sasl {
    /// A connection that starts as `identity` (a certificate's principal,
    /// the anonymous one without --auth) or unauthenticated (`None`).
    pub fn new(identity: Option<Identity>) -> Self {
        Self {
            stage: Stage::Start,
            identity,
        }
    }

    /// SaslHandshake: the mechanism, or UNSUPPORTED_SASL_MECHANISM with
    /// the ones served.
    pub fn handshake(&mut self, r: &SaslHandshakeRequest) -> SaslHandshakeResponse {
        let answer = SaslHandshakeResponse::default().with_mechanisms(names());
        if !matches!(self.stage, Stage::Start) {
            return answer.with_error_code(code(E::IllegalSaslState));
        }
        match Mechanism::parse(&r.mechanism) {
            Some(m) => {
                self.stage = Stage::Handshaken(m);
                answer
            }
            None => answer.with_error_code(code(E::UnsupportedSaslMechanism)),
        }
    }

    /// One SaslAuthenticate round trip.
    pub fn authenticate(&mut self, k: &Kafka, ip: IpAddr, r: &SaslAuthenticateRequest) -> Answer {
        let now = now_ms();
        match std::mem::replace(&mut self.stage, Stage::Over) {
            Stage::Handshaken(m) => {
                if let Err(wait_ms) = k.auth.failures.check(ip, now) {
                    tracing::warn!(target: AUDIT, event = "authentication_failed", listener = "kafka", peer = %ip,
                        limit = "auth_failures_per_min_max", wait_ms);
                    return failed(
                        E::SaslAuthenticationFailed,
                        format!(
                            "too many failed attempts from {ip} (auth_failures_per_min_max {}): retry in {wait_ms} ms",
                            k.auth.failures.per_min
                        ),
                    );
                }
                let security = &k.auth.security;
                let nonce = match crate::core::security::token::random::<24>() {
                    Ok(b) => b.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    Err(e) => return failed(E::SaslAuthenticationFailed, e.to_string()),
                };
                let secret = security.scram_secret();
                let started = ServerExchange::start(m, &r.auth_bytes, &nonce, &secret, |user| {
                    security.scram_credential(user, m).map(|(c, _)| c)
                });
                match started {
                    Ok((exchange, server_first)) => {
                        self.stage = Stage::Exchanging(Box::new(exchange));
                        Answer {
                            response: SaslAuthenticateResponse::default()
                                .with_auth_bytes(Bytes::from(server_first)),
                            close: false,
                        }
                    }
                    Err(e) => self.refuse(k, ip, m, e, now),
                }
            }
            Stage::Exchanging(exchange) => {
                let m = exchange.mechanism();
                match (*exchange).finish(&r.auth_bytes) {
                    Ok((user, server_final)) => {
                        let Some((_, id)) = k.auth.security.scram_credential(&user, m) else {
                            // Deleted between the two round trips.
                            return self.refuse(k, ip, m, ScramError::Failed, now);
                        };
                        tracing::info!(target: AUDIT, event = "authenticated", listener = "kafka", peer = %ip, %user, mechanism = m.name());
                        self.identity = Some(Identity {
                            principal: Principal::user(&user),
                            user_id: Some(id),
                        });
                        Answer {
                            response: SaslAuthenticateResponse::default()
                                .with_auth_bytes(Bytes::from(server_final)),
                            close: false,
                        }
                    }
                    Err(e) => self.refuse(k, ip, m, e, now),
                }
            }
            Stage::Start | Stage::Over => failed(
                E::IllegalSaslState,
                "SaslAuthenticate without a SaslHandshake first (or after the login)".into(),
            ),
        }
    }

    fn refuse(&mut self, k: &Kafka, ip: IpAddr, m: Mechanism, e: ScramError, now: u64) -> Answer {
        k.auth.failures.failed(ip, now);
        tracing::warn!(target: AUDIT, event = "authentication_failed", listener = "kafka", peer = %ip, mechanism = m.name(), reason = %e);
        let message = match e {
            ScramError::Failed => format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                m.name()
            ),
            ScramError::Malformed(why) => format!("{}: {why}", m.name()),
        };
        failed(E::SaslAuthenticationFailed, message)
    }
}
