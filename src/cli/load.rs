//! `shoal tool load`: a closed-loop load of idempotent HTTP GETs that reports every
//! failed request with its time.
//!
//! ```text
//!  worker × concurrency: connect ─▶ GET (Connection: close) ─▶ status 2xx? ─▶ again
//!                        (timeout, refused, reset or another status: a failure, timed)
//! ```
//! One connection per request, as a client behind no pool would: a request goes where
//! the balancers send new connections at that moment. The summary is one JSON object,
//! with `answered_by` (the first body line of each 2xx answer → count: the echo tasks
//! name themselves there, so tests see which tasks answered).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Where a GET goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address connected to.
    pub addr: SocketAddr,
    /// The Host header.
    pub host: String,
    /// The path (with the query).
    pub path: String,
    /// The local address connections come from (default: the kernel's choice).
    pub source: Option<std::net::IpAddr>,
}

/// Reads `http://IP:PORT/PATH` (the port defaults to 80, the path to /); `host`
/// overrides the Host header.
pub fn parse_target(url: &str, host: Option<&str>) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http://IP[:PORT]/PATH URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = match authority.parse() {
        Ok(a) => a,
        Err(_) => format!("{authority}:80")
            .parse()
            .map_err(|_| format!("{url:?}: the host must be an IP address (and port)"))?,
    };
    Ok(Target {
        addr,
        host: host.unwrap_or(authority).to_string(),
        path: path.to_string(),
        source: None,
    })
}

/// The status code of an HTTP/1 response, if `head` starts like one.
pub fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/1."))?;
    words.next()?.parse().ok()
}

/// One failed request: when it started (unix ms) and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// When the request started (unix ms).
    pub at_ms: u64,
    /// What went wrong.
    pub error: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// When the run started (unix ms).
    pub started_ms: u64,
    /// When it ended (unix ms).
    pub ended_ms: u64,
    /// Requests sent.
    pub requests: u64,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Every failed request, in order.
    pub failures: Vec<Failure>,
    /// The first body line of each 2xx answer → how many.
    pub answered_by: BTreeMap<String, u64>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The first line of the body of an HTTP/1 answer (empty if none).
pub fn first_body_line(answer: &[u8]) -> String {
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| &answer[i + 4..])
        .unwrap_or_default();
    let line = body.split(|b| *b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line).trim_end().to_string()
}

