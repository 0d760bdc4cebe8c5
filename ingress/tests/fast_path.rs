//! The plain HTTP/1.1 fast path over raw TCP: pipelining, HEAD, the hand-over to hyper
//! in the middle of a connection, and idle keep-alive connections.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use shoal_ingress::ProxyOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy for `Host(a.com)` in front of a backend that echoes method, path and body.
async fn echo_proxy(options: ProxyOptions) -> SocketAddr {
    let b = backend(|req| async move {
        use http_body_util::BodyExt;
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        reply(
            200,
            &format!("{method} {path} {}", String::from_utf8_lossy(&body)),
        )
    })
    .await;
    let (_, addr) = proxy_with(
        routes(
            &[("r", "Host(`a.com`)", "s")],
            vec![("s", Service::over(&[b]))],
        ),
        options,
    )
    .await;
    addr
}

/// Reads until `last` appears in what arrived (or 5 s pass).
async fn read_until(s: &mut TcpStream, last: &str) -> String {
    let mut out = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until && !String::from_utf8_lossy(&out).contains(last) {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(k)) => out.extend_from_slice(&chunk[..k]),
            _ => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let p = echo_proxy(ProxyOptions::default()).await;
    let mut s = TcpStream::connect(p).await.unwrap();
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: a.com\r\n\r\nPOST /two HTTP/1.1\r\nHost: a.com\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: a.com\r\n\r\n",
    )
    .await
    .unwrap();
    let text = read_until(&mut s, "GET /three").await;
    let one = text.find("GET /one").expect(&text);
    let two = text.find("POST /two abc").expect(&text);
    let three = text.find("GET /three").expect(&text);
    assert!(one < two && two < three, "{text}");
    assert_eq!(text.matches("date: ").count(), 3, "{text}");
}

#[tokio::test]
async fn a_connection_moves_to_hyper_mid_stream_and_keeps_its_order() {
    // A plain request, then a chunked one (hyper's), then a plain one again: all three
    // answered, in order, on the same connection.
    let p = echo_proxy(ProxyOptions::default()).await;
    let mut s = TcpStream::connect(p).await.unwrap();
    s.write_all(b"GET /fast HTTP/1.1\r\nHost: a.com\r\n\r\n")
        .await
        .unwrap();
    let first = read_until(&mut s, "GET /fast").await;
    assert!(first.contains("GET /fast"), "{first}");
    s.write_all(
        b"POST /chunked HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a.com\r\n\r\n",
    )
    .await
    .unwrap();
    let rest = read_until(&mut s, "GET /after").await;
    let chunked = rest.find("POST /chunked xyz").expect(&rest);
    let after = rest.find("GET /after").expect(&rest);
    assert!(chunked < after, "{rest}");
}

#[tokio::test]
async fn head_answers_carry_the_length_but_no_body() {
    let p = echo_proxy(ProxyOptions::default()).await;
    let mut s = TcpStream::connect(p).await.unwrap();
    s.write_all(b"HEAD /h HTTP/1.1\r\nHost: a.com\r\n\r\nGET /g HTTP/1.1\r\nHost: a.com\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut s, "GET /g").await;
    // The backend's length for "HEAD /h " stays; no body follows it.
    let (head, rest) = text.split_once("\r\n\r\n").expect(&text);
    assert!(
        head.to_ascii_lowercase().contains("content-length: 8"),
        "{head}"
    );
    assert!(
        rest.starts_with("HTTP/1.1 200"),
        "no body after the HEAD answer: {rest}"
    );
    assert!(rest.contains("GET /g"), "{rest}");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_header_read_timeout() {
    let p = echo_proxy(ProxyOptions {
        header_read_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(p).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a.com\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut s, "GET /x").await;
    assert!(text.contains("GET /x"), "{text}");
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "closed without another byte: {read:?} {rest:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}
