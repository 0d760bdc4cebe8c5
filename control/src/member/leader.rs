//! What the leader does with requests: authorise the requester, then commit.
//!
//! Workers may only report on themselves (heartbeats, their own certificate); everything
//! that changes the cluster needs a manager. Joiners are authorised by their token's
//! secret alone.

use std::net::SocketAddr;

use super::{Member, RaftNode};
use crate::api::{JoinRequest, JoinResponse, LeaderRequest, LeaderResponse};
use crate::error::ClusterError;
use crate::ids::{validate_name, NodeId};
use crate::liveness::on_heartbeat;
use crate::pki::{sign_node_cert, CertAndKey};
use crate::raft::read::read_revision;
use crate::state::{Availability, ClusterState, Command, Node, NodeStatus, Role, Secrets};
use crate::token::{new_secret, secrets_match, JoinToken};

impl Member {
    /// Handles a request on the leader.
    pub(super) async fn handle(
        &self,
        raft: &RaftNode,
        request: LeaderRequest,
        requester: Option<NodeId>,
    ) -> Result<LeaderResponse, ClusterError> {
        self.announce(raft).await?;
        let state = self.replica.state();
        if let LeaderRequest::Join(join) = request {
            return self.admit(raft, &state, join).await;
        }
        let requester = requester.ok_or_else(|| {
            ClusterError::Forbidden("this request needs a node certificate".into())
        })?;
        if state.removed.contains(&requester) {
            return Err(ClusterError::Forbidden(format!(
                "node {requester} has been removed from the cluster"
            )));
        }
        let requester_node = state.nodes.get(&requester).ok_or_else(|| {
            ClusterError::Forbidden(format!("node {requester} is not a member of this cluster"))
        })?;
        let needs_manager = match &request {
            LeaderRequest::Heartbeat { .. }
            | LeaderRequest::MeshViews
            | LeaderRequest::RenewCert { .. }
            | LeaderRequest::ReadIndex => false,
            LeaderRequest::Propose { command } => command.self_scope() != Some(requester),
            _ => true,
        };
        if needs_manager && requester_node.role != Role::Manager {
            return Err(ClusterError::Forbidden(format!(
                "node {} is a worker: cluster changes must be made on a manager (or promote it with `shoal node promote {}`)",
                requester_node.name, requester_node.name
            )));
        }
        let applied = |a| Ok(LeaderResponse::Applied(a));
        match request {
            LeaderRequest::Join(_) => unreachable!("handled above"),
            LeaderRequest::Propose { command } => applied(self.propose_local(raft, command).await?),
            LeaderRequest::Heartbeat { leaving, mesh } => {
                let now = tokio::time::Instant::now();
                let mesh_wanted = {
                    let mut board = self.mesh.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(report) = mesh {
                        board.record(requester, report, now);
                    }
                    board.wanted(now)
                };
                self.liveness
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .heard(requester, leaving, now);
                if let Some(status) = on_heartbeat(requester_node.status, leaving) {
                    tracing::info!(node = %requester_node.name, status = status.as_str(), "node status changed");
                    let command = Command::SetNodeStatus {
                        id: requester,
                        status,
                    };
                    self.propose_local(raft, command).await?;
                }
                Ok(LeaderResponse::Alive {
                    role: requester_node.role,
                    voter: raft.voters().contains(&requester.0),
                    mesh_wanted,
                })
            }
            LeaderRequest::MeshViews => {
                let now = tokio::time::Instant::now();
                let views = self
                    .mesh
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .views(now);
                Ok(LeaderResponse::MeshViews { views })
            }
            LeaderRequest::ReadIndex => {
                let revision =
                    read_revision(&raft.raft, &self.replica, super::submit::READ_TIMEOUT).await?;
                Ok(LeaderResponse::ReadIndex { revision })
            }
            LeaderRequest::RenewCert { csr_pem } => {
                let cert_pem = self.sign(raft, &state, &csr_pem, requester, requester_node.role)?;
                Ok(LeaderResponse::Cert { cert_pem })
            }
            LeaderRequest::UpdateNode { node, update } => {
                let id = state.find_node(&node)?.id;
                let command = Command::UpdateNode {
                    id,
                    availability: update.availability,
                    labels_add: update.labels_add,
                    labels_rm: update.labels_rm,
                };
                applied(self.propose_local(raft, command).await?)
            }
            LeaderRequest::Promote { node } => {
                let n = state.find_node(&node)?;
                if n.role == Role::Manager {
                    return Err(ClusterError::Invalid(format!(
                        "{} is already a manager",
                        n.name
                    )));
                }
                let command = Command::SetRole {
                    id: n.id,
                    role: Role::Manager,
                };
                applied(self.propose_local(raft, command).await?)
            }
            LeaderRequest::Demote { node } => {
                let n = state.find_node(&node)?;
                if n.role == Role::Worker {
                    return Err(ClusterError::Invalid(format!(
                        "{} is already a worker",
                        n.name
                    )));
                }
                let command = Command::SetRole {
                    id: n.id,
                    role: Role::Worker,
                };
                applied(self.propose_local(raft, command).await?)
            }
            LeaderRequest::RemoveNode { node, force } => {
                self.remove(raft, &state, &node, force, requester).await
            }
            LeaderRequest::RotateToken { role } => {
                let secret = new_secret();
                let command = Command::RotateToken {
                    role,
                    secret: secret.clone(),
                };
                self.propose_local(raft, command).await?;
                let digest = crate::pki::digest_pem(&state.ca_cert_pem)
                    .map_err(|e| ClusterError::Storage(e.to_string()))?;
                Ok(LeaderResponse::Token {
                    token: JoinToken::new(&digest, &secret).to_string(),
                })
            }
        }
    }

