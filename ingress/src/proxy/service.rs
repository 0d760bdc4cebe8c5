//! Live state of one service: its hosts with load counts and connection pools, the
//! outlier detector, the balancer and breaker counts. Survives route updates:
//! [`ServiceState::apply`] swaps the configuration and keeps the state of hosts that
//! remain.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::time::Instant;

use super::lock;
use super::upstream::{ConnectionSlots, HostPool, Upstream};
use super::Dial;
use crate::balancer::{self, Candidates, SmoothWrr};
use crate::breaker::BreakerCounts;
use crate::config::Service;
use crate::health::{CheckStatus, Checker};
use crate::outlier::OutlierDetector;

/// One backend and its live counts.
#[derive(Debug)]
pub struct HostState {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests in flight to it.
    pub outstanding: AtomicUsize,
    /// Attempts sent to it.
    pub requests: AtomicU64,
    /// Attempts that failed (5xx or a connection error).
    pub failures: AtomicU64,
    /// Kept-alive connections to it.
    pub pool: Arc<HostPool>,
    /// Whether it passes the service's active health check (always, without one).
    pub check: Arc<CheckStatus>,
}

impl HostState {
    fn new(addr: SocketAddr) -> Self {
        HostState {
            addr,
            outstanding: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            pool: Arc::default(),
            check: Arc::default(),
        }
    }
}

/// What requests read about a service: swapped as a whole on updates.
pub struct ServiceSnapshot {
    /// The configuration.
    pub config: Service,
    /// Hosts, index-aligned with `config.servers`.
    pub hosts: Vec<Arc<HostState>>,
    /// Host addresses.
    pub addrs: Vec<SocketAddr>,
    /// Host weights.
    pub weights: Vec<u32>,
    /// Sticky-cookie value of each host.
    pub sticky_values: Vec<String>,
    /// Connection slots (`max_connections`).
    pub slots: ConnectionSlots,
}

/// The live state of one service.
pub struct ServiceState {
    /// The service name.
    pub name: String,
    /// Current configuration and hosts.
    pub snapshot: ArcSwap<ServiceSnapshot>,
    /// Outlier detection.
    pub outlier: Mutex<OutlierDetector>,
    wrr: Mutex<SmoothWrr>,
    /// Breaker counts.
    pub counts: Arc<BreakerCounts>,
    dial: Dial,
    /// Checks the hosts while the service has a health check; stops when dropped.
    checker: Mutex<Option<Checker>>,
}

impl ServiceState {
    /// State for `config`, with fresh hosts.
    pub fn new(name: &str, config: Service, dial: Dial) -> Arc<ServiceState> {
        let counts = Arc::new(BreakerCounts::default());
        let outlier = OutlierDetector::new(config.outlier);
        let snapshot = build_snapshot(config, &[], None);
        let state = ServiceState {
            name: name.to_string(),
            snapshot: ArcSwap::from_pointee(snapshot),
            outlier: Mutex::new(outlier),
            wrr: Mutex::new(SmoothWrr::default()),
            counts,
            dial,
            checker: Mutex::new(None),
        };
        let addrs = state.snapshot.load().addrs.clone();
        lock(&state.outlier).set_hosts(&addrs, Instant::now());
        state.sync_checker(&state.snapshot.load());
        Arc::new(state)
    }

    /// Switch to `config`, keeping hosts (and their ejections and counts) that remain,
    /// and their pooled connections when the protocol and connection limit are unchanged.
    pub fn apply(&self, config: Service) {
        let old = self.snapshot.load();
        let keep_connections = old.config.protocol == config.protocol
            && old.slots.max() == config.breaker.max_connections;
        if !keep_connections {
            old.hosts.iter().for_each(|h| h.pool.clear());
        }
        let slots = keep_connections.then(|| old.slots.clone());
        let snapshot = build_snapshot(config, &old.hosts, slots);
        {
            let mut outlier = lock(&self.outlier);
            outlier.set_config(snapshot.config.outlier);
            outlier.set_hosts(&snapshot.addrs, Instant::now());
        }
        self.sync_checker(&snapshot);
        self.snapshot.store(Arc::new(snapshot));
    }

    /// Run a checker for `snap`'s health check over its hosts, keeping the one that
    /// runs if it already does that; without a check, every host passes.
    fn sync_checker(&self, snap: &ServiceSnapshot) {
        let mut checker = lock(&self.checker);
        let Some(check) = &snap.config.health_check else {
            *checker = None;
            snap.hosts.iter().for_each(|h| h.check.set(true));
            return;
        };
        let protocol = snap.config.protocol;
        if checker
            .as_ref()
            .is_some_and(|c| c.checks(check, protocol, &snap.addrs))
        {
            return;
        }
        let hosts = snap
            .hosts
            .iter()
            .map(|h| (h.addr, h.check.clone()))
            .collect();
        let dialer = self.dial.dialer.clone();
        *checker = Checker::start(&self.name, check.clone(), protocol, hosts, dialer);
        if checker.is_none() {
            tracing::error!(service = %self.name, "no tokio runtime: the servers are not health-checked");
        }
    }

