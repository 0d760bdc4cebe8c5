use super::*;
use crate::nft::Expr;
use crate::overlay::plan::{sample_network, NodeAddr};
use crate::overlay::{bridge_ruleset, ruleset, ruleset6};

fn task6(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, i)
}

/// A dual-stack network with this node's address on it, an IPv6 underlay address, and
/// `web` publishing 8080 (TCP) from two tasks.
fn dual_plan(source_nat: bool) -> NodePlan {
    let mut n = sample_network(4096, false);
    n.gateway6 = Some("fd00:1::1/64".parse().unwrap());
    n.node_addr = Some(NodeAddr {
        ip: Some("10.0.0.9".parse().unwrap()),
        ip6: Some(task6(9)),
        mac: [2, 0x42, 10, 0, 0, 9],
    });
    NodePlan {
        local_ip: Some("fd00:5ea1::1".parse().unwrap()),
        networks: vec![n],
        published: vec![Port {
            service: "web".into(),
            protocol: 6,
            port: 8080,
            backends: Some(vec![("10.0.0.5".parse().unwrap(), 80)]),
            backends6: Some(vec![(task6(5), 80), (task6(6), 80)]),
            mesh: true,
            source_nat,
        }],
        ..Default::default()
    }
}

fn has(rule: &Rule, part: &[Expr]) -> bool {
    rule.exprs.windows(part.len()).any(|w| w == part)
}

#[test]
fn a_port_on_a_dual_stack_network_answers_over_ipv6_with_a_dnat_to_the_tasks_ipv6_addresses() {
    let plan = dual_plan(false);
    let t = ruleset_ip6(&plan);
    assert_eq!((t.family, t.name.as_str()), (Family::Ip6, NFT_TABLE));
    let chain = |name: &str| t.chains.iter().find(|c| c.name == name).unwrap();
    // The port's chain spreads over the IPv6 tasks, keeping the client's address.
    let port = &chain("pub-6-8080").rules[0];
    assert!(has(port, &exprs::set_mark_bits(MESH_PRESERVE_MARK)));
    assert!(matches!(
        port.exprs.last(),
        Some(Expr::Dnat {
            addr_reg: 1,
            port_reg: Some(12)
        })
    ));
    let map = &t.maps[0];
    assert_eq!(map.name, "pub-6-8080");
    let mut first = task6(5).octets().to_vec();
    first.extend([0, 80, 0, 0]);
    assert_eq!(map.elements[0].1, first);
    // The underlay address first, then any local address; the node's own connections
    // too, but for ::1.
    let publish = &chain("publish").rules;
    let underlay = exprs::ip6_daddr(CmpOp::Eq, "fd00:5ea1::1".parse().unwrap());
    assert!(has(&publish[1], &underlay), "{:?}", publish[1]);
    assert!(has(&publish[2], &exprs::daddr_local()));
    assert!(publish[0].comment.contains("DNS on the gateway"));
    assert!(has(&publish[0], &exprs::ip6_daddr(CmpOp::Eq, task6(1))));
    let local = &chain("publish-local").rules[1];
    assert!(has(
        local,
        &exprs::ip6_daddr(CmpOp::Neq, Ipv6Addr::LOCALHOST)
    ));
    // Unanswered SYNs expire early over IPv6 too.
    assert_eq!(t.timeouts.len(), 1);
    assert_eq!(chain("untracked-in").rules.len(), 1);
    // Mesh connections leave source-NATed to the node's IPv6 address on the network.
    let post = &chain("postrouting");
    assert_eq!(post.base.as_ref().unwrap().kind, ChainType::Nat);
    assert!(post.rules.iter().all(|r| has(r, &exprs::snat(task6(9)))));
    assert!(has(
        &post.rules[1],
        &exprs::addr_in(false, CmpOp::Eq, "fd00:1::".parse().unwrap(), 64)
    ));
    // The IPv4 table keeps its own: the IPv4 task, and no IPv6 address anywhere.
    let v4 = ruleset(&plan);
    assert!(v4.to_string().contains("10.0.0.5:80"), "{v4}");
    assert!(!v4.to_string().contains("fd00"), "{v4}");
}

