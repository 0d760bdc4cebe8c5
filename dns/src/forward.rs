//! Forwarding the names we do not know to the node's upstream resolvers.
//!
//! ```text
//!  client query ─▶ UpstreamQuery (same bytes, fresh random ID)
//!     for each upstream, with a share of the time budget left:
//!        UDP send ─▶ recv until a reply `accept`s (ID, QR, same question) ─▶ relay
//!          └ TC and the client came over TCP ─▶ ask the same upstream over TCP
//!        timeout / socket error ─▶ next upstream
//!     budget spent ─▶ Error::UpstreamTimeout (the caller answers SERVFAIL)
//! ```
//! The checks ([`UpstreamQuery::accept`]) are pure; [`forward`] is the IO around them.
//! The upstream list never contains this resolver itself ([`effective_upstreams`]).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::answer::{ForwardQuery, Transport};
use crate::request::HEADER_LEN;
use crate::Error;

/// Time budget for one forwarded query, over all upstreams.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest reply we take from an upstream.
const MAX_REPLY: usize = u16::MAX as usize;
const QR: u8 = 0b1000_0000;
const TC: u8 = 0b0000_0010;
const RCODE_MASK: u8 = 0b0000_1111;

/// The configured upstreams less any that are this resolver (an address it listens on,
/// also through a wildcard bind) or that cannot be sent to; duplicates removed.
pub fn effective_upstreams(configured: &[SocketAddr], own: &[SocketAddr]) -> Vec<SocketAddr> {
    let is_own = |up: &SocketAddr| {
        own.iter()
            .any(|o| o.port() == up.port() && (o.ip() == up.ip() || o.ip().is_unspecified()))
    };
    let mut out: Vec<SocketAddr> = Vec::with_capacity(configured.len());
    for up in configured {
        if up.ip().is_unspecified() || up.port() == 0 || is_own(up) || out.contains(up) {
            continue;
        }
        out.push(*up);
    }
    out
}

/// The copy of a client's query sent upstream, and the checks on what comes back.
#[derive(Debug, Clone)]
pub struct UpstreamQuery {
    bytes: Vec<u8>,
    client_id: u16,
    question_len: usize,
}

impl UpstreamQuery {
    /// Copies `query` with `id` in place of the client's ID.
    pub fn new(query: &[u8], forward: &ForwardQuery, id: u16) -> Self {
        let mut bytes = query.to_vec();
        if let Some(head) = bytes.get_mut(..2) {
            head.copy_from_slice(&id.to_be_bytes());
        }
        Self {
            bytes,
            client_id: forward.header.id,
            question_len: forward.question_len,
        }
    }

    /// The bytes to send.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether `reply` answers this query: our ID, QR set, and the same question
    /// (letter case aside), or no question with an error rcode. If so, puts the client's
    /// ID back in and returns true; anything else (stale, spoofed) is to be ignored.
    pub fn accept(&self, reply: &mut [u8]) -> bool {
        if reply.len() < HEADER_LEN || reply[..2] != self.bytes[..2] || reply[2] & QR == 0 {
            return false;
        }
        let qdcount = u16::from_be_bytes([reply[4], reply[5]]);
        let matches = match qdcount {
            0 => reply[3] & RCODE_MASK != 0,
            1 => {
                let range = HEADER_LEN..HEADER_LEN + self.question_len;
                // Length octets are < 64, so ASCII case folding cannot change them.
                match (reply.get(range.clone()), self.bytes.get(range)) {
                    (Some(theirs), Some(ours)) => theirs.eq_ignore_ascii_case(ours),
                    _ => false,
                }
            }
            _ => false,
        };
        if matches {
            reply[..2].copy_from_slice(&self.client_id.to_be_bytes());
        }
        matches
    }
}

/// Whether a reply has its TC bit set.
fn is_truncated(reply: &[u8]) -> bool {
    reply.get(2).is_some_and(|b| b & TC != 0)
}

/// Sends `query` to the upstreams in turn, each with an equal share of what is left of
/// `budget`, and returns the first accepted reply, carrying the client's ID.
pub async fn forward(
    upstreams: &[SocketAddr],
    query: &[u8],
    fq: &ForwardQuery,
    budget: Duration,
    transport: Transport,
) -> Result<Vec<u8>, Error> {
    if upstreams.is_empty() {
        return Err(Error::NoUpstreams);
    }
    let upstream_query = UpstreamQuery::new(query, fq, rand::random());
    let deadline = Instant::now() + budget;
    let mut last_io_error = None;
    for (i, &upstream) in upstreams.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(upstreams.len() - i).unwrap_or(u32::MAX);
        let attempt = exchange(upstream, &upstream_query, transport);
        match tokio::time::timeout(share, attempt).await {
            Ok(Ok(reply)) => return Ok(reply),
            Ok(Err(e)) => {
                tracing::debug!(%upstream, error = %e, "upstream failed, trying the next");
                last_io_error = Some(e);
            }
            Err(_) => tracing::debug!(%upstream, ?share, "upstream timed out, trying the next"),
        }
    }
    Err(match last_io_error {
        Some(e) if upstreams.len() == 1 => e,
        _ => Error::UpstreamTimeout {
            after: budget,
            tried: upstreams.len(),
        },
    })
}

/// One upstream: UDP, then TCP if the reply was truncated and the client can take more.
async fn exchange(
    upstream: SocketAddr,
    query: &UpstreamQuery,
    transport: Transport,
) -> Result<Vec<u8>, Error> {
    let reply = exchange_udp(upstream, query).await?;
    if transport == Transport::Tcp && is_truncated(&reply) {
        return exchange_tcp(upstream, query).await;
    }
    Ok(reply)
}

async fn exchange_udp(upstream: SocketAddr, query: &UpstreamQuery) -> Result<Vec<u8>, Error> {
    let io = |source| Error::UpstreamIo { upstream, source };
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(upstream).await.map_err(io)?;
    socket.send(query.bytes()).await.map_err(io)?;
    let mut buf = vec![0; MAX_REPLY];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io)?;
        if query.accept(&mut buf[..n]) {
            buf.truncate(n);
            return Ok(buf);
        }
        tracing::debug!(%upstream, "ignored an upstream reply that does not match the query");
    }
}

async fn exchange_tcp(upstream: SocketAddr, query: &UpstreamQuery) -> Result<Vec<u8>, Error> {
    let io = |source| Error::UpstreamIo { upstream, source };
    let mut stream = TcpStream::connect(upstream).await.map_err(io)?;
    let len = u16::try_from(query.bytes().len()).map_err(|_| io(too_long()))?;
    let mut framed = Vec::with_capacity(2 + query.bytes().len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query.bytes());
    stream.write_all(&framed).await.map_err(io)?;
    let len = stream.read_u16().await.map_err(io)?;
    let mut reply = vec![0; usize::from(len)];
    stream.read_exact(&mut reply).await.map_err(io)?;
    if !query.accept(&mut reply) {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "TCP reply does not match the query",
        )));
    }
    Ok(reply)
}

fn too_long() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "query longer than 65535 bytes",
    )
}

#[cfg(test)]
mod tests;
