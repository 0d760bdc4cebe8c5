//! Applying network and endpoint commands: subnet, VNI and address allocation happen
//! here, inside the replicated state machine, so they are the same on every manager.

use std::collections::BTreeSet;

use shoal_ipam::{allocate_subnet, check_subnet, mac_for, AddressSpace, Occupied, SubnetRequest};

use super::super::{
    endpoint_id, mesh_pool, ApplyError, AttachSpec, ClusterState, Endpoint, Network, NetworkSpec,
    Output, DEFAULT_UNDERLAY_MTU, IPV6_UNDERLAY_OVERHEAD, VXLAN_OVERHEAD, WIREGUARD_OVERHEAD,
};
use super::{validate_label, Changed};
use crate::ids::{validate_name, NodeId};
/// The smallest MTU shoal accepts for a network.
const MIN_MTU: u32 = 1280;
/// The largest.
const MAX_MTU: u32 = 9000;
/// The most aliases an endpoint may have.
pub(super) const MAX_ALIASES: usize = 32;

pub(super) fn ipam(e: shoal_ipam::IpamError) -> ApplyError {
    ApplyError::Invalid(e.to_string())
}

/// What occupies address space: every network's subnet and every node's routes.
pub(super) fn occupied(state: &ClusterState) -> Vec<Occupied> {
    let mut out: Vec<Occupied> = state
        .networks
        .values()
        .filter_map(|n| Some(Occupied::network(&n.name, n.subnet()?)))
        .collect();
    out.push(Occupied {
        net: mesh_pool(),
        what: format!("the WireGuard mesh pool {}", mesh_pool()),
    });
    for node in state.nodes.values() {
        out.extend(
            node.report
                .routes
                .iter()
                .map(|r| Occupied::route(*r, &node.name)),
        );
    }
    out
}

pub(super) fn create_network(
    state: &mut ClusterState,
    id: &str,
    spec: &NetworkSpec,
    at: u64,
) -> Changed {
    validate_name("network", &spec.name)?;
    if let Some(existing) = state.networks.get(&spec.name) {
        if let Some((docker_id, node)) = &spec.docker {
            return super::docker::map_existing(state, &spec.name, spec.subnet, docker_id, *node);
        }
        return Err(ApplyError::Conflict(format!(
            "a network named {:?} already exists",
            existing.name
        )));
    }
    if let Some((docker_id, _)) = &spec.docker {
        super::docker::validate_docker_id(docker_id)?;
    }
    if id.len() < 8
        || !id.bytes().all(|b| b.is_ascii_hexdigit())
        || state.networks.values().any(|n| n.id == id)
    {
        return Err(ApplyError::Invalid(format!(
            "network ID {id:?} is not a fresh hex ID"
        )));
    }
    for (k, v) in &spec.labels {
        validate_label(k, v)?;
    }
    let mtu = match spec.mtu {
        Some(m) if !(MIN_MTU..=MAX_MTU).contains(&m) => {
            return Err(ApplyError::Invalid(format!(
                "--opt mtu={m}: use a value from {MIN_MTU} to {MAX_MTU}"
            )))
        }
        Some(m) => m,
        None => {
            let underlay = state
                .nodes
                .values()
                .map(|n| {
                    if n.report.underlay_mtu == 0 {
                        DEFAULT_UNDERLAY_MTU
                    } else {
                        n.report.underlay_mtu
                    }
                })
                .min()
                .unwrap_or(DEFAULT_UNDERLAY_MTU);
            // A cluster's underlay is of one family (join refuses a mix).
            let v6 = state.nodes.values().any(|n| n.addr.is_ipv6());
            let overhead = VXLAN_OVERHEAD
                + if spec.encrypted {
                    WIREGUARD_OVERHEAD
                } else {
                    0
                }
                + if v6 { IPV6_UNDERLAY_OVERHEAD } else { 0 };
            underlay.saturating_sub(overhead).max(MIN_MTU)
        }
    };
    let space = space4_for(state, spec)?;
    let space6 = super::network6::space6_for(state, spec)?;
    let taken = |v: u32| state.networks.values().find(|n| n.vni == v);
    let vni = match spec.vni {
        Some(v) if v == 0 || v >= 1 << 24 => {
            return Err(ApplyError::Invalid(format!(
                "VXLAN ID {v} is out of range: use 1-16777215"
            )))
        }
        Some(v) => match taken(v) {
            Some(other) => {
                return Err(ApplyError::Conflict(format!(
                    "VXLAN ID {v} is already used by network {}",
                    other.name
                )))
            }
            None => v,
        },
        None => {
            let mut v = state.next_vni;
            while taken(v).is_some() {
                v += 1;
            }
            if v >= 1 << 24 {
                return Err(ApplyError::Invalid(
                    "no VXLAN network identifiers are left".into(),
                ));
            }
            v
        }
    };
    let network = Network {
        id: id.to_string(),
        name: spec.name.clone(),
        vni,
        space,
        space6,
        attachable: spec.attachable,
        internal: spec.internal,
        encrypted: spec.encrypted,
        mtu,
        labels: spec.labels.clone(),
        created_at_ms: at,
        docker: spec
            .docker
            .iter()
            .map(|(id, node)| (id.clone(), BTreeSet::from([*node])))
            .collect(),
        from_docker: spec.docker.is_some(),
    };
    if spec.vni.is_none() {
        state.next_vni = vni + 1;
    }
    state.networks.insert(spec.name.clone(), network.clone());
    Ok((Output::Network(Box::new(network)), true))
}

