//! The proxy server: hyper connections per entrypoint, reading an atomically swapped
//! route table.
//!
//! ```text
//!  TcpListener ─▶ (TLS, SNI cert, ALPN h2/http1.1) ─▶ hyper auto (h1/h2, upgrades)
//!     ─▶ forward::handle ─▶ RouteTable (ArcSwap, lock-free read) ─▶ router ─▶ service
//!         ─▶ [middlewares: request side] ─▶ breaker gate ─▶ pick host (outlier + lb)
//!         ─▶ attempt ─▶ retry? ─▶ [middlewares: response side] ─▶ response
//!  control side: Proxy::update(Routes) ─▶ new RouteTable, ServiceState kept by name,
//!                middleware instances (buckets, counts, breakers) kept by router/name
//! ```

mod accept;
mod admit;
pub(crate) mod body;
mod conns;
mod fast;
mod forward;
mod h1;
mod headers;
mod io;
pub mod listen;
mod service;
mod status;
mod target;
mod traced;
mod upgrade;
mod upstream;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

pub use body::ProxyBody;
pub use headers::{
    add_forwarded, ambiguous_framing, forwarded_for, strip_hop_by_hop, strip_untrusted,
    wants_upgrade, Origin,
};
pub use status::{BackendStatus, Health, RouteStatus};
pub use traced::TracingOptions;

use crate::access_log::{AccessLog, AccessLogConfig, AccessLogError};
use crate::config::{ConfigError, Entrypoint, Router, Routes, Trust};
use crate::metrics::{Metrics, RouteMetrics};
use crate::middleware::{Instances, Pipeline};
use crate::rule::PreparedRequest;
pub use accept::raise_fd_limit;
pub(crate) use accept::{accept, start_each};
use accept::{accept_shedding, SHED_GRACE};
use body::BoxError;
pub(crate) use io::feed;
use io::{ClientIo, Rewind};
use service::ServiceState;
use upstream::ConnectError;

/// An entrypoint being served by [`Proxy::start`].
#[derive(Debug)]
pub struct Started {
    /// Entrypoint name.
    pub entrypoint: String,
    /// The bound address (useful with port 0).
    pub address: SocketAddr,
    /// The accept loop.
    pub task: tokio::task::JoinHandle<()>,
}

/// An entrypoint that could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The address could not be bound.
    #[error("entrypoint {entrypoint}: bind {address}: {source}")]
    Bind {
        /// Entrypoint name.
        entrypoint: String,
        /// Address.
        address: SocketAddr,
        /// The IO error.
        source: std::io::Error,
    },
    /// The certificates could not be loaded.
    #[error("entrypoint {entrypoint}: {source}")]
    Tls {
        /// Entrypoint name.
        entrypoint: String,
        /// The TLS error.
        source: crate::tls::TlsError,
    },
}

/// Settings of the proxy itself (not of routes).
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// A client must send complete request headers within this time (HTTP/1).
    pub header_read_timeout: Duration,
    /// Largest request head accepted; larger gets 431 (at least 8 KiB).
    pub max_header_bytes: usize,
    /// Request bodies up to this size are buffered so they can be retried.
    pub max_buffered_body: usize,
    /// Most connections one client address may hold open (0: no cap); peers trusted
    /// for PROXY or forwarding headers (balancers in front) are not capped.
    pub max_connections_per_client: usize,
    /// Most concurrent streams of one HTTP/2 connection (advertised in SETTINGS).
    pub max_concurrent_streams: u32,
    /// Limit for a TCP connect to a backend.
    pub connect_timeout: Duration,
    /// A client that sends no byte of its request body for this long gets 408 (the
    /// route's timeout starts only once the body is complete).
    pub body_idle_timeout: Duration,
    /// Limit for a client's TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Registry for the metrics; a private one when `None`.
    pub registry: Option<prometheus::Registry>,
    /// How connections to backends are opened.
    pub dialer: Dialer,
    /// The access log; off (`None`) by default, as in Træfik.
    pub access_log: Option<AccessLogConfig>,
    /// Whether HTTP/1.1 connections start on the proxy's own fast path, which answers
    /// plain requests itself and hands anything else to hyper (on by default). Off,
    /// hyper serves every request; the switch exists so that tests can compare the two
    /// (`tests/differential`).
    pub fast_path: bool,
    /// Request IDs, trace context and spans (Envoy's tracing); off (`None`) by default.
    /// On, every request takes the general path, where its headers are edited.
    pub tracing: Option<TracingOptions>,
}

