//! The IPv6 addresses of one dual-stack network: subnet, gateway, allocatable
//! range and the lease table.
//!
//! ```text
//!   fd12:3456:789a::/64   ::  subnet-router anycast   ::1 gateway   ::2 .. range
//!   allocate():  next free after the last handed out, wrapping at the range's end
//! ```
//!
//! Serial like the IPv4 space: a released address comes back only after the
//! cursor has gone round the range (for a /64, never in practice).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use imbl::OrdMap;
use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{IpamError, MAX_SUBNET6_PREFIX_LEN};

/// What `network create --ipv6` asks for besides the subnet; both optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubnetRequest6 {
    /// The gateway; default: the subnet's first host (`::1`).
    pub gateway: Option<Ipv6Addr>,
    /// Where dynamic addresses come from; default: the whole subnet.
    pub ip_range: Option<Ipv6Net>,
}

/// One network's IPv6 addresses and who holds them.
///
/// Serializes as `{"subnet","gateway","ip_range","leases","last_allocated"}`;
/// reading re-validates it like [`AddressSpace6::new`] and [`AddressSpace6::reserve`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "StoredSpace6")]
pub struct AddressSpace6 {
    subnet: Ipv6Net,
    gateway: Ipv6Addr,
    range: Ipv6Net,
    leases: OrdMap<Ipv6Addr, String>,
    last_allocated: Option<Ipv6Addr>,
}

