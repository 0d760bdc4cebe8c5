//! `wg show`, `wg show all` and `wg showconf` (wireguard-tools) read shoal's encrypted
//! data path through its read-only UAPI socket, as they read kernel WireGuard.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shoal_tests::{require_program, wait_until, Lab, Output};

use super::{encrypted_lab, public_key, reaches, WG_PORT};

fn wg(args: &[&str]) -> Output {
    shoal_tests::run(Command::new("wg").args(args))
}

fn socket(lab: &Lab, host: &str) -> String {
    format!("/var/run/wireguard/{}.sock", lab.wg_interface(host))
}

/// Sends `request` on `host`'s UAPI socket; returns the answer up to its blank line.
fn uapi(lab: &Lab, host: &str, request: &[u8]) -> String {
    let mut conn = UnixStream::connect(socket(lab, host)).expect("connect to the UAPI socket");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(request).unwrap();
    let mut answer = String::new();
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\n" {
            return answer;
        }
        answer.push_str(&line);
    }
}

/// `wg show IFACE`'s handshake ages in seconds, one per peer with a handshake.
fn handshake_ages(show: &str) -> Vec<u64> {
    show.lines()
        .filter_map(|l| l.trim().strip_prefix("latest handshake: "))
        .map(|age| {
            // "12 seconds ago", "1 minute, 3 seconds ago", "Now".
            let mut secs = 0;
            let words: Vec<&str> = age.split([' ', ',']).filter(|w| !w.is_empty()).collect();
            for pair in words.windows(2) {
                if let Ok(n) = pair[0].parse::<u64>() {
                    secs += n * match pair[1].trim_end_matches('s') {
                        "minute" => 60,
                        "hour" => 3600,
                        "day" => 86400,
                        _ => 1,
                    };
                }
            }
            secs
        })
        .collect()
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn wg_show_lists_every_other_node_with_a_recent_handshake() {
    require_program(
        "wg_show_lists_every_other_node_with_a_recent_handshake",
        "wg",
        "apt-get install wireguard-tools",
    );
    let (lab, sbs, ips) = encrypted_lab(3);
    for (i, sb) in sbs.iter().enumerate() {
        for ip in ips.iter().skip(i + 1) {
            reaches(sb, ip, Duration::from_secs(5));
        }
    }

    for host in ["n1", "n2", "n3"] {
        let iface = lab.wg_interface(host);
        let out = wg(&["show", &iface]);
        assert!(out.ok(), "wg show {iface}: {}{}", out.stderr, out.stdout);
        assert!(
            out.stdout.contains(&format!("interface: {iface}"))
                && out.stdout.contains(&format!("listening port: {WG_PORT}")),
            "{}",
            out.stdout
        );
        assert!(!out.stdout.contains("private key"), "{}", out.stdout);
        for other in ["n1", "n2", "n3"].into_iter().filter(|o| *o != host) {
            let key = public_key(&lab, other);
            assert!(
                out.stdout.contains(&format!("peer: {key}")),
                "{host} lists {other} ({key}):\n{}",
                out.stdout
            );
            assert!(out
                .stdout
                .contains(&format!("endpoint: {}:{WG_PORT}", lab.ip(other))));
        }
        let ages = handshake_ages(&out.stdout);
        assert_eq!(ages.len(), 2, "two handshakes on {host}:\n{}", out.stdout);
        assert!(ages.iter().all(|a| *a < 120), "recent handshakes: {ages:?}");
        assert!(out
            .stdout
            .contains("persistent keepalive: every 25 seconds"));
        assert!(out.stdout.contains("transfer: "), "{}", out.stdout);
    }

    let all = wg(&["show", "all"]);
    assert!(all.ok(), "wg show all: {}", all.stderr);
    for host in ["n1", "n2", "n3"] {
        assert!(all
            .stdout
            .contains(&format!("interface: {}", lab.wg_interface(host))));
    }

    let conf = wg(&["showconf", &lab.wg_interface("n1")]);
    assert!(conf.ok(), "wg showconf: {}", conf.stderr);
    assert!(
        conf.stdout.contains("[Interface]")
            && conf.stdout.contains(&format!("ListenPort = {WG_PORT}"))
            && conf.stdout.matches("[Peer]").count() == 2,
        "{}",
        conf.stdout
    );
    assert!(!conf.stdout.contains("PrivateKey"), "{}", conf.stdout);

    // Read-only: set=1 gets an errno, from wg and on the raw socket; junk and long lines
    // are refused, and the agent keeps answering.
    let set = wg(&["set", &lab.wg_interface("n1"), "listen-port", "1"]);
    assert!(!set.ok(), "wg set must fail: {}", set.stdout);
    assert!(
        set.stderr.contains("Operation not permitted"),
        "{}",
        set.stderr
    );
    assert_eq!(uapi(&lab, "n1", b"set=1\nlisten_port=1\n\n"), "errno=-1\n");
    assert_eq!(uapi(&lab, "n1", b"set=1\ncolour=blue\n\n"), "errno=-22\n");
    assert_eq!(uapi(&lab, "n1", b"hello\n"), "errno=-71\n");
    let long = format!("get=1{}\n", "x".repeat(5000));
    assert_eq!(uapi(&lab, "n1", long.as_bytes()), "errno=-22\n");
    let get = uapi(&lab, "n1", b"get=1\n\n");
    assert!(
        get.starts_with(&format!("listen_port={WG_PORT}\n")),
        "{get}"
    );
    assert!(
        get.ends_with("errno=0\n") && !get.contains("private_key"),
        "{get}"
    );

    // The agent removes its socket when it stops.
    let path = socket(&lab, "n3");
    assert!(Path::new(&path).exists());
    // SIGTERM drains first (at most --drain-timeout, 10 s, with no tasks here nearly
    // nothing), then the agent stops its duties.
    lab.kill("n3", "TERM");
    let stopped = std::time::Instant::now();
    wait_until("n3's UAPI socket to go", Duration::from_secs(15), || {
        if Path::new(&path).exists() {
            Err(format!("{path} is still there"))
        } else {
            Ok(())
        }
    });
    println!(
        "n3's UAPI socket went {:?} after SIGTERM",
        stopped.elapsed()
    );
}
