//! The nftables encoder against the real kernel, in a scratch network namespace.

use shoal_dataplane::netns;
use shoal_dataplane::nft::{
    self, exprs, BaseChain, Chain, ChainType, CmpOp, Expr, Family, Hook, Rule, Table, Verdict,
};

/// Panics unless the test may create network namespaces (root).
fn require_root() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test creates a network namespace and must run as root (or build it with SHOAL_SKIP_PRIVILEGED=1 to have it ignored)");
    }
}

struct Scratch(String);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

fn table(rules: usize) -> Table {
    let mut drop_rule = exprs::iifname(CmpOp::Eq, "shl-b4096");
    drop_rule.extend(exprs::oifname(CmpOp::Eq, "shl-b*"));
    drop_rule.extend(exprs::oifname(CmpOp::Neq, "shl-b4096"));
    drop_rule.extend(exprs::verdict(Verdict::Drop));
    let mut masq = exprs::ip_addr(false, CmpOp::Eq, "10.0.1.0".parse().unwrap(), 24);
    masq.extend(exprs::oifname(CmpOp::Neq, "shl-b4096"));
    masq.push(Expr::Masquerade);
    let mut dnat = exprs::l4proto(6);
    dnat.extend(exprs::dport(8080));
    dnat.push(Expr::Numgen {
        dreg: 1,
        modulus: 2,
        random: true,
    });
    dnat.push(Expr::Immediate {
        dreg: 2,
        data: vec![10, 0, 1, 5],
    });
    dnat.push(Expr::Immediate {
        dreg: 3,
        data: 80u16.to_be_bytes().to_vec(),
    });
    dnat.push(Expr::Dnat {
        addr_reg: 2,
        port_reg: Some(3),
    });
    Table::with_chains(
        "shoaltest",
        Family::Ip,
        vec![
            Chain {
                name: "forward".into(),
                base: Some(BaseChain {
                    hook: Hook::Forward,
                    kind: ChainType::Filter,
                    priority: 0,
                    accept: true,
                }),
                rules: (0..rules)
                    .map(|i| Rule {
                        exprs: drop_rule.clone(),
                        comment: format!("isolation {i}"),
                    })
                    .collect(),
            },
            Chain {
                name: "post".into(),
                base: Some(BaseChain {
                    hook: Hook::Postrouting,
                    kind: ChainType::Nat,
                    priority: 100,
                    accept: true,
                }),
                rules: vec![Rule {
                    exprs: masq,
                    comment: "egress".into(),
                }],
            },
            Chain {
                name: "pre".into(),
                base: Some(BaseChain {
                    hook: Hook::Prerouting,
                    kind: ChainType::Nat,
                    priority: -100,
                    accept: true,
                }),
                rules: vec![Rule {
                    exprs: dnat,
                    comment: "publish".into(),
                }],
            },
        ],
    )
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn tables_are_created_repaired_skipped_and_removed_in_the_kernel() {
    require_root();
    let name = format!("shl-nfttest-{}", std::process::id());
    netns::create(&name).unwrap();
    let _scratch = Scratch(name.clone());
    let ns = netns::open(&name).unwrap();
    netns::run_in(&ns, || {
        assert!(nft::read_table("shoaltest", Family::Ip).unwrap().is_none());
        assert!(nft::ensure_table(&table(1)).unwrap(), "first apply changes");
        let back = nft::read_table("shoaltest", Family::Ip).unwrap().unwrap();
        assert!(!back.foreign, "shoal's own comments are read back");
        assert!(back.matches(&table(1)), "read back as written: {back:?}");
        assert!(!back.matches(&table(3)));
        assert!(
            !nft::ensure_table(&table(1)).unwrap(),
            "the same table is left alone"
        );
        assert!(
            nft::ensure_table(&table(3)).unwrap(),
            "a changed table is replaced"
        );
        assert!(nft::read_table("shoaltest", Family::Ip)
            .unwrap()
            .unwrap()
            .matches(&table(3)));

        // A chain flushed by hand (what `nft flush chain ip shoaltest forward` does)
        // is noticed and repaired.
        let mut flushed = table(3);
        flushed.chains[0].rules.clear();
        assert!(nft::ensure_table(&flushed).unwrap());
        assert!(
            nft::ensure_table(&table(3)).unwrap(),
            "a flushed chain comes back"
        );
        assert!(!nft::ensure_table(&table(3)).unwrap());

        // A failed batch changes nothing: the table stays as it was.
        let mut bad = table(1);
        bad.chains[0].rules[0]
            .exprs
            .push(Expr::Verdict(Verdict::Jump("missing".into())));
        let err = nft::ensure_table(&bad).unwrap_err().to_string();
        assert!(err.contains("add rule forward #1"), "{err}");
        assert!(
            nft::read_table("shoaltest", Family::Ip)
                .unwrap()
                .unwrap()
                .matches(&table(3)),
            "a failed batch changes nothing"
        );

        assert!(nft::remove_table("shoaltest", Family::Ip).unwrap());
        assert!(!nft::remove_table("shoaltest", Family::Ip).unwrap());
        assert!(!nft::table_exists("shoaltest", Family::Ip).unwrap());
    })
    .unwrap();
}

/// Load balancing's maps and its conntrack timeout policy round-trip through the
/// kernel: written, read back equal, and a changed backend set is noticed.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn vip_maps_and_timeout_policies_round_trip_through_the_kernel() {
    use shoal_dataplane::nat_lb::{vip_table, Vip};
    require_root();
    let name = format!("shl-nftvip-{}", std::process::id());
    netns::create(&name).unwrap();
    let _scratch = Scratch(name.clone());
    let vip = |backends: &[&str]| Vip {
        service: "web".into(),
        vip: "10.0.1.2".parse().unwrap(),
        backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
    };
    let two = vip_table(&[vip(&["10.0.1.5", "10.0.1.6"])], Some(30));
    let three = vip_table(&[vip(&["10.0.1.5", "10.0.1.6", "10.0.1.7"])], Some(30));
    let no_idle = vip_table(&[vip(&["10.0.1.5", "10.0.1.6"])], None);
    assert_eq!(two.maps.len(), 1);
    assert!(!two.timeouts.is_empty());
    let ns = netns::open(&name).unwrap();
    netns::run_in(&ns, move || {
        assert!(nft::ensure_table(&two).unwrap());
        let back = nft::read_table(&two.name, Family::Ip).unwrap().unwrap();
        assert_eq!(back.table.maps.len(), 1, "{back:?}");
        assert!(back.matches(&two), "{back:?}");
        assert!(
            !nft::ensure_table(&two).unwrap(),
            "maps and policies compare equal"
        );
        assert!(!back.matches(&three), "a new backend is a different map");
        assert!(
            !back.matches(&no_idle),
            "the timeout policy is part of the table"
        );
        assert!(nft::ensure_table(&three).unwrap());
        assert!(!nft::ensure_table(&three).unwrap());
        assert!(nft::ensure_table(&no_idle).unwrap());
        assert!(!nft::ensure_table(&no_idle).unwrap());
        // The routing mesh's return path (conntrack marks, a route chain) reads back
        // equal too, so it is not rewritten on every pass.
        let mut with_return = no_idle.clone();
        with_return
            .chains
            .extend(shoal_dataplane::return_path::chains(
                &[shoal_dataplane::return_path::IngressPeer {
                    node: "n1".into(),
                    ip: Some("10.0.1.3".parse().unwrap()),
                    ip6: None,
                    mac: [2, 0x42, 10, 0, 1, 3],
                    ifname: "eth0".into(),
                }],
                shoal_dataplane::return_path::IpFamily::V4,
            ));
        assert!(nft::ensure_table(&with_return).unwrap());
        assert!(!nft::ensure_table(&with_return).unwrap(), "read back equal");
        assert!(nft::remove_table(&two.name, Family::Ip).unwrap());
    })
    .unwrap();
}

