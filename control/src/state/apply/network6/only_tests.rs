//! IPv6-only networks (`--ipv6 --ipv4=false`) in the state machine: no IPv4 space,
//! endpoints and VIPs of IPv6 alone, bad flag combinations refused, and stored state
//! of older versions (always with `space` and `ip`) still read.

use std::net::Ipv6Addr;

use super::super::tests::{attach, cluster, create, endpoint, named, run};
use super::*;
use crate::ids::NodeId;
use crate::state::{AttachSpec, Command, Endpoint, Network, NetworkSpec, PortSpec, ServiceSpec};

fn only6(name: &str) -> NetworkSpec {
    NetworkSpec {
        ipv6: true,
        ipv4: Some(false),
        attachable: true,
        ..named(name)
    }
}

fn err(s: &mut ClusterState, spec: NetworkSpec) -> String {
    create(s, "bbbbbbbb01", spec).unwrap_err().to_string()
}

#[test]
fn ipv6_only_networks_and_their_endpoints_have_no_ipv4() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", only6("v6")).unwrap();
    let net = &s.networks["v6"];
    assert!(net.ipv6_only() && net.space.is_none() && net.subnet().is_none());
    let space6 = net.space6.clone().unwrap();
    assert_eq!(space6.subnet().prefix_len(), 64);
    assert_eq!(net.dns_server(), std::net::IpAddr::V6(space6.gateway()));
    assert_eq!(net.gateway_mac(), shoal_ipam::mac_for(space6.gateway()));
    let e1 = endpoint(attach(&mut s, "v6", 1, "/run/netns/one").unwrap());
    let e2 = endpoint(attach(&mut s, "v6", 2, "/run/netns/two").unwrap());
    assert_eq!((e1.ip, e2.ip), (None, None));
    let ip6 = e1.ip6.unwrap();
    assert_eq!(u128::from(ip6), u128::from(space6.gateway()) + 1);
    assert_eq!(
        e1.mac,
        shoal_ipam::mac_for(ip6),
        "derived from the IPv6 address"
    );
    assert_ne!(e1.mac, e2.mac);
    assert_eq!(e1.addr(), std::net::IpAddr::V6(ip6));
    // The IPv4 pools are untouched: the next IPv4 network gets the first /24.
    create(&mut s, "aaaaaaaa02", named("plain")).unwrap();
    assert_eq!(
        s.networks["plain"].subnet().unwrap().to_string(),
        "10.0.0.0/24"
    );
    run(
        &mut s,
        Command::Detach {
            network: "v6".into(),
            node: NodeId(1),
            sandbox: "/run/netns/one".into(),
        },
    )
    .unwrap();
    let space6 = s.networks["v6"].space6.clone().unwrap();
    assert_eq!(space6.owner_of(ip6), None, "freed");
    assert_eq!(crate::audit::duplicate_addresses(&s), Vec::<String>::new());
}

#[test]
fn ipv4_false_needs_ipv6_and_takes_no_ipv4_parts() {
    let mut s = cluster();
    let no_family = NetworkSpec {
        ipv6: false,
        ..only6("x")
    };
    assert_eq!(
        err(&mut s, no_family),
        "a network needs IPv4 or IPv6: --ipv4=false needs --ipv6"
    );
    let cases = [
        (
            NetworkSpec {
                subnet: Some("10.9.0.0/24".parse().unwrap()),
                ..only6("x")
            },
            "subnet 10.9.0.0/24 is IPv4 but the network is IPv6-only (--ipv4=false)",
        ),
        (
            NetworkSpec {
                gateway: Some("10.9.0.1".parse().unwrap()),
                ..only6("x")
            },
            "gateway 10.9.0.1 is IPv4",
        ),
        (
            NetworkSpec {
                ip_range: Some("10.9.0.0/25".parse().unwrap()),
                ..only6("x")
            },
            "ip range 10.9.0.0/25 is IPv4",
        ),
        (
            NetworkSpec {
                aux_addresses: [("dev".to_string(), "10.9.0.9".parse().unwrap())].into(),
                ..only6("x")
            },
            "aux address dev=10.9.0.9 is IPv4",
        ),
        // As for dual-stack networks: an IPv6 subnet must leave room for hosts.
        (
            NetworkSpec {
                subnet6: Some("fd00:2::/127".parse().unwrap()),
                ..only6("x")
            },
            "IPv6 subnet fd00:2::/127 is too small",
        ),
    ];
    for (spec, want) in cases {
        let got = err(&mut s, spec);
        assert!(got.contains(want), "{got:?} should say {want:?}");
    }
    assert!(s.networks.is_empty(), "nothing half made");
    // `ipv4: Some(true)` is the default spelled out.
    let explicit = NetworkSpec {
        ipv4: Some(true),
        ..named("v4")
    };
    create(&mut s, "aaaaaaaa01", explicit).unwrap();
    assert!(s.networks["v4"].space.is_some());
}

