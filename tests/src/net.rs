//! Clients and servers the tests run inside lab namespaces: a plain HTTP GET, a small
//! DNS client, and a fake upstream resolver that knows one name.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use crate::sandbox::spawn_in;

/// GETs `/` from `addr` inside namespace `ns`; the body, or `None` on any failure.
pub fn http_get(ns: &str, addr: SocketAddr) -> Option<String> {
    spawn_in(ns, move || -> Option<String> {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        c.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
        let mut out = String::new();
        c.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.").then(|| body.to_string())
    })
    .join()
    .ok()
    .flatten()
}

/// Sends `GET path` with `Host: host` from namespace `ns` to `to`; (status, body), or
/// `None` on any failure.
pub fn http_request(ns: &str, to: SocketAddr, host: &str, path: &str) -> Option<(u16, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    spawn_in(ns, move || {
        let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        conn.write_all(request.as_bytes()).ok()?;
        let mut out = String::new();
        conn.read_to_string(&mut out).ok()?;
        let status = out.split_whitespace().nth(1)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((status, body))
    })
    .join()
    .ok()
    .flatten()
}

/// The address `shoal tool peer` at `to` saw for a TCP connection from namespace `ns`,
/// once one is answered (within 30 s) and `ok` accepts it.
pub fn tcp_seen(ns: &str, to: SocketAddr, ok: impl Fn(&str) -> bool) -> String {
    crate::wait_until(
        &format!("{to}/tcp from {ns} answered"),
        Duration::from_secs(30),
        || match tcp_read(ns, to).as_deref().and_then(peer_ip) {
            Some(ip) if ok(&ip) => Ok(ip),
            other => Err(format!("{other:?}")),
        },
    )
}

/// The address `shoal tool peer` says it saw (`peer=IP:PORT ...`), without the port
/// or the brackets of an IPv6 address.
pub fn peer_ip(answer: &str) -> Option<String> {
    let peer = answer
        .split_whitespace()
        .find_map(|w| w.strip_prefix("peer="))?;
    let ip = peer.rsplit_once(':')?.0;
    Some(ip.trim_start_matches('[').trim_end_matches(']').to_string())
}

/// Connects to `addr` from namespace `ns` and reads what the server says until it
/// closes (`shoal tool peer`'s line); `None` on any failure.
pub fn tcp_read(ns: &str, addr: SocketAddr) -> Option<String> {
    spawn_in(ns, move || -> Option<String> {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        let mut out = String::new();
        c.read_to_string(&mut out).ok()?;
        Some(out)
    })
    .join()
    .ok()
    .flatten()
}

/// Sends one UDP datagram from namespace `ns` and returns the reply, if any.
pub fn udp_exchange(ns: &str, to: SocketAddr, payload: Vec<u8>) -> Option<Vec<u8>> {
    udp_exchange_within(ns, to, payload, Duration::from_secs(3))
}

/// Like [`udp_exchange`], waiting at most `wait` for the reply.
pub fn udp_exchange_within(
    ns: &str,
    to: SocketAddr,
    payload: Vec<u8>,
    wait: Duration,
) -> Option<Vec<u8>> {
    spawn_in(ns, move || -> Option<Vec<u8>> {
        let any = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        let s = UdpSocket::bind(any).ok()?;
        s.set_read_timeout(Some(wait)).ok()?;
        s.send_to(&payload, to).ok()?;
        let mut buf = vec![0u8; 65_536];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Some(buf[..n].to_vec())
    })
    .join()
    .ok()
    .flatten()
}

/// A DNS query for `name` of type `qtype` (1 A, 28 AAAA) with id `id`.
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// What a DNS answer said: response code and the A records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The RCODE (0 NOERROR, 1 FORMERR, 2 SERVFAIL, 3 NXDOMAIN).
    pub rcode: u8,
    /// Every A record in the answer section.
    pub a: Vec<Ipv4Addr>,
    /// Every AAAA record in the answer section, sorted.
    pub aaaa: Vec<std::net::Ipv6Addr>,
    /// How many answer records there were.
    pub answers: u16,
    /// The names of every PTR record, with the trailing dot.
    pub ptr: Vec<String>,
    /// The TTL of every answer record.
    pub ttls: Vec<u32>,
}

