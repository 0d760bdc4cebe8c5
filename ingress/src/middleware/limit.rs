//! `rateLimit` (a token bucket per source, Go's `x/time/rate` semantics) and
//! `inFlightReq` (a count of requests in flight per source).
//!
//! ```text
//!  rateLimit: tokens ≥ 1 ─▶ pass;  short of a token by ≤ maxDelay ─▶ wait, pass;
//!             else 429, Retry-After (seconds, rounded up), X-Retry-In (Go duration)
//!  inFlightReq: count < amount ─▶ pass, count held until the response body ends;
//!               else 429 "max connections reached: N"
//! ```
//! As in Træfik, `maxDelay` is `1 / (2 × rate)` (500 ms below one request a second), a
//! bucket unused for its time to live starts full again, and at most 65 536 sources are
//! tracked (a new source beyond that is refused while none has expired).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use tokio::time::Instant;

use super::ip::source_key;
use super::{status_answer, text_answer, Answer};
use crate::config::middlewares::{InFlightReq, RateLimit, SourceCriterion};
use crate::proxy::body::ProxyBody;
use crate::proxy::lock;

/// Sources tracked at most by one rate limiter.
const MAX_SOURCES: usize = 65_536;

/// A token bucket: `tokens` as of `last`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

/// A bucket's answer to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Go now or after this wait (a token was taken).
    Pass(Duration),
    /// Refused; a token would be there after this long.
    Refuse(Duration),
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            last: now,
        }
    }

    /// Take a token at `now` for a bucket filling at `rate` per second up to `burst`,
    /// waiting at most `max_delay` for it.
    pub fn reserve(
        &mut self,
        rate: f64,
        burst: f64,
        max_delay: Duration,
        now: Instant,
    ) -> Admission {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now.max(self.last);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Admission::Pass(Duration::ZERO);
        }
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
        if wait <= max_delay {
            self.tokens -= 1.0;
            Admission::Pass(wait)
        } else {
            Admission::Refuse(wait)
        }
    }
}

struct Bucket {
    bucket: TokenBucket,
    expires: Instant,
}

