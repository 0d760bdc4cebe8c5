//! Bodies: request bodies buffered for replay (up to a bound) or streamed, and response
//! bodies that hold the request's breaker and load slots until they finish.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};

/// Errors of bodies in flight (hyper's, or the proxy's own HTTP/1 client's).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type the proxy sends and answers with.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// A body with no bytes.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A request body as held by the proxy.
pub enum RequestBody {
    /// Fully read, small enough to replay on retries.
    Buffered(Bytes),
    /// Too large (or with trailers) to buffer: the frames read so far, then the rest.
    /// Can be sent once.
    Streaming(Prefixed),
}

impl RequestBody {
    /// Read `body` into memory if it is at most `limit` bytes; otherwise keep what was
    /// read and stream the rest.
    pub async fn read(mut body: ProxyBody, limit: usize) -> Result<RequestBody, BoxError> {
        if body.is_end_stream() {
            return Ok(RequestBody::Buffered(Bytes::new()));
        }
        if body.size_hint().lower() > limit as u64 {
            return Ok(RequestBody::Streaming(Prefixed::new(VecDeque::new(), body)));
        }
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            match frame.into_data() {
                Ok(data) if buf.len() + data.len() <= limit => buf.extend_from_slice(&data),
                Ok(data) => {
                    let prefix = VecDeque::from([Frame::data(buf.freeze()), Frame::data(data)]);
                    return Ok(RequestBody::Streaming(Prefixed::new(prefix, body)));
                }
                Err(trailers) => {
                    let prefix = VecDeque::from([Frame::data(buf.freeze()), trailers]);
                    return Ok(RequestBody::Streaming(Prefixed::new(prefix, body)));
                }
            }
        }
        Ok(RequestBody::Buffered(buf.freeze()))
    }

    /// Wrap a body that will not be retried.
    pub fn stream(body: ProxyBody) -> RequestBody {
        RequestBody::Streaming(Prefixed::new(VecDeque::new(), body))
    }

    /// Whether the body can be sent more than once.
    pub fn replayable(&self) -> bool {
        matches!(self, RequestBody::Buffered(_))
    }

    /// A body for one attempt. A streaming body is handed out once; later calls get
    /// `None`.
    pub fn take_attempt(&mut self) -> Option<ProxyBody> {
        match self {
            RequestBody::Buffered(b) if b.is_empty() => Some(empty()),
            RequestBody::Buffered(b) => Some(full(b.clone())),
            RequestBody::Streaming(p) => p.take().map(|p| p.boxed()),
        }
    }
}

/// Frames already read, followed by the remainder of the incoming body.
pub struct Prefixed {
    inner: Option<PrefixedInner>,
}

/// The sendable part of [`Prefixed`].
pub struct PrefixedInner {
    prefix: VecDeque<Frame<Bytes>>,
    rest: ProxyBody,
}

impl Prefixed {
    fn new(prefix: VecDeque<Frame<Bytes>>, rest: ProxyBody) -> Self {
        Prefixed {
            inner: Some(PrefixedInner { prefix, rest }),
        }
    }
    fn take(&mut self) -> Option<PrefixedInner> {
        self.inner.take()
    }
}

impl Body for PrefixedInner {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(frame) = this.prefix.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut this.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_empty() && self.rest.is_end_stream()
    }

    /// Exact when the rest's is (a client's Content-Length stays the backend's).
    fn size_hint(&self) -> SizeHint {
        let read: u64 = self
            .prefix
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        let rest = self.rest.size_hint();
        match rest.exact() {
            Some(n) if self.prefix.iter().all(|f| f.is_data()) => SizeHint::with_exact(read + n),
            _ => {
                let mut hint = SizeHint::new();
                hint.set_lower(read + rest.lower());
                hint
            }
        }
    }
}

/// A response body that holds `guard` (slots, counters) until the body ends or is
/// dropped, whichever comes first.
pub struct Guarded<B: Body, G> {
    inner: B,
    guard: Option<G>,
}

impl<B: Body, G> Guarded<B, G> {
    /// Hold `guard` for the life of `inner`.
    pub fn new(inner: B, guard: G) -> Self {
        Guarded {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B: Body + Unpin, G: Unpin> Body for Guarded<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
