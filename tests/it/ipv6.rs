//! Dual-stack overlay networks (`network create --ipv6`) on real labs: IPv6 addresses
//! beside the IPv4 ones, ping and checksummed TCP across nodes over IPv6, full-size
//! IPv6 frames, proxy NDP for remote endpoints, and bad input refused clearly; the
//! underlay itself on IPv6 in [`underlay`], IPv6-only networks in [`only`], published
//! ports over IPv6 in [`published`], published ports and HTTP routes on IPv6-only
//! networks in [`only_ingress`].

#[path = "ipv6/only.rs"]
mod only;
#[path = "ipv6/only_ingress.rs"]
mod only_ingress;
#[path = "ipv6/published.rs"]
mod published;
#[path = "ipv6/underlay.rs"]
mod underlay;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use std::time::Duration;

use shoal_tests::net::{resolve, DnsAnswer};
use shoal_tests::{exec_in, ip_of, require_root, wait_until, Capture, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

fn attach(lab: &Lab, host: &str, network: &str, ns: &str, name: &str) -> Value {
    lab.json(host, &["attach", "--network", network, "--name", name, ns])
}

/// The IPv6 address of an endpoint as `attach --format json` prints it.
fn ip6_of(endpoint: &Value) -> String {
    endpoint["address6"]
        .as_str()
        .unwrap_or_else(|| panic!("no address6 in {endpoint}"))
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The resolver's answer to `name` (type `qtype`: 1 A, 28 AAAA), once it has one.
fn ask(ns: &str, server: std::net::Ipv4Addr, name: &str, qtype: u16) -> DnsAnswer {
    wait_until(
        &format!("an answer for {name}"),
        Duration::from_secs(10),
        || resolve(ns, server, name, qtype).ok_or_else(|| "no answer".to_string()),
    )
}

/// How many packets of the capture match the tshark display filter (VXLAN on 4789 is
/// decoded down to the inner ICMPv6).
fn tshark_count(file: &Path, filter: &str) -> usize {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-Y", filter])
        .output()
        .expect("tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn dual_stack_sandboxes_on_three_nodes_talk_over_ipv6_with_intact_data() {
    require_root("dual_stack_sandboxes_on_three_nodes_talk_over_ipv6_with_intact_data");
    let lab = Lab::up(BIN, 3, 1);
    lab.ok(
        "n1",
        &["network", "create", "--attachable", "--ipv6", "web6"],
    );
    let net = lab.json("n1", &["network", "inspect", "web6"]);
    assert_eq!(net["enable_ipv6"], true, "{net}");
    let config = net["ipam_config"].as_array().expect("ipam_config");
    assert_eq!(config.len(), 2, "{net}");
    let subnet6 = config[1]["subnet"].as_str().unwrap().to_string();
    assert!(
        subnet6.starts_with("fd") && subnet6.ends_with("::/64"),
        "{subnet6}"
    );
    let gateway6 = config[1]["gateway"].as_str().unwrap().to_string();

    let sbs: Vec<_> = (1..=3).map(|i| lab.sandbox(&format!("sb{i}"))).collect();
    let eps: Vec<Value> = (1..=3)
        .map(|i| {
            attach(
                &lab,
                &format!("n{i}"),
                "web6",
                &sbs[i - 1].ns,
                &format!("s{i}"),
            )
        })
        .collect();
    let ips6: Vec<String> = eps.iter().map(ip6_of).collect();
    for e in &eps {
        assert_eq!(e["gateway6"].as_str(), Some(gateway6.as_str()), "{e}");
        assert!(ip_of(e).starts_with("10."), "IPv4 as before: {e}");
    }
    // AAAA for sandbox names, from the resolver on the (IPv4) gateway of each node.
    let gateway: std::net::Ipv4Addr = eps[0]["gateway"].as_str().unwrap().parse().unwrap();
    for (i, sb) in sbs.iter().enumerate() {
        let target = (i + 1) % 3;
        let name = format!("s{}", target + 1);
        let got = ask(&sb.ns, gateway, &name, 28);
        assert_eq!(got.rcode, 0);
        let want: std::net::Ipv6Addr = ips6[target].parse().unwrap();
        assert_eq!(got.aaaa, vec![want], "AAAA {name} from sb{}", i + 1);
        let a = ask(&sb.ns, gateway, &name, 1);
        assert_eq!(a.a.len(), 1, "A {name} as before");
    }
    let mut underlay = Capture::start(
        &format!("shl-{}-ul", lab.name),
        "br0",
        &["udp", "port", "4789"],
    );
    let route = sbs[0]
        .exec(&["ip", "-6", "route", "show", "default"])
        .stdout;
    assert!(route.contains(&format!("via {gateway6}")), "{route}");
    assert!(sbs[0].ping(&gateway6, 56), "the anycast gateway answers");
    for (i, sb) in sbs.iter().enumerate() {
        for (j, ip) in ips6.iter().enumerate() {
            if i != j {
                assert!(sb.ping(ip, 56), "sb{} cannot ping {ip}", i + 1);
            }
        }
    }
    let unknown = format!("{}ffff", gateway6.trim_end_matches('1'));
    assert!(!sbs[0].ping(&unknown, 56), "{unknown} is nobody");
    underlay.stop();
    assert!(
        tshark_count(underlay.path(), "icmpv6.type == 128") >= 6,
        "the echo requests crossed the underlay inside VXLAN"
    );
    assert_eq!(
        tshark_count(underlay.path(), "icmpv6.type == 135 || icmpv6.type == 136"),
        0,
        "no neighbour solicitation or advertisement crosses the underlay"
    );
    // MTU 1450: 40 bytes of IPv6 header and 8 of ICMPv6 leave 1402 for the payload.
    assert!(sbs[0].ping(&ips6[2], 1402), "full-size IPv6 packets pass");
    assert!(
        !sbs[0].ping(&ips6[2], 1403),
        "larger ones are refused, never fragmented"
    );

    let to: SocketAddr = format!("[{}]:5001", ips6[2]).parse().unwrap();
    let sink = sbs[2].sink(to);
    let sent = sbs[0].send(to, 50 << 20, None).join().unwrap();
    let (bytes, got, peer) = sink.join().unwrap();
    assert_eq!(bytes, 50 << 20);
    assert_eq!(got, sent, "checksum of 50 MB over IPv6 across nodes");
    assert_eq!(peer.ip().to_string(), ips6[0], "no NAT inside the overlay");

    // Remote endpoints are answered for by the VXLAN device (proxy NDP), from entries
    // shoal programmed, not learnt by flooding solicitations to other nodes.
    let vni = net["vni"].as_u64().unwrap();
    let neigh = exec_in(
        &lab.host_ns("n1"),
        &["ip", "-6", "neigh", "show", "dev", &format!("shl-v{vni}")],
    )
    .stdout;
    for ip in &ips6[1..] {
        assert!(
            neigh
                .lines()
                .any(|l| l.starts_with(&format!("{ip} ")) && l.contains("PERMANENT")),
            "no permanent neighbour entry for {ip} on n1: {neigh}"
        );
    }
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn bad_ipv6_network_input_is_refused_clearly_and_leaves_nothing() {
    require_root("bad_ipv6_network_input_is_refused_clearly_and_leaves_nothing");
    let lab = Lab::up(BIN, 1, 1);
    fn create<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut full = vec!["network", "create", "--attachable"];
        full.extend(args);
        full
    }
    lab.ok(
        "n1",
        &create(&["--ipv6", "--subnet", "fd00:1::/64", "taken"]),
    );
    let cases: [(&[&str], &str); 5] = [
        (
            &["--ipv6", "--subnet", "fd00:2::/127", "x"],
            "IPv6 subnet fd00:2::/127 is too small",
        ),
        (
            &["--ipv6", "--subnet", "fd00:1::/56", "x"],
            "overlaps network \"taken\"",
        ),
        (
            &[
                "--ipv6",
                "--subnet",
                "fd00:3::/64",
                "--gateway",
                "10.9.0.1",
                "x",
            ],
            "10.9.0.1 has no IPv4 --subnet",
        ),
        (&["--subnet", "fd00:3::/64", "x"], "add --ipv6"),
        (
            &[
                "--ipv6",
                "--subnet",
                "10.9.0.0/24",
                "--subnet",
                "10.9.1.0/24",
                "x",
            ],
            "at most one IPv4 --subnet",
        ),
    ];
    for (args, want) in cases {
        let err = lab.fails("n1", &create(args));
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let nets = lab.json("n1", &["network", "ls"]);
    let names: Vec<&str> = nets
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert!(!names.contains(&"x"), "{names:?}");
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn ipv6_stays_inside_its_network_even_with_host_ipv6_forwarding_on() {
    require_root("ipv6_stays_inside_its_network_even_with_host_ipv6_forwarding_on");
    let lab = Lab::up(BIN, 1, 1);
    let host = lab.host_ns("n1");
    let on = exec_in(&host, &["sysctl", "-w", "net.ipv6.conf.all.forwarding=1"]);
    assert!(on.ok(), "{}", on.stderr);
    for net in ["red6", "blue6"] {
        lab.ok("n1", &["network", "create", "--attachable", "--ipv6", net]);
    }
    let (a, b, c) = (lab.sandbox("a"), lab.sandbox("b"), lab.sandbox("c"));
    let a6 = ip6_of(&attach(&lab, "n1", "red6", &a.ns, "a"));
    let b6 = ip6_of(&attach(&lab, "n1", "blue6", &b.ns, "b"));
    let c6 = ip6_of(&attach(&lab, "n1", "red6", &c.ns, "c"));
    assert!(a.ping(&c6, 56), "within red6");
    let rules = exec_in(&host, &["nft", "list", "table", "inet", "shoal"]).stdout;
    assert!(rules.contains("red6: IPv6 stays in the network"), "{rules}");
    assert!(!a.ping(&b6, 56), "red6 must not reach blue6 over IPv6");
    assert!(!b.ping(&a6, 56), "blue6 must not reach red6 over IPv6");
}

/// Attaches `ns` on `host` to `network`, retrying while the node's WireGuard key is
/// not announced yet (encrypted networks).
fn attach_when_keyed(lab: &Lab, host: &str, network: &str, ns: &str) -> Value {
    wait_until(
        &format!("{ns} to attach on {host}"),
        Duration::from_secs(15),
        || {
            let out = lab.shoal(
                host,
                &["attach", "--network", network, ns, "--format", "json"],
            );
            if out.ok() {
                serde_json::from_str::<Value>(&out.stdout).map_err(|e| e.to_string())
            } else {
                Err(out.stderr)
            }
        },
    )
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn encrypted_dual_stack_network_carries_ipv6_inside_wireguard_with_proxy_ndp() {
    require_root("encrypted_dual_stack_network_carries_ipv6_inside_wireguard_with_proxy_ndp");
    let lab = Lab::up(BIN, 2, 1);
    let args = [
        "network",
        "create",
        "--attachable",
        "--ipv6",
        "--opt",
        "encrypted",
        "sec6",
    ];
    lab.ok("n1", &args);
    let (a, b) = (lab.sandbox("a"), lab.sandbox("b"));
    let _ = ip6_of(&attach_when_keyed(&lab, "n1", "sec6", &a.ns));
    let b6 = ip6_of(&attach_when_keyed(&lab, "n2", "sec6", &b.ns));
    let mut underlay = Capture::start(&format!("shl-{}-ul", lab.name), "br0", &["udp"]);
    wait_until(&format!("a to reach {b6}"), Duration::from_secs(10), || {
        if a.ping(&b6, 56) {
            Ok(())
        } else {
            Err("no answer".to_string())
        }
    });
    let to: SocketAddr = format!("[{b6}]:5002").parse().unwrap();
    let sink = b.sink(to);
    let sent = a.send(to, 20 << 20, None).join().unwrap();
    let (bytes, got, _) = sink.join().unwrap();
    assert_eq!(
        (bytes, got),
        (20 << 20, sent),
        "20 MB intact over encrypted IPv6"
    );
    underlay.stop();
    assert_eq!(
        tshark_count(underlay.path(), "vxlan || icmpv6"),
        0,
        "nothing in the clear on the underlay: no VXLAN, no neighbour discovery"
    );
}
