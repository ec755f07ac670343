//! The Strata client: produce to and consume from a Strata broker.
//!
//! One [`Client`] is one HTTP/2 connection to the broker, cheap to clone and
//! share across tasks. From it come an [`Admin`] for topics, [`Producer`]s
//! that batch records per partition, and [`Consumer`]s that read assigned
//! partitions as a stream.
//!
//! ```no_run
//! use futures::StreamExt;
//! use strata_client::{Client, ConsumerConfig, ProducerConfig, ProducerRecord, Seek};
//!
//! # async fn demo() -> Result<(), strata_client::Error> {
//! let client = Client::connect("http://127.0.0.1:7390").await?;
//! client.admin().create_topic("greetings", 3, &[("retention.ms", "86400000")]).await?;
//!
//! // Produce: records with the same key go to the same partition.
//! let producer = client.producer(ProducerConfig::default());
//! let delivery = producer
//!     .send(ProducerRecord::new("greetings").key("alice").value("hello").header("lang", "en"))
//!     .await?;
//! let stored = delivery.await?; // acknowledged once fsynced (Acks::Durable)
//! println!("stored at {}/{} offset {}", stored.topic, stored.partition, stored.offset);
//! producer.close().await?;
//!
//! // Consume every partition from the beginning.
//! let mut consumer = client.consumer(ConsumerConfig::default());
//! consumer.assign_topic("greetings", Seek::Beginning).await?;
//! let mut records = consumer.into_stream();
//! while let Some(record) = records.next().await {
//!     let record = record?;
//!     println!("{}/{} @{}: {:?}", record.topic, record.partition, record.offset, record.value);
//! #   break;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The producer keeps up to five batches of a partition in flight (on one
//! ordered stream), in order and, with idempotence (the default), each
//! appended exactly once however often it is sent. For loaders and stream
//! processors, [`Producer::send_all`] takes many records in one call and
//! returns one future with a result per record. Keep one `Arc<str>` per
//! topic and pass clones of it to [`ProducerRecord::new`]: the record then
//! costs no allocation for its topic.
//!
//! `client/examples/` holds a producer, a consumer and a small stream
//! processor; the `strata` binary of this crate is the command-line tool.
//!
//! For work queues, a [`ShareConsumer`] joins a share group: any number of
//! them read the same partitions, each record is leased to one at a time
//! and acknowledged on its own (accept, release with a delay, reject to
//! the dead-letter topic, renew).
//!
//! Errors are [`Error`]s; [`Error::is_retriable`] tells a passing failure
//! (the broker restarting) from a fatal one (an unknown topic), as the
//! broker says ([`Error::reason`]). The producer retries retriable failures
//! by itself until its delivery timeout.

#![warn(missing_docs)]

pub mod admin;
pub mod client;
pub mod connection_args;
pub mod consumer;
pub mod error;
mod group;
pub mod partitioner;
pub mod producer;
pub mod record;
pub mod security;
pub mod share;
pub mod tls;

pub use admin::{Admin, OffsetSpec, ResetSpec};
pub use client::{Client, ClientOptions, Credentials, Token};
pub use connection_args::ConnectionArgs;
pub use consumer::{Consumer, ConsumerConfig, OffsetReset, RebalanceListener, Seek};
pub use error::{Error, ErrorReason, Result};
pub use producer::{
    Acks, BatchDelivery, Compression, DeliveryFuture, MAX_IN_FLIGHT_MAX, Producer, ProducerConfig,
    ProducerStats,
};
pub use record::{ConsumerRecord, Header, IntoTopic, ProducerRecord, RecordMetadata};
pub use security::{CreatedToken, SecurityAdmin, generate_token};
pub use share::{AckHandle, Lease, ShareConfig, ShareConsumer, ShareRecord};
pub use strata_proto as proto;
pub use tls::TlsOptions;
