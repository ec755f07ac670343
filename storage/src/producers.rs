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

use crate::envelope::{EnvelopeError, FileType, Reader, Writer};

/// Batches remembered per producer: a producer with up to this many batches
/// in flight can have any of them retried and deduplicated (as Kafka).
pub const BATCHES_PER_PRODUCER: usize = 5;
/// Producer ids remembered per partition. A new producer past it is
/// refused (`StorageError::ProducersFull`, retriable) unless some known one
/// has been idle for [`PRODUCER_EXPIRY_MS`]: a live producer is never
/// forgotten to make room, since its retry would then be appended twice.
pub const PRODUCERS_MAX: usize = 100_000;
/// A producer that appended nothing for this long may be forgotten when
/// room is needed (Kafka's `producer.id.expiration.ms` default: a day).
pub const PRODUCER_EXPIRY_MS: i64 = 24 * 3600 * 1000;
/// How often a full partition looks for expired producers: the scan is
/// linear, and it runs under the log's writer lock.
const EXPIRY_SCAN_INTERVAL_MS: i64 = 1000;
/// File name of the snapshot.
pub const SNAPSHOT_FILE: &str = "producer-state.snapshot";
/// The snapshot's envelope.
pub const SNAPSHOT_TYPE: FileType = FileType {
    magic: *b"STPS",
    version: 1,
    what: "producer state snapshot",
};

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
    /// The log's clock at its last batch (at open, for loaded ones).
    last_ms: i64,
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
#[derive(Debug, Clone)]
pub struct Producers {
    map: HashMap<i64, Entry>,
    /// [`PRODUCERS_MAX`], smaller in tests.
    max: usize,
    last_scan_ms: i64,
}

impl Default for Producers {
    fn default() -> Self {
        Self::with_max(PRODUCERS_MAX)
    }
}

