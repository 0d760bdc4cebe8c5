//! Network and endpoint commands of the state machine.

use std::net::Ipv4Addr;

use super::*;
use crate::ids::NodeId;
use crate::state::{AttachSpec, NetworkSpec, Node, NodeReport, NodeStatus, Role, Secrets};
use shoal_ipam::PoolConfig;

pub(super) fn node(id: u64, name: &str) -> Node {
    let ip = std::net::IpAddr::V4(Ipv4Addr::new(198, 18, 0, id as u8));
    Node {
        id: NodeId(id),
        name: name.into(),
        role: Role::Manager,
        availability: crate::state::Availability::Active,
        status: NodeStatus::Ready,
        addr: ip,
        control_addr: (ip, 2377).into(),
        joined_at_ms: 0,
        status_since_ms: 0,
        availability_since_ms: 0,
        labels: Default::default(),
        report: Default::default(),
        wireguard: None,
    }
}

pub(super) fn run(state: &mut ClusterState, command: Command) -> Result<Applied, ApplyError> {
    apply(state, None, &Proposal { at_ms: 7, command })
}

pub(super) fn cluster() -> ClusterState {
    let mut s = ClusterState::default();
    run(
        &mut s,
        Command::Bootstrap {
            cluster_id: "c".into(),
            ca_cert_pem: "CA".into(),
            secrets: Secrets::default(),
            addr_pools: PoolConfig::default(),
            node: node(1, "n1"),
        },
    )
    .unwrap();
    run(
        &mut s,
        Command::AddNode {
            node: node(2, "n2"),
        },
    )
    .unwrap();
    s
}

pub(super) fn create(
    s: &mut ClusterState,
    id: &str,
    spec: NetworkSpec,
) -> Result<Applied, ApplyError> {
    run(
        s,
        Command::CreateNetwork {
            id: id.into(),
            spec,
        },
    )
}

pub(super) fn named(name: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        attachable: true,
        ..Default::default()
    }
}

pub(super) fn attach(
    s: &mut ClusterState,
    network: &str,
    node: u64,
    sandbox: &str,
) -> Result<Applied, ApplyError> {
    run(
        s,
        Command::Attach {
            spec: AttachSpec {
                network: network.into(),
                node: NodeId(node),
                sandbox: sandbox.into(),
                ..Default::default()
            },
        },
    )
}

pub(super) fn endpoint(a: Applied) -> crate::state::Endpoint {
    match a.output {
        Output::Endpoint(e) => *e,
        other => panic!("not an endpoint: {other:?}"),
    }
}

#[test]
fn networks_get_successive_vnis_and_free_subnets() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", named("a")).unwrap();
    create(&mut s, "aaaaaaaa02", named("b")).unwrap();
    assert_eq!(s.networks["a"].vni, 4096);
    assert_eq!(s.networks["b"].vni, 4097);
    assert_eq!(
        s.networks["a"].space.as_ref().unwrap().subnet().to_string(),
        "10.0.0.0/24"
    );
    assert_eq!(
        s.networks["b"].space.as_ref().unwrap().subnet().to_string(),
        "10.0.1.0/24"
    );
    assert_eq!(s.networks["a"].mtu, 1450);
    let e = create(&mut s, "aaaaaaaa03", named("a")).unwrap_err();
    assert!(matches!(e, ApplyError::Conflict(_)), "{e}");
}

/// Docker's `--opt com.docker.network.driver.overlay.vxlanid_list` (libnetwork
/// ovmanager.go): an explicit VNI must be free; automatic ones go around it.
#[test]
fn an_explicit_vni_is_kept_and_automatic_ones_skip_it() {
    let mut s = cluster();
    let explicit = NetworkSpec {
        vni: Some(4097),
        ..named("x")
    };
    create(&mut s, "aaaaaaaa01", explicit).unwrap();
    create(&mut s, "aaaaaaaa02", named("a")).unwrap();
    create(&mut s, "aaaaaaaa03", named("b")).unwrap();
    assert_eq!(
        (
            s.networks["x"].vni,
            s.networks["a"].vni,
            s.networks["b"].vni
        ),
        (4097, 4096, 4098)
    );
    let before = s.clone();
    for (vni, why) in [
        (4098, "already used by network b"),
        (0, "out of range"),
        (1 << 24, "out of range"),
    ] {
        let spec = NetworkSpec {
            vni: Some(vni),
            ..named("y")
        };
        let e = create(&mut s, "aaaaaaaa04", spec).unwrap_err().to_string();
        assert!(e.contains(why), "{vni}: {e}");
        assert_eq!(s, before);
    }
}

