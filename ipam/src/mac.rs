//! MAC addresses for overlay endpoints, derived from their IP address.
//!
//! Like Docker's `02:42:<ip bytes>`: the `02` marks a locally administered
//! unicast address, and deriving the rest from the IP means every node
//! computes the same MAC for an endpoint without storing it, which is what
//! the static FDB and neighbour entries of the overlay need.
//!
//! ```text
//!   10.0.0.2  ──▶  02:42:0a:00:00:02
//! ```

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The first two bytes of every derived MAC: locally administered, unicast.
pub const MAC_PREFIX: [u8; 2] = [0x02, 0x42];

/// The MAC of the overlay interface that holds `ip`.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [MAC_PREFIX[0], MAC_PREFIX[1], a, b, c, d]
}

/// `02:42:0a:00:00:02`: lower-case hex, colon separated.
pub fn format_mac(mac: [u8; 6]) -> String {
    let mut out = String::with_capacity(17);
    for (i, byte) in mac.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_carries_the_ip_bytes_after_the_docker_prefix() {
        let mac = mac_for(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(mac, [0x02, 0x42, 10, 0, 0, 2]);
        assert_eq!(format_mac(mac), "02:42:0a:00:00:02");
    }

    #[test]
    fn mac_is_locally_administered_unicast() {
        let mac = mac_for(Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(mac[0] & 0x02, 0x02, "locally administered bit");
        assert_eq!(mac[0] & 0x01, 0x00, "unicast");
        assert_eq!(format_mac(mac), "02:42:ff:ff:ff:ff");
    }

    #[test]
    fn distinct_ips_give_distinct_macs() {
        let a = mac_for(Ipv4Addr::new(10, 0, 1, 2));
        let b = mac_for(Ipv4Addr::new(10, 0, 2, 1));
        assert_ne!(a, b);
    }
}
