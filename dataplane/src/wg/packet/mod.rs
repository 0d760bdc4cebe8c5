//! Pure packet work of the encrypted data path: virtio-net headers, checksums, cutting
//! TAP superframes into wire frames, the IPv4/UDP/VXLAN inner packet, and coalescing
//! received segments back into superframes. No IO, no clock, no allocation per packet
//! on the send side (callers pass buffers).

mod checksum;
mod coalesce;
mod segment;
mod vnet;
mod vxlan;

#[cfg(test)]
mod tests;

pub use checksum::{checksum, fold, pseudo_v4, sum};
pub use coalesce::Coalescer;
pub use segment::{segment, ETH_LEN};
pub use vnet::{
    VnetHdr, F_DATA_VALID, F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_UDP_L4, VNET_HDR_LEN,
};
pub use vxlan::{decap_vxlan, encap_vxlan, flow_port, HEADERS as VXLAN_HEADERS, VXLAN_OVERHEAD};

/// Why a packet could not be processed (it is dropped and counted).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than a header it must hold.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// Which header.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes there.
        have: usize,
    },
    /// A header field does not add up.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Valid, but not something this path handles.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// Checksum offsets outside the frame.
    #[error("checksum offsets {csum_start}+{csum_offset} outside a {len}-byte frame")]
    BadOffsets {
        /// csum_start.
        csum_start: usize,
        /// csum_offset.
        csum_offset: usize,
        /// The frame length.
        len: usize,
    },
    /// Larger than the MTU allows.
    #[error("a {len}-byte frame exceeds the MTU {mtu}")]
    TooBig {
        /// Its length.
        len: usize,
        /// The MTU.
        mtu: usize,
    },
    /// The caller's buffer is too small.
    #[error("scratch buffer too small")]
    Scratch,
}
