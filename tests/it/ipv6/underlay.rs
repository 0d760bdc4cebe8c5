//! Labs on an IPv6-only underlay (`lab up --underlay ipv6`): the plain overlay as VXLAN
//! over IPv6, the encrypted one as WireGuard over IPv6 (nothing in the clear), the
//! bigger outer header taken off the networks' MTU, and a node advertising an IPv4
//! address refused by an IPv6 cluster.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_tests::{exec_in, ip_of, require_root, wait_until, Capture, Lab};

use super::{attach, attach_when_keyed, tshark_count, BIN};

/// Sends `bytes` from `from` to `to` port `port` and checks they arrive intact.
fn checksummed(
    from: &shoal_tests::Sandbox,
    to: &shoal_tests::Sandbox,
    ip: &str,
    port: u16,
    bytes: u64,
) {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let sink = to.sink(addr);
    let sent = from.send(addr, bytes, None).join().unwrap();
    let (got_bytes, got, _) = sink.join().unwrap();
    assert_eq!(
        (got_bytes, got),
        (bytes, sent),
        "{bytes} bytes intact to {addr}"
    );
}

fn ping_soon(sb: &shoal_tests::Sandbox, ip: &str) {
    wait_until(
        &format!("{} to reach {ip}", sb.ns),
        Duration::from_secs(10),
        || {
            if sb.ping(ip, 56) {
                Ok(())
            } else {
                Err("no answer".to_string())
            }
        },
    );
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn plain_and_encrypted_overlays_cross_an_ipv6_only_underlay() {
    require_root("plain_and_encrypted_overlays_cross_an_ipv6_only_underlay");
    let lab = Lab::up_with(BIN, 3, 1, &["--underlay", "ipv6"]);
    assert_eq!(lab.ip("n2"), "fd00:5ea1::2");
    let v4 = exec_in(
        &lab.host_ns("n1"),
        &["ip", "-4", "addr", "show", "dev", "eth0"],
    );
    assert!(
        v4.ok() && !v4.stdout.contains("inet "),
        "no IPv4 on the underlay: {}",
        v4.stdout
    );
    let nodes = lab.json("n1", &["node", "ls"]);
    let addrs: Vec<String> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["addr"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        addrs.iter().all(|a| a.starts_with("fd00:5ea1::")),
        "{nodes}"
    );

    // Plain: VXLAN over IPv6, 70 bytes of the 1500 for the headers.
    lab.ok("n1", &["network", "create", "--attachable", "plain"]);
    let net = lab.json("n1", &["network", "inspect", "plain"]);
    assert_eq!(net["mtu"], 1430, "{net}");
    let (a, b) = (lab.sandbox("a"), lab.sandbox("b"));
    let _ = ip_of(&attach(&lab, "n1", "plain", &a.ns, "a"));
    let b_ip = ip_of(&attach(&lab, "n3", "plain", &b.ns, "b"));
    let mut underlay = Capture::start(&format!("shl-{}-ul", lab.name), "br0", &["udp"]);
    ping_soon(&a, &b_ip);
    // 1430 less 20 of IPv4 and 8 of ICMP.
    assert!(a.ping(&b_ip, 1402), "full-size packets pass");
    assert!(
        !a.ping(&b_ip, 1403),
        "larger ones are refused, never fragmented"
    );
    checksummed(&a, &b, &b_ip, 5001, 20 << 20);
    underlay.stop();
    assert!(
        tshark_count(
            underlay.path(),
            "ipv6 && udp.dstport == 4789 && vxlan && icmp"
        ) >= 2,
        "the pings crossed as VXLAN over IPv6"
    );
    assert_eq!(
        tshark_count(underlay.path(), "!ipv6"),
        0,
        "no IPv4 on the underlay"
    );

    // Encrypted: only WireGuard over IPv6 on the underlay, 130 bytes for the headers.
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--opt",
            "encrypted",
            "sec",
        ],
    );
    let net = lab.json("n1", &["network", "inspect", "sec"]);
    assert_eq!(net["mtu"], 1370, "{net}");
    let (c, d) = (lab.sandbox("c"), lab.sandbox("d"));
    let _ = ip_of(&attach_when_keyed(&lab, "n1", "sec", &c.ns));
    let d_ip = ip_of(&attach_when_keyed(&lab, "n2", "sec", &d.ns));
    let mut underlay = Capture::start(&format!("shl-{}-ul", lab.name), "br0", &["udp"]);
    ping_soon(&c, &d_ip);
    assert!(
        c.ping(&d_ip, 1370 - 28),
        "full-size packets pass inside WireGuard"
    );
    checksummed(&c, &d, &d_ip, 5002, 20 << 20);
    underlay.stop();
    assert_eq!(
        tshark_count(underlay.path(), "vxlan || icmp || tcp"),
        0,
        "nothing in the clear on the underlay"
    );
    assert!(
        tshark_count(underlay.path(), "ipv6 && udp.port == 51820") >= 20,
        "the data crossed as WireGuard over IPv6"
    );
    assert_eq!(
        tshark_count(underlay.path(), "!ipv6"),
        0,
        "no IPv4 on the underlay"
    );
    let status = lab.ok("n1", &["status"]);
    assert!(status.contains("[fd00:5ea1::2]:51820"), "{status}");
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn a_node_advertising_ipv4_is_refused_by_an_ipv6_cluster() {
    require_root("a_node_advertising_ipv4_is_refused_by_an_ipv6_cluster");
    // Both families on the underlay; the agents advertise IPv6.
    let lab = Lab::up_with(BIN, 2, 1, &["--underlay", "dual"]);
    assert_eq!(lab.ip("n2"), "fd00:5ea1::2");
    let token = lab
        .ok("n1", &["cluster", "join-token", "-q", "worker"])
        .trim()
        .to_string();
    lab.ok("n2", &["cluster", "leave"]);
    let manager = "[fd00:5ea1::1]:2377";
    let e = lab.fails(
        "n2",
        &[
            "cluster",
            "join",
            "--token",
            &token,
            "--advertise-addr",
            "198.18.0.2",
            manager,
        ],
    );
    assert!(
        e.contains("advertises 198.18.0.2, an IPv4 address, but this cluster's underlay is IPv6")
            && e.contains("start the agent with an IPv6 --advertise-addr"),
        "{e}"
    );
    assert_eq!(lab.json("n2", &["status"])["in_cluster"], false);
    let nodes = lab.json("n1", &["node", "ls"]);
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| !n["addr"].as_str().unwrap_or_default().contains('.')),
        "nothing of IPv4 was admitted: {nodes}"
    );
}
