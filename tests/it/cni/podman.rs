//! Real podman (Debian's 4.3, CNI backend) in the lab's hosts, on shoal networks
//! installed with `shoal cni install`: containers across hosts, names and aliases,
//! fixed addresses, shoal services and sandboxes, `podman rm`, published ports
//! through shoal and through the chained reference plugins.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use shoal_tests::{exec_in, ip_of, wait_until, Lab, Output, Sandbox};

use super::BIN;

/// The image every host imports.
const IMAGE: &str = "busybox:local";
/// A container command that ends at once on SIGTERM.
const SLEEP: &[&str] = &["sh", "-c", "trap exit TERM; sleep 3600 & wait"];

/// Panics unless this test can build labs (root) and run podman.
fn need_podman(test: &str) {
    shoal_tests::require_program(
        test,
        "podman",
        "apt-get install podman containernetworking-plugins busybox-static",
    );
}

/// `podman ARGS` on lab host `host`, with that host's own podman.
fn podman(lab: &Lab, host: &str, args: &[&str]) -> Output {
    let mut command = vec!["podman"];
    command.extend(args);
    lab.exec(host, &command)
}

fn podman_ok(lab: &Lab, host: &str, args: &[&str]) -> String {
    let out = podman(lab, host, args);
    assert!(
        out.ok(),
        "podman {} on {host}: {}{}",
        args.join(" "),
        out.stderr,
        out.stdout
    );
    out.stdout.trim().to_string()
}

/// A lab of `nodes` hosts with podman, the busybox image on each, and shoal network
/// `network` installed as a CNI network on each (`portmap`: port mappings go to the
/// chained reference plugin).
fn podman_lab(nodes: usize, networks: &[(&str, bool)]) -> Lab {
    let lab = Lab::up_with(BIN, nodes, 1, &["--podman"]);
    let rootfs = shoal_tests::busybox_rootfs(&lab.name);
    for (network, _) in networks {
        lab.ok("n1", &["network", "create", "--attachable", network]);
    }
    for host in lab.nodes() {
        let import = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "tar -C {} -c . | {BIN} lab exec --name {} {host} -- podman import - {IMAGE}",
                    rootfs.display(),
                    lab.name
                ),
            ])
            .output()
            .unwrap();
        assert!(
            import.status.success(),
            "podman import on {host}: {}",
            String::from_utf8_lossy(&import.stderr)
        );
        for (network, portmap) in networks {
            let mut install = vec!["shoal", "cni", "install", "--network", network];
            if *portmap {
                install.push("--portmap");
            }
            let out = lab.exec(&host, &install);
            assert!(out.ok(), "cni install on {host}: {}", out.stderr);
        }
    }
    let _ = std::fs::remove_dir_all(&rootfs);
    lab
}

fn run(lab: &Lab, host: &str, name: &str, network: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "--network", network];
    args.extend(extra);
    args.push(IMAGE);
    args.extend(SLEEP);
    podman_ok(lab, host, &args);
}

/// `name`'s address on its network and its namespace, as podman reports them.
fn container(lab: &Lab, host: &str, name: &str, network: &str) -> (Ipv4Addr, Sandbox) {
    let f = format!(
        "{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}} {{{{.NetworkSettings.SandboxKey}}}}"
    );
    let out = podman_ok(lab, host, &["inspect", "-f", &f, name]);
    let (ip, ns) = out.split_once(' ').expect("address and sandbox");
    (
        ip.parse().unwrap_or_else(|e| panic!("{ip:?}: {e}")),
        Sandbox { ns: ns.to_string() },
    )
}

/// Waits until `container` on `host` pings `target` (an address or a name).
fn pings(lab: &Lab, host: &str, container: &str, target: &str) {
    shoal_tests::container_pings(container, target, |command| {
        let mut args = vec!["exec", container];
        args.extend(command);
        podman(lab, host, &args)
    });
}

