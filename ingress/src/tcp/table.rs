//! The TCP route table: routers in match order and the servers of their services.
//! Built by the control side on every update and swapped in whole; connections read it.
//!
//! Routers are tried by priority (high first), then name. A connection whose first
//! bytes are a ClientHello is matched against TLS routers (passthrough or terminating)
//! only, any other against plain-TCP routers only, as in Træfik.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::rule::ConnFacts;
use crate::balancer::SmoothWrr;
use crate::config::Server;
use crate::config::{TcpRouter, TcpRoutes, TcpService, TlsMode};

/// A TCP service's servers and its round-robin state.
#[derive(Debug)]
pub struct TcpBackends {
    /// The service name.
    pub name: String,
    /// The PROXY header sent to the servers first, if any.
    pub proxy_protocol: Option<crate::proxy_protocol::Version>,
    servers: Vec<Server>,
    weights: Vec<u32>,
    wrr: Mutex<SmoothWrr>,
}

impl TcpBackends {
    fn new(name: &str, service: TcpService) -> TcpBackends {
        let servers = service.servers;
        TcpBackends {
            name: name.to_string(),
            proxy_protocol: service.proxy_protocol,
            weights: servers.iter().map(|s| s.weight).collect(),
            servers,
            wrr: Mutex::new(SmoothWrr::default()),
        }
    }

    /// The servers to try for a new connection, in order: the weighted round robin's
    /// pick, then the others that take traffic (if it cannot be reached). Empty when
    /// none takes traffic.
    pub fn order(&self) -> Vec<SocketAddr> {
        let fit: Vec<bool> = self
            .servers
            .iter()
            .map(|s| s.reported.takes_traffic())
            .collect();
        let first = {
            let mut wrr = self.wrr.lock().unwrap_or_else(|p| p.into_inner());
            wrr.pick(&self.weights, &fit)
        };
        let Some(first) = first else {
            return Vec::new();
        };
        let rest = (0..self.servers.len()).filter(|&i| i != first && fit[i]);
        std::iter::once(first)
            .chain(rest)
            .map(|i| self.servers[i].addr)
            .collect()
    }
}

/// One router, with its service resolved.
#[derive(Debug)]
pub struct TcpRoute {
    /// Router name.
    pub name: String,
    /// The router.
    pub router: TcpRouter,
    /// Its service.
    pub service: Arc<TcpBackends>,
}

impl TcpRoute {
    fn serves(&self, entrypoint: &str) -> bool {
        let eps = &self.router.entrypoints;
        eps.is_empty() || eps.iter().any(|e| e == entrypoint)
    }
}

/// The TCP routers in match order.
#[derive(Debug, Default)]
pub struct TcpTable {
    routes: Vec<TcpRoute>,
}

