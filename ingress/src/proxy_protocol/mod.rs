//! The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's specification
//! (`doc/proxy-protocol.txt`) defines them: a header a relay sends first on a TCP
//! connection, naming the client and the address it connected to.
//!
//! ```text
//!  v1: "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"        (≤ 107 bytes)
//!      "PROXY UNKNOWN …\r\n"                                     (addresses unknown)
//!  v2: \r\n\r\n\0\r\nQUIT\n | ver 2, cmd | family, transport | len (u16 BE)
//!      | addresses (v4: 12, v6: 36, unix: 216 bytes) | TLVs (skipped)
//! ```
//! [`parse`] reads bytes already received and says whether they start with a header
//! (and how long it is), cannot start with one, or need more; [`encode`] writes one.
//! Pure: the IO of accepting and sending is in [`accept`] and the TCP listener.

pub mod accept;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v1 signature.
const V1_SIGNATURE: &[u8] = b"PROXY";
/// The longest v1 header, CRLF included (spec §2.1).
pub const V1_MAX: usize = 107;
/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part of a v2 header: signature, version and command, family and
/// transport, length.
const V2_FIXED: usize = 16;
/// Offsets in the fixed part of a v2 header.
const V2_VERSION_COMMAND: usize = 12;
const V2_FAMILY: usize = 13;
const V2_LENGTH: usize = 14;
/// Address block sizes by family (spec §2.2).
const V2_INET: usize = 12;
const V2_INET6: usize = 36;
const V2_UNIX: usize = 216;

/// A PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// Text.
    V1,
    /// Binary.
    V2,
}

impl TryFrom<u64> for Version {
    type Error = String;

    fn try_from(n: u64) -> Result<Version, String> {
        match n {
            1 => Ok(Version::V1),
            2 => Ok(Version::V2),
            n => Err(format!("PROXY protocol version {n}: must be 1 or 2")),
        }
    }
}

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Relayed for `source` (the client), which connected to `destination`.
    Proxy {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// The connection's own addresses stand: v2 `LOCAL` (a relay's health check), v1
    /// `UNKNOWN`, or v2 addresses of an unknown or Unix family.
    Local,
}

/// What the first bytes of a connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header of this many bytes.
    Header(Header, usize),
    /// The bytes so far could start a header: read more.
    Incomplete,
    /// Not a PROXY header: the connection's bytes are its own.
    Absent,
}

/// A header that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyProtocolError {
    /// A v1 line longer than the specification allows.
    #[error("PROXY v1 header longer than {V1_MAX} bytes")]
    V1TooLong,
    /// A v1 line that does not end in CRLF.
    #[error("PROXY v1 header does not end in CRLF")]
    V1NoCrlf,
    /// A v1 line that is not `PROXY TCP4|TCP6 src dst sport dport` or `PROXY UNKNOWN`.
    #[error("PROXY v1 header is malformed: {0}")]
    V1Malformed(&'static str),
    /// A v2 header of a version other than 2.
    #[error("PROXY v2 header has version {0}")]
    V2Version(u8),
    /// A v2 command other than LOCAL and PROXY.
    #[error("PROXY v2 header has unknown command {0}")]
    V2Command(u8),
    /// A v2 family or transport protocol the specification does not define.
    #[error("PROXY v2 header has unknown family/transport byte {0:#04x}")]
    V2Family(u8),
    /// A v2 address block shorter than its family needs.
    #[error("PROXY v2 header: {0} bytes of addresses, the family needs {1}")]
    V2Short(usize, usize),
}

/// Reads a header from the start of `buf` (nothing yet is [`Parsed::Incomplete`]).
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    if buf.is_empty() {
        return Ok(Parsed::Incomplete);
    }
    if could_start(buf, V1_SIGNATURE) {
        return if buf.len() < V1_SIGNATURE.len() {
            Ok(Parsed::Incomplete)
        } else {
            parse_v1(buf)
        };
    }
    if could_start(buf, V2_SIGNATURE) {
        return if buf.len() < V2_FIXED {
            Ok(Parsed::Incomplete)
        } else {
            parse_v2(buf)
        };
    }
    Ok(Parsed::Absent)
}

