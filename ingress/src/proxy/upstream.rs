//! Upstream connections: per host, a small keep-alive pool of HTTP/1 connections (or
//! one shared HTTP/2 sender for h2c), within the service's connection and pending
//! limits.
//!
//! ```text
//!  checkout(host) ─▶ idle connection, not closed by the backend? ─ yes ─▶ use it
//!        │ no
//!        ▼
//!  connection slot free? ─ no ─▶ pending slot? ─ no ─▶ Overflow(pending)
//!        │ yes                        │ yes: wait for a slot or an idle connection
//!        ▼                            ▼
//!  dial (timeout) ─▶ HTTP/1: the request's task drives it (see `h1`); h2c: a task
//!  response body ends ─▶ connection back to the pool (LIFO; closed after IDLE_TIMEOUT)
//! ```
//! The request path takes the pool's mutex only to push or pop one connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::body::{BoxError, ProxyBody};
use super::h1::{H1Body, H1Conn, H1Error, Home, RequestHead};
use super::lock;
use super::Dial;
use crate::breaker::{BreakerCounts, Overflow};
use crate::config::UpstreamProtocol;

/// Idle HTTP/1 connections older than this are closed instead of reused (below the
/// 60–75 s after which common servers close idle connections themselves).
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Why an upstream connection was not made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The breaker refused it.
    #[error("circuit breaker: too many {}", .0.as_str())]
    Overflow(Overflow),
    /// TCP connect failed.
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    /// TCP connect took too long.
    #[error("connect timed out")]
    Timeout,
    /// The HTTP handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] hyper::Error),
}

/// How an attempt failed before response headers arrived.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be had.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The h2c connection failed while sending or before the response head.
    #[error("upstream: {0}")]
    Http(#[from] hyper::Error),
    /// The HTTP/1 exchange failed before the response head.
    #[error("upstream: {0}")]
    H1(H1Error),
    /// No response head before the attempt's deadline.
    #[error("upstream: no response before the deadline")]
    Timeout,
}

impl From<H1Error> for SendError {
    fn from(e: H1Error) -> Self {
        match e {
            H1Error::TimedOut => SendError::Timeout,
            e => SendError::H1(e),
        }
    }
}

/// A service's connection limit; kept across updates while `max_connections` is.
#[derive(Clone)]
pub struct ConnectionSlots {
    slots: Arc<Semaphore>,
    max: usize,
}

impl ConnectionSlots {
    /// At most `max` connections at once.
    pub fn new(max: usize) -> Self {
        ConnectionSlots {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// One idle HTTP/1 connection.
struct Idle {
    conn: H1Conn,
    since: Instant,
}

/// The connections to one host.
#[derive(Default)]
pub struct HostPool {
    idle: Mutex<Vec<Idle>>,
    h2: Mutex<Option<http2::SendRequest<ProxyBody>>>,
    returned: Notify,
}

impl std::fmt::Debug for HostPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostPool")
            .field("idle", &lock(&self.idle).len())
            .finish_non_exhaustive()
    }
}

impl Home for HostPool {
    fn put(&self, conn: H1Conn) {
        // Idle age counts from the start of the connection's last request, or from the
        // end of a body that waited for the backend (see `H1Body`): never late, and a
        // long poll does not retire the connection it has just used.
        lock(&self.idle).push(Idle {
            since: conn.used,
            conn,
        });
        self.returned.notify_one();
    }
}

impl HostPool {
    /// Close every pooled connection (after a protocol or limit change).
    pub fn clear(&self) {
        lock(&self.idle).clear();
        lock(&self.h2).take();
    }

    /// The most recently used idle connection that is still usable at `now`.
    fn take_idle(&self, now: Instant) -> Option<H1Conn> {
        loop {
            let Idle { conn, since } = lock(&self.idle).pop()?;
            if now.saturating_duration_since(since) < IDLE_TIMEOUT && !conn.is_stale() {
                return Some(conn);
            }
        }
    }

    fn shared_h2(&self) -> Option<http2::SendRequest<ProxyBody>> {
        lock(&self.h2).as_ref().filter(|s| s.is_ready()).cloned()
    }
}

/// One attempt's request: the head is borrowed (HTTP/1 writes it out as it is; h2c
/// copies it), the body is the attempt's own; with when the attempt started and by
/// when its response head must have arrived.
pub struct Outgoing<'a> {
    /// The method.
    pub method: &'a Method,
    /// The target: origin form for HTTP/1, absolute for h2c.
    pub uri: Uri,
    /// The version to speak.
    pub version: Version,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// Fields the proxy sets in place of the request's own (`X-Forwarded-*`).
    pub set: &'a [(HeaderName, HeaderValue)],
    /// The body.
    pub body: ProxyBody,
    /// When the attempt started.
    pub started: Instant,
    /// The attempt's deadline for the response head.
    pub deadline: Option<Instant>,
}

/// A backend's response body, from either kind of connection.
pub enum UpstreamBody {
    /// From shoal's own HTTP/1.1 client.
    H1(H1Body),
    /// From an h2c connection.
    H2(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::H1(b) => Pin::new(b).poll_frame(cx),
            UpstreamBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::H1(b) => b.is_end_stream(),
            UpstreamBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::H1(b) => b.size_hint(),
            UpstreamBody::H2(b) => b.size_hint(),
        }
    }
}

/// A connection for one attempt.
enum Sender {
    /// HTTP/1.1; `reused` when it came from the pool.
    H1 { conn: H1Conn, reused: bool },
    /// h2c, shared.
    H2(http2::SendRequest<ProxyBody>),
}

