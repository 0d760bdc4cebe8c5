//! Overlay networks and endpoints as the cluster records them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use shoal_ipam::{AddressSpace, AddressSpace6};

use crate::ids::NodeId;

/// The first VNI handed out.
pub const FIRST_VNI: u32 = 4096;
/// VXLAN costs this many bytes of the underlay MTU.
pub const VXLAN_OVERHEAD: u32 = 50;
/// An IPv6 underlay costs this many bytes more: its outer header is 40 bytes, not 20
/// (VXLAN over IPv6 70, encrypted 130).
pub const IPV6_UNDERLAY_OVERHEAD: u32 = 20;
/// The underlay MTU assumed for nodes that have not reported theirs.
pub const DEFAULT_UNDERLAY_MTU: u32 = 1500;

/// What `network create` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Its name, unique in the cluster.
    pub name: String,
    /// An explicit subnet; otherwise one is cut from the address pools.
    #[serde(default)]
    pub subnet: Option<Ipv4Net>,
    /// An explicit gateway; otherwise the subnet's first host.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// Where dynamic addresses come from; otherwise the whole subnet.
    #[serde(default)]
    pub ip_range: Option<Ipv4Net>,
    /// Named addresses kept out of allocation.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    /// Dual-stack (`--ipv6`): endpoints get an IPv6 address too, from `subnet6` or a
    /// /64 cut from the IPv6 pools.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipv6: bool,
    /// `--ipv4=false` (with `--ipv6`): an IPv6-only network, with no IPv4 subnet and
    /// no IPv4 address on any endpoint (Docker's `EnableIPv4: false`). Absent means
    /// IPv4 is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<bool>,
    /// An explicit IPv6 subnet (`--subnet` with an IPv6 CIDR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    /// An explicit IPv6 gateway; otherwise the IPv6 subnet's `::1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    /// Where dynamic IPv6 addresses come from; otherwise the whole IPv6 subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range6: Option<Ipv6Net>,
    /// Whether any sandbox may attach (not only service tasks).
    #[serde(default)]
    pub attachable: bool,
    /// No traffic to or from outside the network.
    #[serde(default)]
    pub internal: bool,
    /// Traffic between nodes only inside WireGuard.
    #[serde(default)]
    pub encrypted: bool,
    /// An explicit MTU; otherwise the smallest node underlay MTU minus VXLAN's 50.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// An explicit VXLAN network identifier (Docker's
    /// `com.docker.network.driver.overlay.vxlanid_list`); otherwise the next free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// The Docker network this one is made for (`docker network create -d shoal`): its
    /// ID on the daemon that asked, or in the Swarm, and that daemon's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<(String, NodeId)>,
    /// Operator labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl NetworkSpec {
    /// Whether the network is to have IPv4 (everything but `--ipv4=false`).
    pub fn wants_ipv4(&self) -> bool {
        self.ipv4 != Some(false)
    }
}

/// An overlay network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Its ID (hex, chosen by the leader).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its VXLAN network identifier.
    pub vni: u32,
    /// Subnet, gateway, range, aux addresses and leases; none on an IPv6-only network
    /// (absent from the stored JSON, which older versions always wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<AddressSpace>,
    /// IPv6 subnet, gateway, range and leases of a dual-stack or IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space6: Option<AddressSpace6>,
    /// Any sandbox may attach.
    pub attachable: bool,
    /// No egress, no ingress.
    pub internal: bool,
    /// Only inside WireGuard between nodes.
    pub encrypted: bool,
    /// The MTU of every interface on the network.
    pub mtu: u32,
    /// Operator labels.
    pub labels: BTreeMap<String, String>,
    /// When it was created (unix ms).
    pub created_at_ms: u64,
    /// Docker networks that are this network, by Docker's network ID (one per daemon
    /// outside a Swarm, the Swarm's one in it), with the nodes whose daemon has it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub docker: BTreeMap<String, BTreeSet<NodeId>>,
    /// Made by Docker: it goes when the last Docker network that is it goes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_docker: bool,
}

impl Network {
    /// Whether it is IPv6-only (`--ipv4=false`): no IPv4 subnet, no IPv4 addresses.
    pub fn ipv6_only(&self) -> bool {
        self.space.is_none()
    }

