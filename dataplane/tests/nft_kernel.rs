//! The nftables encoder against the real kernel, in a scratch network namespace.

use shoal_dataplane::netns;
use shoal_dataplane::nft::{
    self, m, BaseChain, Chain, ChainType, CmpOp, Expr, Family, Hook, Rule, Table, Verdict,
};

fn root() -> bool {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("SHOAL_SKIP_PRIVILEGED").as_deref() == Ok("1") {
        eprintln!("SKIPPED: needs root");
        return false;
    }
    panic!("this test creates a network namespace and must run as root (or set SHOAL_SKIP_PRIVILEGED=1)");
}

struct Scratch(String);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

fn table(rules: usize) -> Table {
    let mut drop_rule = m::iifname(CmpOp::Eq, "shl-b4096");
    drop_rule.extend(m::oifname(CmpOp::Eq, "shl-b*"));
    drop_rule.extend(m::oifname(CmpOp::Neq, "shl-b4096"));
    drop_rule.extend(m::verdict(Verdict::Drop));
    let mut masq = m::ip_addr(false, CmpOp::Eq, "10.0.1.0".parse().unwrap(), 24);
    masq.extend(m::oifname(CmpOp::Neq, "shl-b4096"));
    masq.push(Expr::Masquerade);
    let mut dnat = m::l4proto(6);
    dnat.extend(m::dport(8080));
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
    Table {
        name: "shoaltest".into(),
        family: Family::Ip,
        chains: vec![
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
    }
}

#[test]
fn tables_are_created_replaced_skipped_and_removed_in_the_kernel() {
    if !root() {
        return;
    }
    let name = format!("shl-nfttest-{}", std::process::id());
    netns::create(&name).unwrap();
    let _scratch = Scratch(name.clone());
    let ns = netns::open(&name).unwrap();
    netns::run_in(&ns, || {
        assert_eq!(nft::table_userdata("shoaltest", Family::Ip).unwrap(), None);
        assert!(
            nft::ensure_table(&table(1), b"v1").unwrap(),
            "first apply changes"
        );
        assert_eq!(
            nft::table_userdata("shoaltest", Family::Ip)
                .unwrap()
                .as_deref(),
            Some(&b"v1"[..])
        );
        assert!(
            !nft::ensure_table(&table(1), b"v1").unwrap(),
            "same digest is skipped"
        );
        assert!(
            nft::ensure_table(&table(3), b"v2").unwrap(),
            "new digest replaces"
        );
        assert_eq!(
            nft::table_userdata("shoaltest", Family::Ip)
                .unwrap()
                .as_deref(),
            Some(&b"v2"[..])
        );
        assert!(nft::remove_table("shoaltest", Family::Ip).unwrap());
        assert!(!nft::remove_table("shoaltest", Family::Ip).unwrap());
        let mut bad = table(1);
        bad.chains[0].rules[0]
            .exprs
            .push(Expr::Verdict(Verdict::Jump("missing".into())));
        let err = nft::ensure_table(&bad, b"v3").unwrap_err().to_string();
        assert!(err.contains("add rule forward #1"), "{err}");
        assert_eq!(
            nft::table_userdata("shoaltest", Family::Ip).unwrap(),
            None,
            "a failed batch changes nothing"
        );
    })
    .unwrap();
}

/// The node's whole ruleset, as the reconciler makes it, is accepted by the kernel:
/// `fib daddr type local` in prerouting and output, jumps to per-port chains, DNAT
/// there, SNAT and masquerade in postrouting.
#[test]
fn the_node_ruleset_with_the_routing_mesh_loads_into_the_kernel() {
    use shoal_dataplane::lb::Published;
    use shoal_dataplane::overlay::{ruleset, NetworkPlan, NodeAddr, NodePlan};
    if !root() {
        return;
    }
    let name = format!("shl-nftmesh-{}", std::process::id());
    netns::create(&name).unwrap();
    let _scratch = Scratch(name.clone());
    let plan = NodePlan {
        local_ip: Some("198.18.0.1".parse().unwrap()),
        vxlan_port: 4789,
        networks: vec![NetworkPlan {
            name: "web".into(),
            vni: 4096,
            subnet: "10.0.1.0/24".parse().unwrap(),
            gateway: "10.0.1.1".parse().unwrap(),
            gateway_mac: [2, 0x42, 10, 0, 1, 1],
            mtu: 1450,
            internal: false,
            encrypted: false,
            remotes: vec![],
            node_addr: Some(NodeAddr {
                ip: "10.0.1.9".parse().unwrap(),
                mac: [2, 0x42, 10, 0, 1, 9],
            }),
        }],
        endpoints: vec![],
        published: vec![Published {
            service: "web".into(),
            protocol: 6,
            port: 8080,
            backends: vec![
                ("10.0.1.5".parse().unwrap(), 80),
                ("10.0.1.6".parse().unwrap(), 80),
            ],
            mesh: true,
        }],
        dns_intercept: vec!["198.18.0.250".parse().unwrap()],
    };
    let table = ruleset(&plan);
    let bridge = shoal_dataplane::overlay::bridge_ruleset(&plan);
    let ns = netns::open(&name).unwrap();
    netns::run_in(&ns, move || {
        assert!(nft::ensure_table(&table, b"mesh").unwrap());
        assert!(nft::ensure_table(&bridge, b"bridge").unwrap());
        assert!(nft::remove_table(&table.name, Family::Ip).unwrap());
        assert!(nft::remove_table(&bridge.name, Family::Bridge).unwrap());
    })
    .unwrap();
}