fn next_seq(s: i32) -> i32 {
    strata_batch::sequence::next(s)
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

    /// An empty state remembering at most `max` producers.
    pub fn with_max(max: usize) -> Self {
        Self {
            map: HashMap::new(),
            max,
            last_scan_ms: i64::MIN,
        }
    }

    /// Whether a batch of `pid` may be recorded at `now_ms`: a known
    /// producer always; a new one if there is room, made by forgetting
    /// producers idle for [`PRODUCER_EXPIRY_MS`] (looked for at most once
    /// per [`EXPIRY_SCAN_INTERVAL_MS`]).
    pub fn has_room_for(&mut self, pid: i64, now_ms: i64) -> bool {
        if self.map.len() < self.max || self.map.contains_key(&pid) {
            return true;
        }
        if now_ms.saturating_sub(self.last_scan_ms) >= EXPIRY_SCAN_INTERVAL_MS {
            self.last_scan_ms = now_ms;
            self.map
                .retain(|_, e| now_ms.saturating_sub(e.last_ms) < PRODUCER_EXPIRY_MS);
        }
        self.map.len() < self.max
    }

    /// Marks every known producer as active at `now_ms` (after a load: the
    /// snapshot does not keep times).
    pub fn touch_all(&mut self, now_ms: i64) {
        for e in self.map.values_mut() {
            e.last_ms = now_ms;
        }
    }

    /// Records an appended batch. Appends check [`Producers::has_room_for`]
    /// first; a replay at open cannot refuse, so when full it forgets the
    /// hundredth of producers whose last batch is oldest, in one pass.
    pub fn record(&mut self, pid: i64, epoch: i16, meta: BatchMeta, now_ms: i64) {
        if !self.map.contains_key(&pid) && self.map.len() >= self.max {
            self.evict_oldest((self.max / 100).max(1));
        }
        let e = self.map.entry(pid).or_default();
        if epoch != e.epoch {
            e.epoch = epoch;
            e.batches.clear();
        }
        e.last_ms = now_ms;
        e.batches.push_back(meta);
        while e.batches.len() > BATCHES_PER_PRODUCER {
            e.batches.pop_front();
        }
    }

    fn evict_oldest(&mut self, n: usize) {
        let mut by_age: Vec<(u64, i64)> = self
            .map
            .iter()
            .map(|(&pid, e)| (e.batches.back().map_or(0, |b| b.last_offset), pid))
            .collect();
        let n = n.min(by_age.len());
        by_age.select_nth_unstable(n - 1);
        for &(_, pid) in &by_age[..n] {
            self.map.remove(&pid);
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
        let mut w = Writer::new(SNAPSHOT_TYPE);
        w.u64(offset).u32(self.map.len() as u32);
        for (pid, e) in &self.map {
            w.i64(*pid).i16(e.epoch).u8(e.batches.len() as u8);
            for m in &e.batches {
                w.i32(m.first_seq)
                    .i32(m.last_seq)
                    .u64(m.base_offset)
                    .u64(m.last_offset);
            }
        }
        w.finish()
    }

    /// Decodes a snapshot into its offset and state.
    pub fn decode(b: &[u8]) -> Result<(u64, Self), EnvelopeError> {
        let mut r = Reader::open(SNAPSHOT_TYPE, b)?;
        let offset = r.u64("offset")?;
        let count = r.u32("producer count")?;
        let mut map = HashMap::new();
        for _ in 0..count {
            let pid = r.i64("producer id")?;
            let epoch = r.i16("epoch")?;
            let n = r.u8("batch count")? as usize;
            let mut batches = VecDeque::with_capacity(n.min(BATCHES_PER_PRODUCER));
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: r.i32("first sequence")?,
                    last_seq: r.i32("last sequence")?,
                    base_offset: r.u64("base offset")?,
                    last_offset: r.u64("last offset")?,
                });
            }
            let last_ms = 0;
            map.insert(
                pid,
                Entry {
                    epoch,
                    batches,
                    last_ms,
                },
            );
        }
        r.finish()?;
        Ok((
            offset,
            Self {
                map,
                ..Self::default()
            },
        ))
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
        p.record(7, 0, meta(0, 3, 100), 0);
        assert_eq!(p.check(7, 0, 0, 2), Ok(Check::Duplicate(meta(0, 3, 100))));
        assert_eq!(
            p.check(7, 0, 5, 6),
            Err(Refusal::OutOfOrder { expected: 3 })
        );
        assert_eq!(p.check(7, 0, 3, 3), Ok(Check::Append));
        p.record(7, 1, meta(0, 1, 200), 0);
        assert_eq!(p.check(7, 0, 1, 1), Err(Refusal::Fenced { current: 1 }));
        assert_eq!(
            p.check(7, 2, 4, 4),
            Err(Refusal::OutOfOrder { expected: 0 })
        );
        for i in 0..10 {
            p.record(9, 0, meta(i, 1, 300 + i as u64), 0);
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
        p.record(1, 0, meta(0, 2, 10), 0);
        p.record(2, 3, meta(5, 1, 12), 0);
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

    #[test]
    fn a_full_partition_refuses_new_producers_until_one_expires() {
        let mut p = Producers::with_max(3);
        for pid in 0..3 {
            assert!(p.has_room_for(pid, 1_000));
            p.record(pid, 0, meta(0, 1, pid as u64), 1_000 + pid);
        }
        // Known ones keep appending; a new one waits: nobody expired.
        assert!(p.has_room_for(1, 2_000));
        assert!(!p.has_room_for(9, 2_000));
        // Producer 1 keeps going, 0 and 2 fall silent for a day.
        p.record(1, 0, meta(1, 1, 10), 5_000);
        let later = 1_002 + PRODUCER_EXPIRY_MS;
        assert!(p.has_room_for(9, later));
        assert_eq!(p.len(), 1, "the two idle ones went, the live one stayed");
        assert_eq!(p.check(1, 0, 2, 2), Ok(Check::Append));
    }

    #[test]
    fn a_replay_past_the_limit_forgets_the_oldest_in_one_pass() {
        let mut p = Producers::with_max(200);
        for pid in 0..201 {
            p.record(pid, 0, meta(0, 1, pid as u64), 0);
        }
        assert_eq!(p.len(), 199, "one hundredth (2) forgotten to make room");
        assert_eq!(p.check(0, 0, 1, 1), Ok(Check::Append), "0 was forgotten");
        assert!(matches!(p.check(5, 0, 0, 0), Ok(Check::Duplicate(_))));
    }
}
