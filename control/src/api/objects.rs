//! The bodies that describe the cluster's objects: endpoints (`attach`, `detach`),
//! networks, tasks and services, as the CLI, the dashboard and Docker's driver see them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `attach`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// The network's name or ID.
    pub network: String,
    /// The sandbox: a namespace path, or a name under /run/netns.
    pub netns: String,
    /// Its DNS name on the network.
    #[serde(default)]
    pub name: Option<String>,
    /// More DNS names.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// An explicit address.
    #[serde(default)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// An explicit IPv6 address (`--ip6`), on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// The service the sandbox is a task of.
    #[serde(default)]
    pub service: Option<String>,
    /// The interface's name in the sandbox (CNI's `CNI_IFNAME`); otherwise the first
    /// free `eth<N>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// The interface's MAC (`02:42:0a:00:00:02`; CNI's `mac` capability); otherwise
    /// derived from the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Who made the attachment, for runtimes that find it again by their own key
    /// (CNI's `cni:<container>/<ifname>`); `network inspect` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Ports of this node forwarded to the endpoint (CNI's `portMappings`); if they
    /// cannot be set up, the attachment is undone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::state::EndpointPort>,
}

/// `detach`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetachRequest {
    /// The network's name or ID.
    pub network: String,
    /// The sandbox: a namespace path, or a name under /run/netns.
    pub netns: String,
}

/// An endpoint as `attach` and `network inspect` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// Its ID.
    pub id: String,
    /// Its network.
    pub network: String,
    /// Its node, by name.
    pub node: String,
    /// The sandbox's namespace path.
    pub sandbox: String,
    /// The interface inside the sandbox.
    pub ifname: String,
    /// IPv4 address with prefix length; none on an IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// IPv6 address with prefix length, on a dual-stack or IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// MAC.
    pub mac: String,
    /// The IPv4 gateway; none on an IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<std::net::Ipv4Addr>,
    /// The IPv6 gateway, on a dual-stack or IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<std::net::Ipv6Addr>,
    /// The DNS server the sandbox uses (the IPv4 gateway, else the IPv6 one).
    pub dns: std::net::IpAddr,
    /// DNS name.
    pub name: Option<String>,
    /// More DNS names.
    pub aliases: Vec<String>,
    /// The service it is a task of.
    pub service: Option<String>,
    /// Who made it (a runtime's own key, e.g. `cni:<container>/<ifname>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Ports of its node forwarded to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::state::EndpointPort>,
    /// The interface's MTU (the network's).
    #[serde(default)]
    pub mtu: u32,
}

/// A network as `network ls` / `network inspect` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// Its ID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Always "overlay".
    pub driver: String,
    /// Its VNI.
    pub vni: u32,
    /// Its IPv4 subnet; none on an IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Its IPv4 gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Where dynamic IPv4 addresses come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Reserved named addresses.
    pub aux_addresses: BTreeMap<String, std::net::Ipv4Addr>,
    /// Any sandbox may attach.
    pub attachable: bool,
    /// No egress or ingress.
    pub internal: bool,
    /// Only inside WireGuard between nodes.
    pub encrypted: bool,
    /// Interface MTU.
    pub mtu: u32,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Addresses in use (IPv4 ones, on an IPv6-only network IPv6 ones).
    pub in_use: u32,
    /// Addresses the range holds (the same family; at most `u32::MAX`).
    pub capacity: u32,
    /// Its endpoints.
    pub endpoints: Vec<EndpointInfo>,
    /// Dual-stack: endpoints have IPv6 addresses too (Docker's `EnableIPv6`).
    #[serde(default)]
    pub enable_ipv6: bool,
    /// Endpoints have IPv4 addresses (Docker's `EnableIPv4`); only written when not,
    /// for an IPv6-only network.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enable_ipv4: bool,
    /// Subnet, gateway and range of each address family, IPv4 first (Docker's
    /// `IPAM.Config`).
    #[serde(default)]
    pub ipam_config: Vec<IpamConfig>,
}

/// `true`, the default of [`NetworkInfo::enable_ipv4`].
fn yes() -> bool {
    true
}

/// Whether `b` is `true` (a default not written out).
fn is_true(b: &bool) -> bool {
    *b
}

/// One address family of a network (an entry of Docker's `IPAM.Config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// The subnet.
    pub subnet: String,
    /// The gateway.
    pub gateway: String,
    /// Where dynamic addresses come from.
    pub ip_range: String,
}

