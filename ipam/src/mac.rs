//! MAC addresses for overlay endpoints, derived from their IP address (unless the
//! caller names one, as CNI's `mac` capability does: then it is stored in the state).
//!
//! Like Docker's `02:42:<ip bytes>`: the `02` marks a locally administered
//! unicast address, and deriving the rest from the IP means every node
//! computes the same MAC for an endpoint without storing it, which is what
//! the static FDB and neighbour entries of the overlay need.
//!
//! ```text
//!   10.0.0.2  ──▶  02:42:0a:00:00:02
//!   fd00::a:2 ──▶  02:42:00:0a:00:02   (IPv6-only networks: the last 32 bits)
//! ```

use std::fmt::Write as _;
use std::net::IpAddr;

/// The first two bytes of every derived MAC: locally administered, unicast.
pub const MAC_PREFIX: [u8; 2] = [0x02, 0x42];

/// The MAC of the overlay interface that holds `ip`: its IPv4 address, or on an
/// IPv6-only network its IPv6 one, whose last 32 bits it carries (distinct for the
/// addresses of one subnet that differ only there, as serial leases do).
pub fn mac_for(ip: impl Into<IpAddr>) -> [u8; 6] {
    let [a, b, c, d] = match ip.into() {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
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

/// A MAC an endpoint may be given instead of its derived one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    /// Not six colon-separated hex bytes.
    #[error("MAC address {0:?}: write six hex bytes separated by colons, like 02:42:0a:00:00:02")]
    Syntax(String),
    /// The group bit is set: frames to it would go to every port.
    #[error("MAC address {0}: a multicast address cannot be an interface's (its first byte must be even)")]
    Multicast(String),
    /// All zero.
    #[error("MAC address 00:00:00:00:00:00 cannot be an interface's")]
    Zero,
}

/// Reads `02:42:0a:00:00:02` (or with dashes) as an interface's MAC: unicast, not zero.
pub fn parse_mac(text: &str) -> Result<[u8; 6], MacError> {
    let bad = || MacError::Syntax(text.to_string());
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    check_mac(mac)?;
    Ok(mac)
}

/// Whether `mac` may be an interface's: unicast and not all zero.
pub fn check_mac(mac: [u8; 6]) -> Result<(), MacError> {
    if mac == [0; 6] {
        return Err(MacError::Zero);
    }
    if mac[0] & 1 == 1 {
        return Err(MacError::Multicast(format_mac(mac)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn interface_macs_are_read_and_group_or_zero_ones_refused() {
        assert_eq!(
            parse_mac("02:42:0A:00:00:02").unwrap(),
            [2, 0x42, 10, 0, 0, 2]
        );
        assert_eq!(parse_mac("52-54-00-12-34-56").unwrap()[5], 0x56);
        for bad in [
            "",
            "02:42:0a:00:00",
            "02:42:0a:00:00:02:03",
            "2:42:0a:00:00:02",
            "zz:42:0a:00:00:02",
            "02:42:0a:00:00:0x2",
        ] {
            assert!(matches!(parse_mac(bad), Err(MacError::Syntax(_))), "{bad}");
        }
        assert!(matches!(
            parse_mac("01:00:5e:00:00:01"),
            Err(MacError::Multicast(_))
        ));
        assert!(matches!(
            parse_mac("ff:ff:ff:ff:ff:ff"),
            Err(MacError::Multicast(_))
        ));
        assert_eq!(parse_mac("00:00:00:00:00:00"), Err(MacError::Zero));
    }

    #[test]
    fn mac_carries_the_ip_bytes_after_the_docker_prefix() {
        let mac = mac_for(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(mac, [0x02, 0x42, 10, 0, 0, 2]);
        assert_eq!(format_mac(mac), "02:42:0a:00:00:02");
    }

    #[test]
    fn ipv6_macs_carry_the_last_32_bits() {
        let ip: std::net::Ipv6Addr = "fd00:1:2:3::a:2".parse().unwrap();
        assert_eq!(format_mac(mac_for(ip)), "02:42:00:0a:00:02");
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
