//! A node's membership in a cluster: identity, TLS, Raft (on managers), the replica of
//! the cluster state, and the background duties that keep them going.
//!
//! ```text
//!  Member ─┬─ control server (mTLS): raft RPCs, pre-vote, join, leader requests, watch
//!          ├─ heartbeat loop ─────────▶ leader
//!          ├─ role loop: promote/demote/removal of this node as the state says
//!          ├─ follower loop (workers): watch stream ─▶ Replica
//!          └─ managers: pre-vote supervisor; on the leader: liveness, leader
//!             announcement, Raft membership = managers in the state
//! ```
//! - `bootstrap`: `cluster init`, `cluster join`, `cluster leave`; `identity`: what a
//!   member keeps on disk.
//! - `routes` and `gate`: the control server's endpoints and who may call each.
//! - `leader` and `submit`: what the leader does with requests, and getting them there.
//! - `recovery`: a new Raft after the old one stopped on a storage error (a full disk).
//! - `duties`: the background loops drawn above.

mod bootstrap;
mod duties;
mod gate;
mod identity;
mod leader;
mod leave;
mod recovery;
mod routes;
mod submit;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use openraft::{BasicNode, RaftMetrics, ServerState};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use bootstrap::{init, join, Settings};
pub use identity::{DataDir, Identity};
#[cfg(any(test, feature = "sim"))]
pub(crate) use leader::announce_leader;
#[cfg(any(test, feature = "sim"))]
pub(crate) use submit::{commit, SUBMIT_DEADLINE as SIM_SUBMIT_DEADLINE};

use crate::api::{NodeInfo, RaftInfo, StatusInfo};
use crate::error::ClusterError;
use crate::ids::NodeId;
use crate::liveness::Liveness;
use crate::raft::log_store::LogStore;
use crate::raft::network::Network;
use crate::raft::prevote::LeaderContact;
use crate::raft::state_machine::StateMachine;
use crate::raft::{self, Raft};
use crate::state::{ClusterState, NodeStatus, Role};
use crate::tls::NodeTls;
use crate::transport::PeerClient;
use crate::watch::Replica;

/// A manager's running Raft node and its storage.
pub struct RaftNode {
    /// The openraft handle.
    pub raft: Raft,
    log: LogStore,
    sm: StateMachine,
    contact: LeaderContact,
    /// The last log index this node had when it started: it has caught up once applied.
    opened_at: u64,
}

impl RaftNode {
    async fn open(
        dir: &std::path::Path,
        node_id: NodeId,
        cluster_id: &str,
        replica: Arc<Replica>,
        peers: Arc<ArcSwap<PeerClient>>,
    ) -> Result<Arc<RaftNode>, ClusterError> {
        let storage = |e: std::io::Error| {
            ClusterError::Storage(format!(
                "cannot open Raft storage in {}: {e}",
                dir.display()
            ))
        };
        let log = LogStore::open(dir).map_err(storage)?;
        let sm = StateMachine::open(dir, replica).map_err(storage)?;
        let config = raft::config(cluster_id)
            .validate()
            .map_err(|e| ClusterError::Storage(format!("Raft configuration: {e}")))?;
        let raft = Raft::new(
            node_id.0,
            Arc::new(config),
            Network::new(peers),
            log.clone(),
            sm.clone(),
        )
        .await
        .map_err(|e| ClusterError::Storage(format!("cannot start Raft: {e}")))?;
        let opened_at = log.last_log_id().map(|l| l.index).unwrap_or(0);
        Ok(Arc::new(RaftNode {
            raft,
            log,
            sm,
            contact: LeaderContact::default(),
            opened_at,
        }))
    }

    /// The current Raft metrics.
    pub fn metrics(&self) -> RaftMetrics<u64, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The voting members.
    pub fn voters(&self) -> BTreeSet<u64> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// The control address of a Raft member, from the membership.
    pub fn member_addr(&self, id: u64) -> Option<SocketAddr> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .and_then(|n| n.addr.parse().ok())
    }
}

