//! shoal's control plane: the replicated cluster state and everything that moves it.
//!
//! ```text
//!  CLI ─unix socket─▶ agent ─▶ ClusterNode::propose ─(mTLS, forwarded)─▶ leader ─▶ Raft log
//!                                                                    apply ▼
//!  every node ◀── watch stream (revision, redacted proposal) ◀── state machine ─▶ ClusterState
//! ```
//! - [`state`]: the pure, deterministic state machine (`apply`), the scheduler and
//!   the specs it works on (and [`SpecError`](state::SpecError) for values that do
//!   not read as one).
//! - [`member`]: one node in the cluster: bootstrap and join, the control server's
//!   routes and who may call them, forwarding to the leader, background duties
//!   (heartbeats, leader duties, Raft membership, pre-vote, following the watch stream).
//! - [`raft`]: openraft storage (log, snapshots on disk), network and pre-vote.
//! - [`watch`]: the change feed every node follows.
//! - [`liveness`]: heartbeats in, Ready/Down out (on the leader).
//! - [`mesh`]: every node's view of its peers, gathered on the leader while a dashboard
//!   looks.
//! - [`pki`], [`token`] and [`tls`]: the cluster CA, node certificates, join tokens
//!   (and why a string is not one) and the rustls configurations built from them.
//! - [`server`] and [`transport`]: the mTLS server (who is calling) and client (calling
//!   other nodes).
//! - [`ratelimit`]: token buckets for the endpoint anyone may call.
//! - [`audit`]: checks of a state against a Jepsen-style history (lost writes,
//!   addresses held twice).
//! - `sim` (tests, or the `sim` feature): the Raft tier simulated in one process under
//!   a paused clock, with a seeded nemesis and a linearizability check.
//! - [`api`], [`error`], [`ids`]: request bodies, errors with their HTTP status
//!   ([`ClusterError`]), node IDs and the naming rule.

pub mod api;
pub mod audit;
pub mod error;
pub mod ids;
pub mod liveness;
pub mod member;
pub mod mesh;
pub mod pki;
pub mod raft;
pub mod ratelimit;
pub mod server;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod state;
pub mod tls;
pub mod token;
pub mod transport;
pub mod watch;

pub use error::ClusterError;
pub use ids::NodeId;
pub use member::Member;
