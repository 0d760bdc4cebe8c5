//! Swarm parity on real labs: what a Docker Swarm user expects in the first hour, one
//! test per behaviour, each citing the Docker page or moby code it follows.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use shoal_tests::net::{at, fake_upstream, http_get, resolve, udp_exchange, DnsAnswer};
use shoal_tests::{exec_in, ip_of, require_root, wait_until, Lab};

mod dns;
mod placement;

const BIN: &str = env!("CARGO_BIN_EXE_shoal");
/// DNS query types.
const A: u16 = 1;
const PTR: u16 = 12;

fn in_state<'a>(tasks: &'a [Value], state: &str) -> Vec<&'a Value> {
    tasks.iter().filter(|t| t["state"] == state).collect()
}

/// Waits until `service` has `running` running tasks; returns its tasks.
fn wait_running(lab: &Lab, service: &str, running: usize) -> Vec<Value> {
    wait_until(
        &format!("{running} running {service} tasks"),
        Duration::from_secs(30),
        || {
            let t = lab.tasks(service);
            if in_state(&t, "running").len() == running {
                Ok(t)
            } else {
                Err(format!("{t:?}"))
            }
        },
    )
}

fn reverse(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
}

fn ask(ns: &str, server: Ipv4Addr, name: &str, qtype: u16) -> DnsAnswer {
    wait_until(
        &format!("an answer for {name}"),
        Duration::from_secs(10),
        || resolve(ns, server, name, qtype).ok_or_else(|| "no answer".to_string()),
    )
}

/// Waits until an HTTP GET from `ns` to `addr` answers with a body holding `needle`.
fn serves(ns: &str, addr: SocketAddr, needle: &str, what: &str, within: Duration) {
    wait_until(what, within, || match http_get(ns, addr) {
        Some(b) if b.contains(needle) => Ok(()),
        other => Err(format!("{other:?}")),
    });
}

fn http_tool() -> Vec<&'static str> {
    vec![BIN, "tool", "http", "--port", "80"]
}

/// docs: engine/swarm/ingress.md ("curl localhost:8080" on any node, with or without a
/// task) and the routing mesh's `-m addrtype --dst-type LOCAL` in moby's
/// libnetwork service_linux.go: a published port answers on the node itself, on every
/// address, TCP and UDP, ingress and host mode.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn a_published_port_answers_on_the_node_itself_on_every_address() {
    require_root("a_published_port_answers_on_the_node_itself_on_every_address");
    let lab = Lab::up(BIN, 2, 1);
    lab.ok("n1", &["network", "create", "apps"]);
    lab.create_service(
        &[
            "--name",
            "web",
            "--network",
            "apps",
            "--publish",
            "8080:80",
            "--constraint",
            "node.hostname==n2",
        ],
        &http_tool(),
    );
    lab.create_service(
        &[
            "--name",
            "echo",
            "--network",
            "apps",
            "--publish",
            "5300:5353/udp",
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
            "--constraint",
            "node.hostname==n1",
        ],
        &http_tool(),
    );
    wait_running(&lab, "web", 1);
    wait_running(&lab, "local", 1);
    for node in ["n1", "n2"] {
        let ns = lab.host_ns(node);
        for addr in ["127.0.0.1".to_string(), lab.ip(node)] {
            serves(
                &ns,
                at(&addr, 8080),
                "service=web",
                &format!("{node} to answer {addr}:8080 itself"),
                Duration::from_secs(15),
            );
            wait_until(
                &format!("{node} to answer {addr}:5300/udp itself"),
                Duration::from_secs(15),
                || match udp_exchange(&ns, at(&addr, 5300), b"hi".to_vec()) {
                    Some(r) if String::from_utf8_lossy(&r).contains("service=echo") => Ok(()),
                    other => Err(format!("{other:?}")),
                },
            );
        }
    }
    // Host mode: on the node that runs the task, from the node itself too.
    let n1 = lab.host_ns("n1");
    for addr in ["127.0.0.1".to_string(), lab.ip("n1")] {
        serves(
            &n1,
            at(&addr, 8081),
            "service=local",
            &format!("n1 to answer host-mode {addr}:8081"),
            Duration::from_secs(15),
        );
    }
    // Nothing on the node's loopback is opened to the network: route_localnet stays off.
    let localnet = exec_in(&n1, &["cat", "/proc/sys/net/ipv4/conf/all/route_localnet"]);
    assert_eq!(localnet.stdout.trim(), "0");
}