    /// Makes sure the state names this node as leader for its current term, so nothing
    /// is committed under a stale announcement.
    pub(super) async fn announce(&self, raft: &RaftNode) -> Result<(), ClusterError> {
        announce_leader(
            &raft.raft,
            &self.replica.state(),
            self.node_id,
            super::now_ms(),
        )
        .await
    }

    async fn remove(
        &self,
        raft: &RaftNode,
        state: &ClusterState,
        reference: &str,
        force: bool,
        requester: NodeId,
    ) -> Result<LeaderResponse, ClusterError> {
        let n = state.find_node(reference)?;
        if n.role == Role::Manager && state.managers().count() == 1 {
            return Err(crate::state::ApplyError::LastManager(n.name.clone()).into());
        }
        if n.id == requester {
            return Err(ClusterError::Invalid(format!(
                "{} is the node this command runs on; use `shoal cluster leave` there instead",
                n.name
            )));
        }
        if !force {
            if n.role == Role::Manager {
                return Err(crate::state::ApplyError::IsManager(n.name.clone()).into());
            }
            if n.status == NodeStatus::Ready {
                return Err(ClusterError::Invalid(format!(
                    "{} is not down: stop its agent first (`shoal cluster leave` on it), or use --force",
                    n.name
                )));
            }
        }
        if n.role == Role::Manager {
            let demote = Command::SetRole {
                id: n.id,
                role: Role::Worker,
            };
            self.propose_local(raft, demote).await?;
        }
        let applied = self
            .propose_local(raft, Command::RemoveNode { id: n.id })
            .await?;
        Ok(LeaderResponse::Applied(applied))
    }

    async fn admit(
        &self,
        raft: &RaftNode,
        state: &ClusterState,
        join: JoinRequest,
    ) -> Result<LeaderResponse, ClusterError> {
        let secrets = raft.sm.secrets();
        let role = token_role(&secrets, &join.secret)?;
        if let Some(asked) = join.role {
            if asked != role {
                return Err(ClusterError::Forbidden(format!(
                    "this is a {} token; it cannot join as a {}: use `shoal cluster join-token {}` on a manager",
                    role.as_str(),
                    asked.as_str(),
                    asked.as_str()
                )));
            }
        }
        validate_name("node", &join.name)?;
        if let Some(why) = crate::state::underlay_family_mismatch(state, &join.name, join.addr) {
            return Err(ClusterError::Invalid(why));
        }
        if let Some(other) = state.nodes.values().find(|n| n.name == join.name) {
            return Err(crate::state::ApplyError::NodeNameTaken {
                name: join.name.clone(),
                id: other.id.to_string(),
            }
            .into());
        }
        if let Some(other) = state
            .nodes
            .values()
            .find(|n| n.control_addr == join.control_addr)
        {
            return Err(ClusterError::Invalid(format!(
                "node {} already uses the control address {}",
                other.name, join.control_addr
            )));
        }
        let id = NodeId::random(|id| state.nodes.contains_key(&id) || state.removed.contains(&id));
        let cert_pem = self.sign(raft, state, &join.csr_pem, id, role)?;
        let now = super::now_ms();
        let node = Node {
            id,
            name: join.name.clone(),
            role,
            availability: Availability::Active,
            status: NodeStatus::Ready,
            addr: join.addr,
            control_addr: join.control_addr,
            joined_at_ms: now,
            status_since_ms: now,
            availability_since_ms: now,
            labels: Default::default(),
            report: Default::default(),
            wireguard: None,
        };
        self.propose_local(raft, Command::AddNode { node }).await?;
        self.liveness
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .heard(id, false, tokio::time::Instant::now());
        let managers: Vec<SocketAddr> = state.managers().map(|m| m.control_addr).collect();
        tracing::info!(node = %id, name = %join.name, role = role.as_str(), "admitted a node");
        Ok(LeaderResponse::Joined(JoinResponse {
            cluster_id: state.cluster_id.clone(),
            node_id: id,
            role,
            cert_pem,
            ca_pem: state.ca_cert_pem.clone(),
            managers,
        }))
    }

    fn sign(
        &self,
        raft: &RaftNode,
        state: &ClusterState,
        csr_pem: &str,
        id: NodeId,
        role: Role,
    ) -> Result<String, ClusterError> {
        let ca = CertAndKey {
            cert_pem: state.ca_cert_pem.clone(),
            key_pem: raft.sm.secrets().ca_key_pem,
        };
        sign_node_cert(&ca, csr_pem, id, role, &state.cluster_id)
            .map_err(|e| ClusterError::Invalid(format!("cannot sign the certificate request: {e}")))
    }
}

/// The role a join secret grants.
fn token_role(secrets: &Secrets, secret: &str) -> Result<Role, ClusterError> {
    if secrets_match(secret, &secrets.manager_secret) {
        Ok(Role::Manager)
    } else if secrets_match(secret, &secrets.worker_secret) {
        Ok(Role::Worker)
    } else {
        Err(ClusterError::Forbidden(
            "invalid join token: its secret is not valid for this cluster (it may have been rotated); get a current one with `shoal cluster join-token worker` on a manager".into(),
        ))
    }
}

/// Commits `SetLeader` for `me` in its current term unless `state` (this leader's own
/// replica) already says so.
pub(crate) async fn announce_leader(
    raft: &crate::raft::Raft,
    state: &ClusterState,
    me: NodeId,
    at_ms: u64,
) -> Result<(), ClusterError> {
    let term = raft.metrics().borrow().current_term;
    if !state.is_initialised() || (state.leader == Some(me) && state.leader_term == term) {
        return Ok(());
    }
    let command = Command::SetLeader { id: me, term };
    super::submit::commit(raft, command, at_ms)
        .await
        .map(|_| ())
}
