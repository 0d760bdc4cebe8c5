//! The route model: routers (rule → service) and services (servers and their
//! load-balancing, retry, breaker and outlier settings), validated.
//!
//! Two sources produce it: a TOML file for `shoal proxy --config FILE` ([`file`]) and
//! service labels ([`labels`]). The proxy consumes [`Routes`] only.

pub mod dfproxy;
pub mod docker;
pub mod entrypoint;
pub mod file;
pub mod health;
pub mod labels;
pub mod middlewares;
pub mod tcp;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::balancer::LbAlgorithm;
use crate::breaker::BreakerThresholds;
use crate::outlier::OutlierConfig;
use crate::retry::{RetryBudget, RetryOn, RetryPolicy};
use crate::rule::{self, Rule, RuleError};
pub use middlewares::MiddlewareConfig;

pub use entrypoint::{Entrypoint, Trust};
pub use file::ProxyConfig;
pub use health::{HealthCheck, HealthCheckSpec, ReportedHealth};
pub use labels::{from_labels, LabelError};
pub use tcp::{TcpRouter, TcpRoutes, TcpService, TlsMode};

/// A configuration value that is not acceptable, with where it was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value failed validation; `path` is like `routers.shop.rule`.
    #[error("{path}: {message}")]
    Invalid {
        /// Where, as a dotted path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The configuration file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML or has unknown or mistyped keys.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// The parser's message (names line, column and key).
        message: String,
    },
}

pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// The complete route table the proxy serves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routes {
    /// Routers by name.
    pub routers: BTreeMap<String, Router>,
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// Træfik middlewares by name (`name` from a file, `name@service` from labels).
    pub middlewares: BTreeMap<String, MiddlewareConfig>,
    /// TCP routers and services.
    pub tcp: TcpRoutes,
}

/// A rule that sends matching requests to a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    /// The parsed rule.
    pub rule: Rule,
    /// The rule as written.
    pub rule_text: String,
    /// Higher wins; defaults to the length of `rule_text`. Ties go to the router whose
    /// name sorts first.
    pub priority: i64,
    /// Entrypoints this router serves on; empty means all.
    pub entrypoints: Vec<String>,
    /// The service name.
    pub service: String,
    /// When true the router matches only requests that arrived over TLS.
    pub tls: bool,
    /// Overrides the service's retry policy.
    pub retry: Option<RetryPolicy>,
    /// Træfik middlewares run for this router, in order: `name`, `name@file`,
    /// `name@docker`, `name@<service>` (see [`middlewares::resolve`]).
    pub middlewares: Vec<String>,
}

impl Router {
    /// A router with default settings for `rule_text` → `service`.
    pub fn new(rule_text: &str, service: &str) -> Result<Router, RuleError> {
        Ok(Router {
            rule: rule::parse(rule_text)?,
            rule_text: rule_text.to_string(),
            priority: rule_text.len() as i64,
            entrypoints: Vec::new(),
            service: service.to_string(),
            tls: false,
            retry: None,
            middlewares: Vec::new(),
        })
    }
}

/// The protocol spoken to a service's servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 over cleartext (prior knowledge).
    H2c,
}

/// A set of servers and how to use them.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// The servers.
    pub servers: Vec<Server>,
    /// How requests are spread.
    pub lb: LbAlgorithm,
    /// When set, a cookie of this name pins a client to a server.
    pub sticky_cookie: Option<String>,
    /// Retry policy for routers that do not override it.
    pub retry: RetryPolicy,
    /// Retry budget; `None` (the default, as Envoy's) limits concurrent retries by
    /// `breaker.max_retries` (3) instead.
    pub retry_budget: Option<RetryBudget>,
    /// Circuit-breaker thresholds.
    pub breaker: BreakerThresholds,
    /// Outlier detection.
    pub outlier: OutlierConfig,
    /// Protocol to the servers.
    pub protocol: UpstreamProtocol,
    /// Active health check of the servers (`loadbalancer.healthcheck`).
    pub health_check: Option<HealthCheck>,
}

impl Service {
    /// A service with default settings over `servers`.
    pub fn new(servers: Vec<Server>) -> Service {
        Service {
            servers,
            lb: LbAlgorithm::Wrr,
            sticky_cookie: None,
            retry: RetryPolicy::default(),
            retry_budget: None,
            breaker: BreakerThresholds::default(),
            outlier: OutlierConfig::default(),
            protocol: UpstreamProtocol::Http1,
            health_check: None,
        }
    }

    /// A service with default settings over `addrs`, each of weight 1.
    pub fn over(addrs: &[SocketAddr]) -> Service {
        Service::new(addrs.iter().map(|&addr| Server::new(addr, 1)).collect())
    }
}