/// Why a proxy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot set up the proxy's metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    AccessLog(#[from] AccessLogError),
}

/// Opens TCP connections to backends: directly, or for example from a socket made in
/// another network namespace.
#[derive(Clone)]
pub struct Dialer(Arc<dyn Fn(SocketAddr) -> DialFuture + Send + Sync>);

/// A connection being opened by a [`Dialer`].
pub type DialFuture = std::pin::Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>;

impl Dialer {
    /// Connects from this process's network namespace.
    pub fn direct() -> Dialer {
        Dialer(Arc::new(|addr| Box::pin(TcpStream::connect(addr))))
    }

    /// Connects with `f`.
    pub fn new(f: impl Fn(SocketAddr) -> DialFuture + Send + Sync + 'static) -> Dialer {
        Dialer(Arc::new(f))
    }

    /// Opens a connection to `addr`.
    pub fn dial(&self, addr: SocketAddr) -> DialFuture {
        (self.0)(addr)
    }
}

impl Default for Dialer {
    fn default() -> Dialer {
        Dialer::direct()
    }
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialer")
    }
}

/// A connect timeout and the dialer to use within it.
#[derive(Clone, Debug)]
pub struct Dial {
    /// Limit for one connect.
    pub timeout: Duration,
    /// How to connect.
    pub dialer: Dialer,
}

impl Dial {
    /// Open a TCP connection to `addr` within the timeout, with `TCP_NODELAY`.
    async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, ConnectError> {
        let stream = tokio::time::timeout(self.timeout, self.dialer.dial(addr))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// `work`'s output, and whether it had to wait (it was not ready when first polled).
async fn noting_wait<F: Future>(work: F) -> (F::Output, bool) {
    let mut work = std::pin::pin!(work);
    match futures::poll!(work.as_mut()) {
        std::task::Poll::Ready(done) => (done, false),
        std::task::Poll::Pending => (work.await, true),
    }
}

/// Lock `m`: the state it guards stays consistent even if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_buffered_body: 64 * 1024,
            max_connections_per_client: 1024,
            max_concurrent_streams: 100,
            connect_timeout: Duration::from_secs(5),
            body_idle_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            registry: None,
            dialer: Dialer::direct(),
            access_log: None,
            fast_path: true,
            tracing: None,
        }
    }
}

/// One router with what the request path needs of it resolved at update time.
struct Route {
    name: String,
    router: Router,
    /// The router's service (`None`: the name is unknown).
    service: Option<Arc<ServiceState>>,
    metrics: RouteMetrics,
    /// The router's middlewares; `None` when it has none (the plain path).
    pipeline: Option<Box<Pipeline>>,
}

/// The routes in match order.
#[derive(Default)]
struct RouteTable {
    /// Sorted by priority (high first), then name.
    routes: Vec<Route>,
}

impl RouteTable {
    fn route(&self, entrypoint: &str, tls: bool, req: &PreparedRequest<'_>) -> Option<&Route> {
        self.routes.iter().find(|route| {
            let r = &route.router;
            (r.entrypoints.is_empty() || r.entrypoints.iter().any(|e| e == entrypoint))
                && (!r.tls || tls)
                && r.rule.matches_prepared(req)
        })
    }
}

/// Facts about one client connection.
#[derive(Debug)]
struct ConnInfo {
    entrypoint: Arc<str>,
    /// The client: the peer, or the source its PROXY header named.
    client: SocketAddr,
    tls: bool,
    /// The client's address as an `X-Forwarded-For` value.
    forwarded_for: http::HeaderValue,
    /// Whether the client's own forwarding headers are kept (the entrypoint's
    /// `forwardedHeaders` trust it).
    trusted: bool,
    /// This host's name, for `X-Forwarded-Server`.
    server: http::HeaderValue,
}

impl ConnInfo {
    fn origin(&self) -> headers::Origin<'_> {
        headers::Origin {
            client: &self.forwarded_for,
            tls: self.tls,
            server: &self.server,
        }
    }
}

/// Whom an entrypoint believes (from its [`Entrypoint`]): the peers whose PROXY
/// headers are read (`None`: not read), and the clients whose forwarding headers are.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// Read PROXY headers, believing these peers'.
    pub proxy_protocol: Option<Trust>,
    /// Keep these clients' `X-Forwarded-*` headers.
    pub forwarded_headers: Trust,
}

