//! The routing mesh and the L7 ingress on IPv6-only networks (`network create --ipv6
//! --ipv4=false`) on a lab whose underlay is IPv6: each node gets an IPv6 address of
//! its own on the network (and no IPv4 one); published ports answer on every node's
//! IPv6 address, keeping the client's address (`src=preserve`, the replies going back
//! through the ingress node) or showing the node's (`src=nat`), in host mode only on
//! the task's node; an HTTP route reaches the task's IPv6 address from the node's. On
//! an IPv4 underlay, such a port answers on the nodes' loopback addresses.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use shoal_tests::net::{http_request, peer_ip, tcp_read, tcp_seen, udp_exchange};
use shoal_tests::{exec_in, require_root, wait_until, Lab};

use super::BIN;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// `host`'s (IPv6) underlay address, port `port`.
fn addr(lab: &Lab, host: &str, port: u16) -> SocketAddr {
    let ip: IpAddr = lab.ip(host).parse().unwrap();
    assert!(ip.is_ipv6(), "{host} has an IPv6 underlay: {ip}");
    SocketAddr::new(ip, port)
}

/// `node`'s own endpoint on `network` (routing mesh, L7 ingress): its IPv6 address,
/// once it has one, checking it has no IPv4 one.
fn node_address6(lab: &Lab, network: &str, node: &str) -> String {
    wait_until(
        &format!("{node} to have an address of its own on {network}"),
        Duration::from_secs(20),
        || {
            let net = lab.json("n1", &["network", "inspect", network]);
            let own = net["endpoints"].as_array().and_then(|eps| {
                eps.iter()
                    .find(|e| e["node"] == node && e["sandbox"] == "/run/shoal/node-address")
                    .cloned()
            });
            let own = own.ok_or_else(|| format!("none yet: {net}"))?;
            assert!(own.get("address").is_none(), "no IPv4 address: {own}");
            let a = own["address6"].as_str().ok_or(format!("{own}"))?;
            Ok(a.split('/').next().unwrap_or_default().to_string())
        },
    )
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn published_ports_and_http_routes_work_on_an_ipv6_only_network() {
    require_root("published_ports_and_http_routes_work_on_an_ipv6_only_network");
    let lab = Lab::up_with(BIN, 3, 1, &["--underlay", "ipv6"]);
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--ipv6",
            "--ipv4=false",
            "--subnet",
            "fd00:78::/64",
            "only6",
        ],
    );
    let vni = lab.json("n1", &["network", "inspect", "only6"])["vni"]
        .as_u64()
        .expect("vni");
    lab.published_peer("keep", "only6", "n2", 7000, "src=preserve");
    lab.published_peer("nat", "only6", "n2", 7100, "src=nat");
    lab.published_peer("host", "only6", "n2", 7200, "mode=host");
    let client = lab.host_ns("client");
    let client6 = lab.ip("client");
    let own: Vec<String> = NODES
        .iter()
        .map(|n| node_address6(&lab, "only6", n))
        .collect();
    assert!(own.iter().all(|a| a.starts_with("fd00:78::")), "{own:?}");

    // src=preserve: through every node (n1 and n3 have no task), over TCP and UDP, the
    // task sees the client's own IPv6 address.
    for node in NODES {
        tcp_seen(&client, addr(&lab, node, 7000), |ip| ip == client6);
        let udp = udp_exchange(&client, addr(&lab, node, 7000), b"hi".to_vec())
            .map(|a| String::from_utf8_lossy(&a).to_string());
        assert_eq!(
            udp.as_deref().and_then(peer_ip).as_deref(),
            Some(client6.as_str()),
            "UDP through {node}: {udp:?}"
        );
    }
    // On a node itself, through the agent's loopback relay on ::1.
    let loopback: SocketAddr = "[::1]:7000".parse().unwrap();
    tcp_seen(&lab.host_ns("n1"), loopback, |_| true);
    // src=nat: the task sees the ingress node's own IPv6 address on the network.
    for (node, want) in NODES.iter().zip(&own) {
        tcp_seen(&client, addr(&lab, node, 7100), |ip| ip == want);
    }
    // Host mode: only the task's node answers, keeping the client's address.
    tcp_seen(&client, addr(&lab, "n2", 7200), |ip| ip == client6);
    for node in ["n1", "n3"] {
        assert_eq!(
            tcp_read(&client, addr(&lab, node, 7200)),
            None,
            "{node} has no task of a host-mode port"
        );
    }

    // An HTTP route from service labels: every node's ingress reaches the task's IPv6
    // address, from its own IPv6 address on the network.
    lab.create_service(
        &[
            "--name",
            "site",
            "--network",
            "only6",
            "--constraint",
            "node.hostname==n3",
            "--label",
            "shoal.http.routers.site.rule=Host(`site.test`)",
        ],
        &[BIN, "tool", "http", "--port", "80"],
    );
    lab.wait_running("site", 1);
    for (node, want) in NODES.iter().zip(&own) {
        let body = wait_until(
            &format!("site.test through {node}"),
            Duration::from_secs(30),
            || match http_request(&client, addr(&lab, node, 80), "site.test", "/") {
                Some((200, body)) if body.contains("service=site ") => Ok(body),
                other => Err(format!("{other:?}")),
            },
        );
        assert_eq!(
            peer_ip(&body).as_deref(),
            Some(want.as_str()),
            "{node} dials from its own address: {body}"
        );
    }

    // Nothing IPv4 for the network on any node: no address on its bridge, and no
    // published port or source NAT in the `ip` table; the IPv6 ones in `ip6 shoal`.
    let bridge = format!("shl-b{vni}");
    for node in NODES {
        let ns = lab.host_ns(node);
        let addr4 = exec_in(&ns, &["ip", "-4", "addr", "show", "dev", &bridge]);
        assert!(
            addr4.ok() && !addr4.stdout.contains("inet "),
            "{node}: {}",
            addr4.stdout
        );
        let v4 = exec_in(&ns, &["nft", "list", "table", "ip", "shoal"]).stdout;
        for port in ["7000", "7100", "7200"] {
            assert!(!v4.contains(&format!("pub-6-{port}")), "{node}: {v4}");
        }
        assert!(!v4.contains(&bridge), "{node}: {v4}");
        let v6 = exec_in(&ns, &["nft", "list", "table", "ip6", "shoal"]);
        assert!(v6.ok(), "{node}: {}", v6.stderr);
        assert!(v6.stdout.contains("pub-6-7000"), "{node}: {}", v6.stdout);
    }
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn an_ipv6_only_networks_port_answers_on_loopback_of_nodes_with_an_ipv4_underlay() {
    require_root("an_ipv6_only_networks_port_answers_on_loopback_of_nodes_with_an_ipv4_underlay");
    let lab = Lab::up(BIN, 2, 1);
    lab.ok(
        "n1",
        &["network", "create", "--ipv6", "--ipv4=false", "only6"],
    );
    lab.published_peer("keep", "only6", "n2", 7000, "src=preserve");
    // The relay on 127.0.0.1 and ::1 connects to the network's IPv6 gateway on the
    // node's bridge (the port is not published on the node's IPv4 addresses), on the
    // node without the task and on the one with it.
    for node in ["n1", "n2"] {
        for to in ["127.0.0.1:7000", "[::1]:7000"] {
            tcp_seen(&lab.host_ns(node), to.parse().unwrap(), |ip| {
                ip.contains(':')
            });
        }
        let underlay4 = addr4(&lab, node, 7000);
        assert_eq!(
            tcp_read(&lab.host_ns("client"), underlay4),
            None,
            "{node}'s IPv4 address does not answer for an IPv6-only network"
        );
    }
}

/// `host`'s (IPv4) underlay address, port `port`.
fn addr4(lab: &Lab, host: &str, port: u16) -> SocketAddr {
    SocketAddr::new(lab.ip(host).parse().unwrap(), port)
}