/// One backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Relative weight (≥ 1).
    pub weight: u32,
    /// What a source outside the proxy (Docker's `HEALTHCHECK`) says about it: a
    /// `Starting` or `Unhealthy` server takes no traffic. Set it in the routes given to
    /// [`crate::Proxy::update`]; the server's other state is kept across the update.
    pub reported: ReportedHealth,
}

impl Server {
    /// A server at `addr` with `weight` and nothing reported about its health.
    pub fn new(addr: SocketAddr, weight: u32) -> Server {
        Server {
            addr,
            weight,
            reported: ReportedHealth::NotReported,
        }
    }
}

impl Routes {
    /// Check cross-references and values: every router names an existing service and
    /// existing middlewares, weights are ≥ 1, names are usable, timeouts are non-zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(true)
    }

    /// [`Routes::validate`]; without `resolve_all`, a middleware reference that is not
    /// defined here is let be (one service's labels may name another's middleware:
    /// the merged table is checked in full by [`crate::Proxy::update`]).
    pub(crate) fn check(&self, resolve_all: bool) -> Result<(), ConfigError> {
        for (name, r) in &self.routers {
            let path = format!("routers.{name}");
            check_name(&path, name)?;
            if !self.services.contains_key(&r.service) {
                return Err(invalid(
                    format!("{path}.service"),
                    format!("unknown service `{}`", r.service),
                ));
            }
            if let Some(retry) = &r.retry {
                validate_retry(&format!("{path}.retry"), retry)?;
            }
            for ep in &r.entrypoints {
                check_name(&format!("{path}.entrypoints"), ep)?;
            }
            self.validate_router_middlewares(&path, r, resolve_all)?;
        }
        for name in self.middlewares.keys() {
            check_name(&format!("middlewares.{name}"), name)?;
            let flat = middlewares::flatten(&self.middlewares, std::slice::from_ref(name), None);
            if let (Err(m), true) = (flat, resolve_all) {
                return Err(invalid(format!("middlewares.{name}"), m));
            }
        }
        for (name, s) in &self.services {
            let path = format!("services.{name}");
            check_name(&path, name)?;
            validate_servers(&path, &s.servers)?;
            if let Some(cookie) = &s.sticky_cookie {
                let ok = !cookie.is_empty()
                    && cookie
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
                if !ok {
                    return Err(invalid(
                        format!("{path}.sticky_cookie"),
                        format!("`{cookie}` is not a cookie name (letters, digits, `_-.`)"),
                    ));
                }
            }
            validate_retry(&format!("{path}.retry"), &s.retry)?;
            if s.breaker.max_connections == 0 || s.breaker.max_requests == 0 {
                return Err(invalid(
                    format!("{path}.circuit_breaker"),
                    "max_connections and max_requests must be at least 1",
                ));
            }
            if let Some(b) = &s.retry_budget {
                if !(0.0..=100.0).contains(&b.percent) {
                    return Err(invalid(
                        format!("{path}.retry_budget.percent"),
                        "must be 0..=100",
                    ));
                }
            }
            if s.outlier.max_ejection_percent > 100 || s.outlier.panic_threshold_percent > 100 {
                return Err(invalid(
                    format!("{path}.outlier"),
                    "percentages must be 0..=100",
                ));
            }
            if let Some(h) = &s.health_check {
                h.validate(&format!("{path}.healthcheck"))?;
            }
        }
        self.tcp.validate()?;
        Ok(())
    }

    /// Add `other`'s routers and services; a name present in both is an error.
    pub fn merge(&mut self, other: Routes) -> Result<(), ConfigError> {
        if let Some(name) = other.routers.keys().find(|k| self.routers.contains_key(*k)) {
            return Err(invalid(format!("routers.{name}"), "defined twice"));
        }
        if let Some(name) = other
            .services
            .keys()
            .find(|k| self.services.contains_key(*k))
        {
            return Err(invalid(format!("services.{name}"), "defined twice"));
        }
        if let Some(name) = other
            .middlewares
            .keys()
            .find(|k| self.middlewares.contains_key(*k))
        {
            return Err(invalid(format!("middlewares.{name}"), "defined twice"));
        }
        self.tcp.merge(other.tcp)?;
        self.routers.extend(other.routers);
        self.services.extend(other.services);
        self.middlewares.extend(other.middlewares);
        Ok(())
    }

    /// A router's middleware references resolve, chains end, and at most one `retry`
    /// (and then no `retry` of the router's own).
    fn validate_router_middlewares(
        &self,
        path: &str,
        r: &Router,
        resolve_all: bool,
    ) -> Result<(), ConfigError> {
        let path = format!("{path}.middlewares");
        for m in &r.middlewares {
            middlewares::check_reference(&path, m)?;
        }
        let keys = match self.router_middlewares(r) {
            Ok(keys) => keys,
            Err(_) if !resolve_all => return Ok(()),
            Err(m) => return Err(invalid(&path, m)),
        };
        let retries = keys
            .iter()
            .filter(|k| matches!(self.middlewares[*k], MiddlewareConfig::Retry(_)))
            .count();
        if retries > 1 || (retries == 1 && r.retry.is_some()) {
            return Err(invalid(
                path,
                "at most one retry setting per router (a retry middleware or the router's retry)",
            ));
        }
        Ok(())
    }

    /// The keys of the middlewares `r` runs, in order, chains expanded.
    pub fn router_middlewares(&self, r: &Router) -> Result<Vec<String>, String> {
        middlewares::flatten(&self.middlewares, &r.middlewares, None)
    }
}

