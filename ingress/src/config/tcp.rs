//! TCP routers and services (Træfik v3's `tcp.routers` and `tcp.services`), from the
//! file's `[tcp]` table and from `tcp.*` labels. They serve on TCP entrypoints of their
//! own (see [`crate::tcp`]).
//!
//! ```toml
//! [tcp.entrypoints.postgres]
//! address = "0.0.0.0:5432"
//! tls = { certificates = [{ cert_file = "db.crt", key_file = "db.key" }] }  # for tls = true
//!
//! [tcp.routers.db]
//! rule = "HostSNI(`db.example.com`)"
//! entrypoints = ["postgres"]        # default: all TCP entrypoints
//! service = "db"
//! priority = 10                     # default: length of the rule; HostSNI(`*`) alone: -1
//! tls = { passthrough = true }      # or tls = true: terminate here; none: plain TCP
//!
//! [tcp.services.db]
//! servers = [{ address = "10.0.0.5:5432" }, { address = "10.0.0.6:5432", weight = 2 }]
//! proxyProtocol = { version = 2 }   # send a PROXY header (1 or 2; default 2) first
//! ```
//!
//! | label (after `shoal.` or `traefik.`)               | meaning |
//! | -------------------------------------------------- | ------- |
//! | `tcp.routers.<r>.rule`                             | TCP rule (required) |
//! | `tcp.routers.<r>.entrypoints=a,b`                  | default: all TCP entrypoints |
//! | `tcp.routers.<r>.service=<s>`                      | default: the only TCP service of the labels |
//! | `tcp.routers.<r>.priority=10`                      | default: rule length (-1 for ``HostSNI(`*`)``) |
//! | `tcp.routers.<r>.tls=true`                         | terminate TLS with the entrypoint's certificates; `tls.certresolver`, `tls.options`, `tls.domains…` imply it and are otherwise ignored |
//! | `tcp.routers.<r>.tls.passthrough=true`             | route by SNI, pass the TLS bytes through |
//! | `tcp.services.<s>.loadbalancer.server.port=5432`   | required |
//! | `tcp.services.<s>.loadbalancer.server.weight=2`    | weight of every task |
//! | `tcp.services.<s>.loadbalancer.proxyprotocol.version=1` | send a PROXY header (1 or 2) first; `…loadbalancer.proxyprotocol=true` alone: version 2 |
//!
//! A rule that names a server (``HostSNI(`a`)``) needs TLS: a plain-TCP router has no
//! server name to look at (Træfik refuses it too). Middlewares, servers transports and
//! termination delays are refused, never dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;

use super::entrypoint::EntrypointFile;
use super::{check_name, invalid, validate_servers, ConfigError, Entrypoint, Server};
use crate::proxy_protocol::Version as ProxyVersion;
use crate::tcp::{TcpRule, TcpRuleError};

/// The TCP part of the route table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TcpRoutes {
    /// Routers by name.
    pub routers: BTreeMap<String, TcpRouter>,
    /// Services by name.
    pub services: BTreeMap<String, TcpService>,
}

/// What a TCP router does with TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP: the router sees no ClientHello.
    #[default]
    Off,
    /// Terminate TLS with the entrypoint's certificates; the server gets plaintext.
    Terminate,
    /// Route by the ClientHello and pass the TLS bytes through to the server.
    Passthrough,
}

/// A rule that sends matching connections to a TCP service.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpRouter {
    /// The parsed rule.
    pub rule: TcpRule,
    /// The rule as written.
    pub rule_text: String,
    /// Higher wins; ties go to the router whose name sorts first.
    pub priority: i64,
    /// TCP entrypoints this router serves on; empty means all.
    pub entrypoints: Vec<String>,
    /// The TCP service name.
    pub service: String,
    /// TLS handling.
    pub tls: TlsMode,
}

impl TcpRouter {
    /// A router for `rule_text` → `service` with Træfik's default priority: the
    /// length of the rule, or -1 for ``HostSNI(`*`)`` alone.
    pub fn new(rule_text: &str, service: &str, tls: TlsMode) -> Result<TcpRouter, TcpRuleError> {
        let rule = TcpRule::parse(rule_text)?;
        let priority = if rule.is_catch_all() {
            -1
        } else {
            rule_text.len() as i64
        };
        Ok(TcpRouter {
            rule,
            rule_text: rule_text.to_string(),
            priority,
            entrypoints: Vec::new(),
            service: service.to_string(),
            tls,
        })
    }
}

/// Servers that get whole connections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TcpService {
    /// The servers (weighted round robin; `reported` health is honoured).
    pub servers: Vec<Server>,
    /// A PROXY header of this version goes to the server first, carrying the client's
    /// address (Træfik's `loadBalancer.proxyProtocol.version`).
    pub proxy_protocol: Option<ProxyVersion>,
}

impl TcpRoutes {
    /// Check cross-references and values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, r) in &self.routers {
            let path = format!("tcp.routers.{name}");
            check_name(&path, name)?;
            if !self.services.contains_key(&r.service) {
                return Err(invalid(
                    format!("{path}.service"),
                    format!("unknown TCP service `{}`", r.service),
                ));
            }
            for ep in &r.entrypoints {
                check_name(&format!("{path}.entrypoints"), ep)?;
            }
            if r.tls == TlsMode::Off && r.rule.names_a_server() {
                return Err(invalid(
                    format!("{path}.rule"),
                    "HostSNI names a server, which only a TLS router sees: set tls \
                     (terminate) or tls passthrough, or use HostSNI(`*`)",
                ));
            }
        }
        for (name, s) in &self.services {
            let path = format!("tcp.services.{name}");
            check_name(&path, name)?;
            validate_servers(&path, &s.servers)?;
        }
        Ok(())
    }

    /// Add `other`'s routers and services; a name present in both is an error.
    pub fn merge(&mut self, other: TcpRoutes) -> Result<(), ConfigError> {
        if let Some(name) = other.routers.keys().find(|k| self.routers.contains_key(*k)) {
            return Err(invalid(format!("tcp.routers.{name}"), "defined twice"));
        }
        if let Some(name) = other
            .services
            .keys()
            .find(|k| self.services.contains_key(*k))
        {
            return Err(invalid(format!("tcp.services.{name}"), "defined twice"));
        }
        self.routers.extend(other.routers);
        self.services.extend(other.services);
        Ok(())
    }
}