/// docs: network/drivers/overlay.md (`--opt encrypted`,
/// `com.docker.network.driver.mtu`, `com.docker.network.driver.overlay.vxlanid_list`)
/// and moby libnetwork drivers/overlay ov_network.go: Docker's option names work,
/// unknown ones are refused.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn dockers_network_option_spellings_are_accepted_and_unknown_ones_refused() {
    require_root("dockers_network_option_spellings_are_accepted_and_unknown_ones_refused");
    let lab = Lab::up(BIN, 1, 1);
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--opt",
            "com.docker.network.driver.mtu=1400",
            "--opt",
            "com.docker.network.driver.overlay.vxlanid_list=5000",
            "docker-style",
        ],
    );
    let n = lab.json("n1", &["network", "inspect", "docker-style"]);
    assert_eq!(
        (n["mtu"].as_u64(), n["vni"].as_u64()),
        (Some(1350), Some(5000))
    );
    lab.ok(
        "n1",
        &["network", "create", "--opt", "encrypted=", "secret"],
    );
    assert_eq!(
        lab.json("n1", &["network", "inspect", "secret"])["encrypted"],
        true
    );
    let e = lab.fails(
        "n1",
        &[
            "network",
            "create",
            "--opt",
            "com.docker.network.driver.overlay.vxlanid_list=5000",
            "again",
        ],
    );
    assert!(
        e.contains("VXLAN ID 5000 is already used by network docker-style"),
        "{e}"
    );
    let e = lab.fails(
        "n1",
        &[
            "network",
            "create",
            "--opt",
            "com.docker.network.foo=1",
            "x",
        ],
    );
    assert!(e.contains("unknown --opt"), "{e}");
}

/// Unix and Docker CLI manners: a closed pipe ends the command quietly; `shoal status`
/// keeps task IDs and pids apart; slots agree between `service ps` and the task; the
/// lab prints commands that work when `shoal` is not on PATH.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn the_cli_ends_quietly_on_a_closed_pipe_and_says_what_works() {
    require_root("the_cli_ends_quietly_on_a_closed_pipe_and_says_what_works");
    let lab = Lab::up(BIN, 1, 1);
    let try_line = lab
        .up_stdout
        .lines()
        .find(|l| l.starts_with("Try:"))
        .unwrap_or_else(|| panic!("no Try line in {}", lab.up_stdout));
    let program = try_line.split_whitespace().nth(1).unwrap();
    let on_path = Command::new("sh")
        .args(["-c", "command -v shoal"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        program == BIN || (program == "shoal" && on_path),
        "the Try line must run as printed: {try_line}"
    );
    lab.ok("n1", &["network", "create", "apps"]);
    for i in 0..3 {
        lab.create_service(
            &[
                "--name",
                &format!("svc{i}"),
                "--network",
                "apps",
                "--replicas",
                "2",
            ],
            &http_tool(),
        );
    }
    let ts = wait_running(&lab, "svc0", 2);
    // `shoal service ls | head -0`: the reader is gone before anything is written.
    let mut child = Command::new(BIN)
        .args([
            "--host",
            &format!("unix://{}", lab.socket("n1")),
            "service",
            "ls",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    // Status: "<task ID> pid N" with a gap between them.
    let status = lab.ok("n1", &["status"]);
    for t in &ts {
        let id = t["id"].as_str().unwrap();
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().next() == Some(id) && l.contains(" pid ")),
            "{status}"
        );
    }
    // The slot in `service ps` is the slot the task sees.
    let n1 = lab.host_ns("n1");
    for t in &ts {
        let name = t["name"].as_str().unwrap();
        let slot = name.rsplit('.').next().unwrap();
        let ip = t["addresses"]["apps"].as_str().unwrap();
        let body = wait_until("the task to answer", Duration::from_secs(10), || {
            http_get(&n1, at(ip, 80)).ok_or_else(|| "no answer".to_string())
        });
        assert!(body.contains(&format!("slot={slot} ")), "{name}: {body}");
    }
    // Without shoal on PATH, the printed commands name this binary, and `lab exec`
    // runs it for `shoal`.
    let out = Command::new(BIN)
        .args([
            "lab", "exec", "--name", &lab.name, "n1", "--", "shoal", "node", "ls",
        ])
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("n1"));
}
