//! Routes from Docker, as Træfik v3's Docker and Swarm providers build them: standalone
//! containers and Swarm services, their labels in Træfik's spelling (shoal's too) or
//! docker-flow-proxy's ([`super::dfproxy`]). Pure: the caller lists the workloads (see
//! the root crate's `docker::provider`), this turns them into [`Routes`].
//!
//! ```text
//!  Workload (container or Swarm service: name, labels, exposed ports, instances)
//!    │ com.df.notify=true ─▶ dfproxy::translate ─▶ more traefik.* labels
//!    │ traefik.enable / exposedByDefault; running and healthy instances only
//!    │ backend address: traefik.docker.network, else a network this proxy is on,
//!    │                  else the only one
//!    │ defaults: service named after the workload, port (label, else the lowest
//!    │           exposed one), router with the default rule, lone service bound
//!    ▼
//!  labels::from_labels ─▶ Routes named <r>@docker / <r>@swarm
//!    ▼
//!  merge over all workloads: the same router twice must be identical, the same service
//!  twice joins its servers; a conflict drops the name (as Træfik does)
//! ```
//! A workload whose labels are wrong yields no routes and a [`Problem`] naming it and
//! the label; the others are not affected.

mod defaults;
mod merge;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

pub use defaults::{normalize, DefaultRule, DEFAULT_RULE};
pub use merge::combine;

use super::labels::from_labels;
use super::{dfproxy, Routes};
use defaults::{declared, default_port, drop_router, names, router_key, service_key};

/// Where a workload comes from, which names its routes' namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A standalone container: routes `<name>@docker`.
    Container,
    /// A Swarm service (its labels are the service's, not its containers'): routes
    /// `<name>@swarm`.
    SwarmService,
}

impl Kind {
    /// The suffix of its routers' and services' names.
    pub fn provider(self) -> &'static str {
        match self {
            Kind::Container => "docker",
            Kind::SwarmService => "swarm",
        }
    }
}

/// A container's HEALTHCHECK state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// No healthcheck: traffic flows.
    #[default]
    None,
    /// Not yet passed: no traffic.
    Starting,
    /// Passing: traffic flows.
    Healthy,
    /// Failing: no traffic.
    Unhealthy,
}

impl Health {
    /// From Docker's `State.Health.Status` (absent or `none`: no healthcheck); a state
    /// Docker may add later counts as not healthy.
    pub fn from_docker(status: Option<&str>) -> Health {
        match status {
            None | Some("") | Some("none") => Health::None,
            Some("healthy") => Health::Healthy,
            Some("unhealthy") => Health::Unhealthy,
            Some(_) => Health::Starting,
        }
    }

    /// Whether a container in this state gets traffic.
    pub fn admits(self) -> bool {
        matches!(self, Health::None | Health::Healthy)
    }
}

/// One container of a workload (a Swarm service has one per task).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    /// Its address on each network, by network name (none where it has none).
    pub addresses: BTreeMap<String, Option<IpAddr>>,
    /// It shares the host's network (`--network host`): reached on 127.0.0.1.
    pub host_network: bool,
    /// It runs (a Swarm task: its state is `running`).
    pub running: bool,
    /// Its healthcheck state.
    pub health: Health,
}

/// A standalone container or a Swarm service, as the provider sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Container or Swarm service.
    pub kind: Kind,
    /// Docker's ID (orders workloads of the same name).
    pub id: String,
    /// The container's name without Docker's leading `/`, or the Swarm service's name.
    pub name: String,
    /// Its labels (a Swarm service's own labels, `Spec.Labels`).
    pub labels: BTreeMap<String, String>,
    /// Its exposed TCP ports (`EXPOSE`, `--expose`, `-p`).
    pub exposed_ports: Vec<u16>,
    /// Its containers.
    pub instances: Vec<Instance>,
    /// A Swarm service's virtual IPs by network name (used with `lbswarm=true`).
    pub virtual_ips: BTreeMap<String, IpAddr>,
}

