use proptest::prelude::*;

use super::*;

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test CIDR")
}

fn cfg(pools: &[&str], mask_len: u8) -> PoolConfig {
    PoolConfig {
        pools: pools.iter().map(|p| net(p)).collect(),
        mask_len,
        pools6: Vec::new(),
    }
}

#[test]
fn default_config_is_ten_slash_eight_cut_into_24s() {
    let cfg = PoolConfig::default();
    assert_eq!(cfg.pools, vec![net("10.0.0.0/8")]);
    assert_eq!(cfg.mask_len, 24);
    assert_eq!(cfg.validate(), Ok(()));
}

#[test]
fn new_defaults_mask_len_to_24_and_validates() {
    let cfg = PoolConfig::new(vec![net("172.16.0.0/12")], None).expect("valid");
    assert_eq!(cfg.mask_len, 24);
    let err = PoolConfig::new(vec![], Some(24)).unwrap_err();
    assert_eq!(err, IpamError::NoPools);
}

#[test]
fn empty_pool_list_is_rejected() {
    let err = cfg(&[], 24).validate().unwrap_err();
    assert_eq!(err, IpamError::NoPools);
    assert!(err.to_string().contains("at least one pool"));
}

#[test]
fn pool_with_host_bits_is_rejected_naming_the_network_address() {
    let err = cfg(&["10.1.2.3/8"], 24).validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "address pool 10.1.2.3/8 is not a network address: did you mean 10.0.0.0/8?"
    );
}

#[test]
fn overlapping_pools_are_rejected_naming_both() {
    let err = cfg(&["10.0.0.0/8", "192.168.0.0/16", "10.5.0.0/16"], 24)
        .validate()
        .unwrap_err();
    assert_eq!(
        err,
        IpamError::PoolsOverlap {
            first: net("10.0.0.0/8").into(),
            second: net("10.5.0.0/16").into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "address pools 10.0.0.0/8 and 10.5.0.0/16 overlap: pools must be disjoint"
    );
}

#[test]
fn pool_smaller_than_a_29_is_rejected() {
    let err = cfg(&["10.0.0.0/30"], 29).validate().unwrap_err();
    assert_eq!(
        err,
        IpamError::PoolTooSmall {
            pool: net("10.0.0.0/30").into()
        }
    );
    assert!(err.to_string().contains("10.0.0.0/30 is too small"));
}

#[test]
fn subnet_size_larger_than_a_pool_is_rejected_naming_the_pool() {
    let err = cfg(&["10.0.0.0/8", "192.168.0.0/16"], 12)
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet size /12 is larger than address pool 192.168.0.0/16: use a size between /16 and /29"
    );
}

#[test]
fn subnet_size_longer_than_29_is_rejected() {
    for mask_len in [30, 32, 33, 255] {
        let err = cfg(&["10.0.0.0/8"], mask_len).validate().unwrap_err();
        assert_eq!(err, IpamError::MaskTooSmall { mask_len });
    }
}

#[test]
fn subnet_size_equal_to_the_pool_is_accepted() {
    let cfg = cfg(&["10.9.0.0/16"], 16);
    assert_eq!(cfg.validate(), Ok(()));
    assert_eq!(allocate_subnet(&cfg, &[]), Ok(net("10.9.0.0/16")));
}

