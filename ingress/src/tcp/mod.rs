//! TCP routers, as Træfik v3's: whole connections routed by ``HostSNI(`…`)`` read from
//! the TLS ClientHello (passed through, or terminated here), or ``HostSNI(`*`)`` for
//! plain TCP, to a TCP service's servers, on TCP entrypoints of their own.
//!
//! ```text
//!  accept (TCP entrypoint) ─▶ PROXY header, if the entrypoint reads them
//!    ├─ no TLS router on this entrypoint ─▶ match plain routers now (the server may
//!    │                                      speak first: databases, SMTP)
//!    └─ else read until sni::peek decides ─▶ not TLS: plain routers
//!                                          └▶ ClientHello: TLS routers (SNI, ALPN)
//!  router ─▶ Passthrough / Off: dial a server, [send the service's PROXY header],
//!            replay the bytes read, copy both ways
//!         └▶ Terminate: TLS handshake here (the bytes read fed in), copy plaintext
//! ```
//! [`sni`] and [`rule`] are pure; [`table`] orders the routers and picks one; the
//! listener does the IO. Each direction is closed on its own (half-close), so a client
//! that shuts down its sending side still gets the whole answer.

mod listener;
pub mod rule;
pub mod sni;
pub mod table;

pub use listener::TcpProxy;
pub use rule::{ConnFacts, TcpRule, TcpRuleError};
