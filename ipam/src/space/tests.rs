use super::*;

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test CIDR")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

fn space(subnet: &str) -> AddressSpace {
    AddressSpace::new(net(subnet), &SubnetRequest::default()).expect("valid subnet")
}

fn space_with(subnet: &str, req: SubnetRequest) -> Result<AddressSpace, IpamError> {
    AddressSpace::new(net(subnet), &req)
}

fn aux(pairs: &[(&str, &str)]) -> BTreeMap<String, Ipv4Addr> {
    pairs.iter().map(|(n, a)| (n.to_string(), ip(a))).collect()
}

// --- construction ---

#[test]
fn defaults_are_first_host_gateway_and_whole_subnet_range() {
    let s = space("10.0.1.0/24");
    assert_eq!(s.subnet(), net("10.0.1.0/24"));
    assert_eq!(s.gateway(), ip("10.0.1.1"));
    assert_eq!(s.range(), net("10.0.1.0/24"));
    assert!(s.aux().is_empty());
    assert_eq!(s.capacity(), 253);
    assert_eq!(s.in_use(), 0);
    assert_eq!(s.last_allocated(), None);
}

#[test]
fn subnet_with_host_bits_is_rejected_naming_the_network_address() {
    let err = space_with("10.1.2.5/24", SubnetRequest::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet 10.1.2.5/24 is not a network address: did you mean 10.1.2.0/24?"
    );
}

#[test]
fn subnets_without_room_for_hosts_are_rejected() {
    for subnet in ["10.0.0.0/31", "10.0.0.0/32"] {
        let err = space_with(subnet, SubnetRequest::default()).unwrap_err();
        assert_eq!(
            err,
            IpamError::SubnetTooSmall {
                subnet: net(subnet).into()
            }
        );
    }
}

#[test]
fn slash_30_has_one_address_to_hand_out() {
    let mut s = space("10.0.0.4/30");
    assert_eq!(s.gateway(), ip("10.0.0.5"));
    assert_eq!(s.capacity(), 1);
    assert_eq!(s.allocate("a"), Ok(ip("10.0.0.6")));
    assert!(matches!(
        s.allocate("b"),
        Err(IpamError::RangeExhausted { capacity: 1, .. })
    ));
}

#[test]
fn gateway_outside_the_subnet_is_rejected() {
    let req = SubnetRequest {
        gateway: Some(ip("10.0.2.1")),
        ..SubnetRequest::default()
    };
    let err = space_with("10.0.1.0/24", req).unwrap_err();
    assert_eq!(
        err.to_string(),
        "gateway 10.0.2.1 is outside subnet 10.0.1.0/24"
    );
}

#[test]
fn gateway_on_network_or_broadcast_address_is_rejected() {
    let at = |gw: &str| SubnetRequest {
        gateway: Some(ip(gw)),
        ..SubnetRequest::default()
    };
    let err = space_with("10.0.1.0/24", at("10.0.1.0")).unwrap_err();
    assert!(matches!(err, IpamError::GatewayIsNetworkAddress { .. }));
    assert!(err
        .to_string()
        .contains("network address of subnet 10.0.1.0/24"));
    let err = space_with("10.0.1.0/24", at("10.0.1.255")).unwrap_err();
    assert!(matches!(err, IpamError::GatewayIsBroadcastAddress { .. }));
}

#[test]
fn custom_gateway_is_skipped_and_first_host_is_handed_out() {
    let req = SubnetRequest {
        gateway: Some(ip("10.0.1.254")),
        ..SubnetRequest::default()
    };
    let mut s = space_with("10.0.1.0/24", req).expect("valid");
    assert_eq!(s.allocate("a"), Ok(ip("10.0.1.1")));
    for _ in 0..252 {
        assert_ne!(s.allocate("a"), Ok(ip("10.0.1.254")));
    }
    assert_eq!(s.in_use(), 253);
}

#[test]
fn ip_range_must_be_a_network_address_inside_the_subnet() {
    let with = |r: &str| SubnetRequest {
        ip_range: Some(net(r)),
        ..SubnetRequest::default()
    };
    let err = space_with("10.0.1.0/24", with("10.0.1.130/25")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ip range 10.0.1.130/25 is not a network address: did you mean 10.0.1.128/25?"
    );
    let err = space_with("10.0.1.0/24", with("10.0.2.0/25")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ip range 10.0.2.0/25 is not inside subnet 10.0.1.0/24"
    );
    let err = space_with("10.0.1.0/24", with("10.0.0.0/23")).unwrap_err();
    assert!(matches!(err, IpamError::RangeOutsideSubnet { .. }));
}

#[test]
fn ip_range_with_nothing_to_hand_out_is_rejected() {
    let req = SubnetRequest {
        ip_range: Some(net("10.0.1.0/31")),
        ..SubnetRequest::default()
    };
    let err = space_with("10.0.1.0/24", req).unwrap_err();
    assert_eq!(
        err,
        IpamError::RangeEmpty {
            range: net("10.0.1.0/31").into(),
            subnet: net("10.0.1.0/24").into(),
        }
    );
}

