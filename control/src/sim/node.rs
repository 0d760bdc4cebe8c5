//! One simulated manager: shoal's openraft configuration, its real state machine (on a
//! temporary directory) publishing to a [`Replica`], the in-memory log, and the
//! pre-vote supervisor that starts elections, as `Member` runs them.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use openraft::ServerState;
use rand::rngs::StdRng;

use super::fabric::{Fabric, Net};
use super::memlog::Disk;
use crate::error::ClusterError;
use crate::raft::prevote::{decide, election_timeout_with, LeaderContact, PreVoteRequest};
use crate::raft::state_machine::StateMachine;
use crate::raft::{self, Raft};
use crate::state::ClusterState;
use crate::watch::Replica;

/// A running manager.
pub struct SimNode {
    /// Its Raft ID.
    pub id: u64,
    /// Its openraft handle.
    pub raft: Raft,
    /// Its log (outlives the node).
    pub disk: Disk,
    /// Its replica of the cluster state, as the agent's API reads it.
    pub replica: Arc<Replica>,
    /// When it last heard from a leader.
    pub contact: LeaderContact,
    supervisor: Mutex<Option<tokio::task::AbortHandle>>,
}

impl SimNode {
    /// Starts node `id` from `disk` and the snapshot in `dir`, and joins it to `fabric`.
    pub async fn start(
        fabric: &Arc<Fabric>,
        id: u64,
        disk: Disk,
        dir: &Path,
        rng: StdRng,
    ) -> Result<Arc<SimNode>, ClusterError> {
        let replica = Replica::new(ClusterState::default());
        let sm = StateMachine::open(dir, replica.clone())
            .map_err(|e| ClusterError::Storage(format!("state machine: {e}")))?;
        let config = raft::config("sim")
            .validate()
            .map_err(|e| ClusterError::Storage(format!("Raft configuration: {e}")))?;
        let raft = Raft::new(id, Arc::new(config), Net::new(fabric, id), disk.clone(), sm)
            .await
            .map_err(|e| ClusterError::Storage(format!("cannot start Raft: {e}")))?;
        let node = Arc::new(SimNode {
            id,
            raft,
            disk,
            replica,
            contact: LeaderContact::default(),
            supervisor: Mutex::new(None),
        });
        let task = tokio::spawn(prevote_loop(
            Arc::downgrade(fabric),
            Arc::downgrade(&node),
            rng,
        ));
        *node.supervisor.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        fabric.insert(node.clone());
        Ok(node)
    }

    /// Whether it leads.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The leader it knows of.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// The index of the last entry it applied.
    pub fn applied(&self) -> u64 {
        self.raft
            .metrics()
            .borrow()
            .last_applied
            .map(|l| l.index)
            .unwrap_or(0)
    }

    /// Stops it as a crash would: no more messages, Raft stopped, memory gone (the
    /// disk stays).
    pub async fn crash(fabric: &Fabric, id: u64) {
        let Some(node) = fabric.remove(id) else {
            return;
        };
        if let Some(t) = node
            .supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
        let _ = node.raft.shutdown().await;
    }
}

/// The pre-vote supervisor of `Member` (`duties.rs`), over the fabric: after a
/// randomised timeout without word from a leader, ask the other voters; start an
/// election only if a majority (counting itself) agrees the leader is gone.
async fn prevote_loop(fabric: Weak<Fabric>, me: Weak<SimNode>, mut rng: StdRng) {
    let mut timeout = election_timeout_with(&mut rng);
    let mut timer = tokio::time::interval(Duration::from_millis(100));
    loop {
        timer.tick().await;
        let (Some(fabric), Some(node)) = (fabric.upgrade(), me.upgrade()) else {
            return;
        };
        let m = node.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            node.contact.touch();
            continue;
        }
        let voters: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
        if !voters.contains(&node.id) || node.contact.elapsed() < timeout {
            continue;
        }
        let req = PreVoteRequest {
            candidate: node.id,
            last_log_id: node.disk.last_log_id(),
        };
        let asks = voters.iter().filter(|id| **id != node.id).map(|id| {
            let req = req.clone();
            let fabric = fabric.clone();
            let from = node.id;
            async move {
                fabric
                    .call(from, *id, Duration::from_millis(500), |n| async move {
                        decide(
                            n.is_leader(),
                            n.contact.elapsed(),
                            n.disk.last_log_id(),
                            &req,
                        )
                    })
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
            let _ = node.raft.trigger().elect().await;
        }
        node.contact.touch();
        timeout = election_timeout_with(&mut rng);
    }
}
