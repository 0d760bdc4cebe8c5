//! The record table of a dual-stack network: AAAA for sandboxes, tasks and VIPs; and
//! of an IPv6-only one, with the node plan and resolv.conf of its sandboxes.

use std::net::Ipv6Addr;

use shoal_control::state::{
    AttachSpec, ClusterState, Command, EndpointMode, NetworkSpec, ServiceSpec,
};
use shoal_control::NodeId;

use super::table;
use crate::overlay::view::tests::{bootstrapped, run};

/// Network `web` (dual-stack) and `plain`; service `vip` (VIP mode) and `rr` (DNS
/// round robin) with a task each on `web`, and sandbox `sb` on both networks.
fn state() -> ClusterState {
    state_with(true)
}

/// [`state`], with `web` IPv6-only unless `web_ipv4`.
fn state_with(web_ipv4: bool) -> ClusterState {
    let mut s = bootstrapped();
    for (id, name, ipv6) in [("aaaaaaaa01", "web", true), ("aaaaaaaa02", "plain", false)] {
        let spec = NetworkSpec {
            name: name.into(),
            attachable: true,
            ipv6,
            ipv4: (name == "web" && !web_ipv4).then_some(false),
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

/// The address sandbox `sb` asks from on `web` (IPv4, on an IPv6-only `web` IPv6).
fn sb_on_web(s: &ClusterState) -> std::net::IpAddr {
    s.endpoints
        .values()
        .find(|e| e.sandbox == "/run/netns/sb" && e.network == "web")
        .map(|e| e.addr())
        .unwrap()
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
    let client = sb_on_web(&s);
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

#[test]
fn ipv6_only_names_answer_aaaa_alone_and_sandboxes_get_ipv6_alone() {
    let s = state_with(false);
    let t = table(&s);
    let client = sb_on_web(&s);
    assert!(client.is_ipv6());
    let vip6 = s.services["vip"].vips6["web"];
    assert!(s.services["vip"].vips.is_empty());
    assert_eq!(t.resolve6("web", client, "vip"), Some(vec![vip6]));
    // The names exist without IPv4: A is NODATA (an empty answer), not unknown.
    for name in ["vip", "tasks.vip", "rr", "sb"] {
        assert_eq!(t.resolve("web", client, name), Some(vec![]), "{name}");
    }
    assert_eq!(
        t.resolve6("web", client, "tasks.rr"),
        Some(vec![ip6_of(&s, "/run/netns/t2")])
    );
    assert_eq!(
        t.ptr("web", client, ip6_of(&s, "/run/netns/sb")),
        Some("sb.web")
    );

    let plan = crate::overlay::view::node_plan(&s, NodeId(1), 4789);
    let web = plan.networks.iter().find(|n| n.name == "web").unwrap();
    let gateway6 = s.networks["web"].space6.as_ref().unwrap().gateway();
    assert_eq!(web.gateway, None, "no IPv4 gateway");
    assert_eq!(web.gateway6.map(|g| g.addr()), Some(gateway6));
    assert_eq!(web.gateway_mac, shoal_ipam::mac_for(gateway6));
    let t1 = plan
        .endpoints
        .iter()
        .find(|e| e.sandbox.ends_with("t1"))
        .unwrap();
    assert_eq!((t1.ip, t1.gateway), (None, None));
    assert!(t1.ip6.is_some() && t1.default_route6 && !t1.default_route);
    assert_eq!(t1.gateway6, Some(gateway6));
    let confs = crate::overlay::view::resolv_confs(&s, &plan);
    assert_eq!(
        confs["t1"].nameserver,
        Some(gateway6.into()),
        "the IPv6 resolver"
    );
    // sb is on web (eth0) and the IPv4-only plain (eth1): a default route of each
    // family, through each; the resolver on the IPv4 default route's gateway.
    let sb: Vec<(&str, bool, bool)> = plan
        .endpoints
        .iter()
        .filter(|e| e.sandbox.ends_with("sb"))
        .map(|e| (e.ifname.as_str(), e.default_route, e.default_route6))
        .collect();
    assert_eq!(sb, [("eth0", false, true), ("eth1", true, false)]);
    let plain_gw = s.networks["plain"].space.as_ref().unwrap().gateway();
    assert_eq!(confs["sb"].nameserver, Some(plain_gw.into()));
}
