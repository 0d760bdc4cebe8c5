//! The IO: a [`Resolver`] holds what the control side publishes (the record table, the
//! upstream list) and serves it on any number of addresses, one per network.
//!
//! ```text
//!  agent ── update(table) ─────────▶ ArcSwap<RecordTable> ◀── load() per query
//!        ── set_upstreams(addrs) ──▶ ArcSwap<[SocketAddr]> (less our own addresses)
//!        ── serve(gw:53, "net", stop)
//!              ├─ UDP: N workers, each a tight recv → answer → send loop on one socket
//!              │        Forward ─▶ a task per query (bounded), reply or SERVFAIL
//!              └─ TCP: accept (bounded) ─▶ a task per connection, length-prefixed
//! ```
//! Nothing on the serving path takes a lock; `set_upstreams` and binding take one on
//! the control side only.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use std::net::UdpSocket;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::answer::{ForwardQuery, Transport, DEFAULT_MAX_UDP_PAYLOAD};
use crate::forward::{self, effective_upstreams, DEFAULT_FORWARD_TIMEOUT};
use crate::stats::{Counters, Stats};
use crate::{answer, Error, RecordTable};

mod tcp;
mod udp;

/// How a resolver serves; the defaults suit a node.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// Time budget for a forwarded query over all upstreams; then SERVFAIL.
    pub forward_timeout: Duration,
    /// The largest UDP payload we offer EDNS clients (at least 512).
    pub max_udp_payload: u16,
    /// UDP receive threads per listener; 0 means one per available core. One is the
    /// default: a node has a listener per network, and on the 2-core benchmark one
    /// thread per socket gave the highest rate and lowest p99 (more threads on one
    /// socket contend for it).
    pub udp_workers: usize,
    /// A TCP connection idle this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Open TCP connections per listener; more are closed at once.
    pub max_tcp_connections: usize,
    /// Forwarded queries waiting for upstreams, per resolver; more are dropped.
    pub max_forwards_in_flight: usize,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
            max_udp_payload: DEFAULT_MAX_UDP_PAYLOAD,
            udp_workers: 1,
            tcp_idle_timeout: Duration::from_secs(10),
            max_tcp_connections: 256,
            max_forwards_in_flight: 1024,
        }
    }
}

impl ResolverConfig {
    /// Checks every setting is in range.
    pub fn validate(&self) -> Result<(), Error> {
        if self.forward_timeout.is_zero() {
            return Err(Error::InvalidConfig("forward_timeout must be above zero"));
        }
        if self.max_udp_payload < 512 {
            return Err(Error::InvalidConfig("max_udp_payload must be at least 512"));
        }
        if self.tcp_idle_timeout.is_zero() {
            return Err(Error::InvalidConfig("tcp_idle_timeout must be above zero"));
        }
        if self.max_tcp_connections == 0 || self.max_forwards_in_flight == 0 {
            return Err(Error::InvalidConfig(
                "connection and forward limits must be above zero",
            ));
        }
        Ok(())
    }

