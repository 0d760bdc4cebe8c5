//! Dual-stack networks: the bridge's IPv6 gateway and the proxy-NDP entries.

use super::tests::{matching, plan};
use super::*;
use crate::overlay::plan::Remote;

fn dual_stack() -> NodePlan {
    let mut p = plan();
    p.networks[0].gateway6 = Some("fd00:1::1/64".parse().unwrap());
    p.networks[0].remotes[0].ip6 = Some("fd00:1::3".parse().unwrap());
    p
}

/// What the kernel has once `dual_stack()` is carried out.
fn matching6() -> Observed {
    let mut o = matching();
    if let Some(br) = o.links.get_mut("shl-b4096") {
        br.addrs6.insert(("fd00:1::1".parse().unwrap(), 64));
    }
    o.neigh6
        .entry("shl-v4096".into())
        .or_default()
        .insert(("fd00:1::3".parse().unwrap(), [2, 0x42, 10, 0, 0, 3]));
    o
}

#[test]
fn an_ipv4_only_plan_asks_for_no_ipv6_changes() {
    assert_eq!(diff(&plan(), &matching()), vec![]);
}

#[test]
fn a_dual_stack_network_gets_its_ipv6_gateway_and_proxy_ndp_entries() {
    let changes = diff(&dual_stack(), &matching());
    assert_eq!(
        changes,
        vec![
            Change::AddAddress6 {
                link: "shl-b4096".into(),
                ip: "fd00:1::1".parse().unwrap(),
                prefix: 64,
            },
            Change::AddNeigh6 {
                vxlan: "shl-v4096".into(),
                ip: "fd00:1::3".parse().unwrap(),
                mac: [2, 0x42, 10, 0, 0, 3],
            },
        ]
    );
    assert_eq!(
        diff(&dual_stack(), &matching6()),
        vec![],
        "nothing once done"
    );
}

#[test]
fn a_fresh_bridge_and_vxlan_get_everything_after_they_are_made() {
    let mut o = matching();
    o.links.remove("shl-b4096");
    o.links.remove("shl-v4096");
    let changes = diff(&dual_stack(), &o);
    let pos = |want: &dyn Fn(&Change) -> bool| changes.iter().position(want).unwrap();
    let bridge = pos(&|c| matches!(c, Change::CreateBridge { .. }));
    let gw6 = pos(&|c| matches!(c, Change::AddAddress6 { .. }));
    let vxlan = pos(&|c| matches!(c, Change::CreateVxlan { .. }));
    let neigh6 = pos(&|c| matches!(c, Change::AddNeigh6 { .. }));
    assert!(bridge < gw6 && vxlan < neigh6, "{changes:?}");
}

#[test]
fn remote_ipv6_endpoints_come_and_go_and_stray_addresses_are_removed() {
    let mut p = dual_stack();
    p.networks[0].remotes.push(Remote {
        ip: Some("10.0.0.9".parse().unwrap()),
        ip6: Some("fd00:1::9".parse().unwrap()),
        mac: [2, 0x42, 10, 0, 0, 9],
        node_ip: "198.18.0.3".parse().unwrap(),
    });
    p.networks[0].remotes.remove(0);
    let mut o = matching6();
    if let Some(br) = o.links.get_mut("shl-b4096") {
        br.addrs6.insert(("fd00:99::1".parse().unwrap(), 64));
    }
    let changes = diff(&p, &o);
    assert!(changes.contains(&Change::DelNeigh6 {
        vxlan: "shl-v4096".into(),
        ip: "fd00:1::3".parse().unwrap(),
    }));
    assert!(changes.contains(&Change::AddNeigh6 {
        vxlan: "shl-v4096".into(),
        ip: "fd00:1::9".parse().unwrap(),
        mac: [2, 0x42, 10, 0, 0, 9],
    }));
    assert!(changes.contains(&Change::DelAddress6 {
        link: "shl-b4096".into(),
        ip: "fd00:99::1".parse().unwrap(),
        prefix: 64,
    }));
}

/// `dual_stack()` without IPv4: an IPv6-only network and its remote endpoint.
fn ipv6_only() -> NodePlan {
    let mut p = dual_stack();
    p.networks[0].gateway = None;
    p.networks[0].remotes[0].ip = None;
    p
}

#[test]
fn an_ipv6_only_network_gets_no_ipv4_address_nor_arp_entries() {
    let mut o = matching();
    o.links.remove("shl-b4096");
    o.links.remove("shl-v4096");
    let changes = diff(&ipv6_only(), &o);
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::AddAddress { .. } | Change::AddNeigh { .. })),
        "nothing IPv4: {changes:?}"
    );
    let made = |want: fn(&Change) -> bool| changes.iter().any(want);
    assert!(
        made(|c| matches!(c, Change::CreateBridge { .. })),
        "{changes:?}"
    );
    assert!(
        made(|c| matches!(c, Change::AddAddress6 { .. })),
        "{changes:?}"
    );
    assert!(made(|c| matches!(c, Change::AddFdb { .. })), "{changes:?}");
    assert!(
        made(|c| matches!(c, Change::AddNeigh6 { .. })),
        "{changes:?}"
    );
    // A bridge and VXLAN device left with IPv4 from before lose it.
    let stale = diff(&ipv6_only(), &matching6());
    assert!(stale.contains(&Change::DelAddress {
        link: "shl-b4096".into(),
        ip: "10.0.0.1".parse().unwrap(),
        prefix: 24,
    }));
    assert!(
        stale.iter().any(|c| matches!(c, Change::DelNeigh { .. })),
        "{stale:?}"
    );
}

#[test]
fn the_node_address_on_a_dual_stack_network_gets_its_ipv6_address_too() {
    let mut p = dual_stack();
    p.networks[0].node_addr = Some(crate::overlay::plan::NodeAddr {
        ip: Some("10.0.0.9".parse().unwrap()),
        ip6: Some("fd00:1::9".parse().unwrap()),
        mac: [2, 0x42, 10, 0, 0, 9],
    });
    let mut have = matching6();
    have.links
        .get_mut("shl-b4096")
        .unwrap()
        .addrs
        .insert(("10.0.0.9".parse().unwrap(), 32));
    let add = Change::AddAddress6 {
        link: "shl-b4096".into(),
        ip: "fd00:1::9".parse().unwrap(),
        prefix: 128,
    };
    assert_eq!(diff(&p, &have), vec![add]);
    have.links
        .get_mut("shl-b4096")
        .unwrap()
        .addrs6
        .insert(("fd00:1::9".parse().unwrap(), 128));
    assert_eq!(diff(&p, &have), vec![]);
    p.networks[0].node_addr = None;
    let mut left = diff(&p, &have);
    left.retain(|c| matches!(c, Change::DelAddress6 { .. }));
    assert_eq!(left.len(), 1, "it leaves with the node address");
}