/// Weights are ≥ 1 and no address is listed twice; `path` names the service.
fn validate_servers(path: &str, servers: &[Server]) -> Result<(), ConfigError> {
    for (i, server) in servers.iter().enumerate() {
        if server.weight == 0 {
            return Err(invalid(
                format!("{path}.servers[{i}].weight"),
                "must be at least 1",
            ));
        }
        if servers[..i].iter().any(|o| o.addr == server.addr) {
            return Err(invalid(
                format!("{path}.servers[{i}]"),
                format!("{} is listed twice", server.addr),
            ));
        }
    }
    Ok(())
}

fn check_name(path: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!("`{name}` is not a valid name (letters, digits, `_-.@`, at most 128)"),
        ))
    }
}

pub(crate) fn validate_retry(path: &str, p: &RetryPolicy) -> Result<(), ConfigError> {
    if p.per_try_timeout.is_some_and(|d| d.is_zero()) || p.timeout.is_some_and(|d| d.is_zero()) {
        return Err(invalid(path, "timeouts must be greater than zero"));
    }
    if p.num_retries > 10 {
        return Err(invalid(path, "at most 10 retries"));
    }
    Ok(())
}

/// A partial retry policy as written in a file or labels, applied over the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Conditions: `5xx`, `gateway-error`, `reset`, `connect-failure`, status codes.
    pub on: Option<Vec<String>>,
    /// Total tries including the first (Træfik's meaning); `num_retries = attempts - 1`.
    pub attempts: Option<u32>,
    /// Retries after the first try (Envoy's meaning).
    pub num_retries: Option<u32>,
    /// Per-try timeout, e.g. `2s`.
    pub per_try_timeout: Option<String>,
    /// Overall timeout, e.g. `15s`.
    pub timeout: Option<String>,
    /// Non-idempotent methods that may be retried, e.g. `["POST"]`.
    pub methods: Option<Vec<String>>,
}

impl RetrySpec {
    /// The default policy with this spec's fields applied. `path` prefixes errors.
    pub fn to_policy(&self, path: &str) -> Result<RetryPolicy, ConfigError> {
        let mut p = RetryPolicy::default();
        if let Some(on) = &self.on {
            p.retry_on = RetryOn::parse(on.iter().map(String::as_str))
                .map_err(|m| invalid(format!("{path}.on"), m))?;
        }
        match (self.attempts, self.num_retries) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    path,
                    "give either attempts or num_retries, not both",
                ))
            }
            (Some(0), None) => {
                return Err(invalid(format!("{path}.attempts"), "must be at least 1"))
            }
            (Some(a), None) => p.num_retries = a - 1,
            (None, Some(n)) => p.num_retries = n,
            (None, None) => {}
        }
        if let Some(t) = &self.per_try_timeout {
            p.per_try_timeout =
                Some(parse_duration(t).map_err(|m| invalid(format!("{path}.per_try_timeout"), m))?);
        }
        if let Some(t) = &self.timeout {
            p.timeout = Some(parse_duration(t).map_err(|m| invalid(format!("{path}.timeout"), m))?);
        }
        if let Some(methods) = &self.methods {
            for m in methods {
                let upper = m.trim().to_ascii_uppercase();
                if upper.is_empty() || http::Method::from_bytes(upper.as_bytes()).is_err() {
                    return Err(invalid(
                        format!("{path}.methods"),
                        format!("`{m}` is not a method"),
                    ));
                }
                p.methods.insert(upper);
            }
        }
        validate_retry(path, &p)?;
        Ok(p)
    }
}

/// Parse `250ms`, `2s`, `1m`, `1h` (a whole number and a unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 250ms, 2s, 1m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("`{text}` has no unit; use ms, s, m or h")),
    };
    Ok(d)
}

#[cfg(test)]
mod tests;
