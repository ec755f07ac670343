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

/// A message of `size` bytes (at least [`HEADER_BYTES`]) carrying `stamp`.
pub fn encode(stamp: Stamp, size: usize, padding: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(size.max(HEADER_BYTES));
    b.put_u32(stamp.producer);
    b.put_u64(stamp.sequence);
    b.put_u64(stamp.scheduled_ns);
    let rest = size.saturating_sub(HEADER_BYTES);
    b.put_slice(&padding[..rest.min(padding.len())]);
    b.freeze()
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
            let m = encode(s, size, &padding);
            assert_eq!(m.len(), size);
            assert_eq!(decode(&m), Some(s));
        }
        assert_eq!(decode(b"short"), None);
    }
}
