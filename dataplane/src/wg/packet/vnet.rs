//! `struct virtio_net_hdr`: what a TAP opened with IFF_VNET_HDR puts in front of every
//! frame (little-endian on the architectures shoal runs on).
//!
//! ```text
//!  0 flags  1 gso_type  2-3 hdr_len  4-5 gso_size  6-7 csum_start  8-9 csum_offset
//! ```

use super::PacketError;

/// Its size.
pub const VNET_HDR_LEN: usize = 10;
/// The L4 checksum is partial: complete it from `csum_start`, store at `+csum_offset`.
pub const F_NEEDS_CSUM: u8 = 1;
/// The checksums were checked already.
pub const F_DATA_VALID: u8 = 2;
/// Not a superframe.
pub const GSO_NONE: u8 = 0;
/// A TCP over IPv4 superframe.
pub const GSO_TCPV4: u8 = 1;
/// A UDP superframe (USO).
pub const GSO_UDP_L4: u8 = 5;
/// The ECN bit of `gso_type`.
pub const GSO_ECN: u8 = 0x80;

/// A parsed virtio-net header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// F_NEEDS_CSUM / F_DATA_VALID.
    pub flags: u8,
    /// GSO_*.
    pub gso_type: u8,
    /// Length of the headers of a superframe.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the checksummed data starts.
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
}

fn le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

impl VnetHdr {
    /// Reads a header.
    pub fn parse(b: &[u8]) -> Result<VnetHdr, PacketError> {
        if b.len() < VNET_HDR_LEN {
            return Err(PacketError::Truncated {
                what: "virtio-net header",
                need: VNET_HDR_LEN,
                have: b.len(),
            });
        }
        Ok(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(b, 2),
            gso_size: le(b, 4),
            csum_start: le(b, 6),
            csum_offset: le(b, 8),
        })
    }

    /// Writes the header into the first 10 bytes of `out`.
    pub fn write(&self, out: &mut [u8]) {
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_short_input() {
        let h = VnetHdr {
            flags: 1,
            gso_type: GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1388,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut b = [0u8; 10];
        h.write(&mut b);
        assert_eq!(VnetHdr::parse(&b).unwrap(), h);
        assert_eq!(b[4..6], 1388u16.to_le_bytes());
        assert!(VnetHdr::parse(&b[..9]).is_err());
    }
}
