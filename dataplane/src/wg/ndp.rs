//! Proxy NDP for encrypted networks: a neighbour solicitation for a remote endpoint's
//! IPv6 address is answered locally from the cluster state, as proxy ARP answers
//! ARP, so no solicitation leaves the node (the TAP path never floods).
//!
//! ```text
//!  Ethernet: dst(6) src(6) type(2)=0x86dd
//!  IPv6:     ver/class/flow(4) payload len(2) next(1)=58 hop limit(1)=255 src(16) dst(16)
//!  ICMPv6:   type(1)=135 NS / 136 NA  code(1)=0  checksum(2)  flags+reserved(4)
//!            target(16)  [NA: option type(1)=2 len(1)=1 target MAC(6)]
//! ```

use std::net::Ipv6Addr;

const ETH_LEN: usize = 14;
const IPV6_LEN: usize = 40;
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
const NEXT_ICMPV6: u8 = 58;
/// Neighbour discovery messages must carry hop limit 255 (RFC 4861 §7.1).
const ND_HOP_LIMIT: u8 = 255;
const TYPE_SOLICITATION: u8 = 135;
const TYPE_ADVERTISEMENT: u8 = 136;
/// Solicited and Override (RFC 4861 §4.4), not Router.
const NA_FLAGS: u8 = 0x60;
/// ICMPv6 header and target address of a solicitation or advertisement.
const ND_LEN: usize = 24;
/// The target link-layer address option: type 2, length 1 (8 bytes).
const OPTION_LEN: usize = 8;
const OPTION_TARGET_LLADDR: u8 = 2;

/// The target address of an IPv6 neighbour solicitation in `frame` from an address
/// (not a duplicate address detection probe, whose source is unspecified).
pub fn solicitation_target(frame: &[u8]) -> Option<Ipv6Addr> {
    let ip = frame.get(ETH_LEN..ETH_LEN + IPV6_LEN)?;
    let icmp = frame.get(ETH_LEN + IPV6_LEN..ETH_LEN + IPV6_LEN + ND_LEN)?;
    let is_ns = frame[12..14] == ETHERTYPE_IPV6
        && ip[0] >> 4 == 6
        && ip[6] == NEXT_ICMPV6
        && ip[7] == ND_HOP_LIMIT
        && icmp[0] == TYPE_SOLICITATION
        && icmp[1] == 0;
    let source = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).ok()?);
    if !is_ns || source.is_unspecified() {
        return None;
    }
    Some(Ipv6Addr::from(<[u8; 16]>::try_from(&icmp[8..24]).ok()?))
}

/// Writes into `out` the advertisement answering the solicitation `frame`, saying
/// `mac` has the target address; returns its length.
pub fn advertisement(frame: &[u8], mac: [u8; 6], out: &mut [u8]) -> Option<usize> {
    let target = solicitation_target(frame)?;
    let asker_mac = &frame[6..12];
    let asker_ip = &frame[ETH_LEN + 8..ETH_LEN + 24];
    let payload_len = ND_LEN + OPTION_LEN;
    let len = ETH_LEN + IPV6_LEN + payload_len;
    let out = out.get_mut(..len)?;
    out.fill(0);
    out[0..6].copy_from_slice(asker_mac);
    out[6..12].copy_from_slice(&mac);
    out[12..14].copy_from_slice(&ETHERTYPE_IPV6);
    let ip = &mut out[ETH_LEN..ETH_LEN + IPV6_LEN];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    ip[6] = NEXT_ICMPV6;
    ip[7] = ND_HOP_LIMIT;
    ip[8..24].copy_from_slice(&target.octets());
    ip[24..40].copy_from_slice(asker_ip);
    let icmp = &mut out[ETH_LEN + IPV6_LEN..];
    icmp[0] = TYPE_ADVERTISEMENT;
    icmp[4] = NA_FLAGS;
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24] = OPTION_TARGET_LLADDR;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac);
    let sum = checksum(&target.octets(), asker_ip, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(len)
}

