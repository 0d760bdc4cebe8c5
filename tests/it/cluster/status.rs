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
    // Lines as they come; a block ends with an empty line.
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = watch.0.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Everything printed so far, once it contains `want` (None after `within`).
    let mut out = String::new();
    let mut until_shown = |want: &str, within: Duration| -> Option<String> {
        let until = std::time::Instant::now() + within;
        while !out.contains(want) {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let line = lines.recv_timeout(left).ok()?;
            out.push_str(&line);
            out.push('\n');
        }
        Some(out.clone())
    };
    let first = until_shown("\n  n1 ", Duration::from_secs(10)).expect("a first block within 10 s");
    assert!(!first.contains("watched"), "{first}");
    lab.ok("n1", &["network", "create", "--attachable", "watched"]);
    let shown = until_shown("\n  watched ", Duration::from_secs(10));
    let _ = watch.0.kill();
    assert!(
        shown.is_some(),
        "a block with the new network within 10 s; got:\n{out}"
    );
}
