//! Kafka's framing: a 4-byte big-endian size, then a request header and
//! body; answers the same way with a response header.
//!
//! **Invariant:** a frame's size is checked against `request_bytes_max`
//! before a byte of it is allocated, and a frame that cannot be read as a
//! request ends only its own connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::versions;

/// The smallest request: api key, version and correlation id.
const HEAD_BYTES: usize = 8;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The size prefix is over the limit (or negative).
    #[error("request frame of {size} bytes exceeds {limit} ({max} bytes)")]
    TooLarge {
        size: i64,
        max: u32,
        limit: &'static str,
    },
    /// Too short to hold a request header.
    #[error("request frame of {0} bytes is shorter than a request header")]
    TooShort(usize),
    /// The connection failed or closed mid-frame.
    #[error("reading a request: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame; `None` when the peer closed between frames.
/// `limit` names `max` in the error: `request_bytes_max`, or before
/// authentication `sasl_request_bytes_max`.
pub async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    max: u32,
    limit: &'static str,
) -> Result<Option<Bytes>, FrameError> {
    let mut size = [0u8; 4];
    match r.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size);
    if size < 0 || size as u32 > max {
        return Err(FrameError::TooLarge {
            size: size.into(),
            max,
            limit,
        });
    }
    let size = size as usize;
    if size < HEAD_BYTES {
        return Err(FrameError::TooShort(size));
    }
    // Read into spare capacity (no zeroing first: a produce frame is
    // megabytes), never past this frame.
    let mut buf = BytesMut::with_capacity(size);
    let mut frame = r.take(size as u64);
    while buf.len() < size {
        if frame.read_buf(&mut buf).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok(Some(buf.freeze()))
}

/// A request, decoded.
#[derive(Debug)]
pub struct Request {
    /// Which API.
    pub api: ApiKey,
    /// At which version.
    pub version: i16,
    /// Echoed in the answer.
    pub correlation_id: i32,
    /// The client's name, for logs and group descriptions.
    pub client_id: String,
    /// The body.
    pub body: RequestKind,
}

/// Why a frame is not a request we serve.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// An API key we do not serve (or that does not exist).
    #[error("API key {key} is not served here")]
    UnknownApi { key: i16, correlation_id: i32 },
    /// A served API at a version outside the advertised range, with the
    /// request when it decodes at that version (so it can be refused in
    /// its own terms).
    #[error("{api:?} v{version} is not supported (supported: v{min}-v{max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
        correlation_id: i32,
        request: Option<Box<RequestKind>>,
    },
    /// The header or body does not decode.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes a frame into a request of a served API and version.
pub fn parse(mut frame: Bytes) -> Result<Request, ParseError> {
    let (key, version, correlation_id) = {
        let mut head = &frame[..HEAD_BYTES];
        (head.get_i16(), head.get_i16(), head.get_i32())
    };
    let api = ApiKey::try_from(key).map_err(|()| ParseError::UnknownApi {
        key,
        correlation_id,
    })?;
    let Some((min, max)) = versions::range(api) else {
        return Err(ParseError::UnknownApi {
            key,
            correlation_id,
        });
    };
    let malformed = |e: anyhow::Error| ParseError::Malformed {
        api,
        version,
        reason: format!("{e:#}"),
    };
    let decoded = decode(api, version, &mut frame).map_err(malformed);
    if !(min..=max).contains(&version) {
        return Err(ParseError::UnsupportedVersion {
            api,
            version,
            min,
            max,
            correlation_id,
            request: decoded.ok().map(|(_, body)| Box::new(body)),
        });
    }
    let (header, body) = decoded?;
    if frame.has_remaining() {
        return Err(ParseError::Malformed {
            api,
            version,
            reason: format!("{} bytes after the body", frame.remaining()),
        });
    }
    Ok(Request {
        api,
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        body,
    })
}

/// The header and body of a request frame (after its size prefix).
fn decode(
    api: ApiKey,
    version: i16,
    frame: &mut Bytes,
) -> anyhow::Result<(RequestHeader, RequestKind)> {
    let header = RequestHeader::decode(frame, api.request_header_version(version))?;
    let body = RequestKind::decode(api, frame, version)?;
    Ok((header, body))
}

/// A response frame: size, header, body, encoded at the request's version.
pub fn encode(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api.response_header_version(version))?;
    body.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}
