use super::*;
use std::net::Ipv4Addr;

use crate::overlay::plan::{sample_network as net, NodeAddr};
use crate::overlay::MESH_MARK;

fn mesh_plan() -> NodePlan {
    let mut n = net(4096, false);
    n.node_addr = Some(NodeAddr {
        ip: Some("10.0.0.9".parse().unwrap()),
        ip6: None,
        mac: [2, 0x42, 10, 0, 0, 9],
    });
    NodePlan {
        local_ip: Some("198.18.0.1".parse().unwrap()),
        networks: vec![n, net(4097, false)],
        published: vec![
            crate::nat_lb::Published {
                service: "web".into(),
                protocol: 17,
                port: 8053,
                backends: Some(vec![("10.0.0.5".parse().unwrap(), 53)]),
                backends6: None,
                mesh: true,
                source_nat: true,
            },
            crate::nat_lb::Published {
                service: "local".into(),
                protocol: 6,
                port: 8080,
                backends: Some(vec![("10.0.0.6".parse().unwrap(), 80)]),
                backends6: None,
                mesh: false,
                source_nat: false,
            },
        ],
        ..Default::default()
    }
}

#[test]
fn mesh_ports_are_marked_and_leave_source_natted_to_the_node_address() {
    let t = ruleset(&mesh_plan());
    let chain = |name: &str| t.chains.iter().find(|c| c.name == name).unwrap();
    let mark = exprs::set_mark_bits(MESH_MARK);
    let marked = |r: &Rule| r.exprs.windows(mark.len()).any(|w| w == mark.as_slice());
    let mesh = &chain("pub-17-8053").rules;
    let host = &chain("pub-6-8080").rules;
    assert_eq!((mesh.len(), host.len()), (1, 1));
    assert!(marked(&mesh[0]), "the mesh port is marked");
    assert!(!marked(&host[0]), "host mode is not");
    assert!(mesh[0].exprs.contains(&Expr::Immediate {
        dreg: 3,
        data: 53u16.to_be_bytes().to_vec()
    }));
    let post = &chain("postrouting").rules;
    let mut snat = exprs::mark_bits(MESH_MARK);
    snat.extend(exprs::oifname(CmpOp::Eq, "shl-b4096"));
    snat.extend(exprs::snat("10.0.0.9".parse::<Ipv4Addr>().unwrap()));
    assert_eq!(post[0].exprs, snat, "source NAT comes before egress");
    assert_eq!(
        post.iter()
            .filter(|r| r.exprs.contains(&Expr::Snat { addr_reg: 1 }))
            .count(),
        2,
        "only the network with a node address (src=nat, and its own clients)"
    );
}

/// src=preserve: no source NAT for clients from outside the network; the frames
/// leave with the node's MAC so the task's sandbox can send replies back here.
#[test]
fn preserved_ports_are_marked_apart_and_natted_only_for_the_networks_own_clients() {
    let mut plan = mesh_plan();
    plan.published[0].source_nat = false;
    let t = ruleset(&plan);
    let chain = |name: &str| t.chains.iter().find(|c| c.name == name).unwrap();
    let has = |r: &Rule, e: &[Expr]| r.exprs.windows(e.len()).any(|w| w == e);
    let rule = &chain("pub-17-8053").rules[0];
    assert!(has(rule, &exprs::set_mark_bits(MESH_PRESERVE_MARK)));
    assert!(!has(rule, &exprs::set_mark_bits(MESH_MARK)));
    let post = &chain("postrouting").rules;
    let preserved: Vec<&Rule> = post
        .iter()
        .filter(|r| has(r, &exprs::mark_bits(MESH_PRESERVE_MARK)))
        .collect();
    assert_eq!(
        preserved.len(),
        1,
        "one source NAT, for the network's own clients"
    );
    let subnet = exprs::ip_addr(false, CmpOp::Eq, "10.0.0.0".parse().unwrap(), 24);
    assert!(has(preserved[0], &subnet), "only from the network's subnet");
    let bridge = bridge_ruleset(&plan);
    let out = &bridge
        .chains
        .iter()
        .find(|c| c.name == "output")
        .unwrap()
        .rules;
    let stamp = out
        .iter()
        .find(|r| has(r, &exprs::mark_bits(MESH_PRESERVE_MARK)))
        .expect("preserved connections are stamped with the node MAC");
    assert!(stamp
        .exprs
        .ends_with(&exprs::set_ether_addr(false, [2, 0x42, 10, 0, 0, 9])));
    let to_tasks = exprs::ip_addr(true, CmpOp::Eq, "10.0.0.0".parse().unwrap(), 24);
    assert!(has(stamp, &to_tasks), "frames to the network's tasks only");
}

