//! The one codec of every small file of ours: checkpoints, the producer
//! state snapshot, compaction's swap marker, `topic.meta`, and the headers
//! of the two index files.
//!
//! ```text
//! magic [4] | version u16 | body | crc32 u32
//! ```
//!
//! Big-endian; the CRC (IEEE, crc32fast) covers everything before it. The
//! index files use the same `magic | version` prefix without a CRC: their
//! entries are memory-mapped in place, and a sealed index is checked
//! against its log instead.
//!
//! There is no length field: every enveloped file is written whole by an
//! atomic replace ([`crate::checkpoint::write_atomic`]), so a file is
//! either the old one or the new one and its length is the envelope's. A
//! length would only repeat it, and adding one would change the bytes of
//! every file written so far.

/// Which file an envelope belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileType {
    /// The first four bytes.
    pub magic: [u8; 4],
    /// The version this build writes and reads.
    pub version: u16,
    /// What the file is, for error messages ("checkpoint").
    pub what: &'static str,
}

/// Bytes of `magic | version`.
pub const PREFIX_LEN: usize = 6;
/// Bytes of an envelope with an empty body.
pub const OVERHEAD_LEN: usize = PREFIX_LEN + 4;

/// Why bytes are not a valid envelope of a file type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Fewer bytes than the fixed parts take.
    #[error("{len} bytes is too short for a {what}")]
    TooShort {
        /// What the file should be.
        what: &'static str,
        /// Bytes present.
        len: usize,
    },
    /// Another file type's magic.
    #[error("bad magic {found:?}: a {what} starts with {expected:?}")]
    Magic {
        /// What the file should be.
        what: &'static str,
        /// The magic found.
        found: [u8; 4],
        /// The magic expected.
        expected: [u8; 4],
    },
    /// A version this build does not read.
    #[error("unsupported {what} version {found} (this build reads version {supported})")]
    Version {
        /// What the file is.
        what: &'static str,
        /// The version found.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The CRC does not match the bytes.
    #[error("CRC mismatch")]
    Crc,
    /// The body ends inside a field.
    #[error("truncated: {field} needs {needed} bytes at body byte {at}, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Where in the body.
        at: usize,
        /// Bytes left.
        available: usize,
    },
    /// The body goes on after its last field.
    #[error("{0} bytes after the last field")]
    Trailing(usize),
    /// A text field is not UTF-8.
    #[error("{0} is not UTF-8")]
    Utf8(&'static str),
}

/// One big-endian integer method per type: `put` appends one to a
/// [`Writer`], `get` reads one from a [`Reader`].
macro_rules! fields {
    (put: $($t:ident),*) => {$(
        #[doc = concat!("Appends a big-endian ", stringify!($t), ".")]
        pub fn $t(&mut self, v: $t) -> &mut Self {
            self.bytes(&v.to_be_bytes())
        }
    )*};
    (get: $($t:ident),*) => {$(
        #[doc = concat!("Reads a big-endian ", stringify!($t), ".")]
        pub fn $t(&mut self, field: &'static str) -> Result<$t, EnvelopeError> {
            self.array(field).map($t::from_be_bytes)
        }
    )*};
}

/// Builds an envelope field by field.
#[derive(Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts an envelope of `ty`: its magic and version.
    pub fn new(ty: FileType) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&ty.magic);
        buf.extend_from_slice(&ty.version.to_be_bytes());
        Self { buf }
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    fields!(put: u8, u16, u32, u64, i16, i32, i64);

    /// The prefix and fields without a CRC (the index files' header).
    pub fn into_header(self) -> Vec<u8> {
        self.buf
    }

    /// The whole envelope: the fields, then the CRC of everything before it.
    pub fn finish(mut self) -> Vec<u8> {
        let crc = crc32fast::hash(&self.buf);
        self.buf.extend_from_slice(&crc.to_be_bytes());
        self.buf
    }
}

/// Reads an envelope's body field by field.
#[derive(Debug)]
pub struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
}

