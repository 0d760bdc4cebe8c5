//! Services on real labs: the routing mesh, scaling, node loss and drain, VIPs,
//! service DNS, UDP and host-mode publishing, and bad requests.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use shoal_tests::net::{
    at, dns_query, http_get, parse_answer, resolve, udp_exchange, udp_exchange_within,
};
use shoal_tests::{require_root, wait_until, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

fn running_on(lab: &Lab, service: &str) -> Vec<String> {
    let mut nodes: Vec<String> = lab
        .tasks(service)
        .iter()
        .filter(|t| t["state"] == "running")
        .map(|t| t["node"].as_str().unwrap_or_default().to_string())
        .collect();
    nodes.sort();
    nodes
}

/// Every given node answers on `port` from the client host.
fn every_node_answers(lab: &Lab, nodes: &[&str], port: u16, within: Duration) {
    let client = lab.host_ns("client");
    for node in nodes {
        let ip = lab.ip(node);
        wait_until(
            &format!("{node}:{port} to answer"),
            within,
            || match http_get(&client, at(&ip, port)) {
                Some(body) if body.contains("service=") => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn published_port_answers_on_every_node_through_scale_node_loss_and_drain() {
    require_root("published_port_answers_on_every_node_through_scale_node_loss_and_drain");
    let lab = Lab::up(BIN, 3, 1);
    lab.ok("n1", &["network", "create", "web"]);
    lab.create_service(
        &[
            "--name",
            "www",
            "--network",
            "web",
            "--replicas",
            "1",
            "--publish",
            "8080:80",
        ],
        &[BIN, "tool", "http", "--port", "80"],
    );
    every_node_answers(&lab, &["n1", "n2", "n3"], 8080, Duration::from_secs(20));

    lab.ok("n1", &["service", "scale", "www=5"]);
    wait_until("5 running tasks", Duration::from_secs(20), || {
        let r = running_on(&lab, "www");
        if r.len() == 5 {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
    let client = lab.host_ns("client");
    let mut seen = BTreeSet::new();
    for i in 0..30 {
        let node = ["n1", "n2", "n3"][i % 3];
        let body = http_get(&client, at(&lab.ip(node), 8080))
            .unwrap_or_else(|| panic!("{node}:8080 did not answer"));
        seen.insert(
            body.split_whitespace()
                .find(|w| w.starts_with("task="))
                .unwrap_or("")
                .to_string(),
        );
    }
    assert!(seen.len() >= 2, "answers came from {seen:?}");

    // Lose n3: agent killed, underlay cut. Its tasks run elsewhere within 10 s, and
    // the remaining nodes keep answering.
    let on_n3 = running_on(&lab, "www")
        .iter()
        .filter(|n| *n == "n3")
        .count();
    assert!(on_n3 > 0, "n3 had no task to lose");
    lab.kill("n3", "KILL");
    lab.cut("n3");
    wait_until(
        "n3's tasks to run elsewhere",
        Duration::from_secs(10),
        || {
            let r = running_on(&lab, "www");
            if r.len() == 5 && !r.iter().any(|n| n == "n3") {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            }
        },
    );
    for node in ["n1", "n2"] {
        wait_until(
            &format!("{node} to answer every request"),
            Duration::from_secs(10),
            || {
                let ok = (0..6).all(|_| http_get(&client, at(&lab.ip(node), 8080)).is_some());
                if ok {
                    Ok(())
                } else {
                    Err("a request failed".into())
                }
            },
        );
    }

    // Drain n2: its tasks move to n1.
    lab.ok("n1", &["node", "update", "--availability", "drain", "n2"]);
    wait_until("n2's tasks to move", Duration::from_secs(15), || {
        let r = running_on(&lab, "www");
        if r.len() == 5 && r.iter().all(|n| n == "n1") {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
    every_node_answers(&lab, &["n1", "n2"], 8080, Duration::from_secs(10));
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn a_port_published_from_an_encrypted_network_answers_on_every_node() {
    require_root("a_port_published_from_an_encrypted_network_answers_on_every_node");
    // The mesh's return path (the node's own address and MAC on the bridge) works over
    // the WireGuard data path as it does over kernel VXLAN.
    let lab = Lab::up(BIN, 3, 1);
    lab.ok("n1", &["network", "create", "sec", "--opt", "encrypted"]);
    lab.create_service(
        &[
            "--name",
            "vault",
            "--network",
            "sec",
            "--replicas",
            "1",
            "--publish",
            "8443:80",
        ],
        &[BIN, "tool", "http", "--port", "80"],
    );
    every_node_answers(&lab, &["n1", "n2", "n3"], 8443, Duration::from_secs(30));
    let nodes = running_on(&lab, "vault");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn service_names_vips_and_task_names_resolve_only_on_their_networks() {
    require_root("service_names_vips_and_task_names_resolve_only_on_their_networks");
    let lab = Lab::up_with_upstream(BIN, 2, 1, &[]);
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.50.0.0/24",
            "front",
        ],
    );
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.51.0.0/24",
            "back",
        ],
    );
    lab.create_service(
        &["--name", "api", "--network", "front", "--replicas", "2"],
        &[BIN, "tool", "http", "--port", "80"],
    );
    let s1 = lab.sandbox("s1");
    let s2 = lab.sandbox("s2");
    lab.ok(
        "n1",
        &["attach", "--network", "front", "--name", "one", &s1.ns],
    );
    lab.ok(
        "n2",
        &["attach", "--network", "back", "--name", "two", &s2.ns],
    );
    let front_dns: Ipv4Addr = "10.50.0.1".parse().unwrap();
    let back_dns: Ipv4Addr = "10.51.0.1".parse().unwrap();
    wait_until("2 running api tasks", Duration::from_secs(20), || {
        let r = running_on(&lab, "api");
        if r.len() == 2 {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
    let vip: Ipv4Addr = lab.json("n1", &["service", "inspect", "api"])["vips"]["front"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let task_ips: Vec<Ipv4Addr> = {
        let mut v: Vec<Ipv4Addr> = lab
            .tasks("api")
            .iter()
            .map(|t| t["addresses"]["front"].as_str().unwrap().parse().unwrap())
            .collect();
        v.sort();
        v
    };
    let a = resolve(&s1.ns, front_dns, "api", 1).expect("an answer for api");
    assert_eq!(a.a, vec![vip], "the service name is its VIP");
    let body = http_get(&s1.ns, SocketAddr::new(vip.into(), 80)).expect("the VIP connects");
    assert!(body.contains("service=api"), "{body}");
    wait_until(
        "tasks.api to list the running tasks",
        Duration::from_secs(5),
        || {
            let a = resolve(&s1.ns, front_dns, "tasks.api", 1).ok_or("no answer")?;
            if a.a == task_ips {
                Ok(())
            } else {
                Err(format!("{a:?} vs {task_ips:?}"))
            }
        },
    );
    let aaaa = resolve(&s1.ns, front_dns, "api", 28).unwrap();
    assert_eq!(
        (aaaa.rcode, aaaa.answers),
        (0, 0),
        "AAAA of a known name is NODATA"
    );
    // A name on a network the asker is not on does not resolve (it is forwarded, and
    // the upstream does not know it either).
    let other = resolve(&s2.ns, back_dns, "api", 1).unwrap();
    assert!(
        other.a.is_empty(),
        "s2 is not on front but resolved api: {other:?}"
    );
    let one = resolve(&s2.ns, back_dns, "one", 1).unwrap();
    assert!(one.a.is_empty(), "{one:?}");
    // An external name goes to the upstream resolver the test runs in the lab.
    let ext = resolve(&s1.ns, front_dns, "example.test", 1).unwrap();
    assert_eq!(ext.a, vec![Ipv4Addr::new(192, 0, 2, 7)]);
    // A detached sandbox's name stops resolving within a second.
    let s3 = lab.sandbox("s3");
    lab.ok(
        "n2",
        &["attach", "--network", "front", "--name", "temp", &s3.ns],
    );
    wait_until("temp to resolve", Duration::from_secs(2), || {
        let a = resolve(&s1.ns, front_dns, "temp", 1).ok_or("no answer")?;
        if a.a.len() == 1 {
            Ok(())
        } else {
            Err(format!("{a:?}"))
        }
    });
    lab.ok("n2", &["detach", "--network", "front", &s3.ns]);
    wait_until("temp to stop resolving", Duration::from_secs(1), || {
        let a = resolve(&s1.ns, front_dns, "temp", 1).ok_or("no answer")?;
        if a.a.is_empty() {
            Ok(())
        } else {
            Err(format!("{a:?}"))
        }
    });
    // Garbage and oversized names: FORMERR or nothing, and the resolver keeps answering.
    let dns = SocketAddr::new(front_dns.into(), 53);
    let mut seed = 0x2545_f491u32;
    for i in 0..30 {
        let len = 12 + (i * 7) % 200;
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        if let Some(reply) = udp_exchange_within(&s1.ns, dns, garbage, Duration::from_millis(300)) {
            let rcode = reply.get(3).map(|b| b & 0x0f);
            assert!(
                matches!(rcode, Some(1) | Some(4) | Some(0) | Some(2) | Some(3)),
                "odd reply {reply:?}"
            );
        }
    }
    let long = format!("{}.test", vec!["a".repeat(63); 5].join("."));
    let reply =
        udp_exchange(&s1.ns, dns, dns_query(7, &long, 1)).expect("an answer to an oversized name");
    assert_eq!(
        parse_answer(&reply).map(|a| a.rcode),
        Some(1),
        "FORMERR for a name over 255 bytes"
    );
    assert_eq!(
        resolve(&s1.ns, front_dns, "api", 1).unwrap().a,
        vec![vip],
        "still answering"
    );
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn udp_published_ports_work_and_host_mode_answers_only_where_a_task_runs() {
    require_root("udp_published_ports_work_and_host_mode_answers_only_where_a_task_runs");
    let lab = Lab::up(BIN, 3, 1);
    lab.ok("n1", &["network", "create", "apps"]);
    lab.create_service(
        &[
            "--name",
            "echo",
            "--network",
            "apps",
            "--publish",
            "5353:5353/udp",
        ],
        &[BIN, "tool", "udp-echo", "--port", "5353"],
    );
    lab.create_service(
        &[
            "--name",
            "local",
            "--network",
            "apps",
            "--publish",
            "mode=host,8081:80",
        ],
        &[BIN, "tool", "http", "--port", "80"],
    );
    let client = lab.host_ns("client");
    for node in ["n1", "n2", "n3"] {
        let ip = lab.ip(node);
        wait_until(
            &format!("UDP echo through {node}"),
            Duration::from_secs(20),
            || match udp_exchange(&client, at(&ip, 5353), b"ping".to_vec()) {
                Some(r)
                    if String::from_utf8_lossy(&r).contains("service=echo")
                        && r.ends_with(b"ping") =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            },
        );
    }
    let host = wait_until(
        "the host-mode task to run",
        Duration::from_secs(20),
        || match running_on(&lab, "local").as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!("{other:?}")),
        },
    );
    every_node_answers(&lab, &[host.as_str()], 8081, Duration::from_secs(10));
    for node in ["n1", "n2", "n3"].iter().filter(|n| **n != host) {
        assert!(
            http_get(&client, at(&lab.ip(node), 8081)).is_none(),
            "{node} answered a host-mode port without a task"
        );
    }
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn bad_service_requests_are_refused_clearly() {
    require_root("bad_service_requests_are_refused_clearly");
    let lab = Lab::up(BIN, 1, 1);
    lab.ok("n1", &["network", "create", "net"]);
    lab.create_service(
        &["--name", "a", "--network", "net", "--publish", "8080:80"],
        &[BIN, "tool", "http"],
    );
    let refused = |args: &[&str], want: &str| {
        let e = lab.fails("n1", args);
        assert!(e.contains(want), "{args:?}: {e}");
    };
    refused(
        &[
            "service",
            "create",
            "--name",
            "b",
            "--network",
            "net",
            "--publish",
            "8080:81",
            "--",
            "x",
        ],
        "already in use by service 'a'",
    );
    refused(
        &[
            "service",
            "create",
            "--name",
            "b",
            "--network",
            "net",
            "--publish",
            "70000:80",
            "--",
            "x",
        ],
        "invalid hostPort: 70000",
    );
    refused(
        &[
            "service",
            "create",
            "--name",
            "b",
            "--network",
            "net",
            "--publish",
            "192.0.2.1:8080:80",
            "--",
            "x",
        ],
        "hostip is not supported",
    );
    refused(
        &[
            "service",
            "create",
            "--name",
            "b",
            "--network",
            "nope",
            "--",
            "x",
        ],
        "no such network: nope",
    );
    refused(
        &[
            "service",
            "create",
            "--name",
            "a",
            "--network",
            "net",
            "--",
            "x",
        ],
        "already exists",
    );
    refused(
        &["service", "create", "--name", "bad.name", "--", "x"],
        "invalid service name",
    );
    refused(&["service", "scale", "nope=2"], "no such service: nope");
    refused(&["service", "scale", "a=many"], "must be a number");
    refused(&["service", "rm", "nope"], "no such service: nope");
    lab.create_service(
        &["--name", "g", "--mode", "global"],
        &[BIN, "tool", "http", "--port", "81"],
    );
    refused(&["service", "scale", "g=3"], "global service");
    let listed = lab.json("n1", &["service", "ls"]);
    assert_eq!(listed.as_array().map(|a| a.len()), Some(2), "{listed}");
}

/// `--lb-idle-timeout` becomes conntrack timeout policies in shoal's own tables, for
/// load-balanced connections only: no sysctl of the node or of a sandbox changes (the
/// agent's only global setting is `net.ipv4.ip_forward`). And a shoal chain flushed by
/// hand is noticed and put back by the next resync, with the port answering again.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn idle_timeouts_touch_no_sysctl_and_a_flushed_chain_comes_back() {
    use shoal_dataplane::nat_lb::LB_TABLE;
    use shoal_dataplane::netns;
    use shoal_dataplane::nft::{self, Family, Table};
    use shoal_dataplane::overlay::NFT_TABLE;
    require_root("idle_timeouts_touch_no_sysctl_and_a_flushed_chain_comes_back");
    let sysctls = [
        "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established",
        "/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream",
    ];
    let read = |ns: &str| -> Vec<String> {
        sysctls
            .iter()
            .map(|p| lab_read(ns, p))
            .collect::<Vec<String>>()
    };
    let lab = Lab::up_with(BIN, 1, 1, &["--agent-arg=--lb-idle-timeout=30"]);
    lab.ok("n1", &["network", "create", "--attachable", "web"]);
    lab.create_service(
        &[
            "--name",
            "www",
            "--network",
            "web",
            "--replicas",
            "2",
            "--publish",
            "8080:80",
        ],
        &[BIN, "tool", "http", "--port", "80"],
    );
    let sb = lab.sandbox("s1");
    lab.ok("n1", &["attach", "--network", "web", &sb.ns]);
    every_node_answers(&lab, &["n1"], 8080, Duration::from_secs(30));
    let table_of = |ns: &str, name: &str| -> Option<Table> {
        let handle = netns::open(ns).ok()?;
        let name = name.to_string();
        netns::run_in(&handle, move || nft::read_table(&name, Family::Ip))
            .ok()?
            .ok()?
            .map(|k| k.table)
    };
    let node = lab.host_ns("n1");
    wait_until(
        "timeout policies in the node's and the sandbox's tables",
        Duration::from_secs(20),
        || {
            let n = table_of(&node, NFT_TABLE).map(|t| t.timeouts.len());
            let s = table_of(&sb.ns, LB_TABLE).map(|t| t.timeouts.len());
            match (n, s) {
                (Some(a), Some(b)) if a > 0 && b > 0 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    // A fresh namespace shows the kernel's defaults.
    let fresh = format!("shl-{}-fresh", lab.name);
    lab.sandbox("fresh");
    let defaults = read(&fresh);
    assert!(defaults.iter().all(|v| !v.is_empty()), "{defaults:?}");
    assert_eq!(read(&node), defaults, "the node's sysctls are untouched");
    assert_eq!(
        read(&sb.ns),
        defaults,
        "the sandbox's sysctls are untouched"
    );

    // Flush the port's chain by hand, as `nft flush chain ip shoal pub-6-8080` would.
    let handle = netns::open(&node).unwrap();
    netns::run_in(&handle, || {
        let mut t = nft::read_table(NFT_TABLE, Family::Ip)
            .unwrap()
            .expect("shoal's table")
            .table;
        let chain = t
            .chains
            .iter_mut()
            .find(|c| c.name == "pub-6-8080")
            .unwrap();
        chain.rules.clear();
        assert!(nft::ensure_table(&t).unwrap(), "the chain was flushed");
    })
    .unwrap();
    wait_until(
        "the flushed chain to be put back",
        Duration::from_secs(20),
        || match table_of(&node, NFT_TABLE) {
            Some(t)
                if t.chains
                    .iter()
                    .any(|c| c.name == "pub-6-8080" && !c.rules.is_empty()) =>
            {
                Ok(())
            }
            other => Err(format!("{:?}", other.map(|t| t.chains.len()))),
        },
    );
    every_node_answers(&lab, &["n1"], 8080, Duration::from_secs(10));
}

/// The trimmed contents of file `path` as seen from namespace `ns`.
fn lab_read(ns: &str, path: &str) -> String {
    let out = shoal_tests::exec_in(ns, &["cat", path]);
    out.stdout.trim().to_string()
}
