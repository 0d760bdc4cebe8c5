//! What one node's overlay should look like, as plain data.
//!
//! The agent derives a [`NodePlan`] from the cluster state; [`diff`](super::diff)
//! compares it with what the kernel has. Names of kernel objects are derived here:
//!
//! | object | name |
//! | --- | --- |
//! | network bridge (anycast gateway) | `shl-b<VNI>` |
//! | network VXLAN device | `shl-v<VNI>` |
//! | endpoint veth, node side | `shl-e<first 8 hex of the endpoint ID>` |
//! | endpoint veth, sandbox side before the move | `shl-p<same>` |

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{Ipv4Net, Ipv6Net};

/// Every kernel object shoal makes is named with this prefix.
pub const PREFIX: &str = "shl-";
/// The nftables table shoal owns.
pub const NFT_TABLE: &str = "shoal";

/// A node's whole overlay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePlan {
    /// The node's underlay address (IPv4 or IPv6): the local VXLAN tunnel endpoint.
    pub local_ip: Option<IpAddr>,
    /// The VXLAN UDP port.
    pub vxlan_port: u16,
    /// The networks this node carries.
    pub networks: Vec<NetworkPlan>,
    /// The endpoints on this node.
    pub endpoints: Vec<EndpointPlan>,
    /// Ports published on this node's underlay address.
    pub published: Vec<crate::nat_lb::Published>,
    /// The node's upstream resolvers: a sandbox's DNS query to one of them is answered
    /// by its network's resolver on the gateway, which knows the cluster's names and
    /// forwards the rest there. This is how containers whose runtime resolves for them
    /// (Docker's embedded DNS forwards from the container to the host's resolvers)
    /// find names on other hosts.
    pub dns_intercept: Vec<Ipv4Addr>,
    /// `--lb-idle-timeout`: published connections end after this many seconds idle
    /// (a conntrack timeout policy of their own; the host's defaults stay).
    pub lb_idle_timeout: Option<u32>,
}

/// One network on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// Its name (for messages).
    pub name: String,
    /// Its VXLAN network identifier.
    pub vni: u32,
    /// The IPv4 anycast gateway, with the subnet's prefix length (on the bridge of
    /// every node); none on an IPv6-only network, which has nothing IPv4.
    pub gateway: Option<Ipv4Net>,
    /// The anycast gateway MAC.
    pub gateway_mac: [u8; 6],
    /// Dual-stack and IPv6-only networks: the IPv6 anycast gateway, with the IPv6
    /// subnet's prefix length (on the bridge of every node, like the IPv4 one).
    pub gateway6: Option<Ipv6Net>,
    /// Interface MTU on the network.
    pub mtu: u32,
    /// No egress and no ingress.
    pub internal: bool,
    /// Carried inside WireGuard: a TAP served by the encrypted data path takes the
    /// place of the kernel VXLAN device.
    pub encrypted: bool,
    /// Endpoints on other nodes: their MAC goes to the VXLAN FDB, their addresses to the
    /// proxy-ARP and proxy-NDP tables.
    pub remotes: Vec<Remote>,
    /// This node's own address on the network (routing mesh and L7 ingress), if it has
    /// one.
    pub node_addr: Option<NodeAddr>,
}

/// A node's own address and MAC on a network. Unlike the anycast gateway they are the
/// node's alone, so traffic the node source-NATs to them comes back to it:
///
/// ```text
///  client ─▶ node:PUBLISHED ─dnat to a task, mark─▶ bridge ─snat to node addr─▶ task (any node)
///  task's answer ─▶ node MAC ─bridge prerouting: daddr := bridge MAC, pkttype host─▶ de-NAT ─▶ client
/// ```
/// The address sits on the bridge as a /32 (IPv6: a /128); frames the bridge sends from
/// it leave with the node MAC (bridge output), so remote bridges learn where it lives.
/// It has an address in each family the network has: IPv4 only where the network has
/// IPv4, IPv6 only where it has IPv6 (an IPv6-only network's is IPv6 alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeAddr {
    /// Its IPv4 address; none on an IPv6-only network.
    pub ip: Option<Ipv4Addr>,
    /// Its IPv6 address, on a dual-stack or IPv6-only network (on the bridge as a
    /// /128, like the IPv4 one).
    pub ip6: Option<Ipv6Addr>,
    /// Its MAC.
    pub mac: [u8; 6],
}

/// The mark bit on connections that came in through a published port of the routing
/// mesh; they leave source-NATed to the node's address on the task's network. Only this
/// bit is set and tested: other bits of the packet mark belong to other tools (0x4000
/// and 0x8000 to kube-proxy, 0x0f00 to Cilium, 0xca6c to wg-quick's own packets).
pub const MESH_MARK: u32 = 0x2000;

/// The mark bit on routing-mesh connections that keep the client's source address
/// (`src=preserve`): not source-NATed; leaving on a bridge, their frames carry the
/// node's own MAC, by which the task's sandbox sends the replies back through this node
/// ([`return_path`](crate::return_path)). Clients on the service's own network are
/// still source-NATed (a task reaching itself through the mesh would see its own
/// address, which the kernel drops as a martian).
pub const MESH_PRESERVE_MARK: u32 = 0x1000;

