//! TCP routers end to end on loopback: SNI routing with TLS passthrough (the client
//! sees the backend's certificate) and with termination (the client sees the proxy's,
//! the backend gets plaintext), plain TCP with HostSNI(`*`), half-close, servers that
//! speak first, unknown names refused, and route swaps that keep live connections.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use shoal_ingress::config::{Entrypoint, TcpRouter, TcpRoutes, TcpService, TlsMode};
use shoal_ingress::{Proxy, Routes, Server};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A certificate for `host`: its DER and its PEM chain and key.
fn cert(host: &str) -> (CertificateDer<'static>, String, String) {
    let c = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    (
        c.cert.der().clone(),
        c.cert.pem(),
        c.signing_key.serialize_pem(),
    )
}

/// Echo everything until the peer's EOF, then close; the number of connections seen
/// and the bytes received go to `log`.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, log: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.lock().unwrap().extend_from_slice(&buf[..n]);
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = s.shutdown().await;
}

struct Backend {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<usize>>,
}

/// A plain TCP echo server; with `greeting`, it speaks first.
async fn plain_backend(greeting: Option<&'static [u8]>) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(Mutex::new(0));
    let (r, c) = (received.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            *c.lock().unwrap() += 1;
            if let Some(g) = greeting {
                s.write_all(g).await.unwrap();
            }
            tokio::spawn(echo(s, r.clone()));
        }
    });
    Backend {
        addr,
        received,
        connections,
    }
}

/// A TLS echo server with a certificate for `host`; returns it and its certificate.
async fn tls_backend(host: &str) -> (Backend, CertificateDer<'static>) {
    let (der, chain, key) = cert(host);
    let config = shoal_ingress::tls::server_config_from_pem(&[(
        host.to_string(),
        chain.into_bytes(),
        key.into_bytes(),
    )])
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(Mutex::new(0));
    let (r, c) = (received.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            *c.lock().unwrap() += 1;
            let (acceptor, r) = (acceptor.clone(), r.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    echo(tls, r).await;
                }
            });
        }
    });
    let backend = Backend {
        addr,
        received,
        connections,
    };
    (backend, der)
}

/// Routes of TCP routers `(name, rule, service, tls)` and services of one server each.
fn tcp_routes(
    routers: &[(&str, &str, &str, TlsMode)],
    services: Vec<(&str, SocketAddr)>,
) -> Routes {
    let mut tcp = TcpRoutes::default();
    for (name, rule, service, tls) in routers {
        let router = TcpRouter::new(rule, service, *tls).unwrap();
        tcp.routers.insert(name.to_string(), router);
    }
    for (name, addr) in services {
        tcp.services.insert(
            name.to_string(),
            TcpService {
                servers: vec![Server::new(addr, 1)],
                proxy_protocol: None,
            },
        );
    }
    Routes {
        tcp,
        ..Routes::default()
    }
}

/// A proxy with `routes` and one TCP entrypoint `edge` on an ephemeral port, with
/// certificates from `pem` (a chain and a key) when given.
async fn start(
    routes: Routes,
    pem: Option<(String, String)>,
) -> (Arc<Proxy>, SocketAddr, tempfile::TempDir) {
    let proxy = Proxy::new(Default::default()).unwrap();
    proxy.update(routes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut certificates = Vec::new();
    if let Some((chain, key)) = pem {
        let (c, k) = (dir.path().join("edge.crt"), dir.path().join("edge.key"));
        std::fs::write(&c, chain).unwrap();
        std::fs::write(&k, key).unwrap();
        certificates.push((c, k));
    }
    let entrypoints = BTreeMap::from([(
        "edge".to_string(),
        Entrypoint {
            certificates,
            ..Entrypoint::new("127.0.0.1:0".parse().unwrap())
        },
    )]);
    let started = proxy.start_tcp(&entrypoints).await.unwrap();
    (proxy, started[0].address, dir)
}

async fn tls_client(
    addr: SocketAddr,
    sni: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let config = shoal_tests::tls::trust_any_server();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
}

/// A connection to `edge` that sends `msg` is closed without an answer.
async fn assert_unrouted(edge: SocketAddr, msg: &[u8]) {
    let mut s = TcpStream::connect(edge).await.unwrap();
    let _ = s.write_all(msg).await;
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?} {rest:?}");
}

/// Write `msg`, read it back.
async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    back
}

/// A proxy whose entrypoint passes `db.test` through to a TLS echo server and sends
/// connections matching `other` (a rule and its TLS mode) to `other_addr`; returns
/// the db server, its certificate and the entrypoint.
async fn db_and(
    other: (&str, TlsMode),
    other_addr: SocketAddr,
) -> (
    Backend,
    CertificateDer<'static>,
    SocketAddr,
    Arc<Proxy>,
    tempfile::TempDir,
) {
    let (db, db_cert) = tls_backend("db.test").await;
    let routes = tcp_routes(
        &[
            ("db", "HostSNI(`db.test`)", "db", TlsMode::Passthrough),
            ("other", other.0, "other", other.1),
        ],
        vec![("db", db.addr), ("other", other_addr)],
    );
    let (proxy, edge, dir) = start(routes, None).await;
    let mut c = tls_client(edge, "db.test").await.unwrap();
    assert_eq!(c.get_ref().1.peer_certificates().unwrap()[0], db_cert);
    assert_eq!(round_trip(&mut c, b"SELECT 1").await, b"SELECT 1");
    assert_eq!(db.received.lock().unwrap().as_slice(), b"SELECT 1");
    (db, db_cert, edge, proxy, dir)
}

