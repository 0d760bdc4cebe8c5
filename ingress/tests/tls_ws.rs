//! TLS with SNI, HTTP/2 over ALPN, WebSockets, and route updates under load.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn tls_connect(
    addr: std::net::SocketAddr,
    sni: &str,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    // Accepts any certificate; the test checks which one was presented instead.
    let mut config = shoal_tests::tls::trust_any_server();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .unwrap()
}

/// A self-signed certificate for `host`, written to `<name>.crt` and `<name>.key` in
/// `dir`.
fn self_signed(
    dir: &std::path::Path,
    name: &str,
    host: &str,
) -> (
    CertificateDer<'static>,
    (std::path::PathBuf, std::path::PathBuf),
) {
    let c = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (c.cert.der().clone(), (cert, key))
}

/// A proxy serving `routes` over TLS on entrypoint "websecure", on an ephemeral port.
async fn serve_tls(
    routes: shoal_ingress::Routes,
    config: Arc<rustls::ServerConfig>,
) -> (Arc<shoal_ingress::Proxy>, std::net::SocketAddr) {
    let proxy = shoal_ingress::Proxy::new(Default::default()).unwrap();
    proxy.update(routes).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.clone().serve("websecure", listener, Some(config)));
    (proxy, addr)
}

#[tokio::test]
async fn sni_picks_the_certificate_and_alpn_h2_works() {
    let dir = tempfile::tempdir().unwrap();
    let (a_cert, a_files) = self_signed(dir.path(), "a", "a.test");
    let (b_cert, b_files) = self_signed(dir.path(), "b", "*.b.test");
    let server_config = shoal_ingress::tls::server_config(&[a_files, b_files]).unwrap();

    let a = named("a").await;
    let b = named("b").await;
    let mut r = routes(
        &[("a", "Host(`a.test`)", "a"), ("b", "Host(`*.b.test`)", "b")],
        vec![("a", Service::over(&[a])), ("b", Service::over(&[b]))],
    );
    r.routers.get_mut("b").unwrap().tls = true;
    let (_proxy, addr) = serve_tls(r, server_config).await;

    // HTTP/1.1 to a.test.
    let tls = tls_connect(addr, "a.test", b"http/1.1").await;
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], a_cert);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "a.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "a");

    // HTTP/2 to x.b.test via the wildcard certificate.
    let tls = tls_connect(addr, "x.b.test", b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], b_cert);
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://x.b.test/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "b");
}

