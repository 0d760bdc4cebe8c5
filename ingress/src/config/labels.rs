//! Routes from service labels, in shoal's spelling (`shoal.…`) or Træfik's (`traefik.…`).
//!
//! Routers (`<r>`) and services (`<s>`) are named by the labels; in the resulting
//! [`Routes`] they become `<r>@<service>` and `<s>@<service>` so several shoal services
//! can be merged with [`Routes::merge`] without clashes.
//!
//! | key (after `shoal.` or `traefik.`)                   | meaning |
//! | ---------------------------------------------------- | ------- |
//! | `enable=false`                                       | no routes at all |
//! | `http.routers.<r>.rule`                              | Træfik v3 rule (required) |
//! | `http.routers.<r>.entrypoints=web,websecure`         | default: all entrypoints |
//! | `http.routers.<r>.priority=10`                       | default: rule length |
//! | `http.routers.<r>.service=<s>`                       | default: the only service, else one named after the shoal service |
//! | `http.routers.<r>.tls=true`                          | only requests over TLS; `tls.certresolver`, `tls.options`, `tls.domains…` imply it and are otherwise ignored |
//! | `http.routers.<r>.retry.on=5xx,reset,409`            | `5xx`, `gateway-error`, `reset`, `connect-failure`, status codes |
//! | `http.routers.<r>.retry.attempts=3`                  | total tries (Træfik's meaning) |
//! | `http.routers.<r>.retry.num_retries=2`               | retries after the first try (Envoy's meaning) |
//! | `http.routers.<r>.retry.per_try_timeout=2s`, `.retry.timeout=15s` | timeouts |
//! | `http.routers.<r>.retry.methods=POST,PATCH`          | opt non-idempotent methods in |
//! | `http.services.<s>.loadbalancer.server.port=8080`    | default 80 |
//! | `http.services.<s>.loadbalancer.server.scheme=h2c`   | `http` (default) or `h2c` |
//! | `http.services.<s>.loadbalancer.server.weight=2`     | weight of every task |
//! | `http.services.<s>.loadbalancer.strategy=p2c`        | `wrr` (default) or `p2c` |
//! | `http.services.<s>.loadbalancer.sticky.cookie=true`  | sticky, cookie named `shoal_sticky` |
//! | `http.services.<s>.loadbalancer.sticky.cookie.name=x`| sticky with cookie `x` |
//! | `http.services.<s>.retry.*`                          | service default retry policy, keys as for routers |
//! | `http.services.<s>.retry_budget.percent=20`, `.min_concurrency=3`, `.disabled=true` | retry budget (none unless set, as Envoy's: retries are capped by `max_retries`) |
//! | `http.services.<s>.circuitbreaker.max_connections`, `.max_pending_requests`, `.max_requests`, `.max_retries` | breaker |
//! | `http.services.<s>.loadbalancer.healthcheck.path=/health`, `.interval`, `.timeout`, … | active health check (see [`super::health`]) |
//! | `http.services.<s>.outlier.consecutive_5xx`, `.consecutive_gateway_failure`, `.interval`, `.base_ejection_time`, `.max_ejection_time`, `.max_ejection_percent`, `.panic_threshold_percent` | outlier detection |
//! | `tcp.routers.<r>.…`, `tcp.services.<s>.…`            | TCP routers and services (see [`super::tcp`]) |
//! | `http.middlewares.<m>.<type>.<option>=…`              | a Træfik middleware (see [`super::middlewares`]); named `<m>@<service>` |
//! | `http.routers.<r>.middlewares=a,b@file,c@docker`     | middlewares run for the router, in order |
//!
//! Labels outside `shoal.`/`traefik.` are ignored, as are Træfik's provider settings
//! (`traefik.docker.…`, `traefik.swarm.…`). Anything else unknown is an error, in
//! particular an unknown middleware type or option: silently dropping an auth
//! middleware would expose a service.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::file::{parse_protocol, BreakerFile, OutlierFile};
use super::middlewares::{MiddlewareConfig, Opts};
use super::tcp::TcpLabels;
use super::{ConfigError, HealthCheckSpec, RetrySpec, Router, Routes, Server, Service};
use crate::retry::RetryBudget;

/// Service fields of the active health check (see [`super::health`]).
const HEALTH_CHECK: &str = "loadbalancer.healthcheck.";

/// The default sticky cookie name when `sticky.cookie=true`.
pub const DEFAULT_STICKY_COOKIE: &str = "shoal_sticky";

/// A label that cannot be turned into routes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label {key}: {message}")]
#[non_exhaustive]
pub struct LabelError {
    /// The label key (or key prefix) at fault.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn label_err(key: &str, message: impl Into<String>) -> LabelError {
    LabelError {
        key: key.to_string(),
        message: message.into(),
    }
}

