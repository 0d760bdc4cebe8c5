//! The PROXY protocol on TCP routers, end to end on loopback: services that send a
//! header to their servers (`proxyProtocol.version` 1 or 2), read here by a parser of
//! the test's own, and TCP entrypoints that take one from a trusted relay, whose
//! client then goes on to the server and to `ClientIP` rules.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_ingress::config::{Entrypoint, TcpRouter, TcpRoutes, TcpService, TlsMode, Trust};
use shoal_ingress::proxy_protocol::{encode, Header, Version};
use shoal_ingress::{Proxy, Routes, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The addresses a server was told: (version, source, destination).
type Told = Arc<Mutex<Vec<(u8, SocketAddr, SocketAddr)>>>;

/// Reads a PROXY header (v1 or v2, TCP over IPv4 or IPv6) the simple way.
async fn read_header<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> Option<(u8, SocketAddr, SocketAddr)> {
    let first = r.fill_buf().await.ok()?.first().copied()?;
    if first == b'P' {
        let mut line = String::new();
        r.read_line(&mut line).await.ok()?;
        let f: Vec<&str> = line.strip_suffix("\r\n")?.split(' ').collect();
        if f.len() != 6 || f[0] != "PROXY" || !["TCP4", "TCP6"].contains(&f[1]) {
            return None;
        }
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        let port = |s: &str| s.parse::<u16>().ok();
        return Some((
            1,
            SocketAddr::new(ip(f[2])?, port(f[4])?),
            SocketAddr::new(ip(f[3])?, port(f[5])?),
        ));
    }
    let mut fixed = [0u8; 16];
    r.read_exact(&mut fixed).await.ok()?;
    if &fixed[..12] != b"\r\n\r\n\0\r\nQUIT\n" || fixed[12] != 0x21 {
        return None;
    }
    let mut block = vec![0u8; u16::from_be_bytes([fixed[14], fixed[15]]) as usize];
    r.read_exact(&mut block).await.ok()?;
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    let (s, d) = match fixed[13] {
        0x11 => {
            let ip = |at: usize| IpAddr::from(<[u8; 4]>::try_from(&block[at..at + 4]).unwrap());
            (
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            )
        }
        0x21 => {
            let ip = |at: usize| IpAddr::from(<[u8; 16]>::try_from(&block[at..at + 16]).unwrap());
            (
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            )
        }
        _ => return None,
    };
    Some((2, s, d))
}

/// A server that reads a PROXY header (recording what it says; a connection without a
/// valid one is closed), then echoes.
async fn proxied_echo() -> (SocketAddr, Told) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let told: Told = Arc::default();
    let t = told.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let t = t.clone();
            tokio::spawn(async move {
                let (read, mut write) = s.into_split();
                let mut read = BufReader::new(read);
                let Some(header) = read_header(&mut read).await else {
                    return;
                };
                t.lock().unwrap().push(header);
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    (addr, told)
}

/// A proxy with one TCP entrypoint `edge` (reading PROXY headers when `trust` is
/// given) and router `rule` to a service of `server` sending `version`.
async fn start(
    rule: &str,
    server: SocketAddr,
    version: Option<Version>,
    trust: Option<Trust>,
) -> (Arc<Proxy>, SocketAddr) {
    let mut tcp = TcpRoutes::default();
    tcp.routers
        .insert("r".into(), TcpRouter::new(rule, "s", TlsMode::Off).unwrap());
    tcp.services.insert(
        "s".into(),
        TcpService {
            servers: vec![Server::new(server, 1)],
            proxy_protocol: version,
        },
    );
    let proxy = Proxy::new(Default::default()).unwrap();
    proxy
        .update(Routes {
            tcp,
            ..Routes::default()
        })
        .unwrap();
    let entrypoints = BTreeMap::from([(
        "edge".to_string(),
        Entrypoint {
            proxy_protocol: trust,
            ..Entrypoint::new("127.0.0.1:0".parse().unwrap())
        },
    )]);
    let started = proxy.start_tcp(&entrypoints).await.unwrap();
    (proxy, started[0].address)
}

/// Sends `first` and `msg`; returns what came back (`msg`'s length), or `None` if the
/// connection closed first.
async fn exchange(edge: SocketAddr, first: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(edge).await.unwrap();
    s.write_all(first).await.ok()?;
    s.write_all(msg).await.ok()?;
    let mut back = vec![0u8; msg.len()];
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back)).await;
    matches!(read, Ok(Ok(_))).then_some(back)
}

#[tokio::test]
async fn a_tcp_service_sends_its_servers_the_client_in_a_proxy_header() {
    for (version, n) in [(Version::V1, 1), (Version::V2, 2)] {
        let (server, told) = proxied_echo().await;
        let (_p, edge) = start("HostSNI(`*`)", server, Some(version), None).await;
        let mut s = TcpStream::connect(edge).await.unwrap();
        let client = s.local_addr().unwrap();
        s.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            &back, b"hello",
            "the bytes after the header are the client's"
        );
        assert_eq!(told.lock().unwrap().clone(), vec![(n, client, edge)]);
    }
}

