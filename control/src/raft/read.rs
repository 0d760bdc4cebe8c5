//! Linearizable reads by read index: the leader confirms with a majority that it still
//! leads and names the log index a read must see (openraft's `ensure_linearizable`);
//! any manager then serves the read from its own replica once it has applied that far.
//! A replica read without this may be stale: a follower applies a commit only when the
//! leader's next message tells it, and a leader cut off from the majority keeps serving
//! its old state until it notices.

use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError};

use super::Raft;
use crate::error::ClusterError;

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

/// Waits until this node applied log index `index`, so its replica serves a read
/// that started after the read index was taken.
pub async fn wait_applied(raft: &Raft, index: u64, timeout: Duration) -> Result<(), ClusterError> {
    raft.wait(Some(timeout))
        .applied_index_at_least(Some(index), "read index")
        .await
        .map(|_| ())
        .map_err(|e| {
            ClusterError::Unavailable(format!(
                "this manager did not catch up with the leader's log index {index}: {e}"
            ))
        })
}