#[tokio::test]
async fn passthrough_routes_by_sni_and_the_client_sees_the_backends_certificate() {
    let (mq, mq_cert) = tls_backend("mq.test").await;
    let mq_rule = "HostSNI(`*.mq.test`) || HostSNI(`mq.test`)";
    let (db, _, edge, _proxy, _dir) = db_and((mq_rule, TlsMode::Passthrough), mq.addr).await;
    for name in ["mq.test", "eu.mq.test"] {
        let mut c = tls_client(edge, name).await.unwrap();
        assert_eq!(c.get_ref().1.peer_certificates().unwrap()[0], mq_cert);
        assert_eq!(round_trip(&mut c, b"PUBLISH").await, b"PUBLISH");
    }
    assert_eq!(*db.connections.lock().unwrap(), 1);
}

#[tokio::test]
async fn termination_shows_the_proxys_certificate_and_sends_plaintext() {
    let backend = plain_backend(None).await;
    let (proxy_cert, chain, key) = cert("term.test");
    let routes = tcp_routes(
        &[("t", "HostSNI(`term.test`)", "s", TlsMode::Terminate)],
        vec![("s", backend.addr)],
    );
    let (_proxy, edge, _dir) = start(routes, Some((chain, key))).await;
    let mut c = tls_client(edge, "term.test").await.unwrap();
    assert_eq!(c.get_ref().1.peer_certificates().unwrap()[0], proxy_cert);
    assert_eq!(c.get_ref().1.alpn_protocol(), None);
    assert_eq!(
        round_trip(&mut c, b"hello in the clear").await,
        b"hello in the clear"
    );
    assert_eq!(
        backend.received.lock().unwrap().as_slice(),
        b"hello in the clear"
    );
}

#[tokio::test]
async fn unknown_server_names_are_refused_and_reach_no_backend() {
    let (db, _) = tls_backend("db.test").await;
    let routes = tcp_routes(
        &[("db", "HostSNI(`db.test`)", "db", TlsMode::Passthrough)],
        vec![("db", db.addr)],
    );
    let (_proxy, edge, _dir) = start(routes, None).await;
    assert!(tls_client(edge, "other.test").await.is_err());
    // Plain bytes on an entrypoint with only TLS routers find no router either.
    assert_unrouted(edge, b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(*db.connections.lock().unwrap(), 0);
}

#[tokio::test]
async fn plain_tcp_with_host_sni_star_passes_half_closes_on() {
    let backend = plain_backend(None).await;
    let routes = tcp_routes(
        &[("all", "HostSNI(`*`)", "s", TlsMode::Off)],
        vec![("s", backend.addr)],
    );
    let (_proxy, edge, _dir) = start(routes, None).await;
    let mut s = TcpStream::connect(edge).await.unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&payload).await.unwrap();
    // The client is done sending; the backend sees EOF only if the proxy passes it
    // on, and only then stops echoing and closes.
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut back))
        .await
        .expect("the backend closes after the client's EOF")
        .unwrap();
    assert_eq!(back, payload);
}

#[tokio::test]
async fn a_server_that_speaks_first_is_reached_without_waiting_for_the_client() {
    let backend = plain_backend(Some(b"220 ready\r\n")).await;
    let routes = tcp_routes(
        &[("smtp", "HostSNI(`*`)", "s", TlsMode::Off)],
        vec![("s", backend.addr)],
    );
    let (_proxy, edge, _dir) = start(routes, None).await;
    let mut s = TcpStream::connect(edge).await.unwrap();
    let mut greeting = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut greeting))
        .await
        .expect("greeting before the client sends anything")
        .unwrap();
    assert_eq!(&greeting, b"220 ready\r\n");
}

#[tokio::test]
async fn tls_and_plain_routers_share_an_entrypoint_and_client_ip_matches() {
    let plain = plain_backend(None).await;
    let rule = "HostSNI(`*`) && ClientIP(`127.0.0.0/8`)";
    let (_db, _, edge, _proxy, _dir) = db_and((rule, TlsMode::Off), plain.addr).await;
    let mut s = TcpStream::connect(edge).await.unwrap();
    assert_eq!(round_trip(&mut s, b"PING\r\n").await, b"PING\r\n");
    assert_eq!(plain.received.lock().unwrap().as_slice(), b"PING\r\n");
}

#[tokio::test]
async fn a_route_swap_keeps_live_connections_and_refuses_new_ones() {
    let backend = plain_backend(None).await;
    let routes = tcp_routes(
        &[("all", "HostSNI(`*`)", "s", TlsMode::Off)],
        vec![("s", backend.addr)],
    );
    let (proxy, edge, _dir) = start(routes, None).await;
    let mut live = TcpStream::connect(edge).await.unwrap();
    assert_eq!(round_trip(&mut live, b"one").await, b"one");
    proxy.update(Routes::default()).unwrap();
    assert_eq!(round_trip(&mut live, b"two").await, b"two");
    assert_unrouted(edge, b"three").await;
    assert_eq!(*backend.connections.lock().unwrap(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_skipped_for_the_next() {
    let backend = plain_backend(None).await;
    let dead = common::dead_addr().await;
    let mut routes = tcp_routes(&[("all", "HostSNI(`*`)", "s", TlsMode::Off)], vec![]);
    routes.tcp.services.insert(
        "s".into(),
        TcpService {
            servers: vec![Server::new(dead, 1), Server::new(backend.addr, 1)],
            proxy_protocol: None,
        },
    );
    let (_proxy, edge, _dir) = start(routes, None).await;
    for _ in 0..4 {
        let mut s = TcpStream::connect(edge).await.unwrap();
        assert_eq!(round_trip(&mut s, b"x").await, b"x");
    }
}
