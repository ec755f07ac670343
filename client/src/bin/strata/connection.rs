//! How the CLI reaches the broker: its address, the bearer token (flag,
//! environment or file), the TLS settings and the client id, global to
//! every command.

use std::path::PathBuf;

use anyhow::Context;
use strata_client::{Client, ClientOptions, TlsOptions, Token};

/// The connection flags.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The broker's address (`https://` for TLS).
    #[arg(
        long,
        global = true,
        env = "STRATA_BROKER",
        default_value = "http://127.0.0.1:7390"
    )]
    pub broker: String,
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
    /// --broker).
    #[arg(long, global = true, env = "STRATA_TLS_SERVER_NAME")]
    tls_server_name: Option<String>,
    /// The client id calls carry (`strata-client-id`; quotas may name it).
    #[arg(long, global = true, env = "STRATA_CLIENT_ID")]
    client_id: Option<String>,
}

impl Connection {
    fn token(&self) -> anyhow::Result<Option<Token>> {
        if let Some(t) = &self.token {
            return Ok(Some(Token::new(t)));
        }
        match &self.token_file {
            None => Ok(None),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading --token-file {}", p.display()))?;
                Ok(Some(Token::new(text)))
            }
        }
    }

    fn tls(&self) -> anyhow::Result<Option<TlsOptions>> {
        Ok(TlsOptions::from_settings(
            self.tls_ca.as_deref(),
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_server_name.as_deref(),
        )?)
    }

    /// Connects with `options` plus these flags.
    pub async fn connect(&self, options: ClientOptions) -> anyhow::Result<Client> {
        let options = ClientOptions {
            token: self.token()?,
            tls: self.tls()?,
            client_id: self.client_id.clone(),
            ..options
        };
        Ok(Client::connect_with(self.broker.clone(), options).await?)
    }
}