/// The IPv4 address space a new network gets: none for `--ipv4=false`, which needs
/// `--ipv6` and takes no IPv4 parts (as Docker refuses them).
fn space4_for(
    state: &ClusterState,
    spec: &NetworkSpec,
) -> Result<Option<AddressSpace>, ApplyError> {
    if !spec.wants_ipv4() {
        if !spec.ipv6 {
            return Err(ApplyError::Invalid(
                "a network needs IPv4 or IPv6: --ipv4=false needs --ipv6".into(),
            ));
        }
        let given = spec
            .subnet
            .map(|s| format!("subnet {s}"))
            .or(spec.gateway.map(|g| format!("gateway {g}")))
            .or(spec.ip_range.map(|r| format!("ip range {r}")))
            .or(spec
                .aux_addresses
                .iter()
                .next()
                .map(|(k, ip)| format!("aux address {k}={ip}")));
        if let Some(what) = given {
            return Err(ApplyError::Invalid(format!(
                "{what} is IPv4 but the network is IPv6-only (--ipv4=false)"
            )));
        }
        return Ok(None);
    }
    let taken = occupied(state);
    let subnet = match spec.subnet {
        Some(s) => {
            check_subnet(s, &taken).map_err(ipam)?;
            s
        }
        None => allocate_subnet(&state.addr_pools, &taken).map_err(ipam)?,
    };
    let req = SubnetRequest {
        subnet: Some(subnet),
        gateway: spec.gateway,
        ip_range: spec.ip_range,
        aux_addresses: spec.aux_addresses.clone(),
    };
    AddressSpace::new(subnet, &req).map(Some).map_err(ipam)
}

pub(super) fn remove_network(state: &mut ClusterState, reference: &str) -> Changed {
    let name = state.find_network(reference)?.name.clone();
    let users: Vec<&Endpoint> = state.endpoints_on(&name).collect();
    if !users.is_empty() {
        let mut nodes: Vec<String> = users
            .iter()
            .map(|e| {
                state
                    .nodes
                    .get(&e.node)
                    .map(|n| n.name.clone())
                    .unwrap_or_else(|| e.node.to_string())
            })
            .collect();
        nodes.sort();
        nodes.dedup();
        return Err(ApplyError::Conflict(format!(
            "network {name} still has {} endpoint(s) (on {}); detach them first",
            users.len(),
            nodes.join(", ")
        )));
    }
    state.networks.remove(&name);
    Ok((Output::None, true))
}

pub(super) fn validate_dns_name(what: &str, name: &str) -> Result<(), ApplyError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !ok {
        return Err(ApplyError::Invalid(format!(
            "invalid {what} {name:?}: use DNS labels of letters, digits, '-' and '_' separated by dots"
        )));
    }
    Ok(())
}

