//! The WireGuard UDP socket, batched: one `sendmsg` with UDP GSO (`UDP_SEGMENT`) sends a
//! whole superframe's worth of equal-sized datagrams, and `recvmmsg` with UDP GRO
//! receives many datagrams per call.
//!
//! ```text
//!  send_gso(dst, [d1 d2 d3 … dn], seg)  ──▶ kernel cuts at `seg` bytes ──▶ n datagrams
//!  recv_batch ◀── up to BATCH messages, each possibly n datagrams coalesced (GRO) of `seg`
//! ```
//!
//! The socket is IPv6 and dual-stack (`[::]:port`, IPv4 peers as `::ffff:a.b.c.d`), so
//! nodes on an IPv4 or an IPv6 underlay use the same code; on a host without IPv6 it is
//! IPv4 (`0.0.0.0:port`). Addresses cross this module's border as plain [`SocketAddr`]s,
//! IPv4 ones never mapped.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// SOL_UDP.
const SOL_UDP: libc::c_int = 17;
/// UDP_SEGMENT: the GSO segment size, as a control message or socket option.
const UDP_SEGMENT: libc::c_int = 103;
/// UDP_GRO: receive coalesced datagrams, with their segment size as a control message.
const UDP_GRO: libc::c_int = 104;
/// Messages per `recvmmsg`.
pub const BATCH: usize = 32;
/// Room for one (possibly GRO-coalesced) message.
pub const MSG_BUF: usize = 65_536;

/// A received message: where from, how long, and the GRO segment size (0: one datagram).
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Its sender.
    pub from: SocketAddr,
    /// Its length in the buffer.
    pub len: usize,
    /// The size of each coalesced datagram, or 0.
    pub segment: usize,
}

/// A UDP socket bound to the WireGuard port.
pub struct UdpSocket {
    fd: OwnedFd,
    gso: std::sync::atomic::AtomicBool,
    /// AF_INET6 (dual-stack) rather than AF_INET.
    v6: bool,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A socket address as the kernel takes it, for a socket of either family.
#[derive(Clone, Copy)]
#[repr(C)]
union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

/// `a` for an AF_INET6 socket (`v6`: IPv4 addresses mapped) or an AF_INET one (which
/// cannot reach IPv6 addresses); with its length.
fn sockaddr(a: SocketAddr, v6: bool) -> io::Result<(RawAddr, u32)> {
    // SAFETY: both members are plain old data.
    let mut raw: RawAddr = unsafe { zeroed() };
    if v6 {
        let ip = match a.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        raw.v6 = libc::sockaddr_in6 {
            sin6_family: libc::AF_INET6 as libc::sa_family_t,
            sin6_port: a.port().to_be(),
            sin6_flowinfo: 0,
            sin6_addr: libc::in6_addr {
                s6_addr: ip.octets(),
            },
            sin6_scope_id: 0,
        };
        return Ok((raw, size_of::<libc::sockaddr_in6>() as u32));
    }
    let IpAddr::V4(ip) = a.ip() else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("cannot send to {a}: this host has no IPv6"),
        ));
    };
    raw.v4 = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    Ok((raw, size_of::<libc::sockaddr_in>() as u32))
}

/// The address the kernel wrote into `raw`, IPv4-mapped ones as IPv4.
fn from_raw(raw: &RawAddr, v6: bool) -> SocketAddr {
    if v6 {
        // SAFETY: an AF_INET6 socket writes sockaddr_in6.
        let a = unsafe { raw.v6 };
        let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
        let port = u16::from_be(a.sin6_port);
        return match ip.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
            None => SocketAddr::V6(SocketAddrV6::new(ip, port, 0, a.sin6_scope_id)),
        };
    }
    // SAFETY: an AF_INET socket writes sockaddr_in.
    let a = unsafe { raw.v4 };
    SocketAddr::new(
        IpAddr::V4(u32::from_be(a.sin_addr.s_addr).into()),
        u16::from_be(a.sin_port),
    )
}

fn setopt(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: an int option of the right size.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const _ as *const libc::c_void,
            size_of::<libc::c_int>() as u32,
        )
    })
    .map(|_| ())
}

impl UdpSocket {
    /// Binds `[::]:port` (dual-stack; `0.0.0.0:port` on a host without IPv6) with large
    /// buffers and GRO on; reads time out after `timeout` so the caller can notice it
    /// should stop.
    pub fn bind(port: u16, timeout: Duration) -> io::Result<UdpSocket> {
        // SAFETY: plain socket creation; the fd is owned right after.
        let mut raw =
            unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        let v6 = raw >= 0;
        if !v6 {
            // SAFETY: as above.
            raw = check(unsafe {
                libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
            })?;
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        setopt(s, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        if v6 {
            setopt(s, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)?;
        }
        for (opt, force) in [
            (libc::SO_RCVBUF, libc::SO_RCVBUFFORCE),
            (libc::SO_SNDBUF, libc::SO_SNDBUFFORCE),
        ] {
            if setopt(s, libc::SOL_SOCKET, force, 8 << 20).is_err() {
                setopt(s, libc::SOL_SOCKET, opt, 8 << 20)?;
            }
        }
        let gro = setopt(s, SOL_UDP, UDP_GRO, 1).is_ok();
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as _,
            tv_usec: timeout.subsec_micros() as _,
        };
        // SAFETY: a timeval of the right size.
        check(unsafe {
            libc::setsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                size_of::<libc::timeval>() as u32,
            )
        })?;
        let any = match v6 {
            true => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            false => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        };
        let (addr, len) = sockaddr(SocketAddr::new(any, port), v6)?;
        // SAFETY: a socket address of the family and length given.
        check(unsafe { libc::bind(s, &addr as *const _ as *const libc::sockaddr, len) })?;
        if !gro {
            tracing::info!("UDP GRO is not available; receiving one datagram per message");
        }
        Ok(UdpSocket {
            fd,
            gso: std::sync::atomic::AtomicBool::new(true),
            v6,
        })
    }

