//! Differential test of the fast path over the request corpus
//! (`tests/corpus/requests.json`: well-formed requests, smuggling attempts, malformed
//! framing, from httparse's, llhttp's and hyper's tests and smuggling tools). Each
//! case's bytes go, over loopback TCP, to
//!
//! ```text
//!  (a) the proxy with its fast path on  ─┐
//!  (b) the proxy with it off (hyper only)├─▶ recording backend: method, target,
//!                                        │   headers, body of each request it received
//!  (c) httparse alone, bodies framed by RFC 9112 to the letter (`reference.rs`)
//! ```
//! and must agree: (a) and (b) give the same answers and forward the same requests,
//! headers and bodies byte for byte; both accept what the corpus says to accept
//! (forwarding exactly the messages (c) reads) and refuse what it says to refuse (a 4xx
//! from the proxy, or a closed connection with nothing forwarded); a head httparse
//! refuses never reaches the backend, nor anything after a message (c) finds invalid.
//! All cases run at once; the proxies close idle connections after half a second.

#[path = "../common/mod.rs"]
mod common;
mod reference;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http_body_util::BodyExt;
use serde::Deserialize;
use shoal_ingress::config::Trust;
use shoal_ingress::proxy::Peers;
use shoal_ingress::{Proxy, ProxyOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One corpus case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    source: String,
    /// The bytes, one per char (Latin-1).
    raw: String,
    expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    /// Every message is forwarded.
    Accept,
    /// Refused: a 4xx, or closed with nothing forwarded.
    Refuse,
    /// Either, as long as both paths agree.
    Either,
}

impl Case {
    fn bytes(&self) -> Vec<u8> {
        self.raw
            .chars()
            .map(|c| u8::try_from(u32::from(c)).expect("corpus chars are Latin-1 bytes"))
            .collect()
    }
}

fn corpus() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/requests.json");
    let text = std::fs::read_to_string(path).expect("the corpus");
    serde_json::from_str(&text).expect("corpus JSON")
}

/// A request as the backend received it.
#[derive(Clone, PartialEq, Eq)]
struct Received {
    method: String,
    target: String,
    /// `name: value`, the value's bytes escaped where not printable ASCII.
    headers: Vec<String>,
    /// `None` if the body never arrived whole.
    body: Option<Vec<u8>>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {:?} ", self.method, self.target, self.headers)?;
        match &self.body {
            Some(body) => write!(f, "body \"{}\"", body.escape_ascii()),
            None => f.write_str("body cut short"),
        }
    }
}

/// A backend that records each request (as soon as its head arrives, its body once
/// whole) and answers 200.
async fn recording_backend() -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr = backend(move |req| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let index = {
                let mut log = log.lock().unwrap();
                log.push(Received {
                    method: parts.method.to_string(),
                    target: parts.uri.path_and_query().map_or("", |p| p.as_str()).into(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(n, v)| format!("{n}: {}", v.as_bytes().escape_ascii()))
                        .collect(),
                    body: None,
                });
                log.len() - 1
            };
            if let Ok(body) = body.collect().await {
                log.lock().unwrap()[index].body = Some(body.to_bytes().to_vec());
            }
            reply(200, "ok\r\n")
        }
    })
    .await;
    (addr, seen)
}

/// What one path did with a case.
#[derive(Debug, Clone)]
struct Outcome {
    /// The status of each response the client got, in order.
    statuses: Vec<u16>,
    /// Every request whose head reached the backend, whole or cut short.
    received: Vec<Received>,
}

impl Outcome {
    /// What the two paths must agree on: the answers, and the requests that reached the
    /// backend whole, headers and all. (A body found malformed half way has had its
    /// head and first bytes streamed on already; whether the backend reads them before
    /// the proxy drops that connection is a race, so requests cut short are left out.
    /// A last 408 is left out too: the fast path answers a head cut short with one when
    /// the header timeout passes, where hyper closes without a word.)
    fn decisions(&self) -> (&[u16], Vec<&Received>) {
        let whole = self.received.iter().filter(|r| r.body.is_some()).collect();
        let statuses = match self.statuses.split_last() {
            Some((408, before)) => before,
            _ => &self.statuses[..],
        };
        (statuses, whole)
    }

