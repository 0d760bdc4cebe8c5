//! The addresses of one network: subnet, gateway, allocatable range, aux
//! addresses and the lease table.
//!
//! ```text
//!   10.0.1.0/24    .0 network   .1 gateway   .2 .. .254 range   .255 broadcast
//!                          last handed out ─┐
//!   allocate():   ... [.7 leased] [.8 free] ◀┘ next free after the cursor,
//!                 wrapping to the start of the range at its end
//! ```
//!
//! Addresses are handed out serially: a released address comes back only
//! after the cursor has gone round the whole range, so a stale peer or DNS
//! cache does not reach a new endpoint at the old address at once.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use imbl::OrdMap;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{IpamError, MAX_SUBNET_PREFIX_LEN};

mod stored;

/// What a user asked for at `network create`; every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubnetRequest {
    /// An explicit subnet (`--subnet`). Not read by [`AddressSpace::new`]: the
    /// caller checks it with [`crate::check_subnet`] or allocates one instead.
    pub subnet: Option<Ipv4Net>,
    /// The gateway (`--gateway`); default: the first host of the subnet.
    pub gateway: Option<Ipv4Addr>,
    /// Where dynamic addresses come from (`--ip-range`); default: the whole subnet.
    pub ip_range: Option<Ipv4Net>,
    /// Named addresses kept out of allocation (`--aux-address name=ip`).
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
}

/// The addresses of one network and who holds them.
///
/// Serializes as JSON with the lease table as an `ip -> owner` map;
/// deserializing re-validates everything and fails with
/// [`IpamError::InconsistentState`] on a lease or cursor out of place.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "stored::StoredSpace")]
pub struct AddressSpace {
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    range: Ipv4Net,
    aux: BTreeMap<String, Ipv4Addr>,
    /// `aux` inverted, for the allocation walk and error messages.
    aux_by_ip: BTreeMap<Ipv4Addr, String>,
    leases: OrdMap<Ipv4Addr, String>,
    /// The address last handed out by [`AddressSpace::allocate`].
    last_allocated: Option<Ipv4Addr>,
}

impl AddressSpace {
    /// The address space of a network on `subnet`, shaped by `req`.
    ///
    /// Checks that the subnet is a network address with room for hosts
    /// (prefix /30 or shorter), that the gateway is a host address of the
    /// subnet, that the ip range lies inside the subnet and has an address
    /// to hand out, and that aux addresses are distinct host addresses of the
    /// subnet other than the gateway.
    pub fn new(subnet: Ipv4Net, req: &SubnetRequest) -> Result<Self, IpamError> {
        if subnet.trunc() != subnet {
            return Err(IpamError::SubnetNotNetworkAddress {
                subnet: subnet.into(),
            });
        }
        if subnet.prefix_len() > MAX_SUBNET_PREFIX_LEN {
            return Err(IpamError::SubnetTooSmall {
                subnet: subnet.into(),
            });
        }
        let gateway = match req.gateway {
            Some(gateway) => check_gateway(gateway, subnet)?,
            None => first_host(subnet),
        };
        let range = match req.ip_range {
            Some(range) => check_range(range, subnet)?,
            None => subnet,
        };
        let aux_by_ip = check_aux(&req.aux_addresses, subnet, gateway)?;
        let space = AddressSpace {
            subnet,
            gateway,
            range,
            aux: req.aux_addresses.clone(),
            aux_by_ip,
            leases: OrdMap::new(),
            last_allocated: None,
        };
        if space.capacity() == 0 {
            return Err(IpamError::RangeEmpty {
                range: range.into(),
                subnet: subnet.into(),
            });
        }
        Ok(space)
    }

    /// The network's subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The gateway address (held by every node's bridge).
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The range dynamic addresses come from.
    pub fn range(&self) -> Ipv4Net {
        self.range
    }

    /// The aux addresses by name.
    pub fn aux(&self) -> &BTreeMap<String, Ipv4Addr> {
        &self.aux
    }