#[test]
fn source_nat_marks_ipv6_connections_for_the_node_address() {
    let t = ruleset_ip6(&dual_plan(true));
    let port = t.chains.iter().find(|c| c.name == "pub-6-8080").unwrap();
    assert!(has(&port.rules[0], &exprs::set_mark_bits(MESH_MARK)));
}

#[test]
fn ipv4_only_ports_make_no_ipv6_table_and_open_nothing() {
    let mut plan = dual_plan(false);
    plan.published[0].backends6 = None;
    assert!(ruleset_ip6(&plan).chains.is_empty());
    assert!(!publishes_ipv6(&plan));
    let inet = ruleset6(&plan);
    assert!(inet
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .all(|r| !has(r, &exprs::ct_dnat())));
}

#[test]
fn translated_ipv6_connections_cross_the_bridge_and_frames_from_the_node_carry_its_mac() {
    let plan = dual_plan(false);
    let inet = ruleset6(&plan);
    let forward = &inet.chains[0].rules;
    // Accepted before the drops, both ways, never from or to another network.
    for (i, rule) in forward[..2].iter().enumerate() {
        assert!(has(rule, &exprs::ct_dnat()));
        assert!(rule.exprs.ends_with(&exprs::verdict(Verdict::Accept)));
        let other = if i == 0 {
            exprs::iifname(CmpOp::Neq, "shl-b*")
        } else {
            exprs::oifname(CmpOp::Neq, "shl-b*")
        };
        assert!(has(rule, &other), "{rule:?}");
    }
    assert!(forward[2..]
        .iter()
        .all(|r| r.exprs.ends_with(&exprs::verdict(Verdict::Drop))));
    let bridge = bridge_ruleset(&plan);
    let out = &bridge.chains[2].rules;
    assert_eq!(out.len(), 4, "IPv4 and IPv6: own address, kept clients");
    assert!(has(&out[2], &exprs::ether_type(0x86dd)));
    assert!(has(
        &out[2],
        &exprs::addr_in(false, CmpOp::Eq, task6(9).into(), 128)
    ));
    assert!(has(&out[3], &exprs::mark_bits(MESH_PRESERVE_MARK)));
}

/// [`dual_plan`] on an IPv6-only network: no IPv4 gateway, node address or tasks.
fn only6_plan(source_nat: bool) -> NodePlan {
    let mut plan = dual_plan(source_nat);
    let n = &mut plan.networks[0];
    n.gateway = None;
    n.node_addr = n.node_addr.map(|a| NodeAddr { ip: None, ..a });
    plan.published[0].backends = None;
    plan
}

#[test]
fn a_port_on_an_ipv6_only_network_answers_over_ipv6_alone() {
    for source_nat in [false, true] {
        let plan = only6_plan(source_nat);
        let t = ruleset_ip6(&plan);
        let port = t.chains.iter().find(|c| c.name == "pub-6-8080").unwrap();
        let mark = if source_nat {
            MESH_MARK
        } else {
            MESH_PRESERVE_MARK
        };
        assert!(has(&port.rules[0], &exprs::set_mark_bits(mark)));
        let post = t.chains.iter().find(|c| c.name == "postrouting").unwrap();
        assert_eq!(post.rules.len(), 2, "{post:?}");
        assert!(post.rules.iter().all(|r| has(r, &exprs::snat(task6(9)))));
        // Nothing IPv4 for it: no port, no source NAT, no IPv4 address on the bridge.
        let v4 = ruleset(&plan);
        assert!(
            !v4.chains.iter().any(|c| c.name.starts_with("pub-")),
            "{v4}"
        );
        assert!(!v4.to_string().contains("10.0.0.9"), "{v4}");
        assert!(publishes_ipv6(&plan));
        // Its frames carry the node MAC and IPv6 frames for it go up; nothing IPv4.
        let bridge = bridge_ruleset(&plan);
        let out = &bridge.chains[2].rules;
        assert_eq!(out.len(), 2, "IPv6 only: own address, kept clients");
        assert!(out.iter().all(|r| has(r, &exprs::ether_type(0x86dd))));
    }
}