/// `rateLimit`, built.
pub struct RateLimiter {
    /// Requests per second; infinite when `average` is 0.
    rate: f64,
    burst: f64,
    max_delay: Duration,
    ttl: Duration,
    source: SourceCriterion,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Build from the configuration.
    pub fn new(c: &RateLimit) -> RateLimiter {
        let rate = if c.average == 0 {
            f64::INFINITY
        } else {
            c.average as f64 / c.period.as_secs_f64()
        };
        let max_delay = if rate < 1.0 {
            Duration::from_millis(500)
        } else if rate.is_finite() {
            Duration::from_secs(1) / (2 * (rate.floor() as u32).max(1))
        } else {
            Duration::ZERO
        };
        let ttl = Duration::from_secs(
            1 + if rate >= 1.0 {
                1
            } else {
                (1.0 / rate).floor() as u64
            },
        );
        RateLimiter {
            rate,
            burst: c.burst as f64,
            max_delay,
            ttl,
            source: c.source.clone(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The decision for a request from `source` at `now`.
    pub fn decide(&self, source: &str, now: Instant) -> Admission {
        if self.rate.is_infinite() {
            return Admission::Pass(Duration::ZERO);
        }
        let mut buckets = lock(&self.buckets);
        if !buckets.contains_key(source) && buckets.len() >= MAX_SOURCES {
            buckets.retain(|_, b| b.expires > now);
            if buckets.len() >= MAX_SOURCES {
                return Admission::Refuse(self.ttl);
            }
        }
        let entry = buckets.entry(source.to_string()).or_insert_with(|| Bucket {
            bucket: TokenBucket::full(self.burst, now),
            expires: now,
        });
        if entry.expires <= now {
            entry.bucket = TokenBucket::full(self.burst, now);
        }
        entry.expires = now + self.ttl;
        entry
            .bucket
            .reserve(self.rate, self.burst, self.max_delay, now)
    }

    /// Admit `req` (after a short wait, maybe) or answer 429.
    pub async fn admit<B>(
        &self,
        req: &Request<B>,
        peer: IpAddr,
        now: Instant,
    ) -> Option<Response<ProxyBody>> {
        if self.rate.is_infinite() {
            return None;
        }
        let source = source_key(&self.source, req, peer);
        match self.decide(&source, now) {
            Admission::Pass(wait) if wait.is_zero() => None,
            Admission::Pass(wait) => {
                tokio::time::sleep_until(now + wait).await;
                None
            }
            Admission::Refuse(wait) => Some(too_many(wait)),
        }
    }
}

/// Træfik's 429: `Retry-After` in whole seconds, rounded up, and `X-Retry-In`.
fn too_many(wait: Duration) -> Response<ProxyBody> {
    let mut resp = status_answer(StatusCode::TOO_MANY_REQUESTS);
    let h = resp.headers_mut();
    h.insert(
        "retry-after",
        HeaderValue::from(wait.as_secs_f64().ceil() as u64),
    );
    if let Ok(v) = HeaderValue::from_str(&go_duration_string(wait)) {
        h.insert("x-retry-in", v);
    }
    resp
}

/// A duration as Go's `time.Duration.String` writes it (`1.5s`, `250ms`, `1m30s`).
pub fn go_duration_string(d: Duration) -> String {
    let n = d.as_nanos();
    let frac = |value: u128, digits: u32| -> String {
        let scale = 10u128.pow(digits);
        let (int, rest) = (value / scale, value % scale);
        if rest == 0 {
            return int.to_string();
        }
        let f = format!("{rest:0width$}", width = digits as usize);
        format!("{int}.{}", f.trim_end_matches('0'))
    };
    match n {
        0 => "0s".to_string(),
        1..=999 => format!("{n}ns"),
        1_000..=999_999 => format!("{}µs", frac(n, 3)),
        1_000_000..=999_999_999 => format!("{}ms", frac(n, 6)),
        _ => {
            let secs = n / 1_000_000_000;
            let (h, m) = (secs / 3600, secs / 60 % 60);
            let s = frac(n % 60_000_000_000, 9);
            match (h, m) {
                (0, 0) => format!("{s}s"),
                (0, m) => format!("{m}m{s}s"),
                (h, m) => format!("{h}h{m}m{s}s"),
            }
        }
    }
}

/// `inFlightReq`, built.
pub struct InFlightLimiter {
    amount: u64,
    source: SourceCriterion,
    counts: Arc<Mutex<HashMap<String, u64>>>,
}

/// One request counted in flight; the count drops with it.
pub struct InFlightGuard {
    counts: Arc<Mutex<HashMap<String, u64>>>,
    source: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(n) = counts.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

impl InFlightLimiter {
    /// Build from the configuration.
    pub fn new(c: &InFlightReq) -> InFlightLimiter {
        InFlightLimiter {
            amount: c.amount,
            source: c.source.clone(),
            counts: Arc::default(),
        }
    }

    /// Count a request from `source` in, or `None` when `amount` are in flight.
    pub fn try_acquire(&self, source: String) -> Option<InFlightGuard> {
        let mut counts = lock(&self.counts);
        let n = counts.entry(source.clone()).or_insert(0);
        if *n >= self.amount {
            return None;
        }
        *n += 1;
        Some(InFlightGuard {
            counts: self.counts.clone(),
            source,
        })
    }

    /// Count `req` in, or answer 429.
    pub fn acquire<B>(&self, req: &Request<B>, peer: IpAddr) -> Result<InFlightGuard, Answer> {
        self.try_acquire(source_key(&self.source, req, peer))
            .ok_or_else(|| {
                Box::new(text_answer(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("max connections reached: {}", self.amount),
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::middlewares::IpStrategy;

    fn limiter(average: u64, period: Duration, burst: u64) -> RateLimiter {
        RateLimiter::new(&RateLimit {
            average,
            period,
            burst,
            source: SourceCriterion::Ip(IpStrategy::RemoteAddr { ipv6_subnet: None }),
        })
    }

    #[test]
    fn burst_then_429_then_refill() {
        let rl = limiter(10, Duration::from_secs(1), 5);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(rl.decide("a", t0), Admission::Pass(Duration::ZERO));
        }
        // Short of a token by 100 ms, more than maxDelay (50 ms).
        assert_eq!(
            rl.decide("a", t0),
            Admission::Refuse(Duration::from_millis(100))
        );
        assert_eq!(
            rl.decide("b", t0),
            Admission::Pass(Duration::ZERO),
            "sources are apart"
        );
        // 60 ms later, 40 ms short: within maxDelay, the request waits.
        let wait = match rl.decide("a", t0 + Duration::from_millis(60)) {
            Admission::Pass(w) => w,
            other => panic!("{other:?}"),
        };
        assert!((wait.as_secs_f64() - 0.04).abs() < 1e-6, "{wait:?}");
        // After the time to live the bucket is full again.
        let later = t0 + Duration::from_secs(3);
        for _ in 0..5 {
            assert_eq!(rl.decide("a", later), Admission::Pass(Duration::ZERO));
        }
    }

    #[test]
    fn average_is_held_over_time() {
        // 100 requests a second with a burst of 1: 400 a second offered for 2 s.
        let rl = limiter(100, Duration::from_secs(1), 1);
        let t0 = Instant::now();
        let passed = (0..800)
            .filter(|i| {
                matches!(
                    rl.decide("a", t0 + Duration::from_micros(2500 * i)),
                    Admission::Pass(_)
                )
            })
            .count();
        assert!((195..=205).contains(&passed), "{passed}");
    }

    #[test]
    fn slow_rates_wait_up_to_half_a_second() {
        let rl = limiter(2, Duration::from_secs(10), 1);
        assert_eq!(rl.max_delay, Duration::from_millis(500));
        assert_eq!(rl.ttl, Duration::from_secs(6));
        let t0 = Instant::now();
        assert_eq!(rl.decide("a", t0), Admission::Pass(Duration::ZERO));
        assert_eq!(
            rl.decide("a", t0),
            Admission::Refuse(Duration::from_secs(5))
        );
        assert_eq!(
            limiter(200, Duration::from_secs(1), 1).max_delay,
            Duration::from_micros(2500)
        );
        assert!(
            matches!(
                limiter(0, Duration::from_secs(1), 1).decide("a", t0),
                Admission::Pass(_)
            ),
            "average 0: no limit"
        );
    }

    #[test]
    fn the_429_says_when_to_come_back() {
        let resp = too_many(Duration::from_millis(1500));
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "2");
        assert_eq!(resp.headers()["x-retry-in"], "1.5s");
    }

    #[test]
    fn go_durations_print_like_go() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(666_666_667), "666.666667ms"),
            (Duration::from_micros(2), "2µs"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(90_500), "1m30.5s"),
            (Duration::from_secs(3600), "1h0m0s"),
        ] {
            assert_eq!(go_duration_string(d), text);
        }
    }

    #[test]
    fn in_flight_counts_come_back_when_dropped() {
        let l = InFlightLimiter::new(&InFlightReq {
            amount: 2,
            source: SourceCriterion::Host,
        });
        let a = l.try_acquire("h".into()).unwrap();
        let _b = l.try_acquire("h".into()).unwrap();
        assert!(l.try_acquire("h".into()).is_none());
        assert!(l.try_acquire("other".into()).is_some());
        drop(a);
        assert!(l.try_acquire("h".into()).is_some());
        let req = Request::builder().header("host", "h").body(()).unwrap();
        let held = l.acquire(&req, "127.0.0.1".parse().unwrap());
        let refused = l.acquire(&req, "127.0.0.1".parse().unwrap()).err().unwrap();
        assert!(held.is_ok());
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