/// Docker's routing mesh answers on every local address (`-m addrtype --dst-type
/// LOCAL`), also for connections the node makes itself, except loopback ones.
#[test]
fn published_ports_answer_on_every_local_address_arriving_and_from_the_node() {
    let t = ruleset(&mesh_plan());
    let chain = |name: &str| t.chains.iter().find(|c| c.name == name).unwrap();
    let arriving = &chain("publish").rules;
    let local = &chain("publish-local").rules;
    let underlay = exprs::ip_addr(true, CmpOp::Eq, "198.18.0.1".parse().unwrap(), 32);
    assert_eq!(
        arriving
            .iter()
            .filter(|r| r.exprs.starts_with(&underlay))
            .count(),
        2,
        "the underlay address is matched first, without a route lookup"
    );
    assert_eq!(
        chain("publish-local").base.as_ref().map(|b| b.hook),
        Some(Hook::Output)
    );
    for rules in [arriving, local] {
        let jumps: Vec<&Rule> = rules
            .iter()
            .filter(|r| {
                r.exprs
                    .iter()
                    .any(|e| matches!(e, Expr::Verdict(Verdict::Jump(_))))
            })
            .collect();
        let fib = exprs::daddr_local();
        let with_fib = |r: &&&Rule| r.exprs.windows(fib.len()).any(|w| w == fib.as_slice());
        assert_eq!(
            jumps.iter().filter(with_fib).count(),
            2,
            "every port, any local address"
        );
        assert!(jumps
            .iter()
            .all(|j| !j.exprs.iter().any(|e| matches!(e, Expr::Dnat { .. }))));
    }
    let loopback = exprs::ip_addr(true, CmpOp::Neq, Ipv4Addr::new(127, 0, 0, 0), 8);
    assert!(local
        .iter()
        .filter(|r| r.comment.contains("published"))
        .all(|r| r.exprs.starts_with(&loopback)));
    // DNS on each gateway comes first and is accepted untouched.
    let text = t.to_string();
    assert!(
        text.contains("n4096: DNS on the gateway stays DNS"),
        "{text}"
    );
    assert!(arriving[0].comment.contains("DNS"));
}

/// Docker's embedded DNS forwards from the container to the host's resolvers; those
/// queries go to the network's resolver, which knows the cluster's names.
#[test]
fn dns_to_the_nodes_upstreams_is_answered_by_the_networks_resolver() {
    let mut plan = mesh_plan();
    plan.dns_intercept = vec!["192.0.2.53".parse().unwrap()];
    let t = ruleset(&plan);
    let arriving = &t.chains.iter().find(|c| c.name == "publish").unwrap().rules;
    let intercepts: Vec<&Rule> = arriving
        .iter()
        .filter(|r| r.comment.contains("answered by the network's resolver"))
        .collect();
    assert_eq!(intercepts.len(), 2, "one per network");
    let first = &intercepts[0].exprs;
    assert!(first.starts_with(&exprs::iifname(CmpOp::Eq, "shl-b4096")));
    assert!(first.contains(&Expr::Immediate {
        dreg: 2,
        data: vec![10, 0, 0, 1]
    }));
    assert!(matches!(
        first.last(),
        Some(Expr::Dnat { port_reg: None, .. })
    ));
    assert!(arriving[0]
        .comment
        .contains("answered by the network's resolver"));
}

#[test]
fn a_port_without_tasks_here_has_an_empty_chain_and_no_map() {
    let mut plan = mesh_plan();
    plan.published.push(crate::nat_lb::Published {
        service: "elsewhere".into(),
        protocol: 6,
        port: 8081,
        backends: Some(vec![]),
        backends6: None,
        mesh: false,
        source_nat: false,
    });
    let t = ruleset(&plan);
    let chain = t.chains.iter().find(|c| c.name == "pub-6-8081").unwrap();
    assert!(chain.rules.is_empty());
    assert!(t.maps.iter().all(|m| m.name != "pub-6-8081"));
}