#[test]
fn allocation_stays_inside_the_ip_range() {
    let req = SubnetRequest {
        ip_range: Some(net("10.0.1.128/25")),
        ..SubnetRequest::default()
    };
    let mut s = space_with("10.0.1.0/24", req).expect("valid");
    assert_eq!(s.capacity(), 127, "128 minus the broadcast address");
    assert_eq!(s.allocate("a"), Ok(ip("10.0.1.128")));
    for _ in 0..126 {
        let got = s.allocate("a").expect("room left");
        assert!(s.range().contains(&got) && got != ip("10.0.1.255"));
    }
    let err = s.allocate("a").unwrap_err();
    assert_eq!(
        err.to_string(),
        "network range 10.0.1.128/25 is exhausted: all 127 addresses are in use"
    );
}

#[test]
fn aux_addresses_are_checked_and_named_in_errors() {
    let with = |pairs: &[(&str, &str)]| SubnetRequest {
        aux_addresses: aux(pairs),
        ..SubnetRequest::default()
    };
    let err = space_with("10.0.1.0/24", with(&[("router", "10.0.2.1")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "aux address \"router\" (10.0.2.1) is outside subnet 10.0.1.0/24"
    );
    let err = space_with("10.0.1.0/24", with(&[("b", "10.0.1.255")])).unwrap_err();
    assert!(matches!(err, IpamError::AuxNotHostAddress { .. }));
    let err = space_with("10.0.1.0/24", with(&[("n", "10.0.1.0")])).unwrap_err();
    assert!(matches!(err, IpamError::AuxNotHostAddress { .. }));
    let err = space_with("10.0.1.0/24", with(&[("gw", "10.0.1.1")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "aux address \"gw\" (10.0.1.1) is the gateway"
    );
    let err = space_with("10.0.1.0/24", with(&[("a", "10.0.1.9"), ("b", "10.0.1.9")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "aux addresses \"a\" and \"b\" are both 10.0.1.9"
    );
}

#[test]
fn aux_addresses_are_never_handed_out() {
    let req = SubnetRequest {
        aux_addresses: aux(&[("printer", "10.0.1.2"), ("nas", "10.0.1.3")]),
        ..SubnetRequest::default()
    };
    let mut s = space_with("10.0.1.0/24", req).expect("valid");
    assert_eq!(s.capacity(), 251);
    assert_eq!(s.allocate("a"), Ok(ip("10.0.1.4")));
}

// --- allocation ---

#[test]
fn allocation_is_serial_from_the_first_free_host() {
    let mut s = space("10.0.1.0/24");
    assert_eq!(s.allocate("a"), Ok(ip("10.0.1.2")));
    assert_eq!(s.allocate("b"), Ok(ip("10.0.1.3")));
    assert_eq!(s.allocate("c"), Ok(ip("10.0.1.4")));
    assert_eq!(s.last_allocated(), Some(ip("10.0.1.4")));
    assert_eq!(s.in_use(), 3);
}

#[test]
fn released_address_is_not_reused_before_wrap() {
    let mut s = space("10.0.1.0/24");
    let first = s.allocate("a").expect("room");
    s.allocate("b").expect("room");
    assert_eq!(s.release(first), Some("a".to_string()));
    assert_eq!(s.allocate("c"), Ok(ip("10.0.1.4")));
}

#[test]
fn allocation_wraps_to_the_start_of_the_range() {
    let mut s = space("10.0.1.0/29");
    let got: Vec<_> = (0..5).map(|_| s.allocate("a").expect("room")).collect();
    assert_eq!(got.last(), Some(&ip("10.0.1.6")));
    s.release(ip("10.0.1.3"));
    s.release(ip("10.0.1.5"));
    assert_eq!(
        s.allocate("b"),
        Ok(ip("10.0.1.3")),
        "wrapped past .7 and .0/.1"
    );
    assert_eq!(s.allocate("c"), Ok(ip("10.0.1.5")));
    assert!(s.allocate("d").is_err());
}

#[test]
fn exhausted_range_error_names_the_range_and_count() {
    let mut s = space("10.0.1.0/24");
    for _ in 0..253 {
        s.allocate("a").expect("room");
    }
    let err = s.allocate("a").unwrap_err();
    assert_eq!(
        err.to_string(),
        "network range 10.0.1.0/24 is exhausted: all 253 addresses are in use"
    );
}

#[test]
fn empty_owner_is_rejected() {
    let mut s = space("10.0.1.0/24");
    assert_eq!(s.allocate(""), Err(IpamError::EmptyOwner));
    assert_eq!(s.reserve(ip("10.0.1.9"), ""), Err(IpamError::EmptyOwner));
}

#[test]
fn full_slash_16_is_allocated_without_duplicates() {
    let mut s = space("10.1.0.0/16");
    assert_eq!(s.capacity(), 65_533);
    for i in 0..65_533u32 {
        s.allocate(&format!("ep{}", i % 7)).expect("room");
    }
    assert_eq!(s.in_use(), 65_533);
    assert!(s.allocate("x").is_err());
    s.release(ip("10.1.77.7"));
    assert_eq!(s.allocate("x"), Ok(ip("10.1.77.7")));
}

// --- explicit addresses ---

#[test]
fn reserve_rejects_addresses_that_are_not_free_hosts_of_the_subnet() {
    let req = SubnetRequest {
        aux_addresses: aux(&[("nas", "10.0.1.50")]),
        ..SubnetRequest::default()
    };
    let mut s = space_with("10.0.1.0/24", req).expect("valid");
    let err = s.reserve(ip("10.0.2.5"), "a").unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.0.2.5 is outside subnet 10.0.1.0/24"
    );
    let err = s.reserve(ip("10.0.1.0"), "a").unwrap_err();
    assert!(matches!(err, IpamError::AddressNotHostAddress { .. }));
    let err = s.reserve(ip("10.0.1.255"), "a").unwrap_err();
    assert!(matches!(err, IpamError::AddressNotHostAddress { .. }));
    let err = s.reserve(ip("10.0.1.1"), "a").unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.0.1.1 is the gateway of subnet 10.0.1.0/24"
    );
    let err = s.reserve(ip("10.0.1.50"), "a").unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.0.1.50 is reserved as aux address \"nas\""
    );
    assert_eq!(s.in_use(), 0);
}

#[test]
fn reserve_of_a_leased_address_names_its_holder() {
    let mut s = space("10.0.1.0/24");
    s.reserve(ip("10.0.1.9"), "ep-web-1").expect("free");
    let err = s.reserve(ip("10.0.1.9"), "ep-db-1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.0.1.9 is already in use by ep-web-1"
    );
    assert_eq!(
        s.reserve(ip("10.0.1.9"), "ep-web-1"),
        Ok(()),
        "same owner: no-op"
    );
    assert_eq!(s.owner_of(ip("10.0.1.9")), Some("ep-web-1"));
}

#[test]
fn reserve_outside_the_range_but_inside_the_subnet_is_allowed() {
    let req = SubnetRequest {
        ip_range: Some(net("10.0.1.128/25")),
        ..SubnetRequest::default()
    };
    let mut s = space_with("10.0.1.0/24", req).expect("valid");
    assert_eq!(s.reserve(ip("10.0.1.10"), "a"), Ok(()));
    assert_eq!(s.in_use(), 1);
    assert_eq!(s.capacity(), 127);
}

#[test]
fn reserve_does_not_move_the_cursor_and_allocation_skips_it() {
    let mut s = space("10.0.1.0/24");
    s.reserve(ip("10.0.1.3"), "fixed").expect("free");
    assert_eq!(s.last_allocated(), None);
    assert_eq!(s.allocate("a"), Ok(ip("10.0.1.2")));
    assert_eq!(s.allocate("b"), Ok(ip("10.0.1.4")));
    s.reserve(ip("10.0.1.100"), "fixed").expect("free");
    assert_eq!(s.allocate("c"), Ok(ip("10.0.1.5")));
}

// --- release ---

#[test]
fn release_returns_the_owner_once() {
    let mut s = space("10.0.1.0/24");
    let a = s.allocate("a").expect("room");
    assert_eq!(s.release(a), Some("a".to_string()));
    assert_eq!(s.release(a), None);
    assert_eq!(s.release(ip("10.9.9.9")), None);
    assert_eq!(s.owner_of(a), None);
}

#[test]
fn release_owner_frees_every_lease_of_that_owner_only() {
    let mut s = space("10.0.1.0/24");
    let a1 = s.allocate("a").expect("room");
    let b1 = s.allocate("b").expect("room");
    s.reserve(ip("10.0.1.200"), "a").expect("free");
    let a2 = s.allocate("a").expect("room");
    assert_eq!(s.release_owner("a"), vec![a1, a2, ip("10.0.1.200")]);
    assert_eq!(s.release_owner("a"), Vec::<Ipv4Addr>::new());
    assert_eq!(s.leases().collect::<Vec<_>>(), vec![(b1, "b")]);
    assert_eq!(s.in_use(), 1);
}

#[test]
fn leases_are_listed_in_address_order() {
    let mut s = space("10.0.1.0/24");
    s.reserve(ip("10.0.1.50"), "z").expect("free");
    s.allocate("y").expect("room");
    let listed: Vec<_> = s.leases().collect();
    assert_eq!(listed, vec![(ip("10.0.1.2"), "y"), (ip("10.0.1.50"), "z")]);
    assert_eq!(s.lease_table().len(), 2);
}