impl TcpTable {
    /// The table for validated `routes` (a router whose service is missing is left
    /// out).
    pub fn new(routes: TcpRoutes) -> TcpTable {
        let services: std::collections::BTreeMap<String, Arc<TcpBackends>> = routes
            .services
            .into_iter()
            .map(|(name, s)| {
                let backends = Arc::new(TcpBackends::new(&name, s));
                (name, backends)
            })
            .collect();
        let mut table: Vec<TcpRoute> = routes
            .routers
            .into_iter()
            .filter_map(|(name, router)| {
                let service = services.get(&router.service)?.clone();
                Some(TcpRoute {
                    name,
                    router,
                    service,
                })
            })
            .collect();
        table.sort_by(|a, b| {
            b.router
                .priority
                .cmp(&a.router.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        TcpTable { routes: table }
    }

    /// Whether connections on `entrypoint` must be read until the ClientHello (or
    /// their first bytes show plain TCP) before a router can be chosen: true when a
    /// TLS router serves there.
    pub fn needs_hello(&self, entrypoint: &str) -> bool {
        self.routes
            .iter()
            .any(|r| r.serves(entrypoint) && r.router.tls != TlsMode::Off)
    }

    /// The router for a connection on `entrypoint`; `tls` says whether it began with
    /// a ClientHello.
    pub fn select(&self, entrypoint: &str, tls: bool, facts: &ConnFacts<'_>) -> Option<&TcpRoute> {
        self.routes.iter().find(|r| {
            r.serves(entrypoint)
                && (r.router.tls != TlsMode::Off) == tls
                && r.router.rule.matches(facts)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ReportedHealth;

    fn routes(routers: &[(&str, &str, TlsMode, &[&str])]) -> TcpRoutes {
        let mut r = TcpRoutes::default();
        let addr: SocketAddr = "10.0.0.1:5432".parse().unwrap();
        r.services.insert(
            "s".into(),
            TcpService {
                servers: vec![Server::new(addr, 1)],
                proxy_protocol: None,
            },
        );
        for (name, rule, tls, eps) in routers {
            let mut router = TcpRouter::new(rule, "s", *tls).unwrap();
            router.entrypoints = eps.iter().map(|e| e.to_string()).collect();
            r.routers.insert(name.to_string(), router);
        }
        r
    }

    fn pick<'a>(t: &'a TcpTable, ep: &str, tls: bool, sni: Option<&str>) -> Option<&'a str> {
        let facts = ConnFacts {
            server_name: sni,
            alpn: &[],
            client_ip: "192.0.2.1".parse().unwrap(),
        };
        t.select(ep, tls, &facts).map(|r| r.name.as_str())
    }

    #[test]
    fn tls_and_plain_connections_see_their_own_routers() {
        use TlsMode::*;
        let t = TcpTable::new(routes(&[
            ("plain", "HostSNI(`*`)", Off, &[]),
            ("db", "HostSNI(`db.test`)", Passthrough, &[]),
            ("mq", "HostSNI(`mq.test`)", Terminate, &[]),
        ]));
        assert_eq!(pick(&t, "x", false, None), Some("plain"));
        assert_eq!(pick(&t, "x", true, Some("db.test")), Some("db"));
        assert_eq!(pick(&t, "x", true, Some("mq.test")), Some("mq"));
        assert_eq!(pick(&t, "x", true, Some("other.test")), None);
        assert_eq!(pick(&t, "x", true, None), None);
    }

    #[test]
    fn the_catch_all_comes_last_unless_given_a_priority() {
        use TlsMode::*;
        let mut r = routes(&[
            ("all", "HostSNI(`*`)", Passthrough, &[]),
            ("b", "HostSNI(`b.test`)", Passthrough, &[]),
        ]);
        let t = TcpTable::new(r.clone());
        assert_eq!(pick(&t, "x", true, Some("b.test")), Some("b"));
        assert_eq!(pick(&t, "x", true, Some("c.test")), Some("all"));
        r.routers.get_mut("all").unwrap().priority = 100;
        let t = TcpTable::new(r);
        assert_eq!(pick(&t, "x", true, Some("b.test")), Some("all"));
    }

    #[test]
    fn entrypoints_limit_routers_and_decide_whether_to_read_first() {
        use TlsMode::*;
        let t = TcpTable::new(routes(&[
            ("db", "HostSNI(`*`)", Off, &["db"]),
            ("tls", "HostSNI(`a.test`)", Passthrough, &["edge"]),
        ]));
        assert!(!t.needs_hello("db"));
        assert!(t.needs_hello("edge"));
        assert!(!t.needs_hello("other"));
        assert_eq!(pick(&t, "db", false, None), Some("db"));
        assert_eq!(pick(&t, "edge", false, None), None);
        assert_eq!(pick(&t, "db", true, Some("a.test")), None);
    }

    #[test]
    fn servers_rotate_by_weight_and_reported_trouble_is_skipped() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1".parse().unwrap();
        let c: SocketAddr = "10.0.0.3:1".parse().unwrap();
        let mut sick = Server::new(c, 1);
        sick.reported = ReportedHealth::Starting;
        let service = |servers| TcpService {
            servers,
            proxy_protocol: None,
        };
        let s = TcpBackends::new(
            "s",
            service(vec![Server::new(a, 2), Server::new(b, 1), sick]),
        );
        let firsts: Vec<SocketAddr> = (0..3).map(|_| s.order()[0]).collect();
        assert_eq!(firsts, vec![a, b, a]);
        let order = s.order();
        assert_eq!(
            order.len(),
            2,
            "the starting server is not tried: {order:?}"
        );
        assert!(order.contains(&a) && order.contains(&b));
        let none = TcpBackends::new("s", service(vec![sick]));
        assert!(none.order().is_empty());
    }
}
