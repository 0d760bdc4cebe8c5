//! Service discovery DNS on this node: one resolver, listening on the gateway addresses
//! (IPv4, and IPv6 on dual-stack and IPv6-only networks) of every network the node carries, its record table rebuilt from the cluster state
//! on every change (so a change is answered well within a second of its commit).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use shoal_control::state::hostname::{self, TemplateContext};
use shoal_control::state::{ClusterState, Endpoint, EndpointMode};
use shoal_control::Member;
use shoal_dns::{RecordTable, Resolver, ResolverConfig};
use tokio_util::sync::CancellationToken;

use super::view::{backends, backends6};

/// The record table of the whole cluster state, with Docker's names: per network,
/// services (and their aliases) and `tasks.<service>`, sandbox names and aliases, and
/// every task under its container name (`<service>.<slot>.<task ID>`) and host name;
/// PTR records for sandbox and task addresses (`ip6.arpa` too); internal networks marked; a service's
/// `--dns` servers as its tasks' upstreams. On dual-stack networks the same names
/// carry the endpoints' IPv6 addresses too (AAAA), and a service's name its IPv6 VIP;
/// on IPv6-only ones they carry only those (an A query gets NODATA).
pub fn table(state: &ClusterState) -> RecordTable {
    let mut b = RecordTable::builder();
    let mut names: BTreeMap<(String, String), BTreeSet<Ipv4Addr>> = BTreeMap::new();
    let mut names6: BTreeMap<(String, String), BTreeSet<Ipv6Addr>> = BTreeMap::new();
    for n in state.networks.values() {
        let declared = if n.internal {
            b.internal(&n.name).map(|_| ())
        } else {
            b.network(&n.name).map(|_| ())
        };
        if let Err(e) = declared {
            tracing::warn!(network = %n.name, error = %e, "network left out of DNS");
        }
    }
    for s in state.services.values() {
        for n in &s.spec.networks {
            let tasks: BTreeSet<Ipv4Addr> = backends(state, &s.spec.name, n)
                .into_iter()
                .map(|(ip, _)| ip)
                .collect();
            let own = match (s.spec.endpoint_mode, s.vips.get(n)) {
                (EndpointMode::Vip, Some(vip)) => BTreeSet::from([*vip]),
                _ => tasks.clone(),
            };
            let tasks6: BTreeSet<Ipv6Addr> =
                backends6(state, &s.spec.name, n).into_iter().collect();
            let own6 = match (s.spec.endpoint_mode, s.vips.get(n), s.vips6.get(n)) {
                (EndpointMode::Vip, _, Some(vip6)) => BTreeSet::from([*vip6]),
                (EndpointMode::Vip, Some(_), None) => BTreeSet::new(),
                _ => tasks6.clone(),
            };
            let aliases = s
                .spec
                .network_options
                .get(n)
                .map(|o| o.aliases.as_slice())
                .unwrap_or_default();
            for name in std::iter::once(&s.spec.name).chain(aliases) {
                names
                    .entry((n.clone(), name.clone()))
                    .or_default()
                    .extend(own.iter().copied());
                names
                    .entry((n.clone(), format!("tasks.{name}")))
                    .or_default()
                    .extend(tasks.iter().copied());
                if !own6.is_empty() {
                    names6
                        .entry((n.clone(), name.clone()))
                        .or_default()
                        .extend(own6.iter().copied());
                }
                if !tasks6.is_empty() {
                    names6
                        .entry((n.clone(), format!("tasks.{name}")))
                        .or_default()
                        .extend(tasks6.iter().copied());
                }
            }
        }
    }
    let mut sandboxes: HashMap<(shoal_control::NodeId, &str), Vec<(&str, IpAddr)>> = HashMap::new();
    for e in state.endpoints.values() {
        let ends = sandboxes.entry((e.node, e.sandbox.as_str())).or_default();
        ends.extend(e.ip.map(|ip| (e.network.as_str(), IpAddr::V4(ip))));
        ends.extend(e.ip6.map(|ip6| (e.network.as_str(), IpAddr::V6(ip6))));
        let task = task_names(state, e);
        let first = task.first().or(e.name.as_ref());
        if let Some(first) = first {
            let addrs =
                e.ip.map(IpAddr::V4)
                    .into_iter()
                    .chain(e.ip6.map(IpAddr::V6));
            for addr in addrs {
                if let Err(err) = b.ptr(&e.network, addr, first) {
                    tracing::warn!(name = %first, error = %err, "no PTR record");
                }
            }
        }
        for name in task.iter().chain(&e.name).chain(&e.aliases) {
            names
                .entry((e.network.clone(), name.clone()))
                .or_default()
                .extend(e.ip);
            if let Some(ip6) = e.ip6 {
                names6
                    .entry((e.network.clone(), name.clone()))
                    .or_default()
                    .insert(ip6);
            }
        }
        if let Some(servers) = task_upstreams(state, e) {
            for ip in
                e.ip.map(IpAddr::V4)
                    .into_iter()
                    .chain(e.ip6.map(IpAddr::V6))
            {
                b.upstreams(ip, servers.clone());
            }
        }
    }
    for ((network, name), addrs) in names {
        if let Err(e) = b.add(&network, &name, addrs) {
            tracing::warn!(network = %network, name = %name, error = %e, "name left out of DNS");
        }
    }
    for ((network, name), addrs) in names6 {
        if let Err(e) = b.add6(&network, &name, addrs) {
            tracing::warn!(network = %network, name = %name, error = %e, "name left out of DNS");
        }
    }
    for ends in sandboxes.values() {
        for (_, ip) in ends {
            for (network, _) in ends {
                let _ = b.attach(*ip, network);
            }
        }
    }
    b.build()
}

