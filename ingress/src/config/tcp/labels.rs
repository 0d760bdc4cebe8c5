//! TCP routers and services from `tcp.*` labels (see the table in [`super`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::{TcpRouter, TcpRoutes, TcpService, TlsMode};
use crate::config::labels::LabelError;
use crate::config::Server;
use crate::proxy_protocol::Version as ProxyVersion;

/// Labels after `tcp.`: `rest` (like `routers.db.rule`) → (label key, value).
pub(in crate::config) type TcpLabels = BTreeMap<String, (String, String)>;

fn label_err(key: &str, message: impl Into<String>) -> LabelError {
    LabelError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// The TCP routes of shoal service `service` from its `tcp.*` labels; servers are
/// `backends` on the service's port. Names get `@<service>` as HTTP ones do.
pub(in crate::config) fn from_labels(
    service: &str,
    labels: &TcpLabels,
    backends: &[IpAddr],
) -> Result<TcpRoutes, LabelError> {
    type Fields<'a> = BTreeMap<String, (&'a str, &'a str)>;
    let mut routers: BTreeMap<&str, Fields<'_>> = BTreeMap::new();
    let mut services: BTreeMap<&str, Fields<'_>> = BTreeMap::new();
    for (rest, (key, value)) in labels {
        let (table, tail) = if let Some(t) = rest.strip_prefix("routers.") {
            (&mut routers, t)
        } else if let Some(t) = rest.strip_prefix("services.") {
            (&mut services, t)
        } else if rest.starts_with("middlewares.") {
            return Err(label_err(key, "TCP middlewares are not supported"));
        } else {
            return Err(label_err(
                key,
                "unknown label (expected tcp.routers.… or tcp.services.…)",
            ));
        };
        let (name, field) = tail
            .split_once('.')
            .ok_or_else(|| label_err(key, "expected a name and a field after it"))?;
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
        if !ok {
            return Err(label_err(
                key,
                format!("`{name}` is not a valid name (letters, digits, `_-`)"),
            ));
        }
        table
            .entry(name)
            .or_default()
            .insert(field.to_ascii_lowercase(), (key, value));
    }
    let mut routes = TcpRoutes::default();
    for (name, fields) in &services {
        let (servers, proxy_protocol) = label_servers(fields, backends)?;
        routes.services.insert(
            format!("{name}@{service}"),
            TcpService {
                servers,
                proxy_protocol,
            },
        );
    }
    let only = (services.len() == 1)
        .then(|| services.keys().next())
        .flatten();
    for (name, fields) in &routers {
        let router = label_router(name, fields, only.copied(), &services)?;
        let router = TcpRouter {
            service: format!("{}@{service}", router.service),
            ..router
        };
        routes.routers.insert(format!("{name}@{service}"), router);
    }
    routes.validate()?;
    Ok(routes)
}

fn label_bool(key: &str, value: &str) -> Result<bool, LabelError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(label_err(key, format!("`{value}` is not true or false"))),
    }
}

fn label_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, LabelError> {
    value
        .trim()
        .parse()
        .map_err(|_| label_err(key, format!("`{value}` is not a valid number")))
}

/// One router's fields; its service is named as in the labels.
fn label_router<V>(
    name: &str,
    fields: &BTreeMap<String, (&str, &str)>,
    only_service: Option<&str>,
    services: &BTreeMap<&str, V>,
) -> Result<TcpRouter, LabelError> {
    // The label key up to the router's name, for errors about missing fields.
    let prefix = fields
        .iter()
        .next()
        .map_or(format!("tcp.routers.{name}"), |(field, (key, _))| {
            key[..key.len() - field.len() - 1].to_string()
        });
    let (rule_key, rule) = fields
        .get("rule")
        .copied()
        .ok_or_else(|| label_err(&format!("{prefix}.rule"), "a TCP router needs a rule"))?;
    let target = match fields.get("service") {
        Some((key, s)) => {
            if !services.contains_key(s.trim()) {
                return Err(label_err(
                    key,
                    format!("unknown TCP service `{}`", s.trim()),
                ));
            }
            s.trim().to_string()
        }
        None => only_service.map(str::to_string).ok_or_else(|| {
            label_err(
                &format!("{prefix}.service"),
                "name the TCP service (the labels define none or several)",
            )
        })?,
    };
    let mut tls = TlsMode::Off;
    let mut passthrough = false;
    let mut priority = None;
    let mut entrypoints = Vec::new();
    for (field, &(key, value)) in fields {
        match field.as_str() {
            "rule" | "service" => {}
            "entrypoints" => {
                entrypoints = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "priority" => priority = Some(label_num(key, value)?),
            "tls" => {
                if label_bool(key, value)? && tls == TlsMode::Off {
                    tls = TlsMode::Terminate;
                }
            }
            "tls.passthrough" => passthrough = label_bool(key, value)?,
            f if f.starts_with("tls.") => tls = TlsMode::Terminate,
            "middlewares" => return Err(label_err(key, "TCP middlewares are not supported")),
            "rulesyntax" if value.trim().eq_ignore_ascii_case("v3") => {}
            "rulesyntax" => return Err(label_err(key, "only Træfik v3 rule syntax is supported")),
            _ => return Err(label_err(key, "unknown TCP router setting")),
        }
    }
    if passthrough {
        tls = TlsMode::Passthrough;
    }
    let mut router =
        TcpRouter::new(rule, &target, tls).map_err(|e| label_err(rule_key, e.to_string()))?;
    if let Some(p) = priority {
        router.priority = p;
    }
    router.entrypoints = entrypoints;
    Ok(router)
}

/// A service's servers (every backend on the `loadbalancer.server.port`) and the PROXY
/// protocol version it sends them.
fn label_servers(
    fields: &BTreeMap<String, (&str, &str)>,
    backends: &[IpAddr],
) -> Result<(Vec<Server>, Option<ProxyVersion>), LabelError> {
    let mut port = None;
    let mut weight = 1;
    let mut proxy_protocol = None;
    for (field, &(key, value)) in fields {
        match field.as_str() {
            "loadbalancer.server.port" => {
                let p: u16 = label_num(key, value)?;
                if p == 0 {
                    return Err(label_err(key, "port 0"));
                }
                port = Some(p);
            }
            "loadbalancer.server.weight" => weight = label_num(key, value)?,
            "loadbalancer.proxyprotocol.version" => {
                let n: u64 = label_num(key, value)?;
                proxy_protocol = Some(ProxyVersion::try_from(n).map_err(|m| label_err(key, m))?);
            }
            // Træfik's `allowEmpty`: the option alone means its defaults (version 2).
            "loadbalancer.proxyprotocol" => {
                if !value.trim().is_empty() && !label_bool(key, value)? {
                    return Err(label_err(
                        key,
                        "to send no PROXY header, leave the label out",
                    ));
                }
                proxy_protocol = proxy_protocol.or(Some(ProxyVersion::V2));
            }
            "loadbalancer.serverstransport" => {
                return Err(label_err(key, "servers transports are not supported"))
            }
            "loadbalancer.terminationdelay" => {
                return Err(label_err(key, "termination delays are not supported"))
            }
            _ => return Err(label_err(key, "unknown TCP service setting")),
        }
    }
    let port = port.ok_or_else(|| {
        let key = fields.values().next().map_or("", |(k, _)| *k);
        label_err(key, "a TCP service needs loadbalancer.server.port")
    })?;
    let servers = backends
        .iter()
        .map(|ip| Server::new(SocketAddr::new(*ip, port), weight))
        .collect();
    Ok((servers, proxy_protocol))
}
