//! Changes to the cluster state, as they travel through the Raft log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shoal_ipam::PoolConfig;

use super::{
    AttachSpec, Availability, Endpoint, Health, Network, NetworkSpec, Node, NodeReport, NodeStatus,
    Role, Secrets, Service, ServiceChanges, ServiceSpec, StateOnlyEndpoint, Task, TaskState,
    UpdateStatus,
};
use crate::ids::NodeId;

/// One change, stamped by the leader with the time it was proposed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The leader's wall clock when proposing (unix ms). `apply` uses this, never its own clock.
    pub at_ms: u64,
    /// What to change.
    pub command: Command,
}

/// A change to the cluster state.
///
/// A command lives for one write (built, serialized into the log, applied), so the size
/// of its largest variant (a whole service spec) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// `cluster init`: the first entry of every cluster.
    Bootstrap {
        /// The new cluster's ID.
        cluster_id: String,
        /// The CA certificate (PEM).
        ca_cert_pem: String,
        /// The CA key and join secrets (redacted on the watch stream).
        secrets: Secrets,
        /// Where network subnets come from.
        addr_pools: PoolConfig,
        /// The first node, a manager.
        node: Node,
    },
    /// A node joined.
    AddNode {
        /// The new node.
        node: Node,
    },
    /// The leader saw a node's heartbeats stop or resume.
    SetNodeStatus {
        /// Which node.
        id: NodeId,
        /// Ready or Down.
        status: NodeStatus,
    },
    /// `node update`: availability and labels.
    UpdateNode {
        /// Which node.
        id: NodeId,
        /// Its new availability, if it changes.
        availability: Option<Availability>,
        /// Labels to set.
        labels_add: BTreeMap<String, String>,
        /// Labels to remove.
        labels_rm: Vec<String>,
    },
    /// `node promote` / `node demote`.
    SetRole {
        /// Which node.
        id: NodeId,
        /// Its new role.
        role: Role,
    },
    /// `node rm`.
    RemoveNode {
        /// Which node.
        id: NodeId,
    },
    /// `cluster join-token --rotate`.
    RotateToken {
        /// Whose token.
        role: Role,
        /// The new secret (redacted on the watch stream).
        secret: String,
    },
    /// A new leader announces itself.
    SetLeader {
        /// The leader.
        id: NodeId,
        /// Its Raft term.
        term: u64,
    },
    /// A node reports its routes and underlay MTU.
    ReportNode {
        /// Which node (the reporter itself).
        id: NodeId,
        /// What it reports.
        report: NodeReport,
    },
    /// `network create`.
    CreateNetwork {
        /// The new network's ID (chosen by the leader).
        id: String,
        /// What was asked for.
        spec: NetworkSpec,
    },
    /// `network rm`.
    RemoveNetwork {
        /// Name or ID.
        network: String,
    },
    /// `attach`: a sandbox joins a network.
    Attach {
        /// What was asked for.
        spec: AttachSpec,
    },
    /// `detach`: a sandbox leaves a network.
    Detach {
        /// The network's name or ID.
        network: String,
        /// The node the sandbox is on.
        node: NodeId,
        /// The sandbox's namespace path.
        sandbox: String,
    },
    /// A node announces its WireGuard public key and port (the mesh address is allocated
    /// on first announcement and kept).
    SetWireguard {
        /// Which node (the announcer itself).
        id: NodeId,
        /// Its public key, base64.
        public_key: String,
        /// Its WireGuard UDP port.
        port: u16,
        /// The key generation the key is for.
        generation: u64,
    },
    /// `cluster rotate-keys` (or the periodic rotation): every node makes a new key.
    RotateKeys,
    /// `service create`.
    CreateService {
        /// Its ID (chosen by the leader).
        id: String,
        /// What was asked for.
        spec: ServiceSpec,
    },
    /// `service update` / `service scale`.
    UpdateService {
        /// The service.
        name: String,
        /// What changes.
        #[serde(flatten)]
        changes: ServiceChanges,
    },
    /// `service rm`.
    RemoveService {
        /// The service.
        name: String,
    },
    /// The scheduler's decisions.
    PlaceTasks {
        /// New tasks.
        create: Vec<Task>,
        /// Task IDs to remove.
        remove: Vec<String>,
        /// Task IDs to shut down: out of every backend set now, stopped by their
        /// nodes after the grace period.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shutdown: Vec<String>,
    },
    /// The updater's word on a service's update.
    SetUpdateStatus {
        /// The service.
        service: String,
        /// Its new status.
        status: UpdateStatus,
    },
    /// A node reports on one of its tasks.
    SetTaskState {
        /// The task.
        id: String,
        /// The reporting node (the task's).
        node: NodeId,
        /// Its state.
        state: TaskState,
        /// Why, when it failed.
        message: String,
        /// How often its process restarted.
        restarts: u32,
        /// Its health, when its service has a health check.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        health: Option<Health>,
    },
    /// A Docker network (by its ID on one daemon, or in the Swarm) is this network.
    MapDockerNetwork {
        /// The node whose Docker asked.
        node: NodeId,
        /// The shoal network.
        network: String,
        /// Docker's network ID.
        docker_id: String,
    },
    /// A Docker network is gone; a network Docker made goes with its last one.
    UnmapDockerNetwork {
        /// The node whose Docker asked.
        node: NodeId,
        /// Docker's network ID.
        docker_id: String,
    },
    /// Docker's IPAM on a node asks for an address (`RequestAddress`).
    LeaseAddress {
        /// The node whose Docker asked.
        node: NodeId,
        /// The network (name, ID, or its subnet).
        network: String,
        /// A given address, or none for the next free one.
        ip: Option<std::net::IpAddr>,
        /// The next free address is to be IPv6 (Docker's `--ipv6` pool); a given
        /// address says its family itself.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ipv6: bool,
    },
    /// Docker's IPAM gives an address back (`ReleaseAddress`).
    ReleaseAddress {
        /// The node whose Docker asked.
        node: NodeId,
        /// The network (name, ID, or its subnet).
        network: String,
        /// The address.
        ip: std::net::IpAddr,
    },
    /// A runtime tells the names of an endpoint's sandbox (a container's name and
    /// aliases).
    SetEndpointNames {
        /// The node of the endpoint.
        node: NodeId,
        /// The endpoint.
        endpoint: String,
        /// Its name.
        name: Option<String>,
        /// Its aliases.
        aliases: Vec<String>,
    },
    /// A runtime forwards ports of a node to an endpoint there (Docker's `-p`,
    /// `ProgramExternalConnectivity`); an empty list withdraws them.
    SetEndpointPorts {
        /// The node of the endpoint.
        node: NodeId,
        /// The endpoint.
        endpoint: String,
        /// The ports.
        ports: Vec<super::EndpointPort>,
    },
    /// Benchmarks: endpoints that exist only in the state (see [`StateOnlyEndpoint`])
    /// attached to and detached from one network of one node, in one commit, all or
    /// nothing.
    StateOnlyEndpoints {
        /// The network (name or ID).
        network: String,
        /// The node they are on.
        node: NodeId,
        /// Endpoints to attach (an attached key is left as it is).
        #[serde(default)]
        attach: Vec<StateOnlyEndpoint>,
        /// Keys of endpoints to detach (a missing one is no error).
        #[serde(default)]
        detach: Vec<String>,
    },
    /// Changes nothing but the revision; used to measure commits.
    Noop,
}