/// What an attempt needs to reach a host.
pub struct Upstream<'a> {
    /// Connect timeout and dialer.
    pub dial: &'a Dial,
    /// The service's connection slots.
    pub slots: &'a ConnectionSlots,
    /// The service's breaker counts (pending requests).
    pub counts: &'a Arc<BreakerCounts>,
    /// `max_pending_requests`.
    pub max_pending: usize,
    /// Protocol to the host.
    pub protocol: UpstreamProtocol,
}

impl Upstream<'_> {
    /// Send `out` to `addr`, reusing a pooled connection when one is idle. An HTTP/1
    /// connection goes back to `pool` when the response body ends.
    pub async fn send(
        &self,
        pool: &Arc<HostPool>,
        addr: SocketAddr,
        out: Outgoing<'_>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        // Paths other than an HTTP/1 exchange on a pooled connection are boxed, each in
        // a statement of its own: their futures are large, and a future in the state
        // of every request is copied with it.
        let sender = match self.reuse(pool, out.started) {
            Some(sender) => sender,
            None => {
                let open = Box::pin(within(out.deadline, self.open(pool, addr, out.started)));
                open.await??
            }
        };
        match sender {
            Sender::H2(sender) => {
                let exchange = Box::pin(send_h2(sender, out));
                exchange.await
            }
            Sender::H1 { conn, reused } => {
                let home: Arc<dyn Home> = pool.clone();
                // A pooled connection the backend closed as the request went out: an
                // empty request is sent again over a fresh connection.
                let again = reused && out.body.is_end_stream();
                let head = RequestHead {
                    method: out.method,
                    uri: &out.uri,
                    headers: out.headers,
                    set: out.set,
                };
                let (started, deadline) = (out.started, out.deadline);
                let resp = match conn
                    .send(head, out.body, home.clone(), started, deadline)
                    .await
                {
                    Ok(resp) => resp,
                    Err(e) if again && e.before_response() => {
                        let again = Box::pin(async {
                            let conn = within(deadline, self.connect_h1(addr)).await??;
                            let empty = super::body::empty();
                            Ok::<_, SendError>(
                                conn.send(head, empty, home, started, deadline).await?,
                            )
                        });
                        again.await?
                    }
                    Err(e) => return Err(e.into()),
                };
                Ok(resp.map(UpstreamBody::H1))
            }
        }
    }

    /// A connection when none is idle: a new one within the connection limit, or the
    /// first one returned or freed while this request waits as pending.
    async fn open(
        &self,
        pool: &HostPool,
        addr: SocketAddr,
        now: Instant,
    ) -> Result<Sender, ConnectError> {
        let permit = match self.slots.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let _pending = self
                    .counts
                    .try_pending(self.max_pending)
                    .map_err(ConnectError::Overflow)?;
                loop {
                    tokio::select! {
                        p = self.slots.slots.clone().acquire_owned() => {
                            break p.map_err(|_| ConnectError::Overflow(Overflow::Connections))?;
                        }
                        () = pool.returned.notified() => {
                            if let Some(sender) = self.reuse(pool, now) {
                                return Ok(sender);
                            }
                        }
                    }
                }
            }
        };
        let stream = self.dial.connect(addr).await?;
        match self.protocol {
            UpstreamProtocol::Http1 => Ok(Sender::H1 {
                conn: H1Conn::new(stream, permit),
                reused: false,
            }),
            UpstreamProtocol::H2c => {
                let mut builder = http2::Builder::new(TokioExecutor::new());
                builder.timer(TokioTimer::new());
                let (sender, conn) = builder.handshake(TokioIo::new(stream)).await?;
                spawn_connection(conn, permit);
                *lock(&pool.h2) = Some(sender.clone());
                Ok(Sender::H2(sender))
            }
        }
    }

    fn reuse(&self, pool: &HostPool, now: Instant) -> Option<Sender> {
        match self.protocol {
            UpstreamProtocol::Http1 => pool
                .take_idle(now)
                .map(|conn| Sender::H1 { conn, reused: true }),
            UpstreamProtocol::H2c => pool.shared_h2().map(Sender::H2),
        }
    }

    /// A new HTTP/1 connection outside the pending queue (replacing a stale one whose
    /// slot was just given back).
    async fn connect_h1(&self, addr: SocketAddr) -> Result<H1Conn, ConnectError> {
        let permit = self
            .slots
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ConnectError::Overflow(Overflow::Connections))?;
        let stream = self.dial.connect(addr).await?;
        Ok(H1Conn::new(stream, permit))
    }
}

/// `out` over a shared h2c connection.
async fn send_h2(
    mut sender: http2::SendRequest<ProxyBody>,
    out: Outgoing<'_>,
) -> Result<Response<UpstreamBody>, SendError> {
    let mut req = Request::new(out.body);
    *req.method_mut() = out.method.clone();
    *req.uri_mut() = out.uri;
    *req.version_mut() = out.version;
    let mut headers = out.headers.clone();
    for (name, value) in out.set {
        headers.insert(name, value.clone());
    }
    *req.headers_mut() = headers;
    let resp = within(out.deadline, sender.send_request(req)).await??;
    Ok(resp.map(UpstreamBody::H2))
}

/// `work`, or [`SendError::Timeout`] if `deadline` comes first.
async fn within<F: std::future::Future>(
    deadline: Option<Instant>,
    work: F,
) -> Result<F::Output, SendError> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, work)
            .await
            .map_err(|_| SendError::Timeout),
        None => Ok(work.await),
    }
}

/// Drive an h2c connection until it closes, holding its connection slot.
fn spawn_connection<F>(conn: F, permit: OwnedSemaphorePermit)
where
    F: std::future::Future<Output = hyper::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let _permit = permit;
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
}