    /// Sends one datagram.
    pub fn send(&self, dst: SocketAddr, data: &[u8]) -> io::Result<()> {
        let (addr, len) = sockaddr(dst, self.v6)?;
        // SAFETY: valid buffer and address for the duration of the call.
        check(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                data.as_ptr() as *const libc::c_void,
                data.len(),
                0,
                &addr as *const _ as *const libc::sockaddr,
                len,
            ) as libc::c_int
        })
        .map(|_| ())
    }

    /// Sends `data`, consecutive datagrams of `segment` bytes (the last may be shorter),
    /// in one call when the kernel has UDP GSO; datagram by datagram otherwise.
    pub fn send_gso(&self, dst: SocketAddr, data: &[u8], segment: usize) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        if data.len() <= segment || !self.gso.load(Ordering::Relaxed) {
            return data
                .chunks(segment.max(1))
                .try_for_each(|d| self.send(dst, d));
        }
        let (mut addr, len) = sockaddr(dst, self.v6)?;
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
        let mut control = [0u8; 64];
        // SAFETY: msghdr is plain old data; every pointer set below lives until sendmsg returns.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = &mut addr as *mut _ as *mut libc::c_void;
        msg.msg_namelen = len;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space;
        // SAFETY: the control buffer has room for one u16 control message.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = SOL_UDP;
            (*cmsg).cmsg_type = UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, segment as u16);
        }
        // SAFETY: msg points at live buffers.
        match check(unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, 0) as libc::c_int }) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::ENOPROTOOPT)
                ) =>
            {
                tracing::info!(error = %e, "UDP GSO refused; sending datagram by datagram");
                self.gso.store(false, Ordering::Relaxed);
                data.chunks(segment).try_for_each(|d| self.send(dst, d))
            }
            Err(e) => Err(e),
        }
    }

    /// Receives up to `BATCH` messages into `bufs` (each `MSG_BUF` bytes); fills `out`
    /// and returns how many arrived (0 on timeout).
    pub fn recv_batch(&self, bufs: &mut [Vec<u8>], out: &mut Vec<Received>) -> io::Result<usize> {
        out.clear();
        let n = bufs.len().min(BATCH);
        // SAFETY: arrays of plain old data, filled in below.
        let mut addrs: [RawAddr; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut controls = [[0u8; 64]; BATCH];
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..n {
            iovs[i] = libc::iovec {
                iov_base: bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: bufs[i].len(),
            };
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = size_of::<RawAddr>() as u32;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = controls[i].as_mut_ptr() as *mut libc::c_void;
            h.msg_controllen = controls[i].len();
        }
        // SAFETY: every header points at buffers that live until the call returns.
        let got = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        for i in 0..got as usize {
            let from = from_raw(&addrs[i], self.v6);
            let mut segment = 0usize;
            let h = &msgs[i].msg_hdr;
            // SAFETY: walking the control messages the kernel wrote into our buffer.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(h);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                        segment =
                            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int)
                                as usize;
                    }
                    cmsg = libc::CMSG_NXTHDR(h, cmsg);
                }
            }
            out.push(Received {
                from,
                len: msgs[i].msg_len as usize,
                segment,
            });
        }
        Ok(out.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_both_socket_families() {
        let v4: SocketAddr = "198.18.0.2:51820".parse().unwrap();
        let v6: SocketAddr = "[fd00:5ea1::2]:51820".parse().unwrap();
        for a in [v4, v6] {
            let (raw, len) = sockaddr(a, true).unwrap();
            assert_eq!(len as usize, size_of::<libc::sockaddr_in6>());
            assert_eq!(from_raw(&raw, true), a, "IPv4 comes back unmapped");
        }
        // SAFETY: written as sockaddr_in6 just above.
        let mapped = unsafe { sockaddr(v4, true).unwrap().0.v6 };
        assert_eq!(
            Ipv6Addr::from(mapped.sin6_addr.s6_addr).to_string(),
            "::ffff:198.18.0.2"
        );
        let (raw, len) = sockaddr(v4, false).unwrap();
        assert_eq!(len as usize, size_of::<libc::sockaddr_in>());
        assert_eq!(from_raw(&raw, false), v4);
        let e = sockaddr(v6, false).err().unwrap();
        assert!(e.to_string().contains("no IPv6"), "{e}");
    }
}
