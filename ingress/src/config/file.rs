//! The TOML file read by `shoal proxy --config FILE`.
//!
//! ```toml
//! [entrypoints.web]
//! address = "0.0.0.0:8080"
//! proxyProtocol = { trustedIPs = ["10.0.0.0/8"] }      # read PROXY headers (see entrypoint)
//! forwardedHeaders = { trustedIPs = ["10.0.0.0/8"] }   # keep these clients' X-Forwarded-*
//!
//! [entrypoints.websecure]
//! address = "0.0.0.0:8443"
//! tls = { certificates = [{ cert_file = "shop.crt", key_file = "shop.key" }] }
//!
//! [routers.shop]
//! rule = "Host(`shop.example.com`) && PathPrefix(`/api`)"
//! entrypoints = ["web", "websecure"]     # default: all
//! service = "shop"
//! priority = 100                         # default: length of the rule
//! tls = false                            # true: only requests that came over TLS
//! retry = { on = ["5xx", "reset"], attempts = 3, per_try_timeout = "2s", timeout = "15s", methods = ["POST"] }
//! middlewares = ["strip-api", "auth"]   # Træfik middlewares, in order
//!
//! [middlewares.strip-api.stripPrefix]     # Træfik's types and options
//! prefixes = ["/api"]
//!
//! [middlewares.auth.basicAuth]
//! users = ["admin:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"]
//!
//! [services.shop]
//! servers = [{ url = "http://10.0.0.5:8080", weight = 2 }, { url = "http://10.0.0.6:8080" }]
//! lb = "wrr"                             # or "p2c"
//! sticky_cookie = "shop_server"
//! protocol = "http1"                     # or "h2c"
//! retry = { on = ["gateway-error"], num_retries = 1 }
//! retry_budget = { percent = 20.0, min_concurrency = 3 }
//! circuit_breaker = { max_connections = 1024, max_pending_requests = 1024, max_requests = 1024, max_retries = 3 }
//! outlier = { consecutive_5xx = 5, consecutive_gateway_failure = 5, interval = "10s", base_ejection_time = "30s", max_ejection_percent = 10 }
//! ```
//! Unknown keys are errors. Server URLs must be `http://IP:PORT` (port defaults to 80).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

pub use super::entrypoint::Entrypoint;
use super::entrypoint::EntrypointFile;
use super::middlewares::{MiddlewareConfig, Opts};
use super::tcp::TcpFile;
use super::{
    invalid, parse_duration, ConfigError, HealthCheckSpec, RetrySpec, Router, Routes, Server,
    Service, UpstreamProtocol,
};
use crate::breaker::BreakerThresholds;
use crate::outlier::OutlierConfig;
use crate::retry::RetryBudget;