impl From<ConfigError> for LabelError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid { path, message } => LabelError { key: path, message },
            other => label_err("", other.to_string()),
        }
    }
}

/// One label: its original key and value.
#[derive(Debug, Clone)]
struct Label {
    key: String,
    value: String,
}

/// Fields of one router or service, by the key suffix after its name.
type Fields = BTreeMap<String, Label>;

/// Build the routes of shoal service `service` from its labels; `backends` are the
/// addresses of its tasks.
pub fn from_labels(
    service: &str,
    labels: &BTreeMap<String, String>,
    backends: &[IpAddr],
) -> Result<Routes, LabelError> {
    let normalized = normalize(labels)?;
    if let Some(enable) = normalized.get("enable") {
        if !parse_bool(enable)? {
            return Ok(Routes::default());
        }
    }
    let mut routers: BTreeMap<String, Fields> = BTreeMap::new();
    let mut services: BTreeMap<String, Fields> = BTreeMap::new();
    let mut middlewares: BTreeMap<String, Opts> = BTreeMap::new();
    let mut tcp = TcpLabels::new();
    for (rest, label) in &normalized {
        if rest == "enable" || rest.starts_with("docker.") || rest.starts_with("swarm.") {
            continue;
        }
        if let Some(tail) = rest.strip_prefix("tcp.") {
            tcp.insert(tail.to_string(), (label.key.clone(), label.value.clone()));
            continue;
        }
        if let Some(tail) = rest.strip_prefix("http.middlewares.") {
            middleware_label(&mut middlewares, label, rest, tail)?;
            continue;
        }
        let (table, tail) = if let Some(t) = rest.strip_prefix("http.routers.") {
            (&mut routers, t)
        } else if let Some(t) = rest.strip_prefix("http.services.") {
            (&mut services, t)
        } else {
            return Err(label_err(
                &label.key,
                "unknown label (expected http.routers.… or http.services.…)",
            ));
        };
        let (name, field) = tail
            .split_once('.')
            .ok_or_else(|| label_err(&label.key, "expected a name and a field after it"))?;
        check_label_name(&label.key, name, "name")?;
        table
            .entry(name.to_string())
            .or_default()
            .insert(field.to_string(), label.clone());
    }
    let mut routes = Routes {
        tcp: super::tcp::from_labels(service, &tcp, backends)?,
        ..Routes::default()
    };
    for (name, opts) in middlewares {
        let config = MiddlewareConfig::from_opts(opts)?;
        routes
            .middlewares
            .insert(format!("{name}@{service}"), config);
    }
    if routers.is_empty() {
        routes.check(false)?;
        return Ok(routes);
    }
    let only_service = (services.len() == 1)
        .then(|| services.keys().next().cloned())
        .flatten();
    for (name, fields) in &routers {
        let target = match fields.get("service") {
            Some(l) => {
                if !services.contains_key(&l.value) && l.value != service {
                    return Err(label_err(&l.key, format!("unknown service `{}`", l.value)));
                }
                l.value.clone()
            }
            None => only_service.clone().unwrap_or_else(|| service.to_string()),
        };
        let mut router = build_router(fields, &format!("{target}@{service}"))?;
        // A plain name is a middleware of these labels; another service's is named
        // with a provider (`auth@docker`) and found when the routes are merged.
        for m in &mut router.middlewares {
            if m.contains('@') {
                continue;
            }
            if !routes.middlewares.contains_key(&format!("{m}@{service}")) {
                let key = fields.get("middlewares").map_or("", |l| l.key.as_str());
                return Err(label_err(
                    key,
                    format!(
                        "unknown middleware `{m}` (define it with http.middlewares.{m}.<type>… \
                         or name another service's as {m}@docker)"
                    ),
                ));
            }
            *m = format!("{m}@{service}");
        }
        routes.routers.insert(format!("{name}@{service}"), router);
    }
    let mut wanted: Vec<String> = services.keys().cloned().collect();
    if routes
        .routers
        .values()
        .any(|r| r.service == format!("{service}@{service}"))
        && !services.contains_key(service)
    {
        wanted.push(service.to_string());
    }
    for name in wanted {
        let empty = Fields::new();
        let fields = services.get(&name).unwrap_or(&empty);
        routes.services.insert(
            format!("{name}@{service}"),
            build_service(fields, backends)?,
        );
    }
    routes.check(false)?;
    Ok(routes)
}

