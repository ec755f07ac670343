//! The bearer token every bench connection presents, from `STRATA_TOKEN`
//! or `STRATA_TOKEN_FILE` (a broker started with `--auth` needs one), as
//! the `strata` CLI takes it.

use anyhow::Context;
use strata_client::{Client, ClientOptions, Credentials, Token};

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

/// A client of `url` with the token.
pub async fn client(url: &str) -> anyhow::Result<Client> {
    let options = ClientOptions {
        token: token()?,
        ..Default::default()
    };
    Ok(Client::connect_with(url.to_string(), options).await?)
}

/// The token as `authorization` metadata, for the raw gRPC stubs.
pub fn bearer() -> anyhow::Result<Credentials> {
    Ok(Credentials::new(token()?.as_ref())?)
}
