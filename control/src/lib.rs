//! shoal's control plane: the replicated cluster state and everything that moves it.
//!
//! ```text
//!  CLI ─unix socket─▶ agent ─▶ ClusterNode::propose ─(mTLS, forwarded)─▶ leader ─▶ Raft log
//!                                                                    apply ▼
//!  every node ◀── watch stream (revision, redacted proposal) ◀── state machine ─▶ ClusterState
//! ```
//! - [`state`]: the pure, deterministic state machine (`apply`).
//! - [`pki`] and [`token`]: the cluster CA, node certificates and join tokens.
//! - [`raft`]: openraft storage (log, snapshots on disk) and network.
//! - [`watch`]: the change feed every node follows.

pub mod api;
pub mod error;
pub mod ids;
pub mod liveness;
pub mod member;
pub mod pki;
pub mod raft;
pub mod server;
pub mod state;
pub mod tls;
pub mod token;
pub mod transport;
pub mod watch;

pub use error::ClusterError;
pub use ids::NodeId;
pub use member::Member;
