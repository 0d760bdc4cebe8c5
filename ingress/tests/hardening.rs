//! Hostile clients over raw TCP: smuggling, oversized heads, slow heads.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use http::StatusCode;
use shoal_ingress::ProxyOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Write `raw`, then read until the server closes (or 5 s pass).
async fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Content-Length plus Transfer-Encoding, in either order, first on a connection (the
/// fast path's) or after a chunked request (hyper's): framed by the chunks alone, the
/// length dropped, and the connection closed after the answer (RFC 9112 §6.1), so the
/// tail is never parsed as a second request and the backend sees only the first.
#[tokio::test]
async fn content_length_with_transfer_encoding_is_framed_by_chunks_and_ends_the_connection() {
    for heads in [
        "Content-Length: 60\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 60",
    ] {
        for before in ["", "POST /before HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"] {
            let (b, seen) = recorder().await;
            let (_p, addr) = proxy(routes(
                &[("r", "Host(`a.com`)", "s")],
                vec![("s", Service::over(&[b]))],
            ))
            .await;
            let raw = format!(
                "{before}POST / HTTP/1.1\r\nHost: a.com\r\n{heads}\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.com\r\n\r\n"
            );
            let started = std::time::Instant::now();
            let resp = exchange(addr, raw.as_bytes()).await;
            let answers = if before.is_empty() { 1 } else { 2 };
            assert_eq!(resp.matches("HTTP/1.1 200").count(), answers, "{heads}: {resp}");
            assert_eq!(resp.matches("HTTP/1.1").count(), answers, "{heads}: {resp}");
            let expected: &[&str] = if before.is_empty() { &["/"] } else { &["/before", "/"] };
            assert_eq!(*seen.lock().unwrap(), expected, "{heads}");
            // Closed at once, not after the 10 s idle timeout.
            assert!(started.elapsed() < Duration::from_secs(4), "{heads}: not closed");
        }
    }
}

#[tokio::test]
async fn transfer_encoding_that_is_not_chunked_is_refused_with_400() {
    let (b, seen) = recorder().await;
    let (_p, addr) = proxy(routes(
        &[("r", "Host(`a.com`)", "s")],
        vec![("s", Service::over(&[b]))],
    ))
    .await;
    let raw = b"POST / HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd";
    let resp = exchange(addr, raw).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(seen.lock().unwrap().is_empty());
}

/// A chunked body that turns out malformed after its head went on (a POST streams) is
/// the client's fault: 400, and the backend is not marked as failing (five of these used
/// to eject it as five resets).
#[tokio::test]
async fn malformed_chunked_bodies_get_400_and_never_eject_the_backend() {
    let (b, _) = recorder().await;
    let (p, addr) = proxy(routes(
        &[("r", "Host(`a.com`)", "s")],
        vec![("s", Service::over(&[b]))],
    ))
    .await;
    for body in [
        "zz\r\n",
        "3\r\nabcXX0\r\n\r\n",
        "3\nabc\r\n0\r\n\r\n",
        "0x1\r\nx\r\n0\r\n\r\n",
        "1\r\nx\r\n0x1\r\nx\r\n0\r\n\r\n",
        "-1\r\nx\r\n0\r\n\r\n",
        "fffffffffffffffffff\r\nx\r\n",
    ] {
        for _ in 0..3 {
            let raw = format!(
                "POST / HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
            );
            let resp = exchange(addr, raw.as_bytes()).await;
            assert!(resp.starts_with("HTTP/1.1 400"), "{body:?}: {resp}");
        }
    }
    let backends = &p.routes_view()[0].backends;
    assert_eq!(backends[0].health, shoal_ingress::Health::Healthy);
    assert_eq!(backends[0].times_ejected, 0);
    assert_eq!(
        get(&client(), addr, "a.com", "/").await,
        (StatusCode::OK, "ok".into())
    );
}

/// The same when the bad chunk size comes after the head and a first chunk went on to
/// the backend, and when the client resets its connection in the middle of a body:
/// twelve of each leave the backend healthy and never ejected.
#[tokio::test]
async fn streamed_bad_chunks_and_client_resets_never_eject_the_backend() {
    let (b, _) = recorder().await;
    let (p, addr) = proxy(routes(
        &[("r", "Host(`a.com`)", "s")],
        vec![("s", Service::over(&[b]))],
    ))
    .await;
    let head = "POST / HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    for _ in 0..12 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(b"0x1\r\nx\r\n0\r\n\r\n").await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    }
    for _ in 0..12 {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut s = s;
        s.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // An RST, not a FIN.
        s.set_zero_linger().unwrap();
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let backends = &p.routes_view()[0].backends;
    assert_eq!(backends[0].health, shoal_ingress::Health::Healthy);
    assert_eq!(backends[0].times_ejected, 0);
    assert_eq!(
        get(&client(), addr, "a.com", "/").await,
        (StatusCode::OK, "ok".into())
    );
}

#[tokio::test]
async fn conflicting_content_lengths_are_refused_with_400() {
    let (b, seen) = recorder().await;
    let (_p, addr) = proxy(routes(
        &[("r", "Host(`a.com`)", "s")],
        vec![("s", Service::over(&[b]))],
    ))
    .await;
    let raw =
        b"POST / HTTP/1.1\r\nHost: a.com\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde";
    let resp = exchange(addr, raw).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let (b, _) = recorder().await;
    let options = ProxyOptions {
        max_header_bytes: 16 * 1024,
        ..ProxyOptions::default()
    };
    let (_p, addr) = proxy_with(
        routes(
            &[("r", "Host(`a.com`)", "s")],
            vec![("s", Service::over(&[b]))],
        ),
        options,
    )
    .await;
    let big = "x".repeat(32 * 1024);
    let raw = format!("GET / HTTP/1.1\r\nHost: a.com\r\nX-Big: {big}\r\n\r\n");
    let resp = exchange(addr, raw.as_bytes()).await;
    assert!(
        resp.starts_with("HTTP/1.1 431"),
        "{}",
        &resp[..resp.len().min(200)]
    );
}

#[tokio::test]
async fn a_slow_header_client_is_cut_off_while_others_are_served() {
    let (b, _) = recorder().await;
    let options = ProxyOptions {
        header_read_timeout: Duration::from_millis(300),
        ..ProxyOptions::default()
    };
    let (_p, addr) = proxy_with(
        routes(
            &[("r", "Host(`a.com`)", "s")],
            vec![("s", Service::over(&[b]))],
        ),
        options,
    )
    .await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a.c")
        .await
        .unwrap();
    // Meanwhile a normal client is served.
    assert_eq!(
        get(&client(), addr, "a.com", "/").await,
        (StatusCode::OK, "ok".into())
    );
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "slow client was not cut off");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// HAProxy's `timeout http-request`: a head that trickles in (a byte at a time, under
/// the timeout each time) is still cut off when the timeout since the connection began
/// passes, with a 408; a new connection that sends nothing gets a 408 too; one left
/// idle after a response is closed without a word.
#[tokio::test]
async fn trickled_and_missing_heads_get_408_and_idle_keep_alive_closes_silently() {
    let (b, _) = recorder().await;
    let options = ProxyOptions {
        header_read_timeout: Duration::from_millis(400),
        ..ProxyOptions::default()
    };
    let (_p, addr) = proxy_with(
        routes(
            &[("r", "Host(`a.com`)", "s")],
            vec![("s", Service::over(&[b]))],
        ),
        options,
    )
    .await;
    let read_all = |mut s: TcpStream| async move {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "not cut off");
        String::from_utf8_lossy(&out).into_owned()
    };
    // Trickled: one byte every 100 ms.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    for b in b"GET / HTTP/1.1\r\nHost: a.com" {
        if slow.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    let text = read_all(slow).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Nothing sent at all.
    let text = read_all(TcpStream::connect(addr).await.unwrap()).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // Idle after a full exchange: closed, no second answer.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.com\r\n\r\n")
        .await
        .unwrap();
    let text = read_all(s).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
}

/// What Go's server refuses before Træfik tries a rule: a `%` not followed by two hex
/// digits in the path, and a Host with non-ASCII bytes, get 400 and never reach a
/// backend, whatever the rule (even one that matches every request); a valid escape
/// routes, decoded for matching.
#[tokio::test]
async fn bad_escapes_and_non_ascii_hosts_get_400_before_any_rule() {
    let (b, seen) = recorder().await;
    let (_p, addr) = proxy(routes(
        &[("all", "PathPrefix(`/`)", "s"), ("x", "Path(`/a b`)", "s")],
        vec![("s", Service::over(&[b]))],
    ))
    .await;
    for (raw, status) in [
        (&b"GET /a%zz HTTP/1.1\r\nHost: a.com\r\n\r\n"[..], "400"),
        (b"GET /a%2 HTTP/1.1\r\nHost: a.com\r\n\r\n", "400"),
        (b"GET /% HTTP/1.1\r\nHost: a.com\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: b\xc3\xa9.com\r\n\r\n", "400"),
        (
            b"GET /a%20b HTTP/1.1\r\nHost: a.com\r\nConnection: close\r\n\r\n",
            "200",
        ),
    ] {
        let resp = exchange(addr, raw).await;
        let shown = String::from_utf8_lossy(raw);
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {status}")),
            "{shown}: {resp}"
        );
    }
    assert_eq!(*seen.lock().unwrap(), ["/a%20b"]);
}