/// Put the label `…http.middlewares.<name>.<type>.<option…>` (`rest` after the
/// `shoal.`/`traefik.` prefix, `tail` after `http.middlewares.`) into its middleware's
/// options.
fn middleware_label(
    middlewares: &mut BTreeMap<String, Opts>,
    label: &Label,
    rest: &str,
    tail: &str,
) -> Result<(), LabelError> {
    let mut segments = tail.split('.');
    let name = segments.next().unwrap_or("");
    check_label_name(&label.key, name, "middleware name")?;
    let segments: Vec<&str> = segments.collect();
    if segments.is_empty() {
        return Err(label_err(
            &label.key,
            "expected a middleware type after the name, like stripprefix",
        ));
    }
    // Paths in errors are the label keys as written.
    let prefix_len = label.key.len() - rest.len() + "http.middlewares.".len() + name.len();
    let root = &label.key[..prefix_len];
    let opts = middlewares
        .entry(name.to_string())
        .or_insert_with(|| Opts::new(root));
    opts.insert_path(&segments, label.value.clone())?;
    Ok(())
}

/// A router, service or middleware name in a label: letters, digits, `_-`.
fn check_label_name(key: &str, name: &str, what: &str) -> Result<(), LabelError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(label_err(
            key,
            format!("`{name}` is not a valid {what} (letters, digits, `_-`)"),
        ))
    }
}

/// Strip `shoal.`/`traefik.`; the same key in both spellings must agree.
fn normalize(labels: &BTreeMap<String, String>) -> Result<BTreeMap<String, Label>, LabelError> {
    let mut out: BTreeMap<String, Label> = BTreeMap::new();
    for (key, value) in labels {
        let Some(rest) = key
            .strip_prefix("shoal.")
            .or_else(|| key.strip_prefix("traefik."))
        else {
            continue;
        };
        let label = Label {
            key: key.clone(),
            value: value.trim().to_string(),
        };
        if let Some(prev) = out.get(rest) {
            if prev.value != label.value {
                return Err(label_err(
                    key,
                    format!("conflicts with {}={}", prev.key, prev.value),
                ));
            }
        }
        out.insert(rest.to_string(), label);
    }
    Ok(out)
}

fn parse_bool(l: &Label) -> Result<bool, LabelError> {
    match l.value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(label_err(
            &l.key,
            format!("`{}` is not true or false", l.value),
        )),
    }
}

fn parse_num<T: std::str::FromStr>(l: &Label) -> Result<T, LabelError> {
    l.value
        .parse()
        .map_err(|_| label_err(&l.key, format!("`{}` is not a valid number", l.value)))
}

