//! The web dashboard on a real 3-node lab: its JSON against the command line's, the page
//! in headless Chromium (every node, network and service named; a `service scale` shown
//! without a reload; the mesh matrix filled), a screenshot kept, and the token it needs
//! beyond loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_bench::browser::Browser;
use shoal_tests::{require_program, require_root, spawn_in, wait_until, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");
/// The dashboard's address on every lab host: beyond loopback, so it needs the token.
const PORT: u16 = 6790;

/// `GET path` from namespace `ns`: status code, headers and body.
fn get(ns: &str, addr: SocketAddr, path: &str, extra: &str) -> (u16, String, String) {
    let request = format!("GET {path} HTTP/1.0\r\nHost: dashboard\r\n{extra}\r\n");
    spawn_in(ns, move || {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).expect("read the response");
        let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
        let code = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status code");
        (code, head.to_string(), body.to_string())
    })
    .join()
    .expect("the request thread")
}

/// The dashboard's `path` as JSON, with the token.
fn api(lab: &Lab, token: &str, path: &str) -> Value {
    let addr = SocketAddr::new(lab.ip("n1").parse().unwrap(), PORT);
    let (code, _, body) = get(
        &lab.host_ns("n1"),
        addr,
        path,
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Waits until the dashboard's `path` equals `shoal ARGS --format json` on the same node.
fn same_as_cli(lab: &Lab, token: &str, path: &str, args: &[&str]) {
    wait_until(path, Duration::from_secs(15), || {
        let ours = api(lab, token, path);
        let cli = lab.json("n1", args);
        if ours == cli {
            Ok(())
        } else {
            Err(format!(
                "{path}:\n{ours}\n`shoal {}`:\n{cli}",
                args.join(" ")
            ))
        }
    });
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn the_dashboard_shows_the_cluster_live_and_needs_its_token_beyond_loopback() {
    require_root("the_dashboard_shows_the_cluster_live_and_needs_its_token_beyond_loopback");
    require_program("the dashboard test", "chromium", "apt-get install chromium");
    let lab = Lab::up_with(
        BIN,
        3,
        1,
        &[&format!("--agent-arg=--dashboard-addr=0.0.0.0:{PORT}")],
    );
    let token_file = format!("/var/lib/shoal/labs/{}/n1/dashboard.token", lab.name);
    let token = std::fs::read_to_string(&token_file)
        .unwrap_or_else(|e| panic!("{token_file}: {e}"))
        .trim()
        .to_string();
    lab.ok("n1", &["network", "create", "--attachable", "frontend"]);
    lab.create_service(
        &["--name", "web", "--network", "frontend", "--replicas", "2"],
        &[BIN, "tool", "http", "--port", "80"],
    );

    // Beyond loopback: nothing without the token, from another host or from its own.
    let n1 = SocketAddr::new(lab.ip("n1").parse().unwrap(), PORT);
    for path in ["/", "/api/nodes", "/api/events", "/app.js"] {
        let (code, head, _) = get(&lab.host_ns("client"), n1, path, "");
        assert_eq!(code, 401, "{path} without the token:\n{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{head}"
        );
    }
    let (code, _, _) = get(
        &lab.host_ns("client"),
        n1,
        "/api/nodes",
        "Authorization: Bearer 0000000000000000000000\r\n",
    );
    assert_eq!(code, 401, "a wrong token");
    let (code, head, _) = get(&lab.host_ns("client"), n1, &format!("/?token={token}"), "");
    assert_eq!(code, 200, "{head}");
    assert!(
        head.contains("HttpOnly; SameSite=Strict"),
        "the page keeps the token in a cookie: {head}"
    );

    // Every panel that mirrors a command answers what the command prints.
    same_as_cli(&lab, &token, "/api/nodes", &["node", "ls"]);
    same_as_cli(&lab, &token, "/api/networks", &["network", "ls"]);
    same_as_cli(&lab, &token, "/api/services", &["service", "ls"]);
    same_as_cli(&lab, &token, "/api/routes", &["route", "ls"]);
    let cluster = api(&lab, &token, "/api/cluster");
    assert_eq!(
        cluster["nodes"].as_array().map(Vec::len),
        Some(3),
        "{cluster}"
    );
    assert_eq!(cluster["leader"], "n1", "{cluster}");
    let overview = api(&lab, &token, "/api/overview");
    for panel in ["cluster", "networks", "services", "ingress", "mesh"] {
        assert!(overview.get(panel).is_some(), "{panel} in {overview}");
    }
    let text = get(
        &lab.host_ns("n1"),
        n1,
        "/status",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert!(
        text.2.contains("Nodes:            3 ready, 0 down"),
        "{}",
        text.2
    );

    // The page in Chromium, on n1, through the token link.
    let mut browser = Browser::start(&lab.host_ns("n1"));
    let opened = Instant::now();
    browser.navigate(&format!("http://127.0.0.1:{PORT}/?token={token}"));
    browser.wait_for(
        "the three nodes on the page",
        "document.querySelectorAll('[data-node]').length === 3",
        Duration::from_secs(15),
    );
    let first = opened.elapsed();
    for node in ["n1", "n2", "n3"] {
        assert_eq!(
            browser.eval(&format!(
                "document.querySelector('[data-node=\"{node}\"]').dataset.status"
            )),
            "ready"
        );
    }
    browser.wait_for(
        "the network and the service with both tasks running",
        "!!document.querySelector('[data-network=\"frontend\"]') && \
         document.querySelector('[data-service=\"web\"]')?.dataset.running === '2'",
        Duration::from_secs(30),
    );
    browser.wait_for(
        "the live stream connected",
        "document.getElementById('live').textContent === 'live'",
        Duration::from_secs(10),
    );
    // No reload from here on: a reload would lose this.
    browser.eval("window.shoalTestMarker = 42; true");
    lab.ok("n1", &["service", "scale", "web=3"]);
    let shown = browser.wait_for(
        "the new task count without a reload",
        "document.querySelector('[data-service=\"web\"]')?.dataset.desired === '3'",
        Duration::from_secs(10),
    );
    println!("first page with data {first:?}; scale shown {shown:?} after its commit");
    assert!(
        shown < Duration::from_secs(3),
        "a change reaches the page within seconds, not {shown:?}"
    );
    browser.wait_for(
        "the third task running",
        "document.querySelector('[data-service=\"web\"]')?.dataset.running === '3'",
        Duration::from_secs(30),
    );
    assert_eq!(
        browser.eval("window.shoalTestMarker"),
        42,
        "the page reloaded"
    );
    // Nodes measure their peers while a dashboard looks: the matrix fills in.
    browser.wait_for(
        "every pair of nodes reachable in the mesh matrix",
        "document.querySelectorAll('table.matrix td.ok').length === 6",
        Duration::from_secs(20),
    );
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
}
