//! Forgetting a vanished backend's connections: one ctnetlink request that deletes every
//! conntrack entry whose reply comes from an address (what `conntrack -D -r ADDR` does,
//! by the kernel's filtered flush, Linux 6.1 and later).
//!
//! ```text
//!  nlmsghdr (CTNETLINK << 8 | CT_DELETE, REQUEST|ACK) nfgenmsg (AF_INET or AF_INET6, v0)
//!    CTA_TUPLE_REPLY { CTA_TUPLE_IP { CTA_IP_V4_SRC or CTA_IP_V6_SRC addr } }
//!    CTA_FILTER { CTA_FILTER_REPLY_FLAGS IP_SRC }
//! ```
//! A load-balanced connection keeps its translation as long as its entry lives: after
//! the backend's node vanished, a client that reuses the port of a connection that was
//! in flight would be sent to the dead address again until the entry times out (up to
//! 5 days for an established one). The caller deletes entries only for addresses no
//! longer in the state or on a node that is Down, so a task that drains keeps its
//! connections.

use std::io;
use std::net::IpAddr;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const NLA_F_NESTED: u16 = 1 << 15;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_FILTER: u16 = 25;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_FILTER_REPLY_FLAGS: u16 = 2;
const CTA_FILTER_FLAG_IP_SRC: u32 = 1;

/// One netlink attribute, padded to 4 bytes.
fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 4 + payload.len();
    let mut out = Vec::with_capacity((len + 3) & !3);
    out.extend((len as u16).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(payload);
    out.resize((len + 3) & !3, 0);
    out
}

/// The request deleting every entry (of `addr`'s family) whose reply source is `addr`.
pub fn flush_reply_source_request(addr: IpAddr, seq: u32) -> Vec<u8> {
    let (family, ip) = match addr {
        IpAddr::V4(a) => (AF_INET, attr(CTA_IP_V4_SRC, &a.octets())),
        IpAddr::V6(a) => (AF_INET6, attr(CTA_IP_V6_SRC, &a.octets())),
    };
    let tuple = attr(CTA_TUPLE_IP | NLA_F_NESTED, &ip);
    let reply = attr(CTA_TUPLE_REPLY | NLA_F_NESTED, &tuple);
    let flags = attr(
        CTA_FILTER_REPLY_FLAGS,
        &CTA_FILTER_FLAG_IP_SRC.to_ne_bytes(),
    );
    let filter = attr(CTA_FILTER | NLA_F_NESTED, &flags);
    let mut body = vec![family, 0, 0, 0];
    body.extend(reply);
    body.extend(filter);
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend(((16 + body.len()) as u32).to_ne_bytes());
    msg.extend(((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE).to_ne_bytes());
    msg.extend((NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend(seq.to_ne_bytes());
    msg.extend(0u32.to_ne_bytes());
    msg.extend(body);
    msg
}

/// The error code of the acknowledgement of `seq` in `buf`, if it is there.
fn ack_code(buf: &[u8], seq: u32) -> Option<i32> {
    let mut rest = buf;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        let got = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
        if len < 16 || len > rest.len() {
            return None;
        }
        if kind == NLMSG_ERROR && got == seq && len >= 20 {
            return Some(i32::from_ne_bytes(rest[16..20].try_into().ok()?));
        }
        rest = &rest[(len + 3) & !3..];
    }
    None
}

/// Deletes, in this thread's network namespace, every conntrack entry whose replies
/// come from `addr`. Having none is no error.
pub fn forget_reply_source(addr: IpAddr) -> io::Result<()> {
    let mut s = Socket::new(NETLINK_NETFILTER)?;
    s.bind_auto()?;
    s.connect(&SocketAddr::new(0, 0))?;
    let seq = 1;
    s.send(&flush_reply_source_request(addr, seq), 0)?;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = s.recv(&mut &mut buf[..], 0)?;
        match ack_code(&buf[..n], seq) {
            Some(0) => return Ok(()),
            // ENOENT: nothing matched.
            Some(code) if -code == 2 => return Ok(()),
            Some(code) => return Err(io::Error::from_raw_os_error(-code)),
            None => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_filtered_flush_by_reply_source() {
        let msg = flush_reply_source_request([10, 0, 0, 9].into(), 7);
        assert_eq!(
            msg.len() as u32,
            u32::from_ne_bytes(msg[0..4].try_into().unwrap())
        );
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), 0x0102);
        assert_eq!(u16::from_ne_bytes([msg[6], msg[7]]), 5);
        assert_eq!(u32::from_ne_bytes(msg[8..12].try_into().unwrap()), 7);
        assert_eq!(&msg[16..20], &[AF_INET, 0, 0, 0]);
        // CTA_TUPLE_REPLY (nested) > CTA_TUPLE_IP (nested) > CTA_IP_V4_SRC 10.0.0.9.
        let a = &msg[20..];
        assert_eq!(u16::from_ne_bytes([a[0], a[1]]), 4 + 4 + 8);
        assert_eq!(
            u16::from_ne_bytes([a[2], a[3]]),
            CTA_TUPLE_REPLY | NLA_F_NESTED
        );
        assert_eq!(
            u16::from_ne_bytes([a[6], a[7]]),
            CTA_TUPLE_IP | NLA_F_NESTED
        );
        assert_eq!(u16::from_ne_bytes([a[10], a[11]]), CTA_IP_V4_SRC);
        assert_eq!(&a[12..16], &[10, 0, 0, 9]);
        // CTA_FILTER (nested) > CTA_FILTER_REPLY_FLAGS = IP source.
        let f = &a[16..];
        assert_eq!(u16::from_ne_bytes([f[2], f[3]]), CTA_FILTER | NLA_F_NESTED);
        assert_eq!(u16::from_ne_bytes([f[6], f[7]]), CTA_FILTER_REPLY_FLAGS);
        assert_eq!(u32::from_ne_bytes(f[8..12].try_into().unwrap()), 1);
        assert_eq!(f.len(), 12);
    }

    #[test]
    fn an_ipv6_backend_is_flushed_by_its_ipv6_reply_source() {
        let ip: std::net::Ipv6Addr = "fd00:1::9".parse().unwrap();
        let msg = flush_reply_source_request(ip.into(), 7);
        assert_eq!(&msg[16..20], &[AF_INET6, 0, 0, 0]);
        let a = &msg[20..];
        assert_eq!(u16::from_ne_bytes([a[0], a[1]]), 4 + 4 + 20);
        assert_eq!(u16::from_ne_bytes([a[10], a[11]]), CTA_IP_V6_SRC);
        assert_eq!(&a[12..28], &ip.octets());
    }

    #[test]
    fn acknowledgements_are_found_by_sequence() {
        let mut ack = Vec::new();
        ack.extend(36u32.to_ne_bytes());
        ack.extend(NLMSG_ERROR.to_ne_bytes());
        ack.extend(0u16.to_ne_bytes());
        ack.extend(7u32.to_ne_bytes());
        ack.extend(0u32.to_ne_bytes());
        ack.extend((-2i32).to_ne_bytes());
        ack.extend([0u8; 16]);
        assert_eq!(ack_code(&ack, 7), Some(-2));
        assert_eq!(ack_code(&ack, 8), None);
        assert_eq!(ack_code(&ack[..10], 7), None);
        assert_eq!(ack_code(&[], 7), None);
    }
}