impl Peers {
    /// The trust settings of `entrypoint`.
    pub fn of(entrypoint: &Entrypoint) -> Peers {
        Peers {
            proxy_protocol: entrypoint.proxy_protocol.clone(),
            forwarded_headers: entrypoint.forwarded_headers.clone(),
        }
    }
}

/// This host's name, as Træfik finds it for `X-Forwarded-Server` (`localhost` when it
/// cannot be read).
fn host_name() -> http::HeaderValue {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|name| http::HeaderValue::from_str(name.trim()).ok())
        .filter(|name| !name.is_empty())
        .unwrap_or(http::HeaderValue::from_static("localhost"))
}

/// The L7 proxy. Cheap to share: wrap in `Arc` and call [`Proxy::serve`] per entrypoint.
pub struct Proxy {
    table: ArcSwap<RouteTable>,
    /// Control side only: service state by name, kept across updates.
    services: Mutex<HashMap<String, Arc<ServiceState>>>,
    /// Control side only: middleware instances, kept across updates.
    middlewares: Mutex<Instances>,
    options: ProxyOptions,
    metrics: Metrics,
    /// Request metrics of requests that matched no router.
    unrouted: RouteMetrics,
    registry: prometheus::Registry,
    access_log: Option<AccessLog>,
    /// Requests received since start (the access log's request count).
    requests: std::sync::atomic::AtomicU64,
    /// The TCP routers' side (see [`crate::tcp`]).
    pub(crate) tcp: Arc<crate::tcp::TcpProxy>,
    /// This host's name (`X-Forwarded-Server`).
    server_name: http::HeaderValue,
    /// Every client connection: per-client counts, idleness, shedding.
    conns: Arc<conns::Conns>,
}

impl Proxy {
    /// A proxy with no routes (every request gets 404).
    pub fn new(options: ProxyOptions) -> Result<Arc<Proxy>, SetupError> {
        let registry = options.registry.clone().unwrap_or_default();
        let metrics = Metrics::new(&registry)?;
        let access_log = match &options.access_log {
            Some(config) => Some(AccessLog::start(config, &registry)?),
            None => None,
        };
        let tcp = Arc::new(crate::tcp::TcpProxy::new(
            Dial {
                timeout: options.connect_timeout,
                dialer: options.dialer.clone(),
            },
            options.tls_handshake_timeout,
            options.header_read_timeout,
        ));
        let options_per_client = options.max_connections_per_client;
        Ok(Arc::new(Proxy {
            tcp,
            table: ArcSwap::from_pointee(RouteTable::default()),
            services: Mutex::new(HashMap::new()),
            middlewares: Mutex::new(Instances::default()),
            options,
            unrouted: RouteMetrics::new(&metrics, "", ""),
            metrics,
            registry,
            access_log,
            requests: std::sync::atomic::AtomicU64::new(0),
            server_name: host_name(),
            conns: Arc::new(conns::Conns::new(options_per_client)),
        }))
    }

    /// The registry holding the proxy's metrics.
    pub fn metrics_registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Validate and swap in `routes`. Requests in flight finish on the table they
    /// started with; open connections and WebSockets stay open; the state of services
    /// and hosts that remain (ejections, counts, pooled connections) is kept.
    pub fn update(&self, routes: Routes) -> Result<(), ConfigError> {
        routes.validate()?;
        let pipelines = self.build_pipelines(&routes)?;
        let tcp = routes.tcp;
        let mut registry = lock(&self.services);
        let mut services = HashMap::new();
        for (name, config) in routes.services {
            let state = match registry.get(&name) {
                Some(state) => {
                    state.apply(config);
                    state.clone()
                }
                None => ServiceState::new(
                    &name,
                    config,
                    Dial {
                        timeout: self.options.connect_timeout,
                        dialer: self.options.dialer.clone(),
                    },
                ),
            };
            services.insert(name, state);
        }
        let mut pipelines = pipelines;
        let mut table: Vec<Route> = routes
            .routers
            .into_iter()
            .map(|(name, router)| Route {
                service: services.get(&router.service).cloned(),
                metrics: RouteMetrics::new(&self.metrics, &name, &router.service),
                pipeline: pipelines.remove(&name).map(Box::new),
                name,
                router,
            })
            .collect();
        *registry = services;
        table.sort_by(|a, b| {
            (b.router.priority.cmp(&a.router.priority)).then_with(|| a.name.cmp(&b.name))
        });
        self.table.store(Arc::new(RouteTable { routes: table }));
        self.tcp.update(tcp);
        Ok(())
    }

