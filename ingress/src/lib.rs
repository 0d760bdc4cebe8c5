//! shoal's L7 ingress proxy: Træfik-style routing rules, Envoy-style retries, circuit
//! breaking and outlier ejection, TLS termination with SNI, HTTP/1.1, HTTP/2 and
//! WebSockets.
//!
//! ```text
//!  config::file / config::labels ──▶ Routes ──▶ Proxy::update (atomic swap)
//!                                                   │
//!  client ──▶ Proxy::serve(entrypoint) ──▶ rule ──▶ breaker ──▶ outlier + lb ──▶ backend
//!                                                   ▲ retry (policy, budget, backoff)
//! ```
//! The decision logic (`rule`, `lb`, `retry`, `breaker`, `outlier`, `config`) is pure and
//! takes time as a parameter; `proxy` and `tls` do the IO.

pub mod access_log;
pub mod breaker;
pub mod config;
pub mod lb;
pub mod metrics;
pub mod outlier;
pub mod proxy;
pub mod retry;
pub mod rule;
pub mod tls;

pub use config::{
    from_labels, ConfigError, LabelError, ProxyConfig, Router, Routes, Server, Service,
};
pub use proxy::{
    BackendStatus, DialFuture, Dialer, Health, Proxy, ProxyOptions, RouteStatus, SetupError,
    StartError, Started,
};
