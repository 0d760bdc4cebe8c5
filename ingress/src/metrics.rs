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

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

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
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.retries.clone()))?;
        registry.register(Box::new(m.overflows.clone()))?;
        registry.register(Box::new(m.ejections.clone()))?;
        registry.register(Box::new(m.open_connections.clone()))?;
        Ok(m)
    }
}
