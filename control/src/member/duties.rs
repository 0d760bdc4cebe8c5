//! A member's background duties: the control server and one loop per duty, each ending
//! when the member stops.
//!
//! - heartbeat: every node tells the leader it is alive;
//! - leader: announce leadership, mark nodes Ready/Down, rotate WireGuard keys when
//!   due, run the scheduler;
//! - membership (leader): Raft voters = the managers in the state, bar leaving ones;
//! - pre-vote (managers): start an election when the leader is gone;
//! - follower (workers): follow a manager's watch stream into the replica;
//! - role: act on promotion, demotion and removal of this node; renew its certificate;
//! - synced: wake the replica's watchers once this node has caught up.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers, ServerState};
use tokio::net::TcpListener;
use tokio::time::{interval, Instant, MissedTickBehavior};

use super::leave::VoterChange;
use super::{Member, RaftNode};
use crate::api::{LeaderRequest, LeaderResponse};
use crate::error::ClusterError;
use crate::liveness::{HEARTBEAT_INTERVAL, LEADER_TICK};
use crate::pki::new_node_key;
use crate::raft::network::paths;
use crate::raft::prevote::{election_timeout, PreVoteRequest, PreVoteResponse};
use crate::state::{Command, Role};
use crate::tls::NodeTls;
use crate::transport::PeerClient;
use crate::watch::WatchEvent;

/// How long a watch stream may be silent (pings come every 2 s) before reconnecting.
const WATCH_IDLE: Duration = Duration::from_secs(6);

impl Member {
    pub(super) fn spawn_duties(self: &Arc<Self>, listener: TcpListener) {
        let router = super::routes::router(self.clone());
        self.tasks.spawn(crate::server::serve_tls(
            listener,
            self.server_tls.clone(),
            router,
            self.stop.clone(),
        ));
        self.spawn_duty(Member::heartbeat_loop);
        self.spawn_duty(Member::leader_loop);
        self.spawn_duty(Member::membership_loop);
        self.spawn_duty(Member::prevote_loop);
        self.spawn_duty(Member::follower_loop);
        self.spawn_duty(Member::role_loop);
        self.spawn_duty(Member::synced_loop);
        self.spawn_duty(Member::storage_loop);
    }

    /// Runs one duty on the member's task tracker.
    fn spawn_duty<F, Fut>(self: &Arc<Self>, duty: F)
    where
        F: FnOnce(Arc<Member>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(duty(self.clone()));
    }

