//! What Docker's network and IPAM drivers change in the state: Docker network IDs
//! mapped to shoal networks, addresses leased by Docker's IPAM before an endpoint
//! takes them, and the names a container has.
//!
//! ```text
//!  RequestAddress ─▶ LeaseAddress (owner "lease:<node>") ─┐
//!  Join ──────────▶ Attach { ip, handoff } ───────────────┴▶ the endpoint takes the lease over
//!  ReleaseAddress ─▶ ReleaseAddress (frees it only while it is still a lease)
//! ```

use std::net::IpAddr;

use ipnet::{Ipv4Net, Ipv6Net};

use shoal_ipam::{AddressSpace, AddressSpaceOf, Family, Occupied6};

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

/// The IPv6 subnet Docker's IPAM gets for `RequestPool` with `--ipv6`, chosen as
/// [`docker_pool`] chooses the IPv4 one: the one asked for if it is a network's IPv6
/// subnet already or overlaps nothing, else the next free /64 of the cluster's IPv6
/// pools.
pub fn docker_pool6(
    state: &ClusterState,
    requested: Option<Ipv6Net>,
    pending: &[Ipv6Net],
) -> Result<Ipv6Net, ApplyError> {
    let mut taken = super::network6::occupied6(state);
    taken.extend(pending.iter().map(|p| Occupied6 {
        net: *p,
        what: format!("the network being made with IPv6 subnet {p}"),
    }));
    let exists = |s: Ipv6Net| {
        state
            .networks
            .values()
            .any(|n| n.space6.as_ref().map(|s6| s6.subnet()) == Some(s))
    };
    match requested {
        Some(s) if exists(s) || pending.contains(&s) => Ok(s),
        Some(s) => {
            shoal_ipam::check_subnet6(s, &taken).map_err(ipam)?;
            Ok(s)
        }
        None => shoal_ipam::allocate_subnet6(&super::network6::pools6(state), &taken).map_err(ipam),
    }
}

/// The network Docker's IPAM means by `network` (a name, ID, or a subnet of either
/// family it was given as its pool).
fn docker_network(state: &ClusterState, network: &str) -> Result<String, ApplyError> {
    let found = if let Ok(subnet) = network.parse::<Ipv4Net>() {
        state.networks.values().find(|n| n.subnet() == Some(subnet))
    } else if let Ok(subnet) = network.parse::<Ipv6Net>() {
        state
            .networks
            .values()
            .find(|n| n.space6.as_ref().map(|s| s.subnet()) == Some(subnet))
    } else {
        return Ok(state.find_network(network)?.name.clone());
    };
    found
        .map(|n| n.name.clone())
        .ok_or_else(|| ApplyError::NoSuchNetwork(format!("with subnet {network}")))
}

/// `LeaseAddress`: Docker's IPAM on `node` asks for `ip` (or the next free address,
/// IPv6 if `ipv6`). Asking again for an address this node leased, or one an endpoint
/// already took over, is not an error: Docker replays its requests.
pub(super) fn lease(
    state: &mut ClusterState,
    network: &str,
    node: NodeId,
    ip: Option<IpAddr>,
    ipv6: bool,
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
    let (ip, changed) = match ip {
        Some(IpAddr::V4(ip)) if !ipv6 => lease_in(space4(net)?, Some(ip), &owner)?,
        None if !ipv6 => lease_in(space4(net)?, None, &owner)?,
        Some(IpAddr::V6(ip)) => lease_in(space6(net)?, Some(ip), &owner)?,
        None => lease_in(space6(net)?, None, &owner)?,
        Some(IpAddr::V4(ip)) => {
            return Err(ApplyError::Invalid(format!(
                "{ip} is an IPv4 address, asked for from the IPv6 pool of network {name}"
            )))
        }
    };
    Ok((Output::Address { ip }, changed))
}

/// Leases `ip` (or the next free address) of `space` to `owner`; whether anything
/// changed (a lease asked for again changes nothing).
fn lease_in<A: Family>(
    space: &mut AddressSpaceOf<A>,
    ip: Option<A>,
    owner: &str,
) -> Result<(IpAddr, bool), ApplyError> {
    let leased = match ip {
        // A Swarm manager leased it for a task; the task's node asks again.
        Some(ip) if space.owner_of(ip).is_some_and(is_lease) => return Ok((ip.into(), false)),
        Some(ip) => {
            space.reserve(ip, owner).map_err(ipam)?;
            ip
        }
        None => space.allocate(owner).map_err(ipam)?,
    };
    Ok((leased.into(), true))
}

/// The IPv6 space of `net`, for Docker's `--ipv6`.
fn space6(net: &mut Network) -> Result<&mut AddressSpaceOf<std::net::Ipv6Addr>, ApplyError> {
    let name = net.name.clone();
    net.space6.as_mut().ok_or_else(|| {
        ApplyError::Invalid(format!(
            "network {name} has no IPv6 subnet: it was made without --ipv6"
        ))
    })
}

/// `ReleaseAddress`: frees `ip` if it is still a lease (an endpoint that took it over
/// frees it when it goes).
pub(super) fn release(state: &mut ClusterState, network: &str, ip: IpAddr) -> Changed {
    let Ok(name) = docker_network(state, network) else {
        // The network went first (Docker releases its gateway after DeleteNetwork).
        return Ok((Output::None, false));
    };
    let Some(net) = state.networks.get_mut(&name) else {
        return Ok((Output::None, false));
    };
    let released = match ip {
        IpAddr::V4(ip) => net.space.as_mut().is_some_and(|s| release_lease(s, ip)),
        IpAddr::V6(ip) => net.space6.as_mut().is_some_and(|s| release_lease(s, ip)),
    };
    Ok((Output::None, released))
}

/// Gives `ip` to endpoint `id`, taking it over from Docker's IPAM if it leased it
/// (at Join). Once the lease is released, reserving it cannot fail (a lease is a
/// valid, free host address of the range), so the space is never left half-changed.
pub(super) fn take<A: Family>(
    space: &mut AddressSpaceOf<A>,
    ip: A,
    id: &str,
) -> Result<(), ApplyError> {
    let lease = space.owner_of(ip).filter(|o| is_lease(o));
    if let Some(owner) = lease.map(str::to_string) {
        space.release(ip);
        if let Err(e) = space.reserve(ip, id) {
            space.reserve(ip, &owner).map_err(ipam)?;
            return Err(ipam(e));
        }
    } else {
        space.reserve(ip, id).map_err(ipam)?;
    }
    Ok(())
}

/// Frees `ip` if it is a lease; whether it was.
fn release_lease<A: Family>(space: &mut AddressSpaceOf<A>, ip: A) -> bool {
    if !space.owner_of(ip).is_some_and(is_lease) {
        return false;
    }
    space.release(ip);
    true
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
