//! The CNI spec's behaviour through the plugin binary: VERSION, ADD → CHECK → DEL,
//! DEL twice and without ADD, CHECK after a hand-made change, bad configs, STATUS,
//! GC, portMappings through shoal, and a vanished namespace.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};
use shoal_tests::{exec_in, spawn_in, wait_until, Lab};

use super::{answer, cni, config, require_root, BIN};

/// The CNI_* variables of an attachment of container `id` in namespace `ns`.
fn vars<'a>(id: &'a str, ns: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", ns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ]
}

fn with_prev(mut config: Value, prev: &Value) -> Value {
    config["prevResult"] = prev.clone();
    config
}

/// The endpoints of `network` whose owner is CNI container `id`.
fn owned_by(lab: &Lab, network: &str, id: &str) -> Vec<Value> {
    let info = lab.json("n1", &["network", "inspect", network]);
    info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["owner"] == format!("cni:{id}/eth0"))
        .cloned()
        .collect()
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn the_plugin_follows_the_spec() {
    require_root("the_plugin_follows_the_spec");
    let lab = Lab::up(BIN, 1, 1);
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.77.0.0/24",
            "cnet",
        ],
    );
    let sandbox = lab.sandbox("c1");
    let ns = format!("/run/netns/{}", sandbox.ns);
    let conf = config(&lab, "n1", "cnet", "1.0.0");

    // VERSION echoes the config's version and lists every supported one.
    let version = answer(&cni(
        &lab,
        "n1",
        "VERSION",
        &[],
        &json!({"cniVersion": "0.4.0"}),
    ));
    assert_eq!(version["cniVersion"], "0.4.0");
    let supported = version["supportedVersions"].as_array().unwrap();
    for v in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(supported.contains(&json!(v)), "{version}");
    }

    // ADD: the interface, its address in the subnet, the gateway route, shoal's DNS.
    let add = cni(&lab, "n1", "ADD", &vars("c1", &ns), &conf);
    assert!(add.ok(), "ADD: {} {}", add.stdout, add.stderr);
    let result = answer(&add);
    assert_eq!(result["cniVersion"], "1.0.0");
    let sandbox_if = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .position(|i| i["sandbox"] == ns.as_str())
        .expect("the container's interface in the result");
    assert_eq!(result["interfaces"][sandbox_if]["name"], "eth0");
    let address = result["ips"][0]["address"].as_str().unwrap();
    assert!(address.starts_with("10.77.0."), "{result}");
    assert_eq!(result["ips"][0]["interface"], sandbox_if);
    assert_eq!(result["ips"][0]["gateway"], "10.77.0.1");
    assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
    assert_eq!(result["dns"]["nameservers"][0], "10.77.0.1");
    let shown = exec_in(
        &sandbox.ns,
        &["ip", "-o", "-4", "addr", "show", "dev", "eth0"],
    );
    assert!(shown.stdout.contains(address), "{}", shown.stdout);
    let mac = result["interfaces"][sandbox_if]["mac"].as_str().unwrap();
    let link = exec_in(&sandbox.ns, &["ip", "-o", "link", "show", "dev", "eth0"]);
    assert!(link.stdout.contains(mac), "{}", link.stdout);
    assert_eq!(owned_by(&lab, "cnet", "c1").len(), 1);
    // The container reaches the gateway through the overlay.
    assert!(sandbox.ping("10.77.0.1", 56), "ping the gateway");

    // ADD again with the interface there: code 100, nothing changed.
    let again = answer(&cni(&lab, "n1", "ADD", &vars("c1", &ns), &conf));
    assert_eq!(again["code"], 100, "{again}");
    assert_eq!(owned_by(&lab, "cnet", "c1").len(), 1);

    // CHECK with the ADD's result passes.
    let checked = with_prev(conf.clone(), &result);
    let check = cni(&lab, "n1", "CHECK", &vars("c1", &ns), &checked);
    assert!(check.ok(), "CHECK: {}", check.stdout);
    assert!(
        check.stdout.trim().is_empty(),
        "CHECK prints nothing: {}",
        check.stdout
    );

    // An address removed by hand: CHECK fails, naming it.
    exec_in(&sandbox.ns, &["ip", "addr", "del", address, "dev", "eth0"]);
    let broken = answer(&cni(&lab, "n1", "CHECK", &vars("c1", &ns), &checked));
    assert_eq!(broken["code"], 101, "{broken}");
    assert!(
        broken["details"].as_str().unwrap().contains(address),
        "{broken}"
    );

    // DEL releases everything; DEL twice and DEL of what was never added succeed.
    for id in ["c1", "c1", "never-added"] {
        let del = cni(
            &lab,
            "n1",
            "DEL",
            &vars(id, &ns),
            &with_prev(conf.clone(), &result),
        );
        assert!(del.ok(), "DEL {id}: {} {}", del.stdout, del.stderr);
    }
    let del_no_netns = cni(
        &lab,
        "n1",
        "DEL",
        &[
            ("CNI_CONTAINERID", "gone"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ],
        &conf,
    );
    assert!(
        del_no_netns.ok(),
        "DEL without CNI_NETNS: {}",
        del_no_netns.stdout
    );
    assert!(owned_by(&lab, "cnet", "c1").is_empty());
    let gone = exec_in(&sandbox.ns, &["ip", "link", "show", "dev", "eth0"]);
    assert!(!gone.ok(), "eth0 is still there after DEL");

    // CHECK after DEL: the interface is missing.
    let after = answer(&cni(&lab, "n1", "CHECK", &vars("c1", &ns), &checked));
    assert_eq!(after["code"], 101, "{after}");

    // The address is free again: ADD with CNI_ARGS IP gets exactly it.
    let ip = address.split('/').next().unwrap();
    let args = format!("IgnoreUnknown=1;K8S_POD_NAME=web1;IP={ip}");
    let mut with_args = vars("c2", &ns);
    with_args.push(("CNI_ARGS", &args));
    let readd = answer(&cni(&lab, "n1", "ADD", &with_args, &conf));
    assert_eq!(readd["ips"][0]["address"], address, "{readd}");
    let named = owned_by(&lab, "cnet", "c2");
    assert_eq!(named[0]["name"], "web1");
    let del = cni(&lab, "n1", "DEL", &vars("c2", &ns), &conf);
    assert!(del.ok(), "{}", del.stdout);
}

