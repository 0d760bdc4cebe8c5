//! Getting work to the leader: handle it here if this node leads, otherwise forward it
//! (managers to the leader, workers to any manager, which forwards once more).
//!
//! Only requests that provably did not reach anyone (connection refused, "not the
//! leader") are retried, so a change is never applied twice. Everything is bounded: after
//! the deadline the caller gets a "no quorum" error that says what was tried.

use std::net::SocketAddr;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use tokio::time::Instant;

use super::{now_ms, Member, RaftNode};
use crate::api::{Forwarded, LeaderRequest, LeaderResponse};
use crate::error::ClusterError;
use crate::ids::NodeId;
use crate::raft::read::wait_for_revision;
use crate::raft::Raft;
use crate::state::{Applied, Command, Proposal, Role};
use crate::transport::PeerError;

/// How long a request may take to find a leader.
pub const SUBMIT_DEADLINE: Duration = Duration::from_secs(5);
/// How long the leader waits for a majority to commit a write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(4);
/// A leader that has not heard from a majority for this long refuses writes at once.
const QUORUM_STALE: Duration = Duration::from_millis(1500);
/// How long a read index may take on the leader, and the replica to catch up.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a forwarded read waits for one manager before it asks the next (or the
/// leader that Raft names by then): a follower that still names a leader cut off by a
/// partition moves on to the new one instead of spending the whole deadline on it.
const READ_ATTEMPT: Duration = Duration::from_secs(2);
/// The forwarding path on the control server.
pub const LEADER_PATH: &str = "/v1/leader";

impl Member {
    /// Sends `request` on behalf of `requester` to the leader and returns its answer.
    pub async fn submit(
        &self,
        request: LeaderRequest,
        requester: Option<NodeId>,
    ) -> Result<LeaderResponse, ClusterError> {
        self.submit_with(request, requester, 0, SUBMIT_DEADLINE)
            .await
    }

