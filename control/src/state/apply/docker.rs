//! What Docker's network and IPAM drivers change in the state: Docker network IDs
//! mapped to shoal networks, addresses leased by Docker's IPAM before an endpoint
//! takes them, and the names a container has.
//!
//! ```text
//!  RequestAddress ─▶ LeaseAddress (owner "lease:<node>") ─┐
//!  Join ──────────▶ Attach { ip, handoff } ───────────────┴▶ the endpoint takes the lease over
//!  ReleaseAddress ─▶ ReleaseAddress (frees it only while it is still a lease)
//! ```

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use shoal_ipam::AddressSpace;

use super::super::{ApplyError, ClusterState, Network, Output};
use super::network::{ipam, validate_dns_name, MAX_ALIASES};
use super::Changed;
use crate::ids::NodeId;

/// The owner of addresses leased by Docker's IPAM on `node`.
pub(super) fn lease_owner(node: NodeId) -> String {
    format!("lease:{node}")
}

/// Whether an address owner is a Docker IPAM lease.
pub(super) fn is_lease(owner: &str) -> bool {
    owner.starts_with("lease:")
}

/// Docker network IDs are 64 (or, in a Swarm, 25) characters of hex or base-36.
pub(super) fn validate_docker_id(id: &str) -> Result<(), ApplyError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApplyError::Invalid(format!(
            "{id:?} is not a Docker network ID"
        )));
    }
    Ok(())
}

/// `CreateNetwork` for a name that exists: Docker network `docker_id` is that network
/// (the same network on another host) if the subnet agrees.
pub(super) fn map_existing(
    state: &mut ClusterState,
    name: &str,
    subnet: Option<Ipv4Net>,
    docker_id: &str,
    node: NodeId,
) -> Changed {
    validate_docker_id(docker_id)?;
    let net = state
        .networks
        .get_mut(name)
        .ok_or_else(|| ApplyError::NoSuchNetwork(name.to_string()))?;
    let space = space4(net)?;
    let have = space.subnet();
    if subnet.is_some_and(|s| s != have) {
        return Err(ApplyError::Conflict(format!(
            "network {name} exists in the cluster with subnet {have}; create it on this host with --subnet {have} --gateway {}",
            space.gateway()
        )));
    }
    let changed = net
        .docker
        .entry(docker_id.to_string())
        .or_default()
        .insert(node);
    Ok((Output::Network(Box::new(net.clone())), changed))
}

/// The IPv4 space of `net`, which Docker's drivers need: shoal's Docker IPAM and
/// network drivers do not carry IPv6-only networks.
fn space4(net: &mut Network) -> Result<&mut AddressSpace, ApplyError> {
    let name = net.name.clone();
    net.space.as_mut().ok_or_else(|| {
        ApplyError::Invalid(format!(
            "network {name} is IPv6-only (--ipv4=false): shoal's Docker drivers carry only networks with IPv4"
        ))
    })
}

/// `MapDockerNetwork`: Docker network `docker_id` on `node` is shoal network `network`.
pub(super) fn map_network(
    state: &mut ClusterState,
    network: &str,
    docker_id: &str,
    node: NodeId,
) -> Changed {
    let name = state.find_network(network)?.name.clone();
    map_existing(state, &name, None, docker_id, node)
}

/// `UnmapDockerNetwork`: Docker network `docker_id` is gone from `node`'s daemon. A
/// network Docker made goes with its last Docker network, unless something still uses
/// it.
pub(super) fn unmap_network(state: &mut ClusterState, docker_id: &str, node: NodeId) -> Changed {
    let Some(key) = state
        .networks
        .iter()
        .find(|(_, n)| {
            n.docker
                .get(docker_id)
                .is_some_and(|nodes| nodes.contains(&node))
        })
        .map(|(key, _)| key.clone())
    else {
        return Ok((Output::None, false));
    };
    let Some(net) = state.networks.get_mut(&key) else {
        return Ok((Output::None, false));
    };
    if let Some(nodes) = net.docker.get_mut(docker_id) {
        nodes.remove(&node);
        if nodes.is_empty() {
            net.docker.remove(docker_id);
        }
    }
    let name = net.name.clone();
    let orphan = net.from_docker && net.docker.is_empty();
    let used = state.endpoints_on(&name).next().is_some()
        || state
            .services
            .values()
            .any(|s| s.spec.networks.contains(&name));
    if orphan && !used {
        state.networks.remove(&name);
    }
    Ok((Output::None, true))
}

