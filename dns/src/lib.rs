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
