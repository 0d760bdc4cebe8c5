//! TAP devices with virtio-net headers and offloads: the encrypted data path reads and
//! writes whole GSO superframes, so segmentation happens once, in userspace, next to the
//! encryption.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};

/// TUNSETIFF (from linux/if_tun.h).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// TUNSETOFFLOAD.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
/// TUNSETVNETHDRSZ.
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;
const TUN_F_USO4: libc::c_uint = 0x20;
/// The size of `struct virtio_net_hdr` in front of every frame.
pub const VNET_HDR_LEN: usize = 10;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open TAP device.
pub struct Tap {
    file: File,
    name: String,
}

fn ioctl(fd: RawFd, request: libc::c_ulong, arg: *const libc::c_void) -> io::Result<()> {
    // SAFETY: the caller passes a request and an argument of the type the request needs.
    if unsafe { libc::ioctl(fd, request, arg) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Tap {
    /// Creates (or attaches to) TAP `name` with a 10-byte virtio-net header on every
    /// frame and checksum/TSO/USO offloads on. The device lives while the file is open.
    pub fn open(name: &str) -> io::Result<Tap> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad TAP name {name:?}"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        ioctl(
            file.as_raw_fd(),
            TUNSETIFF,
            &req as *const IfReq as *const libc::c_void,
        )?;
        let hdr: libc::c_int = VNET_HDR_LEN as libc::c_int;
        ioctl(
            file.as_raw_fd(),
            TUNSETVNETHDRSZ,
            &hdr as *const libc::c_int as *const libc::c_void,
        )?;
        // IPv4 superframes only: the cutter (packet::segment) knows no IPv6 GSO, so the
        // kernel segments IPv6 (dual-stack networks) before the TAP.
        let full = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN | TUN_F_USO4;
        // Kernels without USO refuse the whole set: fall back to TSO only.
        let set = |flags: libc::c_uint| {
            // SAFETY: TUNSETOFFLOAD takes the flags by value.
            if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD, flags as libc::c_ulong) } < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        set(full).or_else(|_| set(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN))?;
        Ok(Tap {
            file,
            name: name.to_string(),
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame (virtio-net header + Ethernet frame) into `buf`.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one frame (virtio-net header + Ethernet frame).
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.file).write(frame)
    }

    /// Waits up to `timeout_ms` for a frame to read; false on timeout.
    pub fn readable(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(n > 0)
    }
}

/// Why this node cannot run the encrypted data path: it cannot make TAP devices.
#[derive(Debug, thiserror::Error)]
#[error("cannot open /dev/net/tun for the WireGuard data path: {0}")]
pub struct TunUnavailable(#[source] pub io::Error);

/// Whether this node can run the encrypted data path; the error says why not.
pub fn capability() -> Result<(), TunUnavailable> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map(|_| ())
        .map_err(TunUnavailable)
}
