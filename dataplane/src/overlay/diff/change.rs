//! One change to the kernel, as the diff hands it to the applier, and how it reads in
//! the log.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::overlay::plan::{EndpointPlan, NetworkPlan};

/// One change to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Delete a link shoal made that is no longer wanted, or is wrong beyond repair.
    DeleteLink {
        /// The link.
        name: String,
        /// Why.
        why: String,
    },
    /// Create a network's bridge with the anycast gateway.
    CreateBridge {
        /// The network.
        network: NetworkPlan,
    },
    /// Bring a link to its planned MTU, MAC and up state.
    FixLink {
        /// The link.
        name: String,
        /// Wanted MTU.
        mtu: u32,
        /// Wanted MAC, if it is wrong.
        mac: Option<[u8; 6]>,
    },
    /// Add an address to a link.
    AddAddress {
        /// The link.
        link: String,
        /// The address.
        ip: Ipv4Addr,
        /// Its prefix length.
        prefix: u8,
    },
    /// Remove an address from a link.
    DelAddress {
        /// The link.
        link: String,
        /// The address.
        ip: Ipv4Addr,
        /// Its prefix length.
        prefix: u8,
    },
    /// Add an IPv6 address to a link (without duplicate address detection).
    AddAddress6 {
        /// The link.
        link: String,
        /// The address.
        ip: Ipv6Addr,
        /// Its prefix length.
        prefix: u8,
    },
    /// Remove an IPv6 address from a link.
    DelAddress6 {
        /// The link.
        link: String,
        /// The address.
        ip: Ipv6Addr,
        /// Its prefix length.
        prefix: u8,
    },
    /// Answer neighbour solicitations for a remote endpoint's IPv6 address.
    AddNeigh6 {
        /// The VXLAN device.
        vxlan: String,
        /// The remote endpoint's IPv6 address.
        ip: Ipv6Addr,
        /// Its MAC.
        mac: [u8; 6],
    },
    /// Remove such an entry.
    DelNeigh6 {
        /// The VXLAN device.
        vxlan: String,
        /// The address.
        ip: Ipv6Addr,
    },
    /// Create a network's VXLAN device in its bridge.
    CreateVxlan {
        /// The network.
        network: NetworkPlan,
        /// The local tunnel endpoint.
        local: IpAddr,
        /// The UDP port.
        port: u16,
    },
    /// Point a MAC at a remote tunnel endpoint.
    AddFdb {
        /// The VXLAN device.
        vxlan: String,
        /// The remote endpoint's MAC.
        mac: [u8; 6],
        /// Its node's underlay address.
        dst: IpAddr,
    },
    /// Remove such an entry.
    DelFdb {
        /// The VXLAN device.
        vxlan: String,
        /// The MAC.
        mac: [u8; 6],
        /// The tunnel endpoint.
        dst: IpAddr,
    },
    /// Answer ARP for a remote endpoint.
    AddNeigh {
        /// The VXLAN device.
        vxlan: String,
        /// The remote endpoint's address.
        ip: Ipv4Addr,
        /// Its MAC.
        mac: [u8; 6],
    },
    /// Remove such an entry.
    DelNeigh {
        /// The VXLAN device.
        vxlan: String,
        /// The address.
        ip: Ipv4Addr,
        /// The MAC.
        mac: [u8; 6],
    },
    /// Put an encrypted network's TAP into its bridge, with the network's MTU, up.
    PlugTap {
        /// The TAP.
        tap: String,
        /// The bridge.
        bridge: String,
        /// The MTU.
        mtu: u32,
    },
    /// Create an endpoint's veth pair and configure the sandbox side.
    AddEndpoint {
        /// The endpoint.
        endpoint: EndpointPlan,
        /// The bridge it plugs into.
        bridge: String,
    },
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::DeleteLink { name, why } => write!(f, "delete {name} ({why})"),
            Change::CreateBridge { network } => write!(
                f,
                "create bridge {} for {} (gateway {}, mtu {})",
                network.bridge(),
                network.name,
                network
                    .gateway
                    .map_or("none: IPv6-only".to_string(), |g| g.to_string()),
                network.mtu
            ),
            Change::FixLink { name, mtu, .. } => write!(f, "fix {name} (mtu {mtu}, mac, up)"),
            Change::AddAddress { link, ip, prefix } => write!(f, "add {ip}/{prefix} to {link}"),
            Change::DelAddress { link, ip, prefix } => {
                write!(f, "remove {ip}/{prefix} from {link}")
            }
            Change::AddAddress6 { link, ip, prefix } => {
                write!(f, "add {ip}/{prefix} to {link} (no DAD)")
            }
            Change::DelAddress6 { link, ip, prefix } => {
                write!(f, "remove {ip}/{prefix} from {link}")
            }
            Change::AddNeigh6 { vxlan, ip, mac: m } => {
                write!(f, "neigh {ip} is {} on {vxlan}", mac(m))
            }
            Change::DelNeigh6 { vxlan, ip } => write!(f, "remove neigh {ip} on {vxlan}"),
            Change::CreateVxlan {
                network,
                local,
                port,
            } => write!(
                f,
                "create vxlan {} (vni {}, {local}:{port}, no learning, proxy ARP)",
                network.vxlan(),
                network.vni
            ),
            Change::AddFdb { vxlan, mac: m, dst } => {
                write!(f, "fdb {} -> {dst} on {vxlan}", mac(m))
            }
            Change::DelFdb { vxlan, mac: m, dst } => {
                write!(f, "remove fdb {} -> {dst} on {vxlan}", mac(m))
            }
            Change::AddNeigh { vxlan, ip, mac: m } => {
                write!(f, "neigh {ip} is {} on {vxlan}", mac(m))
            }
            Change::DelNeigh { vxlan, ip, mac: m } => {
                write!(f, "remove neigh {ip} ({}) on {vxlan}", mac(m))
            }
            Change::PlugTap { tap, bridge, mtu } => {
                write!(f, "plug {tap} into {bridge} (mtu {mtu})")
            }
            Change::AddEndpoint { endpoint, bridge } => write!(
                f,
                "attach {} as {} {} in {} to {bridge}",
                endpoint.id,
                endpoint.ifname,
                endpoint
                    .ip
                    .map(|ip| ip.to_string())
                    .or(endpoint.ip6.map(|ip| ip.to_string()))
                    .unwrap_or_default(),
                endpoint.sandbox.display()
            ),
        }
    }
}
