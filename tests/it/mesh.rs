//! The routing mesh without source NAT on real labs: a task reached through a
//! published port sees the client's own address (TCP, UDP, encrypted networks, a task
//! on the ingress node itself, a task reaching its own service: the hairpin);
//! `src=nat` still shows it the node's; `service update` switches between them; and a
//! dead ingress node's return routes leave the sandboxes.

use std::time::Duration;

use shoal_tests::net::{at, peer_ip, tcp_read, udp_exchange};
use shoal_tests::{exec_in, require_root, wait_until, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

/// Creates service `name` on `network`, its one task on `node`, running `shoal tool
/// peer` on `port`, published as `publish` (TCP) and the same over UDP.
fn peer_service(lab: &Lab, name: &str, network: &str, node: &str, port: u16, src: &str) {
    lab.published_peer(name, network, node, port, &format!("src={src}"));
}

/// Waits until a TCP connection from `ns` to `node`:`port` is answered by a task that
/// saw `want` as its peer's address (`None`: any address but `not`).
fn tcp_sees(lab: &Lab, ns: &str, node: &str, port: u16, want: &str) {
    let to = at(&lab.ip(node), port);
    wait_until(
        &format!("{node}:{port}/tcp from {ns} seen as {want}"),
        Duration::from_secs(20),
        || match tcp_read(ns, to) {
            Some(a) if peer_ip(&a).as_deref() == Some(want) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}

fn udp_sees(lab: &Lab, ns: &str, node: &str, port: u16, want: &str) {
    let to = at(&lab.ip(node), port);
    wait_until(
        &format!("{node}:{port}/udp from {ns} seen as {want}"),
        Duration::from_secs(20),
        || match udp_exchange(ns, to, b"hi".to_vec()) {
            Some(a) if peer_ip(&String::from_utf8_lossy(&a)).as_deref() == Some(want) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}

/// The namespace of `service`'s one running task.
fn task_ns(lab: &Lab, service: &str) -> String {
    let tasks = wait_until("a running task", Duration::from_secs(20), || {
        let t = lab.tasks(service);
        t.iter()
            .find(|t| t["state"] == "running")
            .cloned()
            .ok_or_else(|| format!("{t:?}"))
    });
    let id = tasks["id"].as_str().unwrap_or_default();
    let node = tasks["node"].as_str().unwrap_or_default();
    format!("shl-{}-{node}-t{}", lab.name, &id[..id.len().min(12)])
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn published_ports_keep_the_clients_address_over_tcp_udp_encryption_and_hairpin() {
    require_root("published_ports_keep_the_clients_address_over_tcp_udp_encryption_and_hairpin");
    let lab = Lab::up(BIN, 2, 1);
    lab.ok("n1", &["network", "create", "web"]);
    lab.ok("n1", &["network", "create", "sec", "--opt", "encrypted"]);
    peer_service(&lab, "who", "web", "n2", 7000, "preserve");
    peer_service(&lab, "swho", "sec", "n2", 7100, "preserve");
    let client = lab.host_ns("client");
    let client_ip = lab.ip("client");
    // Through n1 to the task on n2, and through n2 to its own task, on both networks.
    for port in [7000, 7100] {
        for node in ["n1", "n2"] {
            tcp_sees(&lab, &client, node, port, &client_ip);
            udp_sees(&lab, &client, node, port, &client_ip);
        }
    }
    let inspect = lab.ok("n1", &["service", "inspect", "who"]);
    assert!(
        inspect.contains("7000:7000/tcp (ingress, src=preserve)"),
        "{inspect}"
    );
    // The hairpin: the task reaches its own service through n1 (it arrives from n2's
    // address, masqueraded on the way out, and must still be answered) and through its
    // own node (a client on the network itself: source-NATed to the node's address).
    let task = task_ns(&lab, "who");
    for node in ["n1", "n2"] {
        let to = at(&lab.ip(node), 7000);
        wait_until(
            &format!("the task to reach its own service through {node}"),
            Duration::from_secs(10),
            || match tcp_read(&task, to) {
                Some(a) if peer_ip(&a).is_some() => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn src_nat_shows_the_nodes_address_and_service_update_switches_modes() {
    require_root("src_nat_shows_the_nodes_address_and_service_update_switches_modes");
    let lab = Lab::up(BIN, 2, 1);
    lab.ok("n1", &["network", "create", "web"]);
    peer_service(&lab, "who", "web", "n2", 7000, "nat");
    let client = lab.host_ns("client");
    let client_ip = lab.ip("client");
    let to = at(&lab.ip("n1"), 7000);
    let natted = wait_until(
        "the task to see n1's address",
        Duration::from_secs(20),
        || match tcp_read(&client, to).as_deref().and_then(peer_ip) {
            Some(ip) if ip != client_ip && ip.starts_with("10.") => Ok(ip),
            other => Err(format!("{other:?}")),
        },
    );
    udp_sees(&lab, &client, "n1", 7000, &natted);
    let ls = lab.ok("n1", &["service", "ls"]);
    assert!(ls.contains("7000:7000/udp (ingress, src=nat)"), "{ls}");

    lab.ok(
        "n1",
        &[
            "service",
            "update",
            "--publish-add",
            "7000:7000,src=preserve",
            "who",
        ],
    );
    tcp_sees(&lab, &client, "n1", 7000, &client_ip);
    lab.ok(
        "n1",
        &[
            "service",
            "update",
            "--publish-add",
            "src=nat,7000:7000",
            "who",
        ],
    );
    tcp_sees(&lab, &client, "n1", 7000, &natted);
    let bad = lab.fails(
        "n1",
        &[
            "service",
            "update",
            "--publish-add",
            "7000:7000,src=keep",
            "who",
        ],
    );
    assert!(bad.contains("invalid src value (keep)"), "{bad}");
}

/// `ip rule`s of the return path in namespace `ns` (priority 1000).
fn return_rules(ns: &str) -> Vec<String> {
    let out = exec_in(ns, &["ip", "-4", "rule", "list", "pref", "1000"]);
    assert!(out.ok(), "ip rule: {}", out.stderr);
    out.stdout.lines().map(String::from).collect()
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn a_dead_ingress_nodes_return_routes_leave_the_sandboxes() {
    require_root("a_dead_ingress_nodes_return_routes_leave_the_sandboxes");
    let lab = Lab::up(BIN, 3, 1);
    lab.ok("n1", &["network", "create", "web"]);
    peer_service(&lab, "who", "web", "n2", 7000, "preserve");
    let client = lab.host_ns("client");
    let client_ip = lab.ip("client");
    tcp_sees(&lab, &client, "n3", 7000, &client_ip);
    let task = task_ns(&lab, "who");
    // One rule (and table) for each other ingress node: n1 and n3.
    wait_until("rules for n1 and n3", Duration::from_secs(10), || {
        let r = return_rules(&task);
        if r.len() == 2 {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
    lab.kill("n3", "KILL");
    lab.cut("n3");
    wait_until(
        "n3's return route to leave the task's sandbox",
        // Down after 3.5 s without heartbeats, then one reconcile pass.
        Duration::from_secs(10),
        || {
            let r = return_rules(&task);
            if r.len() == 1 {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            }
        },
    );
    let tables = exec_in(&task, &["ip", "-4", "route", "show", "table", "all"]);
    let via: Vec<&str> = tables
        .stdout
        .lines()
        .filter(|l| l.starts_with("default via") && l.contains("table"))
        .collect();
    assert_eq!(via.len(), 1, "one return table left: {}", tables.stdout);
    // n1 still carries new connections with the client's address.
    tcp_sees(&lab, &client, "n1", 7000, &client_ip);
}
