//! shoal as Docker's network: real dockerds (Debian's docker.io) in the lab's hosts,
//! containers from a busybox image imported offline, standalone and in a Swarm.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use shoal_tests::net::fake_upstream;
use shoal_tests::{exec_in, privileged, wait_until, Lab, Output, Sandbox};

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

fn need_docker(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    let found = Command::new("dockerd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{test} runs real dockerds: install Docker (apt-get install docker.io busybox-static)"
    );
    true
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

/// A lab of `nodes` hosts (n1 the only manager) with a dockerd each, the busybox image
/// on every one, and a resolver on the client host the hosts forward to.
fn docker_lab(nodes: usize, extra: &[&str]) -> Lab {
    let mut args = vec!["--docker", "--dns-upstream", "198.18.0.250:53"];
    args.extend(extra);
    let lab = Lab::up_with(BIN, nodes, 1, &args);
    fake_upstream(
        &lab.host_ns("client"),
        "198.18.0.250:53".parse().unwrap(),
        "example.test",
        Ipv4Addr::new(192, 0, 2, 7),
    );
    let rootfs = std::env::temp_dir().join(format!("shoal-busybox-{}", lab.name));
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox (apt-get install busybox-static)");
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for applet in [
        "sh", "sleep", "ping", "nslookup", "ip", "nc", "cat", "wget", "httpd", "echo", "hostname",
    ] {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
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

fn subnet_of(lab: &Lab, network: &str) -> String {
    lab.json("n1", &["network", "inspect", network])["subnet"]
        .as_str()
        .unwrap()
        .to_string()
}

/// docs: "Use with Docker" (README) and Weave's net-plugin workflow: containers on a
/// shoal network on two hosts reach each other by address, name and alias, move data
/// intact, and reach a shoal sandbox on the same network.
#[test]
fn docker_containers_on_a_shoal_network_reach_each_other_across_hosts() {
    if !need_docker("docker_containers_on_a_shoal_network_reach_each_other_across_hosts") {
        return;
    }
    let lab = docker_lab(2, &[]);
    docker_ok(
        &lab,
        "n1",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "web",
        ],
    );
    in_shoal(&lab, "web");
    let subnet = subnet_of(&lab, "web");
    docker_ok(
        &lab,
        "n2",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "--subnet",
            &subnet,
            "web",
        ],
    );
    run(&lab, "n1", "b1", "web", &["--network-alias", "bee"]);
    run(&lab, "n2", "b2", "web", &[]);
    let b1 = ip_on(&lab, "n1", "b1", "web");
    let b2 = ip_on(&lab, "n2", "b2", "web");
    assert_ne!(b1, b2);
    for target in [b1.to_string(), "b1".into(), "bee".into()] {
        wait_until(
            &format!("b2 to reach {target}"),
            Duration::from_secs(10),
            || {
                let out = docker(
                    &lab,
                    "n2",
                    &["exec", "b2", "ping", "-c", "1", "-W", "1", &target],
                );
                if out.ok() {
                    Ok(())
                } else {
                    Err(out.stderr + &out.stdout)
                }
            },
        );
    }
    let looked_up = docker_ok(&lab, "n2", &["exec", "b2", "nslookup", "bee"]);
    assert!(looked_up.contains(&b1.to_string()), "{looked_up}");
    // A shoal sandbox on the same network, by name.
    let sb = lab.sandbox("sbx");
    lab.ok(
        "n1",
        &["attach", "--network", "web", "--name", "sbx", &sb.ns],
    );
    wait_until(
        "b2 to reach the sandbox by name",
        Duration::from_secs(10),
        || {
            let out = docker(
                &lab,
                "n2",
                &["exec", "b2", "ping", "-c", "1", "-W", "1", "sbx"],
            );
            if out.ok() {
                Ok(())
            } else {
                Err(out.stderr + &out.stdout)
            }
        },
    );
    // 32 MB across hosts, checksummed.
    let sink = netns_of(&lab, "n1", "b1").sink(SocketAddr::new(b1.into(), 5000));
    let sent = netns_of(&lab, "n2", "b2").send(SocketAddr::new(b1.into(), 5000), 32 << 20, None);
    let sent = sent.join().unwrap();
    let (bytes, got, peer) = sink.join().unwrap();
    assert_eq!((bytes, got), (32 << 20, sent));
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V4(b2),
        "no NAT between containers"
    );
    // Docker's view matches shoal's.
    let net = lab.json("n1", &["network", "inspect", "web"]);
    let names: Vec<&str> = net["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for n in ["b1", "b2", "sbx"] {
        assert!(names.contains(&n), "{names:?}");
    }
}