    /// Its IPv4 subnet, if it has IPv4.
    pub fn subnet(&self) -> Option<Ipv4Net> {
        self.space.as_ref().map(AddressSpace::subnet)
    }

    /// The MAC of its anycast gateway: derived from its IPv4 gateway, or on an
    /// IPv6-only network from its IPv6 one.
    pub fn gateway_mac(&self) -> [u8; 6] {
        match (&self.space, &self.space6) {
            (Some(space), _) => shoal_ipam::mac_for(space.gateway()),
            (None, Some(space6)) => shoal_ipam::mac_for(space6.gateway()),
            (None, None) => shoal_ipam::mac_for(Ipv4Addr::UNSPECIFIED),
        }
    }

    /// The resolver its sandboxes use: on the IPv4 gateway, else the IPv6 one.
    pub fn dns_server(&self) -> IpAddr {
        match (&self.space, &self.space6) {
            (Some(space), _) => space.gateway().into(),
            (None, Some(space6)) => space6.gateway().into(),
            (None, None) => Ipv4Addr::UNSPECIFIED.into(),
        }
    }

    /// Its subnets, IPv4 first, for messages: `10.0.0.0/24, fd00::/64`.
    pub fn subnets(&self) -> String {
        let v4 = self.space.as_ref().map(|s| s.subnet().to_string());
        let v6 = self.space6.as_ref().map(|s| s.subnet().to_string());
        v4.into_iter().chain(v6).collect::<Vec<_>>().join(", ")
    }
}

/// What `attach` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachSpec {
    /// The network's name.
    pub network: String,
    /// The node the sandbox lives on.
    pub node: NodeId,
    /// The sandbox: its network namespace path on that node.
    pub sandbox: String,
    /// Its DNS name on the network.
    #[serde(default)]
    pub name: Option<String>,
    /// More DNS names.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// An explicit address.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// An explicit IPv6 address (`--ip6`), on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// The service the sandbox is a task of.
    #[serde(default)]
    pub service: Option<String>,
    /// The scheduled task the sandbox is, if any.
    #[serde(default)]
    pub task: Option<String>,
    /// The node's own address (routing mesh, L7 ingress): on its bridge, not in a
    /// sandbox; may join non-attachable networks.
    #[serde(default)]
    pub ingress: bool,
    /// The interface's name in the sandbox; otherwise the first free `eth<N>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// The container runtime moves the interface into the sandbox and addresses it
    /// (Docker's `Join`): shoal makes the veth pair and plugs the node's end only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handoff: bool,
    /// The runtime's own ID of the endpoint (Docker's endpoint ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    /// A MAC of the caller's (CNI's `mac` capability); otherwise derived from the
    /// address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<[u8; 6]>,
}

/// One sandbox's attachment to one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Its ID: a digest of network, node and sandbox.
    pub id: String,
    /// The network's name.
    pub network: String,
    /// The node it lives on.
    pub node: NodeId,
    /// The sandbox's namespace path on that node.
    pub sandbox: String,
    /// Its interface name inside the sandbox (eth0, eth1, ...).
    pub ifname: String,
    /// Its DNS name.
    pub name: Option<String>,
    /// More DNS names.
    pub aliases: Vec<String>,
    /// Its IPv4 address; none on an IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// Its IPv6 address, on a dual-stack or IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// Its MAC (derived from the IPv4 address, else the IPv6 one, unless the caller
    /// gave one).
    pub mac: [u8; 6],
    /// The service it is a task of.
    pub service: Option<String>,
    /// The scheduled task it is, if any.
    #[serde(default)]
    pub task: Option<String>,
    /// The node's own address on the network (routing mesh, L7 ingress).
    #[serde(default)]
    pub ingress: bool,
    /// When it was attached (unix ms).
    pub created_at_ms: u64,
    /// The runtime moves the interface into the sandbox (see [`AttachSpec::handoff`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handoff: bool,
    /// The runtime's own ID of the endpoint (Docker's endpoint ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    /// Ports of its node forwarded to it (Docker's `-p`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