    /// Pick a host for an attempt at `now`; `None` when the service has no hosts or
    /// none passes its health check and is reported fit (outlier ejection may still
    /// fall back to all hosts in panic mode; failed health checks never do, as in
    /// Træfik). (`tried` may be shorter than the host list: hosts past its end are
    /// untried.)
    pub fn pick(
        &self,
        snap: &ServiceSnapshot,
        tried: &[bool],
        sticky: Option<&str>,
        now: Instant,
    ) -> Option<usize> {
        let fit = |i: usize| {
            snap.config.servers[i].reported.takes_traffic() && snap.hosts[i].check.is_passing()
        };
        match snap.hosts.len() {
            0 => return None,
            // A lone host ejected is below any panic threshold, so it is still the pick.
            1 if snap.config.outlier.panic_threshold_percent > 0 => return fit(0).then_some(0),
            _ => {}
        }
        let mut eligibility = lock(&self.outlier).eligibility(&snap.addrs, now);
        for (i, eligible) in eligibility.eligible.iter_mut().enumerate() {
            *eligible &= fit(i);
        }
        let outstanding: Vec<usize> = snap
            .hosts
            .iter()
            .map(|h| h.outstanding.load(Ordering::Relaxed))
            .collect();
        let sticky = sticky.and_then(|v| snap.sticky_values.iter().position(|s| s == v));
        let candidates = Candidates {
            weights: &snap.weights,
            outstanding: &outstanding,
            eligible: &eligibility.eligible,
            tried,
            sticky,
        };
        let mut wrr = lock(&self.wrr);
        balancer::choose(
            snap.config.lb,
            &mut wrr,
            candidates,
            &mut rand::thread_rng(),
        )
    }
}

impl ServiceState {
    /// How the attempts of a request reach this service's hosts.
    pub fn upstream<'a>(&'a self, snap: &'a ServiceSnapshot) -> Upstream<'a> {
        Upstream {
            dial: &self.dial,
            slots: &snap.slots,
            counts: &self.counts,
            max_pending: snap.config.breaker.max_pending_requests,
            protocol: snap.config.protocol,
        }
    }
}

fn build_snapshot(
    config: Service,
    old_hosts: &[Arc<HostState>],
    slots: Option<ConnectionSlots>,
) -> ServiceSnapshot {
    let hosts: Vec<Arc<HostState>> = config
        .servers
        .iter()
        .map(|s| {
            old_hosts
                .iter()
                .find(|h| h.addr == s.addr)
                .cloned()
                .unwrap_or_else(|| Arc::new(HostState::new(s.addr)))
        })
        .collect();
    ServiceSnapshot {
        addrs: config.servers.iter().map(|s| s.addr).collect(),
        weights: config.servers.iter().map(|s| s.weight).collect(),
        sticky_values: config
            .servers
            .iter()
            .map(|s| balancer::sticky_value(&s.addr))
            .collect(),
        hosts,
        slots: slots.unwrap_or_else(|| ConnectionSlots::new(config.breaker.max_connections)),
        config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::AttemptOutcome;
    use http::StatusCode;
    use std::time::Duration;

    const S502: AttemptOutcome = AttemptOutcome::Status(StatusCode::BAD_GATEWAY);

    fn dial() -> Dial {
        Dial {
            timeout: Duration::from_secs(1),
            dialer: crate::proxy::Dialer::direct(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_ejected_host_gets_no_picks_and_returns_after_the_ejection_time() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let s = ServiceState::new("s", Service::over(&[a, b]), dial());
        for _ in 0..5 {
            lock(&s.outlier).record(&a, &S502, Instant::now());
        }
        let snap = s.snapshot.load_full();
        for _ in 0..10 {
            assert_eq!(
                s.pick(&snap, &[false, false], None, Instant::now()),
                Some(1)
            );
        }
        // An update that keeps `a` keeps its ejection and its counters.
        let host_a = snap.hosts[0].clone();
        s.apply(Service::over(&[b, a]));
        let snap = s.snapshot.load_full();
        assert!(Arc::ptr_eq(&snap.hosts[1], &host_a));
        for _ in 0..10 {
            assert_eq!(
                s.pick(&snap, &[false, false], None, Instant::now()),
                Some(0)
            );
        }
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!((0..10).all(|_| s.pick(&snap, &[false, false], None, Instant::now()) == Some(0)));
        tokio::time::advance(Duration::from_secs(1)).await;
        let picks: Vec<_> = (0..4)
            .map(|_| s.pick(&snap, &[false, false], None, Instant::now()))
            .collect();
        assert!(picks.contains(&Some(1)), "{picks:?}");
    }

    #[tokio::test]
    async fn hosts_failing_their_check_or_reported_unfit_get_no_picks() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let s = ServiceState::new("s", Service::over(&[a, b]), dial());
        let snap = s.snapshot.load_full();
        snap.hosts[0].check.set(false);
        let pick = || s.pick(&s.snapshot.load(), &[], None, Instant::now());
        assert!((0..10).all(|_| pick() == Some(1)));
        // Reported health comes with the routes; without a health check, an update
        // makes every host pass its (absent) check.
        let mut config = Service::over(&[a, b]);
        config.servers[1].reported = crate::config::ReportedHealth::Starting;
        s.apply(config);
        assert!(snap.hosts[0].check.is_passing());
        snap.hosts[0].check.set(false);
        assert_eq!(pick(), None, "no fit host: 503, never panic mode");
        snap.hosts[0].check.set(true);
        assert!((0..10).all(|_| pick() == Some(0)));
        // Alone and failing, a host is not picked either.
        let lone = ServiceState::new("lone", Service::over(&[a]), dial());
        lone.snapshot.load().hosts[0].check.set(false);
        assert_eq!(
            lone.pick(&lone.snapshot.load(), &[], None, Instant::now()),
            None
        );
    }

    #[tokio::test]
    async fn a_service_without_servers_picks_nothing() {
        let s = ServiceState::new("s", Service::over(&[]), dial());
        assert_eq!(s.pick(&s.snapshot.load(), &[], None, Instant::now()), None);
    }
}