/// docs: network/drivers/overlay.md (`--internal`) and Docker's network isolation:
/// two networks do not reach each other; an internal one has no way out, not even DNS.
#[test]
fn docker_networks_are_isolated_and_internal_ones_have_no_egress() {
    if !need_docker("docker_networks_are_isolated_and_internal_ones_have_no_egress") {
        return;
    }
    let lab = docker_lab(2, &[]);
    for (net, extra) in [("a", vec![]), ("b", vec![]), ("vault", vec!["--internal"])] {
        let mut args = vec!["network", "create", "-d", "shoal", "--ipam-driver", "shoal"];
        args.extend(extra);
        args.push(net);
        docker_ok(&lab, "n1", &args);
    }
    run(&lab, "n1", "ca", "a", &[]);
    run(&lab, "n1", "cv", "vault", &[]);
    in_shoal(&lab, "b");
    let subnet_b = subnet_of(&lab, "b");
    docker_ok(
        &lab,
        "n2",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "--subnet",
            &subnet_b,
            "b",
        ],
    );
    run(&lab, "n2", "cb", "b", &[]);
    let cb = ip_on(&lab, "n2", "cb", "b");
    let ca = netns_of(&lab, "n1", "ca");
    assert!(!ca.can_connect(SocketAddr::new(cb.into(), 80), Duration::from_secs(1)));
    let ping = docker(
        &lab,
        "n1",
        &["exec", "ca", "ping", "-c", "1", "-W", "1", &cb.to_string()],
    );
    assert!(!ping.ok(), "network a reached network b");
    // The client host listens on the underlay; a container on a plain network gets out.
    let client = Sandbox {
        ns: lab.host_ns("client"),
    };
    let listening = client.sink("198.18.0.250:6000".parse().unwrap());
    let sent = netns_of(&lab, "n1", "ca").send("198.18.0.250:6000".parse().unwrap(), 1000, None);
    assert_eq!(sent.join().unwrap(), listening.join().unwrap().1);
    let vault = netns_of(&lab, "n1", "cv");
    assert!(
        !vault.can_connect("198.18.0.250:6000".parse().unwrap(), Duration::from_secs(1)),
        "the internal network got out"
    );
    let dns = docker(&lab, "n1", &["exec", "cv", "nslookup", "example.test"]);
    assert!(
        !dns.stdout.contains("192.0.2.7"),
        "the internal network resolved an outside name: {}",
        dns.stdout
    );
    let fine = docker_ok(&lab, "n1", &["exec", "ca", "nslookup", "example.test"]);
    assert!(fine.contains("192.0.2.7"), "{fine}");
}