impl EndpointInfo {
    /// The view of `e` on network `n` in `state`.
    pub fn of(
        state: &crate::state::ClusterState,
        n: &crate::state::Network,
        e: &crate::state::Endpoint,
    ) -> EndpointInfo {
        EndpointInfo {
            id: e.id.clone(),
            network: n.name.clone(),
            node: state
                .nodes
                .get(&e.node)
                .map(|x| x.name.clone())
                .unwrap_or_else(|| e.node.to_string()),
            sandbox: e.sandbox.clone(),
            ifname: e.ifname.clone(),
            address: n
                .space
                .as_ref()
                .zip(e.ip)
                .map(|(s, ip)| format!("{ip}/{}", s.subnet().prefix_len())),
            address6: n
                .space6
                .as_ref()
                .zip(e.ip6)
                .map(|(s, ip)| format!("{ip}/{}", s.subnet().prefix_len())),
            mac: shoal_ipam::format_mac(e.mac),
            gateway: n.space.as_ref().map(|s| s.gateway()),
            gateway6: n.space6.as_ref().map(|s| s.gateway()),
            dns: n.dns_server(),
            name: e.name.clone(),
            aliases: e.aliases.clone(),
            service: e.service.clone(),
            owner: e.runtime_id.clone(),
            ports: e.ports.clone(),
            mtu: n.mtu,
        }
    }
}

impl NetworkInfo {
    /// Every network of `state` (`network ls`).
    pub fn all(state: &crate::state::ClusterState) -> Vec<NetworkInfo> {
        state
            .networks
            .values()
            .map(|n| NetworkInfo::of(state, n))
            .collect()
    }

    /// The view of `n` in `state`.
    pub fn of(state: &crate::state::ClusterState, n: &crate::state::Network) -> NetworkInfo {
        NetworkInfo {
            id: n.id.clone(),
            name: n.name.clone(),
            driver: "overlay".into(),
            vni: n.vni,
            subnet: n.space.as_ref().map(|s| s.subnet().to_string()),
            gateway: n.space.as_ref().map(|s| s.gateway()),
            ip_range: n.space.as_ref().map(|s| s.range().to_string()),
            aux_addresses: n
                .space
                .as_ref()
                .map(|s| s.aux().clone())
                .unwrap_or_default(),
            attachable: n.attachable,
            internal: n.internal,
            encrypted: n.encrypted,
            mtu: n.mtu,
            labels: n.labels.clone(),
            in_use: addresses_in_use(n),
            capacity: match (&n.space, &n.space6) {
                (Some(s), _) => s.capacity(),
                (None, Some(s6)) => u32::try_from(s6.capacity()).unwrap_or(u32::MAX),
                (None, None) => 0,
            },
            endpoints: state
                .endpoints_on(&n.name)
                .map(|e| EndpointInfo::of(state, n, e))
                .collect(),
            enable_ipv6: n.space6.is_some(),
            enable_ipv4: n.space.is_some(),
            ipam_config: n
                .space
                .as_ref()
                .map(|s| IpamConfig {
                    subnet: s.subnet().to_string(),
                    gateway: s.gateway().to_string(),
                    ip_range: s.range().to_string(),
                })
                .into_iter()
                .chain(n.space6.as_ref().map(|s| IpamConfig {
                    subnet: s.subnet().to_string(),
                    gateway: s.gateway().to_string(),
                    ip_range: s.range().to_string(),
                }))
                .collect(),
        }
    }
}

/// The addresses in use on `n`: IPv4 ones, or on an IPv6-only network IPv6 ones.
fn addresses_in_use(n: &crate::state::Network) -> u32 {
    match (&n.space, &n.space6) {
        (Some(s), _) => s.in_use(),
        (None, Some(s6)) => u32::try_from(s6.leases().count()).unwrap_or(u32::MAX),
        (None, None) => 0,
    }
}

/// `service scale` / `service update`: the body is the change itself.
pub type ServiceUpdate = crate::state::ServiceChanges;

