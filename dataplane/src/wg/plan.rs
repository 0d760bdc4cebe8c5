//! What the encrypted data path of one node should do, as plain data.

use std::net::{Ipv4Addr, SocketAddr};

/// The whole encrypted data path of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WgPlan {
    /// This node's private key, base64.
    pub private_key: String,
    /// The WireGuard UDP port.
    pub port: u16,
    /// This node's mesh address (source of inner packets).
    pub mesh_ip: Option<Ipv4Addr>,
    /// The VXLAN port written into inner packets.
    pub vxlan_port: u16,
    /// Every other node.
    pub peers: Vec<PeerPlan>,
    /// The encrypted networks this node carries.
    pub networks: Vec<EncryptedNetwork>,
}

/// Another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPlan {
    /// Its name, for status and logs.
    pub name: String,
    /// Its public key, base64.
    pub public_key: String,
    /// Where its WireGuard socket listens.
    pub endpoint: SocketAddr,
    /// Its mesh address.
    pub mesh_ip: Ipv4Addr,
}

/// One encrypted network on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedNetwork {
    /// Its VNI.
    pub vni: u32,
    /// Its TAP device (plugged into the network's bridge by the reconciler).
    pub tap: String,
    /// The MTU of its interfaces.
    pub mtu: u32,
    /// Its remote endpoints: MAC, IPv4 address (none on an IPv6-only network), and the
    /// mesh address of their node.
    pub remotes: Vec<([u8; 6], Option<Ipv4Addr>, Ipv4Addr)>,
    /// The IPv6 addresses of its remote endpoints with their MACs (dual-stack), which
    /// proxy NDP answers for.
    pub neighbours6: Vec<(std::net::Ipv6Addr, [u8; 6])>,
}

/// The TAP name of encrypted network `vni`.
pub fn tap_name(vni: u32) -> String {
    format!("{}w{vni}", crate::overlay::PREFIX)
}
