//! Proxy ARP for encrypted networks: the TAP path never floods, so an ARP request for a
//! remote endpoint is answered locally from the cluster state, as the kernel VXLAN
//! device's proxy mode does for plain networks.
//!
//! ```text
//!  Ethernet: dst(6) src(6) type(2)=0x0806
//!  ARP:      htype(2)=1 ptype(2)=0x0800 hlen(1)=6 plen(1)=4 op(2)
//!            sha(6) spa(4) tha(6) tpa(4)
//! ```

use std::net::Ipv4Addr;

const ETH_LEN: usize = 14;
const ARP_LEN: usize = 28;
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const OP_REQUEST: [u8; 2] = [0, 1];
const OP_REPLY: [u8; 2] = [0, 2];
const ARP_FIXED: [u8; 6] = [0, 1, 8, 0, 6, 4];

/// The target address of an Ethernet/IPv4 ARP request, if `frame` is one.
pub fn request_target(frame: &[u8]) -> Option<Ipv4Addr> {
    let arp = frame.get(ETH_LEN..ETH_LEN + ARP_LEN)?;
    if frame[12..14] != ETHERTYPE_ARP || arp[..6] != ARP_FIXED || arp[6..8] != OP_REQUEST {
        return None;
    }
    Some(Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]))
}

/// Writes into `out` the reply to the ARP request `frame` saying `mac` has the target
/// address; returns its length (a minimum-size Ethernet frame).
pub fn reply(frame: &[u8], mac: [u8; 6], out: &mut [u8]) -> Option<usize> {
    let target = request_target(frame)?;
    let req = &frame[ETH_LEN..ETH_LEN + ARP_LEN];
    let (asker_mac, asker_ip) = (&req[8..14], &req[14..18]);
    let len = 60;
    let out = out.get_mut(..len)?;
    out.fill(0);
    out[0..6].copy_from_slice(asker_mac);
    out[6..12].copy_from_slice(&mac);
    out[12..14].copy_from_slice(&ETHERTYPE_ARP);
    let a = &mut out[ETH_LEN..ETH_LEN + ARP_LEN];
    a[..6].copy_from_slice(&ARP_FIXED);
    a[6..8].copy_from_slice(&OP_REPLY);
    a[8..14].copy_from_slice(&mac);
    a[14..18].copy_from_slice(&target.octets());
    a[18..24].copy_from_slice(asker_mac);
    a[24..28].copy_from_slice(asker_ip);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(asker: [u8; 6], asker_ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&asker);
        f.extend_from_slice(&ETHERTYPE_ARP);
        f.extend_from_slice(&ARP_FIXED);
        f.extend_from_slice(&OP_REQUEST);
        f.extend_from_slice(&asker);
        f.extend_from_slice(&asker_ip);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f
    }

    #[test]
    fn answers_a_request_for_a_known_address() {
        let req = request([2, 0x42, 10, 0, 0, 2], [10, 0, 0, 2], [10, 0, 0, 3]);
        assert_eq!(request_target(&req), Some(Ipv4Addr::new(10, 0, 0, 3)));
        let mut out = [0u8; 64];
        let n = reply(&req, [2, 0x42, 10, 0, 0, 3], &mut out).unwrap();
        let r = &out[..n];
        assert_eq!(&r[0..6], &[2, 0x42, 10, 0, 0, 2], "to the asker");
        assert_eq!(&r[20..22], &OP_REPLY);
        assert_eq!(
            &r[22..28],
            &[2, 0x42, 10, 0, 0, 3],
            "sender hardware address is the answer"
        );
        assert_eq!(&r[28..32], &[10, 0, 0, 3]);
        assert_eq!(&r[38..42], &[10, 0, 0, 2]);
    }

    #[test]
    fn ignores_what_is_not_an_arp_request() {
        let mut reply_frame = request([2; 6], [1; 4], [2; 4]);
        reply_frame[21] = 2;
        assert_eq!(request_target(&reply_frame), None);
        assert_eq!(request_target(&[0u8; 20]), None);
        let mut ip = request([2; 6], [1; 4], [2; 4]);
        ip[12] = 0x08;
        ip[13] = 0x00;
        assert_eq!(request_target(&ip), None);
    }
}
