//! The plain-text `GET /status` on the agent's API socket, and `shoal status --watch`
//! printing a new block when the cluster changes.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shoal_tests::{require_root, Lab};

use super::{leader, BIN};

/// `GET path` over HTTP/1.1 on a unix socket: the whole response, head and body.
fn http_get(socket: &str, path: &str) -> String {
    let mut conn = UnixStream::connect(socket).expect("connect to the agent socket");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .expect("read the response");
    response
}

/// A child process killed when dropped, also when the test panics.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn plain_text_status_names_every_node_and_watch_prints_changes() {
    require_root("plain_text_status_names_every_node_and_watch_prints_changes");
    let lab = Lab::up(BIN, 3, 1);
    let leader = leader(&lab, "n1");

    let response = http_get(&lab.socket("n3"), "/status");
    let (head, text) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; charset=utf-8"),
        "{head}"
    );
    assert!(
        text.contains(&format!("{:<18}{leader}\n", "Leader:")),
        "{text}"
    );
    assert!(text.contains(&format!("{:<18}n3 (", "Node:")), "{text}");
    assert!(text.contains("Nodes:            3 ready, 0 down"), "{text}");
    for node in ["n1", "n2", "n3"] {
        assert!(text.contains(&format!("\n  {node} ")), "{node} in\n{text}");
    }
    assert!(text.contains("Ingress:\n  routers"), "{text}");
    assert!(text.contains(", leader, "), "{text}");

    // --watch with a pipe for stdout: a block now, another once a network appears.
    let child = Command::new(BIN)
        .args([
            "--host",
            &format!("unix://{}", lab.socket("n2")),
            "status",
            "--watch",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shoal status --watch");
    let mut watch = Killed(child);
    std::thread::sleep(Duration::from_millis(1200));
    lab.ok("n1", &["network", "create", "--attachable", "watched"]);
    std::thread::sleep(Duration::from_millis(2000));
    let _ = watch.0.kill();
    let mut out = String::new();
    if let Some(mut stdout) = watch.0.stdout.take() {
        stdout.read_to_string(&mut out).unwrap();
    }
    let blocks: Vec<&str> = out.split("\n\n").filter(|b| !b.trim().is_empty()).collect();
    assert!(blocks.len() >= 2, "two blocks or more:\n{out}");
    assert!(!blocks[0].contains("watched"), "{out}");
    assert!(blocks[0].contains("\n  n1 "), "{out}");
    let last = blocks.last().copied().unwrap_or_default();
    assert!(last.contains("\n  watched "), "the new network in\n{out}");
}
