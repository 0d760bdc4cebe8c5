//! What `shoal route ls` shows: the routes in force, in match order, with their
//! backends' health.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde::Serialize;
use tokio::time::Instant;

use super::service::ServiceState;
use super::{lock, Proxy};

impl Proxy {
    /// The routes in force, in match order, with their backends' health.
    pub fn routes_view(&self) -> Vec<RouteStatus> {
        let table = self.table.load();
        let now = Instant::now();
        table
            .routes
            .iter()
            .map(|route| {
                let r = &route.router;
                let backends = route
                    .service
                    .as_deref()
                    .map(|s| backend_status(s, now))
                    .unwrap_or_default();
                RouteStatus {
                    router: route.name.clone(),
                    rule: r.rule_text.clone(),
                    priority: r.priority,
                    entrypoints: r.entrypoints.clone(),
                    tls: r.tls,
                    service: r.service.clone(),
                    backends,
                }
            })
            .collect()
    }
}

fn backend_status(s: &ServiceState, now: Instant) -> Vec<BackendStatus> {
    let snap = s.snapshot.load();
    let outlier = lock(&s.outlier);
    snap.hosts
        .iter()
        .zip(&snap.weights)
        .zip(&snap.config.servers)
        .map(|((h, weight), server)| {
            let until = outlier.ejected_until(&h.addr, now);
            BackendStatus {
                address: h.addr,
                weight: *weight,
                health: match server.reported {
                    crate::config::ReportedHealth::Starting => Health::Starting,
                    r if !r.takes_traffic() || !h.check.is_passing() => Health::Unhealthy,
                    _ if until.is_some() => Health::Ejected,
                    _ => Health::Healthy,
                },
                ejected_for_ms: until.map(|u| u.duration_since(now).as_millis() as u64),
                times_ejected: outlier.times_ejected(&h.addr),
                outstanding: h.outstanding.load(Ordering::Relaxed),
                requests: h.requests.load(Ordering::Relaxed),
                failures: h.failures.load(Ordering::Relaxed),
            }
        })
        .collect()
}

/// One router as `shoal route ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteStatus {
    /// Router name.
    pub router: String,
    /// The rule as written.
    pub rule: String,
    /// Its priority.
    pub priority: i64,
    /// Entrypoints (empty: all).
    pub entrypoints: Vec<String>,
    /// Whether only TLS requests match.
    pub tls: bool,
    /// Service name.
    pub service: String,
    /// The service's backends.
    pub backends: Vec<BackendStatus>,
}

/// Whether a backend takes traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Takes traffic.
    Healthy,
    /// Ejected by outlier detection.
    Ejected,
    /// Fails its health check, or reported unhealthy (Docker's `HEALTHCHECK`).
    Unhealthy,
    /// Reported still starting: no traffic until it is healthy.
    Starting,
}

/// One backend as `shoal route ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendStatus {
    /// Address.
    pub address: SocketAddr,
    /// Weight.
    pub weight: u32,
    /// Healthy or ejected.
    pub health: Health,
    /// Remaining ejection time.
    pub ejected_for_ms: Option<u64>,
    /// Ejection multiplier (times ejected, after decay).
    pub times_ejected: u32,
    /// Requests in flight.
    pub outstanding: usize,
    /// Attempts sent.
    pub requests: u64,
    /// Attempts failed (5xx or connection errors).
    pub failures: u64,
}