    /// The middleware pipelines of the routers that have middlewares, by router name;
    /// instances whose configuration is unchanged keep their state.
    fn build_pipelines(&self, routes: &Routes) -> Result<HashMap<String, Pipeline>, ConfigError> {
        let mut instances = lock(&self.middlewares);
        let mut next = Instances::default();
        let mut pipelines = HashMap::new();
        let now = Instant::now();
        for (name, router) in &routes.routers {
            if router.middlewares.is_empty() {
                continue;
            }
            let path = format!("routers.{name}.middlewares");
            let keys = routes
                .router_middlewares(router)
                .map_err(|m| crate::config::invalid(&path, m))?;
            let pipeline =
                Pipeline::build(name, &keys, &routes.middlewares, &instances, &mut next, now)
                    .map_err(|m| crate::config::invalid(&path, m))?;
            pipelines.insert(name.clone(), pipeline);
        }
        *instances = next;
        Ok(pipelines)
    }

    /// Accept and serve connections on `listener` for `entrypoint` until the future is
    /// dropped (spawn it; abort the task to stop). With `tls`, connections are TLS
    /// (ALPN h2 or http/1.1). No PROXY headers are read and no client's forwarding
    /// headers are believed (see [`Proxy::serve_with`]).
    pub fn serve(
        self: Arc<Self>,
        entrypoint: &str,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.serve_with(entrypoint, listener, tls, Peers::default())
    }

    /// [`Proxy::serve`], believing `peers`' PROXY and forwarding headers.
    pub fn serve_with(
        self: Arc<Self>,
        entrypoint: &str,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        peers: Peers,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let entrypoint: Arc<str> = entrypoint.into();
        let acceptor = tls.map(TlsAcceptor::from);
        let open = self
            .metrics
            .open_connections
            .with_label_values(&[&*entrypoint]);
        let peers = Arc::new(peers);
        async move {
            loop {
                let (stream, peer) = accept_shedding(&listener, &entrypoint, &self.conns).await;
                // Balancers in front (trusted for PROXY or forwarding headers) carry
                // many clients' connections: they are not capped.
                let capped = !(peers.forwarded_headers.trusts(peer.ip())
                    || peers
                        .proxy_protocol
                        .as_ref()
                        .is_some_and(|t| t.trusts(peer.ip())));
                let Some(registration) = self.conns.register(peer.ip(), capped) else {
                    tracing::debug!(%peer, entrypoint = %entrypoint, "connection refused: the client holds its cap of connections");
                    self.metrics
                        .connections_refused
                        .with_label_values(&[&*entrypoint])
                        .inc();
                    drop(stream);
                    continue;
                };
                let proxy = self.clone();
                let entrypoint = entrypoint.clone();
                let acceptor = acceptor.clone();
                let open = open.clone();
                let peers = peers.clone();
                tokio::spawn(async move {
                    open.inc();
                    proxy
                        .connection(stream, peer, entrypoint, acceptor, &peers, registration)
                        .await;
                    open.dec();
                });
            }
        }
    }

    /// Bind every entrypoint of a [`ProxyConfig`](crate::config::ProxyConfig) (loading
    /// its certificates) and spawn [`Proxy::serve_with`] for each, with its trust
    /// settings. Returns the bound addresses and tasks; abort the tasks to stop.
    pub async fn start(
        self: &Arc<Self>,
        entrypoints: &BTreeMap<String, Entrypoint>,
    ) -> Result<Vec<Started>, StartError> {
        start_each(entrypoints, |name, ep, listener, tls| {
            self.clone().serve_with(name, listener, tls, Peers::of(ep))
        })
        .await
    }

    /// A connection from `peer`: its PROXY header read if the entrypoint takes one,
    /// then served.
    async fn connection(
        self: Arc<Self>,
        mut stream: TcpStream,
        peer: SocketAddr,
        entrypoint: Arc<str>,
        acceptor: Option<TlsAcceptor>,
        peers: &Peers,
        registration: conns::Registration,
    ) {
        let (client, early) = match &peers.proxy_protocol {
            None => (peer, Vec::new()),
            Some(trust) => {
                let timeout = self.options.header_read_timeout;
                match crate::proxy_protocol::accept::from_tcp(&mut stream, peer, trust, timeout)
                    .await
                {
                    Ok(accepted) => (accepted.client, accepted.early),
                    Err(e) => {
                        tracing::debug!(%peer, entrypoint = %entrypoint, error = %e, "connection closed");
                        return;
                    }
                }
            }
        };
        let info = ConnInfo {
            entrypoint,
            client,
            tls: acceptor.is_some(),
            forwarded_for: headers::forwarded_for(client.ip()),
            trusted: peers.forwarded_headers.trusts(client.ip()),
            server: self.server_name.clone(),
        };
        self.serve_connection(stream, info, acceptor, early, &registration.activity)
            .await;
    }