    /// Hands out the next free address after the last one handed out, inside
    /// the range, wrapping to the start of the range at its end. Skips the
    /// network, broadcast, gateway, aux and leased addresses.
    pub fn allocate(&mut self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        if owner.is_empty() {
            return Err(IpamError::EmptyOwner);
        }
        let first = u32::from(self.range.network());
        let last = u32::from(self.range.broadcast());
        let start = match self.last_allocated.map(u32::from) {
            Some(cursor) if cursor >= first && cursor < last => cursor + 1,
            _ => first,
        };
        let found = self.next_free(start, last).or_else(|| match start {
            s if s > first => self.next_free(first, s - 1),
            _ => None,
        });
        let Some(ip) = found.map(Ipv4Addr::from) else {
            return Err(IpamError::RangeExhausted {
                range: self.range.into(),
                capacity: self.capacity().into(),
            });
        };
        self.leases.insert(ip, owner.to_owned());
        self.last_allocated = Some(ip);
        Ok(ip)
    }

    /// Leases an explicit address (`--ip`). It must be a host address of the
    /// subnet (it may lie outside the range) and not the gateway or an aux
    /// address. Reserving an address its owner already holds is a no-op.
    /// Does not move the allocation cursor.
    pub fn reserve(&mut self, ip: Ipv4Addr, owner: &str) -> Result<(), IpamError> {
        if owner.is_empty() {
            return Err(IpamError::EmptyOwner);
        }
        let subnet = self.subnet;
        if !subnet.contains(&ip) {
            return Err(IpamError::AddressOutsideSubnet {
                ip: ip.into(),
                subnet: subnet.into(),
            });
        }
        if ip == subnet.network() || ip == subnet.broadcast() {
            return Err(IpamError::AddressNotHostAddress {
                ip: ip.into(),
                subnet: subnet.into(),
            });
        }
        if ip == self.gateway {
            return Err(IpamError::AddressIsGateway {
                ip: ip.into(),
                subnet: subnet.into(),
            });
        }
        if let Some(name) = self.aux_by_ip.get(&ip) {
            let name = name.clone();
            return Err(IpamError::AddressIsAux {
                ip: ip.into(),
                name,
            });
        }
        match self.leases.get(&ip) {
            Some(holder) if holder == owner => Ok(()),
            Some(holder) => Err(IpamError::AddressInUse {
                ip: ip.into(),
                owner: holder.clone(),
            }),
            None => {
                self.leases.insert(ip, owner.to_owned());
                Ok(())
            }
        }
    }

    /// Frees `ip`; returns the owner it had, or `None` if it was not leased.
    pub fn release(&mut self, ip: Ipv4Addr) -> Option<String> {
        self.leases.remove(&ip)
    }

    /// Frees every lease of `owner`; returns the freed addresses, ascending.
    pub fn release_owner(&mut self, owner: &str) -> Vec<Ipv4Addr> {
        let freed: Vec<Ipv4Addr> = self
            .leases
            .iter()
            .filter(|(_, holder)| holder.as_str() == owner)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &freed {
            self.leases.remove(ip);
        }
        freed
    }

    /// Who holds `ip`, if anyone.
    pub fn owner_of(&self, ip: Ipv4Addr) -> Option<&str> {
        self.leases.get(&ip).map(String::as_str)
    }

    /// Every lease, ascending by address.
    pub fn leases(&self) -> impl Iterator<Item = (Ipv4Addr, &str)> {
        self.leases.iter().map(|(ip, owner)| (*ip, owner.as_str()))
    }

    /// The lease table itself, `ip -> owner` (compact to serialize).
    pub fn lease_table(&self) -> &OrdMap<Ipv4Addr, String> {
        &self.leases
    }

    /// The address [`AddressSpace::allocate`] handed out last, if any.
    pub fn last_allocated(&self) -> Option<Ipv4Addr> {
        self.last_allocated
    }

