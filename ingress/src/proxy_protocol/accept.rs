//! Reading a PROXY header on an entrypoint that accepts one, as Træfik's entrypoints
//! do (go-proxyproto with its `USE` / `IGNORE` policies):
//!
//! ```text
//!  read until parse() decides, within the timeout
//!   ├─ a header, peer trusted   ─▶ its addresses are the connection's (LOCAL: the
//!   │                              connection's own)
//!   ├─ a header, peer untrusted ─▶ consumed and ignored: the peer is the client
//!   ├─ no header, or none complete when the timeout ends ─▶ the peer is the client,
//!   │                              every byte read is the connection's
//!   └─ a malformed header, or the peer closing inside one ─▶ error: close
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{parse, Header, Parsed, ProxyProtocolError, V1_MAX};

/// A connection's addresses once its PROXY header (if any) is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The client: the header's source when the peer is trusted, else the peer.
    pub client: SocketAddr,
    /// The address the client connected to (the header's destination when trusted).
    pub local: SocketAddr,
    /// Whether the addresses came from a header.
    pub from_header: bool,
    /// Bytes read after the header (or all of them, without one): the connection's.
    pub early: Vec<u8>,
}

/// Why a connection was closed while its PROXY header was read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The header is malformed.
    #[error(transparent)]
    Header(#[from] ProxyProtocolError),
    /// The peer closed its side in the middle of a header.
    #[error("connection closed inside a PROXY header ({0} bytes read)")]
    Truncated(usize),
    /// Reading failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads `io`'s PROXY header, if it sends one, within `timeout`. `peer` and `local` are
/// the TCP connection's addresses; `trusted` says whether the peer's header counts.
pub async fn read_header<IO: AsyncRead + Unpin>(
    io: &mut IO,
    peer: SocketAddr,
    local: SocketAddr,
    trusted: bool,
    timeout: Duration,
) -> Result<Accepted, AcceptError> {
    let mut buf = Vec::with_capacity(V1_MAX + 1);
    let read = read_until_decided(io, &mut buf);
    let decided = match tokio::time::timeout(timeout, read).await {
        Ok(decided) => decided?,
        // As go-proxyproto: no header in time is no header.
        Err(_) => None,
    };
    let mut accepted = Accepted {
        client: peer,
        local,
        from_header: false,
        early: Vec::new(),
    };
    match decided {
        Some((
            Header::Proxy {
                source,
                destination,
            },
            len,
        )) => {
            if trusted {
                accepted.client = source;
                accepted.local = destination;
                accepted.from_header = true;
            } else {
                tracing::debug!(%peer, "PROXY header from an untrusted address ignored");
            }
            buf.drain(..len);
        }
        Some((Header::Local, len)) => {
            buf.drain(..len);
        }
        None => {}
    }
    accepted.early = buf;
    Ok(accepted)
}

/// Reads into `buf` until its start is a header (`Some`, with its length) or is not
/// one (`None`).
async fn read_until_decided<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut Vec<u8>,
) -> Result<Option<(Header, usize)>, AcceptError> {
    loop {
        match parse(buf)? {
            Parsed::Header(header, len) => return Ok(Some((header, len))),
            Parsed::Absent => return Ok(None),
            Parsed::Incomplete => {}
        }
        buf.reserve(512);
        if io.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(AcceptError::Truncated(buf.len()))
            };
        }
    }
}

/// [`read_header`] on a TCP connection from `peer`, believing the header if `trust`
/// holds the peer.
pub async fn from_tcp(
    stream: &mut tokio::net::TcpStream,
    peer: SocketAddr,
    trust: &crate::config::Trust,
    timeout: Duration,
) -> Result<Accepted, AcceptError> {
    let local = stream.local_addr()?;
    read_header(stream, peer, local, trust.trusts(peer.ip()), timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const PEER: &str = "127.0.0.1:40000";
    const LOCAL: &str = "127.0.0.1:80";

    async fn read(bytes: &[u8], trusted: bool) -> Result<Accepted, AcceptError> {
        let mut io = bytes;
        let (peer, local) = (PEER.parse().unwrap(), LOCAL.parse().unwrap());
        read_header(&mut io, peer, local, trusted, Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn a_trusted_header_names_the_client_and_the_rest_is_the_connection_s() {
        let a = read(b"PROXY TCP4 192.0.2.1 198.51.100.1 5 443\r\nGET /", true)
            .await
            .unwrap();
        assert_eq!(a.client, "192.0.2.1:5".parse().unwrap());
        assert_eq!(a.local, "198.51.100.1:443".parse().unwrap());
        assert!(a.from_header);
        assert_eq!(a.early, b"GET /");
        let a = read(b"PROXY TCP4 192.0.2.1 198.51.100.1 5 443\r\nGET /", false)
            .await
            .unwrap();
        assert_eq!(a.client, PEER.parse().unwrap(), "untrusted: ignored");
        assert!(!a.from_header);
        assert_eq!(a.early, b"GET /", "but consumed");
        let a = read(b"PROXY UNKNOWN\r\nx", true).await.unwrap();
        assert_eq!((a.client, a.early), (PEER.parse().unwrap(), b"x".to_vec()));
    }

    #[tokio::test]
    async fn no_header_leaves_every_byte_and_bad_ones_are_errors() {
        let a = read(b"GET / HTTP/1.1\r\n", true).await.unwrap();
        assert_eq!(a.client, PEER.parse().unwrap());
        assert_eq!(a.early, b"GET / HTTP/1.1\r\n");
        assert!(read(b"", true).await.unwrap().early.is_empty());
        assert!(matches!(
            read(b"PROXY TCP4 1.2.3.4\r\n", true).await,
            Err(AcceptError::Header(_))
        ));
        assert!(matches!(
            read(b"PROXY TCP4 1.2", false).await,
            Err(AcceptError::Truncated(14))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn no_header_in_time_is_no_header() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"PRO").await.unwrap();
        let (peer, local) = (PEER.parse().unwrap(), LOCAL.parse().unwrap());
        let timeout = Duration::from_secs(3);
        let a = read_header(&mut server, peer, local, true, timeout)
            .await
            .unwrap();
        assert_eq!(a.client, peer);
        assert_eq!(a.early, b"PRO", "the bytes read stay the connection's");
    }
}
