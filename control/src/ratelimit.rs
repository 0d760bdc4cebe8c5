//! Token buckets by client address, for endpoints anyone may call (joining). Pure: the
//! caller passes the time.
//!
//! ```text
//!  admit(ip, now) ─▶ refill the ip's bucket and the shared one ─▶ a token in both? ok
//!                                                                └▶ else: retry after
//! ```
//! The map of buckets is bounded: when full, buckets that have refilled (clients gone
//! quiet) are dropped first, and a client that cannot get a bucket is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Rate and burst of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Most tokens held (the burst).
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
    }

    /// How long until a token is there.
    fn wait(&self, rate: Rate) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / rate.per_second).max(0.0))
    }
}

/// Per-address buckets plus one shared by all.
#[derive(Debug)]
pub struct RateLimiter {
    per_client: Rate,
    overall: Rate,
    max_clients: usize,
    clients: HashMap<IpAddr, Bucket>,
    all: Option<Bucket>,
}

impl RateLimiter {
    /// A limiter allowing `per_client` to each address and `overall` to all together,
    /// tracking at most `max_clients` addresses.
    pub fn new(per_client: Rate, overall: Rate, max_clients: usize) -> RateLimiter {
        RateLimiter {
            per_client,
            overall,
            max_clients: max_clients.max(1),
            clients: HashMap::new(),
            all: None,
        }
    }

    /// Takes a token for `client` at `now`, or says how long to wait.
    pub fn admit(&mut self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut all = self.all.unwrap_or_else(|| Bucket::full(self.overall, now));
        all.refill(self.overall, now);
        self.all = Some(all);
        if !self.clients.contains_key(&client) && self.clients.len() >= self.max_clients {
            let rate = self.per_client;
            self.clients.retain(|_, b| {
                b.refill(rate, now);
                b.tokens < rate.burst
            });
            if self.clients.len() >= self.max_clients {
                return Err(Duration::from_secs(1));
            }
        }
        let mine = self
            .clients
            .entry(client)
            .or_insert_with(|| Bucket::full(self.per_client, now));
        mine.refill(self.per_client, now);
        if mine.tokens < 1.0 {
            return Err(mine.wait(self.per_client));
        }
        if all.tokens < 1.0 {
            return Err(all.wait(self.overall));
        }
        mine.tokens -= 1.0;
        all.tokens -= 1.0;
        self.all = Some(all);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PER: Rate = Rate {
        per_second: 1.0,
        burst: 3.0,
    };
    const ALL: Rate = Rate {
        per_second: 10.0,
        burst: 5.0,
    };

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 18, 0, last])
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_for_its_rate() {
        let mut l = RateLimiter::new(PER, ALL, 16);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.admit(ip(1), t), Ok(()));
        }
        let wait = l.admit(ip(1), t).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(l.admit(ip(1), t + Duration::from_secs(1)), Ok(()));
        // Another client is not held back by the first.
        assert_eq!(l.admit(ip(2), t), Ok(()));
    }

    #[test]
    fn many_clients_share_the_overall_rate() {
        let mut l = RateLimiter::new(PER, ALL, 64);
        let t = Instant::now();
        let admitted = (1..=20).filter(|i| l.admit(ip(*i), t).is_ok()).count();
        assert_eq!(admitted, 5);
        assert!(l.admit(ip(30), t + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn the_client_map_stays_bounded_and_quiet_clients_make_room() {
        let mut l = RateLimiter::new(
            PER,
            Rate {
                per_second: 1e6,
                burst: 1e6,
            },
            2,
        );
        let t = Instant::now();
        assert!(l.admit(ip(1), t).is_ok());
        assert!(l.admit(ip(2), t).is_ok());
        assert!(l.admit(ip(3), t).is_err(), "no room for a third");
        assert_eq!(l.clients.len(), 2);
        // Once the first two have refilled, they are forgotten.
        assert!(l.admit(ip(3), t + Duration::from_secs(5)).is_ok());
        assert!(l.clients.len() <= 2);
    }
}