/// The subnet Docker's IPAM gets for `RequestPool`: the one asked for, if it is a
/// network's subnet already (the same network on another host) or overlaps nothing;
/// otherwise the next free subnet of the cluster's pools. Nothing is reserved in the
/// state: the network is made when Docker creates it; `pending` are subnets offered
/// or being made meanwhile, which count as taken.
pub fn docker_pool(
    state: &ClusterState,
    requested: Option<Ipv4Net>,
    pending: &[Ipv4Net],
) -> Result<Ipv4Net, ApplyError> {
    let mut taken = super::network::occupied(state);
    taken.extend(pending.iter().map(|p| shoal_ipam::Occupied {
        net: *p,
        what: format!("the network being made with subnet {p}"),
    }));
    match requested {
        Some(s)
            if state.networks.values().any(|n| n.subnet() == Some(s)) || pending.contains(&s) =>
        {
            Ok(s)
        }
        Some(s) => {
            shoal_ipam::check_subnet(s, &taken).map_err(ipam)?;
            Ok(s)
        }
        None => shoal_ipam::allocate_subnet(&state.addr_pools, &taken).map_err(ipam),
    }
}

/// The network Docker's IPAM means by `network` (a name, ID, or a subnet it was given
/// as its pool).
fn docker_network(state: &ClusterState, network: &str) -> Result<String, ApplyError> {
    if let Ok(subnet) = network.parse::<Ipv4Net>() {
        return state
            .networks
            .values()
            .find(|n| n.subnet() == Some(subnet))
            .map(|n| n.name.clone())
            .ok_or_else(|| ApplyError::NoSuchNetwork(format!("with subnet {subnet}")));
    }
    Ok(state.find_network(network)?.name.clone())
}

/// `LeaseAddress`: Docker's IPAM on `node` asks for `ip` (or the next free address).
/// Asking again for an address this node leased, or one an endpoint already took
/// over, is not an error: Docker replays its requests.
pub(super) fn lease(
    state: &mut ClusterState,
    network: &str,
    node: NodeId,
    ip: Option<Ipv4Addr>,
) -> Changed {
    if !state.nodes.contains_key(&node) {
        return Err(ApplyError::NoSuchNode(node.to_string()));
    }
    let name = docker_network(state, network)?;
    let owner = lease_owner(node);
    let net = state
        .networks
        .get_mut(&name)
        .ok_or_else(|| ApplyError::NoSuchNetwork(name.clone()))?;
    let space = space4(net)?;
    let leased = match ip {
        // A Swarm manager leased it for a task; the task's node asks again.
        Some(ip) if space.owner_of(ip).is_some_and(is_lease) => {
            return Ok((Output::Address { ip }, false))
        }
        Some(ip) => {
            space.reserve(ip, &owner).map_err(ipam)?;
            ip
        }
        None => space.allocate(&owner).map_err(ipam)?,
    };
    Ok((Output::Address { ip: leased }, true))
}

/// `ReleaseAddress`: frees `ip` if it is still a lease (an endpoint that took it over
/// frees it when it goes).
pub(super) fn release(state: &mut ClusterState, network: &str, ip: Ipv4Addr) -> Changed {
    let Ok(name) = docker_network(state, network) else {
        // The network went first (Docker releases its gateway after DeleteNetwork).
        return Ok((Output::None, false));
    };
    let Some(space) = state.networks.get_mut(&name).and_then(|n| n.space.as_mut()) else {
        return Ok((Output::None, false));
    };
    if !space.owner_of(ip).is_some_and(is_lease) {
        return Ok((Output::None, false));
    }
    space.release(ip);
    Ok((Output::None, true))
}

/// `SetEndpointNames`: the names a runtime gives the sandbox of endpoint `id` (a
/// Docker container's name and its aliases on the network).
pub(super) fn set_names(
    state: &mut ClusterState,
    id: &str,
    node: NodeId,
    name: Option<&str>,
    aliases: &[String],
) -> Changed {
    if let Some(n) = name {
        validate_dns_name("name", n)?;
    }
    if aliases.len() > MAX_ALIASES {
        return Err(ApplyError::Invalid(format!(
            "at most {MAX_ALIASES} aliases"
        )));
    }
    for a in aliases {
        validate_dns_name("alias", a)?;
    }
    let Some(e) = state.endpoints.get(id) else {
        return Err(ApplyError::Invalid(format!("no endpoint {id}")));
    };
    if e.node != node {
        return Err(ApplyError::Invalid(format!(
            "endpoint {id} is not on node {node}"
        )));
    }
    let name = name.map(str::to_string);
    if e.name == name && e.aliases == aliases {
        return Ok((Output::None, false));
    }
    state.endpoints.update(id, |e| {
        e.name = name;
        e.aliases = aliases.to_vec();
    });
    Ok((Output::None, true))
}
