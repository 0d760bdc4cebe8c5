//! Dual-stack networks in the state machine: IPv6 subnets, leases and bad input.

use std::net::Ipv6Addr;

use super::super::tests::{attach, cluster, create, endpoint, named, run};
use super::*;
use crate::ids::NodeId;
use crate::state::{Command, NetworkSpec, NodeReport};

fn v6(name: &str) -> NetworkSpec {
    NetworkSpec {
        ipv6: true,
        ..named(name)
    }
}

fn err(s: &mut ClusterState, spec: NetworkSpec) -> String {
    create(s, "bbbbbbbb01", spec).unwrap_err().to_string()
}

#[test]
fn ipv6_networks_get_successive_64s_of_the_cluster_ula() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", v6("a")).unwrap();
    create(&mut s, "aaaaaaaa02", named("plain")).unwrap();
    create(&mut s, "aaaaaaaa03", v6("b")).unwrap();
    let ula = cluster_ula("c");
    assert_eq!(ula.prefix_len(), 48);
    assert_eq!(ula.network().octets()[0], 0xfd);
    let a = s.networks["a"].space6.clone().unwrap();
    let b = s.networks["b"].space6.clone().unwrap();
    assert_eq!(a.subnet().network(), ula.network());
    assert_eq!(a.subnet().prefix_len(), 64);
    assert_eq!(
        u128::from(b.subnet().network()) - u128::from(a.subnet().network()),
        1u128 << 64
    );
    assert_eq!(a.gateway(), Ipv6Addr::from(u128::from(ula.network()) + 1));
    assert!(s.networks["plain"].space6.is_none());
}

#[test]
fn configured_pools6_and_explicit_subnets_are_used() {
    let mut s = cluster();
    s.addr_pools.pools6 = vec!["2001:db8:100::/56".parse().unwrap()];
    create(&mut s, "aaaaaaaa01", v6("a")).unwrap();
    let explicit = NetworkSpec {
        subnet6: Some("fd00:77::/64".parse().unwrap()),
        gateway6: Some("fd00:77::fe".parse().unwrap()),
        ip_range6: Some("fd00:77::100/120".parse().unwrap()),
        ..v6("b")
    };
    create(&mut s, "aaaaaaaa02", explicit).unwrap();
    let a = s.networks["a"].space6.clone().unwrap();
    assert_eq!(a.subnet().to_string(), "2001:db8:100::/64");
    let b = s.networks["b"].space6.clone().unwrap();
    assert_eq!(b.gateway().to_string(), "fd00:77::fe");
    let e = endpoint(attach(&mut s, "b", 1, "/run/netns/x").unwrap());
    assert_eq!(e.ip6.unwrap().to_string(), "fd00:77::100");
}

#[test]
fn bad_ipv6_input_is_refused_clearly() {
    let mut s = cluster();
    create(
        &mut s,
        "aaaaaaaa01",
        NetworkSpec {
            subnet6: Some("fd00:1::/64".parse().unwrap()),
            ..v6("taken")
        },
    )
    .unwrap();
    let overlap = NetworkSpec {
        subnet6: Some("fd00:1::/48".parse().unwrap()),
        ..v6("x")
    };
    assert_eq!(
        err(&mut s, overlap),
        "subnet fd00:1::/48 overlaps network \"taken\" (fd00:1::/64)"
    );
    let small = NetworkSpec {
        subnet6: Some("fd00:2::/127".parse().unwrap()),
        ..v6("x")
    };
    assert!(err(&mut s, small).contains("IPv6 subnet fd00:2::/127 is too small"));
    let without_flag = NetworkSpec {
        subnet6: Some("fd00:2::/64".parse().unwrap()),
        ..named("x")
    };
    assert!(err(&mut s, without_flag).contains("add --ipv6"));
    let orphan_gateway = NetworkSpec {
        gateway6: Some("fd00:2::1".parse().unwrap()),
        ..v6("x")
    };
    assert!(err(&mut s, orphan_gateway).contains("gateway fd00:2::1 has no IPv6 subnet"));
    let outside = NetworkSpec {
        subnet6: Some("fd00:2::/64".parse().unwrap()),
        gateway6: Some("fd00:3::1".parse().unwrap()),
        ..v6("x")
    };
    assert!(err(&mut s, outside).contains("gateway fd00:3::1 is outside subnet fd00:2::/64"));
    assert!(!s.networks.contains_key("x"), "nothing half made");
}

