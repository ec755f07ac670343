//! Topic names and the `topic.meta` file.
//!
//! `topic.meta` (big-endian, written atomically like every small file of
//! ours):
//!
//! ```text
//! magic "STTM" | version u16 = 1 | partitions u32 | override count u32 |
//! (key length u16 | key UTF-8 | value length u32 | value UTF-8)* | crc32 u32
//! ```
//!
//! The CRC (IEEE) covers everything before it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::config::TopicConfig;
use super::error::{BrokerError, Result};
use super::partition::Partition;
use crate::storage::checkpoint;
use crate::storage::envelope::{EnvelopeError, FileType, Reader, Writer};
use crate::storage::vfs::Vfs;

/// File name of a topic's metadata inside its directory.
pub const META_FILE: &str = "topic.meta";
/// The envelope of `topic.meta`.
pub const META_TYPE: FileType = FileType {
    magic: *b"STTM",
    version: 2,
    what: "topic.meta",
};
/// `topic.meta` as builds before topic ids wrote it (read, never written).
const META_TYPE_V1: FileType = FileType {
    version: 1,
    ..META_TYPE
};
/// Kafka's limit on topic name length.
pub const NAME_CHARS_MAX: usize = 249;
/// Names with this prefix are the broker's own (for instance, committed
/// consumer offsets); clients cannot create them.
pub const INTERNAL_PREFIX: &str = "__";

/// Checks a topic name against Kafka's rules.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(BrokerError::InvalidTopicName {
            name: name.into(),
            reason: reason.into(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > NAME_CHARS_MAX {
        return bad("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    if name.starts_with(INTERNAL_PREFIX) {
        return bad("names starting with '__' are reserved for the broker's internal topics");
    }
    Ok(())
}

/// A new topic id: a random (version 4) UUID.
pub fn new_id() -> [u8; 16] {
    let mut id = fastrand::u128(..).to_be_bytes();
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

/// `meta` with an id: a topic an older build created gets one now, and
/// its `topic.meta` is rewritten (version 2) so the id stays. If the write
/// fails the topic is still served, under an id that lasts until the next
/// start (and the failure is logged).
pub fn with_id(fs: &dyn Vfs, dir: &Path, mut meta: TopicMeta) -> TopicMeta {
    if meta.id.is_some() {
        return meta;
    }
    meta.id = Some(new_id());
    match meta.write(fs, dir) {
        Ok(()) => {
            tracing::info!(dir = %dir.display(), "gave a topic of an older build its topic id")
        }
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "could not persist a new topic id")
        }
    }
    meta
}

/// What `topic.meta` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Number of partitions.
    pub partitions: u32,
    /// Config keys set on this topic.
    pub overrides: BTreeMap<String, String>,
    /// The topic's UUID; `None` only in a version-1 file, until the
    /// broker gives it one.
    pub id: Option<[u8; 16]>,
}

impl TopicMeta {
    /// Encodes the file.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(META_TYPE);
        w.u32(self.partitions).u32(self.overrides.len() as u32);
        for (k, v) in &self.overrides {
            w.u16(k.len() as u16).bytes(k.as_bytes());
            w.u32(v.len() as u32).bytes(v.as_bytes());
        }
        w.bytes(&self.id.unwrap_or_default());
        w.finish()
    }

    /// Decodes the file, or says what is wrong with it.
    pub fn decode(b: &[u8]) -> std::result::Result<Self, EnvelopeError> {
        let (mut r, has_id) = match Reader::open(META_TYPE, b) {
            Ok(r) => (r, true),
            Err(EnvelopeError::Version { found: 1, .. }) => (Reader::open(META_TYPE_V1, b)?, false),
            Err(e) => return Err(e),
        };
        let partitions = r.u32("partitions")?;
        let count = r.u32("override count")?;
        let mut overrides = BTreeMap::new();
        for _ in 0..count {
            let kl = r.u16("key length")? as usize;
            let k = r.string("key", kl)?;
            let vl = r.u32("value length")? as usize;
            let v = r.string("value", vl)?;
            overrides.insert(k, v);
        }
        let id = if has_id {
            let mut id = [0u8; 16];
            id.copy_from_slice(r.bytes("topic id", 16)?);
            Some(id)
        } else {
            None
        };
        r.finish()?;
        Ok(Self {
            partitions,
            overrides,
            id,
        })
    }

    /// Reads `dir/topic.meta`.
    pub fn read(fs: &dyn Vfs, dir: &Path) -> Result<std::result::Result<Self, String>> {
        let path = dir.join(META_FILE);
        match fs.read(&path) {
            Ok(b) => Ok(Self::decode(&b).map_err(|e| format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Err(format!("{} is missing", path.display())))
            }
            Err(e) => Err(BrokerError::io(path, "read topic metadata")(e)),
        }
    }

    /// Writes `dir/topic.meta` atomically.
    pub fn write(&self, fs: &dyn Vfs, dir: &Path) -> Result<()> {
        Ok(checkpoint::write_atomic(
            fs,
            dir,
            META_FILE,
            &self.encode(),
        )?)
    }
}

