//! Live state of one service: its hosts with load counts, the outlier detector, the
//! balancer, breaker counts and the pooled upstream client. Survives route updates:
//! [`ServiceState::apply`] swaps the configuration and keeps the state of hosts that
//! remain.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::body::ProxyBody;
use super::Dial;
use crate::breaker::{BreakerCounts, Overflow};
use crate::config::{Service, UpstreamProtocol};
use crate::lb::{self, Candidates, SmoothWrr};
use crate::outlier::OutlierDetector;

/// The pooled HTTP client to one service's hosts.
pub type UpstreamClient = Client<Connector, ProxyBody>;

/// One backend and its live counts.
#[derive(Debug)]
pub struct HostState {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests in flight to it.
    pub outstanding: AtomicUsize,
    /// Attempts sent to it.
    pub requests: AtomicU64,
    /// Attempts that failed (5xx or a connection error).
    pub failures: AtomicU64,
}

/// What requests read about a service: swapped as a whole on updates.
pub struct ServiceSnapshot {
    /// The configuration.
    pub config: Service,
    /// Hosts, index-aligned with `config.servers`.
    pub hosts: Vec<Arc<HostState>>,
    /// Host addresses.
    pub addrs: Vec<SocketAddr>,
    /// Host weights.
    pub weights: Vec<u32>,
    /// Sticky-cookie value of each host.
    pub sticky_values: Vec<String>,
    /// Upstream client.
    pub client: UpstreamClient,
    /// Connection slots (`max_connections`).
    pub connections: Arc<Semaphore>,
}

/// The live state of one service.
pub struct ServiceState {
    /// The service name.
    pub name: String,
    /// Current configuration and hosts.
    pub snapshot: ArcSwap<ServiceSnapshot>,
    /// Outlier detection.
    pub outlier: Mutex<OutlierDetector>,
    wrr: Mutex<SmoothWrr>,
    /// Breaker counts.
    pub counts: Arc<BreakerCounts>,
    dial: Dial,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state stays consistent even if a holder panicked mid-update.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ServiceState {
    /// State for `config`, with fresh hosts.
    pub fn new(name: &str, config: Service, dial: Dial) -> Arc<ServiceState> {
        let counts = Arc::new(BreakerCounts::default());
        let outlier = OutlierDetector::new(config.outlier);
        let snapshot = build_snapshot(config, &[], None, &counts, dial.clone());
        let state = ServiceState {
            name: name.to_string(),
            snapshot: ArcSwap::from_pointee(snapshot),
            outlier: Mutex::new(outlier),
            wrr: Mutex::new(SmoothWrr::default()),
            counts,
            dial,
        };
        let addrs = state.snapshot.load().addrs.clone();
        lock(&state.outlier).set_hosts(&addrs, Instant::now());
        Arc::new(state)
    }

    /// Switch to `config`, keeping hosts (and their ejections and counts) that remain,
    /// and the client when the protocol and connection limit are unchanged.
    pub fn apply(&self, config: Service) {
        let old = self.snapshot.load();
        let keep_client = old.config.protocol == config.protocol
            && old.config.breaker.max_connections == config.breaker.max_connections;
        let reuse = keep_client.then(|| (old.client.clone(), old.connections.clone()));
        let snapshot = build_snapshot(config, &old.hosts, reuse, &self.counts, self.dial.clone());
        {
            let mut outlier = lock(&self.outlier);
            outlier.set_config(snapshot.config.outlier);
            outlier.set_hosts(&snapshot.addrs, Instant::now());
        }
        self.snapshot.store(Arc::new(snapshot));
    }

    /// Pick a host for an attempt; `None` when the service has no hosts.
    pub fn pick(
        &self,
        snap: &ServiceSnapshot,
        tried: &[bool],
        sticky: Option<&str>,
    ) -> Option<usize> {
        if snap.hosts.is_empty() {
            return None;
        }
        let eligibility = lock(&self.outlier).eligibility(&snap.addrs, Instant::now());
        let outstanding: Vec<usize> = snap
            .hosts
            .iter()
            .map(|h| h.outstanding.load(Ordering::Relaxed))
            .collect();
        let sticky = sticky.and_then(|v| snap.sticky_values.iter().position(|s| s == v));
        let candidates = Candidates {
            weights: &snap.weights,
            outstanding: &outstanding,
            eligible: &eligibility.eligible,
            tried,
            sticky,
        };
        let mut wrr = lock(&self.wrr);
        lb::choose(
            snap.config.lb,
            &mut wrr,
            candidates,
            &mut rand::thread_rng(),
        )
    }
}

fn build_snapshot(
    config: Service,
    old_hosts: &[Arc<HostState>],
    reuse: Option<(UpstreamClient, Arc<Semaphore>)>,
    counts: &Arc<BreakerCounts>,
    dial: Dial,
) -> ServiceSnapshot {
    let hosts: Vec<Arc<HostState>> = config
        .servers
        .iter()
        .map(|s| {
            old_hosts
                .iter()
                .find(|h| h.addr == s.addr)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(HostState {
                        addr: s.addr,
                        outstanding: AtomicUsize::new(0),
                        requests: AtomicU64::new(0),
                        failures: AtomicU64::new(0),
                    })
                })
        })
        .collect();
    let (client, connections) = reuse.unwrap_or_else(|| {
        let connections = Arc::new(Semaphore::new(config.breaker.max_connections));
        let connector = Connector {
            connections: connections.clone(),
            counts: counts.clone(),
            max_pending: config.breaker.max_pending_requests,
            dial,
        };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_only(config.protocol == UpstreamProtocol::H2c);
        (builder.build(connector), connections)
    });
    ServiceSnapshot {
        addrs: config.servers.iter().map(|s| s.addr).collect(),
        weights: config.servers.iter().map(|s| s.weight).collect(),
        sticky_values: config
            .servers
            .iter()
            .map(|s| lb::sticky_value(&s.addr))
            .collect(),
        hosts,
        client,
        connections,
        config,
    }
}

