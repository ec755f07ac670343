//! The groups' durable state: one internal log, `<data-dir>/groups/log/`,
//! in the same segment format as a partition (Kafka's `__consumer_offsets`,
//! on one partition). Two kinds of record, each keyed so that the newest
//! record per key is the truth and a tombstone (no value) deletes:
//!
//! - an offset commit, key (group, topic, partition);
//! - a group's membership (epoch, assignor, members, target), key (group).
//!
//! The log is opened in page-cache mode and fsynced with [`Store::sync_to`]
//! after the coordinator's lock is released, so concurrent commits share
//! one fsync (group commit) while the log's order stays the lock's order.
//! At startup the whole log is replayed into memory; nothing is read from
//! it afterwards. `docs/FORMAT.md` lays out the keys and values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use prost::Message;
use strata_proto::BatchBuilder;

use super::assignor::{Assignor, Tp};
use super::group::{Committed, Group};
use crate::core::error::{BrokerError, Result};
use crate::storage::{Clock, Durability, Fs, Log, LogConfig, Offset, SystemClock};

/// The first byte of every key: the key layout's version.
const KEY_VERSION: u8 = 1;
/// The second byte: an offset commit.
const KIND_OFFSET: u8 = 1;
/// The second byte: a group's membership.
const KIND_GROUP: u8 = 2;
/// The second byte: a share group's settings.
const KIND_SHARE_GROUP: u8 = 3;
/// The second byte: a share partition's snapshot.
const KIND_SHARE_SNAPSHOT: u8 = 4;
/// The second byte: a share partition's update (one of a ring of keys).
const KIND_SHARE_UPDATE: u8 = 5;
/// Segment size of the groups log unless the settings say otherwise
/// (`GroupSettings::log_segment_bytes`): small, so compaction (which only
/// rewrites sealed segments) keeps the log small.
pub const SEGMENT_BYTES: u64 = 16 << 20;
/// How long a deleted group's or offset's tombstone stays (Kafka's
/// `delete.retention.ms` default).
const DELETE_RETENTION_MS: i64 = 24 * 3600 * 1000;
/// The uncompacted share that starts a pass (Kafka's default).
const MIN_DIRTY_RATIO: f64 = 0.5;

/// A record's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A committed offset.
    Offset {
        /// The group.
        group: String,
        /// The partition.
        tp: Tp,
    },
    /// A group's membership.
    Group(String),
    /// A share group's settings (`core::share::state`).
    ShareGroup(String),
    /// A share partition's whole state.
    ShareSnapshot {
        /// The share group.
        group: String,
        /// The partition.
        tp: Tp,
    },
    /// A share partition's changes since its snapshot, on a ring of keys.
    ShareUpdate {
        /// The share group.
        group: String,
        /// The partition.
        tp: Tp,
        /// Position on the ring.
        slot: u32,
    },
}

fn put_tp(b: &mut Vec<u8>, tp: &Tp) {
    put_str(b, &tp.0);
    b.extend_from_slice(&tp.1.to_be_bytes());
}

fn get_u32(b: &mut &[u8]) -> Option<u32> {
    let (v, rest) = b.split_first_chunk::<4>()?;
    *b = rest;
    Some(u32::from_be_bytes(*v))
}

fn get_tp(b: &mut &[u8]) -> Option<Tp> {
    let topic = get_str(b)?;
    Some((topic, get_u32(b)?))
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u16).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn get_str(b: &mut &[u8]) -> Option<String> {
    let (len, rest) = b.split_first_chunk::<2>()?;
    let len = u16::from_be_bytes(*len) as usize;
    let s = std::str::from_utf8(rest.get(..len)?).ok()?.to_string();
    *b = &rest[len..];
    Some(s)
}