/// This node's membership in a cluster.
pub struct Member {
    data: DataDir,
    identity: Mutex<Identity>,
    /// This node's ID.
    pub node_id: NodeId,
    /// The cluster's ID.
    pub cluster_id: String,
    tls: ArcSwap<NodeTls>,
    server_tls: Arc<ArcSwap<ServerConfig>>,
    peers: Arc<ArcSwap<PeerClient>>,
    replica: Arc<Replica>,
    raft: RwLock<Option<Arc<RaftNode>>>,
    role_change: tokio::sync::Mutex<()>,
    liveness: Mutex<Liveness>,
    stop: CancellationToken,
    tasks: TaskTracker,
    removed: AtomicBool,
    followed: AtomicBool,
    /// The agent is shutting down (heartbeats say so).
    leaving: AtomicBool,
    /// Whether the leader, at the last heartbeat, counted this node as a Raft voter.
    voter_per_leader: AtomicBool,
    /// On the leader: every node's view of the mesh.
    mesh: Mutex<crate::mesh::MeshBoard>,
    /// This node's latest view of the mesh, not yet sent.
    mesh_report: Mutex<Option<crate::mesh::MeshReport>>,
    /// Whether the leader, at the last heartbeat, wanted this node's view of the mesh.
    mesh_wanted: AtomicBool,
    key_rotation: Mutex<Duration>,
    /// Joins allowed per client address (the one endpoint open to anyone).
    join_limiter: Mutex<crate::ratelimit::RateLimiter>,
}

impl Member {
    /// Starts a member from its saved identity: binds the control port, opens Raft on
    /// managers and spawns the background duties.
    pub async fn start(
        data: DataDir,
        identity: Identity,
        tls: NodeTls,
    ) -> Result<Arc<Member>, ClusterError> {
        let listener = TcpListener::bind(identity.listen_addr).await.map_err(|e| {
            ClusterError::Unavailable(format!(
                "cannot listen on {} for the control plane: {e}",
                identity.listen_addr
            ))
        })?;
        let tls_err = |e: crate::tls::TlsError| ClusterError::Storage(e.to_string());
        let server_tls = Arc::new(ArcSwap::new(tls.server_config().map_err(tls_err)?));
        let peers = Arc::new(ArcSwap::from_pointee(PeerClient::new(
            tls.client_config().map_err(tls_err)?,
        )));
        let member = Arc::new(Member {
            data,
            node_id: identity.node_id,
            cluster_id: identity.cluster_id.clone(),
            identity: Mutex::new(identity.clone()),
            tls: ArcSwap::from_pointee(tls),
            server_tls,
            peers,
            replica: Replica::new(ClusterState::default()),
            raft: RwLock::new(None),
            role_change: tokio::sync::Mutex::new(()),
            liveness: Mutex::new(Liveness::default()),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            removed: AtomicBool::new(false),
            followed: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            voter_per_leader: AtomicBool::new(identity.role == Role::Manager),
            mesh: Mutex::new(crate::mesh::MeshBoard::default()),
            mesh_report: Mutex::new(None),
            mesh_wanted: AtomicBool::new(false),
            key_rotation: Mutex::new(Duration::from_secs(24 * 3600)),
            join_limiter: gate::join_limiter(),
        });
        if identity.role == Role::Manager {
            member.start_raft().await?;
        }
        member.spawn_duties(listener);
        Ok(member)
    }

    /// This node's replica of the cluster state.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// The Raft node, on managers.
    pub fn raft(&self) -> Option<Arc<RaftNode>> {
        self.raft.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A copy of the identity.
    pub fn identity(&self) -> Identity {
        self.identity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether this node's replica has caught up with the cluster since the agent started:
    /// on managers, a leader is known and everything in the local log is applied; on
    /// workers, the watch stream has delivered. Until then the replica may be stale, and
    /// nothing should be torn down because of it.
    pub fn synced(&self) -> bool {
        if !self.replica.state().is_initialised() {
            return false;
        }
        match self.raft() {
            Some(r) => {
                let m = r.metrics();
                m.current_leader.is_some()
                    && m.last_applied.map(|l| l.index).unwrap_or(0) >= r.opened_at
            }
            None => self.followed.load(Ordering::SeqCst),
        }
    }

    /// How often the leader starts a cluster-wide WireGuard key rotation (zero: never).
    pub fn set_key_rotation(&self, every: Duration) {
        *self.key_rotation.lock().unwrap_or_else(|e| e.into_inner()) = every;
    }

    /// Whether this node was removed from the cluster.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    /// The cluster CA certificate.
    pub fn ca_pem(&self) -> String {
        self.tls.load().ca_pem.clone()
    }

    /// The client for calling other members.
    pub fn peers(&self) -> Arc<PeerClient> {
        self.peers.load_full()
    }

    fn update_identity(&self, change: impl FnOnce(&mut Identity)) {
        let mut identity = self.identity.lock().unwrap_or_else(|e| e.into_inner());
        let before = identity.clone();
        change(&mut identity);
        if *identity != before {
            if let Err(e) = self.data.save_identity(&identity) {
                tracing::error!(error = %e, "cannot save identity");
            }
        }
    }

    async fn start_raft(&self) -> Result<Arc<RaftNode>, ClusterError> {
        if let Some(r) = self.raft() {
            return Ok(r);
        }
        let node = RaftNode::open(
            &self.data.raft(),
            self.node_id,
            &self.cluster_id,
            self.replica.clone(),
            self.peers.clone(),
        )
        .await?;
        *self.raft.write().unwrap_or_else(|e| e.into_inner()) = Some(node.clone());
        Ok(node)
    }

    async fn stop_raft(&self, wipe: bool) {
        let node = self.raft.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(node) = node {
            if let Err(e) = node.raft.shutdown().await {
                tracing::warn!(error = %e, "Raft did not shut down cleanly");
            }
        }
        if wipe {
            if let Err(e) = std::fs::remove_dir_all(self.data.raft()) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(error = %e, "cannot remove Raft data");
                }
            }
        }
    }