#[test]
fn two_services_on_one_host_port_share_its_chain() {
    let mut plan = mesh_plan();
    plan.published.push(crate::nat_lb::Published {
        service: "twin".into(),
        protocol: 6,
        port: 8080,
        backends: Some(vec![("10.0.0.7".parse().unwrap(), 80)]),
        backends6: None,
        mesh: false,
        source_nat: false,
    });
    let t = ruleset(&plan);
    let chains: Vec<&str> = t
        .chains
        .iter()
        .filter(|c| c.name.starts_with("pub-"))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(chains, ["pub-6-8080", "pub-17-8053"]);
    let shared = t.chains.iter().find(|c| c.name == "pub-6-8080").unwrap();
    assert_eq!(shared.rules.len(), 1, "one draw over both services' tasks");
    assert!(shared.rules[0].comment.contains("twin"));
    let map = t.maps.iter().find(|m| m.name == "pub-6-8080").unwrap();
    let web = plan.published.iter().filter(|p| p.port == 8080);
    let tasks: usize = web.flat_map(|p| p.backends.as_ref()).map(Vec::len).sum();
    assert_eq!(map.elements.len(), tasks);
}

#[test]
fn the_bridge_table_lifts_frames_for_the_node_mac_and_stamps_its_own() {
    let t = bridge_ruleset(&mesh_plan());
    assert_eq!(t.family, Family::Bridge);
    let chain = |name: &str| &t.chains.iter().find(|c| c.name == name).unwrap().rules;
    let (pre, out) = (chain("prerouting"), chain("output"));
    assert_eq!((pre.len(), out.len()), (1, 2));
    let mut up = exprs::ether_addr(true, [2, 0x42, 10, 0, 0, 9]);
    up.extend(exprs::set_ether_addr(true, [2, 0x42, 10, 0, 0, 1]));
    up.extend(exprs::set_pkttype_host());
    assert_eq!(pre[0].exprs, up);
    assert!(out[0]
        .exprs
        .ends_with(&exprs::set_ether_addr(false, [2, 0x42, 10, 0, 0, 9])));
    let none = bridge_ruleset(&NodePlan::default());
    assert!(none.chains.iter().all(|c| c.rules.is_empty()));
}

/// With br_netfilter loaded, every bridged frame would be tracked once the node uses
/// NAT; only frames for a gateway or node MAC (routed, maybe NATed) need it.
#[test]
fn frames_bridged_between_endpoints_are_not_tracked() {
    let t = bridge_ruleset(&mesh_plan());
    let untracked = t.chains.iter().find(|c| c.name == "untracked").unwrap();
    assert_eq!(untracked.base.as_ref().map(|b| b.priority), Some(-300));
    let rule = &untracked.rules[0].exprs;
    assert!(rule.starts_with(&exprs::iifname(CmpOp::Eq, "shl-*")));
    assert_eq!(rule.last(), Some(&Expr::Notrack));
    for mac in [[2, 0x42, 10, 0, 0, 1], [2, 0x42, 10, 0, 0, 9]] {
        let not = ether_daddr_not(mac);
        assert_eq!(
            rule.windows(not.len())
                .filter(|w| *w == not.as_slice())
                .count(),
            1,
            "{mac:?} once"
        );
    }
    let mut plan = mesh_plan();
    plan.vxlan_port = 4789;
    let ip = ruleset(&plan);
    let vxlan = ip.chains.iter().find(|c| c.name == "untracked-in").unwrap();
    assert!(vxlan.rules[0].exprs.contains(&Expr::Notrack));
}

#[test]
fn plain_networks_masquerade_and_internal_ones_are_closed() {
    let plan = NodePlan {
        networks: vec![net(4096, false), net(4097, true)],
        ..Default::default()
    };
    let t = ruleset(&plan);
    let text = t.to_string();
    assert!(text.contains("n4096: egress"), "{text}");
    assert!(!text.contains("n4097: egress"), "{text}");
    assert!(text.contains("n4097: internal, no egress"), "{text}");
    assert!(text.contains("n4097: internal, no ingress"), "{text}");
    assert!(
        text.contains("n4096: isolated from other networks"),
        "{text}"
    );
}