#[tokio::test]
async fn a_tcp_entrypoint_takes_a_trusted_relay_s_client_and_passes_it_on() {
    let (server, told) = proxied_echo().await;
    let trust = Trust::new("t", false, &["127.0.0.1"]).unwrap();
    let (_p, edge) = start(
        "ClientIP(`203.0.113.0/24`)",
        server,
        Some(Version::V1),
        Some(trust),
    )
    .await;
    let source: SocketAddr = "203.0.113.7:5555".parse().unwrap();
    let destination: SocketAddr = "198.51.100.1:443".parse().unwrap();
    let relayed = encode(
        Version::V2,
        &Header::Proxy {
            source,
            destination,
        },
    );
    let back = exchange(edge, &relayed, b"ping").await;
    assert_eq!(back.as_deref(), Some(&b"ping"[..]));
    assert_eq!(told.lock().unwrap().clone(), vec![(1, source, destination)]);
    // Without a header the peer is the client: ClientIP does not match it.
    assert_eq!(exchange(edge, b"", b"ping").await, None);
    // A malformed header closes the connection; the entrypoint keeps serving.
    assert_eq!(
        exchange(edge, b"PROXY TCP4 203.0.113.7 x 1 2\r\n", b"ping").await,
        None
    );
    assert_eq!(
        exchange(edge, &relayed, b"again").await.as_deref(),
        Some(&b"again"[..])
    );
    assert_eq!(told.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_untrusted_relay_s_header_is_dropped_and_the_peer_passed_on() {
    let (server, told) = proxied_echo().await;
    let trust = Trust::new("t", false, &["10.0.0.0/8"]).unwrap();
    let (_p, edge) = start("HostSNI(`*`)", server, Some(Version::V2), Some(trust)).await;
    let relayed = encode(
        Version::V1,
        &Header::Proxy {
            source: "203.0.113.7:5555".parse().unwrap(),
            destination: "198.51.100.1:443".parse().unwrap(),
        },
    );
    let mut s = TcpStream::connect(edge).await.unwrap();
    let client = s.local_addr().unwrap();
    s.write_all(&relayed).await.unwrap();
    s.write_all(b"data").await.unwrap();
    let mut back = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        &back, b"data",
        "the relay's header is not passed on as data"
    );
    assert_eq!(told.lock().unwrap().clone(), vec![(2, client, edge)]);
}

#[tokio::test]
async fn tls_passthrough_sends_the_header_then_the_client_s_tls_bytes() {
    // A TLS server for db.test that reads a PROXY header first.
    let c = rcgen::generate_simple_self_signed(vec!["db.test".to_string()]).unwrap();
    let config = shoal_ingress::tls::server_config_from_pem(&[(
        "db.test".to_string(),
        c.cert.pem().into_bytes(),
        c.signing_key.serialize_pem().into_bytes(),
    )])
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let told: Told = Arc::default();
    let t = told.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let mut s = BufReader::new(s);
            let Some(header) = read_header(&mut s).await else {
                continue;
            };
            t.lock().unwrap().push(header);
            // The ClientHello came with the header: what the reader holds goes first.
            let held = std::io::Cursor::new(s.buffer().to_vec());
            let (read, write) = s.into_inner().into_split();
            let io = tokio::io::join(held.chain(read), write);
            let Ok(mut tls) = acceptor.accept(io).await else {
                continue;
            };
            let mut buf = [0u8; 4];
            if tls.read_exact(&mut buf).await.is_ok() {
                let _ = tls.write_all(&buf).await;
                let _ = tls.shutdown().await;
            }
        }
    });
    let mut tcp = TcpRoutes::default();
    tcp.routers.insert(
        "db".into(),
        TcpRouter::new("HostSNI(`db.test`)", "s", TlsMode::Passthrough).unwrap(),
    );
    tcp.services.insert(
        "s".into(),
        TcpService {
            servers: vec![Server::new(server, 1)],
            proxy_protocol: Some(Version::V1),
        },
    );
    let proxy = Proxy::new(Default::default()).unwrap();
    proxy
        .update(Routes {
            tcp,
            ..Routes::default()
        })
        .unwrap();
    let entrypoints = BTreeMap::from([(
        "edge".to_string(),
        Entrypoint::new("127.0.0.1:0".parse().unwrap()),
    )]);
    let edge = proxy.start_tcp(&entrypoints).await.unwrap()[0].address;
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(shoal_tests::tls::trust_any_server()));
    let stream = TcpStream::connect(edge).await.unwrap();
    let client = stream.local_addr().unwrap();
    let name = rustls::pki_types::ServerName::try_from("db.test").unwrap();
    let mut tls = connector.connect(name, stream).await.unwrap();
    tls.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"ping");
    assert_eq!(told.lock().unwrap().clone(), vec![(1, client, edge)]);
}
