//! The WireGuard UDP socket, batched: one `sendmsg` with UDP GSO (`UDP_SEGMENT`) sends a
//! whole superframe's worth of equal-sized datagrams, and `recvmmsg` with UDP GRO
//! receives many datagrams per call.
//!
//! ```text
//!  send_gso(dst, [d1 d2 d3 … dn], seg)  ──▶ kernel cuts at `seg` bytes ──▶ n datagrams
//!  recv_batch ◀── up to BATCH messages, each possibly n datagrams coalesced (GRO) of `seg`
//! ```

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4};
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
    pub from: SocketAddrV4,
    /// Its length in the buffer.
    pub len: usize,
    /// The size of each coalesced datagram, or 0.
    pub segment: usize,
}

/// A UDP socket bound to the WireGuard port.
pub struct UdpSocket {
    fd: OwnedFd,
    gso: std::sync::atomic::AtomicBool,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data.
    let mut s: libc::sockaddr_in = unsafe { zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr = libc::in_addr {
        s_addr: u32::from(*a.ip()).to_be(),
    };
    s
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
    /// Binds `0.0.0.0:port` with large buffers and GRO on; reads time out after `timeout`
    /// so the caller can notice it should stop.
    pub fn bind(port: u16, timeout: Duration) -> io::Result<UdpSocket> {
        // SAFETY: plain socket creation; the fd is owned right after.
        let raw = check(unsafe {
            libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
        })?;
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        setopt(s, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
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
        let addr = sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        // SAFETY: a sockaddr_in of the right size.
        check(unsafe {
            libc::bind(
                s,
                &addr as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_in>() as u32,
            )
        })?;
        if !gro {
            tracing::info!("UDP GRO is not available; receiving one datagram per message");
        }
        Ok(UdpSocket {
            fd,
            gso: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Sends one datagram.
    pub fn send(&self, dst: SocketAddrV4, data: &[u8]) -> io::Result<()> {
        let addr = sockaddr(dst);
        // SAFETY: valid buffer and address for the duration of the call.
        check(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                data.as_ptr() as *const libc::c_void,
                data.len(),
                0,
                &addr as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_in>() as u32,
            ) as libc::c_int
        })
        .map(|_| ())
    }

    /// Sends `data`, consecutive datagrams of `segment` bytes (the last may be shorter),
    /// in one call when the kernel has UDP GSO; datagram by datagram otherwise.
    pub fn send_gso(&self, dst: SocketAddrV4, data: &[u8], segment: usize) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        if data.len() <= segment || !self.gso.load(Ordering::Relaxed) {
            return data
                .chunks(segment.max(1))
                .try_for_each(|d| self.send(dst, d));
        }
        let mut addr = sockaddr(dst);
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
        msg.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
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
        let mut addrs: [libc::sockaddr_in; BATCH] = unsafe { zeroed() };
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
            h.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
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
            let a = addrs[i];
            let from = SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            );
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
