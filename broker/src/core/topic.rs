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
use crate::storage::vfs::Vfs;

/// File name of a topic's metadata inside its directory.
pub const META_FILE: &str = "topic.meta";
/// Magic of `topic.meta`.
pub const META_MAGIC: [u8; 4] = *b"STTM";
/// Version of `topic.meta`.
pub const META_VERSION: u16 = 1;
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
        let mut b = Vec::new();
        b.extend_from_slice(&META_MAGIC);
        b.extend_from_slice(&META_VERSION.to_be_bytes());
        b.extend_from_slice(&self.partitions.to_be_bytes());
        b.extend_from_slice(&(self.overrides.len() as u32).to_be_bytes());
        for (k, v) in &self.overrides {
            b.extend_from_slice(&(k.len() as u16).to_be_bytes());
            b.extend_from_slice(k.as_bytes());
            b.extend_from_slice(&(v.len() as u32).to_be_bytes());
            b.extend_from_slice(v.as_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes the file, or says what is wrong with it.
    pub fn decode(b: &[u8]) -> std::result::Result<Self, String> {
        if b.len() < 18 {
            return Err(format!("{} bytes is too short", b.len()));
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return Err("CRC mismatch".into());
        }
        if body[0..4] != META_MAGIC {
            return Err("bad magic".into());
        }
        let version = u16::from_be_bytes([body[4], body[5]]);
        if version != META_VERSION {
            return Err(format!("unsupported version {version}"));
        }
        let mut pos = 6;
        let mut take = |n: usize| -> std::result::Result<&[u8], String> {
            let s = body.get(pos..pos + n).ok_or("truncated")?;
            pos += n;
            Ok(s)
        };
        let partitions = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes"));
        let count = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes"));
        let mut overrides = BTreeMap::new();
        for _ in 0..count {
            let kl = u16::from_be_bytes(take(2)?.try_into().expect("2 bytes")) as usize;
            let k = String::from_utf8(take(kl)?.to_vec()).map_err(|_| "key is not UTF-8")?;
            let vl = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
            let v = String::from_utf8(take(vl)?.to_vec()).map_err(|_| "value is not UTF-8")?;
            overrides.insert(k, v);
        }
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
