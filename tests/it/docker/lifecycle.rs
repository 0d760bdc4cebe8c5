//! Swarm services, bad input, restarts and published ports.

use super::*;

/// docs: Weave's Swarm workflow (`docker network create -d <plugin> --attachable`,
/// `docker service create --network`): a 3-replica service spread over the Swarm's
/// nodes, reached by its name from a container on another node; scaling down frees
/// the addresses in shoal.
/// What an agent logs once its first reconciliation after a start is done.
const IN_STEP: &str = "the data path is in step with the cluster state";

#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn a_swarm_service_on_a_shoal_network_spreads_and_scaling_down_frees_addresses() {
    need_docker("a_swarm_service_on_a_shoal_network_spreads_and_scaling_down_frees_addresses");
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
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn bad_docker_input_comes_back_as_shoals_message() {
    need_docker("bad_docker_input_comes_back_as_shoals_message");
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
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn agent_and_dockerd_restarts_lose_no_endpoint_and_no_traffic() {
    need_docker("agent_and_dockerd_restarts_lose_no_endpoint_and_no_traffic");
    let lab = docker_lab(2, &["--docker-arg=--live-restore"]);
    shoal_network(&lab, "web", &[], &["n2"]);
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
    sink.wait_for_more(8 << 20, Duration::from_secs(10));
    let reconciled = |log: &str| log.matches(IN_STEP).count();
    let rounds = reconciled(&lab.log("n1"));
    lab.kill("n1", "KILL");
    lab.start("n1");
    assert_eq!(
        sent.join().unwrap(),
        sink.join().unwrap().1,
        "the transfer completed intact"
    );
    wait_until(
        "the restarted agent to reconcile",
        Duration::from_secs(20),
        || match reconciled(&lab.log("n1")) {
            n if n > rounds => Ok(()),
            n => Err(format!("{n} reconciliations in its log")),
        },
    );
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
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn a_containers_published_port_answers_on_its_node() {
    need_docker("a_containers_published_port_answers_on_its_node");
    let lab = docker_lab(1, &[]);
    shoal_network(&lab, "web", &[], &[]);
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
