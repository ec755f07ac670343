//! Dead letters: a record past its delivery limit, or rejected, is copied
//! to its group's dead-letter topic (`<topic>.<group>.dlq` unless the group
//! names another; created on first use with `cleanup.policy=delete`, the
//! source topic's retention and partition count), with its key, value and
//! headers and the `strata.dlq.*` headers that say where it came from and
//! how it failed.
//!
//! Exactly once, through crashes and power loss: the decision (the record
//! is done here, its copy pending, and the dead-letter partition's end at
//! that moment) is durable in the groups log before the copy is written;
//! the copy is appended durably; only then is it marked written. A
//! restart finds the copies still pending and, before writing them, looks
//! in the dead-letter partition from the recorded end for copies already
//! there (their `strata.dlq.group`, `.source.topic`, `.source.partition`,
//! `.source.offset` headers say which): none is lost, none written twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use strata_proto::{Batch, BatchBuilder, Header, Record};

use super::coordinator::{AbortAt, ShareGroups};
use super::partition::{Change, DeadLetter};
use crate::core::Acks;
use crate::core::error::{BrokerError, Result};
use crate::core::groups::Tp;
use crate::core::partition::Partition;
use crate::storage::Clock;
use crate::storage::SystemClock;

/// The share group a dead letter came from.
pub const HEADER_GROUP: &str = "strata.dlq.group";
/// Its source topic.
pub const HEADER_TOPIC: &str = "strata.dlq.source.topic";
/// Its source partition.
pub const HEADER_PARTITION: &str = "strata.dlq.source.partition";
/// Its source offset.
pub const HEADER_OFFSET: &str = "strata.dlq.source.offset";
/// The source record's timestamp (ms).
pub const HEADER_TIMESTAMP: &str = "strata.dlq.source.timestamp";
/// Deliveries it had.
pub const HEADER_DELIVERIES: &str = "strata.dlq.delivery.count";
/// The last error text a member gave (absent if none did).
pub const HEADER_ERROR: &str = "strata.dlq.error";
/// When its first and last delivery failed (ms since the epoch).
pub const HEADER_FIRST_FAILURE: &str = "strata.dlq.first.failure.ms";
pub const HEADER_LAST_FAILURE: &str = "strata.dlq.last.failure.ms";
/// Set when the source record had left the log (retention) before its
/// copy could be made: the copy has no key or value.
pub const HEADER_MISSING: &str = "strata.dlq.source.missing";

/// Bytes of dead letters per appended batch.
const BATCH_BYTES: usize = 1 << 20;

fn header(key: &str, value: impl ToString) -> Header {
    Header {
        key: key.into(),
        value: Some(Bytes::from(value.to_string())),
    }
}

fn header_str<'a>(r: &'a Record, key: &str) -> Option<&'a [u8]> {
    r.headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value.as_deref())
}

impl ShareGroups {
    /// The end of the dead-letter partition `tp`'s copies go to (0 while
    /// the topic does not exist).
    pub(super) fn dlq_end(&self, dlq_topic: &str, tp: &Tp) -> u64 {
        let Ok(topic) = self.broker.topic(dlq_topic) else {
            return 0;
        };
        let parts = topic.partitions();
        parts
            .get(tp.1 as usize % parts.len().max(1))
            .and_then(|p| p.high_watermark().ok())
            .unwrap_or(0)
    }

    /// Writes every pending dead letter, durably, and marks it written.
    /// Failures are logged; what failed stays pending for the next tick.
    pub fn flush_dead_letters(&self) {
        let _one = self.flushing.lock().unwrap_or_else(PoisonError::into_inner);
        let pending: Vec<(String, String, Tp, Vec<DeadLetter>)> = self
            .lock()
            .values()
            .flat_map(|g| {
                g.partitions.iter().filter_map(|(tp, p)| {
                    let dead = p.share.dead_pending();
                    (!dead.is_empty()).then(|| {
                        let dead = dead.values().cloned().collect();
                        (
                            g.name().to_string(),
                            g.config.dlq_topic.clone(),
                            tp.clone(),
                            dead,
                        )
                    })
                })
            })
            .collect();
        for (group, dlq, tp, dead) in pending {
            if let Err(e) = self.flush_one(&group, &dlq, &tp, dead) {
                tracing::warn!(%group, topic = %tp.0, partition = tp.1, dlq_topic = %dlq, error = %e, "writing dead letters failed; will retry");
                self.unverified_set().insert((group, tp));
            }
        }
    }

