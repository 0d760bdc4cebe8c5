//! The task that checks one service's servers: a loop per server, all in one task that
//! ends when its [`Checker`] is dropped (its service left the routes, or its check,
//! protocol or servers changed and a new checker took over).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::probe::probe;
use super::{CheckStatus, ServerHealth, Thresholds, Transition};
use crate::config::{HealthCheck, UpstreamProtocol};
use crate::proxy::Dialer;

/// Checks one service's servers until dropped.
#[derive(Debug)]
pub struct Checker {
    check: HealthCheck,
    protocol: UpstreamProtocol,
    servers: Vec<SocketAddr>,
    task: JoinHandle<()>,
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Checker {
    /// Start checking `servers` of `service` on the current tokio runtime; each
    /// server's result goes to its [`CheckStatus`], whose state is the starting point.
    /// `None` outside a runtime.
    pub fn start(
        service: &str,
        check: HealthCheck,
        protocol: UpstreamProtocol,
        servers: Vec<(SocketAddr, Arc<CheckStatus>)>,
        dialer: Dialer,
    ) -> Option<Checker> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let service: Arc<str> = service.into();
        let shared = Arc::new(check.clone());
        let addrs = servers.iter().map(|(a, _)| *a).collect();
        let loops = servers.into_iter().map(|(addr, status)| {
            watch(
                service.clone(),
                shared.clone(),
                protocol,
                addr,
                status,
                dialer.clone(),
            )
        });
        let all = futures::future::join_all(loops);
        let task = runtime.spawn(async move {
            all.await;
        });
        Some(Checker {
            check,
            protocol,
            servers: addrs,
            task,
        })
    }

    /// Whether this checker already does what `check` over `servers` asks.
    pub fn checks(
        &self,
        check: &HealthCheck,
        protocol: UpstreamProtocol,
        servers: &[SocketAddr],
    ) -> bool {
        self.check == *check && self.protocol == protocol && self.servers == servers
    }
}

/// Check `addr` now and then on its interval, forever.
async fn watch(
    service: Arc<str>,
    check: Arc<HealthCheck>,
    protocol: UpstreamProtocol,
    addr: SocketAddr,
    status: Arc<CheckStatus>,
    dialer: Dialer,
) {
    let thresholds = Thresholds {
        healthy: check.healthy_threshold,
        unhealthy: check.unhealthy_threshold,
    };
    let mut health = ServerHealth::new(status.is_passing());
    loop {
        let started = Instant::now();
        let result = probe(&check, protocol, addr, &dialer).await;
        match health.record(&result, thresholds) {
            Some(Transition::BecameUnhealthy) => tracing::warn!(
                service = &*service, server = %addr, result = ?result,
                "server failed its health check: out of rotation"
            ),
            Some(Transition::BecameHealthy) => tracing::info!(
                service = &*service, server = %addr,
                "server passes its health check again: back in rotation"
            ),
            None => {
                tracing::debug!(service = &*service, server = %addr, result = ?result, "health check")
            }
        }
        status.set(health.is_healthy());
        let next = health.next_check(check.interval, check.unhealthy_interval);
        tokio::time::sleep_until(started + next).await;
    }
}
