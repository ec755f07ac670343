//! The gRPC listener's TLS and connection-limit flags (each also a
//! `STRATA_*` variable and a TOML key, like every flag in `config`).

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::listener::Limits;
use super::tls::{ClientAuth, Tls, TlsFiles};
use crate::core::security::mapping::MappingRules;

/// TLS and connection limits of the gRPC listener.
#[derive(clap::Args, Debug, Clone)]
pub struct ListenerArgs {
    /// PEM certificate chain the gRPC listener serves: TLS on (with
    /// --tls-key). Reloaded, with the key and CA, on SIGHUP.
    #[arg(long, env = "STRATA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "STRATA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates client certificates must chain to: mutual TLS.
    #[arg(long, env = "STRATA_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// With --tls-client-ca: `required` (no certificate, no connection) or
    /// `requested` (a client without one authenticates with a token).
    #[arg(
        long,
        env = "STRATA_TLS_CLIENT_AUTH",
        value_enum,
        default_value = "required"
    )]
    pub tls_client_auth: ClientAuth,
    /// Kafka's ssl.principal.mapping.rules: how a client certificate's
    /// subject (`CN=alice,O=Acme`) becomes a user name, e.g.
    /// `RULE:^CN=([^,]*).*$/$1/L,DEFAULT`.
    #[arg(
        long,
        env = "STRATA_TLS_PRINCIPAL_MAPPING_RULES",
        default_value = "DEFAULT"
    )]
    pub tls_principal_mapping_rules: String,
    /// Time a client has to finish the TLS handshake (ms).
    #[arg(
        long,
        env = "STRATA_TLS_HANDSHAKE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub tls_handshake_timeout_ms: u64,
    /// With --auth: time a connection has to carry an authenticated call
    /// before it is closed (ms).
    #[arg(
        long,
        env = "STRATA_UNAUTHENTICATED_CONNECTION_MS",
        default_value_t = 10_000
    )]
    pub unauthenticated_connection_ms: u64,
    /// Open gRPC connections from one IP address.
    #[arg(long, env = "STRATA_CONNECTIONS_PER_IP_MAX", default_value_t = 1_000)]
    pub connections_per_ip_max: u32,
    /// New gRPC connections accepted per second (more are closed at once).
    #[arg(long, env = "STRATA_CONNECTIONS_PER_SEC_MAX", default_value_t = 1_000)]
    pub connections_per_sec_max: u32,
    /// Bytes of one call's headers (HTTP/2 header list), read before the
    /// call is authenticated; larger ones are refused (HTTP 431).
    #[arg(long, env = "STRATA_REQUEST_HEADERS_BYTES_MAX", default_value_t = 16 * 1024)]
    pub request_headers_bytes_max: u32,
}

impl ListenerArgs {
    /// Whether the gRPC listener serves TLS.
    pub fn tls_on(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// Checks the flags that go together.
    pub fn validate(&self) -> anyhow::Result<()> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bail!("--tls-cert needs --tls-key"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert"),
            _ => {}
        }
        if self.tls_client_ca.is_some() && !self.tls_on() {
            bail!("--tls-client-ca needs --tls-cert and --tls-key");
        }
        MappingRules::parse(&self.tls_principal_mapping_rules)?;
        if self.connections_per_ip_max == 0 || self.connections_per_sec_max == 0 {
            bail!("--connections-per-ip-max and --connections-per-sec-max must be at least 1");
        }
        Ok(())
    }

    /// The TLS configuration, loaded from the files (none: plain TCP).
    pub fn tls(&self) -> anyhow::Result<Option<Tls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: self.tls_client_ca.clone(),
            client_auth: self.tls_client_auth,
        };
        let mapping = MappingRules::parse(&self.tls_principal_mapping_rules)?;
        Tls::load(files, mapping)
            .context("TLS for the gRPC listener")
            .map(Some)
    }

    /// The connection limits (`auth`: whether calls must authenticate).
    pub fn limits(&self, auth: bool) -> Limits {
        Limits {
            per_ip_max: self.connections_per_ip_max,
            per_sec_max: self.connections_per_sec_max,
            handshake_timeout_ms: self.tls_handshake_timeout_ms,
            unauthenticated_ms: auth.then_some(self.unauthenticated_connection_ms),
        }
    }
}
