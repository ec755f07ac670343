//! How the CLI reaches the broker: its address, and the connection flags
//! (token, TLS, client id) it shares with strata-bench, global to every
//! command.

use strata_client::{Client, ClientOptions, ConnectionArgs};

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
    #[command(flatten)]
    args: ConnectionArgs,
}

impl Connection {
    /// Connects with `options` plus these flags.
    pub async fn connect(&self, options: ClientOptions) -> anyhow::Result<Client> {
        let options = self.args.apply(options)?;
        Ok(Client::connect_with(self.broker.clone(), options).await?)
    }
}
