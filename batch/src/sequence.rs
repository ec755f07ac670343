//! Idempotent producers' sequence numbers, which wrap from `i32::MAX` to 0
//! as Kafka's do (`DefaultRecordBatch.incrementSequence`). The broker and
//! the client both count with these, so a batch that straddles the wrap
//! means the same thing to both.

/// `seq` advanced by `n` records, modulo 2^31 (never negative).
pub fn add(seq: i32, n: i64) -> i32 {
    (i64::from(seq) + n).rem_euclid(i64::from(i32::MAX) + 1) as i32
}

/// The sequence after `seq`.
pub fn next(seq: i32) -> i32 {
    add(seq, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_at_i32_max_to_zero() {
        assert_eq!(add(5, 3), 8);
        assert_eq!(next(i32::MAX), 0);
        assert_eq!(add(i32::MAX - 1, 2), 0);
        assert_eq!(add(i32::MAX - 1, 4), 2);
        assert_eq!(add(0, 0), 0);
    }
}
