//! Published ports over IPv6 (`lab up --underlay dual`, a network created with
//! `--ipv6`): a port answers on every node's IPv6 address as on its IPv4 one, through
//! the routing mesh from nodes without the task, keeping the client's IPv6 address
//! (`src=preserve`, the replies going back through the ingress node) or showing the
//! node's (`src=nat`); in host mode only on the task's node.

use std::net::{IpAddr, SocketAddr};

use shoal_tests::net::{peer_ip, tcp_read, tcp_seen, udp_exchange};
use shoal_tests::{require_root, Lab};

use super::BIN;

/// `host`'s underlay address of the family of `v6`, port `port`.
fn addr(lab: &Lab, host: &str, port: u16, v6: bool) -> SocketAddr {
    let ip: IpAddr = if v6 {
        lab.ip(host).parse().unwrap()
    } else {
        let v4 = format!("198.18.0.{}", host.trim_start_matches('n'));
        v4.parse().unwrap()
    };
    SocketAddr::new(ip, port)
}

/// `node`'s own IPv6 address on `network` (its routing-mesh endpoint).
fn node_address6(lab: &Lab, network: &str, node: &str) -> String {
    let net = lab.json("n1", &["network", "inspect", network]);
    let found = net["endpoints"].as_array().and_then(|eps| {
        eps.iter()
            .find(|e| e["node"] == node && e["sandbox"] == "/run/shoal/node-address")
            .and_then(|e| e["address6"].as_str())
    });
    let a = found.unwrap_or_else(|| panic!("no IPv6 address of {node} on {network}: {net}"));
    a.split('/').next().unwrap_or_default().to_string()
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn published_ports_answer_on_every_nodes_ipv6_address() {
    require_root("published_ports_answer_on_every_nodes_ipv6_address");
    let lab = Lab::up_with(BIN, 3, 1, &["--underlay", "dual"]);
    lab.ok("n1", &["network", "create", "--ipv6", "web6"]);
    lab.published_peer("keep", "web6", "n2", 7000, "src=preserve");
    lab.published_peer("nat", "web6", "n2", 7100, "src=nat");
    lab.published_peer("host", "web6", "n2", 7200, "mode=host");
    let client = lab.host_ns("client");
    let client6 = lab.ip("client");
    assert_eq!(client6, "fd00:5ea1::fa");

    // src=preserve: through every node (n1 and n3 have no task), over TCP and UDP, the
    // task sees the client's own IPv6 address; IPv4 still works beside it.
    for node in ["n1", "n2", "n3"] {
        tcp_seen(&client, addr(&lab, node, 7000, true), |ip| ip == client6);
        let udp = udp_exchange(&client, addr(&lab, node, 7000, true), b"hi".to_vec())
            .map(|a| String::from_utf8_lossy(&a).to_string());
        assert_eq!(
            udp.as_deref().and_then(peer_ip).as_deref(),
            Some(client6.as_str()),
            "UDP through {node}: {udp:?}"
        );
        tcp_seen(&client, addr(&lab, node, 7000, false), |ip| {
            ip == "198.18.0.250"
        });
    }

    // src=nat: the task sees the ingress node's own IPv6 address on the network.
    for node in ["n1", "n2", "n3"] {
        let want = node_address6(&lab, "web6", node);
        tcp_seen(&client, addr(&lab, node, 7100, true), |ip| ip == want);
    }

    // Host mode: only the task's node answers, keeping the client's address.
    tcp_seen(&client, addr(&lab, "n2", 7200, true), |ip| ip == client6);
    for node in ["n1", "n3"] {
        assert_eq!(
            tcp_read(&client, addr(&lab, node, 7200, true)),
            None,
            "{node} has no task of a host-mode port"
        );
    }
}
