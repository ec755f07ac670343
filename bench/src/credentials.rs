//! How every bench connection authenticates, with the `strata` CLI's
//! connection flags and variables ([`ConnectionArgs`]): the bearer token
//! (`--token`, `--token-file`, `STRATA_TOKEN`, `STRATA_TOKEN_FILE`; a
//! broker started with `--auth` needs one), TLS (`--tls-ca`, `--tls-cert`,
//! `--tls-key`, `--tls-server-name` or `STRATA_TLS_*`, with an `https://`
//! broker address) and the client id (`--client-id`, `STRATA_CLIENT_ID`).

use std::sync::OnceLock;

use strata_client::{Client, ClientOptions, ConnectionArgs, Credentials};

static ARGS: OnceLock<ConnectionArgs> = OnceLock::new();

/// Keeps the parsed flags for every connection the bench makes; set once
/// by `main` before any workload runs.
pub fn init(args: ConnectionArgs) {
    let _ = ARGS.set(args);
}

fn args() -> &'static ConnectionArgs {
    ARGS.get_or_init(ConnectionArgs::default)
}

/// A client of `url` with the token, TLS settings and client id.
pub async fn client(url: &str) -> anyhow::Result<Client> {
    let options = args().apply(ClientOptions::default())?;
    Ok(Client::connect_with(url.to_string(), options).await?)
}

/// The token as `authorization` metadata (and the client id as
/// `strata-client-id`), for the raw gRPC stubs.
pub fn bearer() -> anyhow::Result<Credentials> {
    let a = args();
    Ok(Credentials::new(a.token()?.as_ref())?.with_client_id(a.client_id())?)
}
