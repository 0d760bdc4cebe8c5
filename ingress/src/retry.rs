//! Retry policy with Envoy semantics, as pure decisions.
//!
//! ```text
//!  attempt ─▶ AttemptOutcome ─▶ RetryPolicy::retry_on ─┐
//!                                                      ├─▶ retry? ─▶ backoff(n) ─▶ next host
//!  method idempotent / opted in ── budget allows ──────┘
//! ```
//! * `retry_on`: `5xx`, `gateway-error` (502/503/504), `reset`, `connect-failure`, and
//!   retriable status codes (written as the code, e.g. `409`).
//! * `num_retries` retries after the first attempt; each attempt may have a
//!   `per_try_timeout`; the whole request has `timeout`.
//! * Backoff is full-jitter exponential: `random(0, min(max, base * 2^n))`, base 25 ms,
//!   max 250 ms; or, for Træfik's `retry` middleware, [`BackoffShape::Doubling`].
//! * Non-idempotent methods (POST, PATCH, CONNECT, …) are retried only when named in
//!   `methods`.
//! * A retry budget, when configured, caps concurrent retries at a share of active
//!   requests (20 %, at least 3); without one (the default, as Envoy's) the breaker's
//!   `max_retries` (3) caps them.

use std::collections::BTreeSet;
use std::time::Duration;

use http::{Method, StatusCode};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How one upstream attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The backend answered with this status (headers received).
    Status(StatusCode),
    /// The TCP connection could not be made.
    ConnectFailure,
    /// The connection was reset or closed before response headers.
    Reset,
    /// No response headers within the per-try timeout.
    Timeout,
}

impl AttemptOutcome {
    /// Whether this counts as a 5xx for outlier detection (local errors count as 503).
    pub fn is_5xx(&self) -> bool {
        match self {
            AttemptOutcome::Status(s) => s.is_server_error(),
            _ => true,
        }
    }
    /// Whether this is a gateway failure: 502/503/504 or a local connection error.
    pub fn is_gateway_failure(&self) -> bool {
        match self {
            AttemptOutcome::Status(s) => matches!(s.as_u16(), 502..=504),
            _ => true,
        }
    }
    /// Short label for logs and metrics.
    pub fn label(&self) -> String {
        match self {
            AttemptOutcome::Status(s) => s.as_u16().to_string(),
            AttemptOutcome::ConnectFailure => "connect-failure".into(),
            AttemptOutcome::Reset => "reset".into(),
            AttemptOutcome::Timeout => "timeout".into(),
        }
    }
}

/// The conditions under which a request is retried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryOn {
    /// Any 5xx, a reset or a timeout.
    pub five_xx: bool,
    /// 502, 503, 504, or a timeout.
    pub gateway_error: bool,
    /// Connection reset or closed before response headers, or a timeout.
    pub reset: bool,
    /// The connection could not be established.
    pub connect_failure: bool,
    /// These exact status codes.
    pub status_codes: BTreeSet<u16>,
}

impl RetryOn {
    /// Parse tokens like `5xx`, `gateway-error`, `reset`, `connect-failure`, `409`.
    pub fn parse<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut on = RetryOn::default();
        for token in tokens {
            match token.trim() {
                "5xx" => on.five_xx = true,
                "gateway-error" => on.gateway_error = true,
                "reset" => on.reset = true,
                "connect-failure" => on.connect_failure = true,
                "" => {}
                other => match other.parse::<u16>() {
                    Ok(code @ 100..=599) => {
                        on.status_codes.insert(code);
                    }
                    _ => {
                        return Err(format!(
                            "unknown retry condition `{other}`, expected 5xx, gateway-error, \
                             reset, connect-failure or a status code"
                        ))
                    }
                },
            }
        }
        Ok(on)
    }

    /// Whether `outcome` satisfies one of the conditions.
    pub fn matches(&self, outcome: &AttemptOutcome) -> bool {
        match outcome {
            AttemptOutcome::Status(s) => {
                (self.five_xx && s.is_server_error())
                    || (self.gateway_error && matches!(s.as_u16(), 502..=504))
                    || self.status_codes.contains(&s.as_u16())
            }
            AttemptOutcome::ConnectFailure => self.connect_failure || self.five_xx,
            AttemptOutcome::Reset => self.reset || self.five_xx,
            AttemptOutcome::Timeout => self.five_xx || self.gateway_error || self.reset,
        }
    }
}

