//! `circuitBreaker`: Træfik's (vulcand/oxy's) breaker, a state machine fed by the
//! responses it lets through and tripped by an [`Expr`].
//!
//! ```text
//!  standby ──(every checkPeriod: expression holds)──▶ tripped ──(fallbackDuration)──▶
//!  recovering: a share of requests rising from 0 to ½ over recoveryDuration passes;
//!              the expression holding again trips it; the duration over ─▶ standby
//! ```
//! While tripped (and for the requests held back while recovering) the breaker answers
//! `responseCode` itself. Metrics: status counts and 502/504 ("network errors") over a
//! 10 s window in 1 s buckets, latency over 60 s in 10 s buckets with about 1 %
//! precision; reset when the breaker trips.
//!
//! This is a different breaker from [`crate::breaker`], which holds Envoy's concurrency
//! thresholds per service; this one is per router and judges outcomes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use http::{Response, StatusCode};
use tokio::time::Instant;

use super::expr::{Expr, Window};
use super::status_answer;
use crate::config::middlewares::CircuitBreaker;
use crate::proxy::body::ProxyBody;
use crate::proxy::lock;

/// Seconds in the counters' window.
const COUNTER_BUCKETS: usize = 10;
/// The latency window: six buckets of ten seconds.
const LATENCY_BUCKETS: usize = 6;
const LATENCY_BUCKET: Duration = Duration::from_secs(10);

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Passing everything, judging every check period.
    Standby,
    /// Answering for the service until the instant.
    Tripped(Instant),
    /// Letting a rising share through until the instant.
    Recovering {
        /// When recovery began.
        since: Instant,
        /// When it ends.
        until: Instant,
    },
}

/// Requests and outcomes over a rolling window.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per second (by its number since the window's origin): total, network errors,
    /// status counts.
    seconds: Vec<(u64, u64, u64, BTreeMap<u16, u64>)>,
    /// Per ten seconds: latency buckets (microseconds to two significant digits).
    latency: Vec<(u64, BTreeMap<u64, u64>)>,
    origin: Option<Instant>,
    now_secs: u64,
}

impl Metrics {
    fn secs(&mut self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        self.now_secs = now.saturating_duration_since(origin).as_secs();
        self.now_secs
    }

    /// Count a response.
    pub fn record(&mut self, status: StatusCode, latency: Duration, now: Instant) {
        let s = self.secs(now);
        self.seconds
            .retain(|(t, ..)| t + COUNTER_BUCKETS as u64 > s);
        if self.seconds.last().is_none_or(|b| b.0 != s) {
            self.seconds.push((s, 0, 0, BTreeMap::new()));
        }
        if let Some(b) = self.seconds.last_mut() {
            b.1 += 1;
            if matches!(
                status,
                StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT
            ) {
                b.2 += 1;
            }
            *b.3.entry(status.as_u16()).or_default() += 1;
        }
        let slot = s / LATENCY_BUCKET.as_secs();
        self.latency
            .retain(|(t, _)| t + LATENCY_BUCKETS as u64 > slot);
        if self.latency.last().is_none_or(|b| b.0 != slot) {
            self.latency.push((slot, BTreeMap::new()));
        }
        if let Some(b) = self.latency.last_mut() {
            *b.1.entry(two_digits(latency.as_micros() as u64))
                .or_default() += 1;
        }
    }

    /// Forget everything.
    pub fn reset(&mut self) {
        self.seconds.clear();
        self.latency.clear();
    }

    /// Drop what fell out of the windows by `now`.
    fn age(&mut self, now: Instant) {
        let s = self.secs(now);
        self.seconds
            .retain(|(t, ..)| t + COUNTER_BUCKETS as u64 > s);
        let slot = s / LATENCY_BUCKET.as_secs();
        self.latency
            .retain(|(t, _)| t + LATENCY_BUCKETS as u64 > slot);
    }
}

/// `v` cut to two significant digits and raised to the top of that bucket (HDR's
/// "highest equivalent value").
fn two_digits(v: u64) -> u64 {
    if v < 100 {
        return v;
    }
    let digits = v.ilog10() - 1;
    let scale = 10u64.pow(digits);
    (v / scale) * scale + scale - 1
}