    /// Serves `stream`, whose first bytes `early` were read already.
    async fn serve_connection(
        self: Arc<Self>,
        stream: TcpStream,
        info: ConnInfo,
        acceptor: Option<TlsAcceptor>,
        early: Vec<u8>,
        activity: &Arc<conns::Activity>,
    ) {
        let _ = stream.set_nodelay(true);
        let builder = self.http_builder();
        let info = Arc::new(info);
        let proxy = self.clone();
        let conn_info = info.clone();
        let in_conn = activity.clone();
        let svc = service_fn(move |req| {
            let proxy = proxy.clone();
            let info = conn_info.clone();
            // In flight until its response body ends: the connection is not idle.
            let in_flight = conns::InFlight::new(in_conn.clone());
            let req = req.map(|b: hyper::body::Incoming| b.map_err(BoxError::from).boxed());
            async move {
                let resp = proxy.handle(req, &info, Instant::now()).await.0;
                Ok::<_, Infallible>(resp.map(|b| body::Guarded::new(b, in_flight).boxed()))
            }
        });
        let mut early = bytes::Bytes::from(early);
        let io = match acceptor {
            None => ClientIo::Plain(stream),
            Some(acceptor) => {
                let taken = std::mem::take(&mut early);
                let handshake = tokio::time::timeout(
                    self.options.tls_handshake_timeout,
                    acceptor.accept_with(stream, |conn| feed(conn, &taken)),
                )
                .await;
                match handshake {
                    Ok(Ok(tls)) => ClientIo::Tls(Box::new(tls)),
                    Ok(Err(e)) => {
                        tracing::debug!(client = %info.client, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(client = %info.client, "TLS handshake timed out");
                        return;
                    }
                }
            }
        };
        // HTTP/1.1, plain or TLS, starts on the fast path; HTTP/2 by ALPN goes to hyper,
        // which then takes nothing but HTTP/2: a client that chose h2 and sends anything
        // but its connection preface is refused (RFC 9113 §3.4, h2spec 3.5).
        // (hyper-util's `http2_only` applies to `serve_connection`, not to the
        // variant with upgrades, which HTTP/2 does not need.)
        let h2 = io.is_h2();
        let io = if h2 || !self.options.fast_path || self.options.tracing.is_some() {
            Rewind::new(early, io)
        } else {
            match self.serve_fast(io, &info, early, activity).await {
                fast::Handoff::Closed => return,
                fast::Handoff::Hyper(io) => io,
            }
        };
        // A connection with no request in flight for the header timeout (an HTTP/2
        // one that sent only its preface, or stopped inside a header block), or shed
        // for want of descriptors, is closed: GOAWAY first for HTTP/2.
        let idle = self.options.header_read_timeout;
        macro_rules! until_idle {
            ($conn:expr) => {{
                let conn = $conn;
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => r,
                    () = activity.idle_for(idle) => {
                        tracing::debug!(client = %info.client, "idle connection closed");
                        conn.as_mut().graceful_shutdown();
                        // Shed for want of descriptors: only long enough to send GOAWAY.
                        let grace = if activity.is_shed() { SHED_GRACE } else { SHUTDOWN_GRACE };
                        tokio::time::timeout(grace, conn).await.unwrap_or(Ok(()))
                    }
                }
            }};
        }
        let result = if h2 {
            let builder = builder.http2_only();
            until_idle!(builder.serve_connection(TokioIo::new(io), svc))
        } else {
            until_idle!(builder.serve_connection_with_upgrades(TokioIo::new(io), svc))
        };
        if let Err(e) = result {
            tracing::debug!(client = %info.client, error = %e, "client connection ended with an error");
        }
    }

    fn http_builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.options.header_read_timeout)
            // Small responses go out in one plain write, head and body copied together.
            .writev(false)
            .max_buf_size(self.options.max_header_bytes.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.options.max_concurrent_streams)
            .max_header_list_size(self.options.max_header_bytes.min(u32::MAX as usize) as u32);
        builder
    }
}

/// How long a closing connection may take to say goodbye (HTTP/2's GOAWAY).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
