//! Prometheus metrics of the proxy, all prefixed `shoal_ingress_`.
//!
//! | metric | labels |
//! | --- | --- |
//! | `requests_total` (counter) | router, service, code |
//! | `request_duration_seconds` (histogram) | router, service |
//! | `retries_total` (counter) | service |
//! | `overflows_total` (counter) | service, kind (`connections`, `pending`, `requests`, `retries`) |
//! | `ejections_total` (counter) | service |
//! | `open_connections` (gauge) | entrypoint |
//! | `connections_refused_total` (counter) | entrypoint (the client held its cap) |

use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The proxy's metric families.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Requests answered, by router, service and status code.
    pub requests: IntCounterVec,
    /// Time to the response headers, by router and service.
    pub duration: HistogramVec,
    /// Retries started, by service.
    pub retries: IntCounterVec,
    /// Requests refused by a circuit breaker, by service and threshold.
    pub overflows: IntCounterVec,
    /// Hosts ejected by outlier detection, by service.
    pub ejections: IntCounterVec,
    /// Client connections open, by entrypoint.
    pub open_connections: IntGaugeVec,
    /// Connections closed at accept: their client held `max_connections_per_client`.
    pub connections_refused: IntCounterVec,
}

impl Metrics {
    /// Create the families and register them in `registry`.
    pub fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace("shoal_ingress");
        let m = Metrics {
            requests: IntCounterVec::new(
                opts("requests_total", "HTTP requests answered"),
                &["router", "service", "code"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new("request_duration_seconds", "Time until response headers")
                    .namespace("shoal_ingress"),
                &["router", "service"],
            )?,
            retries: IntCounterVec::new(opts("retries_total", "Retries started"), &["service"])?,
            overflows: IntCounterVec::new(
                opts("overflows_total", "Requests refused by a circuit breaker"),
                &["service", "kind"],
            )?,
            ejections: IntCounterVec::new(
                opts("ejections_total", "Hosts ejected by outlier detection"),
                &["service"],
            )?,
            open_connections: IntGaugeVec::new(
                opts("open_connections", "Client connections open"),
                &["entrypoint"],
            )?,
            connections_refused: IntCounterVec::new(
                opts(
                    "connections_refused_total",
                    "Client connections closed at accept: the client held its cap",
                ),
                &["entrypoint"],
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.retries.clone()))?;
        registry.register(Box::new(m.overflows.clone()))?;
        registry.register(Box::new(m.ejections.clone()))?;
        registry.register(Box::new(m.open_connections.clone()))?;
        registry.register(Box::new(m.connections_refused.clone()))?;
        Ok(m)
    }
}

/// Status codes whose `requests_total` counter a [`RouteMetrics`] keeps at hand.
const CACHED_CODES: usize = 8;

/// The request metrics of one router and its service, with the label lookups done
/// once (per route update) instead of on every request.
pub struct RouteMetrics {
    router: String,
    service: String,
    requests: IntCounterVec,
    /// The counters of the first status codes seen, by code.
    by_code: [OnceLock<(StatusCode, IntCounter)>; CACHED_CODES],
    duration: Histogram,
}

impl RouteMetrics {
    /// The metrics labelled `router` and `service`.
    pub fn new(metrics: &Metrics, router: &str, service: &str) -> Self {
        RouteMetrics {
            router: router.to_string(),
            service: service.to_string(),
            requests: metrics.requests.clone(),
            by_code: Default::default(),
            duration: metrics.duration.with_label_values(&[router, service]),
        }
    }

    /// Count a request answered with `status` after `elapsed`.
    pub fn observe(&self, status: StatusCode, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
        for cell in &self.by_code {
            let (code, counter) = cell.get_or_init(|| (status, self.counter(status)));
            if *code == status {
                counter.inc();
                return;
            }
        }
        self.counter(status).inc();
    }

    fn counter(&self, status: StatusCode) -> IntCounter {
        self.requests
            .with_label_values(&[&self.router, &self.service, status.as_str()])
    }
}