fn list(l: &Label) -> Vec<String> {
    l.value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Collect `retry.*` fields into a spec; returns the error-path prefix too.
fn retry_spec(fields: &Fields, prefix: &str) -> Result<Option<(RetrySpec, String)>, LabelError> {
    let mut spec = RetrySpec::default();
    let mut path = None;
    for (field, l) in fields {
        let Some(key) = field.strip_prefix(&format!("{prefix}.")) else {
            continue;
        };
        path.get_or_insert_with(|| {
            l.key
                .rsplit_once('.')
                .map_or(l.key.clone(), |(p, _)| p.to_string())
        });
        match key {
            "on" => spec.on = Some(list(l)),
            "attempts" => spec.attempts = Some(parse_num(l)?),
            "num_retries" => spec.num_retries = Some(parse_num(l)?),
            "per_try_timeout" => spec.per_try_timeout = Some(l.value.clone()),
            "timeout" => spec.timeout = Some(l.value.clone()),
            "methods" => spec.methods = Some(list(l)),
            _ => return Err(label_err(&l.key, "unknown retry setting")),
        }
    }
    Ok(path.map(|p| (spec, p)))
}

fn build_router(fields: &Fields, service: &str) -> Result<Router, LabelError> {
    let rule = fields.get("rule").ok_or_else(|| {
        let any = fields
            .values()
            .next()
            .map_or(String::new(), |l| l.key.clone());
        let key = any
            .rsplit_once('.')
            .map_or(any.clone(), |(p, _)| p.to_string());
        label_err(&format!("{key}.rule"), "a router needs a rule")
    })?;
    let mut router =
        Router::new(&rule.value, service).map_err(|e| label_err(&rule.key, e.to_string()))?;
    for (field, l) in fields {
        match field.as_str() {
            "rule" | "service" => {}
            "entrypoints" => router.entrypoints = list(l),
            "priority" => router.priority = parse_num(l)?,
            "tls" => router.tls = parse_bool(l)?,
            f if f.starts_with("tls.") => router.tls = true,
            f if f.starts_with("retry.") => {}
            "middlewares" => {
                for m in list(l) {
                    super::middlewares::check_reference(&l.key, &m)?;
                    router.middlewares.push(m);
                }
            }
            _ => return Err(label_err(&l.key, "unknown router setting")),
        }
    }
    if let Some((spec, path)) = retry_spec(fields, "retry")? {
        router.retry = Some(spec.to_policy(&path)?);
    }
    Ok(router)
}

fn build_service(fields: &Fields, backends: &[IpAddr]) -> Result<Service, LabelError> {
    let mut port = 80u16;
    let mut weight = 1u32;
    let mut service = Service::new(Vec::new());
    let mut breaker = BreakerFile::default();
    let mut outlier = OutlierFile::default();
    let mut outlier_path = None;
    // As Envoy's: no retry budget unless one is configured (retries are then capped
    // by the breaker's max_retries).
    let mut budget = RetryBudget::default();
    let mut budget_enabled = None;
    let mut health: Vec<(&str, &str, &str)> = Vec::new();
    for (field, l) in fields {
        match field.as_str() {
            f if f.to_ascii_lowercase().starts_with(HEALTH_CHECK) => {
                health.push((&f[HEALTH_CHECK.len()..], &l.key, &l.value));
            }
            "loadbalancer.server.port" => {
                port = parse_num(l)?;
                if port == 0 {
                    return Err(label_err(&l.key, "port 0"));
                }
            }
            "loadbalancer.server.scheme" => {
                service.protocol = parse_protocol(&l.value).map_err(|m| label_err(&l.key, m))?
            }
            "loadbalancer.server.weight" => weight = parse_num(l)?,
            "loadbalancer.strategy" => {
                service.lb = l.value.parse().map_err(|m: String| label_err(&l.key, m))?
            }
            "loadbalancer.sticky.cookie" => {
                if parse_bool(l)? {
                    service
                        .sticky_cookie
                        .get_or_insert_with(|| DEFAULT_STICKY_COOKIE.into());
                }
            }
            "loadbalancer.sticky.cookie.name" => service.sticky_cookie = Some(l.value.clone()),
            "circuitbreaker.max_connections" => breaker.max_connections = Some(parse_num(l)?),
            "circuitbreaker.max_pending_requests" => {
                breaker.max_pending_requests = Some(parse_num(l)?)
            }
            "circuitbreaker.max_requests" => breaker.max_requests = Some(parse_num(l)?),
            "circuitbreaker.max_retries" => breaker.max_retries = Some(parse_num(l)?),
            "retry_budget.percent" => {
                budget.percent = parse_num(l)?;
                budget_enabled.get_or_insert(true);
            }
            "retry_budget.min_concurrency" => {
                budget.min_concurrency = parse_num(l)?;
                budget_enabled.get_or_insert(true);
            }
            "retry_budget.disabled" => budget_enabled = Some(!parse_bool(l)?),
            f if f.starts_with("retry.") => {}
            f if f.starts_with("outlier.") => {
                outlier_path.get_or_insert_with(|| {
                    l.key
                        .rsplit_once('.')
                        .map_or(String::new(), |(p, _)| p.to_string())
                });
                match &f["outlier.".len()..] {
                    "consecutive_5xx" => outlier.consecutive_5xx = Some(parse_num(l)?),
                    "consecutive_gateway_failure" => {
                        outlier.consecutive_gateway_failure = Some(parse_num(l)?)
                    }
                    "interval" => outlier.interval = Some(l.value.clone()),
                    "base_ejection_time" => outlier.base_ejection_time = Some(l.value.clone()),
                    "max_ejection_time" => outlier.max_ejection_time = Some(l.value.clone()),
                    "max_ejection_percent" => outlier.max_ejection_percent = Some(parse_num(l)?),
                    "panic_threshold_percent" => {
                        outlier.panic_threshold_percent = Some(parse_num(l)?)
                    }
                    _ => return Err(label_err(&l.key, "unknown outlier setting")),
                }
            }
            _ => return Err(label_err(&l.key, "unknown service setting")),
        }
    }
    if let Some((spec, path)) = retry_spec(fields, "retry")? {
        service.retry = spec.to_policy(&path)?;
    }
    service.breaker = breaker.to_thresholds();
    service.outlier = outlier.to_config(outlier_path.as_deref().unwrap_or("outlier"))?;
    service.retry_budget = budget_enabled.unwrap_or(false).then_some(budget);
    if let Some(&(option, key, _)) = health.first() {
        let prefix = &key[..key.len() - option.len() - 1];
        service.health_check = Some(HealthCheckSpec::from_labels(health)?.to_check(prefix)?);
    }
    service.servers = backends
        .iter()
        .map(|ip| Server::new(SocketAddr::new(*ip, port), weight))
        .collect();
    Ok(service)
}
