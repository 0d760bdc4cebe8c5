use std::collections::BTreeSet;

use super::*;
use crate::overlay::observe::Link;
use crate::overlay::plan::{NodeAddr, Remote};

pub(super) fn network() -> NetworkPlan {
    NetworkPlan {
        name: "web".into(),
        vni: 4096,
        gateway: Some("10.0.0.1/24".parse().unwrap()),
        gateway_mac: [2, 0x42, 10, 0, 0, 1],
        gateway6: None,
        mtu: 1450,
        internal: false,
        encrypted: false,
        remotes: vec![Remote {
            ip: Some("10.0.0.3".parse().unwrap()),
            ip6: None,
            mac: [2, 0x42, 10, 0, 0, 3],
            node_ip: "198.18.0.2".parse().unwrap(),
        }],
        node_addr: None,
    }
}

pub(super) fn endpoint() -> EndpointPlan {
    EndpointPlan {
        id: "abcdef0123456789".into(),
        vni: 4096,
        sandbox: "/run/netns/a".into(),
        ifname: "eth0".into(),
        ip: Some("10.0.0.2/24".parse().unwrap()),
        mac: [2, 0x42, 10, 0, 0, 2],
        gateway: Some("10.0.0.1".parse().unwrap()),
        ip6: None,
        gateway6: None,
        mtu: 1450,
        default_route: true,
        default_route6: false,
        handoff: false,
    }
}

pub(super) fn plan() -> NodePlan {
    NodePlan {
        local_ip: Some("198.18.0.1".parse().unwrap()),
        vxlan_port: 4789,
        networks: vec![network()],
        endpoints: vec![endpoint()],
        published: vec![],
        dns_intercept: vec![],
        lb_idle_timeout: None,
    }
}

/// The kernel state that matches `plan()` exactly.
pub(super) fn matching() -> Observed {
    let mut o = Observed::default();
    let link = |index, kind, mac, master: Option<&str>, addrs: &[(&str, u8)]| Link {
        index,
        kind,
        mtu: 1450,
        mac,
        master: master.map(String::from),
        up: true,
        addrs: addrs
            .iter()
            .map(|(a, p)| (a.parse().unwrap(), *p))
            .collect(),
        addrs6: BTreeSet::new(),
    };
    o.links.insert(
        "shl-b4096".into(),
        link(
            10,
            LinkKind::Bridge,
            Some([2, 0x42, 10, 0, 0, 1]),
            None,
            &[("10.0.0.1", 24)],
        ),
    );
    let vx = LinkKind::Vxlan {
        vni: 4096,
        port: 4789,
        local: Some("198.18.0.1".parse().unwrap()),
        learning: false,
        proxy: true,
    };
    o.links.insert(
        "shl-v4096".into(),
        link(11, vx, None, Some("shl-b4096"), &[]),
    );
    o.links.insert(
        "shl-eabcdef01".into(),
        link(12, LinkKind::Veth, None, Some("shl-b4096"), &[]),
    );
    o.fdb.insert(
        "shl-v4096".into(),
        BTreeSet::from([([2, 0x42, 10, 0, 0, 3], "198.18.0.2".parse().unwrap())]),
    );
    o.neigh.insert(
        "shl-v4096".into(),
        BTreeSet::from([("10.0.0.3".parse().unwrap(), [2, 0x42, 10, 0, 0, 3])]),
    );
    o
}

#[test]
fn a_matching_kernel_needs_no_change() {
    assert_eq!(diff(&plan(), &matching()), vec![]);
}

#[test]
fn the_node_address_sits_on_the_bridge_as_a_host_route_and_leaves_with_it() {
    let mut p = plan();
    p.networks[0].node_addr = Some(NodeAddr {
        ip: Some("10.0.0.9".parse().unwrap()),
        ip6: None,
        mac: [2, 0x42, 10, 0, 0, 9],
    });
    let add = Change::AddAddress {
        link: "shl-b4096".into(),
        ip: "10.0.0.9".parse().unwrap(),
        prefix: 32,
    };
    assert_eq!(diff(&p, &matching()), vec![add.clone()]);
    let fresh = diff(&p, &Observed::default());
    assert!(fresh.contains(&add), "a new bridge gets it too: {fresh:?}");
    let mut have = matching();
    let br = have.links.get_mut("shl-b4096").unwrap();
    br.addrs.insert(("10.0.0.9".parse().unwrap(), 32));
    assert_eq!(diff(&p, &have), vec![]);
    assert_eq!(
        diff(&plan(), &have),
        vec![Change::DelAddress {
            link: "shl-b4096".into(),
            ip: "10.0.0.9".parse().unwrap(),
            prefix: 32,
        }]
    );
}

