//! Idempotent producers' state in one partition: for each producer id, its
//! epoch and its last few batches' sequence numbers and offsets. It is what
//! lets the log drop a batch it already appended (a producer's retry after
//! a lost response) and answer with the original offsets.
//!
//! The state is derived from the log: every batch header carries producer
//! id, epoch and base sequence. To avoid re-reading a whole partition at
//! startup, it is saved in `producer-state.snapshot` at every segment roll
//! and clean close, and at open the headers after the snapshot's offset are
//! replayed over it.
//!
//! Snapshot layout (big-endian): `magic "STPS" | version u16 = 1 |
//! offset u64 | producer count u32 | (producer id i64 | epoch i16 |
//! batch count u8 | (first seq i32 | last seq i32 | base offset u64 |
//! last offset u64)*)* | crc32 u32` (IEEE, of everything before it).

use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer: a producer with up to this many batches
/// in flight can have any of them retried and deduplicated (as Kafka).
pub const BATCHES_PER_PRODUCER: usize = 5;
/// Producer ids remembered per partition; past it the one idle longest is
/// forgotten (its next batch is then accepted as from a new producer).
pub const PRODUCERS_MAX: usize = 100_000;
/// File name of the snapshot.
pub const SNAPSHOT_FILE: &str = "producer-state.snapshot";
const MAGIC: [u8; 4] = *b"STPS";
const VERSION: u16 = 1;

/// Where one batch of a producer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of its first record.
    pub first_seq: i32,
    /// Sequence of its last record.
    pub last_seq: i32,
    /// Offset of its first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append it.
    Append,
    /// It was appended before, here.
    Duplicate(BatchMeta),
}

/// Why a batch's producer fields are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An older epoch than the producer's current one: a zombie.
    Fenced {
        /// The epoch the broker knows.
        current: i16,
    },
    /// A gap or reordering in the sequence.
    OutOfOrder {
        /// The sequence the broker expected next.
        expected: i32,
    },
}

/// All producers of one partition.
#[derive(Debug, Clone, Default)]
pub struct Producers {
    map: HashMap<i64, Entry>,
}

fn next_seq(s: i32) -> i32 {
    if s == i32::MAX { 0 } else { s + 1 }
}

impl Producers {
    /// Decides whether a batch of `pid` is new, a duplicate, or refused.
    pub fn check(
        &self,
        pid: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<Check, Refusal> {
        let Some(e) = self.map.get(&pid) else {
            // A producer we do not know (new, or forgotten): accept.
            return Ok(Check::Append);
        };
        if epoch < e.epoch {
            return Err(Refusal::Fenced { current: e.epoch });
        }
        if epoch > e.epoch {
            return if first_seq == 0 {
                Ok(Check::Append)
            } else {
                Err(Refusal::OutOfOrder { expected: 0 })
            };
        }
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(Check::Duplicate(*b));
        }
        let expected = e.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if first_seq == expected {
            Ok(Check::Append)
        } else {
            Err(Refusal::OutOfOrder { expected })
        }
    }