/// Reads the (possibly compressed) name at `at`.
fn read_name(msg: &[u8], mut at: usize) -> Option<String> {
    let mut out = String::new();
    for _ in 0..64 {
        let len = *msg.get(at)? as usize;
        if len == 0 {
            return Some(if out.is_empty() { ".".into() } else { out });
        }
        if len & 0xc0 == 0xc0 {
            at = ((len & 0x3f) << 8) | *msg.get(at + 1)? as usize;
            continue;
        }
        out.push_str(&String::from_utf8_lossy(msg.get(at + 1..at + 1 + len)?));
        out.push('.');
        at += 1 + len;
    }
    None
}

fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)? as usize;
        if len == 0 {
            return Some(at + 1);
        }
        if len & 0xc0 == 0xc0 {
            return Some(at + 2);
        }
        at += 1 + len;
    }
}

/// Parses a DNS response (enough for the tests).
pub fn parse_answer(msg: &[u8]) -> Option<DnsAnswer> {
    if msg.len() < 12 {
        return None;
    }
    let rcode = msg[3] & 0x0f;
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(msg, at)? + 4;
    }
    let (mut a, mut ptr, mut ttls) = (Vec::new(), Vec::new(), Vec::new());
    let mut aaaa = Vec::new();
    for _ in 0..an {
        at = skip_name(msg, at)?;
        let ty = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
        ttls.push(u32::from_be_bytes([
            *msg.get(at + 4)?,
            *msg.get(at + 5)?,
            *msg.get(at + 6)?,
            *msg.get(at + 7)?,
        ]));
        let len = u16::from_be_bytes([*msg.get(at + 8)?, *msg.get(at + 9)?]) as usize;
        let data = msg.get(at + 10..at + 10 + len)?;
        if ty == 1 && len == 4 {
            a.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        if ty == 12 {
            ptr.push(read_name(msg, at + 10)?);
        }
        if let (28, Ok(octets)) = (ty, <[u8; 16]>::try_from(data)) {
            aaaa.push(std::net::Ipv6Addr::from(octets));
        }
        at += 10 + len;
    }
    a.sort();
    aaaa.sort();
    Some(DnsAnswer {
        rcode,
        a,
        aaaa,
        answers: an,
        ptr,
        ttls,
    })
}

/// Asks `server` (an IPv4 or IPv6 address) for `name` (type `qtype`) from namespace
/// `ns`.
pub fn resolve(ns: &str, server: impl Into<IpAddr>, name: &str, qtype: u16) -> Option<DnsAnswer> {
    let reply = udp_exchange(
        ns,
        SocketAddr::new(server.into(), 53),
        dns_query(0x5a5a, name, qtype),
    )?;
    parse_answer(&reply)
}

/// The task that answered `shoal tool peer`'s way (`task=ID`).
pub fn task_of(answer: &str) -> Option<String> {
    answer
        .split_whitespace()
        .find_map(|w| w.strip_prefix("task="))
        .map(String::from)
}

/// Where [`Lab::up_with_upstream`](crate::Lab::up_with_upstream) labs forward DNS.
pub const UPSTREAM: &str = "198.18.0.250:53";

/// A resolver inside namespace `ns` on `addr` that answers `name` with `ip` and
/// NXDOMAIN to anything else; it runs until the test process ends.
pub fn fake_upstream(ns: &str, addr: SocketAddr, name: &'static str, ip: Ipv4Addr) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    spawn_in(ns, move || {
        let s = UdpSocket::bind(addr).expect("bind the fake upstream");
        ready_tx.send(()).ok();
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                continue;
            };
            let q = &buf[..n];
            let Some(end) = skip_name(q, 12) else {
                continue;
            };
            let Some(question) = q.get(12..end + 4) else {
                continue;
            };
            let asked =
                String::from_utf8_lossy(&question[..question.len() - 4]).to_ascii_lowercase();
            let wanted: String = name
                .split('.')
                .map(|l| format!("{}{l}", l.len() as u8 as char))
                .collect();
            let known = asked.trim_end_matches('\0') == wanted;
            let mut r = q[..2].to_vec();
            r.extend_from_slice(&[
                0x81,
                if known { 0x80 } else { 0x83 },
                0,
                1,
                0,
                u8::from(known),
                0,
                0,
                0,
                0,
            ]);
            r.extend_from_slice(question);
            if known {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
                r.extend_from_slice(&ip.octets());
            }
            let _ = s.send_to(&r, from);
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("fake upstream listening");
}

/// `IP:PORT` as a socket address.
pub fn at(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}")
        .parse()
        .unwrap_or_else(|_| panic!("{ip}:{port} is not a socket address"))
}
