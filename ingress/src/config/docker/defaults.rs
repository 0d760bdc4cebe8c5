//! What Træfik's Docker and Swarm providers fill in when labels leave it out: the
//! service named after the workload, its port, a router with the default rule, the
//! binding of routers without a service. Done by adding and rewriting labels, so that
//! one parser ([`super::super::labels::from_labels`]) reads every label source.

use std::collections::{BTreeMap, BTreeSet};

/// Træfik's `normalize`: every run of characters that are neither letters nor digits
/// becomes one `-`, and none is left at either end (`/my_app.1` → `my-app-1`).
pub fn normalize(name: &str) -> String {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// One piece of a default rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// `.Name` (the service name: compose `service_project`, the container's or the
    /// Swarm service's name), normalized or not.
    Name {
        normalized: bool,
    },
    /// `.ContainerName` (without Docker's leading `/`), normalized or not.
    ContainerName {
        normalized: bool,
    },
    /// `index .Labels "KEY"`.
    Label(String),
}

/// Træfik's `defaultRule`, a Go template; the few expressions people use are
/// understood without a template engine: `{{ .Name }}`, `{{ normalize .Name }}`,
/// `{{ .ContainerName }}`, `{{ normalize .ContainerName }}` and
/// `{{ index .Labels "KEY" }}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRule {
    parts: Vec<Part>,
}

/// Træfik's default `defaultRule`.
pub const DEFAULT_RULE: &str = "Host(`{{ normalize .Name }}`)";

impl Default for DefaultRule {
    fn default() -> Self {
        DefaultRule::parse(DEFAULT_RULE).expect("the default rule parses")
    }
}

impl DefaultRule {
    /// Reads a template; an expression outside the supported few is an error that
    /// lists them.
    pub fn parse(template: &str) -> Result<DefaultRule, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find("}}")
                .ok_or_else(|| format!("default rule {template:?}: `{{{{` without `}}}}`"))?;
            let expr = rest[open + 2..open + close].trim();
            parts.push(expression(expr).ok_or_else(|| {
                format!(
                    "default rule {template:?}: `{{{{ {expr} }}}}` is not supported; use \
                     .Name, normalize .Name, .ContainerName, normalize .ContainerName or \
                     index .Labels \"KEY\""
                )
            })?);
            rest = &rest[open + close + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("default rule {template:?}: `}}}}` without `{{{{`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(DefaultRule { parts })
    }

    /// The rule for a workload with service name `name`, container name `container`
    /// and `labels` (a missing label renders as nothing, as in Go's templates).
    pub fn render(&self, name: &str, container: &str, labels: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Name { normalized: true } => out.push_str(&normalize(name)),
                Part::Name { normalized: false } => out.push_str(name),
                Part::ContainerName { normalized: true } => out.push_str(&normalize(container)),
                Part::ContainerName { normalized: false } => out.push_str(container),
                Part::Label(k) => out.push_str(labels.get(k).map_or("", String::as_str)),
            }
        }
        out
    }
}

fn expression(expr: &str) -> Option<Part> {
    let words: Vec<&str> = expr.split_whitespace().collect();
    match words.as_slice() {
        [".Name"] => Some(Part::Name { normalized: false }),
        ["normalize", ".Name"] => Some(Part::Name { normalized: true }),
        [".ContainerName"] => Some(Part::ContainerName { normalized: false }),
        ["normalize", ".ContainerName"] => Some(Part::ContainerName { normalized: true }),
        ["index", ".Labels", key] => {
            let key = key.strip_prefix('"')?.strip_suffix('"')?;
            (!key.is_empty() && !key.contains('"')).then(|| Part::Label(key.to_string()))
        }
        _ => None,
    }
}

/// A label key split after `traefik.` or `shoal.`: `http.routers.<name>.<field>`.
struct Key<'a> {
    /// `http`, `tcp`, `udp`, or another first word.
    protocol: &'a str,
    /// `routers`, `services`, `middlewares`…
    kind: &'a str,
    name: &'a str,
    field: &'a str,
}

fn split(key: &str) -> Option<Key<'_>> {
    let rest = key
        .strip_prefix("traefik.")
        .or_else(|| key.strip_prefix("shoal."))?;
    let mut it = rest.splitn(4, '.');
    Some(Key {
        protocol: it.next()?,
        kind: it.next().unwrap_or(""),
        name: it.next().unwrap_or(""),
        field: it.next().unwrap_or(""),
    })
}

/// What one workload's labels declare of HTTP routing.
#[derive(Debug, Default)]
pub struct Declared {
    /// Router names, each with the label naming its service if any.
    pub routers: BTreeMap<String, RouterSeen>,
    /// Service names, each with whether a label gives its port.
    pub services: BTreeMap<String, bool>,
    /// Any `http.` label (routers, services or middlewares).
    pub http: bool,
    /// Any `tcp.` or `udp.` label.
    pub tcp_or_udp: bool,
}

/// A router as its labels show it.
#[derive(Debug, Default)]
pub struct RouterSeen {
    /// Whether it has a rule.
    pub rule: bool,
    /// The key and value of its `service` label.
    pub service: Option<(String, String)>,
}

/// Reads the router and service names out of `labels`.
pub fn declared(labels: &BTreeMap<String, String>) -> Declared {
    let mut d = Declared::default();
    for (key, value) in labels {
        let Some(k) = split(key) else { continue };
        match (k.protocol, k.kind) {
            ("tcp" | "udp", _) => d.tcp_or_udp = true,
            ("http", "routers") if !k.name.is_empty() => {
                d.http = true;
                let r = d.routers.entry(k.name.to_string()).or_default();
                if k.field.eq_ignore_ascii_case("rule") {
                    r.rule = true;
                } else if k.field.eq_ignore_ascii_case("service") {
                    r.service = Some((key.clone(), value.trim().to_string()));
                }
            }
            ("http", "services") if !k.name.is_empty() => {
                d.http = true;
                let port = d.services.entry(k.name.to_string()).or_default();
                *port |= k.field.eq_ignore_ascii_case("loadbalancer.server.port");
            }
            ("http", _) => d.http = true,
            _ => {}
        }
    }
    d
}

/// Removes every label of router `name` (in both spellings).
pub fn drop_router(labels: &mut BTreeMap<String, String>, name: &str) {
    labels.retain(|key, _| {
        !split(key).is_some_and(|k| k.protocol == "http" && k.kind == "routers" && k.name == name)
    });
}

/// The label key of `field` of router `name`.
pub fn router_key(name: &str, field: &str) -> String {
    format!("traefik.http.routers.{name}.{field}")
}

/// The label key of `field` of service `name`.
pub fn service_key(name: &str, field: &str) -> String {
    format!("traefik.http.services.{name}.{field}")
}

/// The port Træfik takes when no label gives one: the lowest exposed port.
pub fn default_port(exposed: &[u16]) -> Option<u16> {
    exposed.iter().copied().min()
}

/// The names of `services`, for messages.
pub fn names(services: &BTreeSet<String>) -> String {
    services
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