    /// Records an appended batch.
    pub fn record(&mut self, pid: i64, epoch: i16, meta: BatchMeta) {
        if !self.map.contains_key(&pid) && self.map.len() >= PRODUCERS_MAX {
            // Forget the producer whose last batch is oldest.
            if let Some((&old, _)) = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.batches.back().map_or(0, |b| b.last_offset))
            {
                self.map.remove(&old);
            }
        }
        let e = self.map.entry(pid).or_default();
        if epoch != e.epoch {
            e.epoch = epoch;
            e.batches.clear();
        }
        e.batches.push_back(meta);
        while e.batches.len() > BATCHES_PER_PRODUCER {
            e.batches.pop_front();
        }
    }

    /// Number of producers known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Encodes a snapshot of the state as of `offset`.
    pub fn encode(&self, offset: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&VERSION.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&(self.map.len() as u32).to_be_bytes());
        for (pid, e) in &self.map {
            b.extend_from_slice(&pid.to_be_bytes());
            b.extend_from_slice(&e.epoch.to_be_bytes());
            b.push(e.batches.len() as u8);
            for m in &e.batches {
                b.extend_from_slice(&m.first_seq.to_be_bytes());
                b.extend_from_slice(&m.last_seq.to_be_bytes());
                b.extend_from_slice(&m.base_offset.to_be_bytes());
                b.extend_from_slice(&m.last_offset.to_be_bytes());
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes a snapshot into its offset and state.
    pub fn decode(b: &[u8]) -> Result<(u64, Self), String> {
        if b.len() < 22 {
            return Err("too short".into());
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return Err("CRC mismatch".into());
        }
        if body[0..4] != MAGIC || body[4..6] != VERSION.to_be_bytes() {
            return Err("bad magic or version".into());
        }
        let mut pos = 6;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let s = body.get(pos..pos + n).ok_or("truncated")?;
            pos += n;
            Ok(s)
        };
        let offset = u64::from_be_bytes(take(8)?.try_into().expect("8"));
        let count = u32::from_be_bytes(take(4)?.try_into().expect("4"));
        let mut map = HashMap::new();
        for _ in 0..count {
            let pid = i64::from_be_bytes(take(8)?.try_into().expect("8"));
            let epoch = i16::from_be_bytes(take(2)?.try_into().expect("2"));
            let n = take(1)?[0] as usize;
            let mut batches = VecDeque::with_capacity(n.min(BATCHES_PER_PRODUCER));
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: i32::from_be_bytes(take(4)?.try_into().expect("4")),
                    last_seq: i32::from_be_bytes(take(4)?.try_into().expect("4")),
                    base_offset: u64::from_be_bytes(take(8)?.try_into().expect("8")),
                    last_offset: u64::from_be_bytes(take(8)?.try_into().expect("8")),
                });
            }
            map.insert(pid, Entry { epoch, batches });
        }
        Ok((offset, Self { map }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first: i32, n: i32, base: u64) -> BatchMeta {
        BatchMeta {
            first_seq: first,
            last_seq: first + n - 1,
            base_offset: base,
            last_offset: base + n as u64 - 1,
        }
    }

    #[test]
    fn sequences_dedupe_and_refuse_gaps() {
        let mut p = Producers::default();
        assert_eq!(p.check(7, 0, 0, 2), Ok(Check::Append));
        p.record(7, 0, meta(0, 3, 100));
        assert_eq!(p.check(7, 0, 0, 2), Ok(Check::Duplicate(meta(0, 3, 100))));
        assert_eq!(
            p.check(7, 0, 5, 6),
            Err(Refusal::OutOfOrder { expected: 3 })
        );
        assert_eq!(p.check(7, 0, 3, 3), Ok(Check::Append));
        p.record(7, 1, meta(0, 1, 200));
        assert_eq!(p.check(7, 0, 1, 1), Err(Refusal::Fenced { current: 1 }));
        assert_eq!(
            p.check(7, 2, 4, 4),
            Err(Refusal::OutOfOrder { expected: 0 })
        );
        for i in 0..10 {
            p.record(9, 0, meta(i, 1, 300 + i as u64));
        }
        // Only the last five batches are remembered.
        assert_eq!(
            p.check(9, 0, 0, 0),
            Err(Refusal::OutOfOrder { expected: 10 })
        );
        assert!(matches!(p.check(9, 0, 9, 9), Ok(Check::Duplicate(_))));
    }

    #[test]
    fn snapshots_round_trip_and_detect_damage() {
        let mut p = Producers::default();
        p.record(1, 0, meta(0, 2, 10));
        p.record(2, 3, meta(5, 1, 12));
        let b = p.encode(13);
        let (off, q) = Producers::decode(&b).unwrap();
        assert_eq!(off, 13);
        assert_eq!(q.check(1, 0, 0, 1), Ok(Check::Duplicate(meta(0, 2, 10))));
        assert_eq!(q.check(2, 3, 6, 6), Ok(Check::Append));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(Producers::decode(&bad).is_err(), "flip at {i}");
        }
    }
}
