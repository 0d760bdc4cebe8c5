//! IPv6 for dual-stack networks: the pools IPv6 subnets are cut from, and one
//! network's IPv6 addresses ([`AddressSpace6`]).
//!
//! ```text
//!   cluster init ──▶ PoolConfig::pools6 (none given: ula_pool(cluster) = fdXX:XXXX:XXXX::/48)
//!   network create --ipv6 ─▶ check_subnet6 / allocate_subnet6 (a /64, against
//!                            Occupied6: other networks' IPv6 subnets, node routes)
//!                          ─▶ AddressSpace6::new (gateway, ip range)
//!   endpoint ─▶ AddressSpace6::allocate (serial) or ::reserve
//! ```
//!
//! As Docker (27 and later) does when no IPv6 pool is configured, the default pool
//! is a Unique Local Address /48 (RFC 4193) whose 40-bit global ID is derived from
//! an identity (Docker: the host's; shoal: the cluster's), cut into /64s.
//! IPv6 has no broadcast address; the subnet's first address (the subnet-router
//! anycast address) is never handed out.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

use crate::error::{IpamError, SUBNET6_PREFIX_LEN};
use crate::pool::{first_free, merged_intervals};

mod space;

pub use space::{AddressSpace6, SubnetRequest6};

/// The ULA /48 whose global ID is `global_id` (RFC 4193: `fd` + 40 bits).
pub fn ula_pool(global_id: [u8; 5]) -> Ipv6Net {
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    octets[1..6].copy_from_slice(&global_id);
    Ipv6Net::new(Ipv6Addr::from(octets), 48).unwrap_or_default()
}

/// Checks IPv6 pools: network addresses, disjoint, each holding at least one /64.
pub fn validate_pools6(pools: &[Ipv6Net]) -> Result<(), IpamError> {
    for (i, &pool) in pools.iter().enumerate() {
        if pool.trunc() != pool {
            return Err(IpamError::PoolNotNetworkAddress { pool: pool.into() });
        }
        if pool.prefix_len() > SUBNET6_PREFIX_LEN {
            return Err(IpamError::Pool6TooSmall { pool: pool.into() });
        }
        if let Some(&first) = pools[..i].iter().find(|p| overlaps6(**p, pool)) {
            return Err(IpamError::PoolsOverlap {
                first: first.into(),
                second: pool.into(),
            });
        }
    }
    Ok(())
}

/// IPv6 address space that is already taken: another network's IPv6 subnet, or a
/// route on some node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occupied6 {
    /// The taken addresses.
    pub net: Ipv6Net,
    /// What takes them, for error messages: `network "web"`.
    pub what: String,
}

impl Occupied6 {
    /// The IPv6 subnet of the network called `name`.
    pub fn network(name: &str, net: Ipv6Net) -> Self {
        Occupied6 {
            net,
            what: format!("network {name:?}"),
        }
    }

    /// A route to `net` on the node called `node`.
    pub fn route(net: Ipv6Net, node: &str) -> Self {
        Occupied6 {
            net,
            what: format!("route {net} on node {node}"),
        }
    }
}

/// The first /64 of `pools` (in order, each ascending) that overlaps nothing in
/// `occupied`.
pub fn allocate_subnet6(pools: &[Ipv6Net], occupied: &[Occupied6]) -> Result<Ipv6Net, IpamError> {
    if pools.is_empty() {
        return Err(IpamError::NoPools);
    }
    validate_pools6(pools)?;
    let taken = merged_intervals(
        occupied
            .iter()
            .map(|o| (u128::from(o.net.network()), u128::from(o.net.broadcast()))),
    );
    let step = 1u128 << (128 - u32::from(SUBNET6_PREFIX_LEN));
    for pool in pools {
        let (first, last) = (u128::from(pool.network()), u128::from(pool.broadcast()));
        if let Some(start) = first_free(&taken, first, last, step) {
            return Ok(Ipv6Net::new_assert(
                Ipv6Addr::from(start),
                SUBNET6_PREFIX_LEN,
            ));
        }
    }
    Err(IpamError::PoolExhausted {
        pools: pools.iter().map(|&p| p.into()).collect(),
        mask_len: SUBNET6_PREFIX_LEN,
    })
}

/// Checks an explicitly requested IPv6 subnet: a network address that overlaps
/// nothing in `occupied` (the error names the first thing it overlaps).
pub fn check_subnet6(subnet: Ipv6Net, occupied: &[Occupied6]) -> Result<(), IpamError> {
    if subnet.trunc() != subnet {
        return Err(IpamError::SubnetNotNetworkAddress {
            subnet: subnet.into(),
        });
    }
    match occupied.iter().find(|o| overlaps6(o.net, subnet)) {
        Some(o) => Err(IpamError::SubnetOverlaps {
            subnet: subnet.into(),
            what: o.what.clone(),
            net: o.net.into(),
        }),
        None => Ok(()),
    }
}

/// Whether two IPv6 networks share at least one address.
fn overlaps6(a: Ipv6Net, b: Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests;