/// The endpoint `id`'s IPv4 address on `network`: `spec.ip` (taking over a lease
/// Docker's IPAM made for it) or the next free one; none on an IPv6-only network. A
/// failure leaves the space as it was.
fn lease4(
    network: &str,
    space: &mut Option<AddressSpace>,
    spec: &AttachSpec,
    id: &str,
) -> Result<Option<std::net::Ipv4Addr>, ApplyError> {
    let Some(space) = space.as_mut() else {
        return match spec.ip {
            Some(ip) => Err(ApplyError::Invalid(format!(
                "--ip {ip}: network {network} is IPv6-only (created with --ipv4=false)"
            ))),
            None => Ok(None),
        };
    };
    Ok(Some(match spec.ip {
        Some(ip) => {
            super::docker::take(space, ip, id)?;
            ip
        }
        None => space.allocate(id).map_err(ipam)?,
    }))
}

pub(super) fn attach(state: &mut ClusterState, spec: &AttachSpec, at: u64) -> Changed {
    // Not the network itself: cloning its address space costs one copy of every lease.
    let network = NetworkRef::of(state.find_network(&spec.network)?);
    if !state.nodes.contains_key(&spec.node) {
        return Err(ApplyError::NoSuchNode(spec.node.to_string()));
    }
    if !spec.sandbox.starts_with('/') || spec.sandbox.len() > 4096 {
        return Err(ApplyError::Invalid(format!(
            "sandbox {:?} must be an absolute namespace path",
            spec.sandbox
        )));
    }
    if network.encrypted {
        let node = &state.nodes[&spec.node];
        if let Some(why) = &node.report.no_encryption {
            return Err(ApplyError::Invalid(format!(
                "node {} cannot carry the encrypted network {}: {why}",
                node.name, network.name
            )));
        }
        if node.wireguard.is_none() {
            return Err(ApplyError::Invalid(format!(
                "node {} has no WireGuard key yet, so it cannot carry the encrypted network {}; try again in a moment",
                node.name, network.name
            )));
        }
    }
    if let Some(svc) = &spec.service {
        let service = state
            .services
            .get(svc)
            .ok_or_else(|| ApplyError::NoSuchService(svc.clone()))?;
        if !service.spec.networks.contains(&network.name) {
            return Err(ApplyError::Invalid(format!(
                "service {svc} is not on network {}; its networks are: {}",
                network.name,
                service.spec.networks.join(", ")
            )));
        }
    }
    if let Some(task) = &spec.task {
        let t = state
            .tasks
            .get(task)
            .ok_or_else(|| ApplyError::Invalid(format!("no such task: {task}")))?;
        if t.node != spec.node || Some(&t.service) != spec.service.as_ref() {
            return Err(ApplyError::Invalid(format!(
                "task {task} is not a task of this node and service"
            )));
        }
    }
    // Docker's own endpoints: Docker decides who may attach (`--attachable` in a Swarm).
    if !network.attachable && spec.service.is_none() && !spec.ingress && !spec.handoff {
        return Err(ApplyError::Invalid(format!(
            "network {} is not attachable: only service tasks may join it (create it with --attachable to attach sandboxes)",
            network.name
        )));
    }
    if let Some(n) = &spec.name {
        validate_dns_name("name", n)?;
    }
    if spec.aliases.len() > MAX_ALIASES {
        return Err(ApplyError::Invalid(format!(
            "at most {MAX_ALIASES} aliases"
        )));
    }
    for a in &spec.aliases {
        validate_dns_name("alias", a)?;
    }
    if let Some(name) = &spec.ifname {
        let ok = !name.is_empty()
            && name.len() <= 15
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(ApplyError::Invalid(format!(
                "interface name {name:?}: use 1-15 letters, digits, '-', '_' or '.'"
            )));
        }
    }
    if let Some(mac) = spec.mac {
        shoal_ipam::check_mac(mac).map_err(|e| ApplyError::Invalid(e.to_string()))?;
    }
    let id = endpoint_id(&network.id, spec.node, &spec.sandbox);
    if let Some(existing) = state.endpoints.get(&id) {
        if spec.ip.is_some() && spec.ip != existing.ip {
            return Err(ApplyError::Conflict(format!(
                "this sandbox is already attached to {} with address {}; detach it first to change the address",
                network.name,
                existing.addr()
            )));
        }
        if spec.ip6.is_some() && spec.ip6 != existing.ip6 {
            return Err(ApplyError::Conflict(format!(
                "this sandbox is already attached to {} with IPv6 address {}; detach it first to change the address",
                network.name,
                existing.ip6.map_or("(none)".to_string(), |ip| ip.to_string())
            )));
        }
        if spec.mac.is_some_and(|mac| mac != existing.mac) {
            return Err(ApplyError::Conflict(format!(
                "this sandbox is already attached to {} with MAC {}; detach it first to change it",
                network.name,
                shoal_ipam::format_mac(existing.mac)
            )));
        }
        return Ok((Output::Endpoint(Box::new(existing.clone())), false));
    }
    if let Some(name) = &spec.name {
        if let Some(other) = state.endpoints.named(&network.name, name).next() {
            return Err(ApplyError::Conflict(format!(
                "the name {name:?} is taken on network {} by endpoint {} ({})",
                network.name,
                other.id,
                other.addr()
            )));
        }
    }
    if let Some(mac) = spec.mac {
        if let Some(holder) = mac_holder(state, &network, mac) {
            return Err(ApplyError::Conflict(format!(
                "the MAC {} is taken on network {} by {holder}",
                shoal_ipam::format_mac(mac),
                network.name,
            )));
        }
    }
    let used: Vec<&str> = state
        .endpoints
        .of_sandbox(spec.node, &spec.sandbox)
        .map(|e| e.ifname.as_str())
        .collect();
    let ifname = match &spec.ifname {
        Some(name) if used.contains(&name.as_str()) => {
            return Err(ApplyError::Conflict(format!(
                "the sandbox already has an interface named {name}"
            )))
        }
        Some(name) => name.clone(),
        None => (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !used.contains(&n.as_str()))
            .unwrap_or_else(|| "eth0".into()),
    };
    // The addresses are the last checks, made on the network's own spaces: a failed one
    // leaves the spaces as they were (an IPv6 lease is given back if IPv4 fails).
    let net = state
        .networks
        .get_mut(&network.name)
        .ok_or_else(|| ApplyError::NoSuchNetwork(network.name.clone()))?;
    let ip6 = super::network6::lease6(&network.name, &mut net.space6, spec, &id)?;
    let ip = lease4(&network.name, &mut net.space, spec, &id).inspect_err(|_| {
        if let (Some(space6), Some(ip6)) = (net.space6.as_mut(), ip6) {
            space6.release(ip6);
        }
    })?;
    let mac = match (spec.mac, ip, ip6) {
        (Some(mac), _, _) => mac,
        (None, Some(ip), _) => mac_for(ip),
        (None, None, Some(ip6)) => {
            let mac = mac_for(ip6);
            if let Err(e) = mac6_free(state, &network, mac) {
                release6(state.networks.get_mut(&network.name), Some(ip6));
                return Err(e);
            }
            mac
        }
        (None, None, None) => {
            return Err(ApplyError::Invalid(format!(
                "network {} has neither IPv4 nor IPv6 addresses",
                network.name
            )))
        }
    };
    let endpoint = Endpoint {
        id: id.clone(),
        network: network.name.clone(),
        node: spec.node,
        sandbox: spec.sandbox.clone(),
        ifname,
        name: spec.name.clone(),
        aliases: spec.aliases.clone(),
        ip,
        ip6,
        mac,
        service: spec.service.clone(),
        task: spec.task.clone(),
        ingress: spec.ingress,
        created_at_ms: at,
        handoff: spec.handoff,
        runtime_id: spec.runtime_id.clone(),
        ports: Vec::new(),
    };
    state.endpoints.insert(endpoint.clone());
    Ok((Output::Endpoint(Box::new(endpoint)), true))
}

