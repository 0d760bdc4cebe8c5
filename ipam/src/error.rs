//! The one error type of the crate.
//!
//! Every failure an operator can cause (a bad pool, a bad `network create`, a
//! taken `--ip`, a full pool or range) is its own variant, and each message
//! names the values involved and, where there is one, the way out.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

/// The longest prefix a pool may cut subnets to: a /29 leaves 5 host addresses
/// after the network, broadcast and gateway addresses.
pub const MAX_POOL_MASK_LEN: u8 = 29;

/// The prefix length of the IPv6 subnets cut from pools: /64, as Docker does.
pub const SUBNET6_PREFIX_LEN: u8 = 64;

/// The longest prefix an IPv6 network's subnet may have: a /126 still has a gateway
/// and two addresses to hand out after the subnet-router anycast address.
pub const MAX_SUBNET6_PREFIX_LEN: u8 = 126;

/// The longest prefix a network's subnet may have: a /30 still has a gateway
/// and one address to hand out.
pub const MAX_SUBNET_PREFIX_LEN: u8 = 30;

/// Why an address-management request was refused.
///
/// All variants are request errors: none of them means the state is broken.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum IpamError {
    /// The pool configuration lists no pool at all.
    #[error("no address pool configured: give at least one pool, e.g. 10.0.0.0/8")]
    NoPools,

    /// A pool was written with host bits set (10.0.0.5/8 instead of 10.0.0.0/8).
    #[error("address pool {pool} is not a network address: did you mean {}?", pool.trunc())]
    PoolNotNetworkAddress {
        /// The pool as given.
        pool: IpNet,
    },

    /// Two pools share addresses.
    #[error("address pools {first} and {second} overlap: pools must be disjoint")]
    PoolsOverlap {
        /// The earlier pool in the list.
        first: IpNet,
        /// The later pool in the list.
        second: IpNet,
    },

    /// A pool cannot hold even one subnet of the smallest size allowed.
    #[error(
        "address pool {pool} is too small: a pool must hold at least one /{MAX_POOL_MASK_LEN}"
    )]
    PoolTooSmall {
        /// The pool as given.
        pool: IpNet,
    },

    /// The subnet size is larger than one of the pools.
    #[error(
        "subnet size /{mask_len} is larger than address pool {pool}: \
         use a size between /{} and /{MAX_POOL_MASK_LEN}",
        pool.prefix_len()
    )]
    MaskLargerThanPool {
        /// The subnet size asked for.
        mask_len: u8,
        /// The pool it does not fit in.
        pool: IpNet,
    },

    /// The subnet size leaves too few host addresses (or is not a prefix length).
    #[error(
        "subnet size /{mask_len} is too small for a network: \
         use /{MAX_POOL_MASK_LEN} or a shorter prefix"
    )]
    MaskTooSmall {
        /// The subnet size asked for.
        mask_len: u8,
    },

    /// Every subnet of the configured size in every pool is already taken.
    #[error(
        "{} exhausted: every /{mask_len} overlaps an existing network or route; \
         add a pool or remove unused networks",
        describe_pools(pools)
    )]
    PoolExhausted {
        /// The pools that were searched, in order.
        pools: Vec<IpNet>,
        /// The subnet size that was searched for.
        mask_len: u8,
    },

    /// A requested subnet shares addresses with a network or route.
    #[error("subnet {subnet} overlaps {}", describe_occupant(what, *net))]
    SubnetOverlaps {
        /// The subnet asked for.
        subnet: IpNet,
        /// What is already there, e.g. `network "web"`.
        what: String,
        /// The address space that is already taken.
        net: IpNet,
    },

    /// A subnet was written with host bits set (10.1.2.5/24 instead of 10.1.2.0/24).
    #[error("subnet {subnet} is not a network address: did you mean {}?", subnet.trunc())]
    SubnetNotNetworkAddress {
        /// The subnet as given.
        subnet: IpNet,
    },

    /// A subnet too small to hold a gateway and at least one more host.
    #[error(
        "subnet {subnet} is too small for a network: \
         use a prefix of /{MAX_SUBNET_PREFIX_LEN} or shorter"
    )]
    SubnetTooSmall {
        /// The subnet as given.
        subnet: IpNet,
    },

    /// An IPv6 pool cannot hold one subnet of the size IPv6 networks are cut to.
    #[error(
        "IPv6 address pool {pool} is too small: an IPv6 pool must hold at least one \
         /{SUBNET6_PREFIX_LEN} (use a prefix of /{SUBNET6_PREFIX_LEN} or shorter)"
    )]
    Pool6TooSmall {
        /// The pool as given.
        pool: IpNet,
    },

    /// An IPv6 subnet too small to hold a gateway and at least one more host.
    #[error(
        "IPv6 subnet {subnet} is too small for a network: \
         use a prefix of /{MAX_SUBNET6_PREFIX_LEN} or shorter (/{SUBNET6_PREFIX_LEN} is usual)"
    )]
    Subnet6TooSmall {
        /// The subnet as given.
        subnet: IpNet,
    },

    /// A gateway, ip range or pool of one address family was given where the other
    /// family's is needed (an IPv4 gateway on an IPv6 subnet).
    #[error(
        "{what} {value} is an {} address but subnet {subnet} is {}: give one of its family",
        family(value),
        family(subnet)
    )]
    FamilyMismatch {
        /// `gateway`, `ip range` or `address`.
        what: &'static str,
        /// The value as given.
        value: String,
        /// The subnet it was meant for.
        subnet: IpNet,
    },

    /// The gateway lies outside the subnet.
    #[error("gateway {gateway} is outside subnet {subnet}")]
    GatewayOutsideSubnet {
        /// The gateway asked for.
        gateway: IpAddr,
        /// The network's subnet.
        subnet: IpNet,
    },

    /// The gateway is the subnet's network address.
    #[error("gateway {gateway} is the network address of subnet {subnet}: pick a host address")]
    GatewayIsNetworkAddress {
        /// The gateway asked for.
        gateway: IpAddr,
        /// The network's subnet.
        subnet: IpNet,
    },

    /// The gateway is the subnet's broadcast address.
    #[error("gateway {gateway} is the broadcast address of subnet {subnet}: pick a host address")]
    GatewayIsBroadcastAddress {
        /// The gateway asked for.
        gateway: IpAddr,
        /// The network's subnet.
        subnet: IpNet,
    },

    /// An ip range was written with host bits set.
    #[error("ip range {range} is not a network address: did you mean {}?", range.trunc())]
    RangeNotNetworkAddress {
        /// The range as given.
        range: IpNet,
    },

    /// The ip range is not inside the subnet.
    #[error("ip range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet {
        /// The range as given.
        range: IpNet,
        /// The network's subnet.
        subnet: IpNet,
    },

    /// The ip range holds only the gateway, aux, network or broadcast addresses.
    #[error(
        "ip range {range} has no address to hand out: it holds only the gateway, \
         aux, network or broadcast addresses of subnet {subnet}"
    )]
    RangeEmpty {
        /// The range as given.
        range: IpNet,
        /// The network's subnet.
        subnet: IpNet,
    },

    /// An aux address lies outside the subnet.
    #[error("aux address {name:?} ({ip}) is outside subnet {subnet}")]
    AuxOutsideSubnet {
        /// The aux address's name.
        name: String,
        /// The address.
        ip: IpAddr,
        /// The network's subnet.
        subnet: IpNet,
    },

    /// An aux address is the subnet's network or broadcast address.
    #[error("aux address {name:?} ({ip}) is the network or broadcast address of subnet {subnet}")]
    AuxNotHostAddress {
        /// The aux address's name.
        name: String,
        /// The address.
        ip: IpAddr,
        /// The network's subnet.
        subnet: IpNet,
    },

    /// An aux address is the gateway.
    #[error("aux address {name:?} ({ip}) is the gateway")]
    AuxIsGateway {
        /// The aux address's name.
        name: String,
        /// The address.
        ip: IpAddr,
    },

    /// Two aux addresses are the same address.
    #[error("aux addresses {first:?} and {second:?} are both {ip}")]
    AuxDuplicate {
        /// The first name (in name order).
        first: String,
        /// The second name.
        second: String,
        /// The shared address.
        ip: IpAddr,
    },

    /// A lease was asked for without an owner.
    #[error("a lease needs an owner (an endpoint or service id), got an empty string")]
    EmptyOwner,

    /// Every address of the range is gateway, aux or leased.
    #[error("network range {range} is exhausted: all {capacity} addresses are in use")]
    RangeExhausted {
        /// The network's allocatable range.
        range: IpNet,
        /// How many addresses the range can hand out.
        capacity: u128,
    },

    /// An explicit address is outside the network's subnet.
    #[error("address {ip} is outside subnet {subnet}")]
    AddressOutsideSubnet {
        /// The address asked for.
        ip: IpAddr,
        /// The network's subnet.
        subnet: IpNet,
    },

    /// An explicit address is the subnet's network or broadcast address.
    #[error(
        "address {ip} is not a host address of subnet {subnet}: \
         it is its network, broadcast or subnet-router anycast address"
    )]
    AddressNotHostAddress {
        /// The address asked for.
        ip: IpAddr,
        /// The network's subnet.
        subnet: IpNet,
    },

    /// An explicit address is the network's gateway.
    #[error("address {ip} is the gateway of subnet {subnet}")]
    AddressIsGateway {
        /// The address asked for.
        ip: IpAddr,
        /// The network's subnet.
        subnet: IpNet,
    },

    /// An explicit address is reserved as an aux address.
    #[error("address {ip} is reserved as aux address {name:?}")]
    AddressIsAux {
        /// The address asked for.
        ip: IpAddr,
        /// The aux address's name.
        name: String,
    },

    /// An explicit address is already leased to someone else.
    #[error("address {ip} is already in use by {owner}")]
    AddressInUse {
        /// The address asked for.
        ip: IpAddr,
        /// Who holds it.
        owner: String,
    },

    /// A stored address space does not hold together (a lease or cursor out of place).
    #[error("stored address space of subnet {subnet} is inconsistent: {detail}")]
    InconsistentState {
        /// The network's subnet.
        subnet: IpNet,
        /// What is wrong.
        detail: String,
    },
}

/// "address pool 10.0.0.0/8 is" or "address pools 10.0.0.0/8, 172.16.0.0/12 are".
fn describe_pools(pools: &[IpNet]) -> String {
    let mut out = String::from(if pools.len() == 1 {
        "address pool "
    } else {
        "address pools "
    });
    for (i, pool) in pools.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{pool}");
    }
    out.push_str(if pools.len() == 1 { " is" } else { " are" });
    out
}

/// `network "web" (10.0.0.0/16)`; the net is left out when `what` already says it,
/// as in `route 10.0.0.0/16 on node n2`.
fn describe_occupant(what: &str, net: IpNet) -> String {
    let net = net.to_string();
    if what.contains(&net) {
        what.to_owned()
    } else {
        format!("{what} ({net})")
    }
}

/// "IPv4" or "IPv6", for an address or network written as text.
fn family(value: &(impl std::fmt::Display + ?Sized)) -> &'static str {
    if value.to_string().contains(':') {
        "IPv6"
    } else {
        "IPv4"
    }
}
