//! The handshake client: new TLS 1.3 connections, each with one HTTP/1.1 request (so
//! the tickets sent after the handshake are read), [`CONCURRENCY`] at a time, from one
//! thread pinned to core 1.
//!
//! It is the same client for every server, and it is made cheap so the server's core
//! is the one that runs out: X25519 key exchange, as both servers prefer, and no check
//! of the server's certificate or handshake signature (a load generator trusts its
//! target), so the client's share of a handshake is the key exchange and the record
//! encryption. Each of its connection loops keeps its own session store, so with
//! resumption every connection but a loop's first offers a ticket; how many servers
//! took is counted.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::load::Sample;

/// Connections in flight at once.
pub(super) const CONCURRENCY: usize = 32;
/// The request on each connection.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n";

/// What a run of the client saw.
#[derive(Debug, Default)]
pub(super) struct Handshakes {
    /// Connections that completed their handshake and request.
    pub done: u64,
    /// Of those, resumed handshakes.
    pub resumed: u64,
    /// Connections that failed, and the last error.
    pub failed: u64,
    pub last_error: Option<String>,
    /// Each done connection's time from connect to the response's end, µs, sorted.
    pub latencies_us: Vec<u32>,
    pub elapsed: Duration,
}

impl Handshakes {
    /// Per second, and the latency percentiles.
    pub fn sample(&self) -> Sample {
        let pct = |p: usize| {
            let l = &self.latencies_us;
            if l.is_empty() {
                f64::NAN
            } else {
                f64::from(l[(l.len() * p / 100).min(l.len() - 1)]) / 1000.0
            }
        };
        Sample {
            rps: self.done as f64 / self.elapsed.as_secs_f64().max(1e-9),
            p50_ms: pct(50),
            p99_ms: pct(99),
            bytes_per_sec: f64::NAN,
            load_core_busy: f64::NAN,
        }
    }

    /// Refuses a run with failures, or whose handshakes did not resume as asked: with
    /// `resume`, all but each loop's first connection must resume (95 % at least, a
    /// ticket may be refused now and then); without, none may.
    pub fn check(&self, resume: bool) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.failed == 0 && self.done > 0,
            "{} of {} connections failed (last: {})",
            self.failed,
            self.done + self.failed,
            self.last_error.as_deref().unwrap_or("none")
        );
        let could = self.done.saturating_sub(CONCURRENCY as u64);
        if resume {
            anyhow::ensure!(
                self.resumed * 100 >= could * 95,
                "only {} of {} handshakes resumed (a ticket was offered in {could})",
                self.resumed,
                self.done
            );
        } else {
            anyhow::ensure!(
                self.resumed == 0,
                "{} handshakes resumed with resumption off",
                self.resumed
            );
        }
        Ok(())
    }

    fn merge(&mut self, other: Handshakes) {
        self.done += other.done;
        self.resumed += other.resumed;
        self.failed += other.failed;
        if other.last_error.is_some() {
            self.last_error = other.last_error;
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

/// Runs the client for `duration` against 127.0.0.1:`port` inside `ns`, from a thread
/// pinned to core 1.
pub(super) fn run(
    ns: &Path,
    port: u16,
    resume: bool,
    duration: Duration,
) -> anyhow::Result<Handshakes> {
    let run = shoal_bench::net::in_netns(ns, move || {
        let mut one = nix::sched::CpuSet::new();
        one.set(1).map_err(std::io::Error::other)?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &one)
            .map_err(std::io::Error::other)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(runtime.block_on(drive(port, resume, duration)))
    })?;
    Ok(run)
}

async fn drive(port: u16, resume: bool, duration: Duration) -> Handshakes {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let start = Instant::now();
    let deadline = start + duration;
    let loops = (0..CONCURRENCY).map(|_| connections(addr, client_config(resume), deadline));
    let mut total = Handshakes::default();
    for h in futures::future::join_all(loops).await {
        total.merge(h);
    }
    total.elapsed = start.elapsed();
    total.latencies_us.sort_unstable();
    total
}

/// One loop: connection after connection until `deadline`.
async fn connections(addr: SocketAddr, config: Arc<ClientConfig>, deadline: Instant) -> Handshakes {
    let connector = TlsConnector::from(config);
    let name = ServerName::try_from("bench.test").expect("a valid DNS name");
    let mut h = Handshakes::default();
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        let start = Instant::now();
        match one(&connector, addr, name.clone(), &mut buf).await {
            Ok(kind) => {
                h.done += 1;
                h.resumed += u64::from(kind == Some(HandshakeKind::Resumed));
                h.latencies_us
                    .push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            Err(e) => {
                h.failed += 1;
                h.last_error = Some(e.to_string());
            }
        }
    }
    h
}

/// One connection: handshake, one request, its whole response, close_notify.
async fn one(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: ServerName<'static>,
    buf: &mut [u8],
) -> std::io::Result<Option<HandshakeKind>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(REQUEST).await?;
    let mut got = 0;
    loop {
        if got == buf.len() {
            return Err(std::io::Error::other("response head too large"));
        }
        let n = tls.read(&mut buf[got..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
        if let Some(want) = response_length(&buf[..got]).map_err(std::io::Error::other)? {
            if got >= want {
                break;
            }
        }
    }
    let kind = tls.get_ref().1.handshake_kind();
    tls.shutdown().await?;
    Ok(kind)
}

/// The whole length (head and body) of the response starting `buf`, once its head is
/// in; an error for a status other than 200 or a response without Content-Length.
fn response_length(buf: &[u8]) -> Result<Option<usize>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered {status:?}"));
    }
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
    Ok(Some(end + 4 + length))
}

/// TLS 1.3 only, ALPN http/1.1, sessions resumed or not, any server believed.
fn client_config(resume: bool) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unchecked(schemes)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = if resume {
        Resumption::in_memory_sessions(4)
    } else {
        Resumption::disabled()
    };
    Arc::new(config)
}

/// Believes the server's certificate and handshake signature without checking them.
#[derive(Debug)]
struct Unchecked(Vec<SignatureScheme>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed_by_content_length() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nServer: x\r\n\r\n";
        assert_eq!(response_length(&head[..10]), Ok(None));
        assert_eq!(response_length(head), Ok(Some(head.len() + 5)));
        let e = response_length(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").unwrap_err();
        assert!(e.contains("502"), "{e}");
        let e = response_length(b"HTTP/1.1 200 OK\r\n\r\n").unwrap_err();
        assert!(e.contains("no Content-Length"), "{e}");
    }

    #[test]
    fn resumption_is_checked_both_ways() {
        let run = |done, resumed, failed| Handshakes {
            done,
            resumed,
            failed,
            elapsed: Duration::from_secs(1),
            latencies_us: vec![100, 200, 300, 400],
            ..Handshakes::default()
        };
        assert!(run(1032, 1000, 0).check(true).is_ok());
        assert!(run(1032, 500, 0).check(true).is_err());
        assert!(run(1032, 0, 0).check(false).is_ok());
        assert!(run(1032, 1, 0).check(false).is_err());
        assert!(run(1032, 0, 1).check(false).is_err());
        assert!(run(0, 0, 0).check(false).is_err());
        let s = run(1032, 0, 0).sample();
        assert_eq!((s.rps, s.p50_ms, s.p99_ms), (1032.0, 0.3, 0.4));
    }
}
