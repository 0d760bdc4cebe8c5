//! Graceful node loss on real labs: a closed loop of idempotent GETs from the client
//! host, through the ingress and through a mesh-published port, fails no request while
//! each node in turn is drained (`node update --availability drain`) and then has its
//! agent stopped with SIGTERM; a node cut off without notice costs failures only within
//! the heartbeat window (≤ 3 s), none after.

use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_tests::{require_root, wait_until, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");
const HOST: &str = "web.test";

/// Service `web`: `replicas` tasks of `shoal tool http` on network `web`, routed by the
/// ingress for Host `web.test` and published through the mesh on port 8080.
fn web(lab: &Lab, replicas: u32) {
    // The client connects to each entry node from an address of its own (see `load`).
    for n in lab.nodes() {
        let source = format!("{}/15", source_for(&lab.ip(&n)));
        let out = lab.exec("client", &["ip", "addr", "add", &source, "dev", "eth0"]);
        assert!(out.ok(), "{source}: {}", out.stderr);
    }
    lab.ok("n1", &["network", "create", "--attachable", "web"]);
    let replicas = replicas.to_string();
    lab.create_service(
        &[
            "--name",
            "web",
            "--network",
            "web",
            "--replicas",
            &replicas,
            "--publish",
            "published=8080,target=80",
            "--label",
            "shoal.http.routers.web.rule=Host(`web.test`)",
        ],
        &[BIN, "tool", "http", "--port", "80"],
    );
}

fn running_on(lab: &Lab, host: &str) -> Vec<String> {
    lab.json(host, &["service", "ps", "web"])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|t| t["state"] == "running")
        .filter_map(|t| t["node"].as_str().map(String::from))
        .collect()
}

/// Waits until `want` tasks of web run, none on `not`, as `host` sees it.
fn settled(lab: &Lab, host: &str, want: usize, not: Option<&str>) {
    wait_until(
        &format!("{want} tasks of web running, none on {not:?}"),
        Duration::from_secs(30),
        || {
            let nodes = running_on(lab, host);
            if nodes.len() == want && not.is_none_or(|n| !nodes.iter().any(|x| x == n)) {
                Ok(())
            } else {
                Err(format!("{nodes:?}"))
            }
        },
    );
}

/// Waits until every entry of `entry` answers through the ingress and the mesh.
fn answers(lab: &Lab, entry: &str) {
    for url in urls(lab, entry) {
        wait_until(&format!("{url} to answer"), Duration::from_secs(20), || {
            let s = load(lab, &url, Duration::from_millis(300));
            if s["ok"].as_u64().unwrap_or(0) > 0 && failures(&s).is_empty() {
                Ok(())
            } else {
                Err(format!("{s}"))
            }
        });
    }
}

fn urls(lab: &Lab, entry: &str) -> [String; 2] {
    let ip = lab.ip(entry);
    [format!("http://{ip}:80/"), format!("http://{ip}:8080/")]
}

/// The client's source address for connections to entry node `ip` (198.18.0.K →
/// 198.18.1.K). Published ports keep the client's address, so a task sees the same
/// client address and port whichever node a connection came through, but the client's
/// TCP timestamps run on a clock per destination address: a port reused within a
/// minute towards the same task through another node can carry an older timestamp
/// than the task's TIME_WAIT socket remembers, and PAWS drops the SYN (as it would
/// behind any balancer that keeps client addresses). One client address per entry
/// keeps the phases' entries apart; README says so too.
fn source_for(ip: &str) -> String {
    ip.replacen("198.18.0.", "198.18.1.", 1)
}

/// Runs `shoal tool load` on the client host; its JSON summary.
fn load(lab: &Lab, url: &str, duration: Duration) -> Value {
    let d = format!("{}ms", duration.as_millis());
    let entry = url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap_or_default();
    let source = source_for(entry);
    let out = lab.exec(
        "client",
        &[
            BIN,
            "tool",
            "load",
            url,
            "--host",
            HOST,
            "--duration",
            &d,
            "--timeout",
            "2s",
            "--concurrency",
            "4",
            "--source",
            &source,
        ],
    );
    assert!(out.ok(), "load failed: {}{}", out.stdout, out.stderr);
    let line = out.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout))
}

