//! IPv6-only networks (`network create --ipv6 --ipv4=false`) on a lab whose underlay
//! is IPv6 too: endpoints and a service's VIP of IPv6 alone, AAAA and NODATA for A,
//! ping and TCP across nodes, and nothing IPv4 in the sandbox or on the nodes for it.

use std::collections::BTreeSet;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use shoal_tests::net::{peer_ip, resolve, task_of, tcp_read};
use shoal_tests::{exec_in, require_root, wait_until, Lab};

use super::{attach, BIN};

/// An IPv6 address as the API prints it, with or without its prefix length.
fn v6(value: &Value) -> Ipv6Addr {
    value
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("not an IPv6 address: {value}"))
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn an_ipv6_only_network_carries_a_service_and_a_sandbox_without_any_ipv4() {
    require_root("an_ipv6_only_network_carries_a_service_and_a_sandbox_without_any_ipv4");
    let lab = Lab::up_with(BIN, 3, 1, &["--underlay", "ipv6"]);
    let e = lab.fails("n1", &["network", "create", "--ipv4=false", "x"]);
    assert!(e.contains("a network needs IPv4 or IPv6"), "{e}");
    let e = lab.fails(
        "n1",
        &[
            "network",
            "create",
            "--ipv6",
            "--ipv4=false",
            "--subnet",
            "10.9.0.0/24",
            "x",
        ],
    );
    assert!(
        e.contains("subnet 10.9.0.0/24 is IPv4 but the network is IPv6-only"),
        "{e}"
    );
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--ipv6",
            "--ipv4=false",
            "--subnet",
            "fd00:77::/64",
            "only6",
        ],
    );
    let net = lab.json("n1", &["network", "inspect", "only6"]);
    assert_eq!(
        (&net["enable_ipv4"], &net["enable_ipv6"]),
        (&Value::Bool(false), &Value::Bool(true)),
        "{net}"
    );
    assert!(
        net.get("subnet").is_none() && net.get("gateway").is_none(),
        "{net}"
    );
    assert_eq!(net["ipam_config"][0]["subnet"], "fd00:77::/64", "{net}");
    assert_eq!(net["ipam_config"].as_array().map(Vec::len), Some(1));
    let gateway6: Ipv6Addr = "fd00:77::1".parse().unwrap();
    let vni = net["vni"].as_u64().expect("vni");

    // Two tasks, on two nodes; the client sandbox on the third.
    lab.create_service(
        &["--name", "echo", "--network", "only6", "--replicas", "2"],
        &[BIN, "tool", "peer", "--port", "7000"],
    );
    lab.wait_running("echo", 2);
    let tasks = lab.tasks("echo");
    let task_nodes: BTreeSet<String> = tasks
        .iter()
        .map(|t| t["node"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(task_nodes.len(), 2, "tasks on two nodes: {tasks:?}");
    let task_ips: Vec<Ipv6Addr> = tasks.iter().map(|t| v6(&t["addresses"]["only6"])).collect();
    let svc = lab.json("n1", &["service", "inspect", "echo"]);
    assert!(
        svc["vips"].as_object().is_some_and(|v| v.is_empty()),
        "no IPv4 VIP: {svc}"
    );
    let vip6 = v6(&svc["vips6"]["only6"]);
    let client_node = ["n1", "n2", "n3"]
        .into_iter()
        .find(|n| !task_nodes.contains(*n))
        .unwrap();
    let client = lab.sandbox("cli");
    let ep = attach(&lab, client_node, "only6", &client.ns, "cli");
    assert!(
        ep.get("address").is_none() && ep.get("gateway").is_none(),
        "{ep}"
    );
    assert_eq!(v6(&ep["gateway6"]), gateway6, "{ep}");
    assert_eq!(
        v6(&ep["dns"]),
        gateway6,
        "the resolver is on the IPv6 gateway: {ep}"
    );
    let me6 = v6(&ep["address6"]);

    // The sandbox has no IPv4 but loopback's, and only an IPv6 default route.
    let addrs = client.exec(&["ip", "-4", "-o", "addr", "show"]).stdout;
    assert!(addrs.contains("127.0.0.1"), "{addrs}");
    assert!(
        addrs
            .lines()
            .all(|l| l.split_whitespace().nth(1) == Some("lo")),
        "IPv4 only on lo: {addrs}"
    );
    let routes4 = client.exec(&["ip", "-4", "route", "show"]).stdout;
    assert!(routes4.trim().is_empty(), "no IPv4 routes: {routes4}");
    let route6 = client
        .exec(&["ip", "-6", "route", "show", "default"])
        .stdout;
    assert!(route6.contains(&format!("via {gateway6}")), "{route6}");

    // AAAA for the service (its IPv6 VIP) and its tasks; A is NODATA, not NXDOMAIN.
    let aaaa = wait_until("AAAA echo", Duration::from_secs(10), || {
        match resolve(&client.ns, gateway6, "echo", 28) {
            Some(a) if !a.aaaa.is_empty() => Ok(a),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(aaaa.aaaa, vec![vip6], "the name is the IPv6 VIP");
    let a = resolve(&client.ns, gateway6, "echo", 1).expect("an answer to A echo");
    assert_eq!((a.rcode, a.answers), (0, 0), "NODATA: {a:?}");
    let tasks6 = resolve(&client.ns, gateway6, "tasks.echo", 28).expect("AAAA tasks.echo");
    let mut want = task_ips.clone();
    want.sort();
    assert_eq!(tasks6.aaaa, want);
    let a_tasks = resolve(&client.ns, gateway6, "tasks.echo", 1).expect("A tasks.echo");
    assert_eq!((a_tasks.rcode, a_tasks.answers), (0, 0), "{a_tasks:?}");
    // The C library's resolver, through the sandbox's resolv.conf: the VIP, no IPv4.
    let getent = client.exec(&["getent", "ahosts", "echo"]);
    assert!(getent.ok(), "getent ahosts echo: {}", getent.stderr);
    assert!(
        getent.stdout.contains(&vip6.to_string()),
        "{}",
        getent.stdout
    );
    assert!(
        getent.stdout.lines().all(|l| l.contains(':')),
        "no IPv4 address: {}",
        getent.stdout
    );

    // Across hosts by address: ping, and TCP to each task, which sees the client.
    for ip in &task_ips {
        wait_until(
            &format!("{ip} to answer pings"),
            Duration::from_secs(10),
            || {
                client
                    .ping(&ip.to_string(), 56)
                    .then_some(())
                    .ok_or_else(|| "no answer".to_string())
            },
        );
        let answer = tcp_read(&client.ns, SocketAddr::new((*ip).into(), 7000))
            .unwrap_or_else(|| panic!("no TCP answer from [{ip}]:7000"));
        assert_eq!(peer_ip(&answer), Some(me6.to_string()), "{answer}");
    }
    // The IPv6 VIP spreads connections over both tasks.
    let mut seen = BTreeSet::new();
    wait_until(
        "connections through the IPv6 VIP to reach both tasks",
        Duration::from_secs(30),
        || {
            let answer =
                tcp_read(&client.ns, SocketAddr::new(vip6.into(), 7000)).ok_or("no answer")?;
            seen.extend(task_of(&answer));
            if seen.len() >= 2 {
                Ok(())
            } else {
                Err(format!("only {seen:?} so far"))
            }
        },
    );

    // Nothing IPv4 on any node for the network: no address on its bridge, no ARP
    // entries on its VXLAN device, no rule in the `ip` table that names its bridge.
    let bridge = format!("shl-b{vni}");
    for node in ["n1", "n2", "n3"] {
        let ns = lab.host_ns(node);
        let addr = exec_in(&ns, &["ip", "-4", "addr", "show", "dev", &bridge]);
        assert!(
            addr.ok() && !addr.stdout.contains("inet "),
            "{node}: {}",
            addr.stdout
        );
        let neigh = exec_in(
            &ns,
            &["ip", "-4", "neigh", "show", "dev", &format!("shl-v{vni}")],
        );
        assert!(
            neigh.ok() && neigh.stdout.trim().is_empty(),
            "{node}: {}",
            neigh.stdout
        );
        let ndp = exec_in(
            &ns,
            &["ip", "-6", "neigh", "show", "dev", &format!("shl-v{vni}")],
        );
        assert!(
            ndp.stdout.contains("fd00:77::"),
            "{node}: proxy NDP {}",
            ndp.stdout
        );
        let rules = exec_in(&ns, &["nft", "list", "table", "ip", "shoal"]);
        assert!(rules.ok(), "{node}: {}", rules.stderr);
        assert!(!rules.stdout.contains(&bridge), "{node}: {}", rules.stdout);
    }
}
