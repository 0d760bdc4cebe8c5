//! The replicated cluster state: what every node knows about the cluster.
//!
//! ```text
//!   Proposal ──apply()──▶ ClusterState (public: watched by every node)
//!                     └──▶ Secrets      (CA key, join secrets: managers only)
//! ```
//! `apply` is pure and deterministic: the leader stamps the time into each proposal, so
//! every manager applying the log, and every node replaying the watch stream, computes
//! the same state.
//!
//! - `command`: [`Proposal`], [`Command`] and what applying one returns.
//! - `apply`: the state machine, one module per kind of command (cluster, node,
//!   network, service, docker, ports).
//! - `error`: [`ApplyError`] (a command refused) and [`SpecError`] (a value that does
//!   not read as a spec).
//! - `network`, `service`, `publish`, `placement`, [`hostname`]: the specs and their
//!   parsers (`--publish`, `--constraint`, `--placement-pref`, `--hostname`).
//! - `schedule`: where tasks go, as a pure function of the state.

mod apply;
mod command;
mod endpoints;
mod error;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod hostname;
mod network;
mod placement;
mod publish;
pub mod rollout;
mod schedule;
mod service;
pub mod updater;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use shoal_ipam::PoolConfig;

/// The persistent ordered map the cluster state keeps its objects in: a clone shares every
/// node of the tree, and a change copies only the path to what it changes, so publishing
/// the state after every applied entry costs O(log n), not a deep copy.
pub use imbl::OrdMap;

pub use apply::docker::{docker_pool, docker_pool6};
pub use apply::{apply, underlay_family_mismatch, validate_label};
pub use command::{Applied, Command, Output, Proposal};
pub use endpoints::Endpoints;
pub use error::{ApplyError, SpecError};
pub use network::{
    endpoint_id, mesh_pool, state_only_sandbox, AttachSpec, Endpoint, EndpointPort, Network,
    NetworkSpec, NodeReport, StateOnlyEndpoint, WireguardPeer, DEFAULT_UNDERLAY_MTU, FIRST_VNI,
    IPV6_UNDERLAY_OVERHEAD, MAX_STATE_ONLY_BATCH, STATE_ONLY_SANDBOX, VXLAN_OVERHEAD,
    WIREGUARD_OVERHEAD,
};
pub use placement::{Constraint, ConstraintKey, ConstraintOp, Placement, Spread};
pub use publish::{PortRemoval, PortSpec, Protocol, PublishMode, SourceMode, DYNAMIC_PORTS};
pub use rollout::{
    DesiredState, FailureAction, Health, HealthCheck, UpdateConfig, UpdateOrder, UpdateState,
    UpdateStatus,
};
pub use schedule::{schedule, Assignments};
pub use service::{
    DnsConfig, EndpointMode, NetworkAttachment, NetworkOptions, Service, ServiceChanges,
    ServiceMode, ServiceSpec, Task, TaskState, IFNAME_OPT,
};

use crate::ids::NodeId;

/// A node's part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the Raft log and may change cluster state.
    Manager,
    /// Follows the cluster state; may only report on itself.
    Worker,
}

impl Role {
    /// The lower-case word used on the command line and in certificates.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }

    /// Parses `manager` or `worker`.
    pub fn parse(s: &str) -> Result<Role, SpecError> {
        match s {
            "manager" => Ok(Role::Manager),
            "worker" => Ok(Role::Worker),
            other => Err(SpecError::UnknownRole(other.to_string())),
        }
    }
}

/// Whether the scheduler may place work on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    /// New tasks may be placed here.
    Active,
    /// No new tasks; running ones stay.
    Pause,
    /// No tasks; running ones move elsewhere.
    Drain,
}

impl Availability {
    /// Parses `active`, `pause` or `drain`.
    pub fn parse(s: &str) -> Result<Availability, SpecError> {
        match s {
            "active" => Ok(Availability::Active),
            "pause" => Ok(Availability::Pause),
            "drain" => Ok(Availability::Drain),
            other => Err(SpecError::UnknownAvailability(other.to_string())),
        }
    }

    /// The lower-case word used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

/// Whether a node's heartbeats reach the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Heartbeats arrive.
    Ready,
    /// No heartbeat for longer than the timeout.
    Down,
    /// Its agent is shutting down (SIGTERM): it takes no new connections or tasks, its
    /// tasks move elsewhere, and a manager leaves the Raft voters. It turns Ready when
    /// the agent starts again, Down when its heartbeats stop.
    Leaving,
}

