//! The consumer (without a group): assign partitions, position them, and
//! read records as a stream.
//!
//! Reading is long-polling `Fetch` over all assigned partitions, raw
//! batches decoded here (records before the position skipped). The stream
//! form prefetches on a task of its own into a channel of
//! `prefetch_records`, so a slow application bounds what is buffered.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::Stream;
use strata_proto::Batch;
use strata_proto::v1;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::admin::OffsetSpec;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::record::ConsumerRecord;

/// What to do when a position is outside the log (below the log start after
/// retention, or past the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// Move to the first offset still in the log.
    Earliest,
    /// Move to the end and read only new records (Kafka's default).
    #[default]
    Latest,
    /// Report [`Error::OffsetOutOfRange`] to the application.
    Error,
}

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// This offset.
    Offset(i64),
    /// The first record at or after this time (ms); the end if none.
    Timestamp(i64),
    /// The first record still in the log.
    Beginning,
    /// After the last record: only new records.
    End,
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Bytes per fetch across partitions.
    pub fetch_bytes_max: u32,
    /// Bytes per fetch for one partition.
    pub partition_fetch_bytes_max: u32,
    /// How long a fetch waits for data before answering empty.
    pub fetch_wait: Duration,
    /// Records the stream fetches ahead of the application, at most.
    pub prefetch_records: usize,
    /// What to do with a position outside the log.
    pub offset_reset: OffsetReset,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            fetch_bytes_max: 16 << 20,
            partition_fetch_bytes_max: 4 << 20,
            fetch_wait: Duration::from_millis(500),
            prefetch_records: 10_000,
            offset_reset: OffsetReset::Latest,
        }
    }
}

/// Reads assigned partitions. Get one from [`Client::consumer`].
#[derive(Debug)]
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    /// Assigned partitions and the next offset to read from each.
    positions: BTreeMap<(String, u32), i64>,
}

impl Consumer {
    pub(crate) fn new(client: Client, config: ConsumerConfig) -> Self {
        Self {
            client,
            config,
            positions: BTreeMap::new(),
        }
    }

    async fn resolve(&self, topic: &str, partition: u32, seek: Seek) -> Result<i64> {
        let admin = self.client.admin();
        Ok(match seek {
            Seek::Offset(o) if o < 0 => {
                return Err(Error::InvalidArgument(format!("offset {o} is negative")));
            }
            Seek::Offset(o) => o,
            Seek::Beginning => admin
                .list_offset(topic, partition, OffsetSpec::Earliest)
                .await?
                .unwrap_or(0),
            Seek::End => admin
                .list_offset(topic, partition, OffsetSpec::Latest)
                .await?
                .unwrap_or(0),
            Seek::Timestamp(t) => match admin
                .list_offset(topic, partition, OffsetSpec::Timestamp(t))
                .await?
            {
                Some(o) => o,
                None => admin
                    .list_offset(topic, partition, OffsetSpec::Latest)
                    .await?
                    .unwrap_or(0),
            },
        })
    }

    /// Adds a partition to the assignment, starting at `start`.
    pub async fn assign(&mut self, topic: &str, partition: u32, start: Seek) -> Result<()> {
        let offset = self.resolve(topic, partition, start).await?;
        self.positions
            .insert((topic.to_string(), partition), offset);
        Ok(())
    }

    /// Assigns every partition of a topic, each starting at `start`.
    pub async fn assign_topic(&mut self, topic: &str, start: Seek) -> Result<()> {
        let d = self.client.admin().describe_topic(topic).await?;
        for p in d.partitions {
            self.assign(topic, p.partition, start).await?;
        }
        Ok(())
    }

    /// Moves an assigned partition's position.
    pub async fn seek(&mut self, topic: &str, partition: u32, to: Seek) -> Result<()> {
        if !self.positions.contains_key(&(topic.to_string(), partition)) {
            return Err(Error::InvalidArgument(format!(
                "{topic}/{partition} is not assigned"
            )));
        }
        self.assign(topic, partition, to).await
    }

