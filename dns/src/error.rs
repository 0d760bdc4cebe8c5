//! The crate's one error type.
//!
//! Variants fall in two groups, kept apart on purpose (STYLE §5):
//! - *input* errors ([`Error::InvalidName`], [`Error::InvalidNetwork`],
//!   [`Error::InvalidConfig`]): the agent handed us something wrong; nothing is served
//!   differently, the caller fixes its input.
//! - *serving* errors: [`Error::Bind`] means this listener cannot run at all; the
//!   `Upstream*` variants mean one forwarded query failed and the client gets SERVFAIL.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything that can go wrong in `shoal-dns`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A record or client name is not a valid DNS host name (labels 1–63 characters of
    /// letters, digits, `-` or `_`; at most 253 characters in all).
    #[error("name {name:?} is not a valid DNS name: {reason}")]
    InvalidName {
        /// The name as the caller gave it.
        name: String,
        /// What rule it breaks.
        reason: &'static str,
    },

    /// A network name given to the table builder is empty or too long.
    #[error("network {network:?} is not a valid network name: {reason}")]
    InvalidNetwork {
        /// The network name as the caller gave it.
        network: String,
        /// What rule it breaks.
        reason: &'static str,
    },

    /// A resolver setting is out of range.
    #[error("resolver config: {0}")]
    InvalidConfig(&'static str),

    /// The listener could not bind its UDP or TCP socket; this network's resolver
    /// cannot run on this node until the address is free.
    #[error("bind {proto} {addr}: {source}")]
    Bind {
        /// `"udp"` or `"tcp"`.
        proto: &'static str,
        /// The address we tried to bind.
        addr: SocketAddr,
        /// What the kernel said.
        source: std::io::Error,
    },

    /// A bound listener could not start serving (socket options, worker threads).
    #[error("start serving: {0}")]
    Serve(#[source] std::io::Error),

    /// No upstream resolver is configured (or all of them are this resolver itself),
    /// so a name we do not know cannot be forwarded.
    #[error("no upstream resolver to forward to")]
    NoUpstreams,

    /// No upstream answered a forwarded query within the forwarding time budget.
    #[error("no upstream answered within {after:?} (tried {tried})")]
    UpstreamTimeout {
        /// The time budget that ran out.
        after: Duration,
        /// How many upstreams were tried.
        tried: usize,
    },

    /// Talking to one upstream failed at the socket level.
    #[error("upstream {upstream}: {source}")]
    UpstreamIo {
        /// The upstream resolver.
        upstream: SocketAddr,
        /// What the kernel said.
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the next upstream may still answer after this error (a timeout or a
    /// socket error on one upstream), as opposed to giving up on the query.
    pub fn try_next_upstream(&self) -> bool {
        matches!(
            self,
            Error::UpstreamIo { .. } | Error::UpstreamTimeout { .. }
        )
    }
}