    /// Wakes the replica's watchers once this node is synced: watchers wait for
    /// `synced()` before acting and otherwise sleep until the next change, and the
    /// change that syncs the node may come before the flag turns.
    async fn synced_loop(self: Arc<Self>) {
        let mut timer = interval(Duration::from_millis(50));
        while !self.synced() {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = timer.tick() => {}
            }
        }
        self.replica.poke();
    }

    /// Runs `tick` every `period` until the member stops.
    pub(super) async fn every<F, Fut>(&self, period: Duration, mut tick: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut timer = interval(period);
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = timer.tick() => tick().await,
            }
        }
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        self.every(HEARTBEAT_INTERVAL, || async {
            let leaving = self.is_leaving();
            let mesh = self
                .mesh_wanted()
                .then(|| self.take_mesh_report())
                .flatten();
            let beat = self
                .submit_with(
                    LeaderRequest::Heartbeat { leaving, mesh },
                    Some(self.node_id),
                    0,
                    HEARTBEAT_INTERVAL * 2,
                )
                .await;
            match beat {
                Err(ClusterError::Forbidden(msg)) if msg.contains("removed") => self.mark_removed(),
                Err(e) => tracing::debug!(error = %e, "heartbeat not delivered"),
                // A demoted manager stops getting log entries once it leaves the voters, so
                // it learns of its demotion here rather than from its own log.
                Ok(LeaderResponse::Alive {
                    role,
                    voter,
                    mesh_wanted,
                }) => {
                    self.voter_per_leader
                        .store(voter, std::sync::atomic::Ordering::SeqCst);
                    self.mesh_wanted
                        .store(mesh_wanted, std::sync::atomic::Ordering::Relaxed);
                    if let Err(e) = self.become_role(role, voter).await {
                        tracing::warn!(error = %e, "role change not completed; will retry");
                    }
                }
                Ok(_) => {}
            }
        })
        .await
    }

    /// On the leader: announce leadership, and turn silence into Down and heartbeats
    /// into Ready.
    async fn leader_loop(self: Arc<Self>) {
        self.every(LEADER_TICK, || async {
            let Some(raft) = self.raft() else {
                self.liveness
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .follow();
                return;
            };
            let m = raft.metrics();
            if m.state != ServerState::Leader {
                self.liveness
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .follow();
                return;
            }
            raft.contact.touch();
            let now = Instant::now();
            self.liveness
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .lead(m.current_term, now);
            let state = self.replica.state();
            if !state.is_initialised() {
                return;
            }
            if let Err(e) = self.announce(&raft).await {
                tracing::debug!(error = %e, "cannot announce leadership yet");
                return;
            }
            let every = *self.key_rotation.lock().unwrap_or_else(|e| e.into_inner());
            let since = state.keys_rotated_at_ms.max(state.created_at_ms);
            if !every.is_zero() && super::now_ms().saturating_sub(since) > every.as_millis() as u64
            {
                tracing::info!("periodic WireGuard key rotation");
                if let Err(e) = self.propose_local(&raft, Command::RotateKeys).await {
                    tracing::warn!(error = %e, "cannot start the periodic key rotation");
                }
            }
            self.place_tasks(&raft).await;
            let changes = self
                .liveness
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .transitions(&state, now);
            for (id, status) in changes {
                let name = state
                    .nodes
                    .get(&id)
                    .map(|n| n.name.clone())
                    .unwrap_or_default();
                tracing::info!(node = %name, status = status.as_str(), "node status changed");
                if let Err(e) = self
                    .propose_local(&raft, Command::SetNodeStatus { id, status })
                    .await
                {
                    tracing::warn!(error = %e, node = %name, "cannot record node status");
                }
            }
        })
        .await
    }

    /// On the leader: run the scheduler and the updater and commit what they decide.
    /// The scheduler's removals on live nodes become shutdowns (the tasks drain), and
    /// tasks shut down go once their nodes stopped them.
    async fn place_tasks(&self, raft: &RaftNode) {
        let state = self.replica.state();
        let now = super::now_ms();
        let placement = crate::state::schedule(&state, now);
        let update = crate::state::updater::plan(&state, now);
        let (mut remove, mut shutdown) =
            crate::state::updater::split_removals(&state, placement.remove);
        remove.extend(crate::state::updater::reap(&state, now));
        shutdown.extend(update.shutdown);
        remove.sort();
        remove.dedup();
        shutdown.sort();
        shutdown.dedup();
        shutdown.retain(|id| !remove.contains(id));
        let version = |svc: &str| state.services.get(svc).map(|s| s.version).unwrap_or(0);
        let create = placement
            .create
            .into_iter()
            .chain(update.create)
            .map(|(service, slot, node)| {
                let id = format!("{:016x}", rand::random::<u64>());
                crate::state::Task::new(&id, &service, slot, node, version(&service), now)
            })
            .collect::<Vec<_>>();
        if !create.is_empty() || !remove.is_empty() || !shutdown.is_empty() {
            tracing::info!(
                create = create.len(),
                remove = remove.len(),
                shutdown = shutdown.len(),
                "placing tasks"
            );
            let command = Command::PlaceTasks {
                create,
                remove,
                shutdown,
            };
            if let Err(e) = self.propose_local(raft, command).await {
                tracing::warn!(error = %e, "cannot commit the task placement");
            }
        }
        for (service, status) in update.status {
            tracing::info!(%service, state = status.state.as_str(), message = %status.message, "service update");
            let command = Command::SetUpdateStatus { service, status };
            if let Err(e) = self.propose_local(raft, command).await {
                tracing::warn!(error = %e, "cannot record the update status");
            }
        }
        for name in update.rollback {
            tracing::warn!(service = %name, "update failed; rolling back");
            let command = Command::UpdateService {
                name,
                changes: crate::state::ServiceChanges {
                    rollback: true,
                    ..Default::default()
                },
            };
            if let Err(e) = self.propose_local(raft, command).await {
                tracing::warn!(error = %e, "cannot roll the service back");
            }
        }
    }

    /// On the leader: keep the Raft voters equal to the managers in the state.
    async fn membership_loop(self: Arc<Self>) {
        self.every(Duration::from_millis(500), || async {
            let Some(raft) = self.raft() else { return };
            if !raft.is_leader() {
                return;
            }
            if let Err(e) = self.reconcile_membership(&raft).await {
                tracing::warn!(error = %e, "Raft membership change failed; will retry");
            }
        })
        .await
    }

    async fn reconcile_membership(&self, raft: &RaftNode) -> Result<(), String> {
        let state = self.replica.state();
        if !state.is_initialised() {
            return Ok(());
        }
        let m = raft.metrics();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        match super::leave::voter_change(&state, &voters, &learners) {
            None => Ok(()),
            Some(VoterChange::Add(id)) => {
                let node = &state.nodes[&id];
                tracing::info!(node = %node.name, "adding manager to Raft as a learner");
                let target = BasicNode::new(node.control_addr.to_string());
                tokio::time::timeout(
                    Duration::from_secs(10),
                    raft.raft.add_learner(id.0, target, true),
                )
                .await
                .map_err(|_| format!("{} did not catch up within 10s", node.name))?
                .map_err(|e| e.to_string())?;
                let mut next = voters.clone();
                next.insert(id.0);
                raft.raft
                    .change_membership(next, false)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(node = %node.name, "manager is now a Raft voter");
                Ok(())
            }
            Some(VoterChange::Remove(id)) => {
                let mut next = voters.clone();
                next.remove(&id.0);
                let name = state.nodes.get(&id).map(|n| n.name.clone());
                tracing::info!(node = %name.unwrap_or_else(|| id.to_string()), "removing node from the Raft voters");
                raft.raft
                    .change_membership(next, false)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            }
            Some(VoterChange::DropLearners(stale)) => {
                raft.raft
                    .change_membership(ChangeMembers::RemoveNodes(stale), false)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            }
        }
    }

    /// On managers: start an election after a granted pre-vote when the leader is gone.
    async fn prevote_loop(self: Arc<Self>) {
        let mut timeout = election_timeout();
        let mut timer = interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = timer.tick() => {}
            }
            let Some(raft) = self.raft() else { continue };
            let m = raft.metrics();
            if m.state == ServerState::Leader {
                raft.contact.touch();
                continue;
            }
            let voters: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
            if !voters.contains(&self.node_id.0) || raft.contact.elapsed() < timeout {
                continue;
            }
            let req = PreVoteRequest {
                candidate: self.node_id.0,
                last_log_id: raft.log.last_log_id(),
            };
            let peers = self.peers();
            let asks = voters
                .iter()
                .filter(|id| **id != self.node_id.0)
                .filter_map(|id| raft.member_addr(*id))
                .map(|addr| {
                    let peers = peers.clone();
                    let req = req.clone();
                    async move {
                        peers
                            .post::<_, PreVoteResponse>(
                                addr,
                                paths::PREVOTE,
                                &req,
                                Duration::from_millis(500),
                            )
                            .await
                            .map(|r| r.granted)
                            .unwrap_or(false)
                    }
                });
            let granted = 1 + futures::future::join_all(asks)
                .await
                .into_iter()
                .filter(|g| *g)
                .count();
            if granted * 2 > voters.len() {
                tracing::info!(
                    granted,
                    voters = voters.len(),
                    "pre-vote granted; starting an election"
                );
                if let Err(e) = raft.raft.trigger().elect().await {
                    tracing::warn!(error = %e, "cannot start an election");
                }
            } else {
                tracing::debug!(granted, voters = voters.len(), "pre-vote not granted");
            }
            raft.contact.touch();
            timeout = election_timeout();
        }
    }

    /// On workers: follow a manager's watch stream into the replica.
    async fn follower_loop(self: Arc<Self>) {
        let mut attempt = 0usize;
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            if self.raft().is_some() {
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
            let targets = self.forward_targets();
            if let Some(addr) = targets.get(attempt % targets.len().max(1)).copied() {
                attempt += 1;
                match self.follow_one(addr).await {
                    Ok(()) => attempt = 0,
                    Err(e) => tracing::debug!(%addr, error = %e, "watch stream ended"),
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            }
        }
    }

    async fn follow_one(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        let path = format!("/v1/watch?since={}", self.replica.revision());
        let mut stream = self.peers().stream(addr, &path).await.map_err(|e| {
            if let crate::transport::PeerError::Remote {
                status: 403,
                message,
                ..
            } = &e
            {
                if message.contains("removed") {
                    self.mark_removed();
                }
            }
            e.to_string()
        })?;
        loop {
            if self.raft().is_some() {
                return Ok(());
            }
            let line = tokio::select! {
                _ = self.stop.cancelled() => return Ok(()),
                l = stream.next_line(WATCH_IDLE) => l.map_err(|e| e.to_string())?,
            };
            let Some(line) = line else { return Ok(()) };
            let event: WatchEvent =
                serde_json::from_slice(&line).map_err(|e| format!("bad watch event: {e}"))?;
            if !self.replica.follow(&event) {
                return Err("gap in the watch stream; resubscribing".into());
            }
            if let WatchEvent::Ping { revision } = event {
                if self.replica.state().is_initialised() && self.replica.revision() >= revision {
                    self.followed
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
    }

    /// Acts on what the state says about this node: removal, promotion, demotion; and
    /// remembers the managers' addresses for the next start.
    async fn role_loop(self: Arc<Self>) {
        let mut changes = self.replica.changes();
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            if let Err(e) = self.follow_role().await {
                tracing::warn!(error = %e, "role change not completed; will retry");
            }
        }
    }

    async fn follow_role(&self) -> Result<(), ClusterError> {
        let state = self.replica.state();
        if !state.is_initialised() {
            return Ok(());
        }
        if state.removed.contains(&self.node_id) {
            self.mark_removed();
            return Ok(());
        }
        let managers: Vec<_> = state.managers().map(|m| m.control_addr).collect();
        if !managers.is_empty() {
            self.update_identity(|i| i.managers = managers);
        }
        let Some(me) = state.nodes.get(&self.node_id) else {
            return Ok(());
        };
        let voter = self
            .raft()
            .is_some_and(|r| r.voters().contains(&self.node_id.0));
        self.become_role(me.role, voter).await
    }

    /// Starts or stops Raft so this node runs as `role`. A demoted node keeps Raft until
    /// it is no longer a voter, so the others keep their quorum while removing it.
    async fn become_role(&self, role: Role, voter: bool) -> Result<(), ClusterError> {
        let _guard = self.role_change.lock().await;
        match (role, self.raft()) {
            (Role::Manager, None) => {
                tracing::info!("this node was promoted to manager; starting Raft");
                self.renew_cert().await?;
                self.start_raft().await?;
                self.update_identity(|i| i.role = Role::Manager);
            }
            (Role::Worker, Some(_)) if !voter => {
                tracing::info!("this node was demoted to worker; stopping Raft");
                self.stop_raft(true).await;
                self.update_identity(|i| i.role = Role::Worker);
                self.renew_cert().await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Gets a certificate for this node's current role and starts using it.
    async fn renew_cert(&self) -> Result<(), ClusterError> {
        let (key, csr_pem) = new_node_key().map_err(|e| ClusterError::Storage(e.to_string()))?;
        let LeaderResponse::Cert { cert_pem } = self
            .submit(LeaderRequest::RenewCert { csr_pem }, Some(self.node_id))
            .await?
        else {
            return Err(ClusterError::Unavailable(
                "the leader did not return a certificate".into(),
            ));
        };
        let tls = NodeTls {
            ca_pem: self.ca_pem(),
            cert_pem,
            key_pem: key.serialize_pem(),
        };
        let tls_err = |e: crate::tls::TlsError| ClusterError::Storage(e.to_string());
        let server = tls.server_config().map_err(tls_err)?;
        let client = tls.client_config().map_err(tls_err)?;
        self.data
            .save(&self.identity(), &tls)
            .map_err(|e| ClusterError::Storage(e.to_string()))?;
        self.server_tls.store(server);
        self.peers.store(Arc::new(PeerClient::new(client)));
        self.tls.store(Arc::new(tls));
        Ok(())
    }
}