impl Workload {
    /// "container NAME" or "Swarm service NAME", for messages.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Container => format!("container {}", self.name),
            Kind::SwarmService => format!("Swarm service {}", self.name),
        }
    }

    /// Træfik's service name: compose's `SERVICE_PROJECT` when both labels are there,
    /// else the name; normalized.
    pub fn service_name(&self) -> String {
        let get = |k: &str| self.labels.get(k).filter(|v| !v.is_empty());
        match (
            get("com.docker.compose.service"),
            get("com.docker.compose.project"),
        ) {
            (Some(s), Some(p)) => normalize(&format!("{s}_{p}")),
            _ => normalize(&self.name),
        }
    }
}

/// The provider's settings (Træfik's `providers.docker.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSettings {
    /// Route workloads without `traefik.enable=true` too.
    pub exposed_by_default: bool,
    /// The network to reach workloads on unless their labels say (`providers.docker.network`).
    pub network: Option<String>,
    /// The rule of a router that has none.
    pub default_rule: DefaultRule,
    /// The networks this proxy has an address on: a workload on one of them is
    /// reached there.
    pub local_networks: Vec<IpNet>,
}

impl Default for DockerSettings {
    fn default() -> Self {
        DockerSettings {
            exposed_by_default: true,
            network: None,
            default_rule: DefaultRule::default(),
            local_networks: Vec::new(),
        }
    }
}

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Routes were made, maybe not as the labels meant.
    Warning,
    /// Routes (of a workload, or a router or service) were left out.
    Error,
}

/// Something wrong with one workload's labels or networks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Warning or error.
    pub severity: Severity,
    /// "container NAME" or "Swarm service NAME".
    pub workload: String,
    /// What is wrong, naming the label.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.workload, self.message)
    }
}

/// Routes from Docker and what was wrong on the way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DockerRoutes {
    /// The routes, validated.
    pub routes: Routes,
    /// Problems, by workload.
    pub problems: Vec<Problem>,
}

/// The routes of `workloads`.
pub fn build(workloads: &[Workload], settings: &DockerSettings) -> DockerRoutes {
    let mut sorted: Vec<&Workload> = workloads.iter().collect();
    sorted.sort_by(|a, b| (a.kind, &a.name, &a.id).cmp(&(b.kind, &b.name, &b.id)));
    let mut problems = Vec::new();
    let mut merged = merge::Merged::default();
    for w in sorted {
        let mut report = Report {
            workload: w.describe(),
            problems: &mut problems,
        };
        match workload_routes(w, settings, &mut report) {
            Ok(Some(routes)) => merged.add(&w.describe(), routes, &mut problems),
            Ok(None) => {}
            Err(message) => report.error(message),
        }
    }
    let routes = merged.finish(&mut problems);
    problems.sort();
    problems.dedup();
    DockerRoutes { routes, problems }
}

/// Collects the problems of one workload.
struct Report<'a> {
    workload: String,
    problems: &'a mut Vec<Problem>,
}

impl Report<'_> {
    fn push(&mut self, severity: Severity, message: String) {
        self.problems.push(Problem {
            severity,
            workload: self.workload.clone(),
            message,
        });
    }

    fn warn(&mut self, message: String) {
        self.push(Severity::Warning, message);
    }

    fn error(&mut self, message: String) {
        self.push(Severity::Error, message);
    }
}

/// Go's `strconv.ParseBool`, which Træfik's labels use.
fn parse_go_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("label {key}: `{other}` is not true or false")),
    }
}

/// Provider labels: `traefik.enable` and `traefik.docker.*`/`traefik.swarm.*`.
#[derive(Debug, Default)]
struct ProviderLabels {
    enable: Option<bool>,
    network: Option<String>,
    lbswarm: bool,
}

fn provider_labels(
    labels: &BTreeMap<String, String>,
    kind: Kind,
) -> Result<ProviderLabels, String> {
    let mut p = ProviderLabels::default();
    let (mut docker, mut swarm) = (false, false);
    for (key, value) in labels {
        let Some(rest) = key
            .strip_prefix("traefik.")
            .or_else(|| key.strip_prefix("shoal."))
        else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let field = if let Some(f) = rest.strip_prefix("docker.") {
            docker = true;
            f
        } else if let Some(f) = rest.strip_prefix("swarm.") {
            swarm = true;
            f
        } else {
            if rest == "enable" {
                p.enable = Some(parse_go_bool(key, value)?);
            }
            continue;
        };
        match field {
            "network" => p.network = Some(value.trim().to_string()),
            "lbswarm" => p.lbswarm = parse_go_bool(key, value)?,
            "allownonrunning" => {
                parse_go_bool(key, value)?;
            }
            _ => return Err(format!("label {key}: unknown provider setting")),
        }
        if swarm && kind == Kind::Container {
            return Err(format!(
                "label {key}: traefik.swarm.* labels belong on Swarm services; a container takes traefik.docker.*"
            ));
        }
    }
    if docker && swarm {
        return Err("both traefik.docker.* and traefik.swarm.* labels are set; keep one".into());
    }
    if p.network.as_deref() == Some("") {
        return Err("label traefik.docker.network: empty network name".into());
    }
    Ok(p)
}

