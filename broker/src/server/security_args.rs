//! The broker's security flags (each also a `STRATA_*` variable and a TOML
//! key, like every flag in `config`), the rule that keeps a broker without
//! TLS and authentication on loopback, and the first admin's bootstrap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, bail};

use crate::core::security::failures::FailureLimit;
use crate::core::security::{Principal, QuotaRates, Security, SecurityLimits};

fn unlimited_if_0(rate: u64) -> Option<u64> {
    (rate > 0).then_some(rate)
}

fn l() -> SecurityLimits {
    SecurityLimits::default()
}

/// A secret from the environment: never printed (`Debug` hides it).
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

/// Security flags.
#[derive(clap::Args, Debug, Clone)]
pub struct SecurityArgs {
    /// Require a bearer token on every gRPC call (except health checks).
    /// Off: every call runs as the anonymous super user, which is safe on
    /// loopback only (see --insecure-dev).
    #[arg(long, env = "STRATA_AUTH")]
    pub auth: bool,
    /// Principals granted everything, comma-separated (`User:admin,User:ops`).
    #[arg(long, env = "STRATA_SUPER_USERS", value_delimiter = ',')]
    pub super_users: Vec<String>,
    /// The first admin's user name, made at first start with --auth.
    #[arg(long, env = "STRATA_AUTH_BOOTSTRAP_USER", default_value = "admin")]
    pub auth_bootstrap_user: String,
    /// A file holding the first admin's token (made with `strata token
    /// generate`), read at first start with --auth; later starts ignore it.
    #[arg(long, env = "STRATA_AUTH_BOOTSTRAP_TOKEN_FILE")]
    pub auth_bootstrap_token_file: Option<PathBuf>,
    /// The first admin's token itself (environment only: a flag would show
    /// in `ps`).
    #[arg(
        long,
        env = "STRATA_AUTH_BOOTSTRAP_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    pub auth_bootstrap_token: Option<Secret>,
    /// Serve non-loopback addresses without TLS and without --auth: anyone
    /// who can reach the ports can read, write and delete everything. For
    /// development in containers only.
    #[arg(long, env = "STRATA_INSECURE_DEV")]
    pub insecure_dev: bool,
    /// Failed token checks one client address may make a minute; past
    /// them its attempts are refused before any token is checked.
    #[arg(long, env = "STRATA_AUTH_FAILURES_PER_MIN_MAX", default_value_t = 60)]
    pub auth_failures_per_min_max: u64,
    /// Client addresses whose failures are tracked at once.
    #[arg(
        long,
        env = "STRATA_AUTH_FAILURE_ADDRESSES_MAX",
        default_value_t = 10_000
    )]
    pub auth_failure_addresses_max: usize,
    /// Most users the broker keeps (security_users_max).
    #[arg(long, env = "STRATA_SECURITY_USERS_MAX", default_value_t = l().users_max)]
    pub security_users_max: usize,
    /// Most tokens, over all users (security_tokens_max).
    #[arg(long, env = "STRATA_SECURITY_TOKENS_MAX", default_value_t = l().tokens_max)]
    pub security_tokens_max: usize,
    /// Most ACL entries (security_acls_max).
    #[arg(long, env = "STRATA_SECURITY_ACLS_MAX", default_value_t = l().acls_max)]
    pub security_acls_max: usize,
    /// Produce bytes per second of a principal without its own quota (0:
    /// unlimited). Super users are never throttled.
    #[arg(long, env = "STRATA_QUOTA_PRODUCE_BYTES_PER_SEC", default_value_t = 0)]
    pub quota_produce_bytes_per_sec: u64,
    /// Fetch bytes per second of a principal without its own quota (0: unlimited).
    #[arg(long, env = "STRATA_QUOTA_FETCH_BYTES_PER_SEC", default_value_t = 0)]
    pub quota_fetch_bytes_per_sec: u64,
    /// Calls per second of a principal without its own quota (0: unlimited).
    #[arg(long, env = "STRATA_QUOTA_REQUESTS_PER_SEC", default_value_t = 0)]
    pub quota_requests_per_sec: u64,
    /// How much of its rate a quota lets through at once: a bucket holds
    /// this many ms of it (ms).
    #[arg(long, env = "STRATA_QUOTA_WINDOW_MS", default_value_t = l().quota_window_ms)]
    pub quota_window_ms: u64,
}

