//! The IPv6 addresses of one dual-stack network: subnet, gateway, allocatable
//! range and the lease table.
//!
//! ```text
//!   fd12:3456:789a::/64   ::  subnet-router anycast   ::1 gateway   ::2 .. range
//!   allocate():  next free after the last handed out, wrapping at the range's end
//! ```
//!
//! Serial like the IPv4 space, and the same implementation
//! ([`crate::space::AddressSpaceOf`]): a released address comes back only after
//! the cursor has gone round the range (for a /64, never in practice).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

use crate::error::IpamError;
use crate::space::AddressSpaceOf;

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
pub type AddressSpace6 = AddressSpaceOf<Ipv6Addr>;

impl AddressSpace6 {
    /// The IPv6 address space of a network on `subnet`, shaped by `req`.
    ///
    /// Checks that the subnet is a network address with room for a gateway and
    /// hosts (/126 or shorter), that the gateway is a host address of it (not
    /// the subnet-router anycast address) and that the range lies inside it and
    /// has an address to hand out.
    pub fn new(subnet: Ipv6Net, req: &SubnetRequest6) -> Result<Self, IpamError> {
        Self::build(subnet, req.gateway, req.ip_range, &BTreeMap::new())
    }
}