/// docs: network/drivers/overlay.md (`--opt encrypted`): between hosts the containers'
/// traffic travels only inside WireGuard (UDP 51820); no VXLAN and no payload is seen.
#[test]
fn an_encrypted_docker_network_carries_only_wireguard_between_hosts() {
    if !need_docker("an_encrypted_docker_network_carries_only_wireguard_between_hosts") {
        return;
    }
    let lab = docker_lab(2, &[]);
    docker_ok(
        &lab,
        "n1",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "--opt",
            "encrypted",
            "sec",
        ],
    );
    in_shoal(&lab, "sec");
    assert_eq!(
        lab.json("n1", &["network", "inspect", "sec"])["encrypted"],
        true
    );
    let subnet = subnet_of(&lab, "sec");
    docker_ok(
        &lab,
        "n2",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "--opt",
            "encrypted",
            "--subnet",
            &subnet,
            "sec",
        ],
    );
    run(&lab, "n1", "s1", "sec", &[]);
    run(&lab, "n2", "s2", "sec", &[]);
    let s1 = ip_on(&lab, "n1", "s1", "sec");
    wait_until("s2 to reach s1", Duration::from_secs(15), || {
        let out = docker(
            &lab,
            "n2",
            &["exec", "s2", "ping", "-c", "1", "-W", "1", &s1.to_string()],
        );
        if out.ok() {
            Ok(())
        } else {
            Err(out.stderr)
        }
    });
    let capture = std::env::temp_dir().join(format!("shoal-{}-sec.pcap", lab.name));
    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.host_ns("n2"),
            "tcpdump",
            "-i",
            "eth0",
            "-U",
            "-w",
        ])
        .arg(&capture)
        .args(["-c", "200", "udp", "and", "host", "198.18.0.1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump (apt-get install tcpdump)");
    std::thread::sleep(Duration::from_millis(500));
    let secret = "shoal-plaintext-marker-".repeat(20);
    let sink = netns_of(&lab, "n1", "s1").sink(SocketAddr::new(s1.into(), 5001));
    let _ = docker(
        &lab,
        "n2",
        &[
            "exec",
            "s2",
            "sh",
            "-c",
            &format!("echo {secret} | nc {s1} 5001"),
        ],
    );
    let _ = sink.join();
    std::thread::sleep(Duration::from_millis(500));
    let _ = nix_kill(dump.id());
    let _ = dump.wait();
    let bytes = std::fs::read(&capture).unwrap_or_default();
    let summary = exec_in(
        &lab.host_ns("n2"),
        &["tcpdump", "-nr", &capture.to_string_lossy()],
    )
    .stdout;
    let _ = std::fs::remove_file(&capture);
    let text = String::from_utf8_lossy(&bytes);
    assert!(!bytes.is_empty(), "nothing captured");
    assert!(
        !text.contains("shoal-plaintext-marker"),
        "the payload crossed the underlay in the clear"
    );
    let between: Vec<&str> = summary
        .lines()
        .filter(|l| l.contains("198.18.0.1."))
        .collect();
    assert!(
        !between.is_empty(),
        "no packets between the hosts: {summary}"
    );
    for line in &between {
        assert!(line.contains(".51820"), "not WireGuard: {line}");
        assert!(!line.contains(".4789"), "VXLAN in the clear: {line}");
    }
}