/// docker network connect / service --network ... driver-opt
/// com.docker.network.endpoint.ifname: the interface takes the name given.
#[test]
fn an_endpoint_may_name_its_interface() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", named("a")).unwrap();
    create(&mut s, "aaaaaaaa02", named("b")).unwrap();
    let with = |network: &str, ifname: &str| Command::Attach {
        spec: AttachSpec {
            network: network.into(),
            node: NodeId(1),
            sandbox: "/run/netns/x".into(),
            ifname: Some(ifname.into()),
            ..Default::default()
        },
    };
    let e = endpoint(run(&mut s, with("a", "eth0")).unwrap());
    assert_eq!(e.ifname, "eth0");
    let clash = run(&mut s, with("b", "eth0")).unwrap_err().to_string();
    assert!(
        clash.contains("already has an interface named eth0"),
        "{clash}"
    );
    let bad = run(&mut s, with("b", "a name too long!"))
        .unwrap_err()
        .to_string();
    assert!(bad.contains("1-15"), "{bad}");
    let e = endpoint(run(&mut s, with("b", "back0")).unwrap());
    assert_eq!(e.ifname, "back0");
}

/// CNI's `mac` capability: the interface takes the MAC given, once per network, and
/// never a group address or the gateway's.
#[test]
fn an_endpoint_may_bring_its_mac() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", named("a")).unwrap();
    let with = |sandbox: &str, mac: [u8; 6]| Command::Attach {
        spec: AttachSpec {
            network: "a".into(),
            node: NodeId(1),
            sandbox: sandbox.into(),
            mac: Some(mac),
            ..Default::default()
        },
    };
    let mine = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let e = endpoint(run(&mut s, with("/run/netns/x", mine)).unwrap());
    assert_eq!(e.mac, mine);
    let again = endpoint(run(&mut s, with("/run/netns/x", mine)).unwrap());
    assert_eq!(again.id, e.id, "the same attach is idempotent");
    let changed = run(&mut s, with("/run/netns/x", [2, 0, 0, 0, 0, 9]))
        .unwrap_err()
        .to_string();
    assert!(changed.contains("detach it first"), "{changed}");
    let taken = run(&mut s, with("/run/netns/y", mine))
        .unwrap_err()
        .to_string();
    assert!(
        taken.contains("is taken on network a by endpoint"),
        "{taken}"
    );
    let gateway = shoal_ipam::mac_for(s.networks["a"].space.as_ref().unwrap().gateway());
    let gw = run(&mut s, with("/run/netns/y", gateway))
        .unwrap_err()
        .to_string();
    assert!(gw.contains("its gateway"), "{gw}");
    let group = run(&mut s, with("/run/netns/y", [1, 0, 0x5e, 0, 0, 1]))
        .unwrap_err()
        .to_string();
    assert!(group.contains("multicast"), "{group}");
    let before = s.clone();
    assert!(run(&mut s, with("/run/netns/y", [0; 6])).is_err());
    assert_eq!(s, before, "a refused attach changes nothing");
}