    /// The requests the backend received whole.
    fn forwarded(&self) -> Vec<reference::Message> {
        self.received
            .iter()
            .filter_map(|r| {
                Some(reference::Message {
                    method: r.method.clone(),
                    target: r.target.clone(),
                    body: r.body.clone()?,
                })
            })
            .collect()
    }

    /// Refused: a 4xx from the proxy (the backend only says 200), or a closed
    /// connection with nothing forwarded.
    fn refused(&self) -> bool {
        let client_error = self.statuses.iter().any(|s| (400..500).contains(s));
        client_error || (self.statuses.is_empty() && self.forwarded().is_empty())
    }

    /// Accepted: every final answer a 200 from the backend.
    fn accepted(&self) -> bool {
        let finals: Vec<u16> = self
            .statuses
            .iter()
            .copied()
            .filter(|s| *s >= 200)
            .collect();
        !finals.is_empty() && finals.iter().all(|s| *s == 200)
    }
}

/// How long a client waits for the proxy to finish with a case (it closes an idle
/// connection after `IDLE`; only truncated bodies keep it open this long).
const DEADLINE: Duration = Duration::from_secs(3);
const IDLE: Duration = Duration::from_millis(500);

/// Sends `bytes` to a fresh proxy (fast path on or off; believing the client's
/// forwarding headers or not) in front of a fresh recording backend, and reads until
/// the proxy closes.
async fn run(bytes: &[u8], fast_path: bool, trusted: bool) -> Outcome {
    let (backend, seen) = recording_backend().await;
    let proxy = Proxy::new(ProxyOptions {
        fast_path,
        header_read_timeout: IDLE,
        ..ProxyOptions::default()
    })
    .unwrap();
    proxy
        .update(routes(
            &[("all", "PathRegexp(`.*`)", "s")],
            vec![("s", Service::over(&[backend]))],
        ))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut s = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    // The bytes wait in the socket before the proxy accepts it, so that however busy
    // the test is, the proxy never sees an idle connection before they arrive.
    s.write_all(bytes).await.unwrap();
    let peers = Peers {
        forwarded_headers: Trust {
            insecure: trusted,
            trusted_ips: Vec::new(),
        },
        proxy_protocol: None,
    };
    tokio::spawn(proxy.serve_with("web", listener, None, peers));
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut out)).await;
    drop(s);
    let received = seen.lock().unwrap().clone();
    Outcome {
        statuses: statuses(&out),
        received,
    }
}

/// The status of each response in what the proxy wrote: lines that start with
/// `HTTP/1.x NNN` (every body here ends in a newline).
fn statuses(out: &[u8]) -> Vec<u16> {
    out.split(|b| *b == b'\n')
        .filter_map(|line| {
            let rest = line
                .strip_prefix(b"HTTP/1.1 ")
                .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
            std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
        })
        .collect()
}