/// The bridge plugin's dual-stack results (one `ips` entry per family, a default
/// route of each): shoal's ADD on a dual-stack network reports the IPv6 address and
/// route it configures, CHECK sees them, an IPv6 address asked for is given, and an
/// IPv6-only network works through CNI too.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn dual_stack_and_ipv6_only_networks_through_the_plugin() {
    require_root("dual_stack_and_ipv6_only_networks_through_the_plugin");
    let lab = Lab::up(BIN, 1, 1);
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--ipv6",
            "--subnet",
            "10.78.0.0/24",
            "--subnet",
            "fd00:78::/64",
            "dual",
        ],
    );
    let sandbox = lab.sandbox("c6");
    let ns = format!("/run/netns/{}", sandbox.ns);
    let conf = config(&lab, "n1", "dual", "1.0.0");
    let asked = json!({"ips": ["fd00:78::66/64"]});
    let mut with_ip = conf.clone();
    with_ip["runtimeConfig"] = asked;
    with_ip["capabilities"] = json!({"ips": true});
    let add = cni(&lab, "n1", "ADD", &vars("c6", &ns), &with_ip);
    assert!(add.ok(), "ADD: {} {}", add.stdout, add.stderr);
    let result = answer(&add);
    assert!(
        result["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.78.0."),
        "{result}"
    );
    assert_eq!(result["ips"][1]["address"], "fd00:78::66/64", "{result}");
    assert_eq!(result["ips"][1]["gateway"], "fd00:78::1", "{result}");
    let routes: Vec<&str> = result["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["dst"].as_str())
        .collect();
    assert!(
        routes.contains(&"0.0.0.0/0") && routes.contains(&"::/0"),
        "{result}"
    );
    let shown = exec_in(
        &sandbox.ns,
        &["ip", "-o", "-6", "addr", "show", "dev", "eth0"],
    );
    assert!(shown.stdout.contains("fd00:78::66/64"), "{}", shown.stdout);
    assert!(sandbox.ping("fd00:78::1", 56), "ping the IPv6 gateway");
    // CHECK sees the IPv6 address; without it, CHECK names it.
    let checked = with_prev(conf.clone(), &result);
    let check = cni(&lab, "n1", "CHECK", &vars("c6", &ns), &checked);
    assert!(check.ok(), "CHECK: {}", check.stdout);
    exec_in(
        &sandbox.ns,
        &["ip", "addr", "del", "fd00:78::66/64", "dev", "eth0"],
    );
    let broken = answer(&cni(&lab, "n1", "CHECK", &vars("c6", &ns), &checked));
    assert_eq!(broken["code"], 101, "{broken}");
    assert!(
        broken["details"].as_str().unwrap().contains("fd00:78::66"),
        "{broken}"
    );
    let del = cni(&lab, "n1", "DEL", &vars("c6", &ns), &checked);
    assert!(del.ok(), "DEL: {}", del.stdout);
    assert!(owned_by(&lab, "dual", "c6").is_empty());

    // An IPv6-only network: the IPv6 address alone, and shoal's resolver on IPv6.
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--ipv6",
            "--ipv4=false",
            "--subnet",
            "fd00:79::/64",
            "only6",
        ],
    );
    let only = answer(&cni(
        &lab,
        "n1",
        "ADD",
        &vars("c7", &ns),
        &config(&lab, "n1", "only6", "1.0.0"),
    ));
    let ips = only["ips"].as_array().expect("ips");
    assert_eq!(ips.len(), 1, "{only}");
    assert!(
        ips[0]["address"].as_str().unwrap().starts_with("fd00:79::"),
        "{only}"
    );
    assert_eq!(only["dns"]["nameservers"][0], "fd00:79::1", "{only}");
    assert!(sandbox.ping("fd00:79::1", 56), "ping the IPv6-only gateway");
    let del = cni(
        &lab,
        "n1",
        "DEL",
        &vars("c7", &ns),
        &config(&lab, "n1", "only6", "1.0.0"),
    );
    assert!(del.ok(), "DEL: {}", del.stdout);
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn bad_input_gets_the_specs_codes() {
    require_root("bad_input_gets_the_specs_codes");
    let lab = Lab::up(BIN, 1, 1);
    lab.ok("n1", &["network", "create", "--attachable", "cnet"]);
    let sandbox = lab.sandbox("c1");
    let ns = format!("/run/netns/{}", sandbox.ns);
    let good = config(&lab, "n1", "cnet", "1.0.0");
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let cases: Vec<(&str, Value, u64)> = vec![
        ("no cniVersion", json!({"name": "cnet", "type": "shoal"}), 1),
        ("an unknown version", with("cniVersion", json!("9.9.9")), 1),
        (
            "ipam, which shoal does itself",
            with("ipam", json!({"type": "host-local"})),
            2,
        ),
        ("not JSON", json!("{\"cniVersion\": "), 6),
        ("a bad network name", with("name", json!("-bad")), 7),
        ("a relative socket", with("socket", json!("shoal.sock")), 7),
        (
            "two addresses",
            with("runtimeConfig", json!({"ips": ["10.0.0.5", "10.0.0.6"]})),
            2,
        ),
        (
            "a network the agent does not know",
            with("name", json!("nonet")),
            7,
        ),
    ];
    for (what, conf, code) in cases {
        let out = cni(&lab, "n1", "ADD", &vars("c1", &ns), &conf);
        assert!(!out.ok(), "{what}: ADD succeeded");
        let error = answer(&out);
        assert_eq!(error["code"], code, "{what}: {error}");
        assert!(
            !error["msg"].as_str().unwrap_or_default().is_empty(),
            "{what}: {error}"
        );
        assert!(error["details"].is_string(), "{what}: {error}");
    }
    // Missing CNI_* variables: code 4, each named.
    let out = answer(&cni(&lab, "n1", "ADD", &[("CNI_CONTAINERID", "c1")], &good));
    assert_eq!(out["code"], 4, "{out}");
    let msg = out["msg"].as_str().unwrap();
    assert!(
        msg.contains("CNI_NETNS") && msg.contains("CNI_IFNAME"),
        "{out}"
    );
    // A namespace that does not exist.
    let out = answer(&cni(
        &lab,
        "n1",
        "ADD",
        &vars("c1", "/run/netns/nope"),
        &good,
    ));
    assert_eq!(out["code"], 4, "{out}");
    // Nothing of it left a record.
    let info = lab.json("n1", &["network", "inspect", "cnet"]);
    assert!(info["endpoints"].as_array().unwrap().is_empty(), "{info}");

    // STATUS (1.1.0): ready; an unknown network or a dead agent is code 50.
    let status = cni(
        &lab,
        "n1",
        "STATUS",
        &[],
        &config(&lab, "n1", "cnet", "1.1.0"),
    );
    assert!(status.ok(), "STATUS: {}", status.stdout);
    let unknown = answer(&cni(
        &lab,
        "n1",
        "STATUS",
        &[],
        &config(&lab, "n1", "nonet", "1.1.0"),
    ));
    assert_eq!(unknown["code"], 50, "{unknown}");
    let hint = unknown["details"].as_str().unwrap();
    assert!(hint.contains("shoal network create"), "{unknown}");
    let mut dead = config(&lab, "n1", "cnet", "1.1.0");
    dead["socket"] = json!("/run/shoal/no-such-agent.sock");
    let dead = answer(&cni(&lab, "n1", "STATUS", &[], &dead));
    assert_eq!(dead["code"], 50, "{dead}");
    // STATUS needs 1.1.0.
    let old = answer(&cni(&lab, "n1", "STATUS", &[], &good));
    assert_eq!(old["code"], 1, "{old}");
    // An ADD while the agent is down: try again later.
    let mut down = good.clone();
    down["socket"] = json!("/run/shoal/no-such-agent.sock");
    let later = answer(&cni(&lab, "n1", "ADD", &vars("c1", &ns), &down));
    assert_eq!(later["code"], 11, "{later}");
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn gc_ports_and_vanished_namespaces_leave_nothing() {
    require_root("gc_ports_and_vanished_namespaces_leave_nothing");
    let lab = Lab::up(BIN, 1, 1);
    lab.ok("n1", &["network", "create", "--attachable", "cnet"]);
    let sandboxes: Vec<_> = ["a", "b", "c"].iter().map(|n| lab.sandbox(n)).collect();
    let conf = config(&lab, "n1", "cnet", "1.1.0");
    for (id, s) in ["a", "b", "c"].iter().zip(&sandboxes) {
        let ns = format!("/run/netns/{}", s.ns);
        let add = cni(&lab, "n1", "ADD", &vars(id, &ns), &conf);
        assert!(add.ok(), "ADD {id}: {}", add.stdout);
    }
    // GC keeps what the runtime lists, releases the rest.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "a", "ifname": "eth0"}]);
    let out = cni(&lab, "n1", "GC", &[("CNI_PATH", "/usr/lib/cni")], &gc);
    assert!(out.ok(), "GC: {} {}", out.stdout, out.stderr);
    assert_eq!(owned_by(&lab, "cnet", "a").len(), 1);
    assert!(owned_by(&lab, "cnet", "b").is_empty());
    assert!(owned_by(&lab, "cnet", "c").is_empty());
    // GC without the list is refused rather than taken as "nothing is valid".
    let refused = answer(&cni(
        &lab,
        "n1",
        "GC",
        &[("CNI_PATH", "/usr/lib/cni")],
        &conf,
    ));
    assert_eq!(refused["code"], 7, "{refused}");
    assert_eq!(owned_by(&lab, "cnet", "a").len(), 1);

    // portMappings through shoal: the node's port reaches the container, from the
    // client host.
    let d = lab.sandbox("d");
    let ns = format!("/run/netns/{}", d.ns);
    let mut ports = conf.clone();
    ports["runtimeConfig"] =
        json!({"portMappings": [{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}]});
    let add = answer(&cni(&lab, "n1", "ADD", &vars("d", &ns), &ports));
    let ip: std::net::Ipv4Addr = add["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let server = spawn_in(&d.ns, move || {
        let listener = TcpListener::bind(SocketAddr::from((ip, 8080))).unwrap();
        let (conn, _) = listener.accept().unwrap();
        drop(conn);
    });
    let node: SocketAddr = format!("{}:18080", lab.ip("n1")).parse().unwrap();
    wait_until(
        "the forwarded port to answer",
        Duration::from_secs(10),
        || {
            spawn_in(&lab.host_ns("client"), move || {
                TcpStream::connect_timeout(&node, Duration::from_secs(1))
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .join()
            .unwrap()
        },
    );
    server.join().unwrap();
    // A port taken by another attachment fails the ADD and leaves nothing behind.
    let e = lab.sandbox("e");
    let ns_e = format!("/run/netns/{}", e.ns);
    let clash = answer(&cni(&lab, "n1", "ADD", &vars("e", &ns_e), &ports));
    assert_eq!(clash["code"], 7, "{clash}");
    assert!(
        owned_by(&lab, "cnet", "e").is_empty(),
        "the failed ADD was not rolled back"
    );
    let link = exec_in(&e.ns, &["ip", "link", "show", "dev", "eth0"]);
    assert!(!link.ok(), "the failed ADD left eth0 behind");

    // A runtime that died without DEL: its namespace goes, the agent detaches.
    let out = std::process::Command::new("ip")
        .args(["netns", "del", &sandboxes[0].ns])
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_until(
        "the agent to detach a, whose namespace is gone",
        Duration::from_secs(20),
        || {
            if owned_by(&lab, "cnet", "a").is_empty() {
                Ok(())
            } else {
                Err("still attached".to_string())
            }
        },
    );
}
