//! The one walk over concatenated batches by their headers: every reader
//! of a buffer of batches (a segment read, a fetch answer, a compaction
//! chunk, a recovery scan) steps through it with a [`BatchCursor`], which
//! owns the bounds checks a hand-written `pos += total_len` loop repeats.

use crate::batch::{BATCH_HEADER_LEN, BatchHeader};
use crate::error::CodecError;

/// A position in a buffer of batches laid end to end.
#[derive(Debug, Clone)]
pub struct BatchCursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BatchCursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Where the next batch starts.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes from the cursor on.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// The next whole batch (its parsed header and its bytes), moving past
    /// it. `Ok(None)` when no whole batch is left: the buffer is used up,
    /// or it ends inside a header or a batch ([`BatchCursor::rest`] says
    /// which). A header that does not parse is an error, and the cursor
    /// stays on it.
    pub fn next_batch(&mut self) -> Result<Option<(BatchHeader, &'a [u8])>, CodecError> {
        let rest = self.rest();
        if rest.len() < BATCH_HEADER_LEN {
            return Ok(None);
        }
        let header = BatchHeader::parse(rest)?;
        let len = header.total_len();
        if len > rest.len() {
            return Ok(None);
        }
        self.pos += len;
        Ok(Some((header, &rest[..len])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::BatchBuilder;

    fn batch(n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            b.push(i as i64, None, Some(b"v"), &[]);
        }
        b.finish().to_vec()
    }

    #[test]
    fn walks_whole_batches_and_stops_at_a_cut_one() {
        let (a, b) = (batch(2), batch(3));
        let mut buf = [a.clone(), b.clone()].concat();
        let mut c = BatchCursor::new(&buf);
        let (h, bytes) = c.next_batch().unwrap().unwrap();
        assert_eq!((h.record_count, bytes), (2, &a[..]));
        assert_eq!(c.position(), a.len());
        let (h, _) = c.next_batch().unwrap().unwrap();
        assert_eq!(h.record_count, 3);
        assert!(c.next_batch().unwrap().is_none());
        assert!(c.rest().is_empty());

        for cut in [a.len() + 10, a.len() + BATCH_HEADER_LEN + 1, buf.len() - 1] {
            let mut c = BatchCursor::new(&buf[..cut]);
            assert!(c.next_batch().unwrap().is_some());
            assert!(c.next_batch().unwrap().is_none(), "cut at {cut}");
            assert_eq!(c.rest().len(), cut - a.len());
        }

        buf[a.len() + crate::batch::field::MAGIC] = 1;
        let mut c = BatchCursor::new(&buf);
        c.next_batch().unwrap();
        assert!(c.next_batch().is_err());
        assert_eq!(c.position(), a.len(), "the cursor stays on the bad header");
    }
}