fn nix_kill(pid: u32) -> std::io::Result<()> {
    // SAFETY: sending a signal to a child we started.
    let rc = unsafe { libc::kill(pid as i32, libc::SIGINT) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// docs: Weave's Swarm workflow (`docker network create -d <plugin> --attachable`,
/// `docker service create --network`): a 3-replica service spread over the Swarm's
/// nodes, reached by its name from a container on another node; scaling down frees
/// the addresses in shoal.
#[test]
fn a_swarm_service_on_a_shoal_network_spreads_and_scaling_down_frees_addresses() {
    if !need_docker("a_swarm_service_on_a_shoal_network_spreads_and_scaling_down_frees_addresses") {
        return;
    }
    let lab = docker_lab(2, &[]);
    // Swarm needs managed plugins: the same plugin on every node, before the Swarm
    // forms (its scheduler places tasks only where the plugin is).
    for host in ["n1", "n2"] {
        let data = format!("/var/lib/shoal/labs/{}/{host}", lab.name);
        let out = lab.cli(&[
            "lab",
            "exec",
            "--name",
            &lab.name,
            host,
            "--",
            "shoal",
            "docker-plugin",
            "install",
            "--data-dir",
            &data,
        ]);
        assert!(out.ok(), "plugin install on {host}: {}", out.stderr);
    }
    docker_ok(
        &lab,
        "n1",
        &[
            "swarm",
            "init",
            "--advertise-addr",
            "198.18.0.1:2477",
            "--listen-addr",
            "198.18.0.1:2477",
            "--data-path-port",
            "4790",
        ],
    );
    let token = docker_ok(&lab, "n1", &["swarm", "join-token", "-q", "worker"]);
    docker_ok(
        &lab,
        "n2",
        &[
            "swarm",
            "join",
            "--token",
            &token,
            "--advertise-addr",
            "198.18.0.2:2477",
            "--listen-addr",
            "198.18.0.2:2477",
            "198.18.0.1:2477",
        ],
    );
    docker_ok(
        &lab,
        "n1",
        &[
            "network",
            "create",
            "-d",
            "shoal:latest",
            "--ipam-driver",
            "shoal:latest",
            "--scope",
            "swarm",
            "--attachable",
            "sw",
        ],
    );
    docker_ok(
        &lab,
        "n1",
        &[
            "service",
            "create",
            "--detach",
            "--name",
            "web",
            "--replicas",
            "3",
            "--network",
            "sw",
            "--endpoint-mode",
            "dnsrr",
            IMAGE,
            "sh",
            "-c",
            "trap exit TERM; httpd -f -p 80 & wait",
        ],
    );
    wait_until("3 running tasks", Duration::from_secs(60), || {
        let ps = docker_ok(
            &lab,
            "n1",
            &[
                "service",
                "ps",
                "web",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.CurrentState}}",
            ],
        );
        let running = ps.lines().filter(|l| l.starts_with("Running")).count();
        if running == 3 {
            Ok(())
        } else {
            Err(ps)
        }
    });
    let net = lab.json("n1", &["network", "inspect", "sw"]);
    let mut on: Vec<String> = net["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].as_str().unwrap().to_string())
        .collect();
    on.sort();
    on.dedup();
    assert_eq!(on, ["n1", "n2"], "tasks on both nodes: {net}");
    let in_use = |lab: &Lab| {
        lab.json("n1", &["network", "inspect", "sw"])["in_use"]
            .as_u64()
            .unwrap()
    };
    let before = in_use(&lab);
    // A container on n2 reaches the service by name.
    run(&lab, "n2", "probe", "sw", &[]);
    wait_until("the service by name", Duration::from_secs(20), || {
        // busybox's wget crashes in a static build; nc speaks the HTTP.
        let get = r#"printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 web 80"#;
        let out = docker(&lab, "n2", &["exec", "probe", "sh", "-c", get]);
        if out.stdout.starts_with("HTTP/1.") {
            Ok(())
        } else {
            Err(out.stderr + &out.stdout)
        }
    });
    docker_ok(&lab, "n1", &["service", "scale", "--detach", "web=1"]);
    wait_until("addresses freed", Duration::from_secs(60), || {
        let now = in_use(&lab);
        if now + 2 <= before + 1 {
            Ok(())
        } else {
            Err(format!("{now} in use, {before} before"))
        }
    });
    docker_ok(&lab, "n2", &["rm", "-f", "probe"]);
    docker_ok(&lab, "n1", &["service", "rm", "web"]);
    wait_until(
        "the service's endpoints gone",
        Duration::from_secs(60),
        || {
            let net = lab.json("n1", &["network", "inspect", "sw"]);
            let left = net["endpoints"].as_array().map(|a| a.len()).unwrap_or(0);
            if left == 0 {
                Ok(())
            } else {
                Err(net.to_string())
            }
        },
    );
    docker_ok(&lab, "n1", &["network", "rm", "sw"]);
    wait_until(
        "the network gone from shoal",
        Duration::from_secs(30),
        || {
            let nets = lab.json("n1", &["network", "ls"]);
            if nets
                .as_array()
                .is_some_and(|a| a.iter().all(|n| n["name"] != "sw"))
            {
                Ok(())
            } else {
                Err(nets.to_string())
            }
        },
    );
}

/// What a user gets wrong reaches them through Docker's CLI in shoal's words.
#[test]
fn bad_docker_input_comes_back_as_shoals_message() {
    if !need_docker("bad_docker_input_comes_back_as_shoals_message") {
        return;
    }
    let lab = docker_lab(2, &[]);
    let create = |args: &[&str]| {
        let mut full = vec!["network", "create", "-d", "shoal"];
        full.extend(args);
        docker_fails(&lab, "n1", &full)
    };
    let e = create(&["--ipam-driver", "shoal", "--opt", "colour=blue", "x1"]);
    assert!(e.contains("unknown --opt"), "{e}");
    let e = create(&["x2"]);
    assert!(e.contains("--ipam-driver"), "{e}");
    docker_ok(
        &lab,
        "n1",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "--subnet",
            "10.77.0.0/24",
            "ok",
        ],
    );
    // Straight after: the network being made already holds its subnet.
    let e = create(&["--ipam-driver", "shoal", "--subnet", "10.77.0.0/16", "x3"]);
    assert!(e.contains("overlaps"), "{e}");
    let e = create(&["--ipam-driver", "shoal", "--ipam-opt", "foo=bar", "x4"]);
    assert!(e.contains("--ipam-opt foo"), "{e}");
    in_shoal(&lab, "ok");
    let e = docker_fails(
        &lab,
        "n1",
        &[
            "run",
            "-d",
            "--name",
            "far",
            "--network",
            "ok",
            "--ip",
            "10.78.0.5",
            IMAGE,
            "true",
        ],
    );
    assert!(e.contains("10.78.0.5"), "{e}");
    // A shoal worker cannot make networks; it can map one a manager made.
    let e = docker_fails(
        &lab,
        "n2",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "fresh",
        ],
    );
    assert!(e.contains("shoal worker"), "{e}");
    docker_ok(
        &lab,
        "n2",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "--subnet",
            "10.77.0.0/24",
            "ok",
        ],
    );
    run(&lab, "n1", "busy", "ok", &[]);
    let e = docker_fails(&lab, "n1", &["network", "rm", "ok"]);
    assert!(e.contains("active endpoints"), "{e}");
    let e = docker_fails(
        &lab,
        "n1",
        &[
            "run",
            "-d",
            "--network",
            "ok",
            "-p",
            "2377:80",
            IMAGE,
            "true",
        ],
    );
    assert!(e.contains("control port"), "{e}");
}