/// Whether `buf` and `signature` agree on their common length (and `buf` is not empty).
fn could_start(buf: &[u8], signature: &[u8]) -> bool {
    let n = buf.len().min(signature.len());
    n > 0 && buf[..n] == signature[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    use ProxyProtocolError::{V1Malformed, V1NoCrlf, V1TooLong};
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|b| *b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(V1TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let line = window[..lf].strip_suffix(b"\r").ok_or(V1NoCrlf)?;
    let line = std::str::from_utf8(line).map_err(|_| V1Malformed("not ASCII"))?;
    let mut fields = line.split(' ');
    if fields.next() != Some("PROXY") {
        return Err(V1Malformed("no `PROXY ` at the start"));
    }
    let header = match fields.next() {
        // The rest of the line is ignored (spec §2.1).
        Some("UNKNOWN") => Header::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let v6 = family == "TCP6";
            let mut next = || fields.next().ok_or(V1Malformed("missing fields"));
            let (src, dst) = (v1_ip(next()?, v6)?, v1_ip(next()?, v6)?);
            let (sport, dport) = (v1_port(next()?)?, v1_port(next()?)?);
            if fields.next().is_some() {
                return Err(V1Malformed("extra fields"));
            }
            Header::Proxy {
                source: SocketAddr::new(src, sport),
                destination: SocketAddr::new(dst, dport),
            }
        }
        _ => return Err(V1Malformed("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Parsed::Header(header, lf + 1))
}

fn v1_ip(text: &str, v6: bool) -> Result<IpAddr, ProxyProtocolError> {
    let bad = ProxyProtocolError::V1Malformed("bad address for the protocol");
    if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| bad)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| bad)
    }
}

/// A port: decimal, no leading zero (spec §2.1).
fn v1_port(text: &str) -> Result<u16, ProxyProtocolError> {
    let bad = ProxyProtocolError::V1Malformed("bad port");
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return Err(bad);
    }
    text.parse().map_err(|_| bad)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    use ProxyProtocolError::{V2Command, V2Family, V2Short, V2Version};
    let version_command = buf[V2_VERSION_COMMAND];
    if version_command >> 4 != 2 {
        return Err(V2Version(version_command >> 4));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        c => return Err(V2Command(c)),
    };
    let family = buf[V2_FAMILY];
    // Family: unspec, inet, inet6, unix; transport: unspec, stream, dgram.
    if family >> 4 > 3 || family & 0x0f > 2 {
        return Err(V2Family(family));
    }
    let len = u16::from_be_bytes([buf[V2_LENGTH], buf[V2_LENGTH + 1]]) as usize;
    if buf.len() < V2_FIXED + len {
        return Ok(Parsed::Incomplete);
    }
    let block = &buf[V2_FIXED..V2_FIXED + len];
    let needs = match family >> 4 {
        1 => V2_INET,
        2 => V2_INET6,
        3 => V2_UNIX,
        _ => 0,
    };
    if block.len() < needs {
        return Err(V2Short(block.len(), needs));
    }
    let total = V2_FIXED + len;
    // LOCAL: the addresses, if any, are ignored (spec §2.2); so are unspec and unix.
    if local || needs == 0 || needs == V2_UNIX {
        return Ok(Parsed::Header(Header::Local, total));
    }
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    let header = if needs == V2_INET {
        let ip =
            |at: usize| IpAddr::from(<[u8; 4]>::try_from(&block[at..at + 4]).unwrap_or([0; 4]));
        Header::Proxy {
            source: SocketAddr::new(ip(0), port(8)),
            destination: SocketAddr::new(ip(4), port(10)),
        }
    } else {
        let ip =
            |at: usize| IpAddr::from(<[u8; 16]>::try_from(&block[at..at + 16]).unwrap_or([0; 16]));
        Header::Proxy {
            source: SocketAddr::new(ip(0), port(32)),
            destination: SocketAddr::new(ip(16), port(34)),
        }
    };
    Ok(Parsed::Header(header, total))
}

/// The header of `version` saying `header`. Addresses of mixed families go as IPv6
/// (IPv4 mapped); IPv4-mapped IPv6 addresses of one family as IPv4.
pub fn encode(version: Version, header: &Header) -> Vec<u8> {
    let addresses = match *header {
        Header::Local => None,
        Header::Proxy {
            source,
            destination,
        } => Some(same_family(source, destination)),
    };
    match version {
        Version::V1 => encode_v1(addresses),
        Version::V2 => encode_v2(addresses),
    }
}

/// `source` and `destination` as both IPv4 or both IPv6.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (s, d) = (canonical(source), canonical(destination));
    if s.is_ipv4() == d.is_ipv4() {
        return (s, d);
    }
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    (v6(s), v6(d))
}

fn encode_v1(addresses: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let Some((s, d)) = addresses else {
        return b"PROXY UNKNOWN\r\n".to_vec();
    };
    let family = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        s.ip(),
        d.ip(),
        s.port(),
        d.port()
    )
    .into_bytes()
}

fn encode_v2(addresses: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(V2_FIXED + V2_INET6);
    out.extend_from_slice(V2_SIGNATURE);
    let Some((s, d)) = addresses else {
        // LOCAL, family unspecified, no addresses.
        out.extend_from_slice(&[0x20, 0x00, 0, 0]);
        return out;
    };
    let (family, len) = match s.ip() {
        IpAddr::V4(_) => (0x11, V2_INET),
        IpAddr::V6(_) => (0x21, V2_INET6),
    };
    out.extend_from_slice(&[0x21, family]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for ip in [s.ip(), d.ip()] {
        match ip {
            IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
        }
    }
    out.extend_from_slice(&s.port().to_be_bytes());
    out.extend_from_slice(&d.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests;
