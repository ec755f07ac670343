//! SASL on the Kafka listener: SaslHandshake (v1) then SaslAuthenticate
//! round trips, with SCRAM-SHA-256 and SCRAM-SHA-512 over the credentials
//! `strata user scram-set` stores (`core::security::scram` runs the
//! exchange), and PLAIN, on TLS connections only, over the Argon2id hash
//! `strata user plain-set` stores (checked on a blocking thread). A connection's principal is the SASL user's `User:<name>`,
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
//! Not served: PLAIN without TLS (the password would cross in clear),
//! SaslHandshake v0 (raw SASL frames), KIP-368 re-authentication (a session holds until its user is deleted, checked
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

/// A SASL mechanism served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    Scram(Mechanism),
    Plain,
}

impl Served {
    fn name(self) -> &'static str {
        match self {
            Self::Scram(m) => m.name(),
            Self::Plain => "PLAIN",
        }
    }

    /// The mechanism of a name, if served on this connection.
    fn parse(name: &str, tls: bool) -> Option<Self> {
        match name {
            "PLAIN" if tls => Some(Self::Plain),
            _ => Mechanism::parse(name).map(Self::Scram),
        }
    }
}

/// The mechanisms served, as SaslHandshake lists them (PLAIN on TLS
/// connections only).
fn names(tls: bool) -> Vec<StrBytes> {
    let mut all = vec![
        StrBytes::from_static_str(Mechanism::Sha256.name()),
        StrBytes::from_static_str(Mechanism::Sha512.name()),
    ];
    if tls {
        all.push(StrBytes::from_static_str("PLAIN"));
    }
    all
}

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
    Handshaken(Served),
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

/// Why a login failed.
enum Why {
    /// Wrong password or unknown user (one answer for both).
    Invalid,
    /// Not the mechanism's message.
    Malformed(String),
}
use Why::{Invalid, Malformed};

/// A SaslAuthenticate answer, and whether the connection closes after it.
#[derive(Debug)]
pub struct Answer {
    /// The response.
    pub response: SaslAuthenticateResponse,
    /// Close after sending it (a failed login).
    pub close: bool,
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
    /// the ones served (`tls`: the connection is TLS).
    pub fn handshake(&mut self, r: &SaslHandshakeRequest, tls: bool) -> SaslHandshakeResponse {
        let answer = SaslHandshakeResponse::default().with_mechanisms(names(tls));
        if !matches!(self.stage, Stage::Start) {
            return answer.with_error_code(code(E::IllegalSaslState));
        }
        match Served::parse(&r.mechanism, tls) {
            Some(m) => {
                self.stage = Stage::Handshaken(m);
                answer
            }
            None => answer.with_error_code(code(E::UnsupportedSaslMechanism)),
        }
    }

    /// One SaslAuthenticate round trip.
    pub async fn authenticate(
        &mut self,
        k: &Kafka,
        ip: IpAddr,
        r: &SaslAuthenticateRequest,
    ) -> Answer {
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
                match m {
                    Served::Scram(m) => self.scram_first(k, ip, m, r, now),
                    Served::Plain => self.plain(k, ip, r, now).await,
                }
            }
            Stage::Exchanging(exchange) => {
                let m = exchange.mechanism();
                match (*exchange).finish(&r.auth_bytes) {
                    Ok((user, server_final)) => {
                        let Some((_, id)) = k.auth.security.scram_credential(&user, m) else {
                            // Deleted between the two round trips.
                            return self.refuse(k, ip, Served::Scram(m), Invalid, now);
                        };
                        self.logged_in(ip, &user, id, Served::Scram(m));
                        Answer {
                            response: SaslAuthenticateResponse::default()
                                .with_auth_bytes(Bytes::from(server_final)),
                            close: false,
                        }
                    }
                    Err(ScramError::Failed) => self.refuse(k, ip, Served::Scram(m), Invalid, now),
                    Err(ScramError::Malformed(why)) => {
                        self.refuse(k, ip, Served::Scram(m), Malformed(why), now)
                    }
                }
            }
            Stage::Start | Stage::Over => failed(
                E::IllegalSaslState,
                "SaslAuthenticate without a SaslHandshake first (or after the login)".into(),
            ),
        }
    }

    fn logged_in(&mut self, ip: IpAddr, user: &str, id: u64, m: Served) {
        tracing::info!(target: AUDIT, event = "authenticated", listener = "kafka", peer = %ip, %user, mechanism = m.name());
        self.identity = Some(Identity {
            principal: Principal::user(user),
            user_id: Some(id),
        });
    }

    /// SCRAM's first round trip: client-first in, server-first out.
    fn scram_first(
        &mut self,
        k: &Kafka,
        ip: IpAddr,
        m: Mechanism,
        r: &SaslAuthenticateRequest,
        now: u64,
    ) -> Answer {
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
            Err(ScramError::Failed) => self.refuse(k, ip, Served::Scram(m), Invalid, now),
            Err(ScramError::Malformed(why)) => {
                self.refuse(k, ip, Served::Scram(m), Malformed(why), now)
            }
        }
    }

    /// PLAIN (RFC 4616): `authzid NUL user NUL password`, one round trip.
    async fn plain(
        &mut self,
        k: &Kafka,
        ip: IpAddr,
        r: &SaslAuthenticateRequest,
        now: u64,
    ) -> Answer {
        let mut parts = r.auth_bytes.split(|b| *b == 0);
        let (authz, user, password) = match (parts.next(), parts.next(), parts.next(), parts.next())
        {
            (Some(a), Some(u), Some(p), None) => (a, u, p.to_vec()),
            _ => {
                return self.refuse(
                    k,
                    ip,
                    Served::Plain,
                    Malformed("not authzid NUL user NUL password".into()),
                    now,
                );
            }
        };
        let Ok(user) = std::str::from_utf8(user).map(str::to_string) else {
            return self.refuse(
                k,
                ip,
                Served::Plain,
                Malformed("a user name that is not UTF-8".into()),
                now,
            );
        };
        if !authz.is_empty() && authz != user.as_bytes() {
            return self.refuse(
                k,
                ip,
                Served::Plain,
                Malformed("an authorization id other than the user".into()),
                now,
            );
        }
        let security = k.auth.security.clone();
        let name = user.clone();
        let checked = tokio::task::spawn_blocking(move || security.check_plain(&name, &password))
            .await
            .ok()
            .flatten();
        match checked {
            Some(id) => {
                self.logged_in(ip, &user, id, Served::Plain);
                Answer {
                    response: SaslAuthenticateResponse::default(),
                    close: false,
                }
            }
            None => self.refuse(k, ip, Served::Plain, Invalid, now),
        }
    }

    fn refuse(&mut self, k: &Kafka, ip: IpAddr, m: Served, why: Why, now: u64) -> Answer {
        k.auth.failures.failed(ip, now);
        let message = match why {
            Invalid => format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                m.name()
            ),
            Malformed(why) => format!("{}: malformed: {why}", m.name()),
        };
        tracing::warn!(target: AUDIT, event = "authentication_failed", listener = "kafka", peer = %ip, mechanism = m.name(), reason = %message);
        failed(E::SaslAuthenticationFailed, message)
    }
}