impl Key {
    /// The key's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![KEY_VERSION];
        match self {
            Self::Offset { group, tp } => {
                b.push(KIND_OFFSET);
                put_str(&mut b, group);
                put_tp(&mut b, tp);
            }
            Self::Group(group) => {
                b.push(KIND_GROUP);
                put_str(&mut b, group);
            }
            Self::ShareGroup(group) => {
                b.push(KIND_SHARE_GROUP);
                put_str(&mut b, group);
            }
            Self::ShareSnapshot { group, tp } => {
                b.push(KIND_SHARE_SNAPSHOT);
                put_str(&mut b, group);
                put_tp(&mut b, tp);
            }
            Self::ShareUpdate { group, tp, slot } => {
                b.push(KIND_SHARE_UPDATE);
                put_str(&mut b, group);
                put_tp(&mut b, tp);
                b.extend_from_slice(&slot.to_be_bytes());
            }
        }
        b
    }

    /// Parses a key; `None` if it is not one of ours.
    pub fn decode(mut b: &[u8]) -> Option<Self> {
        let (&[version, kind], rest) = b.split_first_chunk::<2>()?;
        if version != KEY_VERSION {
            return None;
        }
        b = rest;
        let key = match kind {
            KIND_OFFSET => Self::Offset {
                group: get_str(&mut b)?,
                tp: get_tp(&mut b)?,
            },
            KIND_GROUP => Self::Group(get_str(&mut b)?),
            KIND_SHARE_GROUP => Self::ShareGroup(get_str(&mut b)?),
            KIND_SHARE_SNAPSHOT => Self::ShareSnapshot {
                group: get_str(&mut b)?,
                tp: get_tp(&mut b)?,
            },
            KIND_SHARE_UPDATE => Self::ShareUpdate {
                group: get_str(&mut b)?,
                tp: get_tp(&mut b)?,
                slot: get_u32(&mut b)?,
            },
            _ => return None,
        };
        b.is_empty().then_some(key)
    }
}

/// The value of an offset commit.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OffsetValue {
    /// The next offset to read.
    #[prost(int64, tag = "1")]
    pub offset: i64,
    /// The application's note.
    #[prost(string, tag = "2")]
    pub metadata: String,
    /// Wall-clock time of the commit (ms).
    #[prost(int64, tag = "3")]
    pub timestamp_ms: i64,
}

/// A topic and partition.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TpValue {
    /// Topic.
    #[prost(string, tag = "1")]
    pub topic: String,
    /// Partition.
    #[prost(uint32, tag = "2")]
    pub partition: u32,
}

/// One member, as persisted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MemberValue {
    /// Member id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Static instance id (empty: none).
    #[prost(string, tag = "2")]
    pub instance_id: String,
    /// Client name.
    #[prost(string, tag = "3")]
    pub client_id: String,
    /// Client address.
    #[prost(string, tag = "4")]
    pub host: String,
    /// Subscription.
    #[prost(string, repeated, tag = "5")]
    pub topics: Vec<String>,
    /// Session timeout.
    #[prost(uint32, tag = "6")]
    pub session_timeout_ms: u32,
    /// Revocation timeout.
    #[prost(uint32, tag = "7")]
    pub rebalance_timeout_ms: u32,
    /// Member epoch.
    #[prost(int32, tag = "8")]
    pub epoch: i32,
    /// The epoch before.
    #[prost(int32, tag = "9")]
    pub previous_epoch: i32,
    /// Assigned partitions.
    #[prost(message, repeated, tag = "10")]
    pub assigned: Vec<TpValue>,
    /// Partitions being revoked.
    #[prost(message, repeated, tag = "11")]
    pub revoking: Vec<TpValue>,
    /// A static member away for now.
    #[prost(bool, tag = "12")]
    pub away: bool,
}

/// One member's target.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TargetValue {
    /// Member id.
    #[prost(string, tag = "1")]
    pub member: String,
    /// Its target partitions.
    #[prost(message, repeated, tag = "2")]
    pub partitions: Vec<TpValue>,
}

