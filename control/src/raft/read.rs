//! Linearizable reads by read index: the leader confirms with a majority that it still
//! leads and names the log index a read must see (openraft's `ensure_linearizable`);
//! any node then serves the read from its own replica once it has caught up with the
//! leader's replica at that point.
//! A replica read without this may be stale: a follower applies a commit only when the
//! leader's next message tells it, and a leader cut off from the majority keeps serving
//! its old state until it notices.

use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError};

use super::Raft;
use crate::error::ClusterError;
use crate::watch::Replica;

/// On the leader: confirms leadership with a majority, waits until this node applied
/// everything committed before the call, and returns that log index.
pub async fn read_index(raft: &Raft, timeout: Duration) -> Result<u64, ClusterError> {
    match tokio::time::timeout(timeout, raft.ensure_linearizable()).await {
        Err(_) => Err(ClusterError::NoQuorum(format!(
            "the leader could not confirm with a majority of managers that it still leads within {}s",
            timeout.as_secs_f64()
        ))),
        Ok(Ok(log)) => Ok(log.map(|l| l.index).unwrap_or(0)),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => Err(
            ClusterError::NotLeader(f.leader_node.and_then(|n| n.addr.parse().ok())),
        ),
        Ok(Err(e)) => Err(ClusterError::NoQuorum(format!("read index: {e}"))),
    }
}

/// On the leader: [`read_index`], then the revision of this leader's replica, which
/// has applied at least that far. Any node's replica at this revision or later serves a
/// read that started before the call linearizably (revisions work on workers too,
/// whose replicas follow the watch stream rather than the log).
pub async fn read_revision(
    raft: &Raft,
    replica: &Replica,
    timeout: Duration,
) -> Result<u64, ClusterError> {
    read_index(raft, timeout).await?;
    Ok(replica.revision())
}

/// Waits until `replica` reaches `revision`.
pub async fn wait_for_revision(
    replica: &Replica,
    revision: u64,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let mut changes = replica.changes();
    let caught_up = async {
        while replica.revision() < revision {
            if changes.changed().await.is_err() {
                return false;
            }
        }
        true
    };
    match tokio::time::timeout(timeout, caught_up).await {
        Ok(true) => Ok(()),
        _ => Err(ClusterError::Unavailable(format!(
            "this node's replica did not reach the leader's revision {revision} within {}s (it is at {})",
            timeout.as_secs_f64(),
            replica.revision()
        ))),
    }
}