    fn unverified_set(&self) -> std::sync::MutexGuard<'_, BTreeSet<(String, Tp)>> {
        self.unverified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn flush_one(&self, group: &str, dlq: &str, tp: &Tp, dead: Vec<DeadLetter>) -> Result<()> {
        let target = self.dlq_partition(dlq, tp)?;
        let key = (group.to_string(), tp.clone());
        let present = if self.unverified_set().contains(&key) {
            let from = dead.iter().map(|d| d.dlq_from).min().unwrap_or(0);
            already_written(&target, group, tp, from, self.decompressed_max())?
        } else {
            BTreeSet::new()
        };
        let missing: Vec<&DeadLetter> = dead
            .iter()
            .filter(|d| !present.contains(&d.offset))
            .collect();
        if !present.is_empty() {
            tracing::info!(%group, topic = %tp.0, partition = tp.1, copies = present.len(), "dead letters found already written after a restart");
        }
        self.abort_for_test(AbortAt::Before);
        let mut b = BatchBuilder::new();
        for d in missing {
            let (hs, key, value) = self.copy_of(group, tp, d)?;
            b.push(SystemClock.now_ms(), key.as_deref(), value.as_deref(), &hs);
            if b.encoded_len() >= BATCH_BYTES {
                append(&target, std::mem::replace(&mut b, BatchBuilder::new()))?;
            }
        }
        if b.record_count() > 0 {
            append(&target, b)?;
        }
        self.abort_for_test(AbortAt::After);
        self.unverified_set().remove(&key);
        let changes: Vec<Change> = dead
            .iter()
            .map(|d| Change::DeadLetterWritten(d.offset))
            .collect();
        // Not synced: if a crash takes this record, the restart finds the
        // copies in the dead-letter partition and does not write them again.
        let mut groups = self.lock();
        if let Some(g) = groups.get_mut(group) {
            self.commit(g, vec![(tp.clone(), changes)])?;
        }
        Ok(())
    }

    fn abort_for_test(&self, at: AbortAt) {
        if self.defaults.test_abort_at_dead_letter == Some(at) {
            eprintln!("test hook: aborting {at:?} a dead letter's copy");
            std::process::abort();
        }
    }

    fn decompressed_max(&self) -> usize {
        self.broker.limits().batch_decompressed_bytes_max as usize
    }

    /// The headers, key and value of a dead letter's copy.
    #[allow(clippy::type_complexity)]
    fn copy_of(
        &self,
        group: &str,
        tp: &Tp,
        d: &DeadLetter,
    ) -> Result<(Vec<Header>, Option<Bytes>, Option<Bytes>)> {
        let source = self.source_record(tp, d.offset)?;
        let mut hs = source
            .as_ref()
            .map(|r| r.headers.clone())
            .unwrap_or_default();
        hs.extend([
            header(HEADER_GROUP, group),
            header(HEADER_TOPIC, &tp.0),
            header(HEADER_PARTITION, tp.1),
            header(HEADER_OFFSET, d.offset),
            header(HEADER_DELIVERIES, d.attempts),
            header(HEADER_FIRST_FAILURE, d.first_failure_ms),
            header(HEADER_LAST_FAILURE, d.last_failure_ms),
        ]);
        if let Some(e) = &d.last_error {
            hs.push(header(HEADER_ERROR, e));
        }
        Ok(match source {
            Some(r) => {
                hs.push(header(HEADER_TIMESTAMP, r.timestamp));
                (hs, r.key, r.value)
            }
            None => {
                hs.push(header(HEADER_MISSING, "true"));
                (hs, None, None)
            }
        })
    }