#[test]
fn an_explicit_ipv4_address_or_a_taken_derived_mac_is_refused() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", only6("v6")).unwrap();
    let spec = |sandbox: &str| AttachSpec {
        network: "v6".into(),
        node: NodeId(1),
        sandbox: sandbox.into(),
        ..Default::default()
    };
    let with_ip = AttachSpec {
        ip: Some("10.0.0.5".parse().unwrap()),
        ..spec("/run/netns/a")
    };
    let e = run(&mut s, Command::Attach { spec: with_ip }).unwrap_err();
    assert!(
        e.to_string()
            .contains("--ip 10.0.0.5: network v6 is IPv6-only"),
        "{e}"
    );
    let first = endpoint(attach(&mut s, "v6", 1, "/run/netns/b").unwrap());
    // Another address with the same last 32 bits would get the same MAC.
    let twin = Ipv6Addr::from(u128::from(first.ip6.unwrap()) + (1u128 << 32));
    let clash = AttachSpec {
        ip6: Some(twin),
        ..spec("/run/netns/c")
    };
    let e = run(&mut s, Command::Attach { spec: clash }).unwrap_err();
    assert!(
        e.to_string()
            .contains("derived from the IPv6 address is taken"),
        "{e}"
    );
    let space6 = s.networks["v6"].space6.clone().unwrap();
    assert_eq!(
        space6.owner_of(twin),
        None,
        "the refused lease is given back"
    );
    let own_mac = AttachSpec {
        ip6: Some(twin),
        mac: Some([2, 0x42, 9, 9, 9, 9]),
        ..spec("/run/netns/c")
    };
    let e = endpoint(run(&mut s, Command::Attach { spec: own_mac }).unwrap());
    assert_eq!(e.ip6, Some(twin), "a MAC of the caller's is fine");
}

#[test]
fn services_on_ipv6_only_networks_get_an_ipv6_vip_only_and_publish_over_ipv6() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", only6("v6")).unwrap();
    let spec = ServiceSpec {
        name: "web".into(),
        networks: vec!["v6".into()],
        ..Default::default()
    };
    run(
        &mut s,
        Command::CreateService {
            id: "cccccccc01".into(),
            spec: spec.clone(),
        },
    )
    .unwrap();
    let svc = &s.services["web"];
    assert!(svc.vips.is_empty(), "{:?}", svc.vips);
    let vip6 = svc.vips6["v6"];
    let space6 = s.networks["v6"].space6.clone().unwrap();
    assert_eq!(space6.owner_of(vip6), Some("vip:web"));
    let published = ServiceSpec {
        name: "pub".into(),
        publish: vec![PortSpec::parse("8080:80").unwrap()],
        ..spec
    };
    // Its ports are published on the nodes' IPv6 addresses (the routing mesh reaches
    // the tasks' IPv6 addresses from the nodes' own IPv6 addresses on the network).
    run(
        &mut s,
        Command::CreateService {
            id: "cccccccc02".into(),
            spec: published,
        },
    )
    .unwrap();
    assert_eq!(s.services["pub"].spec.publish[0].published, 8080);
    run(&mut s, Command::RemoveService { name: "web".into() }).unwrap();
    let space6 = s.networks["v6"].space6.clone().unwrap();
    assert_eq!(space6.owner_of(vip6), None, "the IPv6 VIP is given back");
}

#[test]
fn state_written_before_ipv6_only_networks_still_reads() {
    // A network and an endpoint as older versions stored them: `space` and `ip` always.
    let network = r#"{"id":"aaaaaaaa01","name":"web","vni":4096,
        "space":{"subnet":"10.0.1.0/24","gateway":"10.0.1.1","ip_range":"10.0.1.0/24",
                 "aux_addresses":{},"leases":{"10.0.1.2":"ep-1"},"last_allocated":"10.0.1.2"},
        "attachable":true,"internal":false,"encrypted":false,"mtu":1450,"labels":{},
        "created_at_ms":1}"#;
    let n: Network = serde_json::from_str(network).unwrap();
    let space = n.space.as_ref().expect("the IPv4 space is read");
    assert_eq!(space.owner_of("10.0.1.2".parse().unwrap()), Some("ep-1"));
    let stored = r#"{"id":"ep-1","network":"web","node":1,"sandbox":"/run/netns/a",
        "ifname":"eth0","name":null,"aliases":[],"ip":"10.0.1.2",
        "mac":[2,66,10,0,1,2],"service":null,"created_at_ms":1}"#;
    let e: Endpoint = serde_json::from_str(stored).unwrap();
    assert_eq!(e.ip, Some("10.0.1.2".parse().unwrap()));
    // Written again, an IPv4 network and endpoint keep their shape; an IPv6-only one
    // leaves `space` and `ip` out, and reads back as it was.
    let again = serde_json::to_value(&n).unwrap();
    assert_eq!(again["space"]["subnet"], "10.0.1.0/24");
    assert_eq!(serde_json::to_value(&e).unwrap()["ip"], "10.0.1.2");
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", only6("v6")).unwrap();
    let e6 = endpoint(attach(&mut s, "v6", 1, "/run/netns/one").unwrap());
    let n6 = serde_json::to_value(&s.networks["v6"]).unwrap();
    assert!(
        n6.get("space").is_none() && n6.get("space6").is_some(),
        "{n6}"
    );
    let e6_json = serde_json::to_value(&e6).unwrap();
    assert!(e6_json.get("ip").is_none(), "{e6_json}");
    assert_eq!(serde_json::from_value::<Endpoint>(e6_json).unwrap(), e6);
    assert_eq!(
        serde_json::from_value::<Network>(n6).unwrap(),
        s.networks["v6"]
    );
    let spec = serde_json::to_value(only6("v6")).unwrap();
    assert_eq!(spec["ipv4"], false);
    assert!(serde_json::to_value(named("v4"))
        .unwrap()
        .get("ipv4")
        .is_none());
}