#[test]
fn an_empty_kernel_gets_everything_in_order() {
    let changes = diff(&plan(), &Observed::default());
    let kinds: Vec<&str> = changes
        .iter()
        .map(|c| match c {
            Change::CreateBridge { .. } => "bridge",
            Change::CreateVxlan { .. } => "vxlan",
            Change::AddFdb { .. } => "fdb",
            Change::AddNeigh { .. } => "neigh",
            Change::AddEndpoint { .. } => "endpoint",
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(kinds, vec!["bridge", "vxlan", "fdb", "neigh", "endpoint"]);
}

#[test]
fn an_empty_plan_removes_everything_shoal_made() {
    let changes = diff(&NodePlan::default(), &matching());
    let deleted: BTreeSet<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::DeleteLink { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted,
        BTreeSet::from([
            "shl-b4096".into(),
            "shl-v4096".into(),
            "shl-eabcdef01".into()
        ])
    );
}

#[test]
fn remote_endpoints_come_and_go_as_fdb_and_neighbour_entries() {
    let mut p = plan();
    p.networks[0].remotes.push(Remote {
        ip: Some("10.0.0.9".parse().unwrap()),
        ip6: None,
        mac: [2, 0x42, 10, 0, 0, 9],
        node_ip: "198.18.0.3".parse().unwrap(),
    });
    p.networks[0].remotes.remove(0);
    let changes = diff(&p, &matching());
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::DelFdb { dst, .. } if dst.to_string() == "198.18.0.2")));
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::AddNeigh { ip, .. } if ip.to_string() == "10.0.0.9")));
}

#[test]
fn drift_is_repaired_without_touching_what_is_right() {
    let mut o = matching();
    let br = o.links.get_mut("shl-b4096").unwrap();
    br.addrs.insert(("10.9.9.9".parse().unwrap(), 24));
    br.up = false;
    o.links.get_mut("shl-v4096").unwrap().kind = LinkKind::Vxlan {
        vni: 4096,
        port: 4789,
        local: Some("198.18.0.1".parse().unwrap()),
        learning: true,
        proxy: true,
    };
    let changes = diff(&plan(), &o);
    assert!(changes.contains(&Change::DelAddress {
        link: "shl-b4096".into(),
        ip: "10.9.9.9".parse().unwrap(),
        prefix: 24
    }));
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::FixLink { name, .. } if name == "shl-b4096")));
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::DeleteLink { name, .. } if name == "shl-v4096")));
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::CreateVxlan { .. })));
    assert!(
        changes.iter().any(|c| matches!(c, Change::AddFdb { .. })),
        "a recreated VXLAN gets its FDB again"
    );
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::AddEndpoint { .. })),
        "the endpoint was right"
    );
}

#[test]
fn an_endpoint_on_the_wrong_bridge_is_recreated() {
    let mut o = matching();
    o.links.get_mut("shl-eabcdef01").unwrap().master = None;
    let changes = diff(&plan(), &o);
    assert!(matches!(&changes[0], Change::DeleteLink { name, .. } if name == "shl-eabcdef01"));
    assert!(matches!(&changes[1], Change::AddEndpoint { .. }));
}

/// Docker's Join: the sandbox end waits in the node's namespace for dockerd to move it,
/// and comes back there on Leave; neither is a stray link to delete.
#[test]
fn a_handoff_endpoints_sandbox_end_is_left_for_the_runtime() {
    let mut p = plan();
    p.endpoints[0].handoff = true;
    p.endpoints[0].sandbox = "/var/run/docker/netns/0123456789ab".into();
    let mut have = matching();
    let peer = have.links["shl-eabcdef01"].clone();
    have.links.insert(
        "shl-pabcdef01".into(),
        Link {
            master: None,
            ..peer
        },
    );
    assert_eq!(diff(&p, &have), vec![], "waiting in the node's namespace");
    assert_eq!(diff(&p, &matching()), vec![], "moved into the container");
    let gone = diff(&plan(), &have);
    assert!(
        gone.iter()
            .any(|c| matches!(c, Change::DeleteLink { name, .. } if name == "shl-pabcdef01")),
        "an ordinary endpoint's stray peer is removed: {gone:?}"
    );
}