/// Labels with docker-flow-proxy's translated in, when `com.df.notify` is true.
fn with_df_labels(w: &Workload) -> Result<(BTreeMap<String, String>, bool), String> {
    let mut labels = w.labels.clone();
    if !dfproxy::notified(&labels).map_err(|e| e.to_string())? {
        return Ok((labels, false));
    }
    let df = dfproxy::translate(&w.service_name(), &labels).map_err(|e| e.to_string())?;
    for (k, v) in df {
        match labels.get(&k) {
            Some(old) if *old != v => {
                return Err(format!(
                    "label {k}={old} conflicts with {v} from the com.df.* labels"
                ))
            }
            _ => {
                labels.insert(k, v);
            }
        }
    }
    Ok((labels, true))
}

fn workload_routes(
    w: &Workload,
    s: &DockerSettings,
    report: &mut Report<'_>,
) -> Result<Option<Routes>, String> {
    let (mut labels, df) = with_df_labels(w)?;
    let p = provider_labels(&labels, w.kind)?;
    if !p.enable.unwrap_or(s.exposed_by_default || df) {
        return Ok(None);
    }
    labels.retain(|k, _| !matches!(k.as_str(), "traefik.enable" | "shoal.enable"));
    let network = p.network.as_deref().or(s.network.as_deref());
    let backends = if p.lbswarm && w.kind == Kind::SwarmService {
        vec![virtual_ip(w, network, &s.local_networks)?]
    } else {
        let mut ips = Vec::new();
        for i in w
            .instances
            .iter()
            .filter(|i| i.running && i.health.admits())
        {
            match address(i, network, &s.local_networks) {
                Ok((ip, warning)) => {
                    if let Some(m) = warning {
                        report.warn(m);
                    }
                    ips.push(ip);
                }
                // A task without an address is skipped, as Træfik's Swarm provider does.
                Err(m) if w.kind == Kind::SwarmService => report.warn(m),
                Err(m) => return Err(m),
            }
        }
        ips
    };
    if backends.is_empty() {
        return Ok(None);
    }
    let overrides = apply_defaults(&mut labels, w, s, report)?;
    let provider = w.kind.provider();
    let mut routes = from_labels(provider, &labels, &backends).map_err(|e| e.to_string())?;
    for (router, service) in overrides {
        if let Some(r) = routes.routers.get_mut(&format!("{router}@{provider}")) {
            r.service = service;
        }
    }
    Ok(Some(routes))
}

/// The address of `i`: on `wanted` if it is there, else on a network this proxy is on,
/// else on its only network; with a warning when the choice was a guess.
fn address(
    i: &Instance,
    wanted: Option<&str>,
    local: &[IpNet],
) -> Result<(IpAddr, Option<String>), String> {
    if i.host_network {
        return Ok((IpAddr::V4(Ipv4Addr::LOCALHOST), None));
    }
    let with_ip: Vec<(&String, IpAddr)> = i
        .addresses
        .iter()
        .filter_map(|(n, ip)| Some((n, (*ip)?)))
        .collect();
    let mut note = String::new();
    if let Some(w) = wanted {
        if let Some((_, ip)) = with_ip.iter().find(|(n, _)| n.as_str() == w) {
            return Ok((*ip, None));
        }
        note = format!("it has no address on network `{w}` (traefik.docker.network); ");
    }
    let networks = with_ip
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(&(first, first_ip)) = with_ip.first() else {
        return Err(format!("{note}it has no address on any network"));
    };
    let shared = with_ip
        .iter()
        .find(|(_, ip)| local.iter().any(|n| n.contains(ip)));
    let (name, ip, guessed) = match shared {
        Some(&(n, ip)) => (n, ip, false),
        None => (first, first_ip, with_ip.len() > 1),
    };
    let warning = (!note.is_empty() || guessed).then(|| {
        format!(
            "{note}it is on {networks}{}; using `{name}`: name one with traefik.docker.network",
            if guessed {
                ", none of them shared with this proxy"
            } else {
                ""
            }
        )
    });
    Ok((ip, warning))
}

