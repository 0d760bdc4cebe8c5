//! How an [`AddressSpace`] is stored in a snapshot, and how it is read back.
//!
//! ```text
//! {"subnet":"10.0.1.0/24","gateway":"10.0.1.1","ip_range":"10.0.1.0/24",
//!  "aux_addresses":{},"leases":{"10.0.1.2":"ep-1"},"last_allocated":"10.0.1.2"}
//! ```
//!
//! Reading re-runs [`AddressSpace::new`] and [`AddressSpace::reserve`] for
//! each lease, so a snapshot cannot smuggle in a lease on the gateway, two
//! aux names for one address or a cursor outside the range.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use imbl::OrdMap;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize, Serializer};

use super::{AddressSpace, SubnetRequest};
use crate::error::IpamError;

/// The stored form, borrowed for writing.
#[derive(Serialize)]
struct StoredSpaceRef<'a> {
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    ip_range: Ipv4Net,
    aux_addresses: &'a BTreeMap<String, Ipv4Addr>,
    leases: &'a OrdMap<Ipv4Addr, String>,
    last_allocated: Option<Ipv4Addr>,
}

/// The stored form, owned for reading.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoredSpace {
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    ip_range: Ipv4Net,
    #[serde(default)]
    aux_addresses: BTreeMap<String, Ipv4Addr>,
    #[serde(default)]
    leases: BTreeMap<Ipv4Addr, String>,
    #[serde(default)]
    last_allocated: Option<Ipv4Addr>,
}

impl Serialize for AddressSpace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredSpaceRef {
            subnet: self.subnet,
            gateway: self.gateway,
            ip_range: self.range,
            aux_addresses: &self.aux,
            leases: &self.leases,
            last_allocated: self.last_allocated,
        }
        .serialize(serializer)
    }
}

impl TryFrom<StoredSpace> for AddressSpace {
    type Error = IpamError;

    fn try_from(stored: StoredSpace) -> Result<Self, IpamError> {
        let subnet = stored.subnet;
        let inconsistent = |detail: String| IpamError::InconsistentState {
            subnet: subnet.into(),
            detail,
        };
        let req = SubnetRequest {
            subnet: Some(subnet),
            gateway: Some(stored.gateway),
            ip_range: Some(stored.ip_range),
            aux_addresses: stored.aux_addresses,
        };
        let mut space = AddressSpace::new(subnet, &req)?;
        for (ip, owner) in &stored.leases {
            space
                .reserve(*ip, owner)
                .map_err(|e| inconsistent(format!("lease of {ip} to {owner:?}: {e}")))?;
        }
        if let Some(last) = stored.last_allocated {
            if !space.range.contains(&last) {
                return Err(inconsistent(format!(
                    "last allocated address {last} is outside ip range {}",
                    space.range
                )));
            }
        }
        space.last_allocated = stored.last_allocated;
        Ok(space)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> AddressSpace {
        let req = SubnetRequest {
            aux_addresses: [("nas".to_string(), Ipv4Addr::new(10, 0, 1, 50))].into(),
            ..SubnetRequest::default()
        };
        let subnet = "10.0.1.0/24".parse().expect("CIDR");
        AddressSpace::new(subnet, &req).expect("valid")
    }

    #[test]
    fn json_is_compact_with_leases_keyed_by_address() {
        let mut s = space();
        s.allocate("ep-1").expect("room");
        let json = serde_json::to_string(&s).expect("serialize");
        assert_eq!(
            json,
            r#"{"subnet":"10.0.1.0/24","gateway":"10.0.1.1","ip_range":"10.0.1.0/24","aux_addresses":{"nas":"10.0.1.50"},"leases":{"10.0.1.2":"ep-1"},"last_allocated":"10.0.1.2"}"#
        );
    }

    #[test]
    fn json_round_trip_gives_an_equal_space() {
        let mut s = space();
        s.allocate("a").expect("room");
        s.reserve(Ipv4Addr::new(10, 0, 1, 9), "b").expect("free");
        let json = serde_json::to_string(&s).expect("serialize");
        let back: AddressSpace = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, s);
    }

    #[test]
    fn stored_lease_on_the_gateway_is_rejected() {
        let json = r#"{"subnet":"10.0.1.0/24","gateway":"10.0.1.1","ip_range":"10.0.1.0/24","leases":{"10.0.1.1":"x"}}"#;
        let err = serde_json::from_str::<AddressSpace>(json).unwrap_err();
        assert!(
            err.to_string().contains(
                "stored address space of subnet 10.0.1.0/24 is inconsistent: lease of 10.0.1.1"
            ),
            "{err}"
        );
    }

    #[test]
    fn stored_cursor_outside_the_range_is_rejected() {
        let json = r#"{"subnet":"10.0.1.0/24","gateway":"10.0.1.1","ip_range":"10.0.1.128/25","last_allocated":"10.0.1.5"}"#;
        let err = serde_json::from_str::<AddressSpace>(json).unwrap_err();
        assert!(
            err.to_string().contains("outside ip range 10.0.1.128/25"),
            "{err}"
        );
    }

    #[test]
    fn stored_space_is_validated_like_a_new_one() {
        let json = r#"{"subnet":"10.0.1.5/24","gateway":"10.0.1.1","ip_range":"10.0.1.0/24"}"#;
        let err = serde_json::from_str::<AddressSpace>(json).unwrap_err();
        assert!(
            err.to_string().contains("did you mean 10.0.1.0/24"),
            "{err}"
        );
        let json =
            r#"{"subnet":"10.0.1.0/24","gateway":"10.0.1.1","ip_range":"10.0.1.0/24","extra":1}"#;
        assert!(serde_json::from_str::<AddressSpace>(json).is_err());
    }
}