/// A route's or service's retry policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// When to retry.
    pub retry_on: RetryOn,
    /// Retries after the first attempt.
    pub num_retries: u32,
    /// Limit for each attempt to produce response headers.
    pub per_try_timeout: Option<Duration>,
    /// Limit for the whole request (all attempts) to produce response headers.
    pub timeout: Option<Duration>,
    /// Non-idempotent methods (upper case) that may be retried anyway.
    pub methods: BTreeSet<String>,
    /// Backoff base interval.
    pub backoff_base: Duration,
    /// Backoff cap.
    pub backoff_max: Duration,
    /// How the waits grow.
    pub backoff_shape: BackoffShape,
    /// No retry starts once this long has passed since the first attempt (Træfik's
    /// `retry.timeout`).
    pub retry_window: Option<Duration>,
    /// Request bodies up to this size are buffered for retries (instead of the proxy's
    /// own limit).
    pub max_body_bytes: Option<usize>,
}

/// How the waits before retries grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackoffShape {
    /// Envoy's: `random(0, min(backoff_max, backoff_base × 2ⁿ))`.
    #[default]
    FullJitter,
    /// Træfik's `retry` middleware (cenkalti/backoff): `backoff_base × m^n` with
    /// `m = 2^(1/(attempts − 1))`, so the last wait is about twice the first, each
    /// randomized by ±50 %; no wait when `backoff_base` is zero.
    Doubling {
        /// Total attempts, first included.
        attempts: u32,
    },
}

impl Default for RetryPolicy {
    /// connect-failure, reset and gateway-error, once, idempotent methods only, 15 s
    /// overall timeout.
    fn default() -> Self {
        RetryPolicy {
            retry_on: RetryOn {
                gateway_error: true,
                reset: true,
                connect_failure: true,
                ..RetryOn::default()
            },
            num_retries: 1,
            per_try_timeout: None,
            timeout: Some(Duration::from_secs(15)),
            methods: BTreeSet::new(),
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            backoff_shape: BackoffShape::FullJitter,
            retry_window: None,
            max_body_bytes: None,
        }
    }
}

/// Methods that may be replayed without changing the outcome (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

impl RetryPolicy {
    /// Whether a request with `method` may be retried at all under this policy.
    pub fn allows_method(&self, method: &Method) -> bool {
        self.num_retries > 0 && (is_idempotent(method) || self.methods.contains(method.as_str()))
    }

    /// Whether attempt number `retries_done` (0 = first) ended in a retriable way and
    /// retries remain.
    pub fn should_retry(&self, outcome: &AttemptOutcome, retries_done: u32) -> bool {
        retries_done < self.num_retries && self.retry_on.matches(outcome)
    }

    /// The upper bound of the sleep before retry number `n` (0-based).
    pub fn backoff_ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.backoff_base
            .checked_mul(factor)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }

    /// The backoff before retry number `n` (0-based), by [`BackoffShape`].
    pub fn backoff(&self, n: u32, rng: &mut impl Rng) -> Duration {
        match self.backoff_shape {
            BackoffShape::FullJitter => {
                let ceiling = self.backoff_ceiling(n).as_micros() as u64;
                Duration::from_micros(rng.gen_range(0..=ceiling))
            }
            BackoffShape::Doubling { attempts } => {
                if self.backoff_base.is_zero() || attempts < 2 {
                    return Duration::ZERO;
                }
                let growth = 2f64.powf(f64::from(n) / f64::from(attempts - 1));
                let mid = self.backoff_base.as_secs_f64() * growth;
                Duration::from_secs_f64(mid * rng.gen_range(0.5..=1.5))
            }
        }
    }

    /// Whether a retry may still start `elapsed` after the first attempt began.
    pub fn within_window(&self, elapsed: Duration) -> bool {
        self.retry_window.is_none_or(|w| elapsed < w)
    }
}

/// Envoy's retry budget: concurrent retries may be `percent` of active requests, and
/// at least `min_concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryBudget {
    /// Share of active requests that may be retries, in percent.
    pub percent: f64,
    /// Concurrent retries always allowed.
    pub min_concurrency: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            percent: 20.0,
            min_concurrency: 3,
        }
    }
}

