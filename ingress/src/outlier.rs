//! Outlier detection per host (Envoy's consecutive-5xx and consecutive-gateway-failure
//! detectors), as a pure state machine over `tokio::time::Instant`.
//!
//! ```text
//!  record(host, outcome, now) ──▶ consecutive counts ──▶ threshold reached
//!      and under max_ejection_percent (or nobody ejected yet) ──▶ ejected until
//!      now + base_ejection_time × times_ejected (capped at max_ejection_time)
//!  eligible(hosts, now) ──▶ hosts not ejected, or all of them when fewer than
//!      panic_threshold % are healthy
//! ```
//! Locally-originated failures (connect failure, reset, timeout) count as gateway
//! failures, as in Envoy without `split_external_local_origin_errors`. Each `interval`
//! a healthy host's ejection multiplier decays by one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::retry::AttemptOutcome;

/// Outlier detection settings for one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutlierConfig {
    /// Consecutive 5xx (including local failures) that eject a host; 0 disables.
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 or local failures that eject a host; 0 disables.
    pub consecutive_gateway_failure: u32,
    /// How often a healthy host's ejection multiplier decays.
    pub interval: Duration,
    /// Ejection time for the first ejection; multiplied by the number of ejections.
    pub base_ejection_time: Duration,
    /// Longest ejection.
    pub max_ejection_time: Duration,
    /// At most this share of hosts is ejected at once (one host always may be).
    pub max_ejection_percent: u32,
    /// Below this share of healthy hosts, balance over all hosts ("panic mode").
    pub panic_threshold_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            panic_threshold_percent: 50,
        }
    }
}

/// What is known about one host.
#[derive(Debug, Clone)]
struct HostHealth {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    times_ejected: u32,
    ejected_until: Option<Instant>,
    last_decay: Instant,
}

impl HostHealth {
    fn new(now: Instant) -> Self {
        HostHealth {
            consecutive_5xx: 0,
            consecutive_gateway: 0,
            times_ejected: 0,
            ejected_until: None,
            last_decay: now,
        }
    }
    /// The end of the ejection in force at `now`, if any.
    fn ejection(&self, now: Instant) -> Option<Instant> {
        self.ejected_until.filter(|until| now < *until)
    }
    fn is_ejected(&self, now: Instant) -> bool {
        self.ejection(now).is_some()
    }
    fn reset_streaks(&mut self) {
        self.consecutive_5xx = 0;
        self.consecutive_gateway = 0;
    }
}

/// The detector for one service's hosts.
#[derive(Debug, Clone)]
pub struct OutlierDetector {
    config: OutlierConfig,
    hosts: BTreeMap<SocketAddr, HostHealth>,
}

/// Which hosts a request may go to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligibility {
    /// One flag per host, in the order asked.
    pub eligible: Vec<bool>,
    /// True when too few hosts were healthy and all were made eligible.
    pub panic: bool,
}

impl OutlierDetector {
    /// A detector with no hosts.
    pub fn new(config: OutlierConfig) -> Self {
        OutlierDetector {
            config,
            hosts: BTreeMap::new(),
        }
    }

    /// Replace the settings, keeping host state.
    pub fn set_config(&mut self, config: OutlierConfig) {
        self.config = config;
    }

    /// Track exactly `addrs`: state of hosts that remain is kept, new hosts start healthy.
    pub fn set_hosts(&mut self, addrs: &[SocketAddr], now: Instant) {
        self.hosts.retain(|a, _| addrs.contains(a));
        for a in addrs {
            self.hosts.entry(*a).or_insert_with(|| HostHealth::new(now));
        }
    }

    /// Hosts ejected at `now`.
    pub fn ejected_count(&self, now: Instant) -> usize {
        self.hosts.values().filter(|h| h.is_ejected(now)).count()
    }

    /// Until when `addr` is ejected, if it is at `now`.
    pub fn ejected_until(&self, addr: &SocketAddr, now: Instant) -> Option<Instant> {
        self.hosts.get(addr).and_then(|h| h.ejection(now))
    }

    /// Times `addr` has been ejected (after decay).
    pub fn times_ejected(&self, addr: &SocketAddr) -> u32 {
        self.hosts.get(addr).map_or(0, |h| h.times_ejected)
    }

    /// Record an attempt's outcome; returns the end of the ejection if this ejected `addr`.
    pub fn record(
        &mut self,
        addr: &SocketAddr,
        outcome: &AttemptOutcome,
        now: Instant,
    ) -> Option<Instant> {
        self.decay(now);
        let total = self.hosts.len();
        let ejected = self.ejected_count(now);
        let config = self.config;
        let host = self.hosts.get_mut(addr)?;
        if host.is_ejected(now) {
            return None;
        }
        if !outcome.is_5xx() {
            host.reset_streaks();
            return None;
        }
        host.consecutive_5xx += 1;
        if outcome.is_gateway_failure() {
            host.consecutive_gateway += 1;
        } else {
            host.consecutive_gateway = 0;
        }
        let tripped = (config.consecutive_5xx > 0
            && host.consecutive_5xx >= config.consecutive_5xx)
            || (config.consecutive_gateway_failure > 0
                && host.consecutive_gateway >= config.consecutive_gateway_failure);
        let room =
            ejected == 0 || (ejected + 1) * 100 <= config.max_ejection_percent as usize * total;
        if !tripped || !room {
            return None;
        }
        host.reset_streaks();
        host.times_ejected += 1;
        let time = config
            .base_ejection_time
            .saturating_mul(host.times_ejected)
            .min(config.max_ejection_time.max(config.base_ejection_time));
        let until = now + time;
        host.ejected_until = Some(until);
        Some(until)
    }