#[test]
fn the_api_shows_an_ipv4_network_as_before_and_an_ipv6_only_one_without_ipv4() {
    use crate::api::NetworkInfo;
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", named("v4")).unwrap();
    create(&mut s, "aaaaaaaa02", only6("v6")).unwrap();
    attach(&mut s, "v4", 1, "/run/netns/a").unwrap();
    attach(&mut s, "v6", 1, "/run/netns/a").unwrap();
    let v4 = serde_json::to_value(NetworkInfo::of(&s, &s.networks["v4"])).unwrap();
    assert_eq!(
        (&v4["subnet"], &v4["gateway"], &v4["ip_range"]),
        (
            &serde_json::json!("10.0.0.0/24"),
            &serde_json::json!("10.0.0.1"),
            &serde_json::json!("10.0.0.0/24")
        ),
        "{v4}"
    );
    assert!(
        v4.get("enable_ipv4").is_none(),
        "written only when false: {v4}"
    );
    let e4 = &v4["endpoints"][0];
    assert_eq!(
        (&e4["address"], &e4["gateway"], &e4["dns"]),
        (
            &serde_json::json!("10.0.0.2/24"),
            &serde_json::json!("10.0.0.1"),
            &serde_json::json!("10.0.0.1")
        ),
        "{e4}"
    );
    let v6 = serde_json::to_value(NetworkInfo::of(&s, &s.networks["v6"])).unwrap();
    assert_eq!(v6["enable_ipv4"], false, "{v6}");
    for key in ["subnet", "gateway", "ip_range"] {
        assert!(v6.get(key).is_none(), "{key}: {v6}");
    }
    assert_eq!(v6["ipam_config"].as_array().map(Vec::len), Some(1), "{v6}");
    let gateway6 = &v6["ipam_config"][0]["gateway"];
    let e6 = &v6["endpoints"][0];
    assert!(
        e6.get("address").is_none() && e6.get("gateway").is_none(),
        "{e6}"
    );
    assert_eq!((&e6["dns"], &e6["gateway6"]), (gateway6, gateway6), "{e6}");
    let back: NetworkInfo = serde_json::from_value(v4).unwrap();
    assert!(back.enable_ipv4, "read back, absent means IPv4");
}

#[test]
fn a_nodes_own_address_on_an_ipv6_only_network_is_ipv6_alone_and_takes_forwarded_ports() {
    let mut s = cluster();
    create(&mut s, "aaaaaaaa01", only6("v6")).unwrap();
    let spec = AttachSpec {
        network: "v6".into(),
        node: NodeId(1),
        sandbox: "/run/shoal/node-address".into(),
        ingress: true,
        ..Default::default()
    };
    let own = endpoint(run(&mut s, Command::Attach { spec }).unwrap());
    assert!(own.ingress && own.ip.is_none(), "{own:?}");
    let ip6 = own.ip6.expect("an IPv6 address of the node's own");
    assert_eq!(own.mac, shoal_ipam::mac_for(ip6));
    // Stored and read back in the new shape: no `ip`, its `ip6`.
    let json = serde_json::to_value(&own).unwrap();
    assert!(json.get("ip").is_none(), "{json}");
    assert_eq!(json["ip6"], ip6.to_string());
    assert_eq!(serde_json::from_value::<Endpoint>(json).unwrap(), own);
    // A container's port forwarded to an IPv6-only endpoint (Docker's `-p` with
    // ip6tables) is taken.
    let task = endpoint(attach(&mut s, "v6", 1, "/run/netns/one").unwrap());
    let ports = vec![crate::state::EndpointPort {
        protocol: crate::state::Protocol::Tcp,
        host_port: 8081,
        port: 80,
    }];
    run(
        &mut s,
        Command::SetEndpointPorts {
            endpoint: task.id.clone(),
            node: NodeId(1),
            ports: ports.clone(),
        },
    )
    .unwrap();
    assert_eq!(s.endpoints[&task.id].ports, ports);
}
