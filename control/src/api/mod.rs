//! Request and response bodies: the agent's unix-socket API (what the CLI sends) and the
//! node-to-node control API (what agents send each other).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::ids::NodeId;
use crate::state::{Applied, Availability, NodeStatus, Role};

/// `cluster init`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitRequest {
    /// Overrides the agent's advertise address.
    pub advertise_addr: Option<IpAddr>,
    /// Address pools for network subnets (CIDRs); default 10.0.0.0/8.
    #[serde(default)]
    pub default_addr_pools: Vec<String>,
    /// The prefix length subnets are cut to; default 24.
    pub default_addr_pool_mask_length: Option<u8>,
}

/// The answer to `cluster init`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitResponse {
    /// The new cluster.
    pub cluster_id: String,
    /// This node.
    pub node_id: NodeId,
    /// The token workers join with.
    pub worker_token: String,
    /// The address to give `cluster join`.
    pub manager_addr: SocketAddr,
}

/// `cluster join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinCommand {
    /// The token from `cluster join-token`.
    pub token: String,
    /// A manager's control address (`IP:PORT`, or `IP` for port 2377).
    pub remote: String,
    /// Overrides the agent's advertise address.
    pub advertise_addr: Option<IpAddr>,
    /// Refuse unless the token grants this role.
    pub role: Option<Role>,
}

/// The answer to `cluster join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResult {
    /// The cluster joined.
    pub cluster_id: String,
    /// This node's new ID.
    pub node_id: NodeId,
    /// The role the token granted.
    pub role: Role,
}

/// `cluster join-token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinTokenResponse {
    /// Whose token.
    pub role: Role,
    /// The token.
    pub token: String,
    /// A manager address to join through.
    pub manager_addr: SocketAddr,
}

/// `cluster leave`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaveRequest {
    /// Leave even if this node is a manager.
    #[serde(default)]
    pub force: bool,
}

/// `node update`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeUpdate {
    /// The new availability, if it changes.
    #[serde(default)]
    pub availability: Option<Availability>,
    /// Labels to set.
    #[serde(default)]
    pub labels_add: BTreeMap<String, String>,
    /// Labels to remove.
    #[serde(default)]
    pub labels_rm: Vec<String>,
}

/// One node as `node ls` / `node inspect` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its ID.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// Manager or worker.
    pub role: Role,
    /// Ready or Down.
    pub status: NodeStatus,
    /// active, pause or drain.
    pub availability: Availability,
    /// For managers: Leader, Reachable or Unreachable.
    pub manager_status: Option<String>,
    /// Underlay address.
    pub addr: IpAddr,
    /// Control address.
    pub control_addr: SocketAddr,
    /// Whether this is the node the CLI talks to.
    pub is_self: bool,
    /// When it joined (unix ms).
    pub joined_at_ms: u64,
    /// Since when its status holds (unix ms).
    pub status_since_ms: u64,
    /// Operator labels.
    pub labels: BTreeMap<String, String>,
    /// Its WireGuard identity (public key, mesh address, port, key generation), once
    /// announced.
    #[serde(default)]
    pub wireguard: Option<crate::state::WireguardPeer>,
}

/// `shoal status`: this node's view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusInfo {
    /// Whether the agent is in a cluster.
    pub in_cluster: bool,
    /// The agent's version.
    pub version: String,
    /// Set when the node was removed from its cluster.
    pub removed: bool,
    /// The cluster.
    pub cluster_id: Option<String>,
    /// This node.
    pub node_id: Option<NodeId>,
    /// This node's name.
    pub name: Option<String>,
    /// Its role.
    pub role: Option<Role>,
    /// Its advertise address.
    pub addr: Option<IpAddr>,
    /// Its control address.
    pub control_addr: Option<SocketAddr>,
    /// The leader, by name.
    pub leader: Option<String>,
    /// The state revision this node has.
    pub revision: u64,
    /// Nodes by status.
    pub nodes_ready: usize,
    /// Nodes that are down.
    pub nodes_down: usize,
    /// Managers' Raft view, on managers.
    pub raft: Option<RaftInfo>,
    /// What this node sent the nodes that watch it (managers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchInfo>,
    /// Other components report here (network, DNS, routes) as they are added.
    #[serde(default)]
    pub sections: Vec<StatusSection>,
}

/// A manager's Raft state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaftInfo {
    /// Leader, Follower, Candidate or Learner.
    pub state: String,
    /// Current term.
    pub term: u64,
    /// Last log index.
    pub last_log_index: Option<u64>,
    /// Last applied index.
    pub last_applied: Option<u64>,
    /// Voters, by name.
    pub voters: Vec<String>,
    /// Milliseconds since a quorum acknowledged the leader (on the leader).
    pub millis_since_quorum_ack: Option<u64>,
}

/// What a manager has sent the nodes that follow its watch stream, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchInfo {
    /// Watch streams open now.
    pub watchers: u64,
    /// Events sent (entries, snapshots and pings) over all streams.
    pub events_sent: u64,
    /// Of those, whole-state snapshots (to watchers too far behind for the backlog).
    pub snapshots_sent: u64,
    /// Bytes sent over all streams (NDJSON, before TLS).
    pub bytes_sent: u64,
}

