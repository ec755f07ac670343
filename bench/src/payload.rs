//! What a benchmark message carries, so a consumer can tell who sent it,
//! which one it is, and when it was *scheduled* to be sent (not when it was
//! sent: a producer that falls behind still charges the delay to latency,
//! so the numbers are coordinated-omission safe).
//!
//! Layout, big-endian: `producer u32 | sequence u64 | scheduled_ns u64`,
//! then padding to the message size. `scheduled_ns` counts from the run's
//! start (`Instant`), which producers and consumers share in one process.
//!
//! The padding comes from a [`Pool`] made once per producer: random bytes
//! (nothing to compress: the worst case for a codec) or JSON-like event
//! text (field names repeat, values vary, as in real records). Each message
//! takes its padding from a different place in the pool, so messages are
//! not copies of each other and a codec cannot just point at the last one.

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

/// What message padding looks like (`--payload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PayloadKind {
    /// Random bytes: incompressible.
    Random,
    /// JSON-like event records, as text.
    Json,
}

/// Bytes of padding a pool holds (at least this, or four messages).
const POOL_BYTES_MIN: usize = 1 << 20;

/// Padding to cut messages from.
#[derive(Debug, Clone)]
pub struct Pool {
    bytes: Vec<u8>,
}

impl Pool {
    /// A pool of `kind` for messages of `message_size`, from `seed`.
    pub fn new(kind: PayloadKind, message_size: usize, seed: u64) -> Self {
        let len = POOL_BYTES_MIN.max(4 * message_size);
        let mut rng = seed | 1;
        let mut next = move || {
            // xorshift64: fast, and the same pool for the same seed.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut bytes = Vec::with_capacity(len + 512);
        match kind {
            PayloadKind::Random => {
                while bytes.len() < len {
                    bytes.extend_from_slice(&next().to_le_bytes());
                }
            }
            PayloadKind::Json => {
                const EVENTS: [&str; 6] = [
                    "page_view",
                    "click",
                    "add_to_cart",
                    "checkout",
                    "search",
                    "login",
                ];
                const COUNTRIES: [&str; 8] = ["DE", "US", "FR", "JP", "BR", "IN", "GB", "NL"];
                while bytes.len() < len {
                    let r = next();
                    let line = format!(
                        r#"{{"event_id":"{:016x}","user_id":{},"session":"s-{:08x}","event":"{}","path":"/products/{}","country":"{}","price_cents":{},"ts":{},"ok":{}}}"#,
                        r,
                        r % 1_000_000,
                        (r >> 20) as u32,
                        EVENTS[(r % 6) as usize],
                        (r >> 8) % 10_000,
                        COUNTRIES[((r >> 4) % 8) as usize],
                        (r >> 12) % 100_000,
                        1_700_000_000_000u64 + (r >> 24) % 1_000_000_000,
                        r % 5 != 0
                    );
                    bytes.extend_from_slice(line.as_bytes());
                    bytes.push(b'\n');
                }
            }
        }
        Self { bytes }
    }

    /// The padding for message `sequence`: `len` bytes from a place that
    /// moves with the sequence number.
    pub fn padding(&self, sequence: u64, len: usize) -> &[u8] {
        let room = self.bytes.len().saturating_sub(len).max(1);
        // A large odd stride: consecutive messages start far apart.
        let at = (sequence.wrapping_mul(7_919) % room as u64) as usize;
        &self.bytes[at..(at + len).min(self.bytes.len())]
    }
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
    fn json_pools_compress_and_random_ones_do_not() {
        use strata_client::Compression;
        use strata_client::proto::compression::compress;
        let json = Pool::new(PayloadKind::Json, 1024, 7);
        let random = Pool::new(PayloadKind::Random, 1024, 7);
        let sample =
            |p: &Pool| -> Vec<u8> { (0..256).flat_map(|s| p.padding(s, 1004).to_vec()).collect() };
        let (j, r) = (sample(&json), sample(&random));
        let zj = compress(Compression::Lz4, &j).unwrap().len();
        let zr = compress(Compression::Lz4, &r).unwrap().len();
        assert!(zj * 2 < j.len(), "json compresses: {zj} of {}", j.len());
        assert!(
            zr * 100 > r.len() * 99,
            "random does not: {zr} of {}",
            r.len()
        );
        assert_ne!(
            json.padding(0, 100),
            json.padding(1, 100),
            "messages differ"
        );
        assert_eq!(json.padding(5, 1004).len(), 1004);
    }

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
