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
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::body::{BoxError, ProxyBody};
use super::h1::{H1Body, H1Conn, H1Error, Home};
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
    H1(#[from] H1Error),
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
        lock(&self.idle).push(Idle {
            conn,
            since: Instant::now(),
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

    /// The most recently used idle connection that is still usable.
    fn take_idle(&self) -> Option<H1Conn> {
        loop {
            let Idle { conn, since } = lock(&self.idle).pop()?;
            if since.elapsed() < IDLE_TIMEOUT && !conn.is_stale() {
                return Some(conn);
            }
        }
    }

    fn shared_h2(&self) -> Option<http2::SendRequest<ProxyBody>> {
        lock(&self.h2).as_ref().filter(|s| s.is_ready()).cloned()
    }
}

/// One attempt's request: the head is borrowed (HTTP/1 writes it out as it is; h2c
/// copies it), the body is the attempt's own.
pub struct Outgoing<'a> {
    /// The method.
    pub method: &'a Method,
    /// The target: origin form for HTTP/1, absolute for h2c.
    pub uri: Uri,
    /// The version to speak.
    pub version: Version,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: ProxyBody,
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
        match self.checkout(pool, addr).await? {
            Sender::H2(mut sender) => {
                let mut req = Request::new(out.body);
                *req.method_mut() = out.method.clone();
                *req.uri_mut() = out.uri;
                *req.version_mut() = out.version;
                *req.headers_mut() = out.headers.clone();
                Ok(sender.send_request(req).await?.map(UpstreamBody::H2))
            }
            Sender::H1 { conn, reused } => {
                let home: Arc<dyn Home> = pool.clone();
                // A pooled connection the backend closed as the request went out: an
                // empty request is sent again over a fresh connection.
                let again = reused && out.body.is_end_stream();
                let head = (out.method, &out.uri, out.headers);
                let resp = match conn.send(head, out.body, home.clone()).await {
                    Ok(resp) => resp,
                    Err(e) if again && e.before_response() => {
                        let conn = self.connect_h1(addr).await?;
                        conn.send(head, super::body::empty(), home).await?
                    }
                    Err(e) => return Err(e.into()),
                };
                Ok(resp.map(UpstreamBody::H1))
            }
        }
    }

    async fn checkout(&self, pool: &HostPool, addr: SocketAddr) -> Result<Sender, ConnectError> {
        if let Some(sender) = self.reuse(pool).await {
            return Ok(sender);
        }
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
                            if let Some(sender) = self.reuse(pool).await {
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

    async fn reuse(&self, pool: &HostPool) -> Option<Sender> {
        match self.protocol {
            UpstreamProtocol::Http1 => pool
                .take_idle()
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
