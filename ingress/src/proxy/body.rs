//! Bodies: request bodies buffered for replay (up to a bound) or streamed, watched for
//! an idle client and for their end, and response bodies that hold the request's
//! breaker and load slots until they finish.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Sleep;

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

/// The client sent no byte of its request body for the body idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("no request body data for {0:?}")]
pub struct BodyIdle(pub Duration);

/// How a client's request body is going, shared between [`Watched`] and the request.
#[derive(Debug, Default)]
pub struct BodyProgress {
    ended: Notify,
    failed: AtomicBool,
}

impl BodyProgress {
    /// Waits until the body has ended (or failed); at once if it has.
    pub async fn ended(&self) {
        self.ended.notified().await;
        // Let a later waiter through as well.
        self.ended.notify_one();
    }

    /// Whether the body failed on the client's side: malformed, cut short, idle.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// A client's request body that fails with [`BodyIdle`] when the client sends nothing
/// for `idle`, and tells its [`BodyProgress`] when it ends or fails, so the route's
/// timeout can start when the request is complete (Envoy's rule) and a failure is known
/// to be the client's.
pub struct Watched {
    inner: ProxyBody,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    progress: Arc<BodyProgress>,
    done: bool,
}

impl Watched {
    /// Watches `inner`.
    pub fn new(inner: ProxyBody, idle: Duration, progress: Arc<BodyProgress>) -> Watched {
        Watched {
            inner,
            idle,
            timer: None,
            progress,
            done: false,
        }
    }

    fn finish(&mut self, failed: bool) {
        if !self.done {
            self.done = true;
            self.progress.failed.store(failed, Ordering::Relaxed);
            self.progress.ended.notify_one();
        }
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(t) = this.timer.as_mut() {
                    t.as_mut().reset(tokio::time::Instant::now() + this.idle);
                }
                if this.inner.is_end_stream() {
                    this.finish(false);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(true);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(false);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.finish(true);
                    return Poll::Ready(Some(Err(Box::new(BodyIdle(idle)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Watched {
    /// A body dropped before its end (the attempt gave up) still releases waiters.
    fn drop(&mut self) {
        if !self.done {
            self.progress.ended.notify_one();
        }
    }
}