impl NodeStatus {
    /// `Ready` or `Down`, as `node ls` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Ready => "Ready",
            NodeStatus::Down => "Down",
            NodeStatus::Leaving => "Leaving",
        }
    }
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Its identity (also its Raft ID).
    pub id: NodeId,
    /// The name users call it by; unique in the cluster.
    pub name: String,
    /// Manager or worker.
    pub role: Role,
    /// Whether work may be placed on it.
    pub availability: Availability,
    /// Whether it is heard from.
    pub status: NodeStatus,
    /// Its address on the underlay (VXLAN and WireGuard endpoint).
    pub addr: IpAddr,
    /// Where its control server (mTLS) listens.
    pub control_addr: SocketAddr,
    /// When it joined (unix ms, leader's clock).
    pub joined_at_ms: u64,
    /// When `status` last changed (unix ms, leader's clock).
    pub status_since_ms: u64,
    /// When `availability` last changed (unix ms, leader's clock; 0: never).
    #[serde(default)]
    pub availability_since_ms: u64,
    /// Operator labels (`node update --label-add`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What the node last reported about its own network.
    #[serde(default)]
    pub report: NodeReport,
    /// Its WireGuard identity, once it has announced one.
    #[serde(default)]
    pub wireguard: Option<WireguardPeer>,
}

impl Node {
    /// Whether its tasks may be chosen for new connections: Ready and not draining.
    /// When not, they leave every balancer (mesh, VIPs, DNS, ingress) of every node,
    /// while connections already made keep their conntrack entries.
    pub fn serves(&self) -> bool {
        self.status == NodeStatus::Ready && self.availability != Availability::Drain
    }

    /// Whether its agent runs and stops its tasks when told (Ready or Leaving, not Down).
    pub fn runs_tasks(&self) -> bool {
        matches!(self.status, NodeStatus::Ready | NodeStatus::Leaving)
    }

    /// Whether its tasks are moving elsewhere: drained, or its agent is shutting down.
    /// Their replacements start before they stop (see `schedule`).
    pub fn evacuating(&self) -> bool {
        self.status == NodeStatus::Leaving
            || (self.status == NodeStatus::Ready && self.availability == Availability::Drain)
    }

    /// Since when it has been evacuating (unix ms), if it is.
    pub fn evacuating_since_ms(&self) -> Option<u64> {
        match (self.status, self.availability) {
            (NodeStatus::Leaving, Availability::Drain) => {
                Some(self.status_since_ms.min(self.availability_since_ms))
            }
            (NodeStatus::Leaving, _) => Some(self.status_since_ms),
            (NodeStatus::Ready, Availability::Drain) => Some(self.availability_since_ms),
            _ => None,
        }
    }
}

/// Keeps the entries of `map` that `keep` says to: `BTreeMap::retain` for an [`OrdMap`]
/// (which has none), copying only the paths to what it removes.
pub(crate) fn retain<K: Ord + Clone, V: Clone>(
    map: &mut OrdMap<K, V>,
    keep: impl Fn(&K, &V) -> bool,
) {
    let gone: Vec<K> = map
        .iter()
        .filter(|(k, v)| !keep(k, v))
        .map(|(k, _)| k.clone())
        .collect();
    for k in gone {
        map.remove(&k);
    }
}

/// Changes every value of `map` with `f` (tests: an [`OrdMap`] has no `values_mut`).
#[cfg(test)]
pub(crate) fn each_mut<K: Ord + Clone, V: Clone>(
    map: &mut OrdMap<K, V>,
    mut f: impl FnMut(&mut V),
) {
    let keys: Vec<K> = map.keys().cloned().collect();
    for k in keys {
        if let Some(v) = map.get_mut(&k) {
            f(v);
        }
    }
}