/// A validated proxy configuration: where to listen and what to route.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// Entrypoints by name.
    pub entrypoints: BTreeMap<String, Entrypoint>,
    /// The routes.
    pub routes: Routes,
    /// TCP entrypoints (`[tcp.entrypoints.<name>]`): certificates serve TCP routers
    /// that terminate TLS.
    pub tcp_entrypoints: BTreeMap<String, Entrypoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    entrypoints: BTreeMap<String, EntrypointFile>,
    #[serde(default)]
    routers: BTreeMap<String, RouterFile>,
    #[serde(default)]
    services: BTreeMap<String, ServiceFile>,
    /// Træfik middlewares: `[middlewares.<name>.<type>]`, checked by
    /// [`MiddlewareConfig::from_opts`] (options compared without case, as Træfik does).
    #[serde(default)]
    middlewares: BTreeMap<String, toml::Table>,
    /// TCP entrypoints, routers and services.
    #[serde(default)]
    tcp: TcpFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouterFile {
    rule: String,
    service: String,
    priority: Option<i64>,
    #[serde(default)]
    entrypoints: Vec<String>,
    #[serde(default)]
    tls: bool,
    retry: Option<RetrySpec>,
    #[serde(default)]
    middlewares: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    servers: Vec<ServerFile>,
    lb: Option<String>,
    sticky_cookie: Option<String>,
    protocol: Option<String>,
    retry: Option<RetrySpec>,
    retry_budget: Option<RetryBudgetFile>,
    circuit_breaker: Option<BreakerFile>,
    outlier: Option<OutlierFile>,
    healthcheck: Option<HealthCheckSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    url: String,
    weight: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBudgetFile {
    percent: Option<f64>,
    min_concurrency: Option<u32>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BreakerFile {
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_pending_requests: Option<usize>,
    pub(crate) max_requests: Option<usize>,
    pub(crate) max_retries: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutlierFile {
    pub(crate) consecutive_5xx: Option<u32>,
    pub(crate) consecutive_gateway_failure: Option<u32>,
    pub(crate) interval: Option<String>,
    pub(crate) base_ejection_time: Option<String>,
    pub(crate) max_ejection_time: Option<String>,
    pub(crate) max_ejection_percent: Option<u32>,
    pub(crate) panic_threshold_percent: Option<u32>,
}

impl ProxyConfig {
    /// Read and validate `path`.
    pub fn load(path: &Path) -> Result<ProxyConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parse and validate TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<ProxyConfig, ConfigError> {
        let raw: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        raw.validate()
    }
}

impl FileConfig {
    fn validate(self) -> Result<ProxyConfig, ConfigError> {
        let mut entrypoints = BTreeMap::new();
        for (name, ep) in self.entrypoints {
            let path = format!("entrypoints.{name}");
            super::check_name(&path, &name)?;
            entrypoints.insert(name, ep.validate(&path)?);
        }
        let (tcp_entrypoints, tcp_routes) = self.tcp.validate(&entrypoints)?;
        let mut routes = Routes::default();
        for (name, table) in self.middlewares {
            let path = format!("middlewares.{name}");
            super::check_name(&path, &name)?;
            let opts = Opts::from_toml(&path, &table)?;
            routes
                .middlewares
                .insert(name, MiddlewareConfig::from_opts(opts)?);
        }
        for (name, s) in self.services {
            let service = s.validate(&format!("services.{name}"))?;
            routes.services.insert(name, service);
        }
        for (name, r) in self.routers {
            let path = format!("routers.{name}");
            let router = r.validate(&path)?;
            for ep in &router.entrypoints {
                if !entrypoints.contains_key(ep) {
                    return Err(invalid(
                        format!("{path}.entrypoints"),
                        format!("unknown entrypoint `{ep}`"),
                    ));
                }
            }
            if router.tls {
                let on_tls = |ep: &Entrypoint| !ep.certificates.is_empty();
                let any_tls = if router.entrypoints.is_empty() {
                    entrypoints.values().any(on_tls)
                } else {
                    router
                        .entrypoints
                        .iter()
                        .any(|e| entrypoints.get(e).is_some_and(on_tls))
                };
                if !any_tls {
                    return Err(invalid(
                        format!("{path}.tls"),
                        "no entrypoint of this router has certificates",
                    ));
                }
            }
            routes.routers.insert(name, router);
        }
        routes.tcp = tcp_routes;
        routes.validate()?;
        Ok(ProxyConfig {
            entrypoints,
            routes,
            tcp_entrypoints,
        })
    }
}

impl RouterFile {
    fn validate(self, path: &str) -> Result<Router, ConfigError> {
        let mut router = Router::new(&self.rule, &self.service)
            .map_err(|e| invalid(format!("{path}.rule"), e.to_string()))?;
        if let Some(p) = self.priority {
            router.priority = p;
        }
        router.entrypoints = self.entrypoints;
        router.tls = self.tls;
        router.middlewares = self.middlewares;
        router.retry = self
            .retry
            .map(|r| r.to_policy(&format!("{path}.retry")))
            .transpose()?;
        Ok(router)
    }
}

impl ServiceFile {
    fn validate(self, path: &str) -> Result<Service, ConfigError> {
        let mut servers = Vec::new();
        for (i, s) in self.servers.iter().enumerate() {
            let addr = parse_server_url(&s.url)
                .map_err(|m| invalid(format!("{path}.servers[{i}].url"), m))?;
            servers.push(Server::new(addr, s.weight.unwrap_or(1)));
        }
        let mut service = Service::new(servers);
        if let Some(lb) = &self.lb {
            service.lb = lb.parse().map_err(|m| invalid(format!("{path}.lb"), m))?;
        }
        service.sticky_cookie = self.sticky_cookie;
        if let Some(p) = &self.protocol {
            service.protocol =
                parse_protocol(p).map_err(|m| invalid(format!("{path}.protocol"), m))?;
        }
        if let Some(r) = &self.retry {
            service.retry = r.to_policy(&format!("{path}.retry"))?;
        }
        if let Some(b) = self.retry_budget {
            let d = RetryBudget::default();
            service.retry_budget = (!b.disabled).then_some(RetryBudget {
                percent: b.percent.unwrap_or(d.percent),
                min_concurrency: b.min_concurrency.unwrap_or(d.min_concurrency),
            });
        }
        service.breaker = self.circuit_breaker.unwrap_or_default().to_thresholds();
        service.outlier = self
            .outlier
            .unwrap_or_default()
            .to_config(&format!("{path}.outlier"))?;
        service.health_check = self
            .healthcheck
            .map(|h| h.to_check(&format!("{path}.healthcheck")))
            .transpose()?;
        Ok(service)
    }
}

impl BreakerFile {
    pub(crate) fn to_thresholds(&self) -> BreakerThresholds {
        let d = BreakerThresholds::default();
        BreakerThresholds {
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_pending_requests: self.max_pending_requests.unwrap_or(d.max_pending_requests),
            max_requests: self.max_requests.unwrap_or(d.max_requests),
            max_retries: self.max_retries.unwrap_or(d.max_retries),
        }
    }
}

impl OutlierFile {
    pub(crate) fn to_config(&self, path: &str) -> Result<OutlierConfig, ConfigError> {
        let d = OutlierConfig::default();
        let dur = |v: &Option<String>, key: &str, default| -> Result<_, ConfigError> {
            v.as_deref()
                .map(|t| parse_duration(t).map_err(|m| invalid(format!("{path}.{key}"), m)))
                .transpose()
                .map(|o| o.unwrap_or(default))
        };
        Ok(OutlierConfig {
            consecutive_5xx: self.consecutive_5xx.unwrap_or(d.consecutive_5xx),
            consecutive_gateway_failure: self
                .consecutive_gateway_failure
                .unwrap_or(d.consecutive_gateway_failure),
            interval: dur(&self.interval, "interval", d.interval)?,
            base_ejection_time: dur(
                &self.base_ejection_time,
                "base_ejection_time",
                d.base_ejection_time,
            )?,
            max_ejection_time: dur(
                &self.max_ejection_time,
                "max_ejection_time",
                d.max_ejection_time,
            )?,
            max_ejection_percent: self.max_ejection_percent.unwrap_or(d.max_ejection_percent),
            panic_threshold_percent: self
                .panic_threshold_percent
                .unwrap_or(d.panic_threshold_percent),
        })
    }
}

/// `http1` or `h2c`.
pub(crate) fn parse_protocol(p: &str) -> Result<UpstreamProtocol, String> {
    match p {
        "http1" | "http" => Ok(UpstreamProtocol::Http1),
        "h2c" => Ok(UpstreamProtocol::H2c),
        other => Err(format!("unknown protocol `{other}`, expected http1 or h2c")),
    }
}

/// `http://IP[:PORT][/]` → socket address. Host names are refused: the proxy does not
/// resolve names.
pub fn parse_server_url(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}`: expected http://IP:PORT"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') {
        return Err(format!("`{url}`: paths are not supported"));
    }
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let ip = authority.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 80))
        .map_err(|_| {
            format!("`{url}`: expected an IP address and optional port (names are not resolved)")
        })
}