/// A Swarm service's virtual IP on the network chosen as for tasks.
fn virtual_ip(w: &Workload, wanted: Option<&str>, local: &[IpNet]) -> Result<IpAddr, String> {
    let vip = Instance {
        addresses: w
            .virtual_ips
            .iter()
            .map(|(n, ip)| (n.clone(), Some(*ip)))
            .collect(),
        running: true,
        ..Default::default()
    };
    address(&vip, wanted, local)
        .map(|(ip, _)| ip)
        .map_err(|m| format!("lbswarm=true but the service has no virtual IP: {m}"))
}

/// Fills in what Træfik's providers fill in (see [`defaults`]); returns the routers
/// whose service lives outside this workload, with that service's full name.
fn apply_defaults(
    labels: &mut BTreeMap<String, String>,
    w: &Workload,
    s: &DockerSettings,
    report: &mut Report<'_>,
) -> Result<Vec<(String, String)>, String> {
    let d = declared(labels);
    if d.tcp_or_udp && !d.http {
        return Ok(Vec::new());
    }
    let name = w.service_name();
    let mut services: std::collections::BTreeSet<String> = d.services.keys().cloned().collect();
    if services.is_empty() {
        services.insert(name.clone());
    }
    for svc in &services {
        if !d.services.get(svc).copied().unwrap_or(false) {
            let key = service_key(svc, "loadbalancer.server.port");
            let port = default_port(&w.exposed_ports).ok_or_else(|| {
                format!("service `{svc}` has no port: set label {key} (or com.df.port), or expose a port")
            })?;
            labels.insert(key, port.to_string());
        }
    }
    let mut routers = d.routers;
    if routers.is_empty() && services.len() == 1 {
        routers.insert(name.clone(), Default::default());
    }
    let mut overrides = Vec::new();
    for (router, seen) in &routers {
        if !seen.rule {
            let rule = s.default_rule.render(&name, &w.name, &w.labels);
            if rule.is_empty() {
                drop_router(labels, router);
                report.error(format!(
                    "router `{router}` has no rule and the default rule gives none: set label {}",
                    router_key(router, "rule")
                ));
                continue;
            }
            labels.insert(router_key(router, "rule"), rule);
        }
        match &seen.service {
            None if services.len() > 1 => {
                drop_router(labels, router);
                report.error(format!(
                    "router `{router}` cannot be bound to one of the services {}: set label {}",
                    names(&services),
                    router_key(router, "service")
                ));
            }
            Some((key, value)) if !services.contains(value) => {
                let target = elsewhere(value, w.kind).map_err(|m| format!("label {key}: {m}"))?;
                let local = services.iter().next().cloned().unwrap_or_default();
                labels.insert(key.clone(), local);
                overrides.push((router.clone(), target));
            }
            _ => {}
        }
    }
    Ok(overrides)
}

/// The full name of a service a router names that its own labels do not define:
/// another workload's (`NAME` or `NAME@docker`/`NAME@swarm`) or the file's (`NAME@file`).
fn elsewhere(value: &str, kind: Kind) -> Result<String, String> {
    match value.split_once('@') {
        None if !value.is_empty() => Ok(format!("{value}@{}", kind.provider())),
        Some((name, "docker" | "swarm")) if !name.is_empty() => Ok(value.to_string()),
        Some((name, "file")) if !name.is_empty() => Ok(name.to_string()),
        Some((_, other)) if !other.is_empty() && !matches!(other, "docker" | "swarm" | "file") => {
            Err(format!(
                "`{value}`: no provider `{other}` in shoal (docker, swarm, file)"
            ))
        }
        _ => Err(format!("`{value}` is not a service name")),
    }
}

#[cfg(test)]
mod swarm_tests;
#[cfg(test)]
mod tests;
