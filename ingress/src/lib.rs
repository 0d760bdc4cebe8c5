//! shoal's L7 ingress proxy: Træfik-style routing rules, Envoy-style retries, circuit
//! breaking and outlier ejection, TLS termination with SNI, HTTP/1.1, HTTP/2 and
//! WebSockets.
//!
//! ```text
//!  config::file / config::labels ──▶ Routes ──▶ Proxy::update (atomic swap)
//!                                                   │
//!  client ──▶ Proxy::serve(entrypoint) ──▶ rule ──▶ middlewares ──▶ breaker ──▶ outlier + balancer ──▶ backend
//!                                                   ▲ retry (policy, budget, backoff)
//! ```
//! - [`rule`]: Træfik's rule language (`Host`, `PathPrefix`, `&&`, ...), parsed and matched.
//! - [`config`]: routers and services from a TOML file or Træfik-style labels.
//! - [`balancer`]: which server gets a request (weighted round robin, power of two
//!   choices, sticky cookies).
//! - [`retry`], [`breaker`], [`outlier`]: Envoy's retry policy and budget, circuit
//!   breaker thresholds, outlier ejection.
//! - [`middleware`]: Træfik's HTTP middlewares (redirects, path rewrites, headers and
//!   CORS, basic auth, IP allow lists, rate and in-flight limits, compression, circuit
//!   breakers, buffering), run around a router's forwarding.
//! - [`metrics`]: Prometheus counters and histograms per router and service.
//! - [`access_log`]: Træfik's access log (common or JSON) from a writer thread.
//! - [`proxy`]: the IO: connections, the HTTP/1 fast path, hyper, the upstream client.
//! - [`proxy_protocol`]: the PROXY protocol (v1, v2): parse and encode, and reading it
//!   on entrypoints that accept it.
//! - [`tls`]: certificates by SNI.
//! - [`health`]: active health checks of services' servers (state machine and checker).
//! - [`tcp`]: TCP routers: `HostSNI` from the ClientHello (TLS passthrough or
//!   termination), plain TCP, on TCP entrypoints.
//! - [`trace`]: `x-request-id`, W3C and B3 trace context, spans per request and attempt,
//!   OTLP/HTTP export.
//!
//! The decision logic (`rule`, `balancer`, `retry`, `breaker`, `outlier`, `config`,
//! the middlewares' decisions) is pure and takes time as a parameter; `proxy`, `tls` and `access_log` do the IO.

pub mod access_log;
pub mod balancer;
pub mod breaker;
pub mod config;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod outlier;
pub mod proxy;
pub mod proxy_protocol;
pub mod retry;
pub mod rule;
pub mod tcp;
pub mod tls;
pub mod trace;

pub use config::{
    from_labels, ConfigError, LabelError, ProxyConfig, Router, Routes, Server, Service,
};
pub use proxy::{
    raise_fd_limit, BackendStatus, DialFuture, Dialer, Health, Proxy, ProxyOptions, RouteStatus,
    SetupError, StartError, Started,
};
