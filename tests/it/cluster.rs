//! The control plane on real labs: cluster formation, leader failure, quorum loss,
//! restarts, trust (tokens, CA pinning, roles, removal), bad input, and clean-up; the
//! plain-text status and `shoal status --watch` in [`status`]; partitions, pauses, slow
//! links, full disks and shifted clocks (`shoal lab` faults) in [`faults`].

#[path = "cluster/faults.rs"]
mod faults;
#[path = "cluster/jepsen.rs"]
mod jepsen;
#[path = "cluster/status.rs"]
mod status;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_tests::{require_root, wait_until, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

fn node_ls(lab: &Lab, host: &str) -> Vec<Value> {
    lab.json(host, &["node", "ls"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn leader(lab: &Lab, host: &str) -> String {
    wait_until("a leader", Duration::from_secs(15), || {
        // API reads are linearizable: without a leader `node ls` fails; wait on.
        let out = lab.shoal(host, &["node", "ls", "--format", "json"]);
        let nodes: Vec<Value> = if out.ok() {
            serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?
        } else {
            return Err(format!("node ls: {}", out.stderr));
        };
        nodes
            .iter()
            .find(|n| n["manager_status"] == "Leader")
            .and_then(|n| n["name"].as_str().map(String::from))
            .ok_or_else(|| "no leader in node ls".to_string())
    })
}

fn labels(lab: &Lab, host: &str, node: &str) -> Value {
    lab.json(host, &["node", "inspect", node])["labels"].clone()
}

fn label(lab: &Lab, host: &str, node: &str, kv: &str) -> bool {
    lab.shoal(host, &["node", "update", "--label-add", kv, node])
        .ok()
}

/// What must not change when a request is refused: who is in the cluster and how.
fn membership(lab: &Lab, host: &str) -> BTreeSet<String> {
    node_ls(lab, host)
        .iter()
        .map(|n| {
            format!(
                "{} {} {} {}",
                n["name"], n["role"], n["availability"], n["labels"]
            )
        })
        .collect()
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn five_node_cluster_forms_and_every_node_sees_it() {
    require_root("five_node_cluster_forms_and_every_node_sees_it");
    let lab = Lab::up(BIN, 5, 3);
    for host in lab.nodes() {
        let nodes = node_ls(&lab, &host);
        assert_eq!(nodes.len(), 5, "{host} sees {nodes:?}");
        assert!(
            nodes.iter().all(|n| n["status"] == "ready"),
            "{host}: {nodes:?}"
        );
        let managers = nodes.iter().filter(|n| n["role"] == "manager").count();
        let workers = nodes.iter().filter(|n| n["role"] == "worker").count();
        assert_eq!((managers, workers), (3, 2), "{host}");
        let leaders = nodes
            .iter()
            .filter(|n| n["manager_status"] == "Leader")
            .count();
        assert_eq!(leaders, 1, "{host}: {nodes:?}");
        assert_eq!(nodes.iter().filter(|n| n["is_self"] == true).count(), 1);
    }
    let table = lab.ok("n4", &["node", "ls"]);
    assert!(
        table.contains("Leader") && table.contains("Reachable"),
        "{table}"
    );
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn killed_leader_is_replaced_within_5s_and_no_acknowledged_write_is_lost() {
    require_root("killed_leader_is_replaced_within_5s_and_no_acknowledged_write_is_lost");
    let lab = Lab::up(BIN, 3, 3);
    let old = leader(&lab, "n1");
    for i in 0..20 {
        assert!(label(&lab, &old, "n1", &format!("w{i}=v{i}")), "write {i}");
    }
    let other = lab.nodes().into_iter().find(|h| *h != old).unwrap();
    lab.kill(&old, "KILL");
    let killed = Instant::now();
    let took = wait_until(
        "a write after the leader was killed",
        Duration::from_secs(10),
        || {
            if label(&lab, &other, "n2", "after=kill") {
                Ok(killed.elapsed())
            } else {
                Err("write refused".into())
            }
        },
    );
    assert!(
        took < Duration::from_secs(5),
        "the first write after the kill took {took:?}"
    );
    let new = leader(&lab, &other);
    assert_ne!(new, old);
    let l = labels(&lab, &other, "n1");
    for i in 0..20 {
        assert_eq!(l[format!("w{i}")], format!("v{i}"), "write {i} lost: {l}");
    }
    lab.start(&old);
    wait_until(
        "the restarted node to catch up",
        Duration::from_secs(20),
        || {
            let l = labels(&lab, &old, "n2");
            if l["after"] == "kill" {
                Ok(())
            } else {
                Err(format!("n2 labels on {old}: {l}"))
            }
        },
    );
    assert_eq!(leader(&lab, &old), new);
    let status = lab.json(&old, &["status"]);
    assert_eq!(
        status["raft"]["voters"].as_array().map(|v| v.len()),
        Some(3),
        "{status}"
    );
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn losing_quorum_fails_writes_quickly_and_recovers_without_loss() {
    require_root("losing_quorum_fails_writes_quickly_and_recovers_without_loss");
    let lab = Lab::up(BIN, 3, 3);
    let lead = leader(&lab, "n1");
    assert!(label(&lab, &lead, "n1", "before=quorum-loss"));
    let others: Vec<String> = lab.nodes().into_iter().filter(|h| *h != lead).collect();
    // Killed, not stopped: an agent stopped with SIGTERM leaves the Raft voters, which
    // keeps the quorum of the managers that are left.
    lab.kill(&others[0], "KILL");
    lab.kill(&others[1], "KILL");
    let start = Instant::now();
    let err = lab.fails(&lead, &["node", "update", "--label-add", "lost=1", "n1"]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "refusal took {:?}",
        start.elapsed()
    );
    assert!(err.contains("no quorum"), "{err}");
    lab.start(&others[0]);
    wait_until("writes to work again", Duration::from_secs(20), || {
        if label(&lab, &others[0], "n1", "after=recovery") {
            Ok(())
        } else {
            Err("still refused".into())
        }
    });
    let l = labels(&lab, &others[0], "n1");
    assert_eq!(l["before"], "quorum-loss", "{l}");
    assert_eq!(l["after"], "recovery", "{l}");
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn restarting_every_agent_keeps_the_state() {
    require_root("restarting_every_agent_keeps_the_state");
    let lab = Lab::up(BIN, 4, 3);
    assert!(label(&lab, "n1", "n4", "zone=east"));
    lab.ok("n2", &["node", "update", "--availability", "pause", "n4"]);
    let before = membership(&lab, "n1");
    for host in lab.nodes() {
        lab.kill(&host, "TERM");
    }
    for host in lab.nodes() {
        lab.start(&host);
    }
    wait_until(
        "all four nodes Ready with their state",
        Duration::from_secs(30),
        || {
            let nodes = node_ls(&lab, "n4");
            let ready = nodes.iter().filter(|n| n["status"] == "ready").count();
            let leader = nodes.iter().any(|n| n["manager_status"] == "Leader");
            if ready == 4 && leader && membership(&lab, "n4") == before {
                Ok(())
            } else {
                Err(format!("{nodes:?}"))
            }
        },
    );
    assert!(label(&lab, "n3", "n4", "after=restart"));
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn promote_and_demote_move_a_node_in_and_out_of_raft() {
    require_root("promote_and_demote_move_a_node_in_and_out_of_raft");
    let lab = Lab::up(BIN, 3, 1);
    lab.ok("n1", &["node", "promote", "n2"]);
    wait_until("n2 to be a Raft voter", Duration::from_secs(20), || {
        let s = lab.json("n2", &["status"]);
        let voters = s["raft"]["voters"].as_array().cloned().unwrap_or_default();
        if s["role"] == "manager" && voters.iter().any(|v| v == "n2") {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    assert!(
        label(&lab, "n2", "n3", "by=n2"),
        "a promoted node can write"
    );
    lab.ok("n1", &["node", "demote", "n2"]);
    wait_until(
        "n2 to be a worker without Raft",
        Duration::from_secs(20),
        || {
            let s = lab.json("n2", &["status"]);
            if s["role"] == "worker" && s["raft"].is_null() {
                Ok(())
            } else {
                Err(s.to_string())
            }
        },
    );
    let err = lab.fails("n2", &["node", "update", "--label-add", "x=y", "n3"]);
    assert!(err.contains("is a worker"), "{err}");
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn bad_joins_and_bad_requests_are_refused_clearly_and_change_nothing() {
    require_root("bad_joins_and_bad_requests_are_refused_clearly_and_change_nothing");
    let lab = Lab::up(BIN, 4, 1);
    let worker_token = lab
        .ok("n1", &["cluster", "join-token", "-q", "worker"])
        .trim()
        .to_string();
    let manager = format!("{}:2377", lab.ip("n1"));

    // n3 leaves and becomes a free agent to try joins from.
    lab.ok("n3", &["cluster", "leave"]);
    assert_eq!(lab.json("n3", &["status"])["in_cluster"], false);
    wait_until("n3 to be Down", Duration::from_secs(15), || {
        let nodes = node_ls(&lab, "n1");
        match nodes.iter().find(|n| n["name"] == "n3") {
            Some(n) if n["status"] == "down" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let before = membership(&lab, "n1");
    let join = |token: &str, extra: &[&str]| {
        let mut args = vec!["cluster", "join", "--token", token];
        args.extend(extra);
        args.push(&manager);
        lab.fails("n3", &args)
    };
    let parts: Vec<&str> = worker_token.split('-').collect();
    let wrong_secret = format!("SHOAL-1-{}-{}", parts[2], "a".repeat(32));
    let wrong_digest = format!("SHOAL-1-{}-{}", "0".repeat(64), parts[3]);

    let e = join("not-a-token", &[]);
    assert!(e.contains("malformed join token"), "{e}");
    let e = join(&wrong_secret, &[]);
    assert!(e.contains("invalid join token"), "{e}");
    let e = join(&wrong_digest, &[]);
    assert!(e.contains("does not match the token"), "{e}");
    let e = join(&worker_token, &["--role", "manager"]);
    assert!(
        e.contains("worker token; it cannot join as a manager"),
        "{e}"
    );
    let e = lab.fails(
        "n3",
        &[
            "cluster",
            "join",
            "--token",
            &worker_token,
            "198.18.0.99:2377",
        ],
    );
    assert!(e.contains("cannot reach the manager"), "{e}");
    let e = lab.fails(
        "n3",
        &[
            "cluster",
            "join",
            "--token",
            &worker_token,
            "not-an-address",
        ],
    );
    assert!(e.contains("is not IP:PORT"), "{e}");
    let e = join(&worker_token, &[]);
    assert!(
        e.contains("already in the cluster") && e.contains("node rm n3"),
        "{e}"
    );
    assert_eq!(lab.json("n3", &["status"])["in_cluster"], false);

    let e = lab.fails("n1", &["cluster", "init"]);
    assert!(e.contains("already part of cluster"), "{e}");
    let e = lab.fails(
        "n2",
        &["cluster", "join", "--token", &worker_token, &manager],
    );
    assert!(e.contains("already part of cluster"), "{e}");
    let e = lab.fails("n2", &["node", "update", "--availability", "drain", "n1"]);
    assert!(e.contains("n2 is a worker"), "{e}");
    let e = lab.fails("n1", &["node", "rm", "n1"]);
    assert!(e.contains("last manager"), "{e}");
    let e = lab.fails("n1", &["node", "demote", "n1"]);
    assert!(e.contains("last manager"), "{e}");
    for args in [
        vec!["node", "inspect", "nope"],
        vec!["node", "rm", "nope"],
        vec!["node", "promote", "nope"],
        vec!["node", "update", "--availability", "drain", "nope"],
    ] {
        let e = lab.fails("n1", &args);
        assert!(e.contains("no such node: nope"), "{args:?}: {e}");
    }
    let e = lab.fails("n1", &["node", "update", "--label-add", "novalue", "n2"]);
    assert!(e.contains("expected KEY=VALUE"), "{e}");
    let e = lab.fails("n1", &["node", "rm", "n2"]);
    assert!(e.contains("not down"), "{e}");
    assert_eq!(
        membership(&lab, "n1"),
        before,
        "a refused request changed the cluster"
    );

    // The refused joins left nothing behind: after removing the old entry, n3 joins.
    lab.ok("n1", &["node", "rm", "n3"]);
    lab.ok(
        "n3",
        &["cluster", "join", "--token", &worker_token, &manager],
    );
    wait_until("n3 back and Ready", Duration::from_secs(15), || {
        let nodes = node_ls(&lab, "n1");
        let ok = nodes
            .iter()
            .any(|n| n["name"] == "n3" && n["status"] == "ready");
        if ok {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    });

    // A removed node can no longer talk to the cluster.
    lab.ok("n1", &["node", "rm", "--force", "n4"]);
    wait_until(
        "n4 to learn it was removed",
        Duration::from_secs(15),
        || {
            let s = lab.json("n4", &["status"]);
            if s["removed"] == true {
                Ok(())
            } else {
                Err(s.to_string())
            }
        },
    );
    assert!(node_ls(&lab, "n1").iter().all(|n| n["name"] != "n4"));
    let e = lab.fails("n4", &["node", "update", "--label-add", "x=y", "n4"]);
    assert!(e.contains("removed") || e.contains("no quorum"), "{e}");
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn lab_down_leaves_nothing_behind_even_after_a_panic() {
    require_root("lab_down_leaves_nothing_behind_even_after_a_panic");
    let links = || -> BTreeSet<String> {
        std::fs::read_dir("/sys/class/net")
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    };
    let before = links();
    let name = std::sync::Mutex::new(String::new());
    let result = std::panic::catch_unwind(|| {
        let lab = Lab::up(BIN, 2, 1);
        *name.lock().unwrap() = lab.name.clone();
        panic!("deliberate panic with a lab up");
    });
    assert!(result.is_err());
    let name = name.into_inner().unwrap();
    assert!(!name.is_empty());
    let prefix = format!("shl-{name}-");
    let namespaces: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(namespaces.is_empty(), "namespaces left: {namespaces:?}");
    assert!(!std::path::Path::new("/run/shoal/labs").join(&name).exists());
    assert!(!std::path::Path::new("/var/lib/shoal/labs")
        .join(&name)
        .exists());
    let marker = format!("/labs/{name}/");
    let procs: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&marker))
        .collect();
    assert!(procs.is_empty(), "processes left: {procs:?}");
    assert_eq!(links(), before, "the machine's own interfaces changed");
}

/// A TLS client with no certificate that trusts any server: a stranger on the network.
mod stranger {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::Arc;
    use std::time::Duration;

    /// Sends `head` and then `body` (which may be shorter than the head announces) and
    /// returns the response head's first line and headers, read within 5 s.
    pub fn post(to: SocketAddr, head: &str, body: &[u8]) -> String {
        let config = shoal_tests::tls::trust_any_server();
        let conn =
            rustls::ClientConnection::new(Arc::new(config), "shoal".try_into().unwrap()).unwrap();
        let tcp = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(head.as_bytes()).unwrap();
        tls.write_all(body).unwrap();
        tls.flush().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }
}

/// A caller without a certificate is refused on every route but `/v1/join` before its
/// body is read (the head announces 100 MB and sends 1 KB); `/v1/join` takes a few KB
/// at most and a handful of tries per address.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn the_control_port_refuses_strangers_before_reading_their_bodies() {
    require_root("the_control_port_refuses_strangers_before_reading_their_bodies");
    let lab = Lab::up(BIN, 1, 1);
    let to: std::net::SocketAddr = format!("{}:2377", lab.ip("n1")).parse().unwrap();
    let client = lab.host_ns("client");
    let ask = move |path: &'static str, length: usize, sent: usize| {
        shoal_tests::spawn_in(&client, move || {
            let head = format!(
                "POST {path} HTTP/1.1\r\nhost: n1\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
            );
            stranger::post(to, &head, &vec![b'{'; sent])
        })
        .join()
        .unwrap()
    };
    for path in [
        "/raft/append",
        "/raft/snapshot",
        "/v1/leader",
        "/v1/nothing",
    ] {
        let started = Instant::now();
        let got = ask(path, 100 << 20, 1024);
        assert!(got.starts_with("HTTP/1.1 403"), "{path}: {got}");
        assert!(started.elapsed() < Duration::from_secs(3), "{path}");
    }
    let got = ask("/v1/join", 1 << 20, 64 << 10);
    assert!(got.starts_with("HTTP/1.1 413"), "an oversized join: {got}");
    // Ten tries at once are let through (and fail on their token); then 429.
    let mut statuses = Vec::new();
    for _ in 0..14 {
        let got = ask("/v1/join", 2, 2);
        statuses.push(got.lines().next().unwrap_or_default().to_string());
    }
    assert!(statuses[0].starts_with("HTTP/1.1 400"), "{statuses:?}");
    let limited = statuses
        .iter()
        .filter(|s| s.starts_with("HTTP/1.1 429"))
        .count();
    assert!((3..=5).contains(&limited), "{statuses:?}");
    // The node is still well.
    lab.ok("n1", &["node", "ls"]);
}