#[test]
fn subnets_avoid_node_routes_and_explicit_overlaps_are_refused() {
    let mut s = cluster();
    let report = NodeReport {
        routes: vec!["10.0.0.0/23".parse().unwrap()],
        underlay_mtu: 1400,
        no_encryption: None,
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
    create(&mut s, "aaaaaaaa01", named("a")).unwrap();
    assert_eq!(
        s.networks["a"].space.as_ref().unwrap().subnet().to_string(),
        "10.0.2.0/24"
    );
    assert_eq!(
        s.networks["a"].mtu, 1350,
        "derived from the smallest underlay MTU"
    );
    let before = s.clone();
    let spec = NetworkSpec {
        subnet: Some("10.0.2.0/25".parse().unwrap()),
        ..named("b")
    };
    let e = create(&mut s, "aaaaaaaa02", spec).unwrap_err().to_string();
    assert!(e.contains("overlaps") && e.contains("\"a\""), "{e}");
    let spec = NetworkSpec {
        subnet: Some("10.0.1.0/24".parse().unwrap()),
        ..named("b")
    };
    let e = create(&mut s, "aaaaaaaa02", spec).unwrap_err().to_string();
    assert!(e.contains("route 10.0.0.0/23 on node n2"), "{e}");
    assert_eq!(s, before);
}

#[test]
fn bad_gateway_range_mtu_and_names_are_refused() {
    let mut s = cluster();
    let base = || NetworkSpec {
        subnet: Some("172.20.0.0/24".parse().unwrap()),
        ..named("x")
    };
    let cases = [
        NetworkSpec {
            gateway: Some("172.21.0.1".parse().unwrap()),
            ..base()
        },
        NetworkSpec {
            ip_range: Some("172.21.0.0/28".parse().unwrap()),
            ..base()
        },
        NetworkSpec {
            mtu: Some(100),
            ..base()
        },
        NetworkSpec {
            name: "bad name".into(),
            ..base()
        },
    ];
    for spec in cases {
        let before = s.clone();
        assert!(
            create(&mut s, "aaaaaaaa01", spec.clone()).is_err(),
            "{spec:?}"
        );
        assert_eq!(s, before);
    }
}

#[test]
fn attach_is_idempotent_serial_and_detach_frees() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", named("a")).unwrap();
    let e1 = endpoint(attach(&mut s, "a", 1, "/run/netns/x").unwrap());
    assert_eq!(e1.ip, Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(e1.ifname, "eth0");
    let rev = s.revision;
    let again = attach(&mut s, "a", 1, "/run/netns/x").unwrap();
    assert_eq!(endpoint(again.clone()), e1);
    assert_eq!(again.revision, rev, "an idempotent attach changes nothing");
    let e2 = endpoint(attach(&mut s, "a", 2, "/run/netns/y").unwrap());
    assert_eq!(e2.ip, Some(Ipv4Addr::new(10, 0, 0, 3)));
    assert_ne!(e1.mac, e2.mac);
    run(
        &mut s,
        Command::Detach {
            network: "a".into(),
            node: NodeId(1),
            sandbox: "/run/netns/x".into(),
        },
    )
    .unwrap();
    let e3 = endpoint(attach(&mut s, "a", 1, "/run/netns/z").unwrap());
    assert_eq!(
        e3.ip,
        Some(Ipv4Addr::new(10, 0, 0, 4)),
        "released addresses are not reused at once"
    );
    let rev = s.revision;
    run(
        &mut s,
        Command::Detach {
            network: "a".into(),
            node: NodeId(1),
            sandbox: "/run/netns/x".into(),
        },
    )
    .unwrap();
    assert_eq!(s.revision, rev, "a repeated detach changes nothing");
}

#[test]
fn attach_rules_names_addresses_and_attachability() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", named("a")).unwrap();
    create(
        &mut s,
        "aaaaaaaa02",
        NetworkSpec {
            attachable: false,
            ..named("closed")
        },
    )
    .unwrap();
    let e = attach(&mut s, "closed", 1, "/run/netns/x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not attachable"), "{e}");
    let e = attach(&mut s, "nope", 1, "/run/netns/x").unwrap_err();
    assert_eq!(e, ApplyError::NoSuchNetwork("nope".into()));
    let spec = |sandbox: &str, name: &str, ip: Option<&str>| Command::Attach {
        spec: AttachSpec {
            network: "a".into(),
            node: NodeId(1),
            sandbox: sandbox.into(),
            name: Some(name.into()),
            ip: ip.map(|i| i.parse().unwrap()),
            ..Default::default()
        },
    };
    run(&mut s, spec("/run/netns/x", "web", Some("10.0.0.10"))).unwrap();
    let e = run(&mut s, spec("/run/netns/y", "web", None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("name \"web\" is taken"), "{e}");
    let e = run(&mut s, spec("/run/netns/y", "db", Some("10.0.0.10")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("in use"), "{e}");
    let e = run(&mut s, spec("/run/netns/y", "bad name!", None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid name"), "{e}");
}

#[test]
fn second_network_gets_eth1_and_rm_is_refused_while_endpoints_exist() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", named("a")).unwrap();
    create(&mut s, "aaaaaaaa02", named("b")).unwrap();
    attach(&mut s, "a", 1, "/run/netns/x").unwrap();
    let e = endpoint(attach(&mut s, "b", 1, "/run/netns/x").unwrap());
    assert_eq!(e.ifname, "eth1");
    let err = run(
        &mut s,
        Command::RemoveNetwork {
            network: "a".into(),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("still has 1 endpoint(s) (on n1)"), "{err}");
}

#[test]
fn removing_a_node_frees_its_leases() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", named("a")).unwrap();
    run(
        &mut s,
        Command::SetRole {
            id: NodeId(2),
            role: Role::Worker,
        },
    )
    .unwrap();
    for i in 0..5 {
        attach(&mut s, "a", 2, &format!("/run/netns/s{i}")).unwrap();
    }
    attach(&mut s, "a", 1, "/run/netns/keep").unwrap();
    assert_eq!(s.networks["a"].space.as_ref().unwrap().in_use(), 6);
    run(&mut s, Command::RemoveNode { id: NodeId(2) }).unwrap();
    assert_eq!(s.networks["a"].space.as_ref().unwrap().in_use(), 1);
    assert_eq!(s.endpoints.len(), 1);
}

const KEY_A: &str = "q7tHfIS3RwSSNiZ0u1RPNMWLrIy4uDNzFPYUQvmwT2o=";
const KEY_B: &str = "Yg8Q7QgPM4TASwFOlXV4jGP3HQmz3j5NP4XKfA5z3Ho=";

fn set_wg(s: &mut ClusterState, node: u64, key: &str) -> Result<Applied, ApplyError> {
    run(
        s,
        Command::SetWireguard {
            id: NodeId(node),
            public_key: key.into(),
            port: 51820,
            generation: 0,
        },
    )
}

#[test]
fn wireguard_keys_get_stable_mesh_addresses_and_bad_keys_are_refused() {
    let mut s = cluster();
    set_wg(&mut s, 1, KEY_A).unwrap();
    set_wg(&mut s, 2, KEY_B).unwrap();
    let mesh = |s: &ClusterState, n| s.nodes[&NodeId(n)].wireguard.as_ref().unwrap().mesh_ip;
    assert_eq!(mesh(&s, 1), Ipv4Addr::new(100, 96, 0, 1));
    assert_eq!(mesh(&s, 2), Ipv4Addr::new(100, 96, 0, 2));
    let rev = s.revision;
    set_wg(&mut s, 1, KEY_A).unwrap();
    assert_eq!(s.revision, rev, "the same key again changes nothing");
    let e = set_wg(&mut s, 2, KEY_A).unwrap_err();
    assert!(matches!(e, ApplyError::Conflict(_)), "{e}");
    for bad in [
        "",
        "short",
        "q7tHfIS3RwSSNiZ0u1RPNMWLrIy4uDNzFPYUQvmwT2o",
        "q7tHfIS3RwSSNiZ0u1RPNMWLrIy4uDNzFPYUQvmwT2!=",
    ] {
        assert!(set_wg(&mut s, 1, bad).is_err(), "{bad:?}");
    }
    run(&mut s, Command::RotateKeys).unwrap();
    assert_eq!(s.key_generation, 1);
    assert_eq!(s.keys_rotated_at_ms, 7);
    set_wg(&mut s, 1, KEY_B.replace('Y', "Z").as_str()).unwrap();
    assert_eq!(
        mesh(&s, 1),
        Ipv4Addr::new(100, 96, 0, 1),
        "a new key keeps the mesh address"
    );
}

#[test]
fn encrypted_networks_take_wireguard_overhead_and_need_capable_nodes() {
    let mut s = cluster();
    create(
        &mut s,
        "aaaaaaaa01",
        NetworkSpec {
            encrypted: true,
            ..named("secret")
        },
    )
    .unwrap();
    assert_eq!(s.networks["secret"].mtu, 1390);
    let e = attach(&mut s, "secret", 1, "/run/netns/x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no WireGuard key"), "{e}");
    set_wg(&mut s, 1, KEY_A).unwrap();
    let report = NodeReport {
        routes: vec![],
        underlay_mtu: 1500,
        no_encryption: Some("no /dev/net/tun".into()),
        ..Default::default()
    };
    run(
        &mut s,
        Command::ReportNode {
            id: NodeId(1),
            report,
        },
    )
    .unwrap();
    let e = attach(&mut s, "secret", 1, "/run/netns/x")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot carry the encrypted network secret: no /dev/net/tun"),
        "{e}"
    );
    let report = NodeReport {
        routes: vec![],
        underlay_mtu: 1500,
        no_encryption: None,
        ..Default::default()
    };
    run(
        &mut s,
        Command::ReportNode {
            id: NodeId(1),
            report,
        },
    )
    .unwrap();
    attach(&mut s, "secret", 1, "/run/netns/x").unwrap();
    let spec = NetworkSpec {
        subnet: Some("100.96.4.0/24".parse().unwrap()),
        ..named("clash")
    };
    let e = create(&mut s, "aaaaaaaa02", spec).unwrap_err().to_string();
    assert!(e.contains("WireGuard mesh pool"), "{e}");
}