impl RetryBudget {
    /// How many retries may be in flight with `active_requests` requests active.
    pub fn limit(&self, active_requests: usize) -> usize {
        let share = (active_requests as f64 * self.percent / 100.0).floor() as usize;
        share.max(self.min_concurrency as usize)
    }

    /// Whether one more retry may start given the current active requests and retries.
    pub fn allows(&self, active_requests: usize, active_retries: usize) -> bool {
        active_retries < self.limit(active_requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn default_policy_retries_gateway_errors_once_for_idempotent_methods() {
        let p = RetryPolicy::default();
        assert!(p.allows_method(&Method::GET));
        assert!(!p.allows_method(&Method::POST));
        assert!(!p.allows_method(&Method::PATCH));
        let s = |c| AttemptOutcome::Status(StatusCode::from_u16(c).unwrap());
        assert!(p.should_retry(&s(503), 0));
        assert!(!p.should_retry(&s(503), 1));
        assert!(!p.should_retry(&s(500), 0));
        assert!(!p.should_retry(&s(404), 0));
        assert!(p.should_retry(&AttemptOutcome::ConnectFailure, 0));
        assert!(p.should_retry(&AttemptOutcome::Reset, 0));
    }

    #[test]
    fn opt_in_methods_and_status_codes() {
        let mut p = RetryPolicy {
            retry_on: RetryOn::parse(["5xx", "409"]).unwrap(),
            ..RetryPolicy::default()
        };
        p.methods.insert("POST".into());
        assert!(p.allows_method(&Method::POST));
        assert!(!p.allows_method(&Method::PATCH));
        assert!(p.should_retry(&AttemptOutcome::Status(StatusCode::CONFLICT), 0));
        assert!(p.should_retry(
            &AttemptOutcome::Status(StatusCode::INTERNAL_SERVER_ERROR),
            0
        ));
        assert!(!p.retry_on.connect_failure);
        assert!(
            p.should_retry(&AttemptOutcome::ConnectFailure, 0),
            "5xx covers connect failures"
        );
        p.num_retries = 0;
        assert!(!p.allows_method(&Method::GET));
        assert!(RetryOn::parse(["5xy"]).unwrap_err().contains("5xy"));
        assert!(RetryOn::parse(["700"]).is_err());
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_ceiling(0), Duration::from_millis(25));
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(50));
        assert_eq!(p.backoff_ceiling(3), Duration::from_millis(200));
        assert_eq!(p.backoff_ceiling(4), Duration::from_millis(250));
        assert_eq!(p.backoff_ceiling(40), Duration::from_millis(250));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let samples: Vec<_> = (0..200).map(|_| p.backoff(2, &mut rng)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(100)));
        assert!(samples.iter().any(|d| *d < Duration::from_millis(30)));
        assert!(samples.iter().any(|d| *d > Duration::from_millis(70)));
    }

    #[test]
    fn træfik_backoff_doubles_over_the_attempts_with_half_jitter() {
        let p = RetryPolicy {
            backoff_base: Duration::from_millis(100),
            backoff_shape: BackoffShape::Doubling { attempts: 5 },
            ..RetryPolicy::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (n, mid) in [(0u32, 100.0f64), (2, 141.42), (4, 200.0)] {
            let samples: Vec<f64> = (0..200)
                .map(|_| p.backoff(n, &mut rng).as_secs_f64() * 1000.0)
                .collect();
            assert!(samples
                .iter()
                .all(|s| *s >= mid * 0.5 - 0.01 && *s <= mid * 1.5 + 0.01));
            assert!(samples.iter().any(|s| *s < mid * 0.8));
            assert!(samples.iter().any(|s| *s > mid * 1.2));
        }
        let immediate = RetryPolicy {
            backoff_base: Duration::ZERO,
            ..p.clone()
        };
        assert_eq!(immediate.backoff(3, &mut rng), Duration::ZERO);
        let windowed = RetryPolicy {
            retry_window: Some(Duration::from_secs(1)),
            ..p
        };
        assert!(windowed.within_window(Duration::from_millis(999)));
        assert!(!windowed.within_window(Duration::from_secs(1)));
    }

    #[test]
    fn budget_allows_twenty_percent_with_a_floor_of_three() {
        let b = RetryBudget::default();
        assert!(b.allows(1, 2));
        assert!(!b.allows(1, 3));
        assert!(b.allows(100, 19));
        assert!(!b.allows(100, 20));
    }
}