fn failures(summary: &Value) -> Vec<Value> {
    summary["failures"].as_array().cloned().unwrap_or_default()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Runs `action` while both loads run through `entry` for `duration`; asserts no
/// request failed and that the action ended before the loads did.
fn under_load(lab: &Lab, entry: &str, duration: Duration, what: &str, action: impl FnOnce()) {
    let [ingress, mesh] = urls(lab, entry);
    let (a, b, ended) = std::thread::scope(|s| {
        let a = s.spawn(|| load(lab, &ingress, duration));
        let b = s.spawn(|| load(lab, &mesh, duration));
        std::thread::sleep(Duration::from_millis(500));
        action();
        let ended = now_ms();
        (a.join().unwrap(), b.join().unwrap(), ended)
    });
    for (name, s) in [("ingress", &a), ("mesh", &b)] {
        eprintln!(
            "{what} via {name}: {} requests, {} ok",
            s["requests"], s["ok"]
        );
        assert!(s["ok"].as_u64().unwrap_or(0) > 10, "{what} via {name}: {s}");
        assert!(
            failures(s).is_empty(),
            "{what}: requests via {name} failed: {s}"
        );
        assert!(
            s["ended_ms"].as_u64().unwrap_or(0) >= ended,
            "{what}: the load via {name} ended before the action did; make it longer"
        );
    }
}

fn status(lab: &Lab, host: &str, node: &str) -> String {
    lab.json(host, &["node", "ls"])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .find(|n| n["name"] == node)
        .and_then(|n| n["status"].as_str().map(String::from))
        .unwrap_or_default()
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn draining_and_stopping_each_node_in_turn_fails_no_request() {
    require_root("draining_and_stopping_each_node_in_turn_fails_no_request");
    let lab = Lab::up(BIN, 3, 3);
    let nodes = lab.nodes();
    // Two tasks a node, so every node drained or stopped in turn has tasks to move.
    web(&lab, 6);
    settled(&lab, "n1", 6, None);
    for entry in &nodes {
        answers(&lab, entry);
    }
    for (i, x) in nodes.iter().enumerate() {
        let entry = &nodes[(i + 1) % nodes.len()];
        let had = running_on(&lab, entry).iter().filter(|n| *n == x).count();
        assert!(had > 0, "{x} should have tasks to move");
        under_load(
            &lab,
            entry,
            Duration::from_secs(25),
            &format!("SIGTERM {x}"),
            || {
                let t = Instant::now();
                lab.kill(x, "TERM");
                eprintln!("the agent of {x} drained and exited in {:?}", t.elapsed());
                settled(&lab, entry, 6, Some(x));
                lab.start(x);
                wait_until(
                    &format!("{x} Ready again"),
                    Duration::from_secs(20),
                    || match status(&lab, entry, x).as_str() {
                        "ready" => Ok(()),
                        other => Err(other.to_string()),
                    },
                );
            },
        );
        let log = lab.log(x);
        assert!(
            log.contains("drained; exiting"),
            "{x} did not drain:\n{log}"
        );
    }
    for (i, x) in nodes.iter().enumerate() {
        let entry = &nodes[(i + 1) % nodes.len()];
        let had = running_on(&lab, entry).iter().filter(|n| *n == x).count();
        under_load(
            &lab,
            entry,
            Duration::from_secs(12),
            &format!("drain {x}"),
            || {
                lab.ok(entry, &["node", "update", "--availability", "drain", x]);
                settled(&lab, entry, 6, Some(x));
                lab.ok(entry, &["node", "update", "--availability", "active", x]);
            },
        );
        eprintln!("drained {x}: it had {had} task(s)");
    }
    // The managers that left came back as voters.
    wait_until("three voters", Duration::from_secs(20), || {
        let s = lab.json("n1", &["status"]);
        match s["raft"]["voters"].as_array().map(|v| v.len()) {
            Some(3) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn a_node_cut_off_without_notice_costs_failures_only_within_the_heartbeat_window() {
    require_root("a_node_cut_off_without_notice_costs_failures_only_within_the_heartbeat_window");
    let lab = Lab::up(BIN, 3, 3);
    web(&lab, 3);
    settled(&lab, "n1", 3, None);
    let leader = wait_until("a leader", Duration::from_secs(15), || {
        lab.json("n1", &["node", "ls"])
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .find(|n| n["manager_status"] == "Leader")
            .and_then(|n| n["name"].as_str().map(String::from))
            .ok_or_else(|| "no leader".to_string())
    });
    // Cut a node that is neither the leader (no election in the way) nor the entry.
    let others: Vec<String> = lab.nodes().into_iter().filter(|n| *n != leader).collect();
    let (x, entry) = (&others[0], &others[1]);
    answers(&lab, entry);
    let [ingress, mesh] = urls(&lab, entry);
    let (a, b, cut_at) = std::thread::scope(|s| {
        let a = s.spawn(|| load(&lab, &ingress, Duration::from_secs(10)));
        let b = s.spawn(|| load(&lab, &mesh, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_secs(2));
        let cut_at = now_ms();
        lab.cut(x);
        (a.join().unwrap(), b.join().unwrap(), cut_at)
    });
    for (name, s) in [("ingress", &a), ("mesh", &b)] {
        let late: Vec<u64> = failures(s)
            .iter()
            .filter_map(|f| f["at_ms"].as_u64())
            .map(|at| at.saturating_sub(cut_at))
            .collect();
        eprintln!(
            "cut {x} via {name}: {} requests, {} failed at +{late:?} ms",
            s["requests"],
            late.len()
        );
        let after: Vec<&u64> = late.iter().filter(|ms| **ms > 3_000).collect();
        // Published ports too: an unanswered SYN's conntrack entry lasts 5 s, not 120 s,
        // so a client port is not pinned to the dead task.
        assert!(
            after.is_empty(),
            "via {name}: requests failed more than 3 s after the cut: {s}"
        );
        assert!(s["ok"].as_u64().unwrap_or(0) > 10, "{s}");
    }
    wait_until(
        &format!("{x} Down"),
        Duration::from_secs(5),
        || match status(&lab, entry, x).as_str() {
            "down" => Ok(()),
            other => Err(other.to_string()),
        },
    );
}
