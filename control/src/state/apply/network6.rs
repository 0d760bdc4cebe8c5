//! The IPv6 half of dual-stack networks (`network create --ipv6`): choosing the IPv6
//! subnet and leasing endpoints' IPv6 addresses, inside the replicated state machine.
//!
//! ```text
//!   NetworkSpec { ipv6, subnet6, gateway6, ip_range6 }
//!     ─▶ check_spec6 (no IPv6 parts without --ipv6, no gateway/range without subnet)
//!     ─▶ subnet6: check_subnet6 / allocate_subnet6 (pools6, else the cluster's ULA /48)
//!     ─▶ AddressSpace6::new  ─▶ Network::space6
//!   attach ─▶ lease6 (serial, or --ip6) ─▶ Endpoint::ip6
//! ```

use ipnet::Ipv6Net;
use shoal_ipam::{
    allocate_subnet6, check_subnet6, ula_pool, AddressSpace6, Occupied6, SubnetRequest6,
};

use super::super::{ApplyError, AttachSpec, ClusterState, NetworkSpec};
use super::network::ipam;

/// The IPv6 pools `--ipv6` subnets are cut from: the configured ones, else the ULA /48
/// derived from the cluster's ID (so every manager derives the same one).
pub(super) fn pools6(state: &ClusterState) -> Vec<Ipv6Net> {
    if !state.addr_pools.pools6.is_empty() {
        return state.addr_pools.pools6.clone();
    }
    vec![cluster_ula(&state.cluster_id)]
}

/// The ULA /48 of the cluster `cluster_id`: `fd` and 40 bits of its SHA-256.
pub(crate) fn cluster_ula(cluster_id: &str) -> Ipv6Net {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("shoal ULA\0{cluster_id}").as_bytes());
    let mut id = [0u8; 5];
    id.copy_from_slice(&digest[..5]);
    ula_pool(id)
}

/// What occupies IPv6 address space: every network's IPv6 subnet and every node's
/// IPv6 routes.
pub(super) fn occupied6(state: &ClusterState) -> Vec<Occupied6> {
    let mut out: Vec<Occupied6> = state
        .networks
        .values()
        .filter_map(|n| Some(Occupied6::network(&n.name, n.space6.as_ref()?.subnet())))
        .collect();
    for node in state.nodes.values() {
        out.extend(
            node.report
                .routes6
                .iter()
                .map(|r| Occupied6::route(*r, &node.name)),
        );
    }
    out
}

/// Refuses IPv6 parts of a spec that cannot be honoured: any without `--ipv6`, a
/// gateway or ip range without the IPv6 subnet it belongs to.
fn check_spec6(spec: &NetworkSpec) -> Result<(), ApplyError> {
    if !spec.ipv6 {
        let given = spec
            .subnet6
            .map(|s| format!("subnet {s}"))
            .or(spec.gateway6.map(|g| format!("gateway {g}")))
            .or(spec.ip_range6.map(|r| format!("ip range {r}")));
        if let Some(what) = given {
            return Err(ApplyError::Invalid(format!(
                "{what} is IPv6 but the network is not: add --ipv6 to make it dual-stack"
            )));
        }
        return Ok(());
    }
    if spec.subnet6.is_none() {
        let orphan = spec
            .gateway6
            .map(|g| format!("gateway {g}"))
            .or(spec.ip_range6.map(|r| format!("ip range {r}")));
        if let Some(what) = orphan {
            return Err(ApplyError::Invalid(format!(
                "{what} has no IPv6 subnet to belong to: give --subnet with the IPv6 CIDR it is in"
            )));
        }
    }
    Ok(())
}

/// The IPv6 address space a new network gets, if it is dual-stack.
pub(super) fn space6_for(
    state: &ClusterState,
    spec: &NetworkSpec,
) -> Result<Option<AddressSpace6>, ApplyError> {
    check_spec6(spec)?;
    if !spec.ipv6 {
        return Ok(None);
    }
    let taken = occupied6(state);
    let subnet = match spec.subnet6 {
        Some(s) => {
            check_subnet6(s, &taken).map_err(ipam)?;
            s
        }
        None => allocate_subnet6(&pools6(state), &taken).map_err(ipam)?,
    };
    let req = SubnetRequest6 {
        gateway: spec.gateway6,
        ip_range: spec.ip_range6,
    };
    AddressSpace6::new(subnet, &req).map(Some).map_err(ipam)
}

/// Leases the IPv6 address of endpoint `id` on `network` (a copy the caller stores):
/// `spec.ip6` (taking over a lease Docker's IPAM made for it) or the next free one;
/// none on an IPv4-only network.
pub(super) fn lease6(
    network: &str,
    space6: &mut Option<AddressSpace6>,
    spec: &AttachSpec,
    id: &str,
) -> Result<Option<std::net::Ipv6Addr>, ApplyError> {
    let Some(space) = space6.as_mut() else {
        return match spec.ip6 {
            Some(ip6) => Err(ApplyError::Invalid(format!(
                "--ip6 {ip6}: network {network} has no IPv6 subnet (it was not created with --ipv6)"
            ))),
            None => Ok(None),
        };
    };
    let ip = match spec.ip6 {
        Some(ip) => {
            super::docker::take(space, ip, id)?;
            ip
        }
        None => space.allocate(id).map_err(ipam)?,
    };
    Ok(Some(ip))
}

#[cfg(test)]
mod only_tests;
#[cfg(test)]
mod tests;