/// A task as `service ps` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Its ID (empty for a pending slot, which has no task yet).
    pub id: String,
    /// `service.slot`.
    pub name: String,
    /// Its node, by name (empty while pending).
    pub node: String,
    /// Its state.
    pub state: crate::state::TaskState,
    /// Why, when failed or pending.
    pub message: String,
    /// How often it restarted.
    pub restarts: u32,
    /// Its addresses, per network (the IPv4 one, on an IPv6-only network the IPv6 one).
    pub addresses: BTreeMap<String, std::net::IpAddr>,
    /// Running or shutdown (draining, then stopped).
    #[serde(default)]
    pub desired: crate::state::DesiredState,
    /// Its health, when its service has a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::state::Health>,
    /// The service version it runs.
    #[serde(default)]
    pub version: u64,
}

/// A service as `service ls` / `inspect` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Its ID.
    pub id: String,
    /// Its spec.
    pub spec: crate::state::ServiceSpec,
    /// Its VIP per network.
    pub vips: BTreeMap<String, std::net::Ipv4Addr>,
    /// Its IPv6 VIP per dual-stack network.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vips6: BTreeMap<String, std::net::Ipv6Addr>,
    /// Running tasks.
    pub running: usize,
    /// Tasks wanted (replicas, or nodes for global services).
    pub desired: usize,
    /// Its tasks.
    pub tasks: Vec<TaskInfo>,
    /// Sandboxes attached to it from outside, per network: (endpoint, address; the
    /// IPv4 one, on an IPv6-only network the IPv6 one).
    pub attached: Vec<(String, std::net::IpAddr)>,
    /// The version of its task spec.
    #[serde(default)]
    pub version: u64,
    /// How its last task replacement went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_status: Option<crate::state::UpdateStatus>,
}

impl ServiceInfo {
    /// Every service of `state` (`service ls`).
    pub fn all(state: &crate::state::ClusterState) -> Vec<ServiceInfo> {
        state
            .services
            .values()
            .map(|s| ServiceInfo::of(state, s))
            .collect()
    }

    /// The view of service `s` in `state`.
    pub fn of(state: &crate::state::ClusterState, s: &crate::state::Service) -> ServiceInfo {
        use crate::state::{Availability, NodeStatus, ServiceMode, TaskState};
        let tasks: Vec<TaskInfo> = state
            .tasks
            .values()
            .filter(|t| t.service == s.spec.name)
            .map(|t| TaskInfo {
                id: t.id.clone(),
                name: t.name(s.spec.mode),
                node: state
                    .nodes
                    .get(&t.node)
                    .map(|n| n.name.clone())
                    .unwrap_or_else(|| t.node.to_string()),
                state: t.state,
                message: t.message.clone(),
                restarts: t.restarts,
                desired: t.desired,
                health: t.health,
                version: t.version,
                addresses: state
                    .endpoints
                    .values()
                    .filter(|e| e.task.as_deref() == Some(t.id.as_str()))
                    .map(|e| (e.network.clone(), e.addr()))
                    .collect(),
            })
            .chain(
                crate::state::schedule(state, crate::member::now_ms())
                    .pending
                    .into_iter()
                    .filter(|(svc, _, _)| *svc == s.spec.name)
                    .map(|(svc, slot, why)| TaskInfo {
                        id: String::new(),
                        name: format!("{svc}.{}", slot + 1),
                        node: String::new(),
                        state: crate::state::TaskState::Pending,
                        message: why,
                        restarts: 0,
                        addresses: BTreeMap::new(),
                        desired: Default::default(),
                        health: None,
                        version: s.version,
                    }),
            )
            .collect();
        let desired = match s.spec.mode {
            ServiceMode::Replicated { replicas } => replicas as usize,
            ServiceMode::Global => state
                .nodes
                .values()
                .filter(|n| n.status == NodeStatus::Ready && n.availability == Availability::Active)
                .count(),
        };
        ServiceInfo {
            id: s.id.clone(),
            spec: s.spec.clone(),
            vips: s.vips.clone(),
            vips6: s.vips6.clone(),
            running: tasks
                .iter()
                .filter(|t| t.state == TaskState::Running && t.desired.is_running())
                .count(),
            desired: if s.spec.command.is_empty() {
                0
            } else {
                desired
            },
            tasks,
            attached: state
                .endpoints
                .values()
                .filter(|e| e.service.as_deref() == Some(s.spec.name.as_str()) && e.task.is_none())
                .map(|e| (e.id.clone(), e.addr()))
                .collect(),
            version: s.version,
            update_status: s.update_status.clone(),
        }
    }
}
