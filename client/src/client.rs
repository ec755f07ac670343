//! The connection to a broker: one HTTP/2 connection, multiplexing every
//! admin, producer and consumer call. Cheap to clone and share.

use std::sync::Arc;
use std::time::Duration;

use strata_proto::v1::{
    admin_client::AdminClient, groups_client::GroupsClient, records_client::RecordsClient,
    security_client::SecurityClient, share_client::ShareClient,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::admin::Admin;
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{Error, Result};
use crate::producer::{Producer, ProducerConfig};
use crate::share::{ShareConfig, ShareConsumer};
use crate::tls::TlsOptions;

/// How the client talks to the broker.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long to wait for the connection to be established.
    pub connect_timeout: Duration,
    /// How long any single call may take (long-polls included).
    pub request_timeout: Duration,
    /// The largest message the client sends or accepts, in bytes.
    pub message_bytes_max: usize,
    /// The bearer token every call presents (a broker with `--auth` needs
    /// one). The client never refreshes it: an expired or revoked token
    /// fails calls with UNAUTHENTICATED, naming the token.
    pub token: Option<Token>,
    /// TLS (`https://` URLs need it; none there: the system's roots).
    pub tls: Option<TlsOptions>,
    /// The name this client gives itself on every call (the
    /// `strata-client-id` metadata, as Kafka's client.id): quotas may be
    /// set per client id.
    pub client_id: Option<String>,
}

/// A bearer token (`strata_<id>_<secret>`); `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from its text (surrounding white space is dropped).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into().trim().to_string())
    }

    /// The token's text.
    pub fn text(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<secret>)")
    }
}

/// Adds `authorization: Bearer <token>` (and `strata-client-id`) to every
/// call: the client's own stubs use it, and raw `strata_proto` stubs can
/// too (`RecordsClient::with_interceptor(channel, credentials)`).
#[derive(Clone)]
pub struct Credentials {
    bearer: Option<MetadataValue<Ascii>>,
    client_id: Option<MetadataValue<Ascii>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<secret>)")
    }
}

impl Credentials {
    /// The header for `token` (none: calls carry no credentials).
    pub fn new(token: Option<&Token>) -> Result<Self> {
        let bearer = match token {
            None => None,
            Some(t) => Some(format!("Bearer {}", t.text()).parse().map_err(|_| {
                Error::InvalidArgument("the token holds characters a header cannot".into())
            })?),
        };
        Ok(Self {
            bearer,
            client_id: None,
        })
    }

    /// The same, naming the client `id` on every call.
    pub fn with_client_id(mut self, id: Option<&str>) -> Result<Self> {
        self.client_id = match id {
            None => None,
            Some(id) => Some(id.parse().map_err(|_| {
                Error::InvalidArgument(format!("client id {id:?} is not visible ASCII"))
            })?),
        };
        Ok(self)
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.bearer {
            req.metadata_mut().insert("authorization", v.clone());
        }
        if let Some(v) = &self.client_id {
            req.metadata_mut().insert("strata-client-id", v.clone());
        }
        Ok(req)
    }
}

/// What every generated client runs over: the channel, with credentials.
pub(crate) type Rpc = InterceptedService<Channel, Credentials>;

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            message_bytes_max: 256 << 20,
            token: None,
            tls: None,
            client_id: None,
        }
    }
}

/// An error and its sources, as one line (a certificate the broker
/// refused is three sources down in a transport error).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A connection to a Strata broker.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    credentials: Credentials,
    options: Arc<ClientOptions>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `url` (for example `http://127.0.0.1:7390`) with default options.
    pub async fn connect(url: impl Into<String>) -> Result<Self> {
        Self::connect_with(url, ClientOptions::default()).await
    }

    /// Connects with explicit options.
    pub async fn connect_with(url: impl Into<String>, options: ClientOptions) -> Result<Self> {
        let url = url.into();
        let url = if url.contains("://") {
            url
        } else if options.tls.is_some() {
            format!("https://{url}")
        } else {
            format!("http://{url}")
        };
        let tls = match (&options.tls, url.starts_with("https://")) {
            (Some(t), true) => Some(t.clone()),
            (None, true) => Some(TlsOptions::default()),
            (Some(_), false) => {
                return Err(Error::InvalidArgument(format!(
                    "TLS settings given for {url}: use an https:// address"
                )));
            }
            (None, false) => None,
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| Error::InvalidArgument(format!("broker address {url:?}: {e}")))?
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .tcp_nodelay(true)
            // Batches are megabytes: windows and frames large enough that
            // one batch is never chopped up or stalled by flow control.
            .initial_stream_window_size(64 << 20)
            .initial_connection_window_size(64 << 20)
            .max_frame_size((16 << 20) - 1);
        if let Some(t) = &tls {
            endpoint = endpoint
                .tls_config(t.config())
                .map_err(|e| Error::InvalidArgument(format!("TLS settings: {}", chain(&e))))?;
        }
        let credentials = Credentials::new(options.token.as_ref())?
            .with_client_id(options.client_id.as_deref())?;
        let channel = endpoint.connect().await.map_err(|source| Error::Connect {
            url,
            detail: chain(&source),
            source: Arc::new(source),
        })?;
        Ok(Self {
            channel,
            credentials,
            options: Arc::new(options),
        })
    }

    /// The underlying HTTP/2 channel, for raw `strata_proto` stubs (with
    /// [`Credentials`] for the token).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The options in use.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Topic administration.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// Users, tokens and ACLs.
    pub fn security(&self) -> crate::security::SecurityAdmin {
        crate::security::SecurityAdmin::new(self.clone())
    }

    /// A producer.
    pub fn producer(&self, config: ProducerConfig) -> Producer {
        Producer::new(self.clone(), config)
    }

    /// A consumer without a group.
    pub fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.clone(), config)
    }

    pub(crate) fn records(&self) -> RecordsClient<Rpc> {
        RecordsClient::with_interceptor(self.channel.clone(), self.credentials.clone())
            .max_decoding_message_size(self.options.message_bytes_max)
            .max_encoding_message_size(self.options.message_bytes_max)
    }

    pub(crate) fn admin_rpc(&self) -> AdminClient<Rpc> {
        AdminClient::with_interceptor(self.channel.clone(), self.credentials.clone())
            .max_decoding_message_size(self.options.message_bytes_max)
            .max_encoding_message_size(self.options.message_bytes_max)
    }

    pub(crate) fn share_rpc(&self) -> ShareClient<Rpc> {
        ShareClient::with_interceptor(self.channel.clone(), self.credentials.clone())
            .max_decoding_message_size(self.options.message_bytes_max)
            .max_encoding_message_size(self.options.message_bytes_max)
    }

    /// A member of share group `config.group` (joined before it returns).
    pub async fn share_consumer(&self, config: ShareConfig) -> Result<ShareConsumer> {
        ShareConsumer::new(self.clone(), config).await
    }

    pub(crate) fn security_rpc(&self) -> SecurityClient<Rpc> {
        SecurityClient::with_interceptor(self.channel.clone(), self.credentials.clone())
            .max_decoding_message_size(self.options.message_bytes_max)
            .max_encoding_message_size(self.options.message_bytes_max)
    }

    pub(crate) fn groups_rpc(&self) -> GroupsClient<Rpc> {
        GroupsClient::with_interceptor(self.channel.clone(), self.credentials.clone())
            .max_decoding_message_size(self.options.message_bytes_max)
            .max_encoding_message_size(self.options.message_bytes_max)
    }
}