/// One GET: the first body line of its 2xx answer, or what failed.
async fn get(target: &Target, timeout: Duration) -> Result<String, String> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: shoal-load\r\n\r\n",
        target.path, target.host
    );
    let work = async {
        let socket = match target.addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .map_err(|e| format!("socket: {e}"))?;
        if let Some(ip) = target.source {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("bind {ip}: {e}"))?;
        }
        let mut conn = socket
            .connect(target.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        conn.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        match status_of(&answer) {
            Some(s) if (200..300).contains(&s) => Ok(first_body_line(&answer)),
            Some(s) => Err(format!("status {s}")),
            None if answer.is_empty() => Err("closed without an answer".into()),
            None => Err("not an HTTP answer".into()),
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// How a run goes.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// How long it runs.
    pub duration: Duration,
    /// A request without its whole answer after this long fails.
    pub timeout: Duration,
    /// Loops running at once.
    pub concurrency: u16,
    /// Stop after this many requests (0: no limit).
    pub requests: u64,
}

/// Runs `pace.concurrency` closed loops of GETs to `target` for `pace.duration` or
/// `pace.requests` requests, whichever ends first.
pub async fn run(target: Target, pace: Pace) -> Summary {
    let summary = Arc::new(Mutex::new(Summary {
        started_ms: now_ms(),
        ..Default::default()
    }));
    let until = Instant::now() + pace.duration;
    let sent = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..pace.concurrency.max(1))
        .map(|_| {
            let target = target.clone();
            let summary = summary.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    if pace.requests > 0 && sent.fetch_add(1, Ordering::SeqCst) >= pace.requests {
                        break;
                    }
                    let at_ms = now_ms();
                    let result = get(&target, pace.timeout).await;
                    let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
                    s.requests += 1;
                    match result {
                        Ok(who) => {
                            s.ok += 1;
                            *s.answered_by.entry(who).or_default() += 1;
                        }
                        Err(error) => {
                            eprintln!("{at_ms} failed: {error}");
                            s.failures.push(Failure { at_ms, error });
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let mut s = summary.lock().unwrap_or_else(|e| e.into_inner()).clone();
    s.failures.sort_by_key(|f| f.at_ms);
    s.ended_ms = now_ms();
    s
}

/// `shoal tool load`: runs and prints the summary as JSON; with `check`, fails if any
/// request did.
pub async fn main(
    url: &str,
    host: Option<&str>,
    source: Option<std::net::IpAddr>,
    pace: Pace,
    check: bool,
) -> anyhow::Result<()> {
    let target = Target {
        source,
        ..parse_target(url, host).map_err(anyhow::Error::msg)?
    };
    let summary = run(target, pace).await;
    println!(
        "{}",
        serde_json::to_string(&summary).context("cannot print the summary")?
    );
    if check && (!summary.failures.is_empty() || summary.ok == 0) {
        anyhow::bail!(
            "{} of {} requests failed",
            summary.failures.len(),
            summary.requests
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_ip_port_path_and_host() {
        let t = parse_target("http://198.18.0.1:8080/a?b=1", None).unwrap();
        assert_eq!(t.addr, "198.18.0.1:8080".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("198.18.0.1:8080", "/a?b=1")
        );
        let t = parse_target("http://198.18.0.1", Some("shop.example.com")).unwrap();
        assert_eq!(t.addr, "198.18.0.1:80".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("shop.example.com", "/")
        );
        assert!(parse_target("https://198.18.0.1/", None)
            .unwrap_err()
            .contains("only http://"));
        assert!(parse_target("http://example.com/", None)
            .unwrap_err()
            .contains("IP address"));
    }

    #[test]
    fn statuses_are_read_from_the_status_line_only() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n\r\nhi"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 503 Busy\r\n"), Some(503));
        assert_eq!(status_of(b"SSH-2.0 200\r\n"), None);
        assert_eq!(status_of(b""), None);
    }

    #[tokio::test]
    async fn a_run_counts_answers_and_times_failures() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let (mut c, _) = listener.accept().await.unwrap();
                n += 1;
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf).await;
                let answer: &[u8] = if n % 2 == 0 {
                    b"HTTP/1.1 500 No\r\nContent-Length: 0\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                };
                let _ = c.write_all(answer).await;
            }
        });
        let target = parse_target(&format!("http://{addr}/"), None).unwrap();
        let pace = Pace {
            duration: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
            concurrency: 1,
            requests: 0,
        };
        let s = run(target.clone(), pace).await;
        assert!(s.requests >= 2, "{s:?}");
        assert_eq!(s.ok + s.failures.len() as u64, s.requests);
        assert!(s.failures.iter().all(|f| f.error == "status 500"), "{s:?}");
        assert!(s
            .failures
            .iter()
            .all(|f| f.at_ms >= s.started_ms && f.at_ms <= s.ended_ms));
        assert_eq!(s.answered_by.get("ok"), Some(&s.ok), "{s:?}");
        let pace = Pace {
            duration: Duration::from_secs(5),
            requests: 3,
            ..pace
        };
        assert_eq!(run(target, pace).await.requests, 3);
    }

    #[test]
    fn the_first_body_line_names_who_answered() {
        assert_eq!(
            first_body_line(b"HTTP/1.1 200 OK\r\n\r\ntask-1\nmore"),
            "task-1"
        );
        assert_eq!(first_body_line(b"HTTP/1.1 200 OK\r\n\r\n"), "");
        assert_eq!(first_body_line(b"HTTP/1.1 200 OK\r\n"), "");
    }
}
