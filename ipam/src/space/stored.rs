//! How an [`AddressSpaceOf`] is stored in a snapshot, and how it is read back.
//!
//! ```text
//! {"subnet":"10.0.1.0/24","gateway":"10.0.1.1","ip_range":"10.0.1.0/24",
//!  "aux_addresses":{},"leases":{"10.0.1.2":"ep-1"},"last_allocated":"10.0.1.2"}
//! {"subnet":"fd00::/64","gateway":"fd00::1","ip_range":"fd00::/64",
//!  "leases":{"fd00::2":"a"},"last_allocated":"fd00::2"}
//! ```
//!
//! IPv6 has no `aux_addresses`. Reading re-runs the checks of `new` and
//! [`AddressSpaceOf::reserve`] for each lease, so a snapshot cannot smuggle in
//! a lease on the gateway, two aux names for one address or a cursor outside
//! the range.

use std::collections::BTreeMap;

use imbl::OrdMap;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{AddressSpaceOf, Family};
use crate::error::IpamError;

/// The stored form, borrowed for writing.
#[derive(Serialize)]
#[serde(bound = "")]
struct StoredSpaceRef<'a, A: Family> {
    subnet: A::Net,
    gateway: A,
    ip_range: A::Net,
    #[serde(skip_serializing_if = "Option::is_none")]
    aux_addresses: Option<&'a BTreeMap<String, A>>,
    leases: &'a OrdMap<A, String>,
    last_allocated: Option<A>,
}

/// The stored form, owned for reading.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub(super) struct StoredSpace<A: Family> {
    subnet: A::Net,
    gateway: A,
    ip_range: A::Net,
    #[serde(default, deserialize_with = "aux_addresses")]
    aux_addresses: BTreeMap<String, A>,
    #[serde(default)]
    leases: BTreeMap<A, String>,
    #[serde(default)]
    last_allocated: Option<A>,
}

/// Reads `aux_addresses`, an unknown field where the family has none.
fn aux_addresses<'de, A: Family, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, A>, D::Error> {
    if !A::HAS_AUX {
        const FIELDS: &[&str] = &["subnet", "gateway", "ip_range", "leases", "last_allocated"];
        return Err(D::Error::unknown_field("aux_addresses", FIELDS));
    }
    BTreeMap::deserialize(deserializer)
}

impl<A: Family> Serialize for AddressSpaceOf<A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredSpaceRef {
            subnet: self.subnet,
            gateway: self.gateway,
            ip_range: self.range,
            aux_addresses: A::HAS_AUX.then_some(&self.aux),
            leases: &self.leases,
            last_allocated: self.last_allocated,
        }
        .serialize(serializer)
    }
}

impl<A: Family> TryFrom<StoredSpace<A>> for AddressSpaceOf<A> {
    type Error = IpamError;

    fn try_from(stored: StoredSpace<A>) -> Result<Self, IpamError> {
        let subnet = stored.subnet;
        let inconsistent = |detail: String| IpamError::InconsistentState {
            subnet: subnet.into(),
            detail,
        };
        let mut space = AddressSpaceOf::build(
            subnet,
            Some(stored.gateway),
            Some(stored.ip_range),
            &stored.aux_addresses,
        )?;
        for (ip, owner) in &stored.leases {
            space
                .reserve(*ip, owner)
                .map_err(|e| inconsistent(format!("lease of {ip} to {owner:?}: {e}")))?;
        }
        if let Some(last) = stored.last_allocated {
            if !A::in_net(space.range, last) {
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
    use std::net::Ipv4Addr;

    use crate::space::{AddressSpace, SubnetRequest};

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
