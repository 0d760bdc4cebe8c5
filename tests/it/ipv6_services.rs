//! Services on dual-stack networks on real labs: an IPv6 VIP beside the IPv4 one,
//! named by AAAA and load-balanced in the client's sandbox, the task seeing the
//! client's own IPv6 address.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use shoal_tests::net::{resolve, tcp_read};
use shoal_tests::{ip_of, wait_until, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

/// The address `shoal tool peer` says it saw (`peer=IP:PORT ...`), without the port
/// or the brackets of an IPv6 address.
fn peer_ip(answer: &str) -> Option<String> {
    let peer = answer
        .split_whitespace()
        .find_map(|w| w.strip_prefix("peer="))?;
    let ip = peer.rsplit_once(':')?.0;
    Some(ip.trim_start_matches('[').trim_end_matches(']').to_string())
}

/// The task that answered (`task=ID`).
fn task_of(answer: &str) -> Option<String> {
    answer
        .split_whitespace()
        .find_map(|w| w.strip_prefix("task="))
        .map(String::from)
}

/// The IPv6 address of an endpoint as `attach --format json` prints it.
fn ip6_of(endpoint: &Value) -> Ipv6Addr {
    endpoint["address6"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address6 in {endpoint}"))
}

/// Creates service `name` on `network` with `replicas` tasks running `shoal tool
/// peer` on `port`, with `extra` options.
fn peer_service(lab: &Lab, name: &str, network: &str, replicas: u32, port: u16, extra: &[&str]) {
    let replicas = replicas.to_string();
    let port = port.to_string();
    let mut args = vec![
        "--name",
        name,
        "--network",
        network,
        "--replicas",
        &replicas,
    ];
    args.extend(extra);
    lab.create_service(&args, &[BIN, "tool", "peer", "--port", &port]);
}

/// Waits until `service` has `n` running tasks.
fn running(lab: &Lab, service: &str, n: usize) {
    wait_until(
        &format!("{n} running tasks of {service}"),
        Duration::from_secs(30),
        || {
            let t = lab.tasks(service);
            let up = t.iter().filter(|t| t["state"] == "running").count();
            if up == n {
                Ok(())
            } else {
                Err(format!("{up} running"))
            }
        },
    );
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn an_ipv6_vip_is_named_by_aaaa_and_spreads_connections_keeping_the_clients_address() {
    shoal_tests::require_root(
        "an_ipv6_vip_is_named_by_aaaa_and_spreads_connections_keeping_the_clients_address",
    );
    let lab = Lab::up(BIN, 3, 1);
    lab.ok(
        "n1",
        &["network", "create", "--attachable", "--ipv6", "web6"],
    );
    peer_service(&lab, "echo", "web6", 3, 7000, &[]);
    running(&lab, "echo", 3);
    let svc = lab.json("n1", &["service", "inspect", "echo"]);
    let vip6: Ipv6Addr = svc["vips6"]["web6"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no IPv6 VIP: {svc}"));
    assert!(svc["vips"]["web6"].is_string(), "the IPv4 VIP stays: {svc}");
    let ls = lab.ok("n1", &["service", "ls"]);
    assert!(ls.contains(&format!("web6={vip6}")), "{ls}");

    let client = lab.sandbox("cli");
    let ep = lab.json(
        "n3",
        &["attach", "--network", "web6", "--name", "cli", &client.ns],
    );
    let me6 = ip6_of(&ep);
    let gateway: Ipv4Addr = ep["gateway"].as_str().unwrap().parse().unwrap();
    let aaaa = wait_until("AAAA echo", Duration::from_secs(10), || {
        resolve(&client.ns, gateway, "echo", 28).ok_or_else(|| "no answer".to_string())
    });
    assert_eq!(aaaa.aaaa, vec![vip6], "the service's name is its IPv6 VIP");
    let tasks6 = resolve(&client.ns, gateway, "tasks.echo", 28).expect("AAAA tasks.echo");
    assert_eq!(
        tasks6.aaaa.len(),
        3,
        "every task's IPv6 address: {tasks6:?}"
    );
    assert!(!tasks6.aaaa.contains(&vip6));

    // Connections to [VIP]:7000 reach the tasks, which see the client's IPv6 address;
    // the draw spreads them.
    let to = SocketAddr::new(vip6.into(), 7000);
    let mut seen = BTreeSet::new();
    wait_until(
        "connections through the IPv6 VIP to reach two tasks",
        Duration::from_secs(30),
        || {
            let answer = tcp_read(&client.ns, to).ok_or("no answer")?;
            let peer = peer_ip(&answer).ok_or(format!("no peer in {answer:?}"))?;
            if peer != me6.to_string() {
                return Err(format!("the task saw {peer}, not {me6}"));
            }
            seen.extend(task_of(&answer));
            if seen.len() >= 2 {
                Ok(())
            } else {
                Err(format!("only {seen:?} so far"))
            }
        },
    );
    // The IPv4 VIP works as before beside it.
    let vip4: Ipv4Addr = svc["vips"]["web6"].as_str().unwrap().parse().unwrap();
    let answer = tcp_read(&client.ns, SocketAddr::new(vip4.into(), 7000)).expect("IPv4 VIP");
    assert_eq!(peer_ip(&answer), Some(ip_of(&ep)));

    // Scaled to zero, the IPv6 VIP refuses at once rather than hanging.
    lab.ok("n1", &["service", "scale", "echo=0"]);
    wait_until(
        "the VIP to refuse",
        Duration::from_secs(20),
        || match tcp_read(&client.ns, to) {
            None => Ok(()),
            Some(a) => Err(format!("still answered: {a}")),
        },
    );
    // Removing the service gives its IPv6 VIP back and takes its name away.
    lab.ok("n1", &["service", "rm", "echo"]);
    wait_until(
        "AAAA echo to go",
        Duration::from_secs(10),
        || match resolve(&client.ns, gateway, "echo", 28) {
            Some(a) if !a.aaaa.is_empty() => Err(format!("still {:?}", a.aaaa)),
            _ => Ok(()),
        },
    );
}
