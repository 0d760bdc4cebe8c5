//! shoal as Docker's network: real dockerds (Debian's docker.io) in the lab's hosts,
//! containers from a busybox image imported offline, standalone and in a Swarm.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use shoal_tests::{exec_in, wait_until, Capture, Lab, Output, Sandbox};

mod lifecycle;
mod networks;

const BIN: &str = env!("CARGO_BIN_EXE_shoal");
/// The image every host imports.
const IMAGE: &str = "busybox:local";
/// A container command that ends at once on SIGTERM.
const SLEEP: &[&str] = &["sh", "-c", "trap exit TERM; sleep 3600 & wait"];

/// Docker's own CLI (Debian's, matching its dockerd), else whatever `docker` is.
fn docker_cli() -> &'static str {
    if std::path::Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

/// Panics unless this test can build labs (root) and run dockerd.
fn need_docker(test: &str) {
    shoal_tests::require_program(test, "dockerd", "apt-get install docker.io busybox-static");
}

/// Runs `docker ARGS` against `host`'s dockerd.
fn docker(lab: &Lab, host: &str, args: &[&str]) -> Output {
    let socket = format!("unix:///run/shoal/labs/{}/{host}.docker.sock", lab.name);
    let out = Command::new(docker_cli())
        .args(args)
        .env("DOCKER_HOST", socket)
        .output()
        .expect("run docker");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

fn docker_ok(lab: &Lab, host: &str, args: &[&str]) -> String {
    let out = docker(lab, host, args);
    assert!(
        out.ok(),
        "docker {} on {host}: {}{}",
        args.join(" "),
        out.stderr,
        out.stdout
    );
    out.stdout
}

fn docker_fails(lab: &Lab, host: &str, args: &[&str]) -> String {
    let out = docker(lab, host, args);
    assert!(
        !out.ok(),
        "docker {} on {host} should have failed: {}",
        args.join(" "),
        out.stdout
    );
    out.stderr
}

/// `docker network create -d shoal --ipam-driver shoal ARGS` on `host`.
fn shoal_network_create(lab: &Lab, host: &str, args: &[&str]) -> Output {
    let mut full = vec!["network", "create", "-d", "shoal", "--ipam-driver", "shoal"];
    full.extend(args);
    docker(lab, host, &full)
}

/// A lab of `nodes` hosts (n1 the only manager) with a dockerd each, the busybox image
/// on every one, and a resolver on the client host the hosts forward to.
fn docker_lab(nodes: usize, extra: &[&str]) -> Lab {
    let mut args = vec!["--docker"];
    args.extend(extra);
    let lab = Lab::up_with_upstream(BIN, nodes, 1, &args);
    let rootfs = shoal_tests::busybox_rootfs(&lab.name);
    for host in lab.nodes() {
        let socket = format!("unix:///run/shoal/labs/{}/{host}.docker.sock", lab.name);
        let import = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "tar -C {} -c . | {} import - {IMAGE}",
                    rootfs.display(),
                    docker_cli()
                ),
            ])
            .env("DOCKER_HOST", socket)
            .output()
            .unwrap();
        assert!(
            import.status.success(),
            "docker import on {host}: {}",
            String::from_utf8_lossy(&import.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&rootfs);
    lab
}

fn run(lab: &Lab, host: &str, name: &str, network: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name, "--network", network];
    args.extend(extra);
    args.push(IMAGE);
    args.extend(SLEEP);
    docker_ok(lab, host, &args)
}

/// Waits until `container` on `host` pings `target` (an address or a name).
fn pings(lab: &Lab, host: &str, container: &str, target: &str) {
    shoal_tests::container_pings(container, target, |command| {
        let mut args = vec!["exec", container];
        args.extend(command);
        docker(lab, host, &args)
    });
}

/// A container's address on `network`.
fn ip_on(lab: &Lab, host: &str, container: &str, network: &str) -> Ipv4Addr {
    let f = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    docker_ok(lab, host, &["inspect", "-f", &f, container])
        .parse()
        .unwrap()
}

/// A container's network namespace, for traffic from the test's threads.
fn netns_of(lab: &Lab, host: &str, container: &str) -> Sandbox {
    let pid = docker_ok(lab, host, &["inspect", "-f", "{{.State.Pid}}", container]);
    Sandbox {
        ns: format!("/proc/{pid}/ns/net"),
    }
}

/// Waits until the Docker network `network` is a shoal network (Docker names it a
/// moment after creating it).
fn in_shoal(lab: &Lab, network: &str) {
    wait_until(
        &format!("{network} in shoal"),
        Duration::from_secs(10),
        || {
            let out = lab.shoal("n1", &["network", "inspect", network]);
            if out.ok() {
                Ok(())
            } else {
                Err(out.stderr)
            }
        },
    );
}

/// `docker network create -d shoal --ipam-driver shoal OPTS NAME` on n1, then on each
/// of `others` with n1's subnet (standalone daemons share the network by its subnet);
/// returns the subnet.
fn shoal_network(lab: &Lab, name: &str, opts: &[&str], others: &[&str]) -> String {
    let create = |host: &str, subnet: Option<&str>| {
        let mut args = vec!["network", "create", "-d", "shoal", "--ipam-driver", "shoal"];
        args.extend(opts);
        if let Some(s) = subnet {
            args.extend(["--subnet", s]);
        }
        args.push(name);
        docker_ok(lab, host, &args);
    };
    create("n1", None);
    in_shoal(lab, name);
    let subnet = subnet_of(lab, name);
    for host in others {
        create(host, Some(&subnet));
    }
    subnet
}

fn subnet_of(lab: &Lab, network: &str) -> String {
    lab.json("n1", &["network", "inspect", network])["subnet"]
        .as_str()
        .unwrap()
        .to_string()
}