/// A client that chose h2 by ALPN must start with HTTP/2's connection preface (RFC 9113
/// §3.4; h2spec 3.5.2): HTTP/1.1 sent instead is not answered as HTTP/1.1 and never
/// reaches a backend.
#[tokio::test]
async fn alpn_h2_requires_the_http2_preface() {
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = self_signed(dir.path(), "a", "a.test");
    let server_config = shoal_ingress::tls::server_config(&[files]).unwrap();
    let (b, seen) = recorder().await;
    let r = routes(
        &[("a", "Host(`a.test`)", "a")],
        vec![("a", Service::over(&[b]))],
    );
    let (_proxy, addr) = serve_tls(r, server_config).await;
    let mut tls = tls_connect(addr, "a.test", b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = tls.read_to_end(&mut out);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
    assert!(ended.is_ok(), "the connection was not ended");
    assert!(
        !String::from_utf8_lossy(&out).contains("HTTP/1.1"),
        "answered as HTTP/1.1: {out:?}"
    );
    assert!(seen.lock().unwrap().is_empty());
}

/// HTTP/1.1 over TLS takes the same path as plain TCP: keep-alive requests are answered
/// in order, and Content-Length with Transfer-Encoding is framed by the chunks and ends
/// the connection, the smuggled tail never read; connections end with close_notify.
#[tokio::test]
async fn http1_over_tls_keeps_alive_and_closes_after_ambiguous_framing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = self_signed(dir.path(), "a", "a.test");
    let server_config = shoal_ingress::tls::server_config(&[files]).unwrap();
    let (b, seen) = recorder().await;
    let r = routes(
        &[("a", "Host(`a.test`)", "a")],
        vec![("a", Service::over(&[b]))],
    );
    let (_proxy, addr) = serve_tls(r, server_config).await;
    let exchange = |raw: String| async move {
        let mut tls = tls_connect(addr, "a.test", b"http/1.1").await;
        tls.write_all(raw.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let read = tls.read_to_end(&mut out);
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
        // A clean end means the proxy sent close_notify before closing.
        assert!(matches!(ended, Ok(Ok(_))), "{ended:?}");
        String::from_utf8_lossy(&out).into_owned()
    };

    let two = "GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\n\
               GET /2 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    let resp = exchange(two.to_string()).await;
    assert_eq!(resp.matches("HTTP/1.1 200").count(), 2, "{resp}");
    assert_eq!(*seen.lock().unwrap(), ["/1", "/2"]);

    seen.lock().unwrap().clear();
    let smuggle = "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 30\r\n\
                   Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
                   GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n";
    // `exchange` sees the connection end within 5 s, before the 10 s idle timeout.
    let resp = exchange(smuggle.to_string()).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(resp.matches("HTTP/1.1").count(), 1, "{resp}");
    assert_eq!(*seen.lock().unwrap(), ["/"]);
}

#[tokio::test]
async fn tls_only_routers_do_not_match_plain_http() {
    let a = named("a").await;
    let mut r = routes(
        &[("a", "Host(`a.test`)", "a")],
        vec![("a", Service::over(&[a]))],
    );
    r.routers.get_mut("a").unwrap().tls = true;
    let (_p, addr) = proxy(r).await;
    assert_eq!(
        get(&client(), addr, "a.test", "/").await.0,
        StatusCode::NOT_FOUND
    );
}

/// A backend that echoes WebSocket bytes after a 101, and answers `/slow` when `gate` opens.
async fn ws_backend(
    gate: Arc<tokio::sync::Semaphore>,
    started: Arc<tokio::sync::Notify>,
) -> std::net::SocketAddr {
    backend(move |mut req| {
        let gate = gate.clone();
        let started = started.clone();
        async move {
            if req.headers().contains_key("upgrade") {
                let on = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let mut io = TokioIo::new(on.await.unwrap());
                    let mut buf = [0u8; 64];
                    loop {
                        let n = io.read(&mut buf).await.unwrap_or(0);
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                let mut r = reply(101, "");
                r.headers_mut()
                    .insert("upgrade", "websocket".parse().unwrap());
                r.headers_mut()
                    .insert("connection", "Upgrade".parse().unwrap());
                return r;
            }
            if req.uri().path() == "/slow" {
                started.notify_one();
                let _p = gate.acquire().await.unwrap();
                return reply(200, "slow-done");
            }
            reply(200, "old")
        }
    })
    .await
}

#[tokio::test]
async fn a_route_update_keeps_open_websockets_and_requests_in_flight() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    let old = ws_backend(gate.clone(), started.clone()).await;
    let (proxy, addr) = proxy(routes(
        &[("r", "Host(`a.com`)", "old")],
        vec![("old", Service::over(&[old]))],
    ))
    .await;

    let mut ws = TcpStream::connect(addr).await.unwrap();
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        ws.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    let mut buf = [0u8; 5];
    ws.write_all(b"ping1").await.unwrap();
    ws.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping1");

    let c = client();
    let slow = tokio::spawn({
        let c = c.clone();
        async move { get(&c, addr, "a.com", "/slow").await }
    });
    started.notified().await;
    assert_eq!(
        proxy.routes_view()[0].backends[0].outstanding,
        2,
        "websocket and slow request"
    );

    let new = named("new").await;
    proxy
        .update(routes(
            &[("r", "Host(`a.com`)", "new")],
            vec![("new", Service::over(&[new]))],
        ))
        .unwrap();
    assert_eq!(
        get(&c, addr, "a.com", "/").await,
        (StatusCode::OK, "new".into())
    );

    ws.write_all(b"ping2").await.unwrap();
    ws.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping2");
    gate.add_permits(1);
    assert_eq!(slow.await.unwrap(), (StatusCode::OK, "slow-done".into()));
}
