//! TLS at the edge: sessions resume by ticket (one per handshake, as Go sends), HTTP/2
//! chosen by ALPN carries many streams of one connection to an HTTP/1.1 backend, large
//! bodies arrive whole, and unusable certificate files stop the start with the
//! entrypoint and the file named.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::{HandshakeKind, NamedGroup, ProtocolVersion};
use shoal_ingress::config::Entrypoint;
use tokio::net::{TcpListener, TcpStream};

/// A client's session store that counts the TLS 1.3 tickets it was given.
#[derive(Debug)]
struct CountingStore {
    inner: ClientSessionMemoryCache,
    tickets: AtomicUsize,
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(name, group)
    }
    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(name)
    }
    fn set_tls12_session(
        &self,
        name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(name, value)
    }
    fn tls12_session(
        &self,
        name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.inner.remove_tls12_session(name)
    }
    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.tickets.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_tls13_ticket(name, value)
    }
    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(name)
    }
}

/// A self-signed certificate for `host` in `dir`: its (certificate, key) files.
fn self_signed(dir: &std::path::Path, host: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let c = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    let (cert, key) = (
        dir.join(format!("{host}.crt")),
        dir.join(format!("{host}.key")),
    );
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// A proxy on an ephemeral port terminating TLS with a certificate for `a.test`, routing
/// everything to `backend`.
async fn tls_proxy(dir: &std::path::Path, backend: std::net::SocketAddr) -> std::net::SocketAddr {
    let config = shoal_ingress::tls::server_config(&[self_signed(dir, "a.test")]).unwrap();
    let proxy = shoal_ingress::Proxy::new(Default::default()).unwrap();
    proxy
        .update(routes(
            &[("a", "PathPrefix(`/`)", "a")],
            vec![("a", Service::over(&[backend]))],
        ))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.serve("websecure", listener, Some(config)));
    addr
}

/// One TLS connection with `config`, one HTTP/1.1 request on it (so the client reads
/// the tickets sent after the handshake): how the handshake went and the version.
async fn one_request(
    addr: std::net::SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> (HandshakeKind, ProtocolVersion) {
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("a.test").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (_, conn) = tls.get_ref();
    let kind = conn.handshake_kind().unwrap();
    let version = conn.protocol_version().unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    let req = Request::get("/")
        .header("host", "a.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "a");
    drop(sender);
    let _ = task.await;
    (kind, version)
}

fn client(
    versions: &[&'static rustls::SupportedProtocolVersion],
    store: Arc<CountingStore>,
) -> Arc<rustls::ClientConfig> {
    let mut config = shoal_tests::tls::trust_any_server_speaking(versions);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::store(store);
    Arc::new(config)
}

#[tokio::test]
async fn tls13_sessions_resume_by_ticket_one_ticket_per_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let addr = tls_proxy(dir.path(), named("a").await).await;
    let store = Arc::new(CountingStore {
        inner: ClientSessionMemoryCache::new(16),
        tickets: AtomicUsize::new(0),
    });
    let config = client(&[&rustls::version::TLS13], store.clone());
    let first = one_request(addr, &config).await;
    assert_eq!(first, (HandshakeKind::Full, ProtocolVersion::TLSv1_3));
    assert_eq!(
        store.tickets.load(Ordering::SeqCst),
        1,
        "tickets after a full handshake"
    );
    for n in 2..=3 {
        let again = one_request(addr, &config).await;
        assert_eq!(
            again,
            (HandshakeKind::Resumed, ProtocolVersion::TLSv1_3),
            "connection {n}"
        );
        assert_eq!(
            store.tickets.load(Ordering::SeqCst),
            n,
            "tickets after connection {n}"
        );
    }

    // Another proxy (its own ticket key) does not take these tickets: a full handshake.
    let other = tls_proxy(dir.path(), named("a").await).await;
    assert_eq!(one_request(other, &config).await.0, HandshakeKind::Full);
}

#[tokio::test]
async fn tls12_sessions_resume() {
    let dir = tempfile::tempdir().unwrap();
    let addr = tls_proxy(dir.path(), named("a").await).await;
    let store = Arc::new(CountingStore {
        inner: ClientSessionMemoryCache::new(16),
        tickets: AtomicUsize::new(0),
    });
    let config = client(&[&rustls::version::TLS12], store);
    let first = one_request(addr, &config).await;
    assert_eq!(first, (HandshakeKind::Full, ProtocolVersion::TLSv1_2));
    let again = one_request(addr, &config).await;
    assert_eq!(again, (HandshakeKind::Resumed, ProtocolVersion::TLSv1_2));
}

/// 64 requests at once on one HTTP/2 connection chosen by ALPN, each proxied to an
/// HTTP/1.1 backend; a 1 MB response arrives whole over the same connection.
#[tokio::test]
async fn h2_by_alpn_carries_many_streams_to_an_http1_backend() {
    const BIG: usize = 1 << 20;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let backend = backend(move |req| {
        let s = s.clone();
        async move {
            s.lock()
                .unwrap()
                .push((req.version(), req.uri().path().to_string()));
            if req.uri().path() == "/big" {
                let body: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
                return http::Response::new(Full::new(Bytes::from(body)));
            }
            reply(200, "a")
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let addr = tls_proxy(dir.path(), backend).await;

    let mut config = shoal_tests::tls::trust_any_server();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("a.test").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let requests = (0..64).map(|i| {
        let mut sender = sender.clone();
        async move {
            let req = Request::get(format!("https://a.test/{i}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(
                (resp.status(), resp.version()),
                (StatusCode::OK, http::Version::HTTP_2)
            );
            resp.into_body().collect().await.unwrap().to_bytes()
        }
    });
    let bodies = futures::future::join_all(requests).await;
    assert!(bodies.iter().all(|b| b == "a"), "{bodies:?}");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 64);
        assert!(
            seen.iter().all(|(v, _)| *v == http::Version::HTTP_11),
            "{seen:?}"
        );
    }

    let req = Request::get("https://a.test/big")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.clone().send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), BIG);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[tokio::test]
async fn unusable_certificate_files_stop_the_start_naming_entrypoint_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "a.test");
    let (_, other_key) = self_signed(dir.path(), "b.test");
    let missing = dir.path().join("missing.crt");
    let cases = [
        (
            (missing.clone(), key.clone()),
            format!("entrypoint websecure: {}: ", missing.display()),
        ),
        (
            (cert.clone(), other_key),
            "key does not match certificate".to_string(),
        ),
        (
            (cert.clone(), cert.clone()),
            "no private key in PEM".to_string(),
        ),
        (
            (key.clone(), key.clone()),
            "no certificate in PEM".to_string(),
        ),
    ];
    for ((c, k), want) in cases {
        let mut ep = Entrypoint::new("127.0.0.1:0".parse().unwrap());
        ep.certificates = vec![(c, k)];
        let entrypoints = BTreeMap::from([("websecure".to_string(), ep)]);
        let proxy = shoal_ingress::Proxy::new(Default::default()).unwrap();
        let Err(e) = proxy.start(&entrypoints).await else {
            panic!("started with unusable files; wanted {want:?}");
        };
        let e = e.to_string();
        assert!(
            e.starts_with("entrypoint websecure: ") && e.contains(&want),
            "{e}, wanted {want:?}"
        );
    }
}
