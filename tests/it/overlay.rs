//! Overlay networks on real labs: connectivity across nodes, full-size frames,
//! isolation, internal networks, IPAM under parallel attaches, agent restarts during a
//! stream, and bad input that must leave nothing behind.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_tests::{exec_in, ip_of, require_root, wait_until, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

fn attach(lab: &Lab, host: &str, network: &str, ns: &str, extra: &[&str]) -> Value {
    let mut args = vec!["attach", "--network", network];
    args.extend(extra);
    args.push(ns);
    lab.json(host, &args)
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

fn shoal_links(lab: &Lab, host: &str) -> Vec<String> {
    let out = exec_in(&lab.host_ns(host), &["ip", "-o", "link", "show"]);
    out.stdout
        .lines()
        .filter_map(|l| {
            l.split(':')
                .nth(1)
                .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        })
        .filter(|n| n.starts_with("shl-"))
        .collect()
}

fn nft_tables(lab: &Lab, host: &str) -> String {
    exec_in(&lab.host_ns(host), &["nft", "list", "tables"]).stdout
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn sandboxes_on_three_nodes_talk_with_full_size_frames_and_intact_data() {
    require_root("sandboxes_on_three_nodes_talk_with_full_size_frames_and_intact_data");
    let lab = Lab::up(BIN, 3, 1);
    lab.ok("n1", &["network", "create", "--attachable", "web"]);
    let sbs: Vec<_> = (1..=3).map(|i| lab.sandbox(&format!("sb{i}"))).collect();
    let eps: Vec<Value> = (1..=3)
        .map(|i| {
            attach(
                &lab,
                &format!("n{i}"),
                "web",
                &sbs[i - 1].ns,
                &["--name", &format!("s{i}")],
            )
        })
        .collect();
    let ips: Vec<String> = eps.iter().map(ip_of).collect();
    let macs: BTreeSet<&str> = eps.iter().map(|e| e["mac"].as_str().unwrap()).collect();
    assert_eq!(macs.len(), 3);
    assert!(
        std::fs::read_to_string(format!("/etc/netns/{}/resolv.conf", sbs[0].ns))
            .unwrap()
            .contains("nameserver 10.0.0.1")
    );
    for (i, sb) in sbs.iter().enumerate() {
        for (j, ip) in ips.iter().enumerate() {
            if i != j {
                assert!(sb.ping(ip, 56), "sb{} cannot ping {ip}", i + 1);
            }
        }
    }
    // MTU 1450: 1422 bytes of ICMP payload fill a frame exactly, with DF set.
    assert!(
        sbs[0].ping(&ips[2], 1422),
        "full-size frames must pass unfragmented"
    );
    assert!(
        !sbs[0].ping(&ips[2], 1423),
        "larger than the MTU must be refused with DF"
    );
    let sink = sbs[2].sink(addr(&ips[2], 5001));
    let sent = sbs[0]
        .send(addr(&ips[2], 5001), 100 << 20, None)
        .join()
        .unwrap();
    let (bytes, got, peer) = sink.join().unwrap();
    assert_eq!(bytes, 100 << 20);
    assert_eq!(got, sent, "checksum of 100 MB across nodes");
    assert_eq!(peer.ip().to_string(), ips[0], "no NAT inside the overlay");
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn networks_are_isolated_internal_ones_have_no_egress_and_a_sandbox_on_both_reaches_both() {
    require_root(
        "networks_are_isolated_internal_ones_have_no_egress_and_a_sandbox_on_both_reaches_both",
    );
    let lab = Lab::up(BIN, 2, 1);
    lab.ok("n1", &["network", "create", "--attachable", "red"]);
    lab.ok(
        "n1",
        &["network", "create", "--attachable", "--internal", "blue"],
    );
    let (r1, r2, b1, b2, both) = (
        lab.sandbox("r1"),
        lab.sandbox("r2"),
        lab.sandbox("b1"),
        lab.sandbox("b2"),
        lab.sandbox("both"),
    );
    let r1ip = ip_of(&attach(&lab, "n1", "red", &r1.ns, &[]));
    let r2ip = ip_of(&attach(&lab, "n2", "red", &r2.ns, &[]));
    let b1ip = ip_of(&attach(&lab, "n1", "blue", &b1.ns, &[]));
    let b2ip = ip_of(&attach(&lab, "n2", "blue", &b2.ns, &[]));
    let both_red = ip_of(&attach(&lab, "n2", "red", &both.ns, &[]));
    // An interface named by the caller, as a CNI runtime names it (CNI_IFNAME).
    // And a MAC of its own (CNI's `mac` capability), which the overlay then carries.
    let blue = attach(
        &lab,
        "n2",
        "blue",
        &both.ns,
        &["--ifname", "blue0", "--mac", "52:54:00:12:34:56"],
    );
    assert_eq!(blue["ifname"], "blue0", "{blue}");
    assert_eq!(blue["mac"], "52:54:00:12:34:56", "{blue}");
    let link = both
        .exec(&["ip", "-o", "link", "show", "dev", "blue0"])
        .stdout;
    assert!(link.contains("52:54:00:12:34:56"), "{link}");
    let both_blue = ip_of(&blue);
    let links = both
        .exec(&["ip", "-o", "-4", "addr", "show", "dev", "blue0"])
        .stdout;
    assert!(links.contains(&both_blue), "{links}");
    let refused = lab.fails(
        "n1",
        &[
            "attach",
            "--network",
            "blue",
            "--ifname",
            "no/slash",
            &r1.ns,
        ],
    );
    assert!(refused.contains("interface name"), "{refused}");
    let refused = lab.fails(
        "n1",
        &[
            "attach",
            "--network",
            "blue",
            "--mac",
            "01:00:5e:00:00:01",
            &r1.ns,
        ],
    );
    assert!(refused.contains("multicast"), "{refused}");

    // Inside a network, across nodes.
    assert!(r1.ping(&r2ip, 56));
    assert!(b1.ping(&b2ip, 56));
    // Nothing crosses between networks, on the same node or across nodes.
    let quick = Duration::from_millis(1500);
    for (from, to) in [(&r1, &b1ip), (&r1, &b2ip), (&b1, &r1ip), (&b2, &r2ip)] {
        assert!(
            !from.can_connect(addr(to, 7), quick),
            "{} reached {to}",
            from.ns
        );
        assert!(!from.ping(to, 56), "{} pinged {to}", from.ns);
    }
    // A sandbox on both networks reaches both.
    assert!(both.ping(&r1ip, 56) && both.ping(&b1ip, 56));
    assert_ne!(both_red, both_blue);

    // Egress: the plain network reaches the client host (masqueraded to the node's
    // underlay address); the internal one does not.
    let client = lab.ip("client");
    let client_ns = lab.host_ns("client");
    let (ready, listening) = std::sync::mpsc::channel();
    let sink = shoal_tests::spawn_in(&client_ns, {
        let a = addr(&client, 6001);
        move || {
            let l = std::net::TcpListener::bind(a).unwrap();
            ready.send(()).unwrap();
            l.accept().map(|(_, peer)| peer).unwrap()
        }
    });
    listening.recv().expect("the client's listener");
    assert!(r1.can_connect(addr(&client, 6001), Duration::from_secs(3)));
    assert_eq!(
        sink.join().unwrap().ip().to_string(),
        lab.ip("n1"),
        "egress is masqueraded"
    );
    assert!(
        !b1.can_connect(addr(&client, 6001), quick),
        "an internal network must have no egress"
    );
    assert!(!b1.ping(&client, 56));
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn sixty_parallel_attaches_get_unique_addresses_and_detaching_frees_them() {
    require_root("sixty_parallel_attaches_get_unique_addresses_and_detaching_frees_them");
    let lab = Lab::up(BIN, 3, 1);
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "172.30.0.0/24",
            "many",
        ],
    );
    let sbs: Vec<_> = (0..60).map(|i| lab.sandbox(&format!("m{i}"))).collect();
    let eps: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = sbs
            .iter()
            .enumerate()
            .map(|(i, sb)| {
                let lab = &lab;
                s.spawn(move || attach(lab, &format!("n{}", i % 3 + 1), "many", &sb.ns, &[]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ips: BTreeSet<String> = eps.iter().map(ip_of).collect();
    let macs: BTreeSet<String> = eps
        .iter()
        .map(|e| e["mac"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        (ips.len(), macs.len()),
        (60, 60),
        "duplicate address or MAC"
    );
    assert_eq!(
        lab.json("n2", &["network", "inspect", "many"])["in_use"],
        60
    );
    // Every remote endpoint is in n1's FDB.
    wait_until(
        "n1's FDB to hold the 40 remote endpoints",
        Duration::from_secs(5),
        || {
            let fdb = exec_in(
                &lab.host_ns("n1"),
                &["bridge", "fdb", "show", "dev", "shl-v4096"],
            )
            .stdout;
            let n = fdb.lines().filter(|l| l.contains(" dst ")).count();
            if n == 40 {
                Ok(())
            } else {
                Err(format!("{n} entries"))
            }
        },
    );

    std::thread::scope(|s| {
        for (i, sb) in sbs.iter().enumerate().skip(5) {
            let lab = &lab;
            s.spawn(move || {
                lab.ok(
                    &format!("n{}", i % 3 + 1),
                    &["detach", "--network", "many", &sb.ns],
                )
            });
        }
    });
    assert_eq!(lab.json("n1", &["network", "inspect", "many"])["in_use"], 5);

    // Removing a node frees its leases (sandboxes m2 was on n3).
    lab.kill("n3", "KILL");
    lab.ok("n1", &["node", "rm", "--force", "n3"]);
    wait_until("n3's lease to be freed", Duration::from_secs(10), || {
        let n = lab.json("n1", &["network", "inspect", "many"]);
        if n["in_use"] == 4 {
            Ok(())
        } else {
            Err(n["in_use"].to_string())
        }
    });
    for (i, sb) in sbs.iter().enumerate().take(5) {
        if i % 3 != 2 {
            lab.ok(
                &format!("n{}", i % 3 + 1),
                &["detach", "--network", "many", &sb.ns],
            );
        }
    }
    assert_eq!(
        lab.json("n1", &["network", "inspect", "many"])["in_use"],
        0,
        "the pool is back to its start"
    );
    lab.ok("n1", &["network", "rm", "many"]);
    for host in ["n1", "n2"] {
        wait_until("no shoal objects left", Duration::from_secs(5), || {
            let links = shoal_links(&lab, host);
            let tables = nft_tables(&lab, host);
            if links.is_empty() && !tables.contains("shoal") {
                Ok(())
            } else {
                Err(format!("{host}: {links:?} {tables}"))
            }
        });
    }
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn a_new_endpoint_reaches_remote_fdbs_within_a_second() {
    require_root("a_new_endpoint_reaches_remote_fdbs_within_a_second");
    let lab = Lab::up(BIN, 2, 1);
    lab.ok("n1", &["network", "create", "--attachable", "fast"]);
    let a = lab.sandbox("a");
    let b = lab.sandbox("b");
    attach(&lab, "n1", "fast", &a.ns, &[]);
    let e = attach(&lab, "n2", "fast", &b.ns, &[]);
    let returned = Instant::now();
    let mac = e["mac"].as_str().unwrap().to_string();
    let took = wait_until("the new MAC in n1's FDB", Duration::from_secs(5), || {
        let fdb = exec_in(
            &lab.host_ns("n1"),
            &["bridge", "fdb", "show", "dev", "shl-v4096"],
        )
        .stdout;
        if fdb.contains(&mac) {
            Ok(returned.elapsed())
        } else {
            Err(fdb)
        }
    });
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn killing_an_agent_during_a_stream_does_not_break_it() {
    require_root("killing_an_agent_during_a_stream_does_not_break_it");
    let lab = Lab::up(BIN, 2, 1);
    lab.ok("n1", &["network", "create", "--attachable", "steady"]);
    let a = lab.sandbox("a");
    let b = lab.sandbox("b");
    attach(&lab, "n1", "steady", &a.ns, &[]);
    let bip = ip_of(&attach(&lab, "n2", "steady", &b.ns, &[]));
    let index = || exec_in(&b.ns, &["cat", "/sys/class/net/eth0/ifindex"]).stdout;
    let before = index();
    let sink = b.sink(addr(&bip, 5002));
    let sender = a.send(addr(&bip, 5002), 40 << 20, Some(8 << 20));
    sink.wait_for_more(4 << 20, Duration::from_secs(10));
    lab.kill("n2", "KILL");
    lab.start("n2");
    sink.wait_for_more(4 << 20, Duration::from_secs(10));
    lab.kill("n1", "KILL");
    lab.start("n1");
    let sent = sender.join().unwrap();
    let (bytes, got, _) = sink.join().unwrap();
    assert_eq!(bytes, 40 << 20);
    assert_eq!(got, sent);
    assert_eq!(
        index(),
        before,
        "the restarted agent recreated the sandbox's interface"
    );
    let log = lab.log("n2");
    let after_restart = log.rsplit("rejoining the cluster").next().unwrap_or("");
    assert!(
        !after_restart.contains("dataplane change"),
        "the restart changed the kernel:\n{after_restart}"
    );
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn bad_network_and_attach_requests_are_refused_and_leave_nothing_behind() {
    require_root("bad_network_and_attach_requests_are_refused_and_leave_nothing_behind");
    let lab = Lab::up(BIN, 2, 1);
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.10.0.0/24",
            "ok",
        ],
    );
    lab.ok("n1", &["network", "create", "closed"]);
    let nets = || lab.json("n1", &["network", "ls"]).as_array().unwrap().len();
    let count = nets();
    let refused = |args: &[&str], want: &str| {
        let e = lab.fails("n1", args);
        assert!(e.contains(want), "{args:?}: {e}");
    };
    refused(
        &["network", "create", "--subnet", "10.10.0.128/25", "x"],
        "overlaps network \"ok\"",
    );
    refused(
        &["network", "create", "--subnet", "198.18.0.0/24", "x"],
        "overlaps route 198.18.0.0/15 on node",
    );
    refused(
        &[
            "network",
            "create",
            "--subnet",
            "10.20.0.0/24",
            "--gateway",
            "10.21.0.1",
            "x",
        ],
        "gateway",
    );
    refused(
        &[
            "network",
            "create",
            "--subnet",
            "10.20.0.0/24",
            "--ip-range",
            "10.21.0.0/28",
            "x",
        ],
        "range",
    );
    refused(
        &["network", "create", "--subnet", "nonsense", "x"],
        "--subnet \"nonsense\"",
    );
    refused(&["network", "create", "-d", "bridge", "x"], "driver");
    refused(
        &["network", "create", "--opt", "colour=blue", "x"],
        "unknown --opt",
    );
    refused(&["network", "create", "--opt", "mtu=99", "x"], "mtu");
    refused(&["network", "create", "ok"], "already exists");
    assert_eq!(nets(), count, "a refused create made a network");

    let sb = lab.sandbox("sb");
    let first = attach(&lab, "n1", "ok", &sb.ns, &["--ip", "10.10.0.50"]);
    let other = lab.sandbox("other");
    refused(
        &["attach", "--network", "nope", &other.ns],
        "no such network: nope",
    );
    refused(
        &["attach", "--network", "closed", &other.ns],
        "not attachable",
    );
    refused(
        &["attach", "--network", "ok", "no-such-namespace"],
        "does not exist",
    );
    refused(
        &["attach", "--network", "ok", "--ip", "10.10.0.50", &other.ns],
        "in use",
    );
    refused(
        &["attach", "--network", "ok", "--ip", "10.99.0.5", &other.ns],
        "10.99.0.5",
    );
    refused(
        &["attach", "--network", "ok", "--ip", "banana", &other.ns],
        "--ip \"banana\"",
    );
    // A kernel-side failure (the sandbox already has an eth0 of its own) is rolled back.
    let made = exec_in(
        &other.ns,
        &[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "xpeer",
        ],
    );
    assert!(made.ok(), "{}", made.stderr);
    refused(
        &["attach", "--network", "ok", &other.ns],
        "already has an interface named eth0",
    );
    let n = lab.json("n1", &["network", "inspect", "ok"]);
    assert_eq!(n["in_use"], 1, "a refused attach kept an address: {n}");
    assert_eq!(n["endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(
        shoal_links(&lab, "n1").len(),
        3,
        "bridge, vxlan and one endpoint veth only"
    );

    // Idempotent: attaching again returns the same endpoint; detaching twice is fine.
    let again = attach(&lab, "n1", "ok", &sb.ns, &[]);
    assert_eq!(again["id"], first["id"]);
    refused(&["network", "rm", "ok"], "still has 1 endpoint(s)");
    lab.ok("n1", &["detach", "--network", "ok", &sb.ns]);
    lab.ok("n1", &["detach", "--network", "ok", &sb.ns]);
    lab.ok("n1", &["network", "rm", "ok"]);
    wait_until("n1 to drop every object", Duration::from_secs(5), || {
        let links = shoal_links(&lab, "n1");
        if links.is_empty() {
            Ok(())
        } else {
            Err(format!("{links:?}"))
        }
    });
    // Leaving the cluster removes every kernel object.
    lab.ok("n1", &["network", "create", "--attachable", "again"]);
    attach(&lab, "n2", "again", &sb.ns, &[]);
    assert!(!shoal_links(&lab, "n2").is_empty());
    lab.ok("n2", &["cluster", "leave"]);
    assert!(
        shoal_links(&lab, "n2").is_empty(),
        "leave left {:?}",
        shoal_links(&lab, "n2")
    );
    assert!(!nft_tables(&lab, "n2").contains("shoal"));
    assert!(!std::path::Path::new(&format!("/etc/netns/{}/resolv.conf", sb.ns)).exists());
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn cluster_address_pools_shape_subnets_and_bad_pools_are_refused() {
    require_root("cluster_address_pools_shape_subnets_and_bad_pools_are_refused");
    let lab = Lab::up(BIN, 2, 1);
    lab.ok("n2", &["cluster", "leave"]);
    for (args, want) in [
        (vec!["--default-addr-pool", "10.0.0.5/8"], "10.0.0.0/8"),
        (
            vec!["--default-addr-pool", "not-a-cidr"],
            "--default-addr-pool",
        ),
        (
            vec![
                "--default-addr-pool",
                "172.28.0.0/16",
                "--default-addr-pool-mask-length",
                "31",
            ],
            "31",
        ),
        (
            vec![
                "--default-addr-pool",
                "172.28.0.0/16",
                "--default-addr-pool",
                "172.28.128.0/17",
            ],
            "overlap",
        ),
    ] {
        let mut full = vec!["cluster", "init"];
        full.extend(args.iter().copied());
        let e = lab.fails("n2", &full);
        assert!(e.contains(want), "{args:?}: {e}");
        assert_eq!(
            lab.json("n2", &["status"])["in_cluster"],
            false,
            "a refused init left a cluster behind"
        );
    }
    lab.ok(
        "n2",
        &[
            "cluster",
            "init",
            "--default-addr-pool",
            "172.28.0.0/16",
            "--default-addr-pool-mask-length",
            "26",
        ],
    );
    lab.ok("n2", &["network", "create", "a"]);
    lab.ok("n2", &["network", "create", "b"]);
    assert_eq!(
        lab.json("n2", &["network", "inspect", "a"])["subnet"],
        "172.28.0.0/26"
    );
    assert_eq!(
        lab.json("n2", &["network", "inspect", "b"])["subnet"],
        "172.28.0.64/26"
    );
}
