//! `shoal bench ingress --tls` and `--h2`: TLS and HTTP/2 at the edge, shoal's proxy
//! against HAProxy (OpenSSL), same certificates, same nginx backend, same pinning:
//!
//! ```text
//!  --tls  keep-alive    wrk over TLS 1.3 (ECDSA P-256)             req/s, p50, p99
//!         1 MB bodies   wrk over TLS 1.3, /1m.bin                  Gbit/s
//!         handshakes    the bench's client, a connection a request  ECDSA P-256, RSA 2048,
//!                                                                   full and resumed
//!  --h2   HTTP/2        h2load -c10 -m100 over TLS (ALPN h2)        req/s
//! ```
//! The certificates are made for the run by `openssl req`. Before measuring, curl
//! fetches through each contender once, proving it answers over TLS (HTTP/2 where asked)
//! with the backend's whole body.

use super::*;

/// A certificate and its key as PEM files, and both in one (HAProxy's `crt`).
pub(super) struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub combined: PathBuf,
}

/// The server keys measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    EcdsaP256,
    Rsa2048,
}

impl Key {
    fn label(self) -> &'static str {
        match self {
            Key::EcdsaP256 => "ECDSA P-256",
            Key::Rsa2048 => "RSA 2048",
        }
    }

    /// `openssl req`'s arguments for a new key of this type.
    fn newkey(self) -> &'static [&'static str] {
        match self {
            Key::EcdsaP256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Key::Rsa2048 => &["-newkey", "rsa:2048"],
        }
    }
}

/// A self-signed certificate for `bench.test` with a new `key`, in `dir`.
fn make_cert(openssl: &Path, dir: &Path, key: Key) -> anyhow::Result<Cert> {
    let stem = match key {
        Key::EcdsaP256 => "ecdsa",
        Key::Rsa2048 => "rsa",
    };
    let cert = Cert {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
        combined: dir.join(format!("{stem}.pem")),
    };
    let out = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "3",
            "-subj",
            "/CN=bench.test",
        ])
        .args(["-addext", "subjectAltName=DNS:bench.test"])
        .args(key.newkey())
        .arg("-keyout")
        .arg(&cert.key)
        .arg("-out")
        .arg(&cert.cert)
        .output()
        .context("cannot run openssl")?;
    anyhow::ensure!(
        out.status.success(),
        "openssl req ({}): {}",
        key.label(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let mut both = std::fs::read(&cert.cert)?;
    both.extend(std::fs::read(&cert.key)?);
    std::fs::write(&cert.combined, both)?;
    Ok(cert)
}

/// One comparison of shoal with HAProxy.
struct Comparison {
    /// The figure's name in the report.
    figure: &'static str,
    /// Measured by `--h2` (else by `--tls`).
    h2: bool,
    load: Load,
    path: &'static str,
    key: Key,
    shoal: &'static str,
    haproxy: &'static str,
}

const HANDSHAKES: &str = "new TLS 1.3 connections/s (one request each)";

const COMPARISONS: [Comparison; 7] = [
    Comparison {
        figure: "requests/s over TLS 1.3, keep-alive",
        h2: false,
        load: Load::Wrk,
        path: "/",
        key: Key::EcdsaP256,
        shoal: "shoal, TLS keep-alive",
        haproxy: "HAProxy, TLS keep-alive",
    },
    Comparison {
        figure: "throughput, 1 MB responses over TLS 1.3",
        h2: false,
        load: Load::Wrk,
        path: LARGE,
        key: Key::EcdsaP256,
        shoal: "shoal, 1 MB",
        haproxy: "HAProxy, 1 MB",
    },
    Comparison {
        figure: "ECDSA P-256, full handshakes",
        h2: false,
        load: Load::Handshakes { resume: false },
        path: "/",
        key: Key::EcdsaP256,
        shoal: "shoal, ECDSA full",
        haproxy: "HAProxy, ECDSA full",
    },
    Comparison {
        figure: "ECDSA P-256, resumed",
        h2: false,
        load: Load::Handshakes { resume: true },
        path: "/",
        key: Key::EcdsaP256,
        shoal: "shoal, ECDSA resumed",
        haproxy: "HAProxy, ECDSA resumed",
    },
    Comparison {
        figure: "RSA 2048, full handshakes",
        h2: false,
        load: Load::Handshakes { resume: false },
        path: "/",
        key: Key::Rsa2048,
        shoal: "shoal, RSA full",
        haproxy: "HAProxy, RSA full",
    },
    Comparison {
        figure: "RSA 2048, resumed",
        h2: false,
        load: Load::Handshakes { resume: true },
        path: "/",
        key: Key::Rsa2048,
        shoal: "shoal, RSA resumed",
        haproxy: "HAProxy, RSA resumed",
    },
    Comparison {
        figure: "HTTP/2 requests/s over TLS",
        h2: true,
        load: Load::H2load,
        path: "/",
        key: Key::EcdsaP256,
        shoal: "shoal, HTTP/2",
        haproxy: "HAProxy, HTTP/2",
    },
];

/// The first port of the contenders (two per comparison).
const FIRST_PORT: u16 = 8090;

/// The comparisons `options` asks for.
fn selected(options: Options) -> impl Iterator<Item = (usize, &'static Comparison)> {
    COMPARISONS
        .iter()
        .enumerate()
        .filter(move |(_, c)| if c.h2 { options.h2 } else { options.tls })
}

/// A comparison's medians: shoal's and HAProxy's.
struct Measured {
    comparison: &'static Comparison,
    shoal: Sample,
    haproxy: Sample,
}

/// Runs the comparisons `options` asks for.
pub(super) fn run(setup: &Setup, openssl: &Path, options: Options) -> anyhow::Result<Report> {
    let (ns, dir) = (setup.ns.as_path(), setup.dir.as_path());
    let curl = apt("curl", "curl")?;
    let large: Vec<u8> = (0..LARGE_BYTES).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join(LARGE.trim_start_matches('/')), large)?;
    let certs = [
        make_cert(openssl, dir, Key::EcdsaP256)?,
        make_cert(openssl, dir, Key::Rsa2048)?,
    ];
    let mut measured = Vec::new();
    for (i, c) in selected(options) {
        eprintln!("bench ingress: {} ...", c.figure);
        let cert = &certs[usize::from(c.key == Key::Rsa2048)];
        let port = FIRST_PORT + 2 * i as u16;
        let target = |port| Target {
            port,
            https: true,
            path: c.path,
            header: None,
            load: c.load,
        };
        let group = vec![
            shoal(dir, c.shoal, target(port), &[], Some(cert))?,
            haproxy(
                dir,
                c.haproxy,
                &setup.haproxy,
                target(port + 1),
                "",
                Some(cert),
            )?,
        ];
        let running = launch(ns, group)?;
        for r in &running {
            check(&curl, ns, &r.contender, c.h2)?;
        }
        let medians = measure(&setup.tools, ns, running)?;
        measured.push(Measured {
            comparison: c,
            shoal: medians[0].1,
            haproxy: medians[1].1,
        });
    }
    Ok(report(&measured, &versions(&setup.haproxy)))
}