/// An IPv6 VIP's `ip6` table (IPv6 DNAT, a map of IPv6 addresses, its timeout
/// policies) is accepted by the kernel and reads back equal beside the `ip` one of the
/// same name, so it is not rewritten on every pass.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn ipv6_vip_tables_round_trip_through_the_kernel() {
    use shoal_dataplane::nat_lb::{vip_table, vip_table6, Vip, Vip6};
    require_root();
    let name = format!("shl-nftvip6-{}", std::process::id());
    netns::create(&name).unwrap();
    let _scratch = Scratch(name.clone());
    let vip = |backends: &[&str]| Vip6 {
        service: "web".into(),
        vip: "fd00:1::9".parse().unwrap(),
        backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
    };
    let two = vip_table6(&[vip(&["fd00:1::5", "fd00:1::6"])], Some(30));
    let one = vip_table6(&[vip(&["fd00:1::5"])], None);
    let none = vip_table6(&[vip(&[])], None);
    let v4 = vip_table(
        &[Vip {
            service: "web".into(),
            vip: "10.0.1.2".parse().unwrap(),
            backends: vec!["10.0.1.5".parse().unwrap()],
        }],
        None,
    );
    let ns = netns::open(&name).unwrap();
    netns::run_in(&ns, move || {
        assert!(nft::ensure_table(&v4).unwrap());
        for t in [&two, &one, &none] {
            assert!(nft::ensure_table(t).unwrap(), "{t}");
            let back = nft::read_table(&t.name, Family::Ip6).unwrap().unwrap();
            assert!(back.matches(t), "{t}\n{back:?}");
            assert!(!nft::ensure_table(t).unwrap(), "read back equal: {t}");
        }
        assert!(
            !nft::ensure_table(&v4).unwrap(),
            "the ip table of the same name is left alone"
        );
        assert!(nft::remove_table(&two.name, Family::Ip6).unwrap());
        assert!(nft::table_exists(&v4.name, Family::Ip).unwrap());
    })
    .unwrap();
}

