//! Swarm parity on real labs: what a Docker Swarm user expects in the first hour, one
//! test per behaviour, each citing the Docker page or moby code it follows.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use shoal_tests::net::{fake_upstream, http_get, resolve, udp_exchange, DnsAnswer};
use shoal_tests::{exec_in, ip_of, privileged, wait_until, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");
/// DNS query types.
const A: u16 = 1;
const PTR: u16 = 12;

fn at(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

fn create(lab: &Lab, args: &[&str], command: &[&str]) {
    let mut full = vec!["service", "create"];
    full.extend(args);
    full.push("--");
    full.extend(command);
    lab.ok("n1", &full);
}

fn tasks(lab: &Lab, service: &str) -> Vec<Value> {
    lab.json("n1", &["service", "ps", service])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn in_state<'a>(tasks: &'a [Value], state: &str) -> Vec<&'a Value> {
    tasks.iter().filter(|t| t["state"] == state).collect()
}

/// Waits until `service` has `running` running tasks; returns its tasks.
fn wait_running(lab: &Lab, service: &str, running: usize) -> Vec<Value> {
    wait_until(
        &format!("{running} running {service} tasks"),
        Duration::from_secs(30),
        || {
            let t = tasks(lab, service);
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
fn a_published_port_answers_on_the_node_itself_on_every_address() {
    if !privileged("a_published_port_answers_on_the_node_itself_on_every_address") {
        return;
    }
    let lab = Lab::up(BIN, 2, 1);
    lab.ok("n1", &["network", "create", "apps"]);
    create(
        &lab,
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
    create(
        &lab,
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
    create(
        &lab,
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

/// moby daemon/libnetwork/resolver.go (forwardExtDNS: no host-side forwarding without
/// external access) and docs network/drivers/overlay.md `--internal`: a sandbox whose
/// networks are all internal gets SERVFAIL for names the resolver does not own, and
/// the upstream never sees the query; names on the network still resolve.
#[test]
fn an_internal_network_resolver_forwards_nothing_upstream() {
    if !privileged("an_internal_network_resolver_forwards_nothing_upstream") {
        return;
    }
    let lab = Lab::up_with(BIN, 1, 1, &["--dns-upstream", "198.18.0.250:53"]);
    fake_upstream(
        &lab.host_ns("client"),
        at("198.18.0.250", 53),
        "example.test",
        Ipv4Addr::new(192, 0, 2, 7),
    );
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--internal",
            "--attachable",
            "--subnet",
            "10.60.0.0/24",
            "vault",
        ],
    );
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.61.0.0/24",
            "open",
        ],
    );
    let inside = lab.sandbox("inside");
    let outside = lab.sandbox("outside");
    lab.ok(
        "n1",
        &[
            "attach",
            "--network",
            "vault",
            "--name",
            "inside",
            &inside.ns,
        ],
    );
    lab.ok(
        "n1",
        &[
            "attach",
            "--network",
            "open",
            "--name",
            "outside",
            &outside.ns,
        ],
    );
    let vault_dns: Ipv4Addr = "10.60.0.1".parse().unwrap();
    let open_dns: Ipv4Addr = "10.61.0.1".parse().unwrap();
    let own = ask(&inside.ns, vault_dns, "inside", A);
    assert_eq!(
        own.a,
        [Ipv4Addr::new(10, 60, 0, 2)],
        "its own names resolve"
    );
    let leaked = ask(&inside.ns, vault_dns, "example.test", A);
    assert_eq!(
        leaked.rcode, 2,
        "SERVFAIL, not the upstream's answer: {leaked:?}"
    );
    assert!(leaked.a.is_empty());
    let fine = ask(&outside.ns, open_dns, "example.test", A);
    assert_eq!(
        fine.a,
        [Ipv4Addr::new(192, 0, 2, 7)],
        "other networks still forward"
    );
}

/// docs: network/drivers/overlay.md and engine/swarm/networking.md (`<name>.<network>`
/// names), moby resolver.go handlePTRQuery (`<container>.<network>.`; a swarm task is
/// `<service>.<slot>.<task ID>`; VIPs have none), and shoal's 5 s TTL (README).
#[test]
fn names_resolve_qualified_by_network_and_addresses_have_ptr_records() {
    if !privileged("names_resolve_qualified_by_network_and_addresses_have_ptr_records") {
        return;
    }
    let lab = Lab::up_with(BIN, 2, 1, &["--dns-upstream", "198.18.0.250:53"]);
    fake_upstream(
        &lab.host_ns("client"),
        at("198.18.0.250", 53),
        "example.test",
        Ipv4Addr::new(192, 0, 2, 7),
    );
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.62.0.0/24",
            "front",
        ],
    );
    create(
        &lab,
        &[
            "--name",
            "api",
            "--network",
            "name=front,alias=backend",
            "--replicas",
            "2",
        ],
        &http_tool(),
    );
    let sb = lab.sandbox("sb");
    let probe_ip: Ipv4Addr = ip_of(&lab.json(
        "n1",
        &[
            "attach",
            "--network",
            "front",
            "--name",
            "probe",
            "--alias",
            "prober",
            &sb.ns,
        ],
    ))
    .parse()
    .unwrap();
    let ts = wait_running(&lab, "api", 2);
    let dns: Ipv4Addr = "10.62.0.1".parse().unwrap();
    let vip: Ipv4Addr = lab.json("n1", &["service", "inspect", "api"])["vips"]["front"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut task_ips: Vec<Ipv4Addr> = ts
        .iter()
        .map(|t| t["addresses"]["front"].as_str().unwrap().parse().unwrap())
        .collect();
    task_ips.sort();
    for (name, want) in [
        ("api.front", vec![vip]),
        ("backend.front", vec![vip]),
        ("tasks.api.front", task_ips.clone()),
        ("tasks.backend", task_ips.clone()),
        ("probe.front", vec![probe_ip]),
        ("prober.front", vec![probe_ip]),
    ] {
        let got = ask(&sb.ns, dns, name, A);
        assert_eq!(got.a, want, "{name}: {got:?}");
        assert!(
            got.ttls.iter().all(|t| *t == 5),
            "{name}: short TTL: {got:?}"
        );
    }
    let probe = ask(&sb.ns, dns, &reverse(probe_ip), PTR);
    assert_eq!(probe.ptr, ["probe.front."]);
    for t in &ts {
        let ip: Ipv4Addr = t["addresses"]["front"].as_str().unwrap().parse().unwrap();
        let name = t["name"].as_str().unwrap();
        let id = t["id"].as_str().unwrap();
        let got = ask(&sb.ns, dns, &reverse(ip), PTR);
        assert_eq!(got.ptr.len(), 1, "{got:?}");
        assert!(
            got.ptr[0].starts_with(&format!("{name}.{id}")) && got.ptr[0].ends_with(".front."),
            "the task's PTR is <service>.<slot>.<task ID>.<network>.: {got:?}"
        );
        // And that name resolves forwards to the task.
        let fwd = ask(&sb.ns, dns, got.ptr[0].trim_end_matches('.'), A);
        assert_eq!(fwd.a, [ip]);
    }
    let vip_ptr = ask(&sb.ns, dns, &reverse(vip), PTR);
    assert!(
        vip_ptr.ptr.is_empty() && vip_ptr.rcode == 3,
        "a VIP has no PTR of ours; the upstream says NXDOMAIN: {vip_ptr:?}"
    );
}

/// swarmkit manager/scheduler/filter.go (HostPortFilter, MaxReplicasFilter) and docs
/// engine/swarm/services.md ("--replicas-max-per-node"; host mode "only one task per
/// node"): what cannot be placed stays pending with Swarm's reason.
#[test]
fn host_mode_ports_and_replicas_max_per_node_leave_the_rest_pending() {
    if !privileged("host_mode_ports_and_replicas_max_per_node_leave_the_rest_pending") {
        return;
    }
    let lab = Lab::up(BIN, 2, 1);
    lab.ok("n1", &["network", "create", "apps"]);
    create(
        &lab,
        &[
            "--name",
            "edge",
            "--network",
            "apps",
            "--replicas",
            "3",
            "--publish",
            "mode=host,8090:80",
        ],
        &http_tool(),
    );
    let ts = wait_running(&lab, "edge", 2);
    let mut nodes: Vec<&str> = in_state(&ts, "running")
        .iter()
        .map(|t| t["node"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2"], "one task per node for the host port");
    let pending = in_state(&ts, "pending");
    assert_eq!(pending.len(), 1, "{ts:?}");
    assert_eq!(
        pending[0]["message"],
        "no suitable node (host-mode port already in use on 2 nodes)"
    );
    let table = lab.ok("n1", &["service", "ps", "edge"]);
    assert!(
        table.contains("pending") && table.contains("host-mode port already in use"),
        "{table}"
    );
    create(
        &lab,
        &[
            "--name",
            "capped",
            "--network",
            "apps",
            "--replicas",
            "3",
            "--replicas-max-per-node",
            "1",
        ],
        &http_tool(),
    );
    let ts = wait_running(&lab, "capped", 2);
    let pending = in_state(&ts, "pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0]["message"],
        "no suitable node (max replicas per node limit exceed)"
    );
    let ls = lab.ok("n1", &["service", "ls"]);
    assert!(ls.contains("2/3 (max 1 per node)"), "{ls}");
    // Lifting the cap places the third task.
    lab.ok(
        "n1",
        &[
            "service",
            "update",
            "--replicas-max-per-node",
            "0",
            "capped",
        ],
    );
    wait_running(&lab, "capped", 3);
}

/// docs: engine/swarm/services.md ("Placement constraints", "Placement preferences")
/// and swarmkit manager/constraint/constraint.go.
#[test]
fn constraints_and_spread_preferences_place_tasks_like_swarm() {
    if !privileged("constraints_and_spread_preferences_place_tasks_like_swarm") {
        return;
    }
    let lab = Lab::up(BIN, 3, 1);
    lab.ok("n1", &["network", "create", "apps"]);
    create(
        &lab,
        &[
            "--name",
            "db",
            "--network",
            "apps",
            "--replicas",
            "2",
            "--constraint",
            "node.role==manager",
        ],
        &http_tool(),
    );
    let ts = wait_running(&lab, "db", 2);
    assert!(ts.iter().all(|t| t["node"] == "n1"), "{ts:?}");
    create(
        &lab,
        &[
            "--name",
            "gpu",
            "--network",
            "apps",
            "--constraint",
            "node.labels.gpu==yes",
        ],
        &http_tool(),
    );
    let ts = wait_until("gpu to be pending", Duration::from_secs(15), || {
        let t = tasks(&lab, "gpu");
        if in_state(&t, "pending").len() == 1 {
            Ok(t)
        } else {
            Err(format!("{t:?}"))
        }
    });
    assert_eq!(
        ts[0]["message"],
        "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    );
    lab.ok("n1", &["node", "update", "--label-add", "gpu=yes", "n3"]);
    let ts = wait_running(&lab, "gpu", 1);
    assert_eq!(ts[0]["node"], "n3");
    for (node, zone) in [("n1", "a"), ("n2", "a"), ("n3", "b")] {
        lab.ok(
            "n1",
            &[
                "node",
                "update",
                "--label-add",
                &format!("zone={zone}"),
                node,
            ],
        );
    }
    create(
        &lab,
        &[
            "--name",
            "spread",
            "--network",
            "apps",
            "--replicas",
            "4",
            "--placement-pref",
            "spread=node.labels.zone",
        ],
        &http_tool(),
    );
    let ts = wait_running(&lab, "spread", 4);
    let in_b = ts.iter().filter(|t| t["node"] == "n3").count();
    assert_eq!(in_b, 2, "zone b holds half the tasks: {ts:?}");
    let e = lab.fails(
        "n1",
        &[
            "service",
            "create",
            "--name",
            "bad",
            "--constraint",
            "node.role=manager",
            "--",
            BIN,
        ],
    );
    assert!(
        e.contains("constraint expected one operator from ==, !="),
        "{e}"
    );
}

/// docker/cli opts/swarmopts/port.go and cli/command/service/update.go (updatePorts),
/// swarmkit portallocator.go (30000-32767): `--publish TARGET`, the long form,
/// `--publish-add` of a published port, `--publish-rm` by target port.
#[test]
fn ports_publish_as_the_docker_cli_does() {
    if !privileged("ports_publish_as_the_docker_cli_does") {
        return;
    }
    let lab = Lab::up(BIN, 1, 1);
    lab.ok("n1", &["network", "create", "apps"]);
    create(
        &lab,
        &[
            "--name",
            "web",
            "--network",
            "apps",
            "--publish",
            "80",
            "--publish",
            "published=8088,target=80,protocol=tcp,mode=ingress",
        ],
        &http_tool(),
    );
    let ports = |lab: &Lab| -> Vec<String> {
        lab.json("n1", &["service", "inspect", "web"])["spec"]["publish"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{}:{}", p["published"], p["target"]))
            .collect()
    };
    assert_eq!(ports(&lab), ["30000:80", "8088:80"]);
    wait_running(&lab, "web", 1);
    let client = lab.host_ns("client");
    serves(
        &client,
        at(&lab.ip("n1"), 30000),
        "service=web",
        "the dynamic port to answer",
        Duration::from_secs(15),
    );
    lab.ok(
        "n1",
        &["service", "update", "--publish-add", "8088:80", "web"],
    );
    assert_eq!(
        ports(&lab),
        ["30000:80", "8088:80"],
        "publishing again is a no-op"
    );
    let e = lab.fails("n1", &["service", "update", "--publish-rm", "81", "web"]);
    assert!(
        e.contains("publishes no such port") && e.contains("8088:80/tcp"),
        "{e}"
    );
    lab.ok(
        "n1",
        &["service", "update", "--publish-rm", "8088:80", "web"],
    );
    assert_eq!(ports(&lab), ["30000:80"]);
    lab.ok("n1", &["service", "update", "--publish-rm", "80", "web"]);
    assert!(ports(&lab).is_empty());
}

/// docs: reference/commandline/service_create.md (`--network name=…,alias=…`,
/// `--dns`, `--dns-search`, `--dns-option`, `--hostname` templates) and
/// service_update.md (`--network-add/-rm`, `--endpoint-mode`).
#[test]
fn service_networks_aliases_endpoint_mode_and_dns_settings_like_docker() {
    if !privileged("service_networks_aliases_endpoint_mode_and_dns_settings_like_docker") {
        return;
    }
    let lab = Lab::up_with(BIN, 1, 1, &["--dns-upstream", "198.18.0.250:53"]);
    let client = lab.host_ns("client");
    let added = exec_in(
        &client,
        &["ip", "addr", "add", "198.18.0.251/15", "dev", "eth0"],
    );
    assert!(added.ok(), "{}", added.stderr);
    fake_upstream(
        &client,
        at("198.18.0.250", 53),
        "example.test",
        Ipv4Addr::new(192, 0, 2, 7),
    );
    fake_upstream(
        &client,
        at("198.18.0.251", 53),
        "example.test",
        Ipv4Addr::new(192, 0, 2, 99),
    );
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.63.0.0/24",
            "apps",
        ],
    );
    lab.ok(
        "n1",
        &["network", "create", "--subnet", "10.64.0.0/24", "back"],
    );
    create(
        &lab,
        &[
            "--name",
            "web",
            "--network",
            "name=apps,alias=site",
            "--dns",
            "198.18.0.251",
            "--dns-search",
            "example.test",
            "--dns-option",
            "timeout:1",
            "--hostname",
            "{{.Service.Name}}-{{.Task.Slot}}",
        ],
        &http_tool(),
    );
    let ts = wait_running(&lab, "web", 1);
    let task_id = ts[0]["id"].as_str().unwrap().to_string();
    let task_ip: Ipv4Addr = ts[0]["addresses"]["apps"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let sb = lab.sandbox("sb");
    lab.ok("n1", &["attach", "--network", "apps", &sb.ns]);
    let dns: Ipv4Addr = "10.63.0.1".parse().unwrap();
    let vip: Ipv4Addr = lab.json("n1", &["service", "inspect", "web"])["vips"]["apps"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ask(&sb.ns, dns, "site", A).a, [vip], "the alias is the VIP");
    assert_eq!(ask(&sb.ns, dns, "tasks.site", A).a, [task_ip]);
    assert_eq!(
        ask(&sb.ns, dns, "web-1", A).a,
        [task_ip],
        "the host name resolves"
    );
    let body = http_get(&sb.ns, SocketAddr::new(vip.into(), 80)).expect("the VIP answers");
    assert!(
        body.contains("hostname=web-1") && body.contains("slot=1"),
        "{body}"
    );
    // The task's own resolver settings and upstream.
    let task_ns = format!("shl-{}-n1-t{}", lab.name, &task_id[..12]);
    let conf = std::fs::read_to_string(format!("/etc/netns/{task_ns}/resolv.conf")).unwrap();
    assert!(conf.contains("nameserver 10.63.0.1"), "{conf}");
    assert!(conf.contains("search example.test"), "{conf}");
    assert!(conf.contains("options ndots:0 timeout:1"), "{conf}");
    assert_eq!(
        ask(&task_ns, dns, "example.test", A).a,
        [Ipv4Addr::new(192, 0, 2, 99)],
        "--dns is the task's upstream"
    );
    assert_eq!(
        ask(&sb.ns, dns, "example.test", A).a,
        [Ipv4Addr::new(192, 0, 2, 7)],
        "others keep the node's"
    );
    // Networks follow the service while its task runs.
    lab.ok(
        "n1",
        &[
            "service",
            "update",
            "--network-add",
            "name=back,alias=api",
            "web",
        ],
    );
    wait_until("the task on back", Duration::from_secs(15), || {
        let t = tasks(&lab, "web");
        match t[0]["addresses"]["back"].as_str() {
            Some(ip) => Ok(ip.to_string()),
            None => Err(format!("{t:?}")),
        }
    });
    let e = lab.fails("n1", &["service", "update", "--network-add", "back", "web"]);
    assert!(e.contains("already attached to network back"), "{e}");
    lab.ok("n1", &["service", "update", "--network-rm", "back", "web"]);
    wait_until("the task off back", Duration::from_secs(15), || {
        let t = tasks(&lab, "web");
        if t[0]["addresses"].get("back").is_none() {
            Ok(())
        } else {
            Err(format!("{t:?}"))
        }
    });
    // dnsrr: the name gives the tasks, not a VIP.
    lab.ok(
        "n1",
        &["service", "update", "--endpoint-mode", "dnsrr", "web"],
    );
    wait_until(
        "web to resolve to its task",
        Duration::from_secs(10),
        || {
            let a = resolve(&sb.ns, dns, "web", A).ok_or("no answer")?;
            if a.a == [task_ip] {
                Ok(())
            } else {
                Err(format!("{a:?}"))
            }
        },
    );
}

/// docs: network/drivers/overlay.md (`--opt encrypted`,
/// `com.docker.network.driver.mtu`, `com.docker.network.driver.overlay.vxlanid_list`)
/// and moby libnetwork drivers/overlay ov_network.go: Docker's option names work,
/// unknown ones are refused.
#[test]
fn dockers_network_option_spellings_are_accepted_and_unknown_ones_refused() {
    if !privileged("dockers_network_option_spellings_are_accepted_and_unknown_ones_refused") {
        return;
    }
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
fn the_cli_ends_quietly_on_a_closed_pipe_and_says_what_works() {
    if !privileged("the_cli_ends_quietly_on_a_closed_pipe_and_says_what_works") {
        return;
    }
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
        create(
            &lab,
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
