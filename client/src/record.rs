//! The records applications send and receive.

use std::sync::Arc;

use bytes::Bytes;

pub use strata_proto::Header;

/// Anything that names a topic: `&str`, `String`, `&String`, or an
/// `Arc<str>` (or a reference to one), which is shared without allocating.
pub trait IntoTopic {
    /// The name as a shared string.
    fn into_topic(self) -> Arc<str>;
}

impl IntoTopic for &str {
    fn into_topic(self) -> Arc<str> {
        self.into()
    }
}

impl IntoTopic for String {
    fn into_topic(self) -> Arc<str> {
        self.into()
    }
}

impl IntoTopic for &String {
    fn into_topic(self) -> Arc<str> {
        self.as_str().into()
    }
}

impl IntoTopic for Arc<str> {
    fn into_topic(self) -> Arc<str> {
        self
    }
}

impl IntoTopic for &Arc<str> {
    fn into_topic(self) -> Arc<str> {
        self.clone()
    }
}

/// A record to produce. Build one with [`ProducerRecord::new`] and the
/// builder methods.
#[derive(Debug, Clone)]
pub struct ProducerRecord {
    /// The topic. Keep one `Arc<str>` per topic and clone it into each
    /// record: the producer then finds the topic by a pointer comparison,
    /// and the record costs no allocation for its topic.
    pub topic: Arc<str>,
    /// A fixed partition; `None` lets the partitioner choose.
    pub partition: Option<u32>,
    /// The key; records with equal keys go to the same partition.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Create time in ms since the epoch; `None` takes the current time.
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic`, with no key, value or headers yet.
    pub fn new(topic: impl IntoTopic) -> Self {
        Self {
            topic: topic.into_topic(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Pins the partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the create time (ms since the epoch).
    pub fn timestamp_ms(mut self, ts: i64) -> Self {
        self.timestamp_ms = Some(ts);
        self
    }
}

/// Where an acknowledged record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic (shared with the record's batch: no allocation per record).
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
    /// The record's offset; -1 when produced with `Acks::None`.
    pub offset: i64,
    /// The record's timestamp (the broker's, on log-append-time topics).
    pub timestamp_ms: i64,
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset.
    pub offset: i64,
    /// Create time or log-append time, in ms since the epoch.
    pub timestamp_ms: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in the producer's order.
    pub headers: Vec<Header>,
}
