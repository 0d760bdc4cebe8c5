//! Checking a service spec against the state, as create and update both need: networks
//! and their options, ports, placement, resolver settings and the host name. The
//! result is the spec as the state keeps it (network names canonical, dynamic ports
//! given numbers).

use std::collections::{BTreeMap, BTreeSet};

use super::super::{
    hostname, ApplyError, ClusterState, NetworkOptions, Protocol, ServiceMode, ServiceSpec,
    IFNAME_OPT,
};
use super::network::{validate_dns_name, MAX_ALIASES};
use super::ports::{assign_dynamic, check_ports};
use super::validate_label;

/// The most replicas a service may ask for.
const MAX_REPLICAS: u32 = 1000;
/// The most upstream resolvers a service may name (what a resolv.conf holds).
const MAX_NAMESERVERS: usize = 3;
/// The most search domains and options.
const MAX_DNS_ITEMS: usize = 32;

fn invalid(why: String) -> ApplyError {
    ApplyError::Invalid(why)
}

/// Checks a service name: a DNS label.
pub(super) fn validate_service_name(name: &str) -> Result<(), ApplyError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(invalid(format!(
            "invalid service name {name:?}: it is a DNS name, so use 1-63 letters, digits, '-' or '_', starting with a letter or digit"
        )));
    }
    Ok(())
}

/// Checks `spec` for service `spec.name` and returns it as the state keeps it;
/// `next_port` is where dynamic port allocation continues (changed only on success).
pub(super) fn checked_spec(
    state: &ClusterState,
    spec: &ServiceSpec,
    next_port: &mut BTreeMap<Protocol, u16>,
) -> Result<ServiceSpec, ApplyError> {
    if let ServiceMode::Replicated { replicas } = spec.mode {
        if replicas > MAX_REPLICAS {
            return Err(invalid(format!(
                "at most {MAX_REPLICAS} replicas, not {replicas}"
            )));
        }
    }
    let mut networks = Vec::new();
    for n in &spec.networks {
        let net = state.find_network(n)?;
        if networks.contains(&net.name) {
            return Err(invalid(format!("network {} is given twice", net.name)));
        }
        networks.push(net.name.clone());
    }
    let network_options = checked_network_options(state, &networks, &spec.network_options)?;
    if !spec.publish.is_empty() && networks.is_empty() {
        return Err(invalid(
            "a service that publishes ports needs a network (--network)".into(),
        ));
    }
    let mut publish = spec.publish.clone();
    let mut cursor = next_port.clone();
    assign_dynamic(state, &spec.name, &mut publish, &mut cursor)?;
    check_ports(state, &spec.name, &publish, spec.endpoint_mode)?;
    for (k, v) in &spec.labels {
        validate_label(k, v)?;
    }
    if spec.command.len() > 256
        || spec
            .command
            .iter()
            .any(|a| a.len() > 4096 || a.contains('\0'))
    {
        return Err(invalid(
            "the command has too many or too long arguments".into(),
        ));
    }
    let placement = &spec.placement;
    if placement.max_replicas_per_node.is_some_and(|m| m > 0) && spec.mode == ServiceMode::Global {
        return Err(invalid(
            "replicas-max-per-node can only be used with replicated mode".into(),
        ));
    }
    if placement.constraints.len() > MAX_DNS_ITEMS || placement.preferences.len() > 8 {
        return Err(invalid(
            "at most 32 constraints and 8 placement preferences".into(),
        ));
    }
    check_dns(spec)?;
    check_health(spec)?;
    if let Some(h) = &spec.hostname {
        hostname::validate(h)?;
    }
    *next_port = cursor;
    let mut placement = placement.clone();
    if placement.max_replicas_per_node == Some(0) {
        placement.max_replicas_per_node = None;
    }
    Ok(ServiceSpec {
        networks,
        network_options,
        publish,
        placement,
        ..spec.clone()
    })
}