impl SecurityArgs {
    /// The limits.
    pub fn limits(&self) -> SecurityLimits {
        SecurityLimits {
            users_max: self.security_users_max,
            tokens_max: self.security_tokens_max,
            acls_max: self.security_acls_max,
            default_quotas: QuotaRates {
                produce_bytes_per_sec: unlimited_if_0(self.quota_produce_bytes_per_sec),
                fetch_bytes_per_sec: unlimited_if_0(self.quota_fetch_bytes_per_sec),
                requests_per_sec: unlimited_if_0(self.quota_requests_per_sec),
            },
            quota_window_ms: self.quota_window_ms,
        }
    }

    /// The limit on failed authentications per address.
    pub fn failure_limit(&self) -> FailureLimit {
        FailureLimit::new(
            self.auth_failures_per_min_max,
            self.auth_failure_addresses_max,
        )
    }

    /// The configured super users.
    pub fn super_users(&self) -> anyhow::Result<Vec<Principal>> {
        self.super_users
            .iter()
            .map(|p| Principal::parse(p.trim(), false).with_context(|| "--super-users".to_string()))
            .collect()
    }

    /// Refuses a configuration that exposes an unprotected port: a
    /// listener off loopback needs TLS on it and --auth, or
    /// --insecure-dev. The metrics endpoint has no TLS, so off loopback it
    /// always needs --insecure-dev; the Kafka listener serves TLS (and
    /// SASL with --auth) when the gRPC one does. `listeners`: (flag,
    /// address, serves TLS).
    pub fn validate(&self, listeners: &[(&str, SocketAddr, bool)]) -> anyhow::Result<()> {
        self.super_users()?;
        if self.insecure_dev {
            return Ok(());
        }
        let exposed = listeners
            .iter()
            .find(|(_, a, tls)| !(a.ip().is_loopback() || (*tls && self.auth)));
        if let Some((flag, addr, tls)) = exposed {
            let missing = match (*tls, self.auth) {
                (false, false) => "without TLS and without --auth",
                (false, true) => "without TLS",
                _ => "without --auth",
            };
            bail!(
                "{flag} {addr} is not a loopback address, and this broker would serve it \
                 {missing}: anyone who can reach it could {}. Bind 127.0.0.1, protect it \
                 (--tls-cert, --tls-key and --auth, which cover the gRPC and Kafka \
                 listeners; the metrics endpoint has no TLS), or pass --insecure-dev (STRATA_INSECURE_DEV=true) \
                 to accept that, for development only",
                if self.auth {
                    "read the tokens and records it carries"
                } else {
                    "read, write and delete every topic"
                }
            );
        }
        Ok(())
    }

    /// The bootstrap token, from the environment or the file.
    fn bootstrap_token(&self) -> anyhow::Result<Option<String>> {
        if let Some(t) = &self.auth_bootstrap_token {
            return Ok(Some(t.0.clone()));
        }
        match &self.auth_bootstrap_token_file {
            None => Ok(None),
            Some(p) => Ok(Some(
                std::fs::read_to_string(p)
                    .with_context(|| {
                        format!("reading --auth-bootstrap-token-file {}", p.display())
                    })?
                    .trim()
                    .to_string(),
            )),
        }
    }

    /// With --auth: makes the first admin at first start, or refuses to
    /// start when there is none (there is no default password).
    pub fn bootstrap(&self, security: &Security, now_ms: u64) -> anyhow::Result<()> {
        if !self.auth {
            tracing::warn!(
                "authentication is off (no --auth): every call runs as the anonymous super \
                 user User:ANONYMOUS"
            );
            return Ok(());
        }
        if security.has_users() {
            return Ok(());
        }
        let Some(token) = self.bootstrap_token()? else {
            bail!(
                "--auth is on and no user exists yet: give the first admin's token with \
                 --auth-bootstrap-token-file or STRATA_AUTH_BOOTSTRAP_TOKEN (make one with \
                 `strata token generate`); there is no default password"
            );
        };
        if security.bootstrap(&self.auth_bootstrap_user, &token, now_ms)? {
            tracing::info!(target: super::auth::AUDIT, event = "bootstrap_admin", user = %self.auth_bootstrap_user);
        }
        Ok(())
    }
}
