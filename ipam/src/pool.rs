//! Cluster-wide address pools and the subnets cut from them.
//!
//! ```text
//!   PoolConfig { 10.0.0.0/8, /24 }      occupied: networks, node routes
//!        │                                   │ (merged into sorted intervals)
//!        ▼                                   ▼
//!   10.0.0.0/24 ─ taken? ─▶ jump past the interval, to the next /24 boundary
//!   10.0.3.0/24 ─ free ───▶ allocate_subnet returns it
//! ```
//!
//! The walk jumps over each occupied interval at once, so a pool cut into
//! 65 536 subnets with thousands of networks is searched in one pass over the
//! (sorted) occupied list.

use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::{IpamError, MAX_POOL_MASK_LEN};

/// The pool used when none is configured.
pub const DEFAULT_POOL: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8) {
    Ok(net) => net,
    Err(_) => panic!("10.0.0.0/8 is a valid network"),
};

/// The subnet size used when none is configured.
pub const DEFAULT_MASK_LEN: u8 = 24;

/// Cluster-wide pools that network subnets are cut from, and the size of each cut.
///
/// The default is 10.0.0.0/8 cut into /24s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Disjoint pools, searched in this order.
    pub pools: Vec<Ipv4Net>,
    /// The prefix length of every subnet cut from the pools.
    pub mask_len: u8,
    /// Disjoint IPv6 pools that `--ipv6` networks' /64s are cut from, in this
    /// order. None: a ULA /48 derived from the cluster's identity
    /// ([`crate::ula_pool`]). Absent from stores written before IPv6.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools6: Vec<Ipv6Net>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            pools: vec![DEFAULT_POOL],
            mask_len: DEFAULT_MASK_LEN,
            pools6: Vec::new(),
        }
    }
}

impl PoolConfig {
    /// A validated configuration; `mask_len` defaults to /24.
    pub fn new(pools: Vec<Ipv4Net>, mask_len: Option<u8>) -> Result<Self, IpamError> {
        let cfg = PoolConfig {
            pools,
            mask_len: mask_len.unwrap_or(DEFAULT_MASK_LEN),
            pools6: Vec::new(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// This configuration with IPv6 pools (`--default-addr-pool` given IPv6 CIDRs).
    pub fn with_pools6(self, pools6: Vec<Ipv6Net>) -> Result<Self, IpamError> {
        let cfg = PoolConfig { pools6, ..self };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that there is a pool, that pools are network addresses and
    /// disjoint, and that a subnet of `mask_len` fits in every pool and leaves
    /// room for hosts; IPv6 pools as [`crate::validate_pools6`] does.
    pub fn validate(&self) -> Result<(), IpamError> {
        crate::validate_pools6(&self.pools6)?;
        if self.pools.is_empty() {
            return Err(IpamError::NoPools);
        }
        if self.mask_len > MAX_POOL_MASK_LEN {
            return Err(IpamError::MaskTooSmall {
                mask_len: self.mask_len,
            });
        }
        for (i, &pool) in self.pools.iter().enumerate() {
            if pool.trunc() != pool {
                return Err(IpamError::PoolNotNetworkAddress { pool: pool.into() });
            }
            if pool.prefix_len() > MAX_POOL_MASK_LEN {
                return Err(IpamError::PoolTooSmall { pool: pool.into() });
            }
            if self.mask_len < pool.prefix_len() {
                return Err(IpamError::MaskLargerThanPool {
                    mask_len: self.mask_len,
                    pool: pool.into(),
                });
            }
            if let Some(&first) = self.pools[..i].iter().find(|p| overlaps(**p, pool)) {
                return Err(IpamError::PoolsOverlap {
                    first: first.into(),
                    second: pool.into(),
                });
            }
        }
        Ok(())
    }
}

/// Address space that is already taken: another network's subnet, or a route
/// on some node that a new subnet must not shadow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occupied {
    /// The taken addresses.
    pub net: Ipv4Net,
    /// What takes them, for error messages: `network "web"`, `route 10.0.0.0/16 on node n2`.
    pub what: String,
}

impl Occupied {
    /// The subnet of the network called `name`.
    pub fn network(name: &str, net: Ipv4Net) -> Self {
        Occupied {
            net,
            what: format!("network {name:?}"),
        }
    }

    /// A route to `net` on the node called `node`.
    pub fn route(net: Ipv4Net, node: &str) -> Self {
        Occupied {
            net,
            what: format!("route {net} on node {node}"),
        }
    }
}

/// The first subnet of `cfg.mask_len` (pools in order, each ascending) that
/// overlaps nothing in `occupied`.
pub fn allocate_subnet(cfg: &PoolConfig, occupied: &[Occupied]) -> Result<Ipv4Net, IpamError> {
    cfg.validate()?;
    let taken = merged_intervals(occupied.iter().map(|o| {
        (
            u128::from(u32::from(o.net.network())),
            u128::from(u32::from(o.net.broadcast())),
        )
    }));
    let step = 1u128 << (32 - u32::from(cfg.mask_len));
    for pool in &cfg.pools {
        let first = u128::from(u32::from(pool.network()));
        let last = u128::from(u32::from(pool.broadcast()));
        let found = first_free(&taken, first, last, step).and_then(|s| u32::try_from(s).ok());
        if let Some(start) = found {
            return Ipv4Net::new(Ipv4Addr::from(start), cfg.mask_len).map_err(|_| {
                IpamError::MaskTooSmall {
                    mask_len: cfg.mask_len,
                }
            });
        }
    }
    Err(IpamError::PoolExhausted {
        pools: cfg.pools.iter().map(|&p| p.into()).collect(),
        mask_len: cfg.mask_len,
    })
}

/// Checks an explicitly requested subnet: it must be a network address and
/// overlap nothing in `occupied` (the error names the first thing it overlaps).
pub fn check_subnet(subnet: Ipv4Net, occupied: &[Occupied]) -> Result<(), IpamError> {
    if subnet.trunc() != subnet {
        return Err(IpamError::SubnetNotNetworkAddress {
            subnet: subnet.into(),
        });
    }
    match occupied.iter().find(|o| overlaps(o.net, subnet)) {
        Some(o) => Err(IpamError::SubnetOverlaps {
            subnet: subnet.into(),
            what: o.what.clone(),
            net: o.net.into(),
        }),
        None => Ok(()),
    }
}

/// Whether two networks share at least one address.
pub(crate) fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Inclusive address intervals `[start, end]`, sorted and merged.
pub(crate) fn merged_intervals(raw: impl Iterator<Item = (u128, u128)>) -> Vec<(u128, u128)> {
    let mut raw: Vec<(u128, u128)> = raw.collect();
    raw.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(raw.len());
    for (start, end) in raw {
        match merged.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// The start of the first `step`-sized, `step`-aligned block in `[first, last]`
/// that touches no interval in `taken`.
pub(crate) fn first_free(
    taken: &[(u128, u128)],
    first: u128,
    last: u128,
    step: u128,
) -> Option<u128> {
    let mut candidate = first;
    let mut i = taken.partition_point(|&(_, end)| end < candidate);
    loop {
        let block_end = candidate.checked_add(step - 1)?;
        if block_end > last {
            return None;
        }
        while i < taken.len() && taken[i].1 < candidate {
            i += 1;
        }
        match taken.get(i) {
            Some(&(start, end)) if start <= block_end => {
                // Jump to the first aligned block after this interval.
                candidate = (end / step).checked_add(1)?.checked_mul(step)?;
            }
            _ => return Some(candidate),
        }
    }
}

#[cfg(test)]
mod tests;
