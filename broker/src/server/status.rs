//! The one place broker errors become gRPC status codes.

use std::pin::Pin;
use std::task::{Context, Poll};

use strata_proto::v1;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::{Code, Status};

use crate::core::BrokerError;
use crate::storage::StorageError;

/// The gRPC code for an error.
pub fn code(e: &BrokerError) -> Code {
    use BrokerError as B;
    match e {
        B::UnknownTopic(_) | B::UnknownPartition { .. } | B::UnknownGroup(_) => Code::NotFound,
        B::Fenced(_) | B::GroupNotEmpty { .. } => Code::FailedPrecondition,
        B::TopicExists(_) => Code::AlreadyExists,
        B::InvalidTopicName { .. }
        | B::InvalidConfig { .. }
        | B::UnknownConfigKey { .. }
        | B::InvalidArgument(_) => Code::InvalidArgument,
        B::LimitExceeded { .. } => Code::ResourceExhausted,
        B::PartitionFailed { .. } => Code::DataLoss,
        B::ShuttingDown => Code::Unavailable,
        B::DataDirLocked(_) => Code::FailedPrecondition,
        B::Io { .. } | B::Internal(_) => Code::Internal,
        B::Storage { source, .. } => match source {
            StorageError::InvalidBatch(_)
            | StorageError::BatchTooLarge { .. }
            | StorageError::Config(_)
            | StorageError::NotBatchBoundary { .. }
            | StorageError::KeyRequired { .. } => Code::InvalidArgument,
            StorageError::OffsetOutOfRange { .. } => Code::OutOfRange,
            // Not retriable as they are: the producer must start over
            // with a new id (or stop, if it is a fenced zombie).
            StorageError::ProducerFenced { .. } | StorageError::OutOfOrderSequence { .. } => {
                Code::FailedPrecondition
            }
            StorageError::Corrupt { .. } => Code::DataLoss,
            StorageError::Closed(_) => Code::Unavailable,
            StorageError::Poisoned { .. } | StorageError::Io { .. } => Code::Internal,
        },
    }
}

/// The error as a call's status.
pub fn to_status(e: BrokerError) -> Status {
    Status::new(code(&e), e.to_string())
}

/// The error as a per-partition `Error` in a response.
pub fn to_error(e: &BrokerError) -> v1::Error {
    v1::Error {
        code: code(e) as i32,
        message: e.to_string(),
    }
}

/// tonic refuses a request larger than its decoding limit itself, as
/// OUT_OF_RANGE in its own words. This rewrites that answer to
/// RESOURCE_EXHAUSTED naming our setting, so the client learns which bound
/// it hit and how to raise it. Applied as a response layer on the server;
/// the status travels in the headers or, usually, in the trailers.
pub fn name_request_limit(
    limit: u32,
) -> impl Fn(http::Response<Body>) -> http::Response<Body> + Clone {
    move |mut resp| {
        rename_limit(resp.headers_mut(), limit);
        resp.map(|inner| Body::new(OnTrailers::new(inner, move |t| rename_limit(t, limit))))
    }
}

fn rename_limit(h: &mut http::HeaderMap, limit: u32) {
    let message = percent_decode(
        h.get("grpc-message")
            .map(|m| m.as_bytes())
            .unwrap_or_default(),
    );
    let too_large = h.get("grpc-status").is_some_and(|v| v.as_bytes() == b"11")
        && message.contains("message length too large");
    if !too_large {
        return;
    }
    let found = message
        .split("found ")
        .nth(1)
        .and_then(|m| m.split(' ').next())
        .unwrap_or("more")
        .to_string();
    let msg = format!(
        "request of {found} bytes exceeds request_bytes_max ({limit} bytes); send smaller requests or raise --request-bytes-max"
    );
    h.insert("grpc-status", http::HeaderValue::from_static("8"));
    if let Ok(v) = http::HeaderValue::from_str(&msg) {
        h.insert("grpc-message", v);
    }
}

/// Decodes gRPC's percent-encoded `grpc-message`.
fn percent_decode(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response body that lets `f` see (and change) its trailers, where gRPC
/// puts a call's status when the call did not fail at once.
pub struct OnTrailers<F> {
    inner: Body,
    f: F,
}

impl<F> std::fmt::Debug for OnTrailers<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnTrailers")
    }
}

impl<F: FnMut(&mut http::HeaderMap) + Send + Unpin + 'static> OnTrailers<F> {
    /// Wraps `inner`.
    pub fn new(inner: Body, f: F) -> Self {
        Self { inner, f }
    }
}

impl<F: FnMut(&mut http::HeaderMap) + Send + Unpin + 'static> http_body::Body for OnTrailers<F> {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(match frame.into_trailers() {
                Ok(mut trailers) => {
                    (this.f)(&mut trailers);
                    http_body::Frame::trailers(trailers)
                }
                Err(frame) => frame,
            }))),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