/// Faults: kill -9 of the agent during a transfer between containers costs nothing, a
/// restarted agent changes nothing in the kernel, a container removed while the agent
/// was down is cleaned up when it returns, and a dockerd restart (live-restore) keeps
/// containers connected.
#[test]
fn agent_and_dockerd_restarts_lose_no_endpoint_and_no_traffic() {
    if !need_docker("agent_and_dockerd_restarts_lose_no_endpoint_and_no_traffic") {
        return;
    }
    let lab = docker_lab(2, &["--docker-arg=--live-restore"]);
    docker_ok(
        &lab,
        "n1",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "web",
        ],
    );
    in_shoal(&lab, "web");
    let subnet = subnet_of(&lab, "web");
    docker_ok(
        &lab,
        "n2",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "--subnet",
            &subnet,
            "web",
        ],
    );
    run(&lab, "n1", "aa", "web", &[]);
    run(&lab, "n2", "bb", "web", &[]);
    run(&lab, "n2", "gone", "web", &[]);
    let a = ip_on(&lab, "n1", "aa", "web");
    let links = |host: &str| exec_in(&lab.host_ns(host), &["ip", "-o", "link", "show"]).stdout;
    let before = links("n1");
    // 64 MB at 16 MB/s: about 4 s, during which n1's agent dies and comes back.
    let sink = netns_of(&lab, "n1", "aa").sink(SocketAddr::new(a.into(), 5002));
    let sent =
        netns_of(&lab, "n2", "bb").send(SocketAddr::new(a.into(), 5002), 64 << 20, Some(16 << 20));
    std::thread::sleep(Duration::from_millis(800));
    lab.kill("n1", "KILL");
    lab.start("n1");
    assert_eq!(
        sent.join().unwrap(),
        sink.join().unwrap().1,
        "the transfer completed intact"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        links("n1"),
        before,
        "the restarted agent changed nothing in the kernel"
    );
    // A container removed while n2's agent is down.
    lab.kill("n2", "KILL");
    let _ = docker(&lab, "n2", &["rm", "-f", "gone"]);
    lab.start("n2");
    wait_until(
        "the gone container's endpoint cleaned up",
        Duration::from_secs(60),
        || {
            let net = lab.json("n1", &["network", "inspect", "web"]);
            let names: Vec<String> = net["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["name"].as_str().map(String::from))
                .collect();
            if names.iter().any(|n| n == "gone") {
                Err(format!("{names:?}"))
            } else {
                Ok(())
            }
        },
    );
    // dockerd restarts with live-restore: the containers keep their network.
    let b = netns_of(&lab, "n2", "bb");
    let before_kill = docker_ok(&lab, "n2", &["ps", "-a"]);
    let out = lab.cli(&["lab", "kill", "--name", &lab.name, "--dockerd", "n2"]);
    assert!(out.ok(), "{}", out.stderr);
    let ping = Command::new("nsenter")
        .arg(format!("--net={}", b.ns))
        .args(["ping", "-c", "1", "-W", "2", &a.to_string()])
        .output()
        .unwrap();
    let seen = |args: &[&str]| {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", b.ns))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        ping.status.success(),
        "bb lost its network while dockerd was down: {}\n{}\n{before_kill}\n{}: {}",
        seen(&["ip", "addr"]),
        seen(&["ip", "neigh"]),
        b.ns,
        std::path::Path::new(&b.ns).exists()
    );
    let out = lab.cli(&["lab", "start", "--name", &lab.name, "--dockerd", "n2"]);
    assert!(out.ok(), "{}", out.stderr);
    wait_until(
        "b to reach a after dockerd restarted",
        Duration::from_secs(20),
        || {
            let out = docker(
                &lab,
                "n2",
                &["exec", "bb", "ping", "-c", "1", "-W", "1", &a.to_string()],
            );
            if out.ok() {
                Ok(())
            } else {
                Err(out.stderr)
            }
        },
    );
    let net: Value = lab.json("n1", &["network", "inspect", "web"]);
    assert_eq!(net["endpoints"].as_array().unwrap().len(), 2, "{net}");
}