/// An endpoint on another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Remote {
    /// Its IPv4 overlay address; none on an IPv6-only network.
    pub ip: Option<Ipv4Addr>,
    /// Its IPv6 overlay address, on a dual-stack or IPv6-only network.
    pub ip6: Option<Ipv6Addr>,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its node's underlay address (the same family as the local one).
    pub node_ip: IpAddr,
}

/// A sandbox's interface on a network of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPlan {
    /// The endpoint ID.
    pub id: String,
    /// The network's VNI.
    pub vni: u32,
    /// The sandbox's network namespace.
    pub sandbox: PathBuf,
    /// The interface name inside the sandbox.
    pub ifname: String,
    /// Its IPv4 address with the subnet's prefix length; none on an IPv6-only network.
    pub ip: Option<Ipv4Net>,
    /// Its MAC.
    pub mac: [u8; 6],
    /// The IPv4 gateway (the IPv4 default route's, when `default_route`).
    pub gateway: Option<Ipv4Addr>,
    /// Its IPv6 address with the IPv6 subnet's prefix length, on a dual-stack or
    /// IPv6-only network.
    pub ip6: Option<Ipv6Net>,
    /// The IPv6 gateway (the IPv6 default route's, when `default_route6`).
    pub gateway6: Option<Ipv6Addr>,
    /// The MTU.
    pub mtu: u32,
    /// Whether the sandbox's IPv4 default route goes through this network (its first
    /// non-internal one with IPv4).
    pub default_route: bool,
    /// Whether the sandbox's IPv6 default route goes through this network (its first
    /// non-internal one with IPv6, which need not be its IPv4 default's).
    pub default_route6: bool,
    /// The container runtime moves the sandbox end into the sandbox and configures it
    /// (Docker's `Join`): the pair is made with the sandbox end left in this namespace
    /// under [`EndpointPlan::peer_ifname`], for the runtime to take.
    pub handoff: bool,
}

impl NetworkPlan {
    /// The IPv6 subnet of a dual-stack network.
    pub fn subnet6(&self) -> Option<Ipv6Net> {
        self.gateway6.map(|g| g.trunc())
    }
    /// The bridge's name.
    pub fn bridge(&self) -> String {
        bridge_name(self.vni)
    }
    /// The VXLAN device's name.
    pub fn vxlan(&self) -> String {
        format!("{PREFIX}v{}", self.vni)
    }
    /// The TAP device's name (encrypted networks).
    pub fn tap(&self) -> String {
        crate::wg::plan::tap_name(self.vni)
    }
    /// Its IPv4 subnet; none on an IPv6-only network.
    pub fn subnet(&self) -> Option<Ipv4Net> {
        self.gateway.map(|g| g.trunc())
    }
}

/// The sandbox-side veth of endpoint `id` before it is moved (by shoal, or by the
/// runtime for a handoff endpoint).
pub fn peer_ifname(id: &str) -> String {
    format!("{PREFIX}p{}", id.get(..8).unwrap_or(id))
}

/// The node-side veth of endpoint `id`.
pub fn host_ifname(id: &str) -> String {
    format!("{PREFIX}e{}", id.get(..8).unwrap_or(id))
}

/// The bridge name of network `vni`.
pub fn bridge_name(vni: u32) -> String {
    format!("{PREFIX}b{vni}")
}

impl EndpointPlan {
    /// The node-side veth.
    pub fn host_ifname(&self) -> String {
        host_ifname(&self.id)
    }
    /// The sandbox-side veth before it is moved and renamed.
    pub fn peer_ifname(&self) -> String {
        peer_ifname(&self.id)
    }
    /// The sandbox's name when it is a named namespace under /run/netns.
    pub fn netns_name(&self) -> Option<String> {
        let parent = self.sandbox.parent()?;
        if parent != std::path::Path::new(crate::netns::NETNS_DIR) {
            return None;
        }
        self.sandbox.file_name()?.to_str().map(String::from)
    }
}

/// A network for tests of plans and rules.
#[cfg(test)]
pub(crate) fn sample_network(vni: u32, internal: bool) -> NetworkPlan {
    NetworkPlan {
        name: format!("n{vni}"),
        vni,
        gateway: Some("10.0.0.1/24".parse().unwrap()),
        gateway_mac: [2, 0x42, 10, 0, 0, 1],
        gateway6: None,
        mtu: 1450,
        internal,
        encrypted: false,
        remotes: vec![],
        node_addr: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_in_ifnamsiz() {
        let n = sample_network(16_777_215, false);
        assert!(n.bridge().len() <= 15 && n.vxlan().len() <= 15);
        let e = EndpointPlan {
            id: "0123456789abcdef".into(),
            vni: 1,
            sandbox: "/run/netns/x".into(),
            ifname: "eth0".into(),
            ip: Some("10.0.0.2/24".parse().unwrap()),
            mac: [0; 6],
            gateway: Some("10.0.0.1".parse().unwrap()),
            ip6: None,
            gateway6: None,
            mtu: 1450,
            default_route: true,
            default_route6: false,
            handoff: false,
        };
        assert_eq!(e.host_ifname(), "shl-e01234567");
        assert_eq!(e.netns_name().as_deref(), Some("x"));
        let other = EndpointPlan {
            sandbox: "/proc/1/ns/net".into(),
            ..e
        };
        assert_eq!(other.netns_name(), None);
    }
}
