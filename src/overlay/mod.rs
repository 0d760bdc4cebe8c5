//! The agent's overlay duties: derive this node's plan from the cluster state
//! ([`view`]), keep the kernel equal to it ([`reconciler`]), and report the node's own
//! routes and MTU ([`report`]).
//!
//! ```text
//!  ClusterState ─ view ─▶ NodePlan ─ reconciler ─▶ shoal_dataplane::overlay (netlink, nft)
//!                                        ├─ encrypted ─▶ shoal_dataplane::wg engine
//!                                        └─ mesh ─▶ VIP tables in sandboxes
//! ```
//! - [`mesh`]: the routing mesh (the node's own addresses, VIP load balancing);
//!   [`loopback`]: published ports on the node's loopback addresses.
//! - [`return_path`]: which ingress nodes each task sandbox sends replies back through
//!   (ports with `src=preserve`), and its policy routes.
//! - [`encrypted`] and [`keys`]: the encrypted data path and this node's WireGuard key;
//!   [`uapi`]: its WireGuard UAPI socket for `wg show`.
//! - [`dns`]: the service-discovery resolvers on the networks' gateways.
//! - [`error`]: [`OverlayError`](error::OverlayError), why one pass of a duty failed.
//! - `kernel_cache`: the kernel's objects as the last pass left them, reused by the
//!   next pass when it only added or removed FDB and neighbour entries.

pub mod dns;
pub mod encrypted;
pub mod error;
mod kernel_cache;
pub mod keys;
pub mod loopback;
pub mod mesh;
pub mod reconciler;
pub mod report;
pub mod return_path;
pub mod uapi;
pub mod view;

pub use reconciler::Overlay;
