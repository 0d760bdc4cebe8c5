//! `shoal tool load`: a closed-loop HTTP load for tests of drains and rolling updates.
//! Each worker sends one GET per connection (`Connection: close`), waits for the whole
//! answer, and sends the next; an answer that is not a 200, a connection error or a
//! timeout is a failure, reported with the time it happened.
//!
//! Output, one JSON object when the duration is over:
//! `{"requests":N,"ok":N,"failures":[{"at_ms":T,"error":"..."}],"answered_by":{...}}`
//! (`answered_by`: first line of the body → count, so tests see which tasks answered).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// One failed request.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Since the load began (ms).
    pub at_ms: u64,
    /// What went wrong.
    pub error: String,
}

/// What a load run saw.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Requests sent.
    pub requests: u64,
    /// Answered 200.
    pub ok: u64,
    /// The others.
    pub failures: Vec<Failure>,
    /// First body line → answers.
    pub answered_by: BTreeMap<String, u64>,
}

/// The status and first body line of a raw HTTP/1.1 answer.
pub fn parse_answer(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                text.chars().take(40).collect::<String>()
            )
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.lines().next().unwrap_or("").to_string())
        .unwrap_or_default();
    Ok((status, body))
}

async fn one(addr: SocketAddr, request: &[u8], timeout: Duration) -> Result<(u16, String), String> {
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        conn.write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        parse_answer(&raw)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// Runs `workers` closed loops of GET `path` (with `Host: host`) to `addr` for
/// `duration`, or until `max` requests were sent (0: no limit).
pub async fn run(
    addr: SocketAddr,
    host: &str,
    path: &str,
    workers: usize,
    duration: Duration,
    timeout: Duration,
    max: u64,
) -> Report {
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let request: Arc<[u8]> = request.into_bytes().into();
    let report = Arc::new(Mutex::new(Report::default()));
    let start = Instant::now();
    let until = start + duration;
    let mut handles = Vec::new();
    for _ in 0..workers.max(1) {
        let request = request.clone();
        let report = report.clone();
        let sent = sent.clone();
        handles.push(tokio::spawn(async move {
            while Instant::now() < until {
                if max > 0 && sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= max {
                    break;
                }
                let result = one(addr, &request, timeout).await;
                let at_ms = start.elapsed().as_millis() as u64;
                let failed = {
                    let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                    r.requests += 1;
                    match result {
                        Ok((200, who)) => {
                            r.ok += 1;
                            *r.answered_by.entry(who).or_default() += 1;
                            false
                        }
                        Ok((status, _)) => {
                            r.failures.push(Failure {
                                at_ms,
                                error: format!("status {status}"),
                            });
                            true
                        }
                        Err(error) => {
                            r.failures.push(Failure { at_ms, error });
                            true
                        }
                    }
                };
                if failed {
                    // A refused connection fails at once; do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_their_status_and_first_body_line() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nservice=a\nmore";
        assert_eq!(parse_answer(raw).unwrap(), (200, "service=a".into()));
        assert_eq!(
            parse_answer(b"HTTP/1.0 502 Bad Gateway\r\n\r\n").unwrap().0,
            502
        );
        assert!(parse_answer(b"").is_err());
        assert!(parse_answer(b"garbage").is_err());
    }

    #[tokio::test]
    async fn a_closed_port_is_counted_as_failures_with_their_times() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let r = run(
            addr,
            "x",
            "/",
            2,
            Duration::from_millis(100),
            Duration::from_millis(100),
            0,
        )
        .await;
        assert!(r.requests > 0 && r.ok == 0);
        assert_eq!(r.failures.len() as u64, r.requests);
        assert!(r.failures[0].error.starts_with("connect"));
        let r = run(
            addr,
            "x",
            "/",
            3,
            Duration::from_secs(5),
            Duration::from_millis(100),
            2,
        )
        .await;
        assert_eq!(r.requests, 2, "--requests caps the run");
    }
}