    /// The record at `offset` of `tp`, if the log still has it.
    fn source_record(&self, tp: &Tp, offset: u64) -> Result<Option<Record>> {
        let Ok(partition) = self.broker.partition(&tp.0, tp.1) else {
            return Ok(None); // the source topic was deleted
        };
        let read = match partition.read_blocking(offset, 1) {
            Ok(r) => r,
            Err(BrokerError::Storage { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let stored =
            |e: strata_proto::CodecError| BrokerError::Internal(format!("stored batch: {e}"));
        for batch in Batch::decode_all(read.batches).map_err(stored)? {
            for r in batch.records_within(self.decompressed_max()) {
                let r = r.map_err(stored)?;
                if r.offset as u64 == offset {
                    return Ok(Some(r));
                }
            }
        }
        Ok(None)
    }

    /// The dead-letter partition for `source`, creating the topic first
    /// if it does not exist.
    fn dlq_partition(&self, dlq: &str, source: &Tp) -> Result<Arc<Partition>> {
        let topic = match self.broker.topic(dlq) {
            Ok(t) => t,
            Err(BrokerError::UnknownTopic(_)) => {
                let src = self.broker.topic(&source.0).ok();
                let partitions = src.as_ref().map_or(1, |t| t.partitions().len() as u32);
                let mut overrides = BTreeMap::new();
                overrides.insert("cleanup.policy".to_string(), "delete".to_string());
                if let Some(t) = &src {
                    overrides.insert("retention.ms".into(), t.config().retention_ms.to_string());
                }
                match self.broker.create_topic(dlq, partitions, overrides) {
                    Ok(t) => {
                        tracing::info!(topic = dlq, partitions, "created dead-letter topic");
                        t
                    }
                    Err(BrokerError::TopicExists(_)) => self.broker.topic(dlq)?,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let parts = topic.partitions();
        parts
            .get(source.1 as usize % parts.len().max(1))
            .cloned()
            .ok_or_else(|| {
                BrokerError::Internal(format!("dead-letter topic {dlq:?} has no partitions"))
            })
    }
}

/// Appends one batch durably.
fn append(target: &Partition, b: BatchBuilder) -> Result<()> {
    let written = target.write_blocking(&b.finish())?;
    target.complete_blocking(written, Acks::Durable)?;
    Ok(())
}

/// The source offsets of `group`'s copies from `tp` in `target` from
/// offset `from` on.
fn already_written(
    target: &Partition,
    group: &str,
    tp: &Tp,
    mut from: u64,
    decompressed_max: usize,
) -> Result<BTreeSet<u64>> {
    let mut found = BTreeSet::new();
    let end = target.high_watermark()?;
    let partition = tp.1.to_string();
    let stored = |e: strata_proto::CodecError| BrokerError::Internal(format!("stored batch: {e}"));
    while from < end {
        let read = target.read_blocking(from.max(target.log_start()?), BATCH_BYTES)?;
        if read.batches.is_empty() {
            break;
        }
        for batch in Batch::decode_all(read.batches).map_err(stored)? {
            from = from.max(batch.header().last_offset() as u64 + 1);
            for r in batch.records_within(decompressed_max) {
                let r = r.map_err(stored)?;
                let ours = header_str(&r, HEADER_GROUP) == Some(group.as_bytes())
                    && header_str(&r, HEADER_TOPIC) == Some(tp.0.as_bytes())
                    && header_str(&r, HEADER_PARTITION) == Some(partition.as_bytes());
                let offset = header_str(&r, HEADER_OFFSET)
                    .and_then(|o| std::str::from_utf8(o).ok()?.parse().ok());
                if let (true, Some(o)) = (ours, offset) {
                    found.insert(o);
                }
            }
        }
    }
    Ok(found)
}
