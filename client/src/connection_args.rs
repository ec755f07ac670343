//! The connection flags every command-line tool of Strata takes (the
//! `strata` CLI and `strata-bench`): the bearer token (flag, environment
//! or file), the TLS settings and the client id. One definition, so the
//! tools cannot drift apart.

use std::path::PathBuf;

use crate::client::{ClientOptions, Token};
use crate::error::{Error, Result};
use crate::tls::TlsOptions;

/// How a tool authenticates to the broker; `Debug` never shows the token.
#[derive(Clone, Default, clap::Args)]
pub struct ConnectionArgs {
    /// The bearer token calls present (a broker with --auth needs one).
    #[arg(long, global = true, env = "STRATA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the token.
    #[arg(
        long,
        global = true,
        env = "STRATA_TOKEN_FILE",
        conflicts_with = "token"
    )]
    token_file: Option<PathBuf>,
    /// PEM CA certificates the broker's certificate must chain to (TLS;
    /// without it, an https:// broker is checked against the system's roots).
    #[arg(long, global = true, env = "STRATA_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// PEM client certificate, for a broker that asks for one (mTLS).
    #[arg(long, global = true, env = "STRATA_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, global = true, env = "STRATA_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The name the broker's certificate must carry (default: the host of
    /// the broker's address).
    #[arg(long, global = true, env = "STRATA_TLS_SERVER_NAME")]
    tls_server_name: Option<String>,
    /// The client id calls carry (`strata-client-id`; quotas may name it).
    #[arg(long, global = true, env = "STRATA_CLIENT_ID")]
    client_id: Option<String>,
}

impl std::fmt::Debug for ConnectionArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionArgs")
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("token_file", &self.token_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_server_name", &self.tls_server_name)
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl ConnectionArgs {
    /// The token, from --token or the file --token-file names.
    pub fn token(&self) -> Result<Option<Token>> {
        if let Some(t) = &self.token {
            return Ok(Some(Token::new(t)));
        }
        match &self.token_file {
            None => Ok(None),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Error::InvalidArgument(format!("reading --token-file {}: {e}", p.display()))
                })?;
                Ok(Some(Token::new(text)))
            }
        }
    }

    /// The TLS settings, `None` when no TLS flag is given.
    pub fn tls(&self) -> Result<Option<TlsOptions>> {
        TlsOptions::from_settings(
            self.tls_ca.as_deref(),
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_server_name.as_deref(),
        )
    }

    /// The client id, if one is given.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// `options` with this token, these TLS settings and this client id.
    pub fn apply(&self, options: ClientOptions) -> Result<ClientOptions> {
        Ok(ClientOptions {
            token: self.token()?,
            tls: self.tls()?,
            client_id: self.client_id.clone(),
            ..options
        })
    }
}