/// Why an upstream connection was not made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The breaker refused it.
    #[error("circuit breaker: too many {}", .0.as_str())]
    Overflow(Overflow),
    /// The URI has no usable address.
    #[error("bad upstream address `{0}`")]
    Address(String),
    /// TCP connect failed.
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    /// TCP connect took too long.
    #[error("connect timed out")]
    Timeout,
}

/// Opens TCP connections to hosts within the service's connection and pending limits.
#[derive(Clone)]
pub struct Connector {
    connections: Arc<Semaphore>,
    counts: Arc<BreakerCounts>,
    max_pending: usize,
    dial: Dial,
}

impl tower::Service<Uri> for Connector {
    type Response = Upstream;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Upstream, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let permit = match this.connections.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    let limits = crate::breaker::BreakerThresholds {
                        max_pending_requests: this.max_pending,
                        ..Default::default()
                    };
                    let _pending = this
                        .counts
                        .try_pending(&limits)
                        .map_err(|_| ConnectError::Overflow(Overflow::Pending))?;
                    this.connections
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| ConnectError::Overflow(Overflow::Connections))?
                }
            };
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
            let addr: SocketAddr = authority
                .parse()
                .map_err(|_| ConnectError::Address(authority.to_string()))?;
            let stream = tokio::time::timeout(this.dial.timeout, this.dial.dialer.dial(addr))
                .await
                .map_err(|_| ConnectError::Timeout)??;
            stream.set_nodelay(true)?;
            Ok(Upstream {
                io: TokioIo::new(stream),
                _permit: permit,
            })
        })
    }
}

/// An upstream connection holding one of the service's connection slots.
pub struct Upstream {
    io: TokioIo<TcpStream>,
    _permit: OwnedSemaphorePermit,
}

impl Connection for Upstream {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl Read for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dial() -> Dial {
        Dial {
            timeout: Duration::from_secs(1),
            dialer: crate::proxy::Dialer::direct(),
        }
    }
    use crate::config::Server;
    use crate::retry::AttemptOutcome;
    use http::StatusCode;

    const S502: AttemptOutcome = AttemptOutcome::Status(StatusCode::BAD_GATEWAY);

    fn servers(addrs: &[SocketAddr]) -> Service {
        Service::new(
            addrs
                .iter()
                .map(|a| Server {
                    addr: *a,
                    weight: 1,
                })
                .collect(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn an_ejected_host_gets_no_picks_and_returns_after_the_ejection_time() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let s = ServiceState::new("s", servers(&[a, b]), dial());
        for _ in 0..5 {
            lock(&s.outlier).record(&a, &S502, Instant::now());
        }
        let snap = s.snapshot.load_full();
        for _ in 0..10 {
            assert_eq!(s.pick(&snap, &[false, false], None), Some(1));
        }
        // An update that keeps `a` keeps its ejection and its counters.
        let host_a = snap.hosts[0].clone();
        s.apply(servers(&[b, a]));
        let snap = s.snapshot.load_full();
        assert!(Arc::ptr_eq(&snap.hosts[1], &host_a));
        for _ in 0..10 {
            assert_eq!(s.pick(&snap, &[false, false], None), Some(0));
        }
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!((0..10).all(|_| s.pick(&snap, &[false, false], None) == Some(0)));
        tokio::time::advance(Duration::from_secs(1)).await;
        let picks: Vec<_> = (0..4)
            .map(|_| s.pick(&snap, &[false, false], None))
            .collect();
        assert!(picks.contains(&Some(1)), "{picks:?}");
    }

    #[tokio::test]
    async fn a_service_without_servers_picks_nothing() {
        let s = ServiceState::new("s", servers(&[]), dial());
        assert_eq!(s.pick(&s.snapshot.load(), &[], None), None);
    }
}
