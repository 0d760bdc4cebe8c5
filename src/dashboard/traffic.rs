//! The ingress's traffic for the dashboard: requests, rate and latency percentiles per
//! router, retries, breaker refusals and ejections per service — read from the proxy's
//! Prometheus metrics, with rates and percentiles over the time since the previous
//! sample (the window), like `rate()` and `histogram_quantile()` over it.

use std::collections::BTreeMap;

use prometheus::proto::MetricFamily;
use serde::Serialize;

/// Requests of one router, cumulative.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouterCounts {
    /// Requests answered.
    pub requests: u64,
    /// Of which with a 5xx status.
    pub errors: u64,
    /// Latency histogram: (upper bound in seconds, cumulative count), ascending.
    pub buckets: Vec<(f64, u64)>,
}

/// Counters of one service, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServiceTraffic {
    /// Retries started.
    pub retries: u64,
    /// Requests refused by a circuit breaker.
    pub breaker_refusals: u64,
    /// Backends ejected by outlier detection.
    pub ejections: u64,
}

/// One reading of the metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// When (ms, any monotonic origin).
    pub at_ms: u64,
    /// By router.
    pub routers: BTreeMap<String, RouterCounts>,
    /// By service.
    pub services: BTreeMap<String, ServiceTraffic>,
}

/// What the dashboard shows of one router.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouterTraffic {
    /// Requests answered since the agent started.
    pub requests: u64,
    /// Of which with a 5xx status.
    pub errors_5xx: u64,
    /// Requests per second over the window.
    pub requests_per_s: f64,
    /// Latency percentiles (ms) over the window, or since the start when the window
    /// saw no request; `None` before any request.
    pub p50_ms: Option<f64>,
    /// 90th percentile (ms).
    pub p90_ms: Option<f64>,
    /// 99th percentile (ms).
    pub p99_ms: Option<f64>,
    /// The window's length (s); 0 for the first sample.
    pub window_s: f64,
}

fn label<'a>(m: &'a prometheus::proto::Metric, name: &str) -> &'a str {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map_or("", |l| l.value())
}

/// Reads the proxy's families into a sample taken at `at_ms`.
pub fn sample(families: &[MetricFamily], at_ms: u64) -> Sample {
    let mut s = Sample {
        at_ms,
        ..Sample::default()
    };
    for f in families {
        for m in f.get_metric() {
            let counter = || m.get_counter().get_value() as u64;
            match f.name() {
                "shoal_ingress_requests_total" => {
                    let router = label(m, "router");
                    if router.is_empty() {
                        continue; // requests no router matched
                    }
                    let r = s.routers.entry(router.to_string()).or_default();
                    r.requests += counter();
                    if label(m, "code").starts_with('5') {
                        r.errors += counter();
                    }
                }
                "shoal_ingress_request_duration_seconds" => {
                    let router = label(m, "router");
                    if router.is_empty() {
                        continue;
                    }
                    let h = m.get_histogram();
                    let r = s.routers.entry(router.to_string()).or_default();
                    r.buckets = h
                        .get_bucket()
                        .iter()
                        .map(|b| (b.upper_bound(), b.cumulative_count()))
                        .chain(std::iter::once((f64::INFINITY, h.get_sample_count())))
                        .collect();
                }
                "shoal_ingress_retries_total" => {
                    s.services
                        .entry(label(m, "service").to_string())
                        .or_default()
                        .retries += counter();
                }
                "shoal_ingress_overflows_total" => {
                    s.services
                        .entry(label(m, "service").to_string())
                        .or_default()
                        .breaker_refusals += counter();
                }
                "shoal_ingress_ejections_total" => {
                    s.services
                        .entry(label(m, "service").to_string())
                        .or_default()
                        .ejections += counter();
                }
                _ => {}
            }
        }
    }
    s
}

/// The `q` quantile (0..1) of a cumulative histogram, interpolating linearly inside
/// the bucket it falls in (as Prometheus's `histogram_quantile`); the highest finite
/// bound when it falls in the +Inf bucket; `None` when empty.
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(bound, count) in buckets {
        if count as f64 >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = (count - lower.1) as f64;
            let frac = if in_bucket == 0.0 {
                1.0
            } else {
                (rank - lower.1 as f64) / in_bucket
            };
            return Some(lower.0 + (bound - lower.0) * frac);
        }
        lower = (bound, count);
    }
    None
}

/// Bucket counts of `now` minus those of `before` (same bounds), saturating.
fn delta(now: &[(f64, u64)], before: &[(f64, u64)]) -> Vec<(f64, u64)> {
    now.iter()
        .map(|&(bound, c)| {
            let b = before
                .iter()
                .find(|(x, _)| *x == bound)
                .map_or(0, |(_, c)| *c);
            (bound, c.saturating_sub(b))
        })
        .collect()
}