/// The sandbox paths of endpoints that exist only in the cluster state start with this
/// (see [`StateOnlyEndpoint`]); `attach` refuses such paths.
pub const STATE_ONLY_SANDBOX: &str = "/shoal-state-only/";

/// At most this many endpoints are attached or detached by one
/// `Command::StateOnlyEndpoints`.
pub const MAX_STATE_ONLY_BATCH: usize = 5000;

/// An endpoint that exists only in the cluster state, for scale benchmarks: every node
/// programs it (FDB, neighbour, DNS) as any remote endpoint, and its own node programs
/// nothing for it (there is no sandbox). Its sandbox path is [`STATE_ONLY_SANDBOX`]
/// followed by `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateOnlyEndpoint {
    /// Unique per node and network: 1-64 letters, digits, '-', '_' or '.'.
    pub key: String,
    /// Its DNS name.
    #[serde(default)]
    pub name: Option<String>,
    /// The service it is a task of (attached from outside, as `attach --service`): it
    /// joins `tasks.<service>`, the service's DNS answers and its load balancers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl StateOnlyEndpoint {
    /// The sandbox path it is recorded under.
    pub fn sandbox(&self) -> String {
        state_only_sandbox(&self.key)
    }
}

/// The sandbox path of the state-only endpoint `key`.
pub fn state_only_sandbox(key: &str) -> String {
    format!("{STATE_ONLY_SANDBOX}{key}")
}

impl Endpoint {
    /// Its IPv4 address, else its IPv6 one (every endpoint has one of them): the
    /// address to name it by in messages.
    pub fn addr(&self) -> IpAddr {
        match (self.ip, self.ip6) {
            (Some(ip), _) => ip.into(),
            (None, Some(ip6)) => ip6.into(),
            (None, None) => Ipv6Addr::UNSPECIFIED.into(),
        }
    }

    /// Whether it exists only in the cluster state (no sandbox on its node).
    pub fn is_state_only(&self) -> bool {
        self.sandbox.starts_with(STATE_ONLY_SANDBOX)
    }
}

/// A port of an endpoint's node forwarded to the endpoint, on every address of the
/// node (Docker's `docker run -p HOST:CONTAINER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPort {
    /// TCP or UDP.
    pub protocol: super::Protocol,
    /// The node's port.
    pub host_port: u16,
    /// The endpoint's port.
    pub port: u16,
}

/// What a node reports about its own network, for subnet and MTU choices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Its routes (not shoal's own), which network subnets must not overlap.
    pub routes: Vec<Ipv4Net>,
    /// Its IPv6 routes (not shoal's own, nor link-local or multicast), which IPv6
    /// network subnets must not overlap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes6: Vec<Ipv6Net>,
    /// The MTU of its underlay interface.
    pub underlay_mtu: u32,
    /// Why this node cannot carry encrypted networks, if it cannot.
    #[serde(default)]
    pub no_encryption: Option<String>,
    /// Its machine architecture as `uname -m` says it (`x86_64`), for
    /// `node.platform.arch` constraints.
    #[serde(default)]
    pub arch: String,
}

/// WireGuard costs this many bytes of the underlay MTU on IPv4 (on top of VXLAN's 50).
pub const WIREGUARD_OVERHEAD: u32 = 60;

/// The pool nodes' WireGuard mesh addresses come from; network subnets never overlap it.
pub fn mesh_pool() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(100, 96, 0, 0), 12).unwrap_or_default()
}

/// A node's WireGuard identity, as the cluster knows it (the private key never leaves
/// the node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireguardPeer {
    /// Its X25519 public key, base64 (44 characters).
    pub public_key: String,
    /// Its mesh address: source and destination of the inner packets.
    pub mesh_ip: Ipv4Addr,
    /// Its WireGuard UDP port on its underlay address.
    pub port: u16,
    /// The cluster key generation this key belongs to.
    pub generation: u64,
}

/// The endpoint ID for `sandbox` of `node` on the network with ID `network_id`.
pub fn endpoint_id(network_id: &str, node: NodeId, sandbox: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{network_id}\0{node}\0{sandbox}").as_bytes());
    hex::encode(&digest[..8])
}
