//! Active health checks: each server of a service with a
//! [`HealthCheck`](crate::config::HealthCheck) is probed over HTTP; one that fails
//! leaves the balancer's rotation and returns when it passes again.
//!
//! ```text
//!  Checker (one task per service, owned by its ServiceState; dropped ⇒ aborted)
//!    └─ per server: probe ─▶ ProbeResult ─▶ ServerHealth::record (thresholds)
//!         ─▶ transition? ─▶ CheckStatus (atomic) ◀── read by ServiceState::pick
//!         └─ sleep until start + interval (healthy) or unhealthy_interval
//! ```
//! [`ServerHealth`] is the pure state machine (Envoy's thresholds); [`probe`] does one
//! check; [`Checker`] runs them. Servers start healthy, as in Træfik, and are first
//! checked when the checker starts.

mod checker;
pub mod probe;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use checker::Checker;

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The server answered with a status the check accepts.
    Pass,
    /// The server answered with a status the check does not accept: as in Envoy, the
    /// server is unhealthy at once, whatever the unhealthy threshold.
    WrongStatus(u16),
    /// No usable answer (refused, reset, timed out, not HTTP): counts towards the
    /// unhealthy threshold.
    NoAnswer(String),
}

/// A change of a server's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// It passed enough checks in a row and takes traffic again.
    BecameHealthy,
    /// It failed and leaves the rotation.
    BecameUnhealthy,
}

/// Envoy's thresholds: how many results in a row change a server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Passes in a row that make an unhealthy server healthy.
    pub healthy: u32,
    /// Unanswered checks in a row that make a healthy server unhealthy.
    pub unhealthy: u32,
}

/// The health-check state of one server: healthy or not, and the run of results
/// against that state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHealth {
    healthy: bool,
    /// Results in a row that argue for the other state.
    streak: u32,
}

impl ServerHealth {
    /// A server in state `healthy`, with no results yet.
    pub fn new(healthy: bool) -> ServerHealth {
        ServerHealth { healthy, streak: 0 }
    }

    /// Whether the server takes traffic as far as the checks are concerned.
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Take in one result; returns the change it caused, if any.
    pub fn record(&mut self, result: &ProbeResult, t: Thresholds) -> Option<Transition> {
        match (self.healthy, result) {
            (true, ProbeResult::Pass)
            | (false, ProbeResult::WrongStatus(_) | ProbeResult::NoAnswer(_)) => {
                self.streak = 0;
                None
            }
            (true, ProbeResult::WrongStatus(_)) => Some(self.flip()),
            (true, ProbeResult::NoAnswer(_)) => {
                self.streak += 1;
                (self.streak >= t.unhealthy.max(1)).then(|| self.flip())
            }
            (false, ProbeResult::Pass) => {
                self.streak += 1;
                (self.streak >= t.healthy.max(1)).then(|| self.flip())
            }
        }
    }

    fn flip(&mut self) -> Transition {
        self.healthy = !self.healthy;
        self.streak = 0;
        if self.healthy {
            Transition::BecameHealthy
        } else {
            Transition::BecameUnhealthy
        }
    }

    /// Time from the start of this check to the start of the next.
    pub fn next_check(&self, interval: Duration, unhealthy_interval: Duration) -> Duration {
        if self.healthy {
            interval
        } else {
            unhealthy_interval
        }
    }
}

/// Whether a server passes its health checks: written by its [`Checker`], read on the
/// request path without a lock. Passing until a check says otherwise.
#[derive(Debug)]
pub struct CheckStatus(AtomicBool);

impl Default for CheckStatus {
    fn default() -> Self {
        CheckStatus(AtomicBool::new(true))
    }
}

impl CheckStatus {
    /// Whether the server passes.
    pub fn is_passing(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Record the current state.
    pub fn set(&self, passing: bool) {
        self.0.store(passing, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeResult::*;

    const ONE: Thresholds = Thresholds {
        healthy: 1,
        unhealthy: 1,
    };
    const ENVOY: Thresholds = Thresholds {
        healthy: 2,
        unhealthy: 3,
    };

    fn timeout() -> ProbeResult {
        NoAnswer("timed out".into())
    }

    #[test]
    fn with_thresholds_of_one_every_result_decides() {
        let mut h = ServerHealth::new(true);
        assert_eq!(h.record(&Pass, ONE), None);
        assert_eq!(h.record(&timeout(), ONE), Some(Transition::BecameUnhealthy));
        assert!(!h.is_healthy());
        assert_eq!(h.record(&timeout(), ONE), None);
        assert_eq!(h.record(&Pass, ONE), Some(Transition::BecameHealthy));
        assert_eq!(
            h.record(&WrongStatus(500), ONE),
            Some(Transition::BecameUnhealthy)
        );
    }

    #[test]
    fn the_unhealthy_threshold_counts_unanswered_checks_in_a_row() {
        let mut h = ServerHealth::new(true);
        assert_eq!(h.record(&timeout(), ENVOY), None);
        assert_eq!(h.record(&timeout(), ENVOY), None);
        // A pass breaks the run.
        assert_eq!(h.record(&Pass, ENVOY), None);
        assert_eq!(h.record(&timeout(), ENVOY), None);
        assert_eq!(h.record(&timeout(), ENVOY), None);
        assert!(h.is_healthy());
        assert_eq!(
            h.record(&timeout(), ENVOY),
            Some(Transition::BecameUnhealthy)
        );
    }

    #[test]
    fn a_wrong_status_takes_a_server_out_at_once_as_in_envoy() {
        let mut h = ServerHealth::new(true);
        assert_eq!(h.record(&timeout(), ENVOY), None);
        assert_eq!(
            h.record(&WrongStatus(503), ENVOY),
            Some(Transition::BecameUnhealthy)
        );
    }

    #[test]
    fn the_healthy_threshold_counts_passes_in_a_row() {
        let mut h = ServerHealth::new(false);
        assert_eq!(h.record(&Pass, ENVOY), None);
        assert_eq!(h.record(&WrongStatus(500), ENVOY), None);
        assert_eq!(h.record(&Pass, ENVOY), None);
        assert_eq!(h.record(&timeout(), ENVOY), None);
        assert_eq!(h.record(&Pass, ENVOY), None);
        assert!(!h.is_healthy());
        assert_eq!(h.record(&Pass, ENVOY), Some(Transition::BecameHealthy));
        // And the count starts over for the way down.
        assert_eq!(h.record(&timeout(), ENVOY), None);
        assert!(h.is_healthy());
    }

    #[test]
    fn unhealthy_servers_are_checked_on_their_own_interval() {
        let (i, u) = (Duration::from_secs(30), Duration::from_secs(5));
        let mut h = ServerHealth::new(true);
        assert_eq!(h.next_check(i, u), i);
        h.record(&WrongStatus(500), ONE);
        assert_eq!(h.next_check(i, u), u);
    }

    #[test]
    fn check_status_starts_passing() {
        let s = CheckStatus::default();
        assert!(s.is_passing());
        s.set(false);
        assert!(!s.is_passing());
    }
}