/// A group's membership, as persisted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupValue {
    /// Group epoch.
    #[prost(int32, tag = "1")]
    pub epoch: i32,
    /// Assignor name.
    #[prost(string, tag = "2")]
    pub assignor: String,
    /// Members.
    #[prost(message, repeated, tag = "3")]
    pub members: Vec<MemberValue>,
    /// Target assignment.
    #[prost(message, repeated, tag = "4")]
    pub target: Vec<TargetValue>,
    /// Partition counts the target was computed with.
    #[prost(btree_map = "string, uint32", tag = "5")]
    pub counts: BTreeMap<String, u32>,
}

/// The persisted form of a set of partitions.
pub(super) fn tps(set: &BTreeSet<Tp>) -> Vec<TpValue> {
    set.iter()
        .map(|(topic, partition)| TpValue {
            topic: topic.clone(),
            partition: *partition,
        })
        .collect()
}

/// A set of partitions from its persisted form.
pub(super) fn from_tps(v: Vec<TpValue>) -> BTreeSet<Tp> {
    v.into_iter().map(|t| (t.topic, t.partition)).collect()
}

/// A record to append: key and value (`None`: tombstone).
pub type Entry = (Key, Option<Vec<u8>>);

/// What opening the groups log found.
#[derive(Debug)]
pub struct Loaded {
    /// The log, open for appends.
    pub store: Store,
    /// Consumer groups.
    pub groups: BTreeMap<String, Group>,
    /// Share groups' records in log order (a tombstone has no value).
    pub share: Vec<Entry>,
}

/// The internal log.
#[derive(Debug)]
pub struct Store {
    log: Log,
    /// Wall-clock time of the last compaction pass (or of the open).
    last_compaction_ms: std::sync::atomic::AtomicI64,
}

fn storage(e: crate::storage::StorageError) -> BrokerError {
    BrokerError::Storage {
        topic: "(groups)".into(),
        partition: 0,
        source: e,
    }
}

impl Store {
    /// Opens (or creates) the log in `dir` and replays it; `now_ms` is the
    /// coordinator's clock, for members' fresh sessions. Share groups'
    /// records come back as they are, in log order, for `core::share` to
    /// replay.
    pub fn open(fs: &Fs, dir: &Path, now_ms: u64, segment_bytes: u64) -> Result<Loaded> {
        let config = LogConfig {
            fs: fs.clone(),
            durability: Durability::PageCache,
            segment_bytes_max: segment_bytes,
            keys_required: true,
            ..LogConfig::default()
        };
        let log = Log::open(dir, config).map_err(storage)?;
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        let mut share = Vec::new();
        let mut records = 0u64;
        log.for_each_record(Offset(0), |rec| {
            records += 1;
            let Some(key) = rec.key.as_deref().and_then(Key::decode) else {
                tracing::warn!(
                    offset = rec.offset,
                    "skipping a groups record with an unknown key"
                );
                return Ok(());
            };
            if let Key::ShareGroup(_) | Key::ShareSnapshot { .. } | Key::ShareUpdate { .. } = key {
                share.push((key, rec.value.map(|v| v.to_vec())));
                return Ok(());
            }
            let at = rec.offset as u64;
            apply(&mut groups, key, rec.value.as_deref(), at, now_ms).map_err(|reason| {
                crate::storage::StorageError::corrupt(log.dir(), rec.offset as u64, reason)
            })
        })
        .map_err(storage)?;
        groups.retain(|_, g| !g.is_empty());
        tracing::info!(
            groups = groups.len(),
            records,
            bytes = log.size_bytes(),
            "consumer groups loaded"
        );
        let now = SystemClock.now_ms();
        let store = Self {
            log,
            last_compaction_ms: std::sync::atomic::AtomicI64::new(now),
        };
        Ok(Loaded {
            store,
            groups,
            share,
        })
    }

