//! The inner packet of the encrypted wire format: IPv4 / UDP / VXLAN / Ethernet between
//! two nodes' mesh addresses, exactly as a kernel VXLAN device would send it.
//!
//! ```text
//!  [ipv4 20: DF, ttl 64, proto 17][udp 8: sport=flow, dport=4789, csum 0][vxlan 8: I, VNI][ethernet frame]
//! ```

use std::net::Ipv4Addr;

use super::checksum::checksum;
use super::PacketError;

/// IPv4 + UDP + VXLAN header bytes in front of the frame.
pub const HEADERS: usize = 36;
/// VXLAN's cost against the inner IP MTU (with the 14-byte Ethernet header).
pub const VXLAN_OVERHEAD: usize = 50;
const VXLAN_FLAG_I: u8 = 0x08;

/// Writes the inner packet for `frame` into `out`; returns its length.
pub fn encap_vxlan(
    out: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    port: u16,
    vni: u32,
    frame: &[u8],
) -> Result<usize, PacketError> {
    let len = HEADERS + frame.len();
    if len > u16::MAX as usize {
        return Err(PacketError::TooBig {
            len,
            mtu: u16::MAX as usize,
        });
    }
    let out = out.get_mut(..len).ok_or(PacketError::Scratch)?;
    let ip = &mut out[..20];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = checksum(ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut out[20..28];
    udp[0..2].copy_from_slice(&src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&port.to_be_bytes());
    udp[4..6].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    udp[6..8].fill(0);
    let vx = &mut out[28..36];
    vx.copy_from_slice(&[VXLAN_FLAG_I, 0, 0, 0, 0, 0, 0, 0]);
    vx[4..7].copy_from_slice(&vni.to_be_bytes()[1..]);
    out[HEADERS..].copy_from_slice(frame);
    Ok(len)
}

/// Validates an inner packet and returns (source address, VNI, Ethernet frame).
pub fn decap_vxlan(packet: &[u8], port: u16) -> Result<(Ipv4Addr, u32, &[u8]), PacketError> {
    if packet.len() < 20 {
        return Err(PacketError::Truncated {
            what: "inner IPv4 header",
            need: 20,
            have: packet.len(),
        });
    }
    let ihl = ((packet[0] & 0x0f) as usize) * 4;
    if packet[0] >> 4 != 4 || ihl < 20 || packet.len() < ihl + 16 {
        return Err(PacketError::Malformed("inner IPv4 header"));
    }
    let total = u16::from_be_bytes([packet[2], packet[3]]) as usize;
    if total < ihl + 16 || total > packet.len() {
        return Err(PacketError::Malformed("inner IPv4 length"));
    }
    if checksum(&packet[..ihl], 0) != 0 {
        return Err(PacketError::Malformed("inner IPv4 checksum"));
    }
    if u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0 {
        return Err(PacketError::Unsupported("fragmented inner packets"));
    }
    if packet[9] != 17 {
        return Err(PacketError::Malformed("inner packet is not UDP"));
    }
    let udp = &packet[ihl..total];
    if u16::from_be_bytes([udp[2], udp[3]]) != port {
        return Err(PacketError::Malformed("inner UDP port is not VXLAN's"));
    }
    if u16::from_be_bytes([udp[4], udp[5]]) as usize != udp.len() {
        return Err(PacketError::Malformed("inner UDP length"));
    }
    let vx = &udp[8..16];
    if vx[0] & VXLAN_FLAG_I == 0 {
        return Err(PacketError::Malformed("VXLAN header without a VNI"));
    }
    let vni = u32::from_be_bytes([0, vx[4], vx[5], vx[6]]);
    let frame = &udp[16..];
    if frame.len() < 14 {
        return Err(PacketError::Truncated {
            what: "Ethernet frame",
            need: 14,
            have: frame.len(),
        });
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    Ok((src, vni, frame))
}

/// A stable outer source port for a frame's flow (as Linux VXLAN does), 49152–65535.
pub fn flow_port(frame: &[u8]) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    let mut mix = |b: &[u8]| {
        for x in b {
            h ^= *x as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    mix(frame.get(..12).unwrap_or(frame));
    if frame.len() >= 38 && frame[12..14] == [0x08, 0x00] {
        let ihl = ((frame[14] & 0x0f) as usize) * 4;
        mix(&frame[26..34]);
        mix(&frame[23..24]);
        if let Some(ports) = frame.get(14 + ihl..14 + ihl + 4) {
            mix(ports);
        }
    }
    49152 + (h % 16384) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encap_then_decap_gives_the_frame_back() {
        let frame: Vec<u8> = (0..100u8).collect();
        let mut out = vec![0u8; 200];
        let n = encap_vxlan(
            &mut out,
            [100, 96, 0, 1].into(),
            [100, 96, 0, 2].into(),
            50000,
            4789,
            4096,
            &frame,
        )
        .unwrap();
        let (src, vni, back) = decap_vxlan(&out[..n], 4789).unwrap();
        assert_eq!(
            (src, vni, back),
            (Ipv4Addr::new(100, 96, 0, 1), 4096, &frame[..])
        );
    }

    #[test]
    fn decap_refuses_what_is_not_a_clean_vxlan_packet() {
        let frame = [0u8; 60];
        let mut out = vec![0u8; 200];
        let n = encap_vxlan(
            &mut out,
            [1, 1, 1, 1].into(),
            [2, 2, 2, 2].into(),
            50000,
            4789,
            7,
            &frame,
        )
        .unwrap();
        let good = out[..n].to_vec();
        assert!(decap_vxlan(&good, 4790).is_err(), "wrong port");
        let mut bad = good.clone();
        bad[10] ^= 1;
        assert!(decap_vxlan(&bad, 4789).is_err(), "bad checksum");
        let mut frag = good.clone();
        frag[6] = 0x20;
        let c = checksum(
            &{
                let mut h = frag[..20].to_vec();
                h[10] = 0;
                h[11] = 0;
                h
            },
            0,
        );
        frag[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(decap_vxlan(&frag, 4789).is_err(), "fragment");
        assert!(decap_vxlan(&good[..30], 4789).is_err(), "truncated");
        let mut noi = good.clone();
        noi[28] = 0;
        assert!(decap_vxlan(&noi, 4789).is_err(), "no I flag");
        for len in 0..good.len() {
            let _ = decap_vxlan(&good[..len], 4789);
        }
    }

    #[test]
    fn flow_ports_are_stable_and_in_range() {
        let a = [1u8; 64];
        let mut b = a;
        b[40] = 9;
        assert_eq!(flow_port(&a), flow_port(&a));
        assert!(flow_port(&a) >= 49152 && flow_port(&b) >= 49152);
    }
}