    /// How many addresses of the range `allocate` can hand out when nothing
    /// is leased: the range without network, broadcast, gateway and aux.
    pub fn capacity(&self) -> u32 {
        let size = 1u64 << (32 - u32::from(self.range.prefix_len()));
        let special = [self.subnet.network(), self.subnet.broadcast(), self.gateway]
            .into_iter()
            .chain(self.aux_by_ip.keys().copied())
            .filter(|ip| self.range.contains(ip))
            .count() as u64;
        u32::try_from(size.saturating_sub(special)).unwrap_or(u32::MAX)
    }

    /// How many addresses are leased (explicit ones outside the range included).
    pub fn in_use(&self) -> u32 {
        u32::try_from(self.leases.len()).unwrap_or(u32::MAX)
    }

    /// Whether `ip` is never handed out: network, broadcast, gateway or aux.
    fn is_special(&self, ip: Ipv4Addr) -> bool {
        ip == self.subnet.network()
            || ip == self.subnet.broadcast()
            || ip == self.gateway
            || self.aux_by_ip.contains_key(&ip)
    }

    /// The lowest free address in `from..=to`. Walks the leases of that span
    /// in step with the candidate, so a run of leased addresses costs one
    /// step each rather than a lookup each.
    fn next_free(&self, from: u32, to: u32) -> Option<u32> {
        let span = Ipv4Addr::from(from)..=Ipv4Addr::from(to);
        let mut leased = self.leases.range(span).map(|(ip, _)| u32::from(*ip));
        let mut next_leased = leased.next();
        let mut candidate = from;
        loop {
            while next_leased.is_some_and(|l| l < candidate) {
                next_leased = leased.next();
            }
            let taken = next_leased == Some(candidate);
            if !taken && !self.is_special(Ipv4Addr::from(candidate)) {
                return Some(candidate);
            }
            if candidate >= to {
                return None;
            }
            candidate += 1;
        }
    }
}

/// The first host address of a subnet of prefix /30 or shorter.
fn first_host(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).saturating_add(1))
}

fn check_gateway(gateway: Ipv4Addr, subnet: Ipv4Net) -> Result<Ipv4Addr, IpamError> {
    if !subnet.contains(&gateway) {
        Err(IpamError::GatewayOutsideSubnet {
            gateway: gateway.into(),
            subnet: subnet.into(),
        })
    } else if gateway == subnet.network() {
        Err(IpamError::GatewayIsNetworkAddress {
            gateway: gateway.into(),
            subnet: subnet.into(),
        })
    } else if gateway == subnet.broadcast() {
        Err(IpamError::GatewayIsBroadcastAddress {
            gateway: gateway.into(),
            subnet: subnet.into(),
        })
    } else {
        Ok(gateway)
    }
}

fn check_range(range: Ipv4Net, subnet: Ipv4Net) -> Result<Ipv4Net, IpamError> {
    if range.trunc() != range {
        Err(IpamError::RangeNotNetworkAddress {
            range: range.into(),
        })
    } else if !subnet.contains(&range) {
        Err(IpamError::RangeOutsideSubnet {
            range: range.into(),
            subnet: subnet.into(),
        })
    } else {
        Ok(range)
    }
}

/// Checks the aux addresses and returns them keyed by address.
fn check_aux(
    aux: &BTreeMap<String, Ipv4Addr>,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
) -> Result<BTreeMap<Ipv4Addr, String>, IpamError> {
    let mut by_ip = BTreeMap::new();
    for (name, &ip) in aux {
        let name = name.clone();
        if !subnet.contains(&ip) {
            return Err(IpamError::AuxOutsideSubnet {
                name,
                ip: ip.into(),
                subnet: subnet.into(),
            });
        }
        if ip == subnet.network() || ip == subnet.broadcast() {
            return Err(IpamError::AuxNotHostAddress {
                name,
                ip: ip.into(),
                subnet: subnet.into(),
            });
        }
        if ip == gateway {
            return Err(IpamError::AuxIsGateway {
                name,
                ip: ip.into(),
            });
        }
        if let Some(first) = by_ip.get(&ip) {
            let first = String::clone(first);
            return Err(IpamError::AuxDuplicate {
                first,
                second: name,
                ip: ip.into(),
            });
        }
        by_ip.insert(ip, name);
    }
    Ok(by_ip)
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