#[test]
fn node_ipv6_routes_are_not_shadowed() {
    let mut s = cluster();
    let ula = cluster_ula("c");
    let first: Ipv6Net = Ipv6Net::new(ula.network(), 64).unwrap();
    let report = NodeReport {
        underlay_mtu: 1500,
        routes6: vec![first],
        ..Default::default()
    };
    run(
        &mut s,
        Command::ReportNode {
            id: NodeId(2),
            report,
        },
    )
    .unwrap();
    create(&mut s, "aaaaaaaa01", v6("a")).unwrap();
    let got = s.networks["a"].space6.clone().unwrap().subnet();
    assert_ne!(got, first);
    let explicit = NetworkSpec {
        subnet6: Some(first),
        ..v6("b")
    };
    assert!(err(&mut s, explicit).contains(&format!("route {first} on node n2")));
}

#[test]
fn endpoints_on_dual_stack_networks_lease_and_free_ipv6_addresses() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", v6("a")).unwrap();
    create(&mut s, "aaaaaaaa02", named("plain")).unwrap();
    let gw = s.networks["a"].space6.clone().unwrap().gateway();
    let e1 = endpoint(attach(&mut s, "a", 1, "/run/netns/one").unwrap());
    let e2 = endpoint(attach(&mut s, "a", 2, "/run/netns/two").unwrap());
    assert_eq!(e1.ip.unwrap().to_string(), "10.0.0.2", "IPv4 unchanged");
    assert_eq!(u128::from(e1.ip6.unwrap()), u128::from(gw) + 1);
    assert_eq!(u128::from(e2.ip6.unwrap()), u128::from(gw) + 2);
    let plain = endpoint(attach(&mut s, "plain", 1, "/run/netns/one").unwrap());
    assert_eq!(plain.ip6, None);
    let again = endpoint(attach(&mut s, "a", 1, "/run/netns/one").unwrap());
    assert_eq!(again.ip6, e1.ip6, "attach is idempotent");
    run(
        &mut s,
        Command::Detach {
            network: "a".into(),
            node: NodeId(1),
            sandbox: "/run/netns/one".into(),
        },
    )
    .unwrap();
    let space6 = s.networks["a"].space6.clone().unwrap();
    assert_eq!(space6.owner_of(e1.ip6.unwrap()), None, "freed");
    assert!(space6.owner_of(e2.ip6.unwrap()).is_some());
    let e3 = endpoint(attach(&mut s, "a", 1, "/run/netns/three").unwrap());
    assert_eq!(u128::from(e3.ip6.unwrap()), u128::from(gw) + 3, "serial");
}

#[test]
fn an_explicit_ip6_is_leased_or_refused() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", v6("a")).unwrap();
    create(&mut s, "aaaaaaaa02", named("plain")).unwrap();
    let gw = s.networks["a"].space6.clone().unwrap().gateway();
    let want = Ipv6Addr::from(u128::from(gw) + 0x42);
    let spec = |network: &str, ip6| crate::state::AttachSpec {
        network: network.into(),
        node: NodeId(1),
        sandbox: "/run/netns/x".into(),
        ip6: Some(ip6),
        ..Default::default()
    };
    let e = endpoint(
        run(
            &mut s,
            Command::Attach {
                spec: spec("a", want),
            },
        )
        .unwrap(),
    );
    assert_eq!(e.ip6, Some(want));
    let err = run(
        &mut s,
        Command::Attach {
            spec: spec("plain", want),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("has no IPv6 subnet"), "{err}");
    let err = run(
        &mut s,
        Command::Attach {
            spec: spec("a", gw),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("already attached"), "{err}");
}

#[test]
fn networks_stored_before_ipv6_read_back_as_ipv4_only() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", named("a")).unwrap();
    attach(&mut s, "a", 1, "/run/netns/one").unwrap();
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("space6") && !json.contains("ip6") && !json.contains("pools6"));
    let back: ClusterState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}