/// The names of the task an endpoint belongs to: its container name first (the one
/// its PTR record gives), then its host name.
fn task_names(state: &ClusterState, e: &Endpoint) -> Vec<String> {
    let Some(task) = e.task.as_ref().and_then(|t| state.tasks.get(t)) else {
        return Vec::new();
    };
    let Some(service) = state.services.get(&task.service) else {
        return Vec::new();
    };
    let mut names = vec![task.container_name(service.spec.mode)];
    let hostname = service
        .spec
        .hostname
        .as_deref()
        .zip(state.nodes.get(&task.node));
    if let Some((template, node)) = hostname {
        let ctx = TemplateContext {
            service,
            task,
            node,
        };
        if let Ok(h) = hostname::expand(template, &ctx) {
            names.push(h);
        }
    }
    names
}

/// The upstream resolvers of a task whose service names its own (`--dns`).
fn task_upstreams(state: &ClusterState, e: &Endpoint) -> Option<Vec<SocketAddr>> {
    let task = state.tasks.get(e.task.as_ref()?)?;
    let servers = &state.services.get(&task.service)?.spec.dns.nameservers;
    (!servers.is_empty()).then(|| servers.iter().map(|ip| SocketAddr::new(*ip, 53)).collect())
}

/// The upstream resolvers: given ones, or the host's resolv.conf nameservers.
pub fn upstreams(given: &[SocketAddr]) -> Vec<SocketAddr> {
    if !given.is_empty() {
        return given.to_vec();
    }
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Serves DNS for this node until `stop`.
pub async fn run(member: Arc<Member>, upstream: Vec<SocketAddr>, stop: CancellationToken) {
    let resolver = match Resolver::new(ResolverConfig::default()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the DNS resolver");
            return;
        }
    };
    resolver.set_upstreams(upstreams(&upstream));
    // By network and address: the IPv4 gateway, and the IPv6 one on dual-stack networks.
    let mut serving: HashMap<(String, IpAddr), CancellationToken> = HashMap::new();
    let mut changes = member.replica().changes();
    // The revision the table was built from: the table is rebuilt only when the state
    // moved (a rebuild costs O(endpoints); waking up to bind gateways costs nothing).
    let mut built: Option<u64> = None;
    loop {
        // A gateway not bound yet appears when the reconciler has made its bridge,
        // moments after the attach that asked for it: look again soon.
        let mut unbound = false;
        if member.synced() {
            let state = member.replica().state();
            if built != Some(state.revision) {
                resolver.update(table(&state));
                built = Some(state.revision);
            }
            let wanted: BTreeSet<(String, IpAddr)> = state
                .networks
                .values()
                .filter(|n| {
                    state
                        .endpoints_on(&n.name)
                        .any(|e| e.node == member.node_id)
                })
                .flat_map(|n| {
                    let gw = n.space.as_ref().map(|s| IpAddr::V4(s.gateway()));
                    let gw6 = n.space6.as_ref().map(|s| IpAddr::V6(s.gateway()));
                    gw.into_iter().chain(gw6).map(|gw| (n.name.clone(), gw))
                })
                .collect();
            serving.retain(|key, token| {
                let keep = wanted.contains(key);
                if !keep {
                    token.cancel();
                }
                keep
            });
            for (name, gw) in wanted {
                if serving.contains_key(&(name.clone(), gw)) {
                    continue;
                }
                match resolver.bind(SocketAddr::new(gw, 53), name.clone()).await {
                    Ok(listener) => {
                        let token = stop.child_token();
                        let t = token.clone();
                        tokio::spawn(async move {
                            if let Err(e) = listener.serve(async move { t.cancelled().await }).await
                            {
                                tracing::warn!(error = %e, "DNS listener stopped");
                            }
                        });
                        tracing::info!(network = %name, gateway = %gw, "serving DNS");
                        serving.insert((name, gw), token);
                    }
                    Err(e) => {
                        unbound = true;
                        tracing::debug!(network = %name, error = %e, "DNS not bound yet");
                    }
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(if unbound { Duration::from_millis(100) } else { Duration::from_secs(1) }) => {}
        }
    }
}

#[cfg(test)]
mod tests;
