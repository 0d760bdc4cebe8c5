//! openraft wiring: type configuration, durable log, state machine, network, pre-vote.
//!
//! ```text
//!  client_write(Proposal) ─▶ LogStore (WAL, fdatasync before ack) ─▶ replicate (mTLS)
//!        committed ─▶ StateMachine::apply ─▶ state::apply ─▶ Replica (watch stream)
//! ```
//! Elections are gated by our own pre-vote ([`prevote`]): openraft's own election timer is
//! off, and a follower only starts an election after a majority agreed that the leader
//! is gone, so a node that was cut off cannot disrupt a healthy cluster when it returns.

pub mod log_store;
pub mod network;
pub mod prevote;
pub mod read;
pub mod state_machine;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::state::{Applied, ApplyError, Proposal};

/// The outcome of applying one log entry, returned to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult(pub Result<Applied, ApplyError>);

openraft::declare_raft_types!(
    /// shoal's Raft types.
    pub TypeConfig:
        D = Proposal,
        R = ApplyResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A running Raft node.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log position.
pub type LogId = openraft::LogId<u64>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A vote.
pub type Vote = openraft::Vote<u64>;
/// A storage failure.
pub type StorageError = openraft::StorageError<u64>;

/// Raft timing, tuned for real networks rather than a benchmark on loopback.
pub fn config(cluster_id: &str) -> openraft::Config {
    openraft::Config {
        cluster_name: format!("shoal-{cluster_id}"),
        heartbeat_interval: 250,
        // openraft derives the leader lease from these; elections themselves are
        // started by the pre-vote supervisor, which uses ELECTION_TIMEOUT.
        election_timeout_min: 1000,
        election_timeout_max: 1500,
        install_snapshot_timeout: 5000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(512),
        max_in_snapshot_log_to_keep: 256,
        max_payload_entries: 256,
        snapshot_max_chunk_size: 1 << 20,
        enable_elect: false,
        ..Default::default()
    }
}