/// On an IPv6-only network a MAC derived from an IPv6 address carries only its last
/// 32 bits: refuses one another endpoint (or the gateway) already has.
fn mac6_free(state: &ClusterState, network: &NetworkRef, mac: [u8; 6]) -> Result<(), ApplyError> {
    match mac_holder(state, network, mac) {
        None => Ok(()),
        Some(holder) => Err(ApplyError::Conflict(format!(
            "the MAC {} derived from the IPv6 address is taken on network {} by {holder}; give the endpoint another address or MAC",
            shoal_ipam::format_mac(mac),
            network.name,
        ))),
    }
}

/// Who has `mac` on `network` already, as an error message names them: its gateway or
/// an endpoint.
fn mac_holder(state: &ClusterState, network: &NetworkRef, mac: [u8; 6]) -> Option<String> {
    if mac == network.gateway_mac {
        return Some("its gateway".into());
    }
    state
        .endpoints
        .with_mac(&network.name, mac)
        .next()
        .map(|e| format!("endpoint {} ({})", e.id, e.addr()))
}

/// What `attach` needs of a network, without its address space.
struct NetworkRef {
    id: String,
    name: String,
    encrypted: bool,
    attachable: bool,
    /// The anycast gateway's MAC (derived from the IPv4 gateway, else the IPv6 one).
    gateway_mac: [u8; 6],
}

