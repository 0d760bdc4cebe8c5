//! The record table of a dual-stack network: AAAA for sandboxes, tasks and VIPs.

use std::net::Ipv6Addr;

use shoal_control::state::{
    AttachSpec, ClusterState, Command, EndpointMode, NetworkSpec, Secrets, ServiceSpec,
};
use shoal_control::NodeId;

use super::table;
use crate::overlay::view::tests::{node, run};

/// Network `web` (dual-stack) and `plain`; service `vip` (VIP mode) and `rr` (DNS
/// round robin) with a task each on `web`, and sandbox `sb` on both networks.
fn state() -> ClusterState {
    let mut s = ClusterState::default();
    run(
        &mut s,
        Command::Bootstrap {
            cluster_id: "c".into(),
            ca_cert_pem: String::new(),
            secrets: Secrets::default(),
            addr_pools: Default::default(),
            node: node(1),
        },
    );
    for (id, name, ipv6) in [("aaaaaaaa01", "web", true), ("aaaaaaaa02", "plain", false)] {
        let spec = NetworkSpec {
            name: name.into(),
            attachable: true,
            ipv6,
            ..Default::default()
        };
        run(
            &mut s,
            Command::CreateNetwork {
                id: id.into(),
                spec,
            },
        );
    }
    for (id, name, endpoint_mode) in [
        ("bbbbbbbb01", "vip", EndpointMode::Vip),
        ("bbbbbbbb02", "rr", EndpointMode::Dnsrr),
    ] {
        let spec = ServiceSpec {
            name: name.into(),
            networks: vec!["web".into()],
            endpoint_mode,
            ..Default::default()
        };
        run(
            &mut s,
            Command::CreateService {
                id: id.into(),
                spec,
            },
        );
    }
    let attach =
        |network: &str, sandbox: &str, service: Option<&str>, name: Option<&str>| Command::Attach {
            spec: AttachSpec {
                network: network.into(),
                node: NodeId(1),
                sandbox: sandbox.into(),
                service: service.map(String::from),
                name: name.map(String::from),
                ..Default::default()
            },
        };
    run(&mut s, attach("web", "/run/netns/t1", Some("vip"), None));
    run(&mut s, attach("web", "/run/netns/t2", Some("rr"), None));
    run(&mut s, attach("web", "/run/netns/sb", None, Some("sb")));
    run(&mut s, attach("plain", "/run/netns/sb", None, Some("sb")));
    s
}

fn ip6_of(s: &ClusterState, sandbox: &str) -> Ipv6Addr {
    s.endpoints
        .values()
        .find(|e| e.sandbox == sandbox && e.network == "web")
        .and_then(|e| e.ip6)
        .unwrap()
}

#[test]
fn dual_stack_names_answer_aaaa_and_a_service_its_ipv6_vip() {
    let s = state();
    let t = table(&s);
    let client = s
        .endpoints
        .values()
        .find(|e| e.sandbox == "/run/netns/sb" && e.network == "web")
        .map(|e| e.addr())
        .unwrap();
    let aaaa = |name: &str| t.resolve6("web", client, name);
    let a = |name: &str| t.resolve("web", client, name).map(|v| v.len());
    assert_eq!(aaaa("sb"), Some(vec![ip6_of(&s, "/run/netns/sb")]));
    assert_eq!(aaaa("tasks.vip"), Some(vec![ip6_of(&s, "/run/netns/t1")]));
    assert_eq!(
        aaaa("vip"),
        Some(vec![s.services["vip"].vips6["web"]]),
        "the IPv6 VIP, not the task"
    );
    assert_eq!(a("vip"), Some(1));
    assert_eq!(aaaa("rr"), Some(vec![ip6_of(&s, "/run/netns/t2")]));
    assert_eq!(aaaa("tasks.rr"), Some(vec![ip6_of(&s, "/run/netns/t2")]));
    assert_eq!(
        t.resolve6("plain", client, "sb.plain"),
        Some(vec![]),
        "the IPv4-only network's name has no AAAA"
    );
    assert_eq!(aaaa("nobody"), None);
    assert_eq!(
        t.ptr("web", client, ip6_of(&s, "/run/netns/sb")),
        Some("sb.web"),
        "PTR for IPv6 addresses as for IPv4 ones"
    );
}