fn check_prefix(ty: FileType, b: &[u8], min_len: usize) -> Result<(), EnvelopeError> {
    if b.len() < min_len {
        return Err(EnvelopeError::TooShort {
            what: ty.what,
            len: b.len(),
        });
    }
    let found: [u8; 4] = b[0..4].try_into().expect("4 bytes");
    if found != ty.magic {
        return Err(EnvelopeError::Magic {
            what: ty.what,
            found,
            expected: ty.magic,
        });
    }
    let version = u16::from_be_bytes([b[4], b[5]]);
    if version != ty.version {
        return Err(EnvelopeError::Version {
            what: ty.what,
            found: version,
            supported: ty.version,
        });
    }
    Ok(())
}

impl<'a> Reader<'a> {
    /// Checks the length, magic, version and CRC of a whole envelope of
    /// `ty`, and reads its body.
    pub fn open(ty: FileType, b: &'a [u8]) -> Result<Self, EnvelopeError> {
        check_prefix(ty, b, OVERHEAD_LEN)?;
        let (covered, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(covered).to_be_bytes() != crc {
            return Err(EnvelopeError::Crc);
        }
        Ok(Self {
            body: &covered[PREFIX_LEN..],
            pos: 0,
        })
    }

    /// Checks the magic and version of a header without a CRC (the index
    /// files) and reads the fields after them.
    pub fn open_header(ty: FileType, b: &'a [u8]) -> Result<Self, EnvelopeError> {
        check_prefix(ty, b, PREFIX_LEN)?;
        Ok(Self {
            body: &b[PREFIX_LEN..],
            pos: 0,
        })
    }

    /// The next `n` bytes of the body.
    pub fn bytes(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], EnvelopeError> {
        let available = self.body.len() - self.pos;
        if n > available {
            return Err(EnvelopeError::Truncated {
                field,
                needed: n,
                at: self.pos,
                available,
            });
        }
        let s = &self.body[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], EnvelopeError> {
        Ok(self.bytes(field, N)?.try_into().expect("N bytes"))
    }

    fields!(get: u8, u16, u32, u64, i16, i32, i64);

    /// `n` bytes of UTF-8 text.
    pub fn string(&mut self, field: &'static str, n: usize) -> Result<String, EnvelopeError> {
        let b = self.bytes(field, n)?;
        String::from_utf8(b.to_vec()).map_err(|_| EnvelopeError::Utf8(field))
    }

    /// Bytes of the body not read yet.
    pub fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    /// Checks that every byte of the body was read.
    pub fn finish(self) -> Result<(), EnvelopeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(EnvelopeError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TY: FileType = FileType {
        magic: *b"TEST",
        version: 3,
        what: "test file",
    };

    #[test]
    fn fields_round_trip_and_every_fault_is_named() {
        let mut w = Writer::new(TY);
        w.u16(7).u64(u64::MAX - 1).i16(-2).u32(4).bytes(b"abcd");
        let b = w.finish();
        assert_eq!(&b[..6], b"TEST\0\x03");
        let mut r = Reader::open(TY, &b).unwrap();
        assert_eq!(r.u16("a").unwrap(), 7);
        assert_eq!(r.u64("b").unwrap(), u64::MAX - 1);
        assert_eq!(r.i16("c").unwrap(), -2);
        let n = r.u32("n").unwrap() as usize;
        assert_eq!(r.string("s", n).unwrap(), "abcd");
        let err = r.u8("past").unwrap_err();
        assert!(matches!(
            err,
            EnvelopeError::Truncated { field: "past", .. }
        ));
        r.finish().unwrap();

        let mut flipped = b.clone();
        flipped[8] ^= 1;
        assert_eq!(Reader::open(TY, &flipped).unwrap_err(), EnvelopeError::Crc);
        let other = FileType {
            magic: *b"ELSE",
            ..TY
        };
        assert!(matches!(
            Reader::open(other, &b).unwrap_err(),
            EnvelopeError::Magic { .. }
        ));
        let newer = FileType { version: 4, ..TY };
        assert!(matches!(
            Reader::open(newer, &b).unwrap_err(),
            EnvelopeError::Version {
                found: 3,
                supported: 4,
                ..
            }
        ));
        assert!(matches!(
            Reader::open(TY, &b[..9]).unwrap_err(),
            EnvelopeError::TooShort { len: 9, .. }
        ));
        let r = Reader::open(TY, &b).unwrap();
        assert_eq!(
            r.finish().unwrap_err(),
            EnvelopeError::Trailing(b.len() - 10)
        );
    }
}