#[test]
fn pool_config_json_uses_cidr_strings_and_round_trips() {
    let cfg = cfg(&["10.0.0.0/8", "172.16.0.0/12"], 20);
    let json = serde_json::to_string(&cfg).expect("serialize");
    assert_eq!(
        json,
        r#"{"pools":["10.0.0.0/8","172.16.0.0/12"],"mask_len":20}"#
    );
    let back: PoolConfig = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, cfg);
    assert!(serde_json::from_str::<PoolConfig>(r#"{"pools":[],"mask_len":24,"x":1}"#).is_err());
}

#[test]
fn first_subnet_of_the_first_pool_is_allocated_when_nothing_is_occupied() {
    let got = allocate_subnet(&PoolConfig::default(), &[]);
    assert_eq!(got, Ok(net("10.0.0.0/24")));
}

#[test]
fn allocation_skips_occupied_networks_and_routes() {
    let occupied = [
        Occupied::network("web", net("10.0.0.0/24")),
        Occupied::route(net("10.0.1.0/24"), "n2"),
        Occupied::network("db", net("10.0.3.0/24")),
    ];
    let got = allocate_subnet(&PoolConfig::default(), &occupied);
    assert_eq!(got, Ok(net("10.0.2.0/24")));
}

#[test]
fn allocation_jumps_past_a_wide_route() {
    let occupied = [Occupied::route(net("10.0.0.0/9"), "n1")];
    let got = allocate_subnet(&PoolConfig::default(), &occupied);
    assert_eq!(got, Ok(net("10.128.0.0/24")));
}

#[test]
fn allocation_skips_a_subnet_that_contains_a_narrow_route() {
    let occupied = [Occupied::route(net("10.0.0.200/32"), "n3")];
    let got = allocate_subnet(&PoolConfig::default(), &occupied);
    assert_eq!(got, Ok(net("10.0.1.0/24")));
}

#[test]
fn allocation_moves_to_the_next_pool_when_the_first_is_full() {
    let cfg = cfg(&["10.0.0.0/23", "192.168.0.0/16"], 24);
    let occupied = [
        Occupied::network("a", net("10.0.0.0/24")),
        Occupied::network("b", net("10.0.1.0/24")),
    ];
    assert_eq!(allocate_subnet(&cfg, &occupied), Ok(net("192.168.0.0/24")));
}

#[test]
fn allocation_ignores_occupied_space_outside_the_pools() {
    let cfg = cfg(&["10.0.0.0/16"], 24);
    let occupied = [Occupied::route(net("0.0.0.0/1"), "n1")];
    // 0.0.0.0/1 covers all of 10.0.0.0/8: the pool is full.
    assert!(matches!(
        allocate_subnet(&cfg, &occupied),
        Err(IpamError::PoolExhausted { .. })
    ));
    let occupied = [Occupied::route(net("192.168.0.0/16"), "n1")];
    assert_eq!(allocate_subnet(&cfg, &occupied), Ok(net("10.0.0.0/24")));
}

#[test]
fn exhausted_pool_error_names_the_pool_and_the_size() {
    let cfg1 = cfg(&["10.0.0.0/8"], 24);
    let occupied = [Occupied::route(net("10.0.0.0/8"), "n1")];
    let err = allocate_subnet(&cfg1, &occupied).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address pool 10.0.0.0/8 is exhausted: every /24 overlaps an existing network \
         or route; add a pool or remove unused networks"
    );
    let cfg2 = cfg(&["10.0.0.0/8", "172.16.0.0/12"], 24);
    let occupied = [
        Occupied::route(net("10.0.0.0/8"), "n1"),
        Occupied::route(net("172.16.0.0/12"), "n1"),
    ];
    let err = allocate_subnet(&cfg2, &occupied).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("address pools 10.0.0.0/8, 172.16.0.0/12 are exhausted: every /24"));
}

#[test]
fn allocation_refuses_an_invalid_config() {
    let err = allocate_subnet(&cfg(&["10.0.0.0/8"], 31), &[]).unwrap_err();
    assert_eq!(err, IpamError::MaskTooSmall { mask_len: 31 });
}

#[test]
fn allocation_at_the_top_of_the_address_space_does_not_overflow() {
    let cfg = cfg(&["255.255.255.0/24"], 29);
    let occupied = [Occupied::network("a", net("255.255.255.0/25"))];
    assert_eq!(
        allocate_subnet(&cfg, &occupied),
        Ok(net("255.255.255.128/29"))
    );
    let occupied = [Occupied::network("a", net("255.255.255.0/24"))];
    assert!(allocate_subnet(&cfg, &occupied).is_err());
}

