//! `request_bytes_max`, checked on the length prefix of every gRPC message
//! as a request body streams in: a message over the limit fails its call
//! with our own status (see [`status::request_too_large`]) before tonic
//! buffers it, in unary calls and in every message of a stream alike.
//! tonic's own decoding limit stays set to the same value as a backstop.

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;

use super::body::Hooked;
use super::status;

/// A gRPC message's prefix: a compressed flag and a big-endian u32 length.
const PREFIX_BYTES: usize = 5;

/// Wraps every request body of a server in a [`Framing`] check.
pub fn limit_requests(
    limit_bytes: u32,
) -> impl Fn(http::Request<Body>) -> http::Request<Body> + Clone {
    move |req| {
        req.map(|body| {
            let mut framing = Framing::new(limit_bytes);
            Hooked::body(body, move |frame| match frame.data_ref() {
                Some(data) => framing.check(data),
                None => Ok(()),
            })
        })
    }
}

/// Where a request body is in its gRPC message framing.
struct Framing {
    limit_bytes: u32,
    prefix: [u8; PREFIX_BYTES],
    prefix_len: usize,
    /// Bytes of the current message not yet seen.
    message_left_bytes: u64,
}

impl Framing {
    fn new(limit_bytes: u32) -> Self {
        Self {
            limit_bytes,
            prefix: [0; PREFIX_BYTES],
            prefix_len: 0,
            message_left_bytes: 0,
        }
    }

    /// Follows the framing through one chunk of the body; fails as soon as
    /// a prefix announces more than `limit_bytes`.
    fn check(&mut self, mut chunk: &[u8]) -> Result<(), Status> {
        while !chunk.is_empty() {
            if self.message_left_bytes > 0 {
                let n = chunk.len().min(self.message_left_bytes as usize);
                self.message_left_bytes -= n as u64;
                chunk = &chunk[n..];
                continue;
            }
            let n = chunk.len().min(PREFIX_BYTES - self.prefix_len);
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&chunk[..n]);
            self.prefix_len += n;
            chunk = &chunk[n..];
            if self.prefix_len == PREFIX_BYTES {
                self.prefix_len = 0;
                let [_, a, b, c, d] = self.prefix;
                let len = u32::from_be_bytes([a, b, c, d]);
                if len > self.limit_bytes {
                    return Err(status::request_too_large(len.into(), self.limit_bytes));
                }
                self.message_left_bytes = len.into();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(len: u32) -> Vec<u8> {
        let mut p = vec![0];
        p.extend_from_slice(&len.to_be_bytes());
        p
    }

    #[test]
    fn a_prefix_split_across_chunks_is_still_read() {
        let mut wire = prefix(10);
        wire.extend_from_slice(&[7; 10]);
        wire.extend_from_slice(&prefix(11));
        // Every split of the stream into two chunks: the first message
        // passes, the second's prefix is refused wherever it is cut.
        for cut in 0..wire.len() {
            let mut b = Framing::new(10);
            let first = b.check(&wire[..cut]);
            let second = first.and_then(|()| b.check(&wire[cut..]));
            let err = second.unwrap_err();
            assert_eq!(err.code(), tonic::Code::ResourceExhausted);
            assert!(err.message().contains("request of 11 bytes"), "{err}");
        }
        let mut b = Framing::new(10);
        b.check(&wire[..15]).unwrap();
        assert_eq!(b.message_left_bytes, 0);
    }
}