impl Command {
    /// The command as nodes outside the manager set may see it: secrets removed.
    /// Applying the redacted command to the public state has the same effect.
    pub fn redacted(&self) -> Command {
        match self {
            Command::Bootstrap {
                cluster_id,
                ca_cert_pem,
                addr_pools,
                node,
                ..
            } => Command::Bootstrap {
                cluster_id: cluster_id.clone(),
                ca_cert_pem: ca_cert_pem.clone(),
                secrets: Secrets::default(),
                addr_pools: addr_pools.clone(),
                node: node.clone(),
            },
            Command::RotateToken { role, .. } => Command::RotateToken {
                role: *role,
                secret: String::new(),
            },
            other => other.clone(),
        }
    }

    /// The node a command only concerns, if it is about one node reporting on itself.
    /// Workers may propose such commands for themselves and nothing else.
    pub fn self_scope(&self) -> Option<NodeId> {
        match self {
            Command::SetNodeStatus { id, .. }
            | Command::ReportNode { id, .. }
            | Command::SetWireguard { id, .. } => Some(*id),
            Command::Attach { spec } => Some(spec.node),
            Command::SetTaskState { node, .. } => Some(*node),
            Command::Detach { node, .. } => Some(*node),
            Command::MapDockerNetwork { node, .. }
            | Command::UnmapDockerNetwork { node, .. }
            | Command::LeaseAddress { node, .. }
            | Command::ReleaseAddress { node, .. }
            | Command::SetEndpointNames { node, .. }
            | Command::SetEndpointPorts { node, .. }
            | Command::StateOnlyEndpoints { node, .. } => Some(*node),
            _ => None,
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Bootstrap { .. } => "bootstrap",
            Command::AddNode { .. } => "add_node",
            Command::SetNodeStatus { .. } => "set_node_status",
            Command::UpdateNode { .. } => "update_node",
            Command::SetRole { .. } => "set_role",
            Command::RemoveNode { .. } => "remove_node",
            Command::RotateToken { .. } => "rotate_token",
            Command::SetLeader { .. } => "set_leader",
            Command::ReportNode { .. } => "report_node",
            Command::CreateNetwork { .. } => "create_network",
            Command::RemoveNetwork { .. } => "remove_network",
            Command::Attach { .. } => "attach",
            Command::Detach { .. } => "detach",
            Command::SetWireguard { .. } => "set_wireguard",
            Command::RotateKeys => "rotate_keys",
            Command::CreateService { .. } => "create_service",
            Command::UpdateService { .. } => "update_service",
            Command::RemoveService { .. } => "remove_service",
            Command::PlaceTasks { .. } => "place_tasks",
            Command::SetTaskState { .. } => "set_task_state",
            Command::SetUpdateStatus { .. } => "set_update_status",
            Command::MapDockerNetwork { .. } => "map_docker_network",
            Command::UnmapDockerNetwork { .. } => "unmap_docker_network",
            Command::LeaseAddress { .. } => "lease_address",
            Command::ReleaseAddress { .. } => "release_address",
            Command::SetEndpointNames { .. } => "set_endpoint_names",
            Command::SetEndpointPorts { .. } => "set_endpoint_ports",
            Command::StateOnlyEndpoints { .. } => "state_only_endpoints",
            Command::Noop => "noop",
        }
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The state's revision after the change.
    pub revision: u64,
    /// Anything the command computed that its caller needs.
    pub output: Output,
}

/// Data computed while applying (allocations and the like).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Output {
    /// Nothing beyond the new revision.
    None,
    /// The network created.
    Network(Box<Network>),
    /// The endpoint attached (or already there).
    Endpoint(Box<Endpoint>),
    /// The service created or updated.
    Service(Box<Service>),
    /// An address leased.
    Address {
        /// The address.
        ip: std::net::IpAddr,
    },
}