    fn workers(&self) -> usize {
        match self.udp_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// One node's service-discovery resolver: a cheap handle, clone it freely.
#[derive(Clone)]
pub struct Resolver {
    shared: Arc<Shared>,
}

/// What every listener and forwarding task of one resolver reads.
pub(crate) struct Shared {
    pub(crate) table: ArcSwap<RecordTable>,
    pub(crate) upstreams: ArcSwap<Vec<SocketAddr>>,
    /// The addresses we listen on: never an upstream, also not a client's own.
    own: ArcSwap<Vec<SocketAddr>>,
    endpoints: Mutex<Endpoints>,
    pub(crate) config: ResolverConfig,
    pub(crate) counters: Counters,
    pub(crate) forwards: Arc<Semaphore>,
}

/// The control side's view: what the agent configured and where we listen.
#[derive(Default)]
struct Endpoints {
    configured: Vec<SocketAddr>,
    own: Vec<SocketAddr>,
}

impl Resolver {
    /// A resolver with an empty table and no upstreams.
    pub fn new(config: ResolverConfig) -> Result<Self, Error> {
        config.validate()?;
        let forwards = Arc::new(Semaphore::new(config.max_forwards_in_flight));
        Ok(Self {
            shared: Arc::new(Shared {
                table: ArcSwap::from_pointee(RecordTable::default()),
                upstreams: ArcSwap::from_pointee(Vec::new()),
                own: ArcSwap::from_pointee(Vec::new()),
                endpoints: Mutex::new(Endpoints::default()),
                config,
                counters: Counters::default(),
                forwards,
            }),
        })
    }

    /// Swaps in a new table; the next query on every listener reads it.
    pub fn update(&self, table: RecordTable) {
        self.shared.table.store(Arc::new(table));
    }

    /// The table being served.
    pub fn table(&self) -> Arc<RecordTable> {
        self.shared.table.load_full()
    }

    /// Sets the upstream resolvers, in order of preference. Any that is this resolver
    /// (one of its listening addresses) is left out.
    pub fn set_upstreams(&self, upstreams: impl IntoIterator<Item = SocketAddr>) {
        self.with_endpoints(|e| e.configured = upstreams.into_iter().collect());
    }

    /// The upstreams forwarded to, after leaving out our own addresses.
    pub fn upstreams(&self) -> Vec<SocketAddr> {
        self.shared.upstreams.load().as_ref().clone()
    }

    /// Counters since the resolver was made.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Binds UDP and TCP on `addr` (port 0: the same free port for both) for `network`.
    pub async fn bind(
        &self,
        addr: SocketAddr,
        network: impl Into<String>,
    ) -> Result<Listener, Error> {
        let (udp, tcp) = bind_pair(addr).await?;
        let local = udp.local_addr().map_err(|source| Error::Bind {
            proto: "udp",
            addr,
            source,
        })?;
        self.with_endpoints(|e| e.own.push(local));
        Ok(Listener {
            own: OwnAddress {
                resolver: self.clone(),
                addr: local,
            },
            udp: Arc::new(udp),
            tcp,
            network: network.into().into(),
        })
    }

    /// Serves `network` on `bind` over UDP and TCP until `stop` completes.
    pub async fn serve(
        &self,
        bind: SocketAddr,
        network: String,
        stop: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.bind(bind, network).await?.serve(stop).await
    }

    fn with_endpoints(&self, change: impl FnOnce(&mut Endpoints)) {
        let mut endpoints = self
            .shared
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        change(&mut endpoints);
        let effective = effective_upstreams(&endpoints.configured, &endpoints.own);
        self.shared.upstreams.store(Arc::new(effective));
        self.shared.own.store(Arc::new(endpoints.own.clone()));
    }
}

impl Shared {
    /// Forwards `query` of `client` and returns the reply to send: the upstream's, or
    /// SERVFAIL. A client with upstreams of its own in the table gets those.
    pub(crate) async fn forward_or_servfail(
        &self,
        query: &[u8],
        fq: &ForwardQuery,
        transport: Transport,
        client: std::net::IpAddr,
    ) -> Vec<u8> {
        let upstreams = match self.table.load().upstreams_for(client) {
            Some(own) => Arc::new(effective_upstreams(&own, &self.own.load())),
            None => self.upstreams.load_full(),
        };
        match forward::forward(
            &upstreams,
            query,
            fq,
            self.config.forward_timeout,
            transport,
        )
        .await
        {
            Ok(reply) => {
                self.counters.relayed(&reply);
                reply
            }
            Err(e) => {
                tracing::debug!(error = %e, "forwarding failed, answering SERVFAIL");
                self.counters.forward_failed();
                let mut out = Vec::new();
                answer::write_servfail(query, fq, &mut out);
                out
            }
        }
    }
}

/// A bound listener for one network; [`Listener::serve`] runs it.
pub struct Listener {
    own: OwnAddress,
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    network: Arc<str>,
}

impl Listener {
    /// The address bound (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.own.addr
    }

    /// Serves until `stop` completes; then every thread and task of this listener is
    /// ended and its sockets closed (a forwarded query in flight still gets its answer
    /// or SERVFAIL). Fails only if the UDP threads cannot be started.
    pub async fn serve(self, stop: impl Future<Output = ()>) -> Result<(), Error> {
        let shared = &self.own.resolver.shared;
        let udp = udp::start(shared, &self.udp, &self.network, shared.config.workers())?;
        let mut tasks = JoinSet::new();
        tasks.spawn(tcp::serve(shared.clone(), self.tcp, self.network.clone()));
        tracing::info!(addr = %self.own.addr, network = %self.network, "DNS listening");
        stop.await;
        tasks.shutdown().await;
        udp.stop().await;
        tracing::info!(addr = %self.own.addr, network = %self.network, "DNS stopped");
        Ok(())
    }
}

/// Keeps a listening address in the resolver's "own" set while the listener lives.
struct OwnAddress {
    resolver: Resolver,
    addr: SocketAddr,
}

impl Drop for OwnAddress {
    fn drop(&mut self) {
        let addr = self.addr;
        self.resolver.with_endpoints(|e| {
            if let Some(at) = e.own.iter().position(|&a| a == addr) {
                e.own.swap_remove(at);
            }
        });
    }
}

/// Binds UDP, then TCP on the same port; with port 0 retries a few times if the
/// kernel's UDP port is taken for TCP.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), Error> {
    const ATTEMPTS: usize = 16;
    let bind_err = |proto, addr, source| Error::Bind {
        proto,
        addr,
        source,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = UdpSocket::bind(addr).map_err(|e| bind_err("udp", addr, e))?;
        let local = udp.local_addr().map_err(|e| bind_err("udp", addr, e))?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e)
                if addr.port() == 0
                    && attempt < ATTEMPTS
                    && e.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(bind_err("tcp", local, e)),
        }
    }
}