    /// Stops every duty and the Raft node; the data directory stays.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
        self.stop_raft(false).await;
    }

    fn mark_removed(&self) {
        if !self.removed.swap(true, Ordering::SeqCst) {
            tracing::error!(
                node = %self.node_id,
                "this node was removed from the cluster; run `shoal cluster leave --force` to reset it"
            );
            self.stop.cancel();
        }
    }

    /// `node ls`: every node, as this node's replica has them.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let state = self.replica.state();
        state
            .nodes
            .values()
            .map(|n| node_info(&state, n, self.node_id))
            .collect()
    }

    /// `node inspect`.
    pub fn node(&self, reference: &str) -> Result<NodeInfo, ClusterError> {
        let state = self.replica.state();
        let node = state.find_node(reference)?;
        Ok(node_info(&state, node, self.node_id))
    }

    /// `shoal status`.
    pub fn status(&self) -> StatusInfo {
        let state = self.replica.state();
        let identity = self.identity();
        let name_of = |id: u64| {
            state
                .nodes
                .get(&NodeId(id))
                .map(|n| n.name.clone())
                .unwrap_or_else(|| NodeId(id).to_string())
        };
        let raft = self.raft().map(|r| {
            let m = r.metrics();
            RaftInfo {
                state: format!("{:?}", m.state),
                term: m.current_term,
                last_log_index: m.last_log_index,
                last_applied: m.last_applied.map(|l| l.index),
                voters: m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .map(name_of)
                    .collect(),
                millis_since_quorum_ack: m.millis_since_quorum_ack,
            }
        });
        StatusInfo {
            in_cluster: true,
            version: env!("CARGO_PKG_VERSION").to_string(),
            removed: self.is_removed(),
            cluster_id: Some(self.cluster_id.clone()),
            node_id: Some(self.node_id),
            name: Some(identity.name),
            role: Some(identity.role),
            addr: Some(identity.addr),
            control_addr: Some(identity.control_addr),
            leader: state.leader_node().map(|n| n.name.clone()),
            revision: state.revision,
            nodes_ready: state
                .nodes
                .values()
                .filter(|n| n.status == NodeStatus::Ready)
                .count(),
            nodes_down: state
                .nodes
                .values()
                .filter(|n| n.status == NodeStatus::Down)
                .count(),
            watch: self.raft().is_some().then(|| self.replica.sent.info()),
            raft,
            sections: Vec::new(),
        }
    }
}

/// `n` as `node ls` shows it to node `me`.
pub fn node_info(state: &ClusterState, n: &crate::state::Node, me: NodeId) -> NodeInfo {
    let manager_status = (n.role == Role::Manager).then(|| {
        if state.leader == Some(n.id) {
            "Leader"
        } else if n.status == NodeStatus::Ready {
            "Reachable"
        } else {
            "Unreachable"
        }
        .to_string()
    });
    NodeInfo {
        id: n.id,
        name: n.name.clone(),
        role: n.role,
        status: n.status,
        availability: n.availability,
        manager_status,
        addr: n.addr,
        control_addr: n.control_addr,
        is_self: n.id == me,
        joined_at_ms: n.joined_at_ms,
        status_since_ms: n.status_since_ms,
        labels: n.labels.clone(),
        wireguard: n.wireguard.clone(),
    }
}

/// Milliseconds since the Unix epoch, by this node's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
