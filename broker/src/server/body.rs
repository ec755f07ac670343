//! An HTTP body that shows each frame to a hook as it passes: the metrics
//! layer reads a call's status from the response trailers with it, and
//! `request_limit` follows the gRPC message framing of request bodies. A
//! hook's error ends the body with that status.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tonic::Status;
use tonic::body::Body;

/// `inner`, with `hook` called on every frame before it is passed on.
pub struct Hooked<F> {
    inner: Body,
    hook: F,
}

impl<F> std::fmt::Debug for Hooked<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooked")
    }
}

impl<F> Hooked<F>
where
    F: FnMut(&Frame<Bytes>) -> Result<(), Status> + Send + Unpin + 'static,
{
    /// Wraps `inner` as a tonic body.
    pub fn body(inner: Body, hook: F) -> Body {
        Body::new(Self { inner, hook })
    }
}

impl<F> http_body::Body for Hooked<F>
where
    F: FnMut(&Frame<Bytes>) -> Result<(), Status> + Send + Unpin + 'static,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Err(status) = (this.hook)(frame)
        {
            return Poll::Ready(Some(Err(status)));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
