//! The addresses of one network: subnet, gateway, allocatable range, aux
//! addresses and the lease table. One implementation, [`AddressSpaceOf`],
//! serves both families: [`AddressSpace`] (IPv4) and
//! [`AddressSpace6`](crate::AddressSpace6) (IPv6, no broadcast and no aux
//! addresses; see `family`).
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

use crate::error::IpamError;
use family::int;
pub use family::Family;

mod family;
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

/// The IPv4 addresses of one network and who holds them.
pub type AddressSpace = AddressSpaceOf<Ipv4Addr>;

/// The addresses of one network of family `A` and who holds them.
///
/// Serializes as JSON with the lease table as an `ip -> owner` map;
/// deserializing re-validates everything and fails with
/// [`IpamError::InconsistentState`] on a lease or cursor out of place.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "stored::StoredSpace<A>", bound = "")]
pub struct AddressSpaceOf<A: Family> {
    subnet: A::Net,
    gateway: A,
    range: A::Net,
    /// Always empty where the family has no aux addresses.
    aux: BTreeMap<String, A>,
    /// `aux` inverted, for the allocation walk and error messages.
    aux_by_ip: BTreeMap<A, String>,
    leases: OrdMap<A, String>,
    /// The address last handed out by [`AddressSpaceOf::allocate`].
    last_allocated: Option<A>,
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
        Self::build(subnet, req.gateway, req.ip_range, &req.aux_addresses)
    }

    /// The aux addresses by name.
    pub fn aux(&self) -> &BTreeMap<String, Ipv4Addr> {
        &self.aux
    }
}

impl<A: Family> AddressSpaceOf<A> {
    /// The space of `new`: the gateway defaults to the subnet's first host, the
    /// range to the whole subnet.
    pub(crate) fn build(
        subnet: A::Net,
        gateway: Option<A>,
        range: Option<A::Net>,
        aux: &BTreeMap<String, A>,
    ) -> Result<Self, IpamError> {
        if !A::is_network_address(subnet) {
            return Err(IpamError::SubnetNotNetworkAddress {
                subnet: subnet.into(),
            });
        }
        if A::prefix_len(subnet) > A::MAX_PREFIX_LEN {
            return Err(A::too_small(subnet));
        }
        let gateway = match gateway {
            Some(gateway) => check_gateway(gateway, subnet)?,
            None => A::from_int(A::bounds(subnet).0 + 1),
        };
        let range = match range {
            Some(range) => check_range::<A>(range, subnet)?,
            None => subnet,
        };
        let aux_by_ip = check_aux(aux, subnet, gateway)?;
        let space = AddressSpaceOf {
            subnet,
            gateway,
            range,
            aux: aux.clone(),
            aux_by_ip,
            leases: OrdMap::new(),
            last_allocated: None,
        };
        if space.capacity_u128() == 0 {
            return Err(IpamError::RangeEmpty {
                range: range.into(),
                subnet: subnet.into(),
            });
        }
        Ok(space)
    }

    /// The network's subnet.
    pub fn subnet(&self) -> A::Net {
        self.subnet
    }

    /// The gateway address (held by every node's bridge).
    pub fn gateway(&self) -> A {
        self.gateway
    }

    /// The range dynamic addresses come from.
    pub fn range(&self) -> A::Net {
        self.range
    }

