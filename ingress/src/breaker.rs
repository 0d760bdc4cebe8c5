//! Circuit breaking per service with Envoy's thresholds.
//!
//! A gate on the request path: a request (or retry, or connection) is admitted only
//! while the matching count is under its threshold; otherwise it overflows and the
//! proxy answers 503 with `x-shoal-overloaded: true`. Admission returns a guard that
//! gives the slot back when dropped, so counts cannot leak on early returns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Envoy's circuit-breaker thresholds for one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerThresholds {
    /// Upstream connections open at once.
    pub max_connections: usize,
    /// Requests waiting for an upstream connection.
    pub max_pending_requests: usize,
    /// Requests in flight to the service.
    pub max_requests: usize,
    /// Retries in flight (used when the service has no retry budget).
    pub max_retries: usize,
}

impl Default for BreakerThresholds {
    fn default() -> Self {
        BreakerThresholds {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

/// Which threshold refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// `max_connections`.
    Connections,
    /// `max_pending_requests`.
    Pending,
    /// `max_requests`.
    Requests,
    /// `max_retries` or the retry budget.
    Retries,
}

impl Overflow {
    /// Label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Overflow::Connections => "connections",
            Overflow::Pending => "pending",
            Overflow::Requests => "requests",
            Overflow::Retries => "retries",
        }
    }
}

/// Live counts for one service. Shared by all requests; survives route updates.
#[derive(Debug, Default)]
pub struct BreakerCounts {
    /// Upstream connections open.
    pub connections: AtomicUsize,
    /// Requests waiting for a connection.
    pub pending: AtomicUsize,
    /// Requests in flight.
    pub requests: AtomicUsize,
    /// Retries in flight.
    pub retries: AtomicUsize,
}

/// Which count a [`Slot`] holds.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Connections,
    Pending,
    Requests,
    Retries,
}

impl BreakerCounts {
    fn counter(&self, kind: Kind) -> &AtomicUsize {
        match kind {
            Kind::Connections => &self.connections,
            Kind::Pending => &self.pending,
            Kind::Requests => &self.requests,
            Kind::Retries => &self.retries,
        }
    }

    fn admit(self: &Arc<Self>, kind: Kind, max: usize) -> Option<Slot> {
        let counter = self.counter(kind);
        let mut current = counter.load(Ordering::Relaxed);
        loop {
            if current >= max {
                return None;
            }
            match counter.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Slot {
                        counts: self.clone(),
                        kind,
                    })
                }
                Err(now) => current = now,
            }
        }
    }

    /// Admit a request if fewer than `max_requests` are in flight.
    pub fn try_request(self: &Arc<Self>, t: &BreakerThresholds) -> Result<Slot, Overflow> {
        self.admit(Kind::Requests, t.max_requests)
            .ok_or(Overflow::Requests)
    }

    /// Admit a retry if fewer than `limit` retries are in flight.
    pub fn try_retry(self: &Arc<Self>, limit: usize) -> Result<Slot, Overflow> {
        self.admit(Kind::Retries, limit).ok_or(Overflow::Retries)
    }

    /// Admit a new upstream connection if fewer than `max_connections` are open.
    pub fn try_connection(self: &Arc<Self>, t: &BreakerThresholds) -> Result<Slot, Overflow> {
        self.admit(Kind::Connections, t.max_connections)
            .ok_or(Overflow::Connections)
    }

    /// Count a request as waiting for a connection if fewer than `max_pending`
    /// (`max_pending_requests`) wait.
    pub fn try_pending(self: &Arc<Self>, max_pending: usize) -> Result<Slot, Overflow> {
        self.admit(Kind::Pending, max_pending)
            .ok_or(Overflow::Pending)
    }

    /// Requests in flight now.
    pub fn active_requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Retries in flight now.
    pub fn active_retries(&self) -> usize {
        self.retries.load(Ordering::Relaxed)
    }
}

/// One admitted unit of a count; released on drop.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<BreakerCounts>,
    kind: Kind,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counts
            .counter(self.kind)
            .fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_over_the_threshold_overflow_and_slots_come_back() {
        let counts = Arc::new(BreakerCounts::default());
        let t = BreakerThresholds {
            max_requests: 2,
            ..BreakerThresholds::default()
        };
        let a = counts.try_request(&t).unwrap();
        let _b = counts.try_request(&t).unwrap();
        assert_eq!(counts.try_request(&t).unwrap_err(), Overflow::Requests);
        drop(a);
        assert_eq!(counts.active_requests(), 1);
        assert!(counts.try_request(&t).is_ok());
    }

    #[test]
    fn retries_and_connections_have_their_own_counts() {
        let counts = Arc::new(BreakerCounts::default());
        let t = BreakerThresholds {
            max_connections: 1,
            max_pending_requests: 0,
            ..BreakerThresholds::default()
        };
        let _c = counts.try_connection(&t).unwrap();
        assert_eq!(
            counts.try_connection(&t).unwrap_err(),
            Overflow::Connections
        );
        assert_eq!(
            counts.try_pending(t.max_pending_requests).unwrap_err(),
            Overflow::Pending
        );
        let _r = counts.try_retry(1).unwrap();
        assert_eq!(counts.try_retry(1).unwrap_err(), Overflow::Retries);
        assert_eq!(counts.active_retries(), 1);
    }
}