/// docs: `docker run -p HOST:CONTAINER`: on a shoal network the port answers on every
/// address of the container's node, from outside and from the node itself.
#[test]
fn a_containers_published_port_answers_on_its_node() {
    if !need_docker("a_containers_published_port_answers_on_its_node") {
        return;
    }
    let lab = docker_lab(1, &[]);
    docker_ok(
        &lab,
        "n1",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "web",
        ],
    );
    in_shoal(&lab, "web");
    docker_ok(
        &lab,
        "n1",
        &[
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            "web",
            "-p",
            "8080:80",
            IMAGE,
            "sh",
            "-c",
            "trap exit TERM; echo hello > /index.html; httpd -f -p 80 -h / & wait",
        ],
    );
    for (ns, addr) in [
        (lab.host_ns("client"), "198.18.0.1:8080"),
        (lab.host_ns("n1"), "127.0.0.1:8080"),
        (lab.host_ns("n1"), "198.18.0.1:8080"),
    ] {
        wait_until(
            &format!("{addr} from {ns}"),
            Duration::from_secs(15),
            || match shoal_tests::net::http_get(&ns, addr.parse().unwrap()) {
                Some(b) if b.contains("hello") => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }
    docker_ok(&lab, "n1", &["rm", "-f", "srv"]);
    wait_until(
        "the port closed",
        Duration::from_secs(15),
        || match shoal_tests::net::http_get(
            &lab.host_ns("client"),
            "198.18.0.1:8080".parse().unwrap(),
        ) {
            None => Ok(()),
            Some(b) => Err(b),
        },
    );
}