#[derive(Debug)]
pub(super) struct TopicState {
    pub(super) meta: TopicMeta,
    pub(super) config: TopicConfig,
}

/// One topic.
#[derive(Debug)]
pub struct Topic {
    pub(super) name: Arc<str>,
    pub(super) dir: PathBuf,
    pub(super) state: Mutex<TopicState>,
    pub(super) partitions: RwLock<Vec<Arc<Partition>>>,
    /// Why the topic's metadata could not be read, if it could not.
    pub(super) damaged: Option<String>,
}

impl Topic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its id: a random UUID given at creation (or, for a topic an older
    /// build created, at the first start of this one), never reused.
    pub fn id(&self) -> [u8; 16] {
        self.state
            .lock()
            .expect("topic lock")
            .meta
            .id
            .unwrap_or_default()
    }

    /// Its partitions, in order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().expect("partitions lock").clone()
    }

    /// The effective config.
    pub fn config(&self) -> TopicConfig {
        self.state.lock().expect("topic lock").config.clone()
    }

    /// The keys set on this topic.
    pub fn overrides(&self) -> BTreeMap<String, String> {
        self.state
            .lock()
            .expect("topic lock")
            .meta
            .overrides
            .clone()
    }

    /// Why the topic is unusable, if it is.
    pub fn damage(&self) -> Option<&str> {
        self.damaged.as_deref()
    }

    /// Partition `id`.
    pub fn partition(&self, id: u32) -> Result<Arc<Partition>> {
        if let Some(reason) = &self.damaged {
            return Err(BrokerError::PartitionFailed {
                topic: self.name.to_string(),
                partition: id,
                reason: reason.clone(),
            });
        }
        let parts = self.partitions.read().expect("partitions lock");
        parts
            .get(id as usize)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownPartition {
                topic: self.name.to_string(),
                partition: id,
                count: parts.len() as u32,
            })
    }
}

/// Removes everything in `dir`: what an interrupted create or delete left
/// in `staging/` or `trash/`.
pub(super) fn remove_children(fs: &dyn Vfs, dir: &Path) -> Result<()> {
    for e in fs
        .list(dir)
        .map_err(BrokerError::io(dir, "list directory"))?
    {
        let p = dir.join(&e.name);
        let removed = if e.is_dir {
            fs.remove_dir_all(&p)
        } else {
            fs.remove_file(&p)
        };
        removed.map_err(BrokerError::io(&p, "remove leftover"))?;
        tracing::info!(path = %p.display(), "removed the leftover of an interrupted topic create or delete");
    }
    Ok(())
}

/// Removes what an interrupted atomic write left in `dir` (`*.tmp`: the
/// file it was to replace still stands), as the storage engine does in a
/// partition directory.
pub(super) fn remove_tmp_files(fs: &dyn Vfs, dir: &Path) -> Result<()> {
    for e in fs
        .list(dir)
        .map_err(BrokerError::io(dir, "list directory"))?
    {
        if !e.is_dir && e.name.ends_with(".tmp") {
            let p = dir.join(&e.name);
            fs.remove_file(&p)
                .map_err(BrokerError::io(&p, "remove leftover"))?;
            tracing::info!(path = %p.display(), "removed the leftover of an interrupted write");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        for ok in ["a", "orders", "Orders.v2_x-1", &"x".repeat(249)] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "é",
            "__consumer_offsets",
            &"x".repeat(250),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn meta_round_trips_and_detects_damage() {
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "5".to_string());
        let m = TopicMeta {
            partitions: 3,
            overrides,
            id: Some(new_id()),
        };
        let b = m.encode();
        assert_eq!(TopicMeta::decode(&b).unwrap(), m);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(TopicMeta::decode(&bad).is_err(), "flip at {i}");
        }
        assert!(TopicMeta::decode(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn a_version_1_meta_reads_without_an_id() {
        // Version 1: the same body without the id, as older builds wrote it.
        let mut w = Writer::new(META_TYPE_V1);
        w.u32(2).u32(0);
        let v1 = w.finish();
        let m = TopicMeta::decode(&v1).unwrap();
        assert_eq!((m.partitions, m.id), (2, None));
        let ids: std::collections::BTreeSet<[u8; 16]> = (0..100).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 100, "ids are not reused");
        assert!(ids.iter().all(|id| id[6] >> 4 == 4), "version 4 UUIDs");
    }
}
