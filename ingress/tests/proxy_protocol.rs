//! PROXY headers and forwarding headers on HTTP entrypoints, end to end on loopback,
//! configured by the file (`entrypoints.<name>.proxyProtocol` / `.forwardedHeaders`),
//! on the fast path and on hyper's.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use shoal_ingress::config::ProxyConfig;
use shoal_ingress::proxy_protocol::{encode, Header, Version};
use shoal_ingress::{Proxy, ProxyOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A backend that answers with the forwarding headers it got.
async fn facts_backend() -> SocketAddr {
    backend(|req| async move {
        let h = req.headers();
        let get = |k: &str| {
            h.get(k)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        reply(
            200,
            &format!(
                "xff={} real={} proto={}",
                get("x-forwarded-for"),
                get("x-real-ip"),
                get("x-forwarded-proto")
            ),
        )
    })
    .await
}

/// A proxy from `entrypoint` (the `[entrypoints.web]` table's extra lines) with
/// routes to `backend`: `/` to it, `/guarded` through an ipAllowList of
/// 203.0.113.0/24.
async fn start(entrypoint: &str, backend: SocketAddr, fast_path: bool) -> (Arc<Proxy>, SocketAddr) {
    let toml = format!(
        r#"
[entrypoints.web]
address = "127.0.0.1:0"
{entrypoint}

[routers.all]
rule = "PathPrefix(`/`)"
service = "s"

[routers.guarded]
rule = "PathPrefix(`/guarded`)"
service = "s"
middlewares = ["allow"]

[middlewares.allow.ipAllowList]
sourceRange = ["203.0.113.0/24"]

[services.s]
servers = [{{ url = "http://{backend}" }}]
"#
    );
    let config = ProxyConfig::from_toml(&toml, "t.toml").unwrap();
    let proxy = Proxy::new(ProxyOptions {
        fast_path,
        header_read_timeout: Duration::from_millis(500),
        ..ProxyOptions::default()
    })
    .unwrap();
    proxy.update(config.routes).unwrap();
    let started = proxy.start(&config.entrypoints).await.unwrap();
    (proxy, started[0].address)
}

/// Sends `first` then a GET of `path` (with `extra` header lines) on one connection;
/// the status and body, or `None` if the proxy closed without answering.
async fn request(
    proxy: SocketAddr,
    first: &[u8],
    path: &str,
    extra: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let mut bytes = first.to_vec();
    bytes.extend_from_slice(
        format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n{extra}\r\n").as_bytes(),
    );
    s.write_all(&bytes).await.unwrap();
    read_response(&mut s).await
}

/// One response framed by Content-Length.
async fn read_response(s: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let status = head.get(9..12)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]);
                return Some((status, body.trim_end().to_string()));
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await;
        match read {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

fn relayed(version: Version) -> Vec<u8> {
    let header = Header::Proxy {
        source: "203.0.113.7:5555".parse().unwrap(),
        destination: "198.51.100.1:80".parse().unwrap(),
    };
    encode(version, &header)
}

const TRUST_LOOPBACK: &str = r#"proxyProtocol = { trustedIPs = ["127.0.0.1"] }"#;

#[tokio::test]
async fn a_trusted_relay_s_proxy_header_names_the_client_everywhere() {
    let echo = facts_backend().await;
    for fast_path in [true, false] {
        let (_p, addr) = start(TRUST_LOOPBACK, echo, fast_path).await;
        for version in [Version::V1, Version::V2] {
            let got = request(addr, &relayed(version), "/", "").await;
            assert_eq!(
                got,
                Some((200, "xff=203.0.113.7 real=203.0.113.7 proto=http".into())),
                "{version:?}, fast path {fast_path}"
            );
            // ipAllowList judges the client the header named.
            let got = request(addr, &relayed(version), "/guarded", "").await;
            assert_eq!(got.map(|g| g.0), Some(200), "{version:?}");
        }
        // Without a header the peer is the client, and the allow list refuses it.
        let got = request(addr, b"", "/", "").await;
        assert_eq!(
            got,
            Some((200, "xff=127.0.0.1 real=127.0.0.1 proto=http".into()))
        );
        let got = request(addr, b"", "/guarded", "").await;
        assert_eq!(got.map(|g| g.0), Some(403));
    }
}

#[tokio::test]
async fn an_untrusted_peer_s_proxy_header_is_read_and_ignored() {
    let echo = facts_backend().await;
    for fast_path in [true, false] {
        let entrypoint = r#"proxyProtocol = { trustedIPs = ["10.0.0.0/8"] }"#;
        let (_p, addr) = start(entrypoint, echo, fast_path).await;
        for version in [Version::V1, Version::V2] {
            let got = request(addr, &relayed(version), "/", "").await;
            assert_eq!(
                got,
                Some((200, "xff=127.0.0.1 real=127.0.0.1 proto=http".into())),
                "{version:?}"
            );
            let got = request(addr, &relayed(version), "/guarded", "").await;
            assert_eq!(got.map(|g| g.0), Some(403), "{version:?}");
        }
    }
}

#[tokio::test]
async fn a_v2_local_header_keeps_the_peer_as_the_client() {
    let echo = facts_backend().await;
    let (_p, addr) = start(TRUST_LOOPBACK, echo, true).await;
    let local = encode(Version::V2, &Header::Local);
    let got = request(addr, &local, "/", "").await;
    assert_eq!(
        got,
        Some((200, "xff=127.0.0.1 real=127.0.0.1 proto=http".into()))
    );
    let got = request(addr, b"PROXY UNKNOWN\r\n", "/", "").await;
    assert_eq!(
        got.map(|g| g.1),
        Some("xff=127.0.0.1 real=127.0.0.1 proto=http".into())
    );
}

#[tokio::test]
async fn malformed_or_truncated_headers_close_the_connection_and_the_listener_keeps_serving() {
    let echo = facts_backend().await;
    for fast_path in [true, false] {
        let (_p, addr) = start(TRUST_LOOPBACK, echo, fast_path).await;
        let mut bad_v2 = relayed(Version::V2);
        bad_v2[12] = 0x31; // version 3
        for bad in [
            &b"PROXY TCP4 203.0.113.7 nowhere 5555 80\r\n"[..],
            b"PROXY TCP4 203.0.113.7 198.51.100.1 5555 80\n",
            &bad_v2,
        ] {
            let got = request(addr, bad, "/", "").await;
            assert_eq!(got, None, "{bad:?}");
        }
        // Cut short: the client closes its side inside the header.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PROXY TCP4 203.0.").await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert_eq!(read.unwrap().unwrap(), 0, "closed with nothing written");
        let got = request(addr, &relayed(Version::V1), "/", "").await;
        assert_eq!(got.map(|g| g.0), Some(200), "the listener still serves");
    }
}

#[tokio::test]
async fn untrusted_clients_cannot_spoof_forwarding_headers() {
    let echo = facts_backend().await;
    let spoof =
        "X-Forwarded-For: 198.51.100.9\r\nX-Real-Ip: 198.51.100.9\r\nX-Forwarded-Proto: https\r\n";
    for fast_path in [true, false] {
        // Træfik's default: nobody is trusted.
        let (_p, addr) = start("", echo, fast_path).await;
        let got = request(addr, b"", "/", spoof).await;
        assert_eq!(
            got,
            Some((200, "xff=127.0.0.1 real=127.0.0.1 proto=http".into())),
            "fast path {fast_path}"
        );
        // ipAllowList with the default strategy never reads X-Forwarded-For, and a
        // depth strategy would find the spoofed entry gone.
        let got = request(addr, b"", "/guarded", "X-Forwarded-For: 203.0.113.9\r\n").await;
        assert_eq!(got.map(|g| g.0), Some(403));
        // Trusted by address: kept and extended.
        let trusted = r#"forwardedHeaders = { trustedIPs = ["127.0.0.0/8"] }"#;
        let (_p, addr) = start(trusted, echo, fast_path).await;
        let got = request(addr, b"", "/", spoof).await;
        assert_eq!(
            got,
            Some((
                200,
                "xff=198.51.100.9, 127.0.0.1 real=198.51.100.9 proto=https".into()
            ))
        );
        // Insecure: everyone's are kept.
        let (_p, addr) = start("forwardedHeaders = { insecure = true }", echo, fast_path).await;
        let got = request(addr, b"", "/", spoof).await;
        assert_eq!(
            got.map(|g| g.1),
            Some("xff=198.51.100.9, 127.0.0.1 real=198.51.100.9 proto=https".into())
        );
    }
}

#[tokio::test]
async fn forwarding_headers_are_trusted_by_the_client_the_proxy_header_names() {
    let echo = facts_backend().await;
    let entrypoint =
        format!("{TRUST_LOOPBACK}\nforwardedHeaders = {{ trustedIPs = [\"203.0.113.0/24\"] }}");
    let (_p, addr) = start(&entrypoint, echo, true).await;
    let spoof = "X-Forwarded-For: 198.51.100.9\r\n";
    let got = request(addr, &relayed(Version::V2), "/", spoof).await;
    assert_eq!(
        got.map(|g| g.1),
        Some("xff=198.51.100.9, 203.0.113.7 real=203.0.113.7 proto=http".into())
    );
    let got = request(addr, b"", "/", spoof).await;
    assert_eq!(
        got.map(|g| g.1),
        Some("xff=127.0.0.1 real=127.0.0.1 proto=http".into())
    );
}

#[tokio::test]
async fn a_tls_entrypoint_reads_the_proxy_header_before_the_handshake() {
    let echo = facts_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("a.crt"), dir.path().join("a.key"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    let entrypoint = format!(
        "{TRUST_LOOPBACK}\ntls = {{ certificates = [{{ cert_file = {:?}, key_file = {:?} }}] }}",
        cert.display().to_string(),
        key.display().to_string()
    );
    for fast_path in [true, false] {
        let (_p, addr) = start(&entrypoint, echo, fast_path).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        // The header and the ClientHello may well arrive in one segment.
        tcp.write_all(&relayed(Version::V2)).await.unwrap();
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(shoal_tests::tls::trust_any_server()));
        let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.ends_with("xff=203.0.113.7 real=203.0.113.7 proto=https"),
            "{text}"
        );
    }
}
