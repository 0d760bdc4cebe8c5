//! A manager whose Raft stopped on a storage error (a full disk, a failed fdatasync):
//! writes through it are refused at once with the reason, and a new Raft is started on
//! the same log and state machine every few seconds until the disk takes writes again.
//!
//! openraft treats any storage error as fatal and stops its core; the log store has by
//! then cut its file back to the last acknowledged record and rebuilt its memory from it
//! (`raft::log_store`), so the new Raft starts from exactly what is on disk, as after a
//! restart but without one. If the disk still refuses, the new Raft stops again at its
//! first append and the next attempt follows.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::Fatal;

use super::{Member, RaftNode};
use crate::error::ClusterError;
use crate::raft::network::Network;
use crate::raft::{self, Raft};

/// How often a stopped Raft is started again.
const REOPEN_EVERY: Duration = Duration::from_secs(2);

/// The refusal of a write because this manager's Raft stopped on `why`.
pub(super) fn stopped(why: impl std::fmt::Display) -> ClusterError {
    ClusterError::Unavailable(format!(
        "this manager's Raft stopped on a storage error ({why}); it takes no writes until its disk does (it retries every {}s)",
        REOPEN_EVERY.as_secs()
    ))
}

impl RaftNode {
    /// Why this node's Raft stopped, if it stopped on an error (not on shutdown).
    pub fn failure(&self) -> Option<String> {
        match &self.raft.metrics().borrow().running_state {
            Ok(()) | Err(Fatal::Stopped) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// The refusal a write through this node gets while its Raft is stopped.
    pub(super) fn refusal(&self) -> Option<ClusterError> {
        self.failure().map(stopped)
    }

    /// A new Raft on this node's log and state machine.
    async fn reopen(
        &self,
        node_id: u64,
        cluster_id: &str,
        member: &Member,
    ) -> Result<Arc<RaftNode>, ClusterError> {
        let config = raft::config(cluster_id)
            .validate()
            .map_err(|e| ClusterError::Storage(format!("Raft configuration: {e}")))?;
        let raft = Raft::new(
            node_id,
            Arc::new(config),
            Network::new(member.peers.clone()),
            self.log.clone(),
            self.sm.clone(),
        )
        .await
        .map_err(|e| ClusterError::Storage(format!("cannot start Raft: {e}")))?;
        let opened_at = self.log.last_log_id().map(|l| l.index).unwrap_or(0);
        Ok(Arc::new(RaftNode {
            raft,
            log: self.log.clone(),
            sm: self.sm.clone(),
            contact: Default::default(),
            opened_at,
        }))
    }
}

impl Member {
    /// Starts a new Raft when the current one stopped on a storage error.
    pub(super) async fn storage_loop(self: Arc<Self>) {
        self.every(REOPEN_EVERY, || async {
            let Some(node) = self.raft() else { return };
            let Some(why) = node.failure() else { return };
            let _guard = self.role_change.lock().await;
            // Demoted or replaced meanwhile: nothing to do.
            if !self.raft().is_some_and(|r| Arc::ptr_eq(&r, &node)) {
                return;
            }
            match node.reopen(self.node_id.0, &self.cluster_id, &self).await {
                Ok(fresh) => {
                    tracing::warn!(
                        error = %why,
                        "Raft had stopped on a storage error; started it again from the log on disk"
                    );
                    *self.raft.write().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
                }
                Err(e) => tracing::error!(error = %e, "Raft stopped on a storage error and cannot be started again; will retry"),
            }
        })
        .await
    }
}