    /// Appends entries in one batch (all or none); returns the offset to
    /// [`Store::sync_to`] for durability.
    pub fn append(&self, entries: &[Entry], now_wall_ms: i64) -> Result<u64> {
        let mut b = BatchBuilder::new();
        for (key, value) in entries {
            b.push(now_wall_ms, Some(&key.encode()), value.as_deref(), &[]);
        }
        let info = self.log.append(&b.finish()).map_err(storage)?;
        Ok(info.last_offset.0 + 1)
    }

    /// Waits until everything below `target` is fsynced.
    pub fn sync_to(&self, target: u64) -> Result<()> {
        self.log.sync_to(target).map_err(storage)
    }

    /// Compacts the log (one record per group and per committed
    /// partition survives) once half of it is uncompacted, or once a day
    /// so deleted groups' tombstones go. Blocking; runs beside appends.
    pub fn compact_if_due(&self, map_bytes_max: u64, now_ms: i64) -> Result<bool> {
        use std::sync::atomic::Ordering;
        let (dirty, total) = self.log.dirty_bytes().map_err(storage)?;
        let quiet_for = now_ms - self.last_compaction_ms.load(Ordering::Acquire);
        if total == 0
            || ((dirty as f64) < MIN_DIRTY_RATIO * total as f64 && quiet_for < DELETE_RETENTION_MS)
        {
            return Ok(false);
        }
        let opts = crate::storage::CompactOptions {
            map_bytes_max: map_bytes_max as usize,
            delete_retention_ms: DELETE_RETENTION_MS,
        };
        while self.log.compact(&opts).map_err(storage)?.more {}
        self.last_compaction_ms.store(now_ms, Ordering::Release);
        Ok(true)
    }

    /// Closes the log cleanly.
    pub fn close(&self) -> Result<()> {
        self.log.close().map_err(storage)
    }

    /// Bytes on disk.
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }
}

/// Applies one record of the groups log; `Err` says why its value is bad.
fn apply(
    groups: &mut BTreeMap<String, Group>,
    key: Key,
    value: Option<&[u8]>,
    log_offset: u64,
    now_ms: u64,
) -> std::result::Result<(), String> {
    let bad = |e: prost::DecodeError| format!("undecodable groups record value: {e}");
    let name = match &key {
        Key::Offset { group, .. } | Key::Group(group) => group.clone(),
        _ => return Err("a share record among consumer groups'".into()),
    };
    let g = groups
        .entry(name.clone())
        .or_insert_with(|| Group::new(&name, Assignor::default()));
    match (key, value) {
        (Key::Offset { tp, .. }, Some(v)) => {
            let v = OffsetValue::decode(v).map_err(bad)?;
            let c = Committed {
                offset: v.offset,
                metadata: v.metadata,
                timestamp_ms: v.timestamp_ms,
                log_offset,
            };
            g.apply_commit(tp, c);
        }
        (Key::Offset { tp, .. }, None) => g.remove_offset(&tp),
        (Key::Group(_), Some(v)) => g.restore(Some(GroupValue::decode(v).map_err(bad)?), now_ms),
        (Key::Group(_), None) => g.restore(None, now_ms),
        _ => unreachable!("share keys returned above"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_garbage_is_not_a_key() {
        for k in [
            Key::Group("g".into()),
            Key::Offset {
                group: "g".into(),
                tp: ("t".into(), 7),
            },
            Key::ShareGroup("s".into()),
            Key::ShareSnapshot {
                group: "s".into(),
                tp: ("t".into(), 3),
            },
            Key::ShareUpdate {
                group: "s".into(),
                tp: ("t".into(), 3),
                slot: 255,
            },
        ] {
            assert_eq!(Key::decode(&k.encode()), Some(k));
        }
        assert_eq!(Key::decode(b""), None);
        assert_eq!(Key::decode(&[KEY_VERSION, 9, 0, 0]), None);
        let mut k = Key::Group("g".into()).encode();
        k.push(0);
        assert_eq!(Key::decode(&k), None, "trailing bytes");
    }
}
