//! HTTP/2 clients that say nothing, or stop half way, and clients that hold many
//! connections: their connections are closed (or refused) while a normal client is
//! still answered.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use shoal_ingress::ProxyOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// A frame header: length, type, flags, stream.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK for `:method GET`, `:scheme http`, `:path /`, `:authority a.com` (indexed and
/// literal without indexing).
fn get_headers() -> Vec<u8> {
    let mut h = vec![0x82, 0x86, 0x84, 0x01, 5];
    h.extend_from_slice(b"a.com");
    h
}

/// HPACK for a POST of `/` to a.com.
fn post_headers() -> Vec<u8> {
    let mut h = vec![0x83, 0x86, 0x84, 0x01, 5];
    h.extend_from_slice(b"a.com");
    h
}

/// Writes `bytes` and reads until the proxy closes; returns how long that took, or
/// `None` if it stayed open for `limit`.
async fn closed_within(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let started = Instant::now();
    let mut sink = vec![0; 4096];
    let read_all = async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all)
        .await
        .ok()
        .map(|()| started.elapsed())
}

async fn quick_proxy(options: ProxyOptions) -> SocketAddr {
    let (b, _) = recorder().await;
    let (_p, addr) = proxy_with(
        routes(
            &[("r", "Host(`a.com`)", "s")],
            vec![("s", Service::over(&[b]))],
        ),
        options,
    )
    .await;
    std::mem::forget(_p);
    addr
}

/// Preface only, preface and SETTINGS, a header block never finished, a body never
/// finished: each connection is closed within a few timeouts (it used to stay open
/// for good), while a normal client is answered meanwhile.
#[tokio::test]
async fn silent_and_stalled_http2_connections_are_closed() {
    let options = ProxyOptions {
        header_read_timeout: Duration::from_millis(300),
        body_idle_timeout: Duration::from_millis(300),
        ..ProxyOptions::default()
    };
    let addr = quick_proxy(options).await;
    let with_settings = [PREFACE, SETTINGS].concat();
    // HEADERS without END_HEADERS: the block goes on in CONTINUATION frames never sent.
    let open_block = [PREFACE, SETTINGS, &frame(1, 0x0, 1, &get_headers()[..3])].concat();
    // HEADERS (END_HEADERS, no END_STREAM) and one DATA frame of a body never ended.
    let open_body = [
        PREFACE,
        SETTINGS,
        &frame(1, 0x4, 1, &post_headers()),
        &frame(0, 0x0, 1, b"part"),
    ]
    .concat();
    let cases: [(&str, &[u8]); 4] = [
        ("preface", PREFACE),
        ("preface+settings", &with_settings),
        ("open header block", &open_block),
        ("open body", &open_body),
    ];
    let checks = cases.iter().map(|(name, bytes)| async move {
        let took = closed_within(addr, bytes, Duration::from_secs(5)).await;
        (name, took)
    });
    let (results, normal) = tokio::join!(futures::future::join_all(checks), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        get(&client(), addr, "a.com", "/").await
    });
    assert_eq!(normal.0, http::StatusCode::OK);
    for (name, took) in results {
        let took = took.unwrap_or_else(|| panic!("{name}: still open after 5 s"));
        assert!(took < Duration::from_secs(3), "{name}: {took:?}");
    }
}

/// SETTINGS_MAX_CONCURRENT_STREAMS is 100 (HAProxy's and most servers'), so a few
/// connections cannot hold every request slot of a service.
#[tokio::test]
async fn http2_connections_advertise_100_concurrent_streams() {
    let addr = quick_proxy(ProxyOptions::default()).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let mut conn = Box::pin(conn);
    // The server's SETTINGS arrive with the first exchange.
    let mut client = client.ready().await.unwrap();
    let req = http::Request::get("http://a.com/").body(()).unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let drive = async {
        let _ = (&mut conn).await;
    };
    tokio::select! {
        r = resp => assert_eq!(r.unwrap().status(), http::StatusCode::OK),
        () = drive => panic!("connection ended"),
    }
    assert_eq!(conn.max_concurrent_send_streams(), 100);
}

/// A client address holds at most `max_connections_per_client` connections; more are
/// closed at accept, while other addresses are served.
#[tokio::test]
async fn one_address_cannot_hold_more_than_its_cap_of_connections() {
    let options = ProxyOptions {
        max_connections_per_client: 20,
        ..ProxyOptions::default()
    };
    let addr = quick_proxy(options).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(PREFACE).await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let over = closed_within(addr, PREFACE, Duration::from_secs(2)).await;
    assert!(
        over.is_some(),
        "the 21st connection from one address is closed"
    );
    // Another address (127.0.0.2 is loopback too) is answered.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(addr).await.unwrap();
    other
        .write_all(b"GET / HTTP/1.1\r\nHost: a.com\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    other.read_to_end(&mut out).await.unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    drop(held);
    let _ = Bytes::new();
}