/// Everything wrong with one case.
fn judge(case: &Case, fast: &Outcome, hyper: &Outcome) -> Vec<String> {
    let bytes = case.bytes();
    let mut wrong = Vec::new();
    if fast.decisions() != hyper.decisions() {
        wrong.push(format!(
            "the fast path and hyper differ:\n    fast:  {fast:?}\n    hyper: {hyper:?}"
        ));
    }
    let (messages, stop) = reference::read(&bytes);
    for (path, outcome) in [("fast path", fast), ("hyper", hyper)] {
        match case.expect {
            Expect::Accept if !(outcome.accepted() && stop == reference::Stop::End) => {
                wrong.push(format!(
                    "{path}: not accepted: {outcome:?} (reference: {stop:?})"
                ));
            }
            Expect::Accept if outcome.forwarded() != messages => wrong.push(format!(
                "{path}: forwarded {:?}, the reference reads {messages:?}",
                outcome.forwarded()
            )),
            Expect::Refuse if !outcome.refused() => {
                wrong.push(format!("{path}: not refused: {outcome:?}"));
            }
            _ => {}
        }
        if reference::first_head_refused(&bytes) && !outcome.received.is_empty() {
            wrong.push(format!(
                "{path}: forwarded a head httparse refuses: {outcome:?}"
            ));
        }
        // A message the reference finds invalid may be read leniently (RFC 9112 allows
        // some of that), but nothing after it: the connection must end there.
        if matches!(stop, reference::Stop::Invalid(_))
            && outcome.received.len() > messages.len() + 1
        {
            wrong.push(format!(
                "{path}: forwarded past an invalid message ({stop:?}): {outcome:?}"
            ));
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_path_and_hyper_agree_on_every_corpus_case() {
    let cases = corpus();
    assert_eq!(cases.len(), 152, "the corpus is whole");
    let runs = cases.iter().map(|case| async move {
        let bytes = case.bytes();
        let (fast, hyper) = tokio::join!(run(&bytes, true, false), run(&bytes, false, false));
        judge(case, &fast, &hyper)
    });
    let verdicts = futures::future::join_all(runs).await;
    let failures: Vec<String> = cases
        .iter()
        .zip(verdicts)
        .filter(|(_, wrong)| !wrong.is_empty())
        .map(|(case, wrong)| {
            format!(
                "{} ({:?}; {}):\n  {}",
                case.name,
                case.expect,
                case.source,
                wrong.join("\n  ")
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The forwarding headers' cases again, from a client whose headers are believed: both
/// paths keep and extend them alike; untrusted, the spoofed values never arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_path_and_hyper_agree_on_trusted_forwarding_headers() {
    let cases: Vec<Case> = corpus()
        .into_iter()
        .filter(|c| c.name.starts_with("forwarded-"))
        .collect();
    assert_eq!(cases.len(), 3);
    let header = |o: &Outcome, i: usize, name: &str| -> Vec<String> {
        let prefix = format!("{name}: ");
        o.received[i]
            .headers
            .iter()
            .filter_map(|h| h.strip_prefix(&prefix).map(str::to_string))
            .collect()
    };
    for case in &cases {
        let bytes = case.bytes();
        let (fast, hyper) = tokio::join!(run(&bytes, true, true), run(&bytes, false, true));
        let wrong = judge(case, &fast, &hyper);
        assert!(wrong.is_empty(), "{}: {}", case.name, wrong.join("\n"));
        let (untrusted_fast, untrusted_hyper) =
            tokio::join!(run(&bytes, true, false), run(&bytes, false, false));
        for (trusted, untrusted) in [(&fast, &untrusted_fast), (&hyper, &untrusted_hyper)] {
            let xff = header(trusted, 0, "x-forwarded-for");
            assert_eq!(xff.len(), 1, "{}: {xff:?}", case.name);
            assert!(xff[0].ends_with(", 127.0.0.1"), "{}: {xff:?}", case.name);
            assert_eq!(
                header(untrusted, 0, "x-forwarded-for"),
                vec!["127.0.0.1".to_string()],
                "{}",
                case.name
            );
            assert_eq!(header(untrusted, 0, "x-real-ip"), vec!["127.0.0.1"]);
        }
    }
    let spoofed = run(&cases[0].bytes(), true, true).await;
    assert_eq!(header(&spoofed, 0, "x-real-ip"), vec!["1.1.1.1"]);
    assert_eq!(header(&spoofed, 0, "x-forwarded-proto"), vec!["https"]);
    assert_eq!(header(&spoofed, 0, "x_forwarded_for"), vec!["10.0.0.1"]);
    let untrusted = run(&cases[0].bytes(), false, false).await;
    assert_eq!(header(&untrusted, 0, "x-forwarded-proto"), vec!["http"]);
    assert!(header(&untrusted, 0, "x_forwarded_for").is_empty());
    assert_eq!(
        header(&untrusted, 0, "forwarded"),
        vec!["for=192.0.2.60;proto=https"],
        "Forwarded is passed on, as Træfik does"
    );
}

/// The corpus reader itself: Latin-1 chars are bytes, and the reference reads
/// pipelined messages one by one.
#[test]
fn corpus_bytes_and_reference_reading() {
    let cases = corpus();
    let case = cases
        .iter()
        .find(|c| c.name == "header-value-obs-text-0xff")
        .unwrap();
    assert!(case.bytes().contains(&0xff));
    let (messages, stop) = reference::read(
        b"POST /a?q HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\nGET http://x/b HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(stop, reference::Stop::End);
    assert_eq!(
        messages
            .iter()
            .map(|m| (m.method.as_str(), m.target.as_str(), &m.body[..]))
            .collect::<Vec<_>>(),
        [("POST", "/a?q", &b"abc"[..]), ("GET", "/b", b"")]
    );
    for bad in [
        &b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\nab",
    ] {
        assert!(matches!(
            reference::read(bad).1,
            reference::Stop::Invalid(_)
        ));
    }
}