impl NetworkRef {
    fn of(n: &crate::state::Network) -> NetworkRef {
        NetworkRef {
            id: n.id.clone(),
            name: n.name.clone(),
            encrypted: n.encrypted,
            attachable: n.attachable,
            gateway_mac: n.gateway_mac(),
        }
    }
}

pub(super) fn detach(
    state: &mut ClusterState,
    reference: &str,
    node: NodeId,
    sandbox: &str,
) -> Changed {
    let network = state.find_network(reference)?;
    let id = endpoint_id(&network.id, node, sandbox);
    let name = network.name.clone();
    let Some(endpoint) = state.endpoints.remove(&id) else {
        return Ok((Output::None, false));
    };
    release_addresses(state.networks.get_mut(&name), &endpoint);
    Ok((Output::None, true))
}

/// Drops every endpoint of `node` and frees its addresses (the node is being removed).
pub(super) fn forget_node_endpoints(state: &mut ClusterState, node: NodeId) {
    let gone: Vec<Endpoint> = state
        .endpoints
        .values()
        .filter(|e| e.node == node)
        .cloned()
        .collect();
    for e in gone {
        state.endpoints.remove(&e.id);
        release_addresses(state.networks.get_mut(&e.network), &e);
    }
    let leases = super::docker::lease_owner(node);
    let holds = |n: &Network| {
        n.space
            .as_ref()
            .is_some_and(|s| s.leases().any(|(_, owner)| owner == leases))
            || n.space6
                .as_ref()
                .is_some_and(|s| s.leases().any(|(_, owner)| owner == leases))
    };
    let holding: Vec<String> = state
        .networks
        .iter()
        .filter(|(_, n)| holds(n))
        .map(|(name, _)| name.clone())
        .collect();
    for name in holding {
        if let Some(net) = state.networks.get_mut(&name) {
            if let Some(space) = net.space.as_mut() {
                space.release_owner(&leases);
            }
            if let Some(space6) = net.space6.as_mut() {
                space6.release_owner(&leases);
            }
        }
    }
}

/// Frees an endpoint's addresses on its network.
pub(super) fn release_addresses(network: Option<&mut Network>, endpoint: &Endpoint) {
    let Some(network) = network else { return };
    if let (Some(space), Some(ip)) = (network.space.as_mut(), endpoint.ip) {
        space.release(ip);
    }
    release6(Some(network), endpoint.ip6);
}

/// Frees an IPv6 address, if there is one.
fn release6(network: Option<&mut Network>, ip6: Option<std::net::Ipv6Addr>) {
    if let (Some(space6), Some(ip6)) = (network.and_then(|n| n.space6.as_mut()), ip6) {
        space6.release(ip6);
    }
}