    /// Decay ejection multipliers of hosts that stayed healthy for whole intervals.
    fn decay(&mut self, now: Instant) {
        let interval = self.config.interval;
        if interval.is_zero() {
            return;
        }
        for host in self.hosts.values_mut() {
            if let Some(until) = host.ejected_until {
                if now < until {
                    continue;
                }
                host.ejected_until = None;
                host.last_decay = until;
            }
            while host.times_ejected > 0 && now.duration_since(host.last_decay) >= interval {
                host.times_ejected -= 1;
                host.last_decay += interval;
            }
            if host.times_ejected == 0 {
                host.last_decay = now;
            }
        }
    }

    /// Which of `addrs` may take a request at `now`, applying the panic threshold.
    pub fn eligibility(&mut self, addrs: &[SocketAddr], now: Instant) -> Eligibility {
        self.decay(now);
        let eligible: Vec<bool> = addrs
            .iter()
            .map(|a| !self.hosts.get(a).is_some_and(|h| h.is_ejected(now)))
            .collect();
        let healthy = eligible.iter().filter(|e| **e).count();
        let panic = !addrs.is_empty()
            && healthy * 100 < self.config.panic_threshold_percent as usize * addrs.len();
        if panic {
            return Eligibility {
                eligible: vec![true; addrs.len()],
                panic,
            };
        }
        Eligibility { eligible, panic }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 0, 0, 1 + i as u8], 80)))
            .collect()
    }
    const S503: AttemptOutcome = AttemptOutcome::Status(StatusCode::SERVICE_UNAVAILABLE);
    const S500: AttemptOutcome = AttemptOutcome::Status(StatusCode::INTERNAL_SERVER_ERROR);
    const OK: AttemptOutcome = AttemptOutcome::Status(StatusCode::OK);

    /// A detector tracking `hosts`.
    fn detector(config: OutlierConfig, hosts: &[SocketAddr]) -> OutlierDetector {
        let mut d = OutlierDetector::new(config);
        d.set_hosts(hosts, Instant::now());
        d
    }

    /// Record `outcome` for `host` `times` times.
    fn record_n(
        d: &mut OutlierDetector,
        host: &SocketAddr,
        outcome: &AttemptOutcome,
        times: usize,
    ) {
        for _ in 0..times {
            d.record(host, outcome, Instant::now());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn five_gateway_failures_eject_for_base_time_then_host_returns() {
        let hosts = addrs(10);
        let mut d = detector(OutlierConfig::default(), &hosts);
        for _ in 0..4 {
            assert_eq!(d.record(&hosts[0], &S503, Instant::now()), None);
        }
        let until = d.record(&hosts[0], &AttemptOutcome::ConnectFailure, Instant::now());
        assert_eq!(until, Some(Instant::now() + Duration::from_secs(30)));
        assert!(!d.eligibility(&hosts, Instant::now()).eligible[0]);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(!d.eligibility(&hosts, Instant::now()).eligible[0]);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(d.eligibility(&hosts, Instant::now()).eligible[0]);
        // Ejected again soon after: twice the base time.
        record_n(&mut d, &hosts[0], &S503, 5);
        assert_eq!(
            d.ejected_until(&hosts[0], Instant::now()),
            Some(Instant::now() + Duration::from_secs(60))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_streak_and_500s_only_count_as_5xx() {
        let hosts = addrs(10);
        let mut d = detector(
            OutlierConfig {
                consecutive_5xx: 0,
                ..OutlierConfig::default()
            },
            &hosts,
        );
        record_n(&mut d, &hosts[1], &S503, 4);
        record_n(&mut d, &hosts[1], &OK, 1);
        for _ in 0..4 {
            assert_eq!(d.record(&hosts[1], &S503, Instant::now()), None);
        }
        for _ in 0..10 {
            assert_eq!(d.record(&hosts[1], &S500, Instant::now()), None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn max_ejection_percent_allows_one_host_and_panic_mode_uses_all() {
        let hosts = addrs(3);
        let mut d = detector(OutlierConfig::default(), &hosts);
        for _ in 0..5 {
            d.record(&hosts[0], &S503, Instant::now());
            d.record(&hosts[1], &S503, Instant::now());
        }
        assert_eq!(
            d.ejected_count(Instant::now()),
            1,
            "10% of 3 hosts still allows one"
        );
        let e = d.eligibility(&hosts, Instant::now());
        assert_eq!(e.eligible, vec![false, true, true]);
        assert!(!e.panic);

        let two = addrs(2);
        let mut d = detector(
            OutlierConfig {
                max_ejection_percent: 100,
                ..OutlierConfig::default()
            },
            &two,
        );
        for _ in 0..5 {
            d.record(&two[0], &S503, Instant::now());
            d.record(&two[1], &S503, Instant::now());
        }
        let e = d.eligibility(&two, Instant::now());
        assert!(e.panic);
        assert_eq!(e.eligible, vec![true, true]);
    }

    #[tokio::test(start_paused = true)]
    async fn multiplier_decays_while_healthy_and_state_survives_host_updates() {
        let hosts = addrs(2);
        let mut d = detector(OutlierConfig::default(), &hosts);
        record_n(&mut d, &hosts[0], &S503, 5);
        let mut more = hosts.clone();
        more.push(SocketAddr::from(([10, 0, 0, 99], 80)));
        d.set_hosts(&more, Instant::now());
        assert!(d.ejected_until(&hosts[0], Instant::now()).is_some());
        assert_eq!(d.times_ejected(&hosts[0]), 1);
        tokio::time::advance(Duration::from_secs(30 + 10)).await;
        d.eligibility(&more, Instant::now());
        assert_eq!(d.times_ejected(&hosts[0]), 0);
        d.set_hosts(&more[1..], Instant::now());
        assert_eq!(d.ejected_count(Instant::now()), 0);
    }
}