/// A titled block of `key: value` lines in `shoal status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusSection {
    /// The block's title.
    pub title: String,
    /// Its lines.
    pub rows: Vec<(String, String)>,
}

/// A joiner's request, sent to any manager without a client certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The token's secret.
    pub secret: String,
    /// The role the joiner insists on, if any.
    pub role: Option<Role>,
    /// The joiner's name.
    pub name: String,
    /// Its underlay address.
    pub addr: IpAddr,
    /// Its control address.
    pub control_addr: SocketAddr,
    /// A CSR for its freshly made key.
    pub csr_pem: String,
}

/// The answer to a join.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The cluster.
    pub cluster_id: String,
    /// The joiner's ID.
    pub node_id: NodeId,
    /// The joiner's role.
    pub role: Role,
    /// Its certificate.
    pub cert_pem: String,
    /// The cluster CA.
    pub ca_pem: String,
    /// Managers' control addresses.
    pub managers: Vec<SocketAddr>,
}

/// Work only the leader can do; forwarded to it from wherever it arrives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one request at a time; boxing buys nothing here
pub enum LeaderRequest {
    /// Commit a command.
    Propose {
        /// The command.
        command: crate::state::Command,
    },
    /// Admit a new node.
    Join(JoinRequest),
    /// Sign a new certificate for the requester, for its current role.
    RenewCert {
        /// A CSR for the requester's key.
        csr_pem: String,
    },
    /// The requester is alive.
    Heartbeat {
        /// Its agent is shutting down: it is Leaving until it stops (or starts again).
        #[serde(default)]
        leaving: bool,
        /// Its view of the mesh, sent while the leader asks for it (see [`crate::mesh`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mesh: Option<crate::mesh::MeshReport>,
    },
    /// Every node's latest view of the mesh (the dashboard); asking keeps nodes
    /// measuring for a while.
    MeshViews,
    /// `node update`.
    UpdateNode {
        /// Name, ID or ID prefix.
        node: String,
        /// What to change.
        update: NodeUpdate,
    },
    /// `node promote`.
    Promote {
        /// Name, ID or ID prefix.
        node: String,
    },
    /// `node demote`.
    Demote {
        /// Name, ID or ID prefix.
        node: String,
    },
    /// `node rm`.
    RemoveNode {
        /// Name, ID or ID prefix.
        node: String,
        /// Remove even if it is up or a manager.
        force: bool,
    },
    /// `join-token --rotate`.
    RotateToken {
        /// Whose token.
        role: Role,
    },
    /// The revision a linearizable read must see (the leader confirms it still leads).
    ReadIndex,
}

impl LeaderRequest {
    /// Whether asking again cannot change anything: a request that only reads may be
    /// sent to another manager when one does not answer in time, where a write may
    /// not (the silent one may have committed it).
    pub fn only_reads(&self) -> bool {
        matches!(self, LeaderRequest::ReadIndex | LeaderRequest::MeshViews)
    }
}

/// A leader request as sent between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    /// The request.
    pub request: LeaderRequest,
    /// The node it came from, when a manager relays it.
    pub on_behalf_of: Option<NodeId>,
    /// How many managers relayed it so far.
    pub hops: u8,
}

/// The leader's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum LeaderResponse {
    /// A command was committed.
    Applied(Applied),
    /// A node was admitted.
    Joined(JoinResponse),
    /// A certificate was signed.
    Cert {
        /// The certificate.
        cert_pem: String,
    },
    /// A token was rotated.
    Token {
        /// The new token.
        token: String,
    },
    /// A heartbeat was received; what the leader knows of the sender.
    Alive {
        /// The sender's role in the state.
        role: Role,
        /// Whether the sender is a Raft voter.
        voter: bool,
        /// Whether the leader wants the sender's view of the mesh in its heartbeats.
        #[serde(default)]
        mesh_wanted: bool,
    },
    /// Every node's latest view of the mesh.
    MeshViews {
        /// One per node that reported recently, sorted by node.
        views: Vec<crate::mesh::MeshView>,
    },
    /// Done, nothing to report.
    Done,
    /// A read that starts now is linearizable once the reader's replica is at this
    /// revision.
    ReadIndex {
        /// The leader's revision after confirming its leadership.
        revision: u64,
    },
}

mod objects;

pub use objects::*;

#[cfg(test)]
mod tests {
    use super::LeaderRequest;
    use crate::state::Role;

    /// Only requests that change nothing may be asked again of another manager after
    /// a timeout: a write asked twice could be committed twice.
    #[test]
    fn only_reads_are_asked_again() {
        assert!(LeaderRequest::ReadIndex.only_reads());
        assert!(LeaderRequest::MeshViews.only_reads());
        for write in [
            LeaderRequest::RotateToken { role: Role::Worker },
            LeaderRequest::Promote { node: "n2".into() },
            LeaderRequest::RemoveNode {
                node: "n2".into(),
                force: true,
            },
            LeaderRequest::Heartbeat {
                leaving: false,
                mesh: None,
            },
        ] {
            assert!(!write.only_reads(), "{write:?}");
        }
    }
}