/// One request through `c` with curl over TLS (HTTP/2 if `h2`, else HTTP/1.1): it must
/// answer 200 with the backend's whole body.
fn check(curl: &Path, ns: &Path, c: &Contender, h2: bool) -> anyhow::Result<()> {
    let t = c.target;
    let mut cmd = Command::new(curl);
    cmd.args(["-sk", "--max-time", "10", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{size_download} %{http_version}"])
        .arg(if h2 { "--http2" } else { "--http1.1" })
        .arg(format!("https://127.0.0.1:{}{}", t.port, t.path));
    netns::command_in(&mut cmd, &netns::open(&ns.to_string_lossy())?, false)?;
    let out = cmd.output().context("cannot run curl")?;
    let got = String::from_utf8_lossy(&out.stdout).into_owned();
    let size = if t.path == LARGE { LARGE_BYTES } else { 100 };
    let want = format!("200 {size} {}", if h2 { "2" } else { "1.x" });
    let version_ok = |v: &str| if h2 { v == "2" } else { v.starts_with('1') };
    let ok = got
        .rsplit_once(' ')
        .is_some_and(|(head, v)| head == format!("200 {size}") && version_ok(v));
    anyhow::ensure!(
        ok,
        "{}: curl https://127.0.0.1:{}{} got {got:?} (code, bytes, HTTP version), wanted {want:?}: {}",
        c.label,
        t.port,
        t.path,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// HAProxy's version and the OpenSSL it runs on, from `haproxy -vv`.
fn versions(haproxy: &Path) -> String {
    let out = Command::new(haproxy)
        .arg("-vv")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    haproxy_versions(&out)
}

fn haproxy_versions(vv: &str) -> String {
    let version = vv
        .lines()
        .find_map(|l| l.strip_prefix("HAProxy version "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("?");
    let openssl = vv
        .lines()
        .find_map(|l| l.trim().strip_prefix("Running on OpenSSL version :"))
        .map_or("?", str::trim);
    format!("HAProxy {version} on {openssl}")
}

/// The report: each comparison's figures, shoal against HAProxy.
fn report(measured: &[Measured], versions: &str) -> Report {
    let pace = load::pace();
    let peer = "HAProxy (OpenSSL)";
    let mut r = Report::new("ingress");
    let mut busy = Vec::new();
    for m in measured {
        let (c, s, h) = (m.comparison, &m.shoal, &m.haproxy);
        match c.load {
            Load::Wrk if c.path == LARGE => {
                r.add(
                    c.figure,
                    s.bytes_per_sec * 8e-9,
                    "Gbit/s",
                    peer,
                    h.bytes_per_sec * 8e-9,
                );
                r.add(
                    "latency p99, 1 MB responses",
                    s.p99_ms,
                    "ms",
                    peer,
                    h.p99_ms,
                );
            }
            Load::Wrk => add_pair(
                &mut r,
                [
                    c.figure,
                    "latency p50, TLS keep-alive",
                    "latency p99, TLS keep-alive",
                ],
                s,
                peer,
                h,
            ),
            Load::Handshakes { .. } => {
                let name = format!("{HANDSHAKES}, {}", c.figure);
                r.add(&name, s.rps, "conn/s", peer, h.rps);
            }
            Load::H2load => r.add(c.figure, s.rps, "req/s", peer, h.rps),
        }
        busy.push(format!(
            "{} {:.0} % / {:.0} %",
            c.figure,
            s.load_core_busy * 100.0,
            h.load_core_busy * 100.0
        ));
    }
    r.notes.push(format!(
        "TLS at the edge: shoal proxy --threads 1 --config (an entrypoint with tls.certificates; its defaults: TLS 1.2 and 1.3, ALPN h2 and http/1.1, stateless session tickets, one per handshake) against {versions}, nbthread 1, `bind ... ssl crt ... alpn h2,http/1.1` (its defaults: session cache and tickets on), http-reuse always; both to the same nginx backend (keep-alive, 1 worker), proxies pinned to core 0, load generators and backend on core 1, certificates made by openssl req for the run (self-signed, bench.test). Each comparison in its own {} interleaved rounds in rotating order, {}s runs after {}s unmeasured warm-ups, medians. Goals: ≥ 1.0× HAProxy (p99 no worse for keep-alive).",
        rounds(2),
        pace.run.as_secs(),
        pace.warm_up.as_secs()
    ));
    if measured.iter().any(|m| m.comparison.load == Load::Wrk) {
        r.notes.push(format!(
            "Keep-alive and 1 MB figures: wrk -t1 -c{WRK_CONNECTIONS} --latency over https (OpenSSL client, TLS 1.3, X25519, AES-256-GCM by both servers' choice); the backend's 100-byte body at /, {LARGE_BYTES} bytes at {LARGE}; Gbit/s from wrk's Transfer/sec."
        ));
    }
    if measured
        .iter()
        .any(|m| matches!(m.comparison.load, Load::Handshakes { .. }))
    {
        r.notes.push(format!(
            "Handshakes: the bench's own client (rustls, one thread on core 1, {} connections at once), each connection a TLS 1.3 handshake (X25519), one HTTP/1.1 request and its 100-byte response, close_notify; it checks no certificate or signature (the server's signing is the work measured). Resumed: each connection offers the ticket of its loop's previous one; every run was checked to have resumed ≥ 95 % of the connections that offered one (and none without resumption). The figure counts whole connections per second.",
            handshake::CONCURRENCY
        ));
    }
    if measured.iter().any(|m| m.comparison.load == Load::H2load) {
        r.notes.push(format!(
            "HTTP/2: h2load (nghttp2-client) -t1 -c{} -m{} over https with ALPN h2 to both, GET / (100 bytes from the backend over HTTP/1.1); runs with a failed or non-2xx request, or not HTTP/2, are refused. shoal advertises 100 concurrent streams (as HAProxy).",
            load::H2_CONNECTIONS,
            load::H2_STREAMS
        ));
    }
    r.notes.push(format!(
        "How busy core 1 (load generator and backend) was, median, shoal / HAProxy: {}. Near 100 % the load side may limit the figure, for both alike.",
        busy.join("; ")
    ));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flag_selects_its_comparisons_on_their_own_ports() {
        let names = |tls, h2| {
            selected(Options {
                tls,
                h2,
                quick: false,
            })
            .map(|(_, c)| c.figure)
            .collect::<Vec<_>>()
        };
        assert_eq!(names(false, true), ["HTTP/2 requests/s over TLS"]);
        assert_eq!(names(true, false).len(), 6);
        assert_eq!(names(true, true).len(), 7);
        assert!(names(false, false).is_empty());
        let last = FIRST_PORT + 2 * COMPARISONS.len() as u16;
        assert!(FIRST_PORT > 8088 && last < BACKEND + 100);
    }

    #[test]
    fn haproxy_and_openssl_versions_are_read() {
        let vv = "HAProxy version 2.6.12-1+deb12u1 2023/12/16 - https://haproxy.org/\nStatus: long-term supported branch\n  Running on OpenSSL version : OpenSSL 3.0.15 3 Sep 2024\n";
        assert_eq!(
            haproxy_versions(vv),
            "HAProxy 2.6.12-1+deb12u1 on OpenSSL 3.0.15 3 Sep 2024"
        );
        assert_eq!(haproxy_versions(""), "HAProxy ? on ?");
    }
}
