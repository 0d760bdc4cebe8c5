//! Service-discovery DNS for shoal's overlay networks.
//!
//! Each node runs one resolver per overlay network on that network's gateway address.
//! It answers only for the networks the asking sandbox is attached to and forwards
//! every other name to the node's upstream resolvers.
//!
//! ```text
//!   agent ──RecordTable──▶ Resolver::update ─┐ (ArcSwap, lock-free reads)
//!                                            ▼
//!   UDP/TCP bytes ─▶ server ─▶ answer::answer(table, bytes, client, network)
//!                                 ├─ Reply  ─▶ send the bytes written
//!                                 ├─ Forward ─▶ forward (UDP, timeout, next upstream)
//!                                 └─ Drop
//! ```
//! The decision (`answer`) and the record table (`table`) are pure; `server` and the
//! IO half of `forward` are the thin drivers.
//!
//! - `request`: untrusted query bytes become a validated request (or a [`DropReason`]).
//! - [`answer`](mod@answer): what to do with a request: reply from the table, forward, or drop.
//! - `table`: the [`RecordTable`] per network, built by the agent and swapped in whole.
//! - `name`: [`DnsName`], the one spelling table and lookups meet in.
//! - `wire`: writing replies (header, question, A records, OPT).
//! - [`forward`]: upstream forwarding: the pure checks and the UDP exchange.
//! - `server`: the [`Resolver`] and its UDP and TCP listeners; `stats`: its counters.
//! - `error`: [`Error`], input errors apart from serving errors.
//!
//! How the agent uses it:
//! ```no_run
//! # async fn run() -> Result<(), shoal_dns::Error> {
//! use std::net::{IpAddr, Ipv4Addr};
//! use shoal_dns::{RecordTable, Resolver, ResolverConfig};
//!
//! let resolver = Resolver::new(ResolverConfig::default())?;
//! let mut table = RecordTable::builder();
//! table.add("front", "web", [Ipv4Addr::new(10, 0, 1, 2)])?; // service → VIP
//! table.add("front", "tasks.web", [Ipv4Addr::new(10, 0, 1, 3)])?; // its tasks
//! table.attach(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 3)), "front")?; // a sandbox
//! resolver.update(table.build()); // again on every change
//! resolver.set_upstreams(["192.0.2.53:53".parse().unwrap()]); // from resolv.conf
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! resolver
//!     .serve("10.0.1.1:53".parse().unwrap(), "front".into(), async {
//!         let _ = stopped.await;
//!     })
//!     .await?;
//! # drop(stop);
//! # Ok(())
//! # }
//! ```

pub mod answer;
mod error;
pub mod forward;
mod name;
mod request;
mod server;
mod stats;
mod table;
mod wire;

pub use answer::{answer, ForwardQuery, Outcome, QueryContext, Reply, Transport};
pub use error::Error;
pub use hickory_proto::op::ResponseCode;
pub use name::DnsName;
pub use request::DropReason;
pub use server::{Listener, Resolver, ResolverConfig};
pub use stats::Stats;
pub use table::{RecordTable, TableBuilder, DEFAULT_TTL};
