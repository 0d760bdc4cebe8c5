//! What can go wrong in cluster operations, with the HTTP status each maps to.

use crate::state::{ApplyError, SpecError};
use crate::token::TokenError;
use crate::transport::PeerError;

/// A cluster operation that failed. "This request failed" errors only; a node that must
/// stop (storage broken) shuts its Raft down and reports [`ClusterError::Unavailable`].
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// The agent is not part of a cluster.
    #[error("this node is not part of a cluster: run `shoal cluster init`, or `shoal cluster join` with a token")]
    NotInCluster,
    /// The agent is already part of a cluster.
    #[error("this node is already part of cluster {0}; leave it first with `shoal cluster leave`")]
    AlreadyInCluster(String),
    /// The state machine refused the change.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No leader could commit the change in time.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// This node is not the leader (and did not forward).
    #[error("not the leader{}", .0.map(|a| format!("; the leader is at {a}")).unwrap_or_default())]
    NotLeader(Option<std::net::SocketAddr>),
    /// The node cannot serve this now.
    #[error("{0}")]
    Unavailable(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// Joining failed.
    #[error("{0}")]
    Join(String),
    /// Another node failed to answer.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// Local storage failed.
    #[error("storage: {0}")]
    Storage(String),
}

/// A value in a request that could not be read is a malformed request (400).
impl From<SpecError> for ClusterError {
    fn from(e: SpecError) -> ClusterError {
        ClusterError::Invalid(e.to_string())
    }
}

/// So is a join token that is not one.
impl From<TokenError> for ClusterError {
    fn from(e: TokenError) -> ClusterError {
        ClusterError::Invalid(e.to_string())
    }
}

impl ClusterError {
    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            ClusterError::NotInCluster | ClusterError::AlreadyInCluster(_) => 409,
            ClusterError::Apply(e) => e.http_status(),
            ClusterError::Forbidden(_) => 403,
            ClusterError::NoQuorum(_) | ClusterError::Unavailable(_) => 503,
            ClusterError::NotLeader(_) => 421,
            ClusterError::Invalid(_) => 400,
            ClusterError::Join(_) => 400,
            ClusterError::Peer(PeerError::Remote { status, .. }) => *status,
            ClusterError::Peer(_) => 502,
            ClusterError::Storage(_) => 500,
        }
    }

    /// Rebuilds an error from a peer's error answer, keeping its status and message.
    pub fn from_remote(e: PeerError) -> ClusterError {
        match e {
            PeerError::Remote {
                status, message, ..
            } => match status {
                403 => ClusterError::Forbidden(message),
                421 => ClusterError::NotLeader(None),
                503 if message.starts_with("no quorum: ") => {
                    ClusterError::NoQuorum(message.trim_start_matches("no quorum: ").to_string())
                }
                503 => ClusterError::Unavailable(message),
                400 => ClusterError::Invalid(message),
                _ => ClusterError::Peer(PeerError::Remote {
                    addr: ([0, 0, 0, 0], 0).into(),
                    status,
                    message,
                }),
            },
            other => ClusterError::Peer(other),
        }
    }
}
