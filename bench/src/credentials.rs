//! How every bench connection authenticates, from the environment the
//! `strata` CLI reads too: the bearer token (`STRATA_TOKEN` or
//! `STRATA_TOKEN_FILE`; a broker started with `--auth` needs one) and TLS
//! (`STRATA_TLS_CA`, `STRATA_TLS_CERT` and `STRATA_TLS_KEY`,
//! `STRATA_TLS_SERVER_NAME`, with an `https://` broker address), and the
//! client id (`STRATA_CLIENT_ID`).

use anyhow::Context;
use std::path::PathBuf;

use strata_client::{Client, ClientOptions, Credentials, TlsOptions, Token};

/// The token, if one is set.
pub fn token() -> anyhow::Result<Option<Token>> {
    if let Ok(t) = std::env::var("STRATA_TOKEN") {
        return Ok(Some(Token::new(t)));
    }
    match std::env::var_os("STRATA_TOKEN_FILE") {
        None => Ok(None),
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("reading STRATA_TOKEN_FILE {}", p.to_string_lossy()))?;
            Ok(Some(Token::new(text)))
        }
    }
}

fn path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from)
}

/// The TLS settings, if any is set.
pub fn tls() -> anyhow::Result<Option<TlsOptions>> {
    let (ca, cert, key) = (
        path("STRATA_TLS_CA"),
        path("STRATA_TLS_CERT"),
        path("STRATA_TLS_KEY"),
    );
    let name = std::env::var("STRATA_TLS_SERVER_NAME").ok();
    Ok(TlsOptions::from_settings(
        ca.as_deref(),
        cert.as_deref(),
        key.as_deref(),
        name.as_deref(),
    )?)
}

/// A client of `url` with the token and TLS settings.
pub async fn client(url: &str) -> anyhow::Result<Client> {
    let options = ClientOptions {
        token: token()?,
        tls: tls()?,
        client_id: std::env::var("STRATA_CLIENT_ID").ok(),
        ..Default::default()
    };
    Ok(Client::connect_with(url.to_string(), options).await?)
}

/// The token as `authorization` metadata (and `STRATA_CLIENT_ID` as
/// `strata-client-id`), for the raw gRPC stubs.
pub fn bearer() -> anyhow::Result<Credentials> {
    let id = std::env::var("STRATA_CLIENT_ID").ok();
    Ok(Credentials::new(token()?.as_ref())?.with_client_id(id.as_deref())?)
}
