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
//!
//! The other way round, [`provider`] reads routes out of Docker: it follows a daemon's
//! event stream ([`events`]) and turns containers and Swarm services ([`objects`],
//! [`workloads`]) into the ingress's routes.

pub mod driver;
pub mod engine;
pub mod events;
pub mod objects;
pub mod plugin;
pub mod protocol;
pub mod provider;
pub mod stopping;
pub mod workloads;