/// The node's whole ruleset, as the reconciler makes it, is accepted by the kernel:
/// `fib daddr type local` in prerouting and output, jumps to per-port chains, DNAT
/// there, SNAT and masquerade in postrouting.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn the_node_ruleset_with_the_routing_mesh_loads_into_the_kernel() {
    use shoal_dataplane::nat_lb::Published;
    use shoal_dataplane::overlay::{ruleset, NetworkPlan, NodeAddr, NodePlan};
    require_root();
    let name = format!("shl-nftmesh-{}", std::process::id());
    netns::create(&name).unwrap();
    let _scratch = Scratch(name.clone());
    let plan = NodePlan {
        local_ip: Some("198.18.0.1".parse().unwrap()),
        vxlan_port: 4789,
        networks: vec![NetworkPlan {
            name: "web".into(),
            vni: 4096,
            gateway: Some("10.0.1.1/24".parse().unwrap()),
            gateway_mac: [2, 0x42, 10, 0, 1, 1],
            gateway6: Some("fd00:1::1/64".parse().unwrap()),
            mtu: 1450,
            internal: false,
            encrypted: false,
            remotes: vec![],
            node_addr: Some(NodeAddr {
                ip: Some("10.0.1.9".parse().unwrap()),
                ip6: Some("fd00:1::9".parse().unwrap()),
                mac: [2, 0x42, 10, 0, 1, 9],
            }),
        }],
        endpoints: vec![],
        published: vec![
            Published {
                service: "web".into(),
                protocol: 6,
                port: 8080,
                backends: Some(vec![
                    ("10.0.1.5".parse().unwrap(), 80),
                    ("10.0.1.6".parse().unwrap(), 80),
                ]),
                backends6: Some(vec![
                    ("fd00:1::5".parse().unwrap(), 80),
                    ("fd00:1::6".parse().unwrap(), 80),
                ]),
                mesh: true,
                source_nat: false,
            },
            // Host mode with no task on this node: nothing to draw from.
            Published {
                service: "local".into(),
                protocol: 6,
                port: 8081,
                backends: Some(vec![]),
                backends6: None,
                mesh: false,
                source_nat: false,
            },
        ],
        dns_intercept: vec!["198.18.0.250".parse().unwrap()],
        lb_idle_timeout: Some(900),
    };
    let table = ruleset(&plan);
    let bridge = shoal_dataplane::overlay::bridge_ruleset(&plan);
    // Over IPv6 too: the ports' ip6 table, and the inet one letting translated
    // connections through (`ct status dnat`).
    let ip6 = shoal_dataplane::overlay::ruleset_ip6(&plan);
    let inet = shoal_dataplane::overlay::ruleset6(&plan);
    assert!(!ip6.chains.is_empty());
    let ns = netns::open(&name).unwrap();
    netns::run_in(&ns, move || {
        for t in [&table, &bridge, &ip6, &inet] {
            assert!(nft::ensure_table(t).unwrap(), "{} {:?}", t.name, t.family);
        }
        for t in [&table, &bridge, &ip6, &inet] {
            assert!(
                !nft::ensure_table(t).unwrap(),
                "read back equal: {:?}",
                t.family
            );
        }
        for t in [&table, &bridge, &ip6, &inet] {
            assert!(nft::remove_table(&t.name, t.family).unwrap());
        }
    })
    .unwrap();
}
