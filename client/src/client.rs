//! The connection to a broker: one HTTP/2 connection, multiplexing every
//! admin, producer and consumer call. Cheap to clone and share.

use std::sync::Arc;
use std::time::Duration;

use strata_proto::v1::{
    admin_client::AdminClient, groups_client::GroupsClient, records_client::RecordsClient,
    share_client::ShareClient,
};
use tonic::transport::{Channel, Endpoint};

use crate::admin::Admin;
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{Error, Result};
use crate::producer::{Producer, ProducerConfig};
use crate::share::{ShareConfig, ShareConsumer};

/// How the client talks to the broker.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long to wait for the connection to be established.
    pub connect_timeout: Duration,
    /// How long any single call may take (long-polls included).
    pub request_timeout: Duration,
    /// The largest message the client sends or accepts, in bytes.
    pub message_bytes_max: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            message_bytes_max: 256 << 20,
        }
    }
}

/// A connection to a Strata broker.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    options: Arc<ClientOptions>,
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
        } else {
            format!("http://{url}")
        };
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| Error::InvalidArgument(format!("broker address {url:?}: {e}")))?
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .tcp_nodelay(true)
            // Batches are megabytes: windows and frames large enough that
            // one batch is never chopped up or stalled by flow control.
            .initial_stream_window_size(64 << 20)
            .initial_connection_window_size(64 << 20)
            .max_frame_size((16 << 20) - 1);
        let channel = endpoint.connect().await.map_err(|source| Error::Connect {
            url,
            source: Arc::new(source),
        })?;
        Ok(Self {
            channel,
            options: Arc::new(options),
        })
    }

    /// The options in use.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Topic administration.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// A producer.
    pub fn producer(&self, config: ProducerConfig) -> Producer {
        Producer::new(self.clone(), config)
    }

    /// A consumer without a group.
    pub fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.clone(), config)
    }

    pub(crate) fn records(&self) -> RecordsClient<Channel> {
        RecordsClient::new(self.channel.clone())
            .max_decoding_message_size(self.options.message_bytes_max)
            .max_encoding_message_size(self.options.message_bytes_max)
    }

    pub(crate) fn admin_rpc(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel.clone())
            .max_decoding_message_size(self.options.message_bytes_max)
            .max_encoding_message_size(self.options.message_bytes_max)
    }

    pub(crate) fn share_rpc(&self) -> ShareClient<Channel> {
        ShareClient::new(self.channel.clone())
            .max_decoding_message_size(self.options.message_bytes_max)
            .max_encoding_message_size(self.options.message_bytes_max)
    }

    /// A member of share group `config.group` (joined before it returns).
    pub async fn share_consumer(&self, config: ShareConfig) -> Result<ShareConsumer> {
        ShareConsumer::new(self.clone(), config).await
    }

    pub(crate) fn groups_rpc(&self) -> GroupsClient<Channel> {
        GroupsClient::new(self.channel.clone())
            .max_decoding_message_size(self.options.message_bytes_max)
            .max_encoding_message_size(self.options.message_bytes_max)
    }
}