/// A published TCP port's unanswered SYN expires in seconds (a SYN to a task on a node
/// that vanished must not pin the client's port to it for the kernel's 120 s); UDP
/// ports get a policy only with an idle timeout, and one policy serves every port.
#[test]
fn published_tcp_connections_get_a_short_syn_timeout() {
    let mut plan = mesh_plan();
    let t = ruleset(&plan);
    assert_eq!(t.timeouts.len(), 1, "{:?}", t.timeouts);
    assert_eq!(t.timeouts[0].l4proto, 6);
    let unacked = crate::nat_lb::UNACKNOWLEDGED_SECS;
    assert_eq!(
        t.timeouts[0].policy,
        vec![
            (
                crate::nft::CTA_TIMEOUT_TCP_SYN_SENT,
                crate::nat_lb::SYN_SENT_SECS
            ),
            (crate::nft::CTA_TIMEOUT_TCP_RETRANS, unacked),
            (crate::nft::CTA_TIMEOUT_TCP_UNACK, unacked),
        ]
    );
    let raw = t.chains.iter().find(|c| c.name == "untracked-in").unwrap();
    let attached: Vec<&Rule> = raw
        .rules
        .iter()
        .filter(|r| r.exprs.iter().any(|e| matches!(e, Expr::CtTimeout(_))))
        .collect();
    assert_eq!(attached.len(), 1, "the TCP port only");
    assert!(attached[0]
        .exprs
        .windows(2)
        .any(|w| w == exprs::dport(8080).as_slice()));

    plan.lb_idle_timeout = Some(30);
    plan.published[1].port = 8081;
    plan.published.push(crate::nat_lb::Published {
        port: 8082,
        ..plan.published[1].clone()
    });
    let t = ruleset(&plan);
    assert_eq!(
        t.timeouts.len(),
        2,
        "one TCP and one UDP policy: {:?}",
        t.timeouts
    );
    let tcp = t.timeouts.iter().find(|p| p.l4proto == 6).unwrap();
    assert_eq!(
        tcp.policy,
        vec![
            (
                crate::nft::CTA_TIMEOUT_TCP_SYN_SENT,
                crate::nat_lb::SYN_SENT_SECS
            ),
            (crate::nft::CTA_TIMEOUT_TCP_ESTABLISHED, 30),
            (crate::nft::CTA_TIMEOUT_TCP_RETRANS, unacked),
            (crate::nft::CTA_TIMEOUT_TCP_UNACK, unacked),
        ]
    );
}

#[test]
fn an_ipv6_only_network_gets_no_ipv4_rules_but_encryption_still_holds() {
    let mut only6 = net(4096, true);
    only6.gateway = None;
    only6.gateway6 = Some("fd00:1::1/64".parse().unwrap());
    only6.encrypted = true;
    let plan = NodePlan {
        local_ip: Some("198.18.0.1".parse().unwrap()),
        vxlan_port: 4789,
        networks: vec![only6, net(4097, false)],
        dns_intercept: vec!["192.0.2.53".parse().unwrap()],
        ..Default::default()
    };
    let t = ruleset(&plan);
    let rules: Vec<&Rule> = t.chains.iter().flat_map(|c| &c.rules).collect();
    assert!(
        rules
            .iter()
            .filter(|r| r.comment.starts_with("n4096"))
            .all(|r| r.comment.contains("cleartext VXLAN refused")),
        "only the underlay's cleartext VXLAN is refused: {rules:#?}"
    );
    assert!(rules.iter().any(|r| r.comment.starts_with("n4096")));
    assert!(
        rules.iter().any(|r| r.comment == "n4097: egress"),
        "the IPv4 network beside it keeps its rules"
    );
    let b = bridge_ruleset(&plan);
    assert!(b
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .all(|r| !r.comment.starts_with("n4096")));
    // Its IPv6 rules are where they are for dual-stack networks.
    let six = crate::overlay::rules6::ruleset6(&plan);
    assert_eq!(six.chains[0].rules.len(), 2, "kept inside");
    assert_eq!(six.chains[1].rules.len(), 1, "internal: only the gateway");
}