/// Each router's traffic in `now`, with rate and percentiles over the window since
/// `before`.
pub fn routers(before: Option<&Sample>, now: &Sample) -> BTreeMap<String, RouterTraffic> {
    let window_s = before.map_or(0.0, |b| now.at_ms.saturating_sub(b.at_ms) as f64 / 1000.0);
    now.routers
        .iter()
        .map(|(name, r)| {
            let prev = before.and_then(|b| b.routers.get(name));
            let windowed = prev.map(|p| delta(&r.buckets, &p.buckets));
            let buckets = match &windowed {
                Some(w) if w.last().is_some_and(|(_, c)| *c > 0) => w.as_slice(),
                _ => r.buckets.as_slice(),
            };
            let ms = |q| quantile(buckets, q).map(|s| (s * 1000.0 * 1000.0).round() / 1000.0);
            let in_window = r
                .requests
                .saturating_sub(prev.map_or(r.requests, |p| p.requests));
            let traffic = RouterTraffic {
                requests: r.requests,
                errors_5xx: r.errors,
                requests_per_s: if window_s > 0.0 {
                    in_window as f64 / window_s
                } else {
                    0.0
                },
                p50_ms: ms(0.5),
                p90_ms: ms(0.9),
                p99_ms: ms(0.99),
                window_s,
            };
            (name.clone(), traffic)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_the_bucket_like_prometheus() {
        // 10 requests ≤ 5 ms, 10 more ≤ 10 ms, none slower.
        let b = [(0.005, 10), (0.01, 20), (0.025, 20), (f64::INFINITY, 20)];
        assert_eq!(quantile(&b, 0.5), Some(0.005));
        assert!((quantile(&b, 0.75).unwrap() - 0.0075).abs() < 1e-12);
        assert!((quantile(&b, 0.25).unwrap() - 0.0025).abs() < 1e-12);
        assert_eq!(quantile(&[(0.005, 0), (f64::INFINITY, 0)], 0.5), None);
        assert_eq!(quantile(&[], 0.5), None);
        // Everything slower than the last finite bound: the bound (Prometheus's answer).
        assert_eq!(
            quantile(&[(0.005, 0), (f64::INFINITY, 4)], 0.99),
            Some(0.005)
        );
    }

    #[test]
    fn the_window_gives_the_rate_and_recent_latency() {
        let router = |requests, buckets: Vec<(f64, u64)>| RouterCounts {
            requests,
            errors: 1,
            buckets,
        };
        let before = Sample {
            at_ms: 1_000,
            routers: BTreeMap::from([(
                "web".to_string(),
                router(100, vec![(0.005, 100), (0.1, 100), (f64::INFINITY, 100)]),
            )]),
            services: BTreeMap::new(),
        };
        // 50 more in 2 s, all slow (between 5 and 100 ms).
        let now = Sample {
            at_ms: 3_000,
            routers: BTreeMap::from([(
                "web".to_string(),
                router(150, vec![(0.005, 100), (0.1, 150), (f64::INFINITY, 150)]),
            )]),
            services: BTreeMap::new(),
        };
        let t = &routers(Some(&before), &now)["web"];
        assert_eq!(t.requests, 150);
        assert_eq!(t.errors_5xx, 1);
        assert!((t.requests_per_s - 25.0).abs() < 1e-9);
        assert_eq!(t.window_s, 2.0);
        assert!(
            t.p50_ms.unwrap() > 5.0,
            "the window's requests were slow: {t:?}"
        );
        // Without a window: since the start, the fast ones dominate.
        let t = &routers(None, &now)["web"];
        assert!(t.p50_ms.unwrap() <= 5.0, "{t:?}");
        assert_eq!(t.requests_per_s, 0.0);
        // A quiet window falls back to the whole history rather than showing nothing.
        let t = &routers(
            Some(&now),
            &Sample {
                at_ms: 4_000,
                ..now.clone()
            },
        )["web"];
        assert_eq!(t.requests_per_s, 0.0);
        assert!(t.p50_ms.is_some());
    }

    #[test]
    fn samples_read_the_proxys_families_and_skip_unrouted_requests() {
        let registry = prometheus::Registry::new();
        let m = shoal_ingress::metrics::Metrics::new(&registry).unwrap();
        m.requests.with_label_values(&["r1", "s1", "200"]).inc_by(3);
        m.requests.with_label_values(&["r1", "s1", "503"]).inc_by(2);
        m.requests.with_label_values(&["", "", "404"]).inc_by(7);
        m.duration.with_label_values(&["r1", "s1"]).observe(0.002);
        m.retries.with_label_values(&["s1"]).inc_by(4);
        m.overflows
            .with_label_values(&["s1", "connections"])
            .inc_by(1);
        m.overflows.with_label_values(&["s1", "pending"]).inc_by(2);
        m.ejections.with_label_values(&["s1"]).inc();
        let s = sample(&registry.gather(), 5);
        assert_eq!(s.routers.len(), 1, "{s:?}");
        let r = &s.routers["r1"];
        assert_eq!((r.requests, r.errors), (5, 2));
        assert_eq!(r.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(
            s.services["s1"],
            ServiceTraffic {
                retries: 4,
                breaker_refusals: 3,
                ejections: 1
            }
        );
    }
}