/// Everything every node of the cluster may know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The cluster's identity (hex), empty before `cluster init`.
    pub cluster_id: String,
    /// When the cluster was created (unix ms).
    pub created_at_ms: u64,
    /// Bumped by every applied change; watchers resume from it.
    pub revision: u64,
    /// The cluster CA certificate (PEM); its digest is in every join token.
    pub ca_cert_pem: String,
    /// The Raft leader as last announced, and its term.
    pub leader: Option<NodeId>,
    /// The term in which `leader` announced itself.
    pub leader_term: u64,
    /// Every member node.
    pub nodes: OrdMap<NodeId, Node>,
    /// Nodes removed with `node rm`: their certificates are refused from then on.
    pub removed: BTreeSet<NodeId>,
    /// Where network subnets are cut from.
    pub addr_pools: PoolConfig,
    /// Overlay networks by name.
    #[serde(default)]
    pub networks: OrdMap<String, Network>,
    /// Endpoints by ID, indexed by name, MAC and sandbox.
    #[serde(default)]
    pub endpoints: Endpoints,
    /// The VNI the next network gets.
    #[serde(default = "first_vni")]
    pub next_vni: u32,
    /// Services by name.
    #[serde(default)]
    pub services: OrdMap<String, Service>,
    /// Tasks by ID.
    #[serde(default)]
    pub tasks: OrdMap<String, Task>,
    /// The WireGuard key generation every node should have a key of (`rotate-keys` bumps it).
    #[serde(default)]
    pub key_generation: u64,
    /// When the key generation last changed (unix ms).
    #[serde(default)]
    pub keys_rotated_at_ms: u64,
    /// Where the search for the next dynamically published port starts, per protocol
    /// (serial, as swarmkit's allocator, so a freed port is not handed out at once).
    #[serde(default)]
    pub next_dynamic_port: BTreeMap<Protocol, u16>,
}

fn first_vni() -> u32 {
    FIRST_VNI
}

/// What only managers hold: never sent on the watch stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets {
    /// The cluster CA's private key (PEM).
    pub ca_key_pem: String,
    /// The secret part of the worker join token.
    pub worker_secret: String,
    /// The secret part of the manager join token.
    pub manager_secret: String,
}

impl Secrets {
    /// The join secret for `role`.
    pub fn secret_for(&self, role: Role) -> &str {
        match role {
            Role::Manager => &self.manager_secret,
            Role::Worker => &self.worker_secret,
        }
    }
}

impl Default for ClusterState {
    fn default() -> Self {
        ClusterState {
            cluster_id: String::new(),
            created_at_ms: 0,
            revision: 0,
            ca_cert_pem: String::new(),
            leader: None,
            leader_term: 0,
            nodes: OrdMap::new(),
            removed: BTreeSet::new(),
            addr_pools: PoolConfig::default(),
            networks: OrdMap::new(),
            endpoints: Endpoints::default(),
            next_vni: FIRST_VNI,
            services: OrdMap::new(),
            tasks: OrdMap::new(),
            key_generation: 0,
            keys_rotated_at_ms: 0,
            next_dynamic_port: BTreeMap::new(),
        }
    }
}

impl ClusterState {
    /// Finds a network by name or ID (or unique ID prefix).
    pub fn find_network(&self, reference: &str) -> Result<&Network, ApplyError> {
        if let Some(n) = self.networks.get(reference) {
            return Ok(n);
        }
        let matches: Vec<&Network> = self
            .networks
            .values()
            .filter(|n| reference.len() >= 4 && n.id.starts_with(reference))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(ApplyError::NoSuchNetwork(reference.to_string())),
            _ => Err(ApplyError::Invalid(format!(
                "network reference {reference:?} is ambiguous; use the name"
            ))),
        }
    }

    /// The endpoints on network `name`.
    pub fn endpoints_on<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints.values().filter(move |e| e.network == name)
    }

    /// Whether `cluster init` has been applied.
    pub fn is_initialised(&self) -> bool {
        !self.cluster_id.is_empty()
    }

    /// Finds a node by name, full ID or unique ID prefix.
    pub fn find_node(&self, reference: &str) -> Result<&Node, ApplyError> {
        if let Some(node) = self.nodes.values().find(|n| n.name == reference) {
            return Ok(node);
        }
        if let Ok(id) = reference.parse::<NodeId>() {
            if let Some(node) = self.nodes.get(&id) {
                return Ok(node);
            }
        }
        let lower = reference.to_ascii_lowercase();
        if lower.len() >= 4 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<&Node> = self
                .nodes
                .values()
                .filter(|n| n.id.to_string().starts_with(&lower))
                .collect();
            match matches.as_slice() {
                [one] => return Ok(one),
                [] => {}
                _ => {
                    return Err(ApplyError::Invalid(format!(
                        "node reference {reference:?} is ambiguous: it matches {} nodes; give more of the ID or the name",
                        matches.len()
                    )))
                }
            }
        }
        Err(ApplyError::NoSuchNode(reference.to_string()))
    }

    /// The managers, in ID order.
    pub fn managers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values().filter(|n| n.role == Role::Manager)
    }

    /// The node that is the Raft leader, as last announced.
    pub fn leader_node(&self) -> Option<&Node> {
        self.leader.and_then(|id| self.nodes.get(&id))
    }
}

#[cfg(test)]
mod tests;
