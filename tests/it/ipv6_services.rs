//! Services on dual-stack networks on real labs: an IPv6 VIP beside the IPv4 one,
//! named by AAAA and load-balanced in the client's sandbox, the task seeing the
//! client's own IPv6 address; and the L7 proxy over IPv6: listening on `:PORT` (IPv6
//! and IPv4), reaching an IPv6 backend, `ClientIP` and `ipAllowList` with IPv6 and
//! IPv4-mapped ranges, `X-Forwarded-For` with IPv6 clients.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;
use shoal_tests::net::{
    dns_query, http_request, parse_answer, peer_ip, resolve, task_of, tcp_read, udp_exchange,
};
use shoal_tests::{exec_in, ip_of, spawn_in, wait_until, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

/// The `ip6.arpa` name of `ip`.
fn reverse6(ip: Ipv6Addr) -> String {
    let hex: String = ip.octets().iter().map(|b| format!("{b:02x}")).collect();
    let nibbles: Vec<String> = hex.chars().rev().map(String::from).collect();
    format!("{}.ip6.arpa", nibbles.join("."))
}

/// The IPv6 address of an endpoint as `attach --format json` prints it.
fn ip6_of(endpoint: &Value) -> Ipv6Addr {
    endpoint["address6"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address6 in {endpoint}"))
}

/// Creates service `name` on `network` with `replicas` tasks running `shoal tool
/// peer` on `port`, with `extra` options.
fn peer_service(lab: &Lab, name: &str, network: &str, replicas: u32, port: u16, extra: &[&str]) {
    let replicas = replicas.to_string();
    let port = port.to_string();
    let mut args = vec![
        "--name",
        name,
        "--network",
        network,
        "--replicas",
        &replicas,
    ];
    args.extend(extra);
    lab.create_service(&args, &[BIN, "tool", "peer", "--port", &port]);
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn an_ipv6_vip_is_named_by_aaaa_and_spreads_connections_keeping_the_clients_address() {
    shoal_tests::require_root(
        "an_ipv6_vip_is_named_by_aaaa_and_spreads_connections_keeping_the_clients_address",
    );
    let lab = Lab::up(BIN, 3, 1);
    lab.ok(
        "n1",
        &["network", "create", "--attachable", "--ipv6", "web6"],
    );
    peer_service(&lab, "echo", "web6", 3, 7000, &[]);
    lab.wait_running("echo", 3);
    let svc = lab.json("n1", &["service", "inspect", "echo"]);
    let vip6: Ipv6Addr = svc["vips6"]["web6"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no IPv6 VIP: {svc}"));
    assert!(svc["vips"]["web6"].is_string(), "the IPv4 VIP stays: {svc}");
    let ls = lab.ok("n1", &["service", "ls"]);
    assert!(ls.contains(&format!("web6={vip6}")), "{ls}");

    let client = lab.sandbox("cli");
    let ep = lab.json(
        "n3",
        &["attach", "--network", "web6", "--name", "cli", &client.ns],
    );
    let me6 = ip6_of(&ep);
    let gateway: Ipv4Addr = ep["gateway"].as_str().unwrap().parse().unwrap();
    let aaaa = wait_until("AAAA echo", Duration::from_secs(10), || {
        resolve(&client.ns, gateway, "echo", 28).ok_or_else(|| "no answer".to_string())
    });
    assert_eq!(aaaa.aaaa, vec![vip6], "the service's name is its IPv6 VIP");
    let tasks6 = resolve(&client.ns, gateway, "tasks.echo", 28).expect("AAAA tasks.echo");
    assert_eq!(
        tasks6.aaaa.len(),
        3,
        "every task's IPv6 address: {tasks6:?}"
    );
    assert!(!tasks6.aaaa.contains(&vip6));
    // The resolver answers on the IPv6 gateway too, PTR for IPv6 addresses included.
    let gateway6: Ipv6Addr = ep["gateway6"].as_str().unwrap().parse().unwrap();
    let over6 = |name: &str, qtype: u16| {
        udp_exchange(
            &client.ns,
            SocketAddr::new(gateway6.into(), 53),
            dns_query(0x6666, name, qtype),
        )
        .and_then(|r| parse_answer(&r))
    };
    let aaaa6 = wait_until(
        "AAAA echo on the IPv6 gateway",
        Duration::from_secs(10),
        || over6("echo", 28).ok_or_else(|| "no answer".to_string()),
    );
    assert_eq!(aaaa6.aaaa, vec![vip6]);
    let ptr = over6(&reverse6(me6), 12).expect("PTR over IPv6");
    assert_eq!(ptr.ptr, vec!["cli.web6.".to_string()], "{ptr:?}");

    // Connections to [VIP]:7000 reach the tasks, which see the client's IPv6 address;
    // the draw spreads them.
    let to = SocketAddr::new(vip6.into(), 7000);
    let mut seen = BTreeSet::new();
    wait_until(
        "connections through the IPv6 VIP to reach two tasks",
        Duration::from_secs(30),
        || {
            let answer = tcp_read(&client.ns, to).ok_or("no answer")?;
            let peer = peer_ip(&answer).ok_or(format!("no peer in {answer:?}"))?;
            if peer != me6.to_string() {
                return Err(format!("the task saw {peer}, not {me6}"));
            }
            seen.extend(task_of(&answer));
            if seen.len() >= 2 {
                Ok(())
            } else {
                Err(format!("only {seen:?} so far"))
            }
        },
    );
    // The IPv4 VIP works as before beside it.
    let vip4: Ipv4Addr = svc["vips"]["web6"].as_str().unwrap().parse().unwrap();
    let answer = tcp_read(&client.ns, SocketAddr::new(vip4.into(), 7000)).expect("IPv4 VIP");
    assert_eq!(peer_ip(&answer), Some(ip_of(&ep)));

    // 20 MB through the IPv6 VIP of a service whose task is a sandbox on n1 arrive
    // intact, from the client's own IPv6 address.
    lab.ok(
        "n1",
        &["service", "create", "--name", "sink", "--network", "web6"],
    );
    let task = lab.sandbox("sk");
    lab.ok(
        "n1",
        &["attach", "--network", "web6", "--service", "sink", &task.ns],
    );
    let sink6: Ipv6Addr = lab.json("n1", &["service", "inspect", "sink"])["vips6"]["web6"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("the sink's IPv6 VIP");
    let probe = task.sink("[::]:9001".parse().unwrap());
    wait_until(
        "the sink's IPv6 VIP to lead to it",
        Duration::from_secs(20),
        || {
            if client.can_connect(SocketAddr::new(sink6.into(), 9001), Duration::from_secs(1)) {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    );
    probe.join().expect("the probe");
    let sink = task.sink("[::]:9000".parse().unwrap());
    let sent = client
        .send(SocketAddr::new(sink6.into(), 9000), 20 << 20, None)
        .join()
        .expect("sent");
    let (bytes, got, peer) = sink.join().expect("received");
    assert_eq!(
        (bytes, got),
        (20 << 20, sent),
        "intact through the IPv6 VIP"
    );
    assert_eq!(peer.ip(), std::net::IpAddr::V6(me6));

    // Scaled to zero, the IPv6 VIP refuses at once rather than hanging.
    lab.ok("n1", &["service", "scale", "echo=0"]);
    wait_until(
        "the VIP to refuse",
        Duration::from_secs(20),
        || match tcp_read(&client.ns, to) {
            None => Ok(()),
            Some(a) => Err(format!("still answered: {a}")),
        },
    );
    // Removing the service gives its IPv6 VIP back and takes its name away.
    lab.ok("n1", &["service", "rm", "echo"]);
    wait_until(
        "AAAA echo to go",
        Duration::from_secs(10),
        || match resolve(&client.ns, gateway, "echo", 28) {
            Some(a) if !a.aaaa.is_empty() => Err(format!("still {:?}", a.aaaa)),
            _ => Ok(()),
        },
    );
}

/// An HTTP server in namespace `ns` on `at` answering every request with the peer it
/// saw and the request's `X-Forwarded-For`; it runs until the test process ends.
fn header_echo(ns: &str, at: SocketAddr) {
    let (ready, listening) = std::sync::mpsc::channel();
    spawn_in(ns, move || {
        let listener = TcpListener::bind(at).unwrap_or_else(|e| panic!("bind {at}: {e}"));
        ready.send(()).ok();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let peer = conn
                .peer_addr()
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_lowercase();
            let xff = head
                .lines()
                .find_map(|l| l.strip_prefix("x-forwarded-for:"))
                .map(str::trim)
                .unwrap_or("-")
                .to_string();
            let body = format!("peer={peer} xff={xff}\n");
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(answer.as_bytes()).ok();
        }
    });
    listening
        .recv_timeout(Duration::from_secs(5))
        .expect("the backend listening");
}

/// Kills a process when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn the_l7_proxy_listens_dual_stack_reaches_ipv6_backends_and_matches_ipv6_clients() {
    shoal_tests::require_root(
        "the_l7_proxy_listens_dual_stack_reaches_ipv6_backends_and_matches_ipv6_clients",
    );
    let lab = Lab::up(BIN, 1, 1);
    // The lab's underlay is IPv4: n1 and the client get an IPv6 address on it here.
    let (node6, client6) = ("fd00:5a::1", "fd00:5a::fa");
    for (host, ip) in [("n1", node6), ("client", client6)] {
        let out = exec_in(
            &lab.host_ns(host),
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{ip}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        );
        assert!(out.ok(), "{host}: {}", out.stderr);
    }
    let client = lab.host_ns("client");
    let backend = SocketAddr::new(client6.parse().unwrap(), 9000);
    header_echo(&client, backend);
    let dir = std::env::temp_dir().join(format!("shoal-v6-l7-{}", lab.name));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("routes.toml");
    std::fs::write(
        &config,
        format!(
            r#"[entrypoints.web]
address = ":8088"

[routers.any]
rule = "Host(`any.test`)"
service = "back"

[routers.only6]
rule = "Host(`only6.test`) && ClientIP(`fd00:5a::/64`)"
service = "back"

[routers.mapped]
rule = "Host(`mapped.test`) && ClientIP(`::ffff:198.18.0.0/111`)"
service = "back"

[routers.allow]
rule = "Host(`allow.test`)"
service = "back"
middlewares = ["client6"]

[middlewares.client6.ipAllowList]
sourceRange = ["{client6}/128"]

[services.back]
servers = [{{ url = "http://[{client6}]:9000" }}]
"#
        ),
    )
    .unwrap();
    let proxy = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.host_ns("n1")))
        .arg(BIN)
        .arg("proxy")
        .arg("--config")
        .arg(&config)
        .spawn()
        .expect("start shoal proxy");
    let _stop = KillOnDrop(proxy);
    let over6 = SocketAddr::new(node6.parse().unwrap(), 8088);
    let over4 = SocketAddr::new(lab.ip("n1").parse().unwrap(), 8088);
    let answer = wait_until(
        "the proxy over IPv6",
        Duration::from_secs(20),
        || match http_request(&client, over6, "any.test", "/") {
            Some((200, body)) => Ok(body),
            other => Err(format!("{other:?}")),
        },
    );
    // The IPv6 backend sees the proxy's IPv6 address, and the client's in the header.
    assert_eq!(answer.trim(), format!("peer={node6} xff={client6}"));
    // IPv4 clients on the same [::] socket are IPv4, never ::ffff:a.b.c.d.
    let client4 = lab.ip("client");
    assert_eq!(
        http_request(&client, over4, "any.test", "/"),
        Some((200, format!("peer={node6} xff={client4}\n")))
    );
    assert_eq!(
        http_request(&client, over6, "only6.test", "/").map(|r| r.0),
        Some(200)
    );
    assert_eq!(
        http_request(&client, over4, "only6.test", "/").map(|r| r.0),
        Some(404),
        "an IPv4 client is in no IPv6 range"
    );
    assert_eq!(
        http_request(&client, over4, "mapped.test", "/").map(|r| r.0),
        Some(200),
        "an IPv4-mapped range holds IPv4 clients"
    );
    assert_eq!(
        http_request(&client, over6, "mapped.test", "/").map(|r| r.0),
        Some(404)
    );
    assert_eq!(
        http_request(&client, over6, "allow.test", "/").map(|r| r.0),
        Some(200)
    );
    assert_eq!(
        http_request(&client, over4, "allow.test", "/").map(|r| r.0),
        Some(403)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
