use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::*;
use crate::PoolConfig;

fn net(s: &str) -> Ipv6Net {
    s.parse().expect("test CIDR")
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("test address")
}

#[test]
fn ula_pool_is_fd_and_the_global_id_as_a_48() {
    let pool = ula_pool([0x12, 0x34, 0x56, 0x78, 0x9a]);
    assert_eq!(pool, net("fd12:3456:789a::/48"));
}

#[test]
fn subnets_are_64s_cut_serially_skipping_taken_ones() {
    let pools = [net("fd00:1:2::/48")];
    assert_eq!(allocate_subnet6(&pools, &[]).unwrap(), net("fd00:1:2::/64"));
    let taken = [
        Occupied6::network("a", net("fd00:1:2::/64")),
        Occupied6::route(net("fd00:1:2:1::/64"), "n2"),
        Occupied6::network("b", net("fd00:1:2:2::/63")),
    ];
    assert_eq!(
        allocate_subnet6(&pools, &taken).unwrap(),
        net("fd00:1:2:4::/64")
    );
}

#[test]
fn a_full_pool_moves_to_the_next_and_then_is_exhausted() {
    let pools = [net("fd00::/64"), net("fd01::/63")];
    let taken = [Occupied6::network("a", net("fd00::/64"))];
    assert_eq!(allocate_subnet6(&pools, &taken).unwrap(), net("fd01::/64"));
    let taken = [
        Occupied6::network("a", net("fd00::/64")),
        Occupied6::route(net("fd01::/63"), "n1"),
    ];
    let err = allocate_subnet6(&pools, &taken).unwrap_err();
    assert!(matches!(err, IpamError::PoolExhausted { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("fd00::/64, fd01::/63 are exhausted: every /64"),
        "{err}"
    );
}

#[test]
fn the_last_64_of_the_address_space_is_found_without_overflow() {
    let pools = [net("ffff:ffff:ffff:fffe::/63")];
    let taken = [Occupied6::network("a", net("ffff:ffff:ffff:fffe::/64"))];
    assert_eq!(
        allocate_subnet6(&pools, &taken).unwrap(),
        net("ffff:ffff:ffff:ffff::/64")
    );
    let taken = [Occupied6::network("a", net("ffff:ffff:ffff:fffe::/63"))];
    assert!(allocate_subnet6(&pools, &taken).is_err());
}

#[test]
fn explicit_subnets_must_be_network_addresses_and_free() {
    let taken = [Occupied6::network("web", net("fd00:1::/64"))];
    check_subnet6(net("fd00:2::/64"), &taken).unwrap();
    let err = check_subnet6(net("fd00:1::/80"), &taken).unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet fd00:1::/80 overlaps network \"web\" (fd00:1::/64)"
    );
    let err = check_subnet6(net("fd00::/16"), &taken).unwrap_err();
    assert!(
        err.to_string().contains("overlaps network \"web\""),
        "{err}"
    );
    let err = check_subnet6(net("fd00:3::5/64"), &taken).unwrap_err();
    assert!(
        err.to_string().contains("did you mean fd00:3::/64?"),
        "{err}"
    );
}

#[test]
fn pools6_are_validated_with_the_v4_pools() {
    let cfg = PoolConfig::default();
    cfg.clone()
        .with_pools6(vec![net("fd00::/48"), net("2001:db8::/56")])
        .unwrap();
    let err = cfg.clone().with_pools6(vec![net("fd00::/80")]).unwrap_err();
    assert!(
        err.to_string()
            .contains("too small: an IPv6 pool must hold at least one /64"),
        "{err}"
    );
    let err = cfg
        .clone()
        .with_pools6(vec![net("fd00::/48"), net("fd00:0:0:1::/64")])
        .unwrap_err();
    assert!(matches!(err, IpamError::PoolsOverlap { .. }), "{err}");
    let err = cfg.with_pools6(vec![net("fd00::1/48")]).unwrap_err();
    assert!(
        matches!(err, IpamError::PoolNotNetworkAddress { .. }),
        "{err}"
    );
}

#[test]
fn old_pool_config_reads_without_pools6_and_writes_the_same() {
    let old = r#"{"pools":["10.0.0.0/8"],"mask_len":24}"#;
    let cfg: PoolConfig = serde_json::from_str(old).unwrap();
    assert!(cfg.pools6.is_empty());
    assert_eq!(serde_json::to_string(&cfg).unwrap(), old);
}

#[test]
fn space_defaults_gateway_to_the_first_host_and_allocates_serially() {
    let mut s = AddressSpace6::new(net("fd00::/64"), &SubnetRequest6::default()).unwrap();
    assert_eq!(s.gateway(), ip("fd00::1"));
    assert_eq!(s.capacity(), (1u128 << 64) - 2);
    assert_eq!(s.allocate("a").unwrap(), ip("fd00::2"));
    assert_eq!(s.allocate("b").unwrap(), ip("fd00::3"));
    assert_eq!(s.release(ip("fd00::2")).as_deref(), Some("a"));
    assert_eq!(s.allocate("c").unwrap(), ip("fd00::4"), "no reuse at once");
    s.reserve(ip("fd00::5"), "d").unwrap();
    assert_eq!(
        s.allocate("e").unwrap(),
        ip("fd00::6"),
        "skips a reserved one"
    );
}

#[test]
fn a_small_range_wraps_round_and_then_is_exhausted() {
    let req = SubnetRequest6 {
        gateway: None,
        ip_range: Some(net("fd00::/126")),
    };
    let mut s = AddressSpace6::new(net("fd00::/120"), &req).unwrap();
    assert_eq!(s.capacity(), 2);
    assert_eq!(s.allocate("a").unwrap(), ip("fd00::2"));
    assert_eq!(s.allocate("b").unwrap(), ip("fd00::3"));
    let err = s.allocate("c").unwrap_err();
    assert_eq!(
        err.to_string(),
        "network range fd00::/126 is exhausted: all 2 addresses are in use"
    );
    s.release(ip("fd00::2"));
    assert_eq!(s.allocate("c").unwrap(), ip("fd00::2"));
}

#[test]
fn bad_requests_are_refused_with_clear_errors() {
    let none = SubnetRequest6::default();
    let err = AddressSpace6::new(net("fd00::/127"), &none).unwrap_err();
    assert!(
        err.to_string()
            .contains("IPv6 subnet fd00::/127 is too small"),
        "{err}"
    );
    AddressSpace6::new(net("fd00::/126"), &none).unwrap();
    let gw = |g: &str| SubnetRequest6 {
        gateway: Some(ip(g)),
        ip_range: None,
    };
    let err = AddressSpace6::new(net("fd00::/64"), &gw("fd01::1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "gateway fd01::1 is outside subnet fd00::/64"
    );
    let err = AddressSpace6::new(net("fd00::/64"), &gw("fd00::")).unwrap_err();
    assert!(err.to_string().contains("is the network address"), "{err}");
    let range = |r: &str| SubnetRequest6 {
        gateway: None,
        ip_range: Some(net(r)),
    };
    let err = AddressSpace6::new(net("fd00::/64"), &range("fd01::/80")).unwrap_err();
    assert!(err.to_string().contains("not inside subnet"), "{err}");
    let err = AddressSpace6::new(net("fd00::/64"), &range("fd00::/127")).unwrap_err();
    assert!(
        err.to_string().contains("has no address to hand out"),
        "{err}"
    );
    let mut s = AddressSpace6::new(net("fd00::/64"), &none).unwrap();
    assert!(s.reserve(ip("fd00::1"), "x").is_err(), "the gateway");
    assert!(
        s.reserve(ip("fd00::"), "x").is_err(),
        "subnet-router anycast"
    );
    assert!(s.reserve(ip("fd01::9"), "x").is_err(), "outside");
    s.reserve(ip("fd00::9"), "x").unwrap();
    s.reserve(ip("fd00::9"), "x").unwrap();
    let err = s.reserve(ip("fd00::9"), "y").unwrap_err();
    assert_eq!(err.to_string(), "address fd00::9 is already in use by x");
}

#[test]
fn space_round_trips_through_json_and_stored_errors_are_caught() {
    let mut s = AddressSpace6::new(net("fd00::/64"), &SubnetRequest6::default()).unwrap();
    s.allocate("a").unwrap();
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(
        json,
        r#"{"subnet":"fd00::/64","gateway":"fd00::1","ip_range":"fd00::/64","leases":{"fd00::2":"a"},"last_allocated":"fd00::2"}"#
    );
    let back: AddressSpace6 = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    let bad = r#"{"subnet":"fd00::/64","gateway":"fd00::1","ip_range":"fd00::/64","leases":{"fd00::1":"a"}}"#;
    let err = serde_json::from_str::<AddressSpace6>(bad).unwrap_err();
    assert!(
        err.to_string().contains("inconsistent: lease of fd00::1"),
        "{err}"
    );
}

#[test]
fn stored_space_with_aux_addresses_is_refused() {
    let json =
        r#"{"subnet":"fd00::/64","gateway":"fd00::1","ip_range":"fd00::/64","aux_addresses":{}}"#;
    let err = serde_json::from_str::<AddressSpace6>(json).unwrap_err();
    assert!(
        err.to_string().contains(
            "unknown field `aux_addresses`, expected one of `subnet`, `gateway`, `ip_range`, `leases`, `last_allocated`"
        ),
        "{err}"
    );
}