/// The endpoints of `network` whose address is `ip`.
fn endpoints_at(lab: &Lab, network: &str, ip: Ipv4Addr) -> usize {
    let info = lab.json("n1", &["network", "inspect", network]);
    info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| ip_of(e) == ip.to_string())
        .count()
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn podman_containers_on_a_shoal_network_across_hosts() {
    need_podman("podman_containers_on_a_shoal_network_across_hosts");
    let lab = podman_lab(2, &[("pnet", false)]);
    run(&lab, "n1", "web1", "pnet", &["--network-alias", "www"]);
    let fixed = {
        let info = lab.json("n1", &["network", "inspect", "pnet"]);
        let gateway: Ipv4Addr = info["gateway"].as_str().unwrap().parse().unwrap();
        Ipv4Addr::from(u32::from(gateway) + 100)
    };
    let fixed_text = fixed.to_string();
    run(
        &lab,
        "n2",
        "db1",
        "pnet",
        &["--ip", &fixed_text, "--mac-address", "02:00:00:aa:bb:cc"],
    );
    let (web_ip, web_ns) = container(&lab, "n1", "web1", "pnet");
    let (db_ip, db_ns) = container(&lab, "n2", "db1", "pnet");
    assert_eq!(db_ip, fixed, "--ip");
    let mac = podman_ok(
        &lab,
        "n2",
        &["exec", "db1", "cat", "/sys/class/net/eth0/address"],
    );
    assert_eq!(mac, "02:00:00:aa:bb:cc", "--mac-address");

    // Across hosts: by address, by name, by alias.
    pings(&lab, "n1", "web1", &db_ip.to_string());
    pings(&lab, "n1", "web1", "db1");
    pings(&lab, "n2", "db1", "www");
    pings(&lab, "n2", "db1", "web1");
    let resolv = podman_ok(&lab, "n1", &["exec", "web1", "cat", "/etc/resolv.conf"]);
    let gateway = lab.json("n1", &["network", "inspect", "pnet"])["gateway"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        resolv.contains(&format!("nameserver {gateway}")),
        "{resolv}"
    );

    // A checksummed transfer between the containers.
    let to = SocketAddr::from((db_ip, 7000));
    let sink = db_ns.sink(to);
    let sent = web_ns.send(to, 32 << 20, None).join().unwrap();
    let (bytes, received, peer) = sink.join().unwrap();
    assert_eq!((bytes, &received), (32 << 20, &sent));
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V4(web_ip),
        "the source address is kept"
    );

    // A shoal service's name resolves in the container.
    lab.create_service(
        &["--name", "api", "--network", "pnet", "--replicas", "1"],
        &[BIN, "tool", "http", "--port", "80"],
    );
    wait_until("api to resolve in web1", Duration::from_secs(20), || {
        let out = podman(&lab, "n1", &["exec", "web1", "nslookup", "api"]);
        if out.ok() && out.stdout.contains("Address") && out.stdout.matches("Address").count() >= 2
        {
            Ok(())
        } else {
            Err(out.stdout + &out.stderr)
        }
    });

    // A shoal sandbox on the same network and a podman container talk both ways.
    let sandbox = lab.sandbox("sb");
    let attached = lab.json(
        "n2",
        &["attach", "--network", "pnet", "--name", "sbx", &sandbox.ns],
    );
    let sandbox_ip = ip_of(&attached);
    pings(&lab, "n1", "web1", &sandbox_ip);
    pings(&lab, "n1", "web1", "sbx");
    assert!(
        sandbox.ping(&web_ip.to_string(), 56),
        "sandbox to container"
    );

    // podman rm -f frees the address: a new container gets it again.
    podman_ok(&lab, "n2", &["rm", "-f", "-t", "0", "db1"]);
    wait_until(
        "db1's endpoint to go",
        Duration::from_secs(10),
        || match endpoints_at(&lab, "pnet", fixed) {
            0 => Ok(()),
            n => Err(format!("{n} endpoints at {fixed}")),
        },
    );
    let gone = exec_in(&sandbox.ns, &["ping", "-c", "1", "-W", "1", &fixed_text]);
    assert!(!gone.ok(), "{fixed} still answers after podman rm");
    run(&lab, "n1", "db2", "pnet", &["--ip", &fixed_text]);
    pings(&lab, "n1", "db2", "www");
    assert_eq!(endpoints_at(&lab, "pnet", fixed), 1);
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn published_ports_reach_podman_containers_from_the_client_host() {
    need_podman("published_ports_reach_podman_containers_from_the_client_host");
    // `own`: shoal forwards the port; `chained`: the reference portmap plugin does.
    let lab = podman_lab(1, &[("own", false), ("chained", true)]);
    let serve = |name: &str, network: &str, port: &str| {
        let mapping = format!("{port}:8080");
        podman_ok(
            &lab,
            "n1",
            &[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                network,
                "-p",
                &mapping,
                IMAGE,
                "httpd",
                "-f",
                "-p",
                "8080",
                "-h",
                "/",
            ],
        );
    };
    serve("own1", "own", "18080");
    serve("chained1", "chained", "18081");

    // The chain of Debian's reference plugins after shoal: portmap, firewall, tuning,
    // bandwidth, in a conflist written by hand next to shoal's.
    let conf_dir = format!("/run/shoal/labs/{}/n1-cni", lab.name);
    let socket = lab.socket("n1");
    lab.ok("n1", &["network", "create", "--attachable", "full"]);
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "full",
        "plugins": [
            {"type": "shoal", "socket": socket,
             "capabilities": {"ips": true, "mac": true, "aliases": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall"},
            {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.rp_filter": "0"}},
            {"type": "bandwidth", "ingressRate": 100_000_000, "ingressBurst": 1_000_000,
             "egressRate": 100_000_000, "egressBurst": 1_000_000}
        ]
    });
    std::fs::write(format!("{conf_dir}/full.conflist"), conflist.to_string()).unwrap();
    serve("full1", "full", "18082");
    let rp = podman_ok(
        &lab,
        "n1",
        &[
            "exec",
            "full1",
            "cat",
            "/proc/sys/net/ipv4/conf/eth0/rp_filter",
        ],
    );
    assert_eq!(rp, "0", "tuning's sysctl");

    let client = lab.host_ns("client");
    let node = lab.ip("n1");
    for port in ["18080", "18081", "18082"] {
        wait_until(
            &format!("{node}:{port} to serve from the container"),
            Duration::from_secs(10),
            || {
                let request = format!(
                    "printf 'GET /bin/hostname HTTP/1.0\\r\\n\\r\\n' | busybox nc {node} {port}"
                );
                let out = exec_in(&client, &["busybox", "sh", "-c", &request]);
                if out.stdout.starts_with("HTTP/1.") && out.stdout.contains("200") {
                    Ok(())
                } else {
                    Err(out.stdout + &out.stderr)
                }
            },
        );
    }
    // Removing the containers removes their ports and attachments.
    for name in ["own1", "chained1", "full1"] {
        podman_ok(&lab, "n1", &["rm", "-f", "-t", "0", name]);
    }
    for network in ["own", "chained", "full"] {
        let info = lab.json("n1", &["network", "inspect", network]);
        assert!(
            info["endpoints"].as_array().unwrap().is_empty(),
            "{network}: {info}"
        );
    }
    let out = exec_in(
        &client,
        &[
            "busybox",
            "sh",
            "-c",
            &format!("busybox nc -w 1 {node} 18080 </dev/null"),
        ],
    );
    assert!(!out.ok(), "18080 still answers after podman rm");
}