#[test]
fn requested_subnet_that_overlaps_nothing_is_accepted() {
    let occupied = [Occupied::network("web", net("10.0.0.0/24"))];
    assert_eq!(check_subnet(net("10.0.1.0/24"), &occupied), Ok(()));
}

#[test]
fn requested_subnet_overlap_error_names_the_network_and_its_subnet() {
    let occupied = [
        Occupied::route(net("192.168.0.0/16"), "n1"),
        Occupied::network("web", net("10.0.0.0/16")),
    ];
    let err = check_subnet(net("10.0.1.0/24"), &occupied).unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet 10.0.1.0/24 overlaps network \"web\" (10.0.0.0/16)"
    );
}

#[test]
fn requested_subnet_overlap_error_with_a_route_does_not_repeat_the_net() {
    let occupied = [Occupied::route(net("10.0.0.0/16"), "n2")];
    let err = check_subnet(net("10.0.0.0/8"), &occupied).unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet 10.0.0.0/8 overlaps route 10.0.0.0/16 on node n2"
    );
}

#[test]
fn requested_subnet_with_host_bits_is_rejected() {
    let err = check_subnet(net("10.1.2.5/24"), &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet 10.1.2.5/24 is not a network address: did you mean 10.1.2.0/24?"
    );
}

/// Every aligned subnet of the pools, in allocation order.
fn candidates(cfg: &PoolConfig) -> Vec<Ipv4Net> {
    cfg.pools
        .iter()
        .flat_map(|p| p.subnets(cfg.mask_len).expect("valid mask"))
        .collect()
}

fn arb_config() -> impl Strategy<Value = PoolConfig> {
    let pool_lists = prop_oneof![
        Just(vec![net("10.0.0.0/20")]),
        Just(vec![net("10.0.16.0/22"), net("10.0.0.0/20")]),
        Just(vec![net("192.168.0.0/21"), net("10.0.0.0/22")]),
    ];
    (pool_lists, 22u8..=29).prop_map(|(pools, mask_len)| PoolConfig {
        pools,
        mask_len,
        pools6: Vec::new(),
    })
}

fn arb_occupied() -> impl Strategy<Value = Occupied> {
    let base = prop_oneof![Just(0x0a00_0000u32), Just(0xc0a8_0000u32)];
    (base, 0u32..0x8000, 14u8..=32).prop_map(|(base, offset, prefix)| {
        let net = Ipv4Net::new(Ipv4Addr::from(base + offset), prefix).expect("prefix <= 32");
        Occupied::network("x", net.trunc())
    })
}

proptest! {
    #[test]
    fn allocated_subnet_is_the_first_free_one_in_the_pools(
        cfg in arb_config(),
        occupied in prop::collection::vec(arb_occupied(), 0..40),
    ) {
        prop_assume!(cfg.validate().is_ok());
        let expected = candidates(&cfg)
            .into_iter()
            .find(|c| occupied.iter().all(|o| !overlaps(o.net, *c)));
        match allocate_subnet(&cfg, &occupied) {
            Ok(got) => {
                prop_assert_eq!(Some(got), expected);
                prop_assert_eq!(got.prefix_len(), cfg.mask_len);
                prop_assert!(cfg.pools.iter().any(|p| p.contains(&got)));
                prop_assert!(occupied.iter().all(|o| !overlaps(o.net, got)));
                prop_assert_eq!(check_subnet(got, &occupied), Ok(()));
            }
            Err(err) => {
                prop_assert_eq!(expected, None);
                let is_exhausted = matches!(err, IpamError::PoolExhausted { .. });
                prop_assert!(is_exhausted);
            }
        }
    }

    #[test]
    fn check_subnet_agrees_with_overlap(
        a in arb_occupied(),
        occupied in prop::collection::vec(arb_occupied(), 0..10),
    ) {
        let clash = occupied.iter().any(|o| overlaps(o.net, a.net));
        prop_assert_eq!(check_subnet(a.net, &occupied).is_err(), clash);
    }
}