    /// Hands out the next free address after the last one handed out, inside
    /// the range, wrapping to the start of the range at its end. Skips the
    /// network, broadcast (IPv4), gateway, aux and leased addresses.
    pub fn allocate(&mut self, owner: &str) -> Result<A, IpamError> {
        if owner.is_empty() {
            return Err(IpamError::EmptyOwner);
        }
        let (first, last) = A::bounds(self.range);
        let start = match self.last_allocated.map(int) {
            Some(cursor) if cursor >= first && cursor < last => cursor + 1,
            _ => first,
        };
        let found = self.next_free(start, last).or_else(|| match start {
            s if s > first => self.next_free(first, s - 1),
            _ => None,
        });
        let Some(ip) = found.map(A::from_int) else {
            return Err(IpamError::RangeExhausted {
                range: self.range.into(),
                capacity: self.capacity_u128(),
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
    pub fn reserve(&mut self, ip: A, owner: &str) -> Result<(), IpamError> {
        if owner.is_empty() {
            return Err(IpamError::EmptyOwner);
        }
        let subnet = self.subnet;
        if !A::in_net(subnet, ip) {
            return Err(IpamError::AddressOutsideSubnet {
                ip: ip.into(),
                subnet: subnet.into(),
            });
        }
        if A::is_not_host(subnet, ip) {
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
    pub fn release(&mut self, ip: A) -> Option<String> {
        self.leases.remove(&ip)
    }

    /// Frees every lease of `owner`; returns the freed addresses, ascending.
    pub fn release_owner(&mut self, owner: &str) -> Vec<A> {
        let freed: Vec<A> = self
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
    pub fn owner_of(&self, ip: A) -> Option<&str> {
        self.leases.get(&ip).map(String::as_str)
    }

    /// Every lease, ascending by address.
    pub fn leases(&self) -> impl Iterator<Item = (A, &str)> {
        self.leases.iter().map(|(ip, owner)| (*ip, owner.as_str()))
    }

    /// The lease table itself, `ip -> owner` (compact to serialize).
    pub fn lease_table(&self) -> &OrdMap<A, String> {
        &self.leases
    }

    /// The address [`AddressSpaceOf::allocate`] handed out last, if any.
    pub fn last_allocated(&self) -> Option<A> {
        self.last_allocated
    }

    /// How many addresses of the range `allocate` can hand out when nothing
    /// is leased: the range without network, broadcast (IPv4), gateway and
    /// aux (IPv6: saturating at `u128::MAX` for a /0 range).
    pub fn capacity(&self) -> A::Count {
        A::count(self.capacity_u128())
    }

    /// [`AddressSpaceOf::capacity`], in either family.
    fn capacity_u128(&self) -> u128 {
        let special = [Some(A::network(self.subnet)), A::broadcast(self.subnet)]
            .into_iter()
            .flatten()
            .chain([self.gateway])
            .chain(self.aux_by_ip.keys().copied())
            .filter(|ip| A::in_net(self.range, *ip))
            .count() as u128;
        A::size(self.range).saturating_sub(special)
    }

    /// How many addresses are leased (explicit ones outside the range included).
    pub fn in_use(&self) -> u32 {
        u32::try_from(self.leases.len()).unwrap_or(u32::MAX)
    }

    /// Whether `ip` is never handed out: network, broadcast (IPv4), gateway or aux.
    fn is_special(&self, ip: A) -> bool {
        A::is_not_host(self.subnet, ip) || ip == self.gateway || self.aux_by_ip.contains_key(&ip)
    }

    /// The lowest free address in `from..=to`. Walks the leases of that span
    /// in step with the candidate, so a run of leased addresses costs one
    /// step each rather than a lookup each.
    fn next_free(&self, from: u128, to: u128) -> Option<u128> {
        let span = A::from_int(from)..=A::from_int(to);
        let mut leased = self.leases.range(span).map(|(ip, _)| int(*ip));
        let mut next_leased = leased.next();
        let mut candidate = from;
        loop {
            while next_leased.is_some_and(|l| l < candidate) {
                next_leased = leased.next();
            }
            let taken = next_leased == Some(candidate);
            if !taken && !self.is_special(A::from_int(candidate)) {
                return Some(candidate);
            }
            if candidate >= to {
                return None;
            }
            candidate += 1;
        }
    }
}

fn check_gateway<A: Family>(gateway: A, subnet: A::Net) -> Result<A, IpamError> {
    if !A::in_net(subnet, gateway) {
        Err(IpamError::GatewayOutsideSubnet {
            gateway: gateway.into(),
            subnet: subnet.into(),
        })
    } else if gateway == A::network(subnet) {
        Err(IpamError::GatewayIsNetworkAddress {
            gateway: gateway.into(),
            subnet: subnet.into(),
        })
    } else if Some(gateway) == A::broadcast(subnet) {
        Err(IpamError::GatewayIsBroadcastAddress {
            gateway: gateway.into(),
            subnet: subnet.into(),
        })
    } else {
        Ok(gateway)
    }
}

fn check_range<A: Family>(range: A::Net, subnet: A::Net) -> Result<A::Net, IpamError> {
    if !A::is_network_address(range) {
        Err(IpamError::RangeNotNetworkAddress {
            range: range.into(),
        })
    } else if !A::net_in_net(subnet, range) {
        Err(IpamError::RangeOutsideSubnet {
            range: range.into(),
            subnet: subnet.into(),
        })
    } else {
        Ok(range)
    }
}

/// Checks the aux addresses and returns them keyed by address.
fn check_aux<A: Family>(
    aux: &BTreeMap<String, A>,
    subnet: A::Net,
    gateway: A,
) -> Result<BTreeMap<A, String>, IpamError> {
    let mut by_ip = BTreeMap::new();
    for (name, &ip) in aux {
        let name = name.clone();
        if !A::in_net(subnet, ip) {
            return Err(IpamError::AuxOutsideSubnet {
                name,
                ip: ip.into(),
                subnet: subnet.into(),
            });
        }
        if A::is_not_host(subnet, ip) {
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