#[test]
fn networks_on_an_ipv6_underlay_take_its_bigger_outer_header() {
    let mut s = cluster();
    crate::state::each_mut(&mut s.nodes, |n| {
        n.addr = format!("fd00:5ea1::{}", n.id.0).parse().unwrap();
    });
    create(&mut s, "aaaaaaaa01", named("plain")).unwrap();
    let secret = NetworkSpec {
        encrypted: true,
        ..named("secret")
    };
    create(&mut s, "aaaaaaaa02", secret).unwrap();
    assert_eq!(s.networks["plain"].mtu, 1500 - 70, "VXLAN over IPv6");
    assert_eq!(s.networks["secret"].mtu, 1500 - 130, "and inside WireGuard");
}

#[test]
fn a_node_of_the_other_underlay_family_is_refused() {
    let mut s = cluster();
    let mut n3 = node(3, "n3");
    n3.addr = "fd00:5ea1::3".parse().unwrap();
    let e = run(&mut s, Command::AddNode { node: n3 })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "node n3 advertises fd00:5ea1::3, an IPv6 address, but this cluster's underlay is IPv4"
        ) && e.contains("start the agent with an IPv4 --advertise-addr"),
        "{e}"
    );
    assert!(!s.nodes.contains_key(&NodeId(3)));
    run(
        &mut s,
        Command::AddNode {
            node: node(3, "n3"),
        },
    )
    .unwrap();
}