/// The file's `[tcp]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TcpFile {
    #[serde(default)]
    entrypoints: BTreeMap<String, EntrypointFile>,
    #[serde(default)]
    routers: BTreeMap<String, TcpRouterFile>,
    #[serde(default)]
    services: BTreeMap<String, TcpServiceFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpRouterFile {
    rule: String,
    service: String,
    priority: Option<i64>,
    #[serde(default)]
    entrypoints: Vec<String>,
    tls: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpServiceFile {
    servers: Vec<TcpServerFile>,
    #[serde(rename = "proxyProtocol", alias = "proxy_protocol")]
    proxy_protocol: Option<ProxyProtocolFile>,
}

/// `proxyProtocol = { version = 1 }`; the version defaults to 2, as in Træfik.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyProtocolFile {
    version: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpServerFile {
    address: String,
    weight: Option<u32>,
}

impl TcpFile {
    /// The TCP entrypoints and routes; names must not clash with `http` entrypoints.
    pub(super) fn validate(
        self,
        http: &BTreeMap<String, Entrypoint>,
    ) -> Result<(BTreeMap<String, Entrypoint>, TcpRoutes), ConfigError> {
        let mut entrypoints = BTreeMap::new();
        for (name, ep) in self.entrypoints {
            let path = format!("tcp.entrypoints.{name}");
            if http.contains_key(&name) {
                return Err(invalid(path, "an HTTP entrypoint has this name"));
            }
            entrypoints.insert(name, ep.validate(&path)?);
        }
        let mut routes = TcpRoutes::default();
        for (name, s) in self.services {
            let path = format!("tcp.services.{name}");
            let mut servers = Vec::new();
            for (i, server) in s.servers.iter().enumerate() {
                let addr: SocketAddr = server.address.trim().parse().map_err(|_| {
                    invalid(
                        format!("{path}.servers[{i}].address"),
                        format!(
                            "`{}` is not IP:PORT (names are not resolved)",
                            server.address
                        ),
                    )
                })?;
                servers.push(Server::new(addr, server.weight.unwrap_or(1)));
            }
            let proxy_protocol = match s.proxy_protocol {
                Some(p) => Some(
                    ProxyVersion::try_from(p.version.unwrap_or(2))
                        .map_err(|m| invalid(format!("{path}.proxyProtocol.version"), m))?,
                ),
                None => None,
            };
            routes.services.insert(
                name,
                TcpService {
                    servers,
                    proxy_protocol,
                },
            );
        }
        for (name, r) in self.routers {
            let path = format!("tcp.routers.{name}");
            let tls = file_tls(&format!("{path}.tls"), r.tls.as_ref())?;
            let mut router = TcpRouter::new(&r.rule, &r.service, tls)
                .map_err(|e| invalid(format!("{path}.rule"), e.to_string()))?;
            if let Some(p) = r.priority {
                router.priority = p;
            }
            for ep in &r.entrypoints {
                if !entrypoints.contains_key(ep) {
                    return Err(invalid(
                        format!("{path}.entrypoints"),
                        format!("unknown TCP entrypoint `{ep}`"),
                    ));
                }
            }
            router.entrypoints = r.entrypoints;
            if tls == TlsMode::Terminate {
                let mut serving = entrypoints.iter().filter(|(n, _)| {
                    router.entrypoints.is_empty() || router.entrypoints.contains(n)
                });
                if !serving.any(|(_, ep)| !ep.certificates.is_empty()) {
                    return Err(invalid(
                        format!("{path}.tls"),
                        "terminating TLS needs certificates on one of the router's TCP entrypoints",
                    ));
                }
            }
            routes.routers.insert(name, router);
        }
        routes.validate()?;
        Ok((entrypoints, routes))
    }
}

/// `tls = true`, `tls = false`, `tls = { passthrough = true }` or `tls = {}`.
fn file_tls(path: &str, value: Option<&toml::Value>) -> Result<TlsMode, ConfigError> {
    match value {
        None | Some(toml::Value::Boolean(false)) => Ok(TlsMode::Off),
        Some(toml::Value::Boolean(true)) => Ok(TlsMode::Terminate),
        Some(toml::Value::Table(t)) => {
            let mut mode = TlsMode::Terminate;
            for (key, v) in t {
                match (key.as_str(), v) {
                    ("passthrough", toml::Value::Boolean(true)) => mode = TlsMode::Passthrough,
                    ("passthrough", toml::Value::Boolean(false)) => {}
                    ("passthrough", _) => {
                        return Err(invalid(
                            format!("{path}.passthrough"),
                            "must be true or false",
                        ))
                    }
                    (other, _) => {
                        return Err(invalid(
                            format!("{path}.{other}"),
                            "unknown TLS setting (TCP routers take passthrough; certificates \
                             belong to the TCP entrypoint)",
                        ))
                    }
                }
            }
            Ok(mode)
        }
        Some(_) => Err(invalid(
            path,
            "expected true, false or a table like { passthrough = true }",
        )),
    }
}

mod labels;

pub(super) use labels::{from_labels, TcpLabels};

#[cfg(test)]
mod tests;
