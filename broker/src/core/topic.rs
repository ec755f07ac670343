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
use std::path::Path;

use super::error::{BrokerError, Result};
use crate::storage::checkpoint;
use crate::storage::envelope::{EnvelopeError, FileType, Reader, Writer};
use crate::storage::vfs::Vfs;

/// File name of a topic's metadata inside its directory.
pub const META_FILE: &str = "topic.meta";
/// The envelope of `topic.meta`.
pub const META_TYPE: FileType = FileType {
    magic: *b"STTM",
    version: 1,
    what: "topic.meta",
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

/// What `topic.meta` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Number of partitions.
    pub partitions: u32,
    /// Config keys set on this topic.
    pub overrides: BTreeMap<String, String>,
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
        w.finish()
    }

    /// Decodes the file, or says what is wrong with it.
    pub fn decode(b: &[u8]) -> std::result::Result<Self, EnvelopeError> {
        let mut r = Reader::open(META_TYPE, b)?;
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
        r.finish()?;
        Ok(Self {
            partitions,
            overrides,
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
}
