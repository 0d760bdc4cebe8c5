use super::*;

fn peer(node: &str, last: u8, ifname: &str) -> IngressPeer {
    IngressPeer {
        node: node.into(),
        ip: Some(Ipv4Addr::new(10, 0, 1, last)),
        ip6: None,
        mac: [2, 0x42, 10, 0, 1, last],
        ifname: ifname.into(),
    }
}

#[test]
fn each_ingress_node_gets_a_mark_from_its_mac_and_a_route_back_to_it() {
    let peers = [peer("n1", 9, "eth0"), peer("n3", 11, "eth0")];
    let c = chains(&peers, IpFamily::V4);
    assert_eq!(c.len(), 2);
    let (marking, routing) = (&c[0], &c[1]);
    let hooks = (
        marking.base.as_ref().unwrap(),
        routing.base.as_ref().unwrap(),
    );
    assert_eq!(
        (hooks.0.hook, hooks.0.kind),
        (Hook::Prerouting, ChainType::Filter)
    );
    assert_eq!(
        (hooks.1.hook, hooks.1.kind),
        (Hook::Output, ChainType::Route)
    );
    assert!(
        hooks.0.priority > -200,
        "after conntrack has the connection"
    );
    let n1 = mark(Ipv4Addr::new(10, 0, 1, 9).into());
    assert_eq!(n1, 0x0a00_0109);
    assert!(marking.rules[0].exprs.contains(&Expr::Cmp {
        sreg: 1,
        op: CmpOp::Eq,
        data: vec![2, 0x42, 10, 0, 1, 9]
    }));
    assert_eq!(
        marking.rules[0].exprs.last(),
        Some(&Expr::CtMarkSet { sreg: 1 })
    );
    assert_eq!(routing.rules[1].exprs[0], Expr::CtMark { dreg: 1 });
    assert!(routing.rules[1].comment.contains("n3"));
    assert_eq!(
        routes(&peers),
        vec![
            ReturnRoute {
                mark: n1,
                via: Ipv4Addr::new(10, 0, 1, 9).into(),
                ifname: "eth0".into()
            },
            ReturnRoute {
                mark: mark(Ipv4Addr::new(10, 0, 1, 11).into()),
                via: Ipv4Addr::new(10, 0, 1, 11).into(),
                ifname: "eth0".into()
            }
        ]
    );
    assert!(chains(&[], IpFamily::V4).is_empty(), "no peer, no chains");
    assert!(
        chains(&peers, IpFamily::V6).is_empty(),
        "no peer with an IPv6 address, no IPv6 chains"
    );
}

#[test]
fn the_diff_adds_routes_before_rules_and_removes_stale_rules_first() {
    let want = routes(&[peer("n1", 9, "eth0")]);
    let m = want[0].mark;
    let empty = diff(&want, &ObservedReturn::default());
    assert_eq!(
        empty,
        vec![
            ReturnChange::SetRoute(want[0].clone()),
            ReturnChange::AddRule(m)
        ]
    );
    let done = ObservedReturn {
        rules: vec![(m, m)],
        routes: vec![(m, Some(want[0].via), Some("eth0".into()))],
    };
    assert!(
        diff(&want, &done).is_empty(),
        "nothing to do when all is right"
    );
    // A node that went down: its rule goes first, then its route.
    let gone = diff(&[], &done);
    assert_eq!(
        gone,
        vec![
            ReturnChange::DelRule {
                fwmark: m,
                table: m
            },
            ReturnChange::DelRoute(m)
        ]
    );
    // A route via the wrong interface is replaced; the rule stays.
    let moved = ObservedReturn {
        rules: vec![(m, m)],
        routes: vec![(m, Some(want[0].via), Some("eth1".into()))],
    };
    assert_eq!(
        diff(&want, &moved),
        vec![ReturnChange::SetRoute(want[0].clone())]
    );
}

#[test]
fn marks_of_two_networks_never_collide() {
    let a = routes(&[peer("n1", 9, "eth0"), {
        let mut p = peer("n1", 9, "eth1");
        p.ip = Some(Ipv4Addr::new(10, 0, 2, 9));
        p
    }]);
    assert_eq!(a.len(), 2);
    assert_ne!(a[0].mark, a[1].mark);
}

#[test]
fn a_peer_on_a_dual_stack_network_gets_an_ipv6_route_with_the_same_mark() {
    let mut dual = peer("n1", 9, "eth0");
    dual.ip6 = Some("fd00:1::9".parse().unwrap());
    let r = routes(&[dual, peer("n3", 11, "eth0")]);
    let m = mark(Ipv4Addr::new(10, 0, 1, 9).into());
    let families: Vec<(IpFamily, u32)> = r.iter().map(|r| (r.family(), r.mark)).collect();
    assert_eq!(
        families,
        [
            (IpFamily::V4, m),
            (IpFamily::V4, mark(Ipv4Addr::new(10, 0, 1, 11).into())),
            (IpFamily::V6, m)
        ]
    );
    assert_eq!(r[2].via, "fd00:1::9".parse::<IpAddr>().unwrap());
    // Each family is diffed against its own rules and tables.
    let v6: Vec<ReturnRoute> = r
        .iter()
        .filter(|r| r.family() == IpFamily::V6)
        .cloned()
        .collect();
    assert_eq!(
        diff(&v6, &ObservedReturn::default()),
        vec![
            ReturnChange::SetRoute(r[2].clone()),
            ReturnChange::AddRule(m)
        ]
    );
}

#[test]
fn a_peer_on_an_ipv6_only_network_gets_an_ipv6_route_and_chains_only() {
    let only6 = |node: &str, last: u16| IngressPeer {
        node: node.into(),
        ip: None,
        ip6: Some(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, last)),
        mac: [2, 0x42, 0, 0, 0, last as u8],
        ifname: "eth0".into(),
    };
    let peers = [only6("n1", 9), only6("n3", 0xfd)];
    let r = routes(&peers);
    assert!(r.iter().all(|r| r.family() == IpFamily::V6), "{r:?}");
    assert_eq!(r.len(), 2);
    let marks: Vec<u32> = r.iter().map(|r| r.mark).collect();
    assert_eq!(
        marks,
        [0x8000_0009, 0x8000_00fd],
        "never table 253 (default)"
    );
    assert_eq!(r[0].via, "fd00:1::9".parse::<IpAddr>().unwrap());
    assert!(chains(&peers, IpFamily::V4).is_empty(), "nothing IPv4");
    let c = chains(&peers, IpFamily::V6);
    assert_eq!(c.len(), 2);
    assert!(c[0].rules[0].exprs.contains(&Expr::Immediate {
        dreg: 1,
        data: 0x8000_0009u32.to_ne_bytes().to_vec()
    }));
    assert!(c[1].rules[1].comment.contains("fd00:1::fd"));
    // A dual-stack peer keeps its IPv4 mark in both families.
    let mut dual = peer("n2", 7, "eth0");
    dual.ip6 = Some("fd00:1::7".parse().unwrap());
    assert_eq!(dual.key(), Some(IpAddr::from([10, 0, 1, 7])));
}
