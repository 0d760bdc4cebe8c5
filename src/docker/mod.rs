//! shoal as Docker's network and IPAM driver.
//!
//! ```text
//!  dockerd ──unix socket──▶ `shoal docker-plugin serve` ──agent API──▶ agent
//!    (/NetworkDriver.Join, /IpamDriver.RequestAddress, ...)   (/v1/docker/<call>)
//!                                                                   │
//!                                              cluster state ◀──────┤ (leases, endpoints)
//!                                              Docker Engine API ◀──┘ (network and container names)
//! ```
//! The plugin process is a thin adapter: it relays every call to the local agent,
//! which answers from the cluster state, so a Docker container gets the same endpoint
//! records, allocator and data path as `shoal attach`. See [`driver`] for the calls.

pub mod driver;
pub mod engine;
pub mod plugin;
pub mod protocol;
