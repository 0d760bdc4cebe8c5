//! What an [`AddressSpaceOf`](super::AddressSpaceOf) needs to know of its
//! address family, named by the address type: [`Ipv4Addr`] or [`Ipv6Addr`].
//!
//! ```text
//!              net        count  not a host address      aux addresses
//!   Ipv4Addr   Ipv4Net    u32    network, broadcast      yes
//!   Ipv6Addr   Ipv6Net    u128   network (subnet-router  no
//!                                anycast address)
//! ```
//!
//! Addresses are walked as `u128` in both families.

use std::fmt::{Debug, Display};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{IpamError, MAX_SUBNET6_PREFIX_LEN, MAX_SUBNET_PREFIX_LEN};

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::net::Ipv4Addr {}
    impl Sealed for std::net::Ipv6Addr {}
}

/// An address family, implemented by its address type (sealed: IPv4 and IPv6).
pub trait Family:
    sealed::Sealed + Copy + Ord + Debug + Display + Into<IpAddr> + Serialize + DeserializeOwned
{
    /// The family's network type.
    type Net: Copy + Eq + Debug + Display + Into<IpNet> + Serialize + DeserializeOwned;
    /// What [`capacity`](super::AddressSpaceOf::capacity) is counted in.
    type Count: Copy;
    /// The longest prefix a network's subnet may have.
    const MAX_PREFIX_LEN: u8;
    /// Whether the last address of a subnet is its broadcast address (not a host).
    const HAS_BROADCAST: bool;
    /// Whether a network has aux addresses (and stores `aux_addresses`).
    const HAS_AUX: bool;

    /// The address whose integer value is `n` (`n` fits the family).
    fn from_int(n: u128) -> Self;
    /// `n` in the count type, saturating at its largest value.
    fn count(n: u128) -> Self::Count;
    /// The error for a subnet longer than [`Family::MAX_PREFIX_LEN`].
    fn too_small(subnet: Self::Net) -> IpamError;

    /// The first and last address of `net`, as integers.
    fn bounds(net: Self::Net) -> (u128, u128) {
        let net: IpNet = net.into();
        (int(net.network()), int(net.broadcast()))
    }

    /// The first address of `net`.
    fn network(net: Self::Net) -> Self {
        Self::from_int(Self::bounds(net).0)
    }

    /// Whether `ip` lies in `net`.
    fn in_net(net: Self::Net, ip: Self) -> bool {
        net.into().contains(&ip.into())
    }

    /// Whether `inner` lies wholly in `outer`.
    fn net_in_net(outer: Self::Net, inner: Self::Net) -> bool {
        outer.into().contains(&inner.into())
    }

    /// Whether `net` is written as its network address (no host bits set).
    fn is_network_address(net: Self::Net) -> bool {
        let net: IpNet = net.into();
        net.trunc() == net
    }

    /// The prefix length of `net`.
    fn prefix_len(net: Self::Net) -> u8 {
        net.into().prefix_len()
    }

    /// How many addresses `net` has, saturating at `u128::MAX` (an IPv6 /0).
    fn size(net: Self::Net) -> u128 {
        let net: IpNet = net.into();
        1u128
            .checked_shl(u32::from(net.max_prefix_len() - net.prefix_len()))
            .unwrap_or(u128::MAX)
    }

    /// The broadcast address of `net`, where the family has one.
    fn broadcast(net: Self::Net) -> Option<Self> {
        Self::HAS_BROADCAST.then(|| Self::from_int(Self::bounds(net).1))
    }

    /// Whether `ip` of `subnet` is its network or broadcast address.
    fn is_not_host(subnet: Self::Net, ip: Self) -> bool {
        ip == Self::network(subnet) || Some(ip) == Self::broadcast(subnet)
    }
}

impl Family for Ipv4Addr {
    type Net = Ipv4Net;
    type Count = u32;
    const MAX_PREFIX_LEN: u8 = MAX_SUBNET_PREFIX_LEN;
    const HAS_BROADCAST: bool = true;
    const HAS_AUX: bool = true;

    fn from_int(n: u128) -> Self {
        Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn count(n: u128) -> u32 {
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn too_small(subnet: Ipv4Net) -> IpamError {
        IpamError::SubnetTooSmall {
            subnet: subnet.into(),
        }
    }
}

impl Family for Ipv6Addr {
    type Net = Ipv6Net;
    type Count = u128;
    const MAX_PREFIX_LEN: u8 = MAX_SUBNET6_PREFIX_LEN;
    const HAS_BROADCAST: bool = false;
    const HAS_AUX: bool = false;

    fn from_int(n: u128) -> Self {
        Ipv6Addr::from(n)
    }

    fn count(n: u128) -> u128 {
        n
    }

    fn too_small(subnet: Ipv6Net) -> IpamError {
        IpamError::Subnet6TooSmall {
            subnet: subnet.into(),
        }
    }
}

/// The integer value of an address of either family.
pub(super) fn int(ip: impl Into<IpAddr>) -> u128 {
    match ip.into() {
        IpAddr::V4(ip) => u128::from(u32::from(ip)),
        IpAddr::V6(ip) => u128::from(ip),
    }
}