    pub(super) async fn submit_with(
        &self,
        request: LeaderRequest,
        requester: Option<NodeId>,
        hops: u8,
        deadline: Duration,
    ) -> Result<LeaderResponse, ClusterError> {
        let until = Instant::now() + deadline;
        let mut attempt = 0usize;
        let mut last = String::from("no leader is known");
        loop {
            if let Some(refusal) = self.raft().and_then(|r| r.refusal()) {
                return Err(refusal);
            }
            match self.raft() {
                Some(raft) if raft.is_leader() => {
                    match self.handle(&raft, request.clone(), requester).await {
                        Err(ClusterError::NotLeader(_)) => last = "leadership changed".into(),
                        other => return other,
                    }
                }
                _ if hops >= 2 => return Err(ClusterError::NotLeader(None)),
                _ => {
                    let targets = self.forward_targets();
                    if let Some(addr) = targets.get(attempt % targets.len().max(1)) {
                        attempt += 1;
                        let body = Forwarded {
                            request: request.clone(),
                            on_behalf_of: requester,
                            hops: hops + 1,
                        };
                        let left = until.saturating_duration_since(Instant::now());
                        let mut wait =
                            left.max(Duration::from_millis(500)) + Duration::from_secs(1);
                        if request.only_reads() {
                            wait = wait.min(READ_ATTEMPT);
                        }
                        match self.peers().post(*addr, LEADER_PATH, &body, wait).await {
                            Ok(r) => return Ok(r),
                            Err(PeerError::Remote { status: 421, .. }) => {
                                last = format!("{addr} is not the leader");
                            }
                            Err(e @ PeerError::Unreachable { .. }) => last = e.to_string(),
                            Err(e @ PeerError::Timeout { .. }) if request.only_reads() => {
                                last = e.to_string()
                            }
                            Err(e) => return Err(ClusterError::from_remote(e)),
                        }
                    }
                }
            }
            if Instant::now() >= until {
                return Err(ClusterError::NoQuorum(format!(
                    "no leader accepted the request within {}s ({last}); a majority of managers must be up and reachable",
                    deadline.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits until this node's replica holds every change committed before the call,
    /// so a read of it that follows is linearizable: the leader confirms with a majority
    /// that it still leads and names its revision (a read index), and the replica
    /// catches up to it. Fails, as writes do, when no majority can be reached.
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        let revision = match self
            .submit(LeaderRequest::ReadIndex, Some(self.node_id))
            .await?
        {
            LeaderResponse::ReadIndex { revision } => revision,
            other => {
                return Err(ClusterError::Unavailable(format!(
                    "unexpected answer from the leader: {other:?}"
                )))
            }
        };
        wait_for_revision(&self.replica, revision, READ_TIMEOUT).await
    }

    /// Every node's latest view of the mesh, from the leader (see [`crate::mesh`]).
    pub async fn mesh_views(&self) -> Result<Vec<crate::mesh::MeshView>, ClusterError> {
        match self
            .submit(LeaderRequest::MeshViews, Some(self.node_id))
            .await?
        {
            LeaderResponse::MeshViews { views } => Ok(views),
            other => Err(ClusterError::Unavailable(format!(
                "unexpected answer from the leader: {other:?}"
            ))),
        }
    }

    /// Whether the leader wants this node's view of the mesh in its heartbeats.
    pub fn mesh_wanted(&self) -> bool {
        self.mesh_wanted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keeps this node's view of the mesh for the next heartbeat.
    pub fn set_mesh_report(&self, report: crate::mesh::MeshReport) {
        *self.mesh_report.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    }

    /// The view not yet sent, if any.
    pub(super) fn take_mesh_report(&self) -> Option<crate::mesh::MeshReport> {
        self.mesh_report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Where to send a request this node cannot handle: the leader first, then the
    /// other managers (which forward). A manager that knows no leader from Raft asks
    /// like a worker: one that left the voters gracefully hears from no leader until
    /// its heartbeats get it added back.
    pub(super) fn forward_targets(&self) -> Vec<SocketAddr> {
        let state = self.replica.state();
        let mut out = Vec::new();
        if let Some(raft) = self.raft() {
            let m = raft.metrics();
            if let Some(addr) = m.current_leader.and_then(|l| raft.member_addr(l)) {
                out.push(addr);
                return out;
            }
        }
        if let Some(leader) = state.leader_node().filter(|l| l.id != self.node_id) {
            out.push(leader.control_addr);
        }
        for m in state.managers() {
            if !out.contains(&m.control_addr) && m.id != self.node_id {
                out.push(m.control_addr);
            }
        }
        let identity = self.identity();
        for addr in identity.managers {
            if !out.contains(&addr) && addr != identity.control_addr {
                out.push(addr);
            }
        }
        out
    }

    /// Commits `command` on this node, which must lead.
    pub(super) async fn propose_local(
        &self,
        raft: &RaftNode,
        command: Command,
    ) -> Result<Applied, ClusterError> {
        commit(&raft.raft, command, now_ms()).await
    }

    /// The role the state gives `id`, or `fallback` if the state does not know it yet.
    pub(super) fn role_of(&self, id: NodeId, fallback: Role) -> Role {
        self.replica
            .state()
            .nodes
            .get(&id)
            .map(|n| n.role)
            .unwrap_or(fallback)
    }
}

/// Commits `command`, stamped `at_ms`, through `raft`, which must lead: refused at once
/// if the leader has not heard from a majority lately, and given up (outcome unknown)
/// after [`WRITE_TIMEOUT`].
pub(crate) async fn commit(
    raft: &Raft,
    command: Command,
    at_ms: u64,
) -> Result<Applied, ClusterError> {
    let m = raft.metrics().borrow().clone();
    let voters = m.membership_config.membership().voter_ids().count();
    if voters > 1 {
        if let Some(ms) = m.millis_since_quorum_ack {
            if Duration::from_millis(ms) > QUORUM_STALE {
                return Err(ClusterError::NoQuorum(format!(
                    "this manager leads but has not heard from a majority of the {voters} managers for {:.1}s",
                    ms as f64 / 1000.0
                )));
            }
        }
    }
    let proposal = Proposal { at_ms, command };
    match tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(proposal)).await {
        Err(_) => Err(ClusterError::NoQuorum(format!(
            "the write was not committed within {}s: a majority of the {voters} managers cannot be reached",
            WRITE_TIMEOUT.as_secs()
        ))),
        Ok(Ok(resp)) => resp.data.0.map_err(ClusterError::from),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => Err(
            ClusterError::NotLeader(f.leader_node.and_then(|n| n.addr.parse().ok())),
        ),
        Ok(Err(RaftError::Fatal(f))) => Err(super::recovery::stopped(f)),
        Ok(Err(e)) => Err(ClusterError::Unavailable(format!("Raft: {e}"))),
    }
}