/// RFC 9112 §3.2: more than one Host field is a bad request, whatever the values.
#[tokio::test]
async fn two_host_fields_get_400() {
    let (b, seen) = recorder().await;
    let (_p, addr) = proxy(routes(
        &[("r", "PathPrefix(`/`)", "s")],
        vec![("s", Service::over(&[b]))],
    ))
    .await;
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a.com\r\nhost: a.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \r\nHost: a.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.com\r\nX-A: 1\r\nHost: b.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.com\r\nConnection: keep-alive\r\nHost: b.com\r\n\r\n",
    ] {
        let resp = exchange(addr, raw).await;
        assert!(
            resp.starts_with("HTTP/1.1 400"),
            "{:?}: {resp}",
            String::from_utf8_lossy(raw)
        );
    }
    assert!(seen.lock().unwrap().is_empty());
}

/// A transfer coding the proxy does not implement (anything but chunked, e.g.
/// `gzip, chunked`) gets 501 (RFC 9112 §6.1) instead of its body going on as plain
/// data with the coding's name dropped.
#[tokio::test]
async fn transfer_codings_other_than_chunked_get_501() {
    let (b, seen) = recorder().await;
    let (_p, addr) = proxy(routes(
        &[("r", "PathPrefix(`/`)", "s")],
        vec![("s", Service::over(&[b]))],
    ))
    .await;
    for coding in [
        "gzip, chunked",
        "x-custom,chunked",
        "deflate, identity, chunked",
    ] {
        let raw = format!(
            "POST / HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: {coding}\r\n\r\n1\r\nx\r\n0\r\n\r\n"
        );
        let resp = exchange(addr, raw.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 501"), "{coding}: {resp}");
    }
    // Two fields that together say `gzip, chunked` are the same thing.
    let raw = b"POST / HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
    let resp = exchange(addr, raw).await;
    assert!(resp.starts_with("HTTP/1.1 501"), "{resp}");
    assert!(seen.lock().unwrap().is_empty());
    // Plain chunked (any case) still goes through.
    let raw = b"POST / HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n";
    let resp = exchange(addr, raw).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}