impl Window for Metrics {
    fn network_error_ratio(&self) -> f64 {
        let total: u64 = self.seconds.iter().map(|b| b.1).sum();
        let errors: u64 = self.seconds.iter().map(|b| b.2).sum();
        if total == 0 {
            0.0
        } else {
            errors as f64 / total as f64
        }
    }

    fn response_code_ratio(&self, from: u16, to: u16, by_from: u16, by_to: u16) -> f64 {
        let (mut a, mut b) = (0u64, 0u64);
        for (code, n) in self.seconds.iter().flat_map(|s| s.3.iter()) {
            if (from..to).contains(code) {
                a += n;
            }
            if (by_from..by_to).contains(code) {
                b += n;
            }
        }
        if b == 0 {
            0.0
        } else {
            a as f64 / b as f64
        }
    }

    fn latency_at_quantile_ms(&self, quantile: f64) -> f64 {
        let mut merged: BTreeMap<u64, u64> = BTreeMap::new();
        for (v, n) in self.latency.iter().flat_map(|b| b.1.iter()) {
            *merged.entry(*v).or_default() += n;
        }
        let total: u64 = merged.values().sum();
        if total == 0 {
            return 0.0;
        }
        let wanted = ((quantile / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (v, n) in merged {
            seen += n;
            if seen >= wanted {
                return (v / 1000) as f64;
            }
        }
        0.0
    }

    fn total(&self) -> u64 {
        self.seconds.iter().map(|b| b.1).sum()
    }
}

struct Inner {
    state: State,
    metrics: Metrics,
    next_check: Instant,
    /// Recovery's admissions: let through, held back.
    allowed: u64,
    denied: u64,
}

/// `circuitBreaker`, built.
pub struct Breaker {
    config: CircuitBreaker,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A breaker in standby at `now`.
    pub fn new(config: &CircuitBreaker, now: Instant) -> Breaker {
        Breaker {
            config: config.clone(),
            inner: Mutex::new(Inner {
                state: State::Standby,
                metrics: Metrics::default(),
                next_check: now,
                allowed: 0,
                denied: 0,
            }),
        }
    }

    /// The state at `now`.
    pub fn state(&self) -> State {
        lock(&self.inner).state
    }

    /// Whether a request at `now` may pass.
    pub fn admits(&self, now: Instant) -> bool {
        let mut s = lock(&self.inner);
        match s.state {
            State::Standby => true,
            State::Tripped(until) if now < until => false,
            State::Tripped(_) => {
                s.state = State::Recovering {
                    since: now,
                    until: now + self.config.recovery_duration,
                };
                s.allowed = 0;
                s.denied = 0;
                self.recovering_admits(&mut s, now, now)
            }
            State::Recovering { since, until } => {
                if now > until {
                    s.state = State::Standby;
                    return true;
                }
                self.recovering_admits(&mut s, since, now)
            }
        }
    }

    /// oxy's ratio controller: pass while the share passed (counting this one) stays
    /// under a target rising from 0 to ½ over the recovery.
    fn recovering_admits(&self, s: &mut Inner, since: Instant, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(since).as_secs_f64();
        let target = 0.5 * elapsed / self.config.recovery_duration.as_secs_f64();
        let share = (s.allowed + 1) as f64 / (s.allowed + 1 + s.denied) as f64;
        if share < target {
            s.allowed += 1;
            true
        } else {
            s.denied += 1;
            false
        }
    }

    /// The breaker's own answer when it does not admit a request at `now`.
    pub fn gate(&self, now: Instant) -> Option<Response<ProxyBody>> {
        (!self.admits(now)).then(|| status_answer(self.config.response_code))
    }

    /// Count a response to a request admitted at `start`, and trip when it is time to
    /// judge and the expression holds.
    pub fn record(&self, status: StatusCode, start: Instant, now: Instant) {
        let mut s = lock(&self.inner);
        s.metrics
            .record(status, now.saturating_duration_since(start), now);
        if now < s.next_check {
            return;
        }
        s.next_check = now + self.config.check_period;
        if matches!(s.state, State::Tripped(_)) {
            return;
        }
        s.metrics.age(now);
        if self.config.expression.holds(&s.metrics) {
            s.state = State::Tripped(now + self.config.fallback_duration);
            s.metrics.reset();
            tracing::warn!(expression = %self.config.expression, "circuit breaker tripped");
        }
    }

    /// The expression it trips on.
    pub fn expression(&self) -> &Expr {
        &self.config.expression
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(expr: &str) -> Breaker {
        Breaker::new(
            &CircuitBreaker {
                expression: Expr::parse(expr).unwrap(),
                check_period: Duration::from_millis(100),
                fallback_duration: Duration::from_secs(10),
                recovery_duration: Duration::from_secs(10),
                response_code: StatusCode::SERVICE_UNAVAILABLE,
            },
            Instant::now(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn trips_on_errors_answers_then_recovers() {
        let b = breaker("NetworkErrorRatio() > 0.5");
        let t0 = Instant::now();
        // The first response is judged at once: all well.
        assert!(b.gate(t0).is_none());
        b.record(StatusCode::OK, t0, t0);
        for ms in [10, 20, 30] {
            b.record(StatusCode::BAD_GATEWAY, t0, t0 + Duration::from_millis(ms));
        }
        assert_eq!(b.state(), State::Standby, "judged every 100 ms only");
        b.record(
            StatusCode::GATEWAY_TIMEOUT,
            t0,
            t0 + Duration::from_millis(150),
        );
        assert!(matches!(b.state(), State::Tripped(_)), "{:?}", b.state());
        let answer = b.gate(t0 + Duration::from_secs(1)).expect("tripped");
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(b.gate(t0 + Duration::from_millis(10_149)).is_some());
        // After the fallback duration, recovery lets a share rising to ½ through.
        let t2 = t0 + Duration::from_millis(10_150);
        let passed = (0..100)
            .filter(|i| b.admits(t2 + Duration::from_millis(100 * i)))
            .count();
        assert!(
            (40..=50).contains(&passed),
            "{passed} of 100 over the recovery"
        );
        assert!(matches!(b.state(), State::Recovering { .. }));
        assert!(b.admits(t2 + Duration::from_secs(11)));
        assert_eq!(b.state(), State::Standby);
    }

    #[tokio::test(start_paused = true)]
    async fn judges_only_every_check_period_and_errors_in_recovery_trip_again() {
        let b = breaker("ResponseCodeRatio(500, 600, 0, 600) > 0.5 && RequestThreshold() >= 3");
        let t0 = Instant::now();
        b.record(StatusCode::OK, t0, t0);
        b.record(
            StatusCode::INTERNAL_SERVER_ERROR,
            t0,
            t0 + Duration::from_millis(10),
        );
        b.record(
            StatusCode::INTERNAL_SERVER_ERROR,
            t0,
            t0 + Duration::from_millis(20),
        );
        assert_eq!(b.state(), State::Standby, "judged again only after 100 ms");
        b.record(
            StatusCode::INTERNAL_SERVER_ERROR,
            t0,
            t0 + Duration::from_millis(100),
        );
        assert!(matches!(b.state(), State::Tripped(_)));
        let t1 = (1..100u64)
            .map(|i| t0 + Duration::from_secs(15) + Duration::from_millis(100 * i))
            .find(|t| b.admits(*t))
            .expect("recovery lets some through");
        for i in 0..3 {
            b.record(
                StatusCode::SERVICE_UNAVAILABLE,
                t1,
                t1 + Duration::from_millis(200 * i),
            );
        }
        assert!(matches!(b.state(), State::Tripped(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn latency_quantiles_and_the_window() {
        let mut m = Metrics::default();
        let t0 = Instant::now();
        for ms in 1..=100u64 {
            m.record(StatusCode::OK, Duration::from_millis(ms), t0);
        }
        assert_eq!(m.latency_at_quantile_ms(50.0), 50.0);
        assert_eq!(m.latency_at_quantile_ms(99.0), 99.0);
        assert_eq!(m.total(), 100);
        m.age(t0 + Duration::from_secs(10));
        assert_eq!(m.total(), 0, "counters keep ten seconds");
        assert_eq!(
            m.latency_at_quantile_ms(50.0),
            50.0,
            "latency keeps a minute"
        );
        m.age(t0 + Duration::from_secs(60));
        assert_eq!(m.latency_at_quantile_ms(50.0), 0.0);
    }
}