/// The per-network options keyed by canonical network names; each must be one of the
/// service's networks. Aliases are DNS names (lower-cased, as Docker's CLI does); the
/// only driver option is the interface name.
fn checked_network_options(
    state: &ClusterState,
    networks: &[String],
    given: &BTreeMap<String, NetworkOptions>,
) -> Result<BTreeMap<String, NetworkOptions>, ApplyError> {
    let mut out = BTreeMap::new();
    let mut ifnames = BTreeSet::new();
    for (reference, options) in given {
        let name = state.find_network(reference)?.name.clone();
        if !networks.contains(&name) {
            return Err(invalid(format!(
                "options are given for network {name}, which the service is not on"
            )));
        }
        if options.aliases.len() > MAX_ALIASES {
            return Err(invalid(format!(
                "at most {MAX_ALIASES} aliases on network {name}"
            )));
        }
        let mut aliases = Vec::new();
        for a in &options.aliases {
            validate_dns_name("alias", a)?;
            let a = a.to_ascii_lowercase();
            if !aliases.contains(&a) {
                aliases.push(a);
            }
        }
        for (k, v) in &options.driver_opts {
            if k != IFNAME_OPT {
                return Err(invalid(format!(
                    "network {name}: unknown driver option {k:?}; shoal's overlay knows {IFNAME_OPT}"
                )));
            }
            let ok = !v.is_empty()
                && v.len() <= 15
                && v != "."
                && v != ".."
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(invalid(format!(
                    "network {name}: {IFNAME_OPT}={v:?} is not an interface name (1-15 letters, digits, '-', '_' or '.')"
                )));
            }
            if !ifnames.insert(v.clone()) {
                return Err(invalid(format!(
                    "interface name {v:?} is given for two networks"
                )));
            }
        }
        if !aliases.is_empty() || !options.driver_opts.is_empty() {
            out.insert(
                name,
                NetworkOptions {
                    aliases,
                    driver_opts: options.driver_opts.clone(),
                },
            );
        }
    }
    Ok(out)
}

/// The most a duration option may be (ms): a day.
const MAX_DURATION_MS: u64 = 86_400_000;

/// `--health-*`, `--update-*` and `--stop-grace-period`.
fn check_health(spec: &ServiceSpec) -> Result<(), ApplyError> {
    let u = &spec.update_config;
    if u.delay_ms > MAX_DURATION_MS || u.monitor_ms > MAX_DURATION_MS {
        return Err(invalid(
            "--update-delay and --update-monitor are at most a day".into(),
        ));
    }
    if spec
        .stop_grace_period_ms
        .is_some_and(|g| g > MAX_DURATION_MS)
    {
        return Err(invalid("--stop-grace-period is at most a day".into()));
    }
    let Some(h) = &spec.healthcheck else {
        return Ok(());
    };
    if h.command.trim().is_empty() || h.command.len() > 4096 || h.command.contains('\0') {
        return Err(invalid(
            "--health-cmd is a shell command of 1-4096 characters".into(),
        ));
    }
    if h.interval_ms < 100 || h.timeout_ms < 100 {
        return Err(invalid(
            "--health-interval and --health-timeout are at least 100ms".into(),
        ));
    }
    if h.interval_ms > MAX_DURATION_MS
        || h.timeout_ms > MAX_DURATION_MS
        || h.start_period_ms > MAX_DURATION_MS
    {
        return Err(invalid("the --health-* durations are at most a day".into()));
    }
    if h.retries == 0 || h.retries > 100 {
        return Err(invalid("--health-retries is 1-100".into()));
    }
    Ok(())
}

/// `--dns`, `--dns-search`, `--dns-option`, with docker/cli's checks.
fn check_dns(spec: &ServiceSpec) -> Result<(), ApplyError> {
    let dns = &spec.dns;
    if dns.nameservers.len() > MAX_NAMESERVERS {
        return Err(invalid(format!(
            "at most {MAX_NAMESERVERS} --dns servers (a resolv.conf holds no more)"
        )));
    }
    if let Some(ip) = dns
        .nameservers
        .iter()
        .find(|ip| ip.is_unspecified() || ip.is_multicast())
    {
        return Err(invalid(format!(
            "--dns {ip}: IP address is not correctly formatted for a resolver"
        )));
    }
    if dns.search.len() > MAX_DNS_ITEMS || dns.options.len() > MAX_DNS_ITEMS {
        return Err(invalid(format!(
            "at most {MAX_DNS_ITEMS} search domains and {MAX_DNS_ITEMS} options"
        )));
    }
    for s in &dns.search {
        // "." (no search list) is allowed as in docker/cli's ValidateDNSSearch.
        if s != "." && validate_dns_name("search domain", s.trim_end_matches('.')).is_err() {
            return Err(invalid(format!(
                "--dns-search {s}: {s} is not a valid domain"
            )));
        }
    }
    for o in &dns.options {
        if o.is_empty() || o.len() > 256 || o.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(format!(
                "--dns-option {o:?}: an option is one word, such as ndots:2 or rotate"
            )));
        }
    }
    Ok(())
}
