//! Upstream connections: per host, a small keep-alive pool of HTTP/1 senders (or one
//! shared HTTP/2 sender for h2c), within the service's connection and pending limits.
//!
//! ```text
//!  checkout(host) ─▶ idle sender ready? ─ yes ─▶ use it
//!        │ no
//!        ▼
//!  connection slot free? ─ no ─▶ pending slot? ─ no ─▶ Overflow(pending)
//!        │ yes                        │ yes: wait for a slot or an idle sender
//!        ▼                            ▼
//!  dial (timeout) ─▶ handshake ─▶ spawn the connection task (holds the slot)
//!  response body ends ─▶ sender back to the pool (LIFO; dropped after IDLE_TIMEOUT)
//! ```
//! The request path takes the pool's mutex only to push or pop one sender.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::body::ProxyBody;
use super::lock;
use super::Dial;
use crate::breaker::{BreakerCounts, Overflow};
use crate::config::UpstreamProtocol;

/// Idle HTTP/1 connections older than this are closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

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
    /// The connection failed while sending or before the response head.
    #[error("upstream: {0}")]
    Http(#[from] hyper::Error),
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

/// One idle HTTP/1 sender.
struct Idle {
    sender: http1::SendRequest<ProxyBody>,
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

impl HostPool {
    /// Close every pooled connection (after a protocol or limit change).
    pub fn clear(&self) {
        lock(&self.idle).clear();
        lock(&self.h2).take();
    }

    /// Put a sender whose response is complete back for reuse.
    fn put(&self, sender: http1::SendRequest<ProxyBody>) {
        if sender.is_closed() {
            return;
        }
        lock(&self.idle).push(Idle {
            sender,
            since: Instant::now(),
        });
        self.returned.notify_one();
    }

    /// The most recently used idle sender that is still usable.
    async fn take_idle(&self) -> Option<http1::SendRequest<ProxyBody>> {
        loop {
            let Idle { mut sender, since } = lock(&self.idle).pop()?;
            if sender.is_closed() || since.elapsed() >= IDLE_TIMEOUT {
                continue;
            }
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn shared_h2(&self) -> Option<http2::SendRequest<ProxyBody>> {
        lock(&self.h2).as_ref().filter(|s| s.is_ready()).cloned()
    }
}

/// A sender for one attempt. An HTTP/1 sender goes back to its host's pool through
/// [`Lease`] once the response body has ended.
pub enum Sender {
    /// HTTP/1.1; `reused` when it came from the pool.
    H1 {
        sender: http1::SendRequest<ProxyBody>,
        reused: bool,
    },
    /// h2c, shared.
    H2(http2::SendRequest<ProxyBody>),
}

/// Gives an HTTP/1 sender back to its pool when dropped after its response ended.
pub struct Lease {
    host: Arc<HostPool>,
    sender: http1::SendRequest<ProxyBody>,
}

impl Lease {
    /// Return the sender to the pool (call when the response body has ended).
    pub fn release(self) {
        self.host.put(self.sender);
    }
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
    /// Send `req` to `addr`, reusing a pooled connection when one is idle. Returns
    /// the response and, for HTTP/1, the lease to release when its body ends.
    pub async fn send(
        &self,
        pool: &Arc<HostPool>,
        addr: SocketAddr,
        req: Request<ProxyBody>,
    ) -> Result<(Response<Incoming>, Option<Lease>), SendError> {
        match self.checkout(pool, addr).await? {
            Sender::H2(mut sender) => Ok((sender.send_request(req).await?, None)),
            Sender::H1 { mut sender, reused } => {
                let resp = match sender.try_send_request(req).await {
                    Ok(resp) => resp,
                    Err(mut e) => match e.take_message() {
                        // A pooled connection the backend had closed: the request
                        // was not sent, so it may go over a fresh connection.
                        Some(req) if reused => {
                            sender = self.connect_h1(addr).await?;
                            sender.send_request(req).await?
                        }
                        _ => return Err(e.into_error().into()),
                    },
                };
                let lease = Lease {
                    host: pool.clone(),
                    sender,
                };
                Ok((resp, Some(lease)))
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
                sender: handshake_h1(stream, permit).await?,
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
            UpstreamProtocol::Http1 => pool.take_idle().await.map(|sender| Sender::H1 {
                sender,
                reused: true,
            }),
            UpstreamProtocol::H2c => pool.shared_h2().map(Sender::H2),
        }
    }

    /// A new HTTP/1 connection outside the pending queue (replacing a stale one whose
    /// slot was just given back).
    async fn connect_h1(
        &self,
        addr: SocketAddr,
    ) -> Result<http1::SendRequest<ProxyBody>, ConnectError> {
        let permit = self
            .slots
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ConnectError::Overflow(Overflow::Connections))?;
        let stream = self.dial.connect(addr).await?;
        handshake_h1(stream, permit).await
    }
}

async fn handshake_h1(
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
) -> Result<http1::SendRequest<ProxyBody>, ConnectError> {
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await?;
    spawn_connection(conn, permit);
    Ok(sender)
}

/// Drive a connection until it closes, holding its connection slot.
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