impl AddressSpace6 {
    /// The IPv6 address space of a network on `subnet`, shaped by `req`.
    ///
    /// Checks that the subnet is a network address with room for a gateway and
    /// hosts (/126 or shorter), that the gateway is a host address of it (not
    /// the subnet-router anycast address) and that the range lies inside it and
    /// has an address to hand out.
    pub fn new(subnet: Ipv6Net, req: &SubnetRequest6) -> Result<Self, IpamError> {
        if subnet.trunc() != subnet {
            return Err(IpamError::SubnetNotNetworkAddress {
                subnet: subnet.into(),
            });
        }
        if subnet.prefix_len() > MAX_SUBNET6_PREFIX_LEN {
            return Err(IpamError::Subnet6TooSmall {
                subnet: subnet.into(),
            });
        }
        let gateway = match req.gateway {
            Some(gateway) if !subnet.contains(&gateway) => {
                return Err(IpamError::GatewayOutsideSubnet {
                    gateway: gateway.into(),
                    subnet: subnet.into(),
                })
            }
            Some(gateway) if gateway == subnet.network() => {
                return Err(IpamError::GatewayIsNetworkAddress {
                    gateway: gateway.into(),
                    subnet: subnet.into(),
                })
            }
            Some(gateway) => gateway,
            None => Ipv6Addr::from(u128::from(subnet.network()) + 1),
        };
        let range = match req.ip_range {
            Some(range) if range.trunc() != range => {
                return Err(IpamError::RangeNotNetworkAddress {
                    range: range.into(),
                })
            }
            Some(range) if !subnet.contains(&range) => {
                return Err(IpamError::RangeOutsideSubnet {
                    range: range.into(),
                    subnet: subnet.into(),
                })
            }
            Some(range) => range,
            None => subnet,
        };
        let space = AddressSpace6 {
            subnet,
            gateway,
            range,
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

    /// The network's IPv6 subnet.
    pub fn subnet(&self) -> Ipv6Net {
        self.subnet
    }

    /// The IPv6 gateway (held by every node's bridge).
    pub fn gateway(&self) -> Ipv6Addr {
        self.gateway
    }

    /// The range dynamic addresses come from.
    pub fn range(&self) -> Ipv6Net {
        self.range
    }

    /// Hands out the next free address after the last one handed out, inside the
    /// range, wrapping to its start. Skips the subnet-router anycast address, the
    /// gateway and leased addresses.
    pub fn allocate(&mut self, owner: &str) -> Result<Ipv6Addr, IpamError> {
        if owner.is_empty() {
            return Err(IpamError::EmptyOwner);
        }
        let first = u128::from(self.range.network());
        let last = u128::from(self.range.broadcast());
        let start = match self.last_allocated.map(u128::from) {
            Some(cursor) if cursor >= first && cursor < last => cursor + 1,
            _ => first,
        };
        let found = self.next_free(start, last).or_else(|| match start {
            s if s > first => self.next_free(first, s - 1),
            _ => None,
        });
        let Some(ip) = found.map(Ipv6Addr::from) else {
            return Err(IpamError::RangeExhausted {
                range: self.range.into(),
                capacity: self.capacity(),
            });
        };
        self.leases.insert(ip, owner.to_owned());
        self.last_allocated = Some(ip);
        Ok(ip)
    }

    /// Leases an explicit address: a host address of the subnet (it may lie outside
    /// the range), not the gateway. Reserving an address its owner holds is a no-op.
    pub fn reserve(&mut self, ip: Ipv6Addr, owner: &str) -> Result<(), IpamError> {
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
        if ip == subnet.network() {
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
    pub fn release(&mut self, ip: Ipv6Addr) -> Option<String> {
        self.leases.remove(&ip)
    }

    /// Who holds `ip`, if anyone.
    pub fn owner_of(&self, ip: Ipv6Addr) -> Option<&str> {
        self.leases.get(&ip).map(String::as_str)
    }

    /// Every lease, ascending by address.
    pub fn leases(&self) -> impl Iterator<Item = (Ipv6Addr, &str)> {
        self.leases.iter().map(|(ip, owner)| (*ip, owner.as_str()))
    }

    /// The address [`AddressSpace6::allocate`] handed out last, if any.
    pub fn last_allocated(&self) -> Option<Ipv6Addr> {
        self.last_allocated
    }

    /// How many addresses of the range `allocate` can hand out when nothing is
    /// leased: the range without the subnet-router anycast address and the gateway
    /// (saturating at `u128::MAX` for a /0 range).
    pub fn capacity(&self) -> u128 {
        let size = 1u128
            .checked_shl(128 - u32::from(self.range.prefix_len()))
            .unwrap_or(u128::MAX);
        let special = [self.subnet.network(), self.gateway]
            .into_iter()
            .filter(|ip| self.range.contains(ip))
            .count() as u128;
        size.saturating_sub(special)
    }

    /// The lowest free address in `from..=to`, walking the leases of that span in
    /// step with the candidate.
    fn next_free(&self, from: u128, to: u128) -> Option<u128> {
        let span = Ipv6Addr::from(from)..=Ipv6Addr::from(to);
        let mut leased = self.leases.range(span).map(|(ip, _)| u128::from(*ip));
        let mut next_leased = leased.next();
        let mut candidate = from;
        loop {
            while next_leased.is_some_and(|l| l < candidate) {
                next_leased = leased.next();
            }
            let ip = Ipv6Addr::from(candidate);
            let special = ip == self.subnet.network() || ip == self.gateway;
            if next_leased != Some(candidate) && !special {
                return Some(candidate);
            }
            if candidate >= to {
                return None;
            }
            candidate += 1;
        }
    }
}

/// The stored form, borrowed for writing.
#[derive(Serialize)]
struct StoredSpace6Ref<'a> {
    subnet: Ipv6Net,
    gateway: Ipv6Addr,
    ip_range: Ipv6Net,
    leases: &'a OrdMap<Ipv6Addr, String>,
    last_allocated: Option<Ipv6Addr>,
}

/// The stored form, owned for reading.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSpace6 {
    subnet: Ipv6Net,
    gateway: Ipv6Addr,
    ip_range: Ipv6Net,
    #[serde(default)]
    leases: BTreeMap<Ipv6Addr, String>,
    #[serde(default)]
    last_allocated: Option<Ipv6Addr>,
}

impl Serialize for AddressSpace6 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredSpace6Ref {
            subnet: self.subnet,
            gateway: self.gateway,
            ip_range: self.range,
            leases: &self.leases,
            last_allocated: self.last_allocated,
        }
        .serialize(serializer)
    }
}

impl TryFrom<StoredSpace6> for AddressSpace6 {
    type Error = IpamError;

    fn try_from(stored: StoredSpace6) -> Result<Self, IpamError> {
        let subnet = stored.subnet;
        let inconsistent = |detail: String| IpamError::InconsistentState {
            subnet: subnet.into(),
            detail,
        };
        let req = SubnetRequest6 {
            gateway: Some(stored.gateway),
            ip_range: Some(stored.ip_range),
        };
        let mut space = AddressSpace6::new(subnet, &req)?;
        for (ip, owner) in &stored.leases {
            space
                .reserve(*ip, owner)
                .map_err(|e| inconsistent(format!("lease of {ip} to {owner:?}: {e}")))?;
        }
        if let Some(last) = stored.last_allocated {
            if !space.range.contains(&last) {
                return Err(inconsistent(format!(
                    "last allocated address {last} is outside ip range {}",
                    space.range
                )));
            }
        }
        space.last_allocated = stored.last_allocated;
        Ok(space)
    }
}