/// The ICMPv6 checksum of `icmp` (checksum field zero) from `src` to `dst`: the
/// one's complement sum over the pseudo-header and the message (RFC 8200 §8.1).
fn checksum(src: &[u8], dst: &[u8], icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            sum += hi | u32::from(pair.get(1).copied().unwrap_or(0));
        }
    };
    add(src);
    add(dst);
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_ICMPV6]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASKER: [u8; 6] = [2, 0x42, 10, 0, 0, 2];
    const REMOTE: [u8; 6] = [2, 0x42, 10, 0, 0, 3];

    fn solicitation(source: Ipv6Addr, target: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
        let t = target.octets();
        let group = [
            0xff02,
            0,
            0,
            0,
            0,
            1,
            0xff00 | u16::from(t[13]),
            u16::from_be_bytes([t[14], t[15]]),
        ];
        let mut f = vec![0x33, 0x33, 0xff, t[13], t[14], t[15]];
        f.extend_from_slice(&ASKER);
        f.extend_from_slice(&ETHERTYPE_IPV6);
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, NEXT_ICMPV6, hop_limit]);
        f.extend_from_slice(&source.octets());
        f.extend_from_slice(&Ipv6Addr::from(group).octets());
        f.extend_from_slice(&[TYPE_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&t);
        f.extend_from_slice(&[1, 1]);
        f.extend_from_slice(&ASKER);
        f
    }

    #[test]
    fn solicitations_are_recognised_and_probes_and_other_frames_are_not() {
        let (me, them): (Ipv6Addr, Ipv6Addr) =
            ("fd00:1::2".parse().unwrap(), "fd00:1::3".parse().unwrap());
        assert_eq!(
            solicitation_target(&solicitation(me, them, 255)),
            Some(them)
        );
        assert_eq!(
            solicitation_target(&solicitation(Ipv6Addr::UNSPECIFIED, them, 255)),
            None,
            "duplicate address detection is not answered"
        );
        assert_eq!(
            solicitation_target(&solicitation(me, them, 64)),
            None,
            "hop limit"
        );
        let mut echo = solicitation(me, them, 255);
        echo[ETH_LEN + IPV6_LEN] = 128;
        assert_eq!(solicitation_target(&echo), None);
        assert_eq!(solicitation_target(&echo[..60]), None, "too short");
    }

    #[test]
    fn the_advertisement_answers_the_asker_with_a_valid_checksum() {
        let (me, them): (Ipv6Addr, Ipv6Addr) =
            ("fd00:1::2".parse().unwrap(), "fd00:1::3".parse().unwrap());
        let ns = solicitation(me, them, 255);
        let mut out = [0u8; 128];
        let len = advertisement(&ns, REMOTE, &mut out).unwrap();
        let na = &out[..len];
        assert_eq!(len, 86);
        assert_eq!(&na[0..6], &ASKER);
        assert_eq!(&na[6..12], &REMOTE);
        assert_eq!(
            &na[ETH_LEN + 8..ETH_LEN + 24],
            &them.octets(),
            "from the target"
        );
        assert_eq!(
            &na[ETH_LEN + 24..ETH_LEN + 40],
            &me.octets(),
            "to the asker"
        );
        let icmp = &na[ETH_LEN + IPV6_LEN..];
        assert_eq!((icmp[0], icmp[4]), (TYPE_ADVERTISEMENT, 0x60));
        assert_eq!(&icmp[8..24], &them.octets());
        assert_eq!(&icmp[24..32], &[2, 1, 2, 0x42, 10, 0, 0, 3]);
        // Summing over the message with its checksum in place gives zero.
        let mut zeroed = icmp.to_vec();
        let sum = u16::from_be_bytes([icmp[2], icmp[3]]);
        zeroed[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(checksum(&them.octets(), &me.octets(), &zeroed), sum);
        assert_eq!(checksum(&them.octets(), &me.octets(), icmp), 0);
        assert_eq!(advertisement(&ns, REMOTE, &mut [0u8; 40]), None, "no room");
    }
}
