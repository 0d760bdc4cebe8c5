//! Cutting what a TAP hands over (with TSO/USO and checksum offload on) into wire-ready
//! Ethernet frames: every segment gets its own IPv4 ID, lengths, TCP sequence number and
//! flags, and complete checksums.
//!
//! ```text
//!  [eth 14][ipv4 ihl*4][tcp doff*4][payload ........................ up to 64 KiB]
//!     └─▶ [eth][ipv4 id][tcp seq][gso_size bytes] [eth][ipv4 id+1][tcp seq+n][...] …
//! ```

use std::net::Ipv4Addr;

use super::checksum::{checksum, pseudo_v4};
use super::vnet::{VnetHdr, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_UDP_L4};
use super::PacketError;

/// Ethernet header length.
pub const ETH_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const IPV4_TOTAL_LEN: usize = 2;
const IPV4_ID: usize = 4;
const IPV4_PROTO: usize = 9;
const IPV4_CSUM: usize = 10;
const IPV4_SRC: usize = 12;
const IPV4_DST: usize = 16;
const TCP_SEQ: usize = 4;
const TCP_FLAGS: usize = 13;
const TCP_CSUM: usize = 16;
const UDP_LEN: usize = 4;
const UDP_CSUM: usize = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn ip(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Completes a partial checksum: sums `frame[start..]` (the field already holds the
/// pseudo-header sum) and stores the result at `start + offset`.
fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> Result<(), PacketError> {
    let at = start + offset;
    if start >= frame.len() || at + 2 > frame.len() {
        return Err(PacketError::BadOffsets {
            csum_start: start,
            csum_offset: offset,
            len: frame.len(),
        });
    }
    let c = checksum(&frame[start..], 0);
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The IPv4 header of `frame`: (header length, protocol).
fn ipv4(frame: &[u8]) -> Result<(usize, u8), PacketError> {
    if frame.len() < ETH_LEN + 20 {
        return Err(PacketError::Truncated {
            what: "IPv4 header",
            need: ETH_LEN + 20,
            have: frame.len(),
        });
    }
    if frame[12..14] != ETHERTYPE_IPV4 {
        return Err(PacketError::Unsupported("a superframe that is not IPv4"));
    }
    let ihl = ((frame[ETH_LEN] & 0x0f) as usize) * 4;
    if frame[ETH_LEN] >> 4 != 4 || ihl < 20 || frame.len() < ETH_LEN + ihl {
        return Err(PacketError::Malformed("IPv4 header length"));
    }
    Ok((ihl, frame[ETH_LEN + IPV4_PROTO]))
}

/// Cuts `frame` as `hdr` describes and calls `emit` for each wire frame; returns how
/// many. `scratch` must hold a segment (headers + `gso_size`).
pub fn segment(
    hdr: &VnetHdr,
    frame: &[u8],
    mtu: usize,
    scratch: &mut [u8],
    emit: &mut dyn FnMut(&[u8]),
) -> Result<usize, PacketError> {
    match hdr.gso_type & !GSO_ECN {
        GSO_NONE => {
            if frame.len() > ETH_LEN + mtu {
                return Err(PacketError::TooBig {
                    len: frame.len(),
                    mtu,
                });
            }
            if hdr.flags & F_NEEDS_CSUM != 0 {
                let out = scratch.get_mut(..frame.len()).ok_or(PacketError::Scratch)?;
                out.copy_from_slice(frame);
                complete_checksum(out, hdr.csum_start as usize, hdr.csum_offset as usize)?;
                emit(out);
            } else {
                emit(frame);
            }
            Ok(1)
        }
        GSO_TCPV4 => segment_tcp4(hdr, frame, mtu, scratch, emit),
        GSO_UDP_L4 => segment_udp4(hdr, frame, mtu, scratch, emit),
        _ => Err(PacketError::Unsupported(
            "this GSO type (only TCPv4 and UDP over IPv4)",
        )),
    }
}

/// A segment size that fits `mtu` and the scratch buffer.
fn check_size(headers: usize, size: usize, mtu: usize, scratch: &[u8]) -> Result<(), PacketError> {
    if size == 0 || headers - ETH_LEN + size > mtu {
        return Err(PacketError::Malformed("GSO segment size"));
    }
    if scratch.len() < headers + size {
        return Err(PacketError::Scratch);
    }
    Ok(())
}

/// Segment `i` of `frame`'s payload cut at `size` bytes, in `scratch`: the headers
/// copied with the IPv4 total length, ID and checksum set; the L4 header is the
/// caller's to fix.
fn ipv4_segment<'a>(
    frame: &[u8],
    headers: usize,
    l4: usize,
    size: usize,
    i: usize,
    scratch: &'a mut [u8],
) -> &'a mut [u8] {
    let payload = &frame[headers..];
    let chunk = &payload[(i * size).min(payload.len())..((i + 1) * size).min(payload.len())];
    let len = headers + chunk.len();
    let out = &mut scratch[..len];
    out[..headers].copy_from_slice(&frame[..headers]);
    out[headers..].copy_from_slice(chunk);
    out[ETH_LEN + IPV4_TOTAL_LEN..ETH_LEN + IPV4_TOTAL_LEN + 2]
        .copy_from_slice(&((len - ETH_LEN) as u16).to_be_bytes());
    let id = be16(frame, ETH_LEN + IPV4_ID).wrapping_add(i as u16);
    out[ETH_LEN + IPV4_ID..ETH_LEN + IPV4_ID + 2].copy_from_slice(&id.to_be_bytes());
    out[ETH_LEN + IPV4_CSUM..ETH_LEN + IPV4_CSUM + 2].fill(0);
    let ipc = checksum(&out[ETH_LEN..l4], 0);
    out[ETH_LEN + IPV4_CSUM..ETH_LEN + IPV4_CSUM + 2].copy_from_slice(&ipc.to_be_bytes());
    out
}

fn segment_tcp4(
    hdr: &VnetHdr,
    frame: &[u8],
    mtu: usize,
    scratch: &mut [u8],
    emit: &mut dyn FnMut(&[u8]),
) -> Result<usize, PacketError> {
    let (ihl, proto) = ipv4(frame)?;
    if proto != 6 {
        return Err(PacketError::Malformed("TCP GSO of a non-TCP packet"));
    }
    let l4 = ETH_LEN + ihl;
    if frame.len() < l4 + 20 {
        return Err(PacketError::Truncated {
            what: "TCP header",
            need: l4 + 20,
            have: frame.len(),
        });
    }
    let doff = ((frame[l4 + 12] >> 4) as usize) * 4;
    let headers = l4 + doff;
    let mss = hdr.gso_size as usize;
    if doff < 20 || frame.len() < headers {
        return Err(PacketError::Malformed("TCP header length"));
    }
    check_size(headers, mss, mtu, scratch)?;
    let payload = &frame[headers..];
    let (src, dst) = (ip(frame, ETH_LEN + IPV4_SRC), ip(frame, ETH_LEN + IPV4_DST));
    let seq0 = u32::from_be_bytes([
        frame[l4 + TCP_SEQ],
        frame[l4 + 5],
        frame[l4 + 6],
        frame[l4 + 7],
    ]);
    let flags = frame[l4 + TCP_FLAGS];
    let count = payload.len().div_ceil(mss).max(1);
    for i in 0..count {
        let out = ipv4_segment(frame, headers, l4, mss, i, scratch);
        let len = out.len();
        let seq = seq0.wrapping_add((i * mss) as u32);
        out[l4 + TCP_SEQ..l4 + TCP_SEQ + 4].copy_from_slice(&seq.to_be_bytes());
        let mut f = flags;
        if i + 1 < count {
            f &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            f &= !TCP_CWR;
        }
        out[l4 + TCP_FLAGS] = f;
        out[l4 + TCP_CSUM..l4 + TCP_CSUM + 2].fill(0);
        let c = checksum(&out[l4..], pseudo_v4(src, dst, 6, len - l4));
        out[l4 + TCP_CSUM..l4 + TCP_CSUM + 2].copy_from_slice(&c.to_be_bytes());
        emit(out);
    }
    Ok(count)
}

fn segment_udp4(
    hdr: &VnetHdr,
    frame: &[u8],
    mtu: usize,
    scratch: &mut [u8],
    emit: &mut dyn FnMut(&[u8]),
) -> Result<usize, PacketError> {
    let (ihl, proto) = ipv4(frame)?;
    if proto != 17 {
        return Err(PacketError::Malformed("UDP GSO of a non-UDP packet"));
    }
    let l4 = ETH_LEN + ihl;
    let headers = l4 + 8;
    let size = hdr.gso_size as usize;
    if frame.len() < headers {
        return Err(PacketError::Truncated {
            what: "UDP header",
            need: headers,
            have: frame.len(),
        });
    }
    check_size(headers, size, mtu, scratch)?;
    let payload = &frame[headers..];
    let (src, dst) = (ip(frame, ETH_LEN + IPV4_SRC), ip(frame, ETH_LEN + IPV4_DST));
    let count = payload.len().div_ceil(size).max(1);
    for i in 0..count {
        let out = ipv4_segment(frame, headers, l4, size, i, scratch);
        let len = out.len();
        out[l4 + UDP_LEN..l4 + UDP_LEN + 2].copy_from_slice(&((len - l4) as u16).to_be_bytes());
        out[l4 + UDP_CSUM..l4 + UDP_CSUM + 2].fill(0);
        let c = checksum(&out[l4..], pseudo_v4(src, dst, 17, len - l4));
        let c = if c == 0 { 0xffff } else { c };
        out[l4 + UDP_CSUM..l4 + UDP_CSUM + 2].copy_from_slice(&c.to_be_bytes());
        emit(out);
    }
    Ok(count)
}
