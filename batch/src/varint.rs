//! Kafka's zig-zag variable-length integers (the protobuf encoding of
//! `sint32`/`sint64`), used for every per-record field of a v2 batch.
//!
//! Decoders take a slice and a cursor and never read past the slice; an
//! encoding longer than the type allows is an error, not a wrap-around.

use crate::error::CodecError;

/// Widest legal encoding of a 32-bit varint.
pub const VARINT_MAX_BYTES: usize = 5;
/// Widest legal encoding of a 64-bit varint.
pub const VARLONG_MAX_BYTES: usize = 10;

/// Bytes that `v` takes as a zig-zag varint.
pub fn varint_len(v: i32) -> usize {
    varlong_len(i64::from(v))
}

/// Bytes that `v` takes as a zig-zag varlong.
pub fn varlong_len(v: i64) -> usize {
    let mut z = zigzag64(v);
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag64(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// Appends `v` as a zig-zag varint.
pub fn put_varint(buf: &mut Vec<u8>, v: i32) {
    put_varlong(buf, i64::from(v));
}

/// Appends `v` as a zig-zag varlong.
pub fn put_varlong(buf: &mut Vec<u8>, v: i64) {
    let mut z = zigzag64(v);
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

fn get_unsigned(
    buf: &[u8],
    pos: &mut usize,
    max_bytes: usize,
    what: &'static str,
) -> Result<u64, CodecError> {
    let mut out: u64 = 0;
    for i in 0..max_bytes {
        let Some(&b) = buf.get(*pos) else {
            return Err(CodecError::Truncated {
                what,
                needed: 1,
                available: 0,
            });
        };
        *pos += 1;
        out |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(CodecError::VarintOverflow { what, max_bytes })
}

/// Reads a zig-zag varint at `*pos`, advancing it.
pub fn get_varint(buf: &[u8], pos: &mut usize, what: &'static str) -> Result<i32, CodecError> {
    let z = get_unsigned(buf, pos, VARINT_MAX_BYTES, what)?;
    // A 5-byte encoding carries 35 bits; anything beyond 32 is not an i32.
    let z = u32::try_from(z).map_err(|_| CodecError::VarintOverflow {
        what,
        max_bytes: VARINT_MAX_BYTES,
    })?;
    Ok(((z >> 1) as i32) ^ -((z & 1) as i32))
}

/// Reads a zig-zag varlong at `*pos`, advancing it.
pub fn get_varlong(buf: &[u8], pos: &mut usize, what: &'static str) -> Result<i64, CodecError> {
    get_unsigned(buf, pos, VARLONG_MAX_BYTES, what).map(unzigzag64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_kafka() {
        // Values from Kafka's ByteUtilsTest: zig-zag maps 0,-1,1,-2 to 0,1,2,3.
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i64::from(i32::MAX), &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i64::from(i32::MIN), &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(v, bytes) in cases {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            assert_eq!(buf, bytes, "encoding of {v}");
            let mut pos = 0;
            assert_eq!(get_varlong(bytes, &mut pos, "t").unwrap(), v);
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn overlong_and_truncated_are_errors() {
        let mut pos = 0;
        assert!(matches!(
            get_varint(&[0xff; 6], &mut pos, "t"),
            Err(CodecError::VarintOverflow { .. })
        ));
        let mut pos = 0;
        // Five bytes, but the value needs more than 32 bits.
        assert!(get_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f], &mut pos, "t").is_err());
        let mut pos = 0;
        assert!(matches!(
            get_varlong(&[0x80, 0x80], &mut pos, "t"),
            Err(CodecError::Truncated { .. })
        ));
    }

    proptest! {
        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            prop_assert_eq!(buf.len(), varlong_len(v));
            let mut pos = 0;
            prop_assert_eq!(get_varlong(&buf, &mut pos, "t").unwrap(), v);
            prop_assert_eq!(pos, buf.len());
        }

        #[test]
        fn varint_round_trips(v in any::<i32>()) {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            prop_assert_eq!(buf.len(), varint_len(v));
            let mut pos = 0;
            prop_assert_eq!(get_varint(&buf, &mut pos, "t").unwrap(), v);
        }
    }
}