    /// The next offset to be read from a partition.
    pub fn position(&self, topic: &str, partition: u32) -> Option<i64> {
        self.positions.get(&(topic.to_string(), partition)).copied()
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.positions.keys().cloned().collect()
    }

    /// One long-poll: returns the records that arrived (possibly none after
    /// `fetch_wait`), in offset order per partition, and advances positions.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        if self.positions.is_empty() {
            return Err(Error::InvalidArgument("no partitions are assigned".into()));
        }
        let mut topics: Vec<v1::FetchTopic> = Vec::new();
        for ((topic, partition), offset) in &self.positions {
            let fp = v1::FetchPartition {
                partition: *partition,
                offset: *offset,
                max_bytes: self.config.partition_fetch_bytes_max,
            };
            match topics.last_mut() {
                Some(t) if &t.topic == topic => t.partitions.push(fp),
                _ => topics.push(v1::FetchTopic {
                    topic: topic.clone(),
                    partitions: vec![fp],
                }),
            }
        }
        let req = v1::FetchRequest {
            topics,
            max_bytes: self.config.fetch_bytes_max,
            min_bytes: 1,
            max_wait_ms: self.config.fetch_wait.as_millis() as u32,
            decode: false,
        };
        let resp = self.client.records().fetch(req).await?.into_inner();
        let mut out = Vec::new();
        for t in resp.topics {
            for p in t.partitions {
                let key = (t.topic.clone(), p.partition);
                let Some(&position) = self.positions.get(&key) else {
                    continue;
                };
                if let Some(e) = &p.error {
                    if e.code == tonic::Code::OutOfRange as i32 {
                        self.reset(&t.topic, p.partition, position, &e.message)
                            .await?;
                        continue;
                    }
                    return Err(Error::partition(&t.topic, p.partition, e));
                }
                let mut next = position;
                let batches = Batch::decode_all(p.batches).map_err(|e| Error::Partition {
                    topic: t.topic.clone(),
                    partition: p.partition,
                    code: tonic::Code::DataLoss,
                    message: format!("undecodable batch from the broker: {e}"),
                })?;
                for b in batches {
                    for r in b.records() {
                        let r = r.map_err(|e| Error::Partition {
                            topic: t.topic.clone(),
                            partition: p.partition,
                            code: tonic::Code::DataLoss,
                            message: format!("undecodable record from the broker: {e}"),
                        })?;
                        if r.offset < position {
                            continue;
                        }
                        next = r.offset + 1;
                        out.push(ConsumerRecord {
                            topic: t.topic.clone(),
                            partition: p.partition,
                            offset: r.offset,
                            timestamp_ms: r.timestamp,
                            key: r.key,
                            value: r.value,
                            headers: r.headers,
                        });
                    }
                }
                self.positions.insert(key, next);
            }
        }
        Ok(out)
    }

    async fn reset(
        &mut self,
        topic: &str,
        partition: u32,
        offset: i64,
        message: &str,
    ) -> Result<()> {
        let to = match self.config.offset_reset {
            OffsetReset::Earliest => Seek::Beginning,
            OffsetReset::Latest => Seek::End,
            OffsetReset::Error => {
                return Err(Error::OffsetOutOfRange {
                    topic: topic.to_string(),
                    partition,
                    offset,
                    message: message.to_string(),
                });
            }
        };
        tracing::info!(%topic, partition, offset, ?to, "position out of range; resetting");
        self.assign(topic, partition, to).await
    }

    /// Turns the consumer into a stream of records. A task polls ahead of
    /// the application, at most `prefetch_records` records; retriable
    /// errors are retried, the first fatal one ends the stream.
    pub fn into_stream(mut self) -> impl Stream<Item = Result<ConsumerRecord>> + Send + 'static {
        let (tx, rx) = mpsc::channel(self.config.prefetch_records.max(1));
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.poll().await {
                    Ok(records) => {
                        backoff = Duration::from_millis(100);
                        for r in records {
                            if tx.send(Ok(r)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) if e.is_retriable() => {
                        tracing::debug!(error = %e, "fetch failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = tx.closed() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        ReceiverStream::new(rx)
    }
}