/// Names, MACs and interface names are looked up in the endpoints' indexes: what a
/// detach frees is free again, and a state read back (a snapshot) refuses what the
/// state it was written from refuses.
#[test]
fn attach_checks_follow_detaches_and_survive_a_snapshot() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaaaaaa", named("a")).unwrap();
    let spec = |sandbox: &str, name: &str, mac: u8| Command::Attach {
        spec: AttachSpec {
            network: "a".into(),
            node: NodeId(1),
            sandbox: sandbox.into(),
            name: Some(name.into()),
            mac: Some([2, 0x11, 0, 0, 0, mac]),
            ..Default::default()
        },
    };
    let detach = |sandbox: &str| Command::Detach {
        network: "a".into(),
        node: NodeId(1),
        sandbox: sandbox.into(),
    };
    run(&mut s, spec("/run/netns/x", "web", 1)).unwrap();
    let refused = |s: &mut ClusterState, c| run(s, c).unwrap_err().to_string();
    let taken = refused(&mut s, spec("/run/netns/y", "web", 2));
    assert!(taken.contains("name \"web\" is taken"), "{taken}");
    let taken = refused(&mut s, spec("/run/netns/y", "db", 1));
    assert!(taken.contains("MAC 02:11:00:00:00:01 is taken"), "{taken}");
    run(&mut s, detach("/run/netns/x")).unwrap();
    run(&mut s, spec("/run/netns/y", "web", 1)).unwrap();
    let json = serde_json::to_string(&s).unwrap();
    let mut back: ClusterState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    let taken = refused(&mut back, spec("/run/netns/z", "web", 3));
    assert!(taken.contains("name \"web\" is taken"), "{taken}");
    let taken = refused(&mut back, spec("/run/netns/z", "db", 1));
    assert!(taken.contains("is taken"), "{taken}");
    // The sandbox's next interface is named after the ones it has.
    let e = endpoint(
        run(
            &mut back,
            Command::CreateNetwork {
                id: "bbbbbbbbbbbb".into(),
                spec: named("b"),
            },
        )
        .and_then(|_| attach(&mut back, "b", 1, "/run/netns/y"))
        .unwrap(),
    );
    assert_eq!(e.ifname, "eth1");
}
