//! What a benchmark message carries, so a consumer can tell who sent it,
//! which one it is, and when it was *scheduled* to be sent (not when it was
//! sent: a producer that falls behind still charges the delay to latency,
//! so the numbers are coordinated-omission safe).
//!
//! Layout, big-endian: `producer u32 | sequence u64 | scheduled_ns u64`,
//! then padding to the message size. `scheduled_ns` counts from the run's
//! start (`Instant`), which producers and consumers share in one process.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of the header; the smallest message size.
pub const HEADER_BYTES: usize = 20;

/// One message's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The producer's number.
    pub producer: u32,
    /// Its sequence number at that producer, from 0.
    pub sequence: u64,
    /// Nanoseconds from the run's start to the scheduled send.
    pub scheduled_ns: u64,
}

/// Makes messages out of one large buffer, split off message by message:
/// one allocation per [`ARENA_BYTES`] instead of one per message, which is
/// what an application reading records from a file or socket would do.
#[derive(Debug, Default)]
pub struct Arena {
    buf: BytesMut,
}

/// Bytes an [`Arena`] allocates at a time.
pub const ARENA_BYTES: usize = 1 << 20;

impl Arena {
    /// A message of `size` bytes (at least [`HEADER_BYTES`]) carrying
    /// `stamp`, padded from `padding` (at least `size` bytes long).
    pub fn encode(&mut self, stamp: Stamp, size: usize, padding: &[u8]) -> Bytes {
        let size = size.max(HEADER_BYTES);
        if self.buf.capacity() - self.buf.len() < size {
            self.buf = BytesMut::with_capacity(ARENA_BYTES.max(size));
        }
        put(&mut self.buf, stamp, size, padding);
        let len = self.buf.len();
        self.buf.split_to(len).freeze()
    }
}

fn put(b: &mut BytesMut, stamp: Stamp, size: usize, padding: &[u8]) {
    b.put_u32(stamp.producer);
    b.put_u64(stamp.sequence);
    b.put_u64(stamp.scheduled_ns);
    let rest = size.saturating_sub(HEADER_BYTES);
    b.put_slice(&padding[..rest.min(padding.len())]);
}

/// The stamp of a message, if it is one of ours.
pub fn decode(value: &[u8]) -> Option<Stamp> {
    let h = value.get(..HEADER_BYTES)?;
    Some(Stamp {
        producer: u32::from_be_bytes(h[0..4].try_into().ok()?),
        sequence: u64::from_be_bytes(h[4..12].try_into().ok()?),
        scheduled_ns: u64::from_be_bytes(h[12..20].try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_at_any_size() {
        let padding = vec![7u8; 4096];
        let s = Stamp {
            producer: 3,
            sequence: 1 << 40,
            scheduled_ns: 123_456_789,
        };
        for size in [HEADER_BYTES, 100, 1024, 4096] {
            let mut arena = Arena::default();
            let m = arena.encode(s, size, &padding);
            assert_eq!(
                arena.encode(s, size, &padding),
                m,
                "a second one from the same arena"
            );
            assert_eq!(m.len(), size);
            assert_eq!(decode(&m), Some(s));
        }
        assert_eq!(decode(b"short"), None);
    }
}
