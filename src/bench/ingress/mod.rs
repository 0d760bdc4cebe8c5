//! `shoal bench ingress`: HTTP requests/s and latency through shoal's L7 proxy and the
//! proxies it is measured against, to the same nginx backend, in the same run:
//!
//! ```text
//!  plain:      shoal          vs HAProxy, nginx (reverse proxy)
//!  chain:      shoal headers + stripPrefix + rateLimit
//!                             vs HAProxy set-header ×2 + replace-path + stick-table rate
//!  compress:   shoal compress vs Caddy encode gzip        (10 KB JSON, Accept-Encoding: gzip)
//! ```
//! Everything runs on the loopback of a network namespace made for the bench; the proxy
//! under test is pinned to core 0, the backend and wrk (1 thread, 50 connections) to the
//! other. Each comparison is measured in interleaved rounds of its own; the chain and
//! compress proxies are first checked, one request each, to really do their work.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use shoal_bench::report::Report;
use shoal_dataplane::netlink::Netlink;
use shoal_dataplane::netns;

use super::tools::{self, Daemon};
use super::LabGuard;
use crate::lab::{self, topology};
use checks::{check_chain, check_gzip};
use load::{Load, Sample, Tools, WRK_CONNECTIONS};

mod checks;
mod handshake;
mod load;
mod tls;

const LAB: &str = "benchig";
const BACKEND: u16 = 8081;
/// The request header the chain's proxies set, and the response header.
const CHAIN_REQUEST_HEADER: &str = "X-Bench-Request";
const CHAIN_RESPONSE_HEADER: &str = "X-Bench-Response";
/// The prefix the chain's proxies strip, and the path wrk asks them for.
const CHAIN_PREFIX: &str = "/api";
const CHAIN_PATH: &str = "/api/";
/// The backend's document for the compress comparison, and its size.
const PAGE: &str = "/10k.json";
const PAGE_BYTES: usize = 10 * 1024;
const ACCEPT_GZIP: &str = "Accept-Encoding: gzip";
/// The backend's large response (TLS throughput), and its size.
const LARGE: &str = "/1m.bin";
const LARGE_BYTES: usize = 1 << 20;

/// What a contender is asked: a port on the namespace's loopback, plain or TLS, a
/// path, an extra request header, and by which load generator.
#[derive(Clone, Copy)]
struct Target {
    port: u16,
    https: bool,
    path: &'static str,
    header: Option<&'static str>,
    load: Load,
}

impl Target {
    /// `GET /` on `port` by wrk, plain HTTP.
    fn root(port: u16) -> Target {
        Target {
            port,
            https: false,
            path: "/",
            header: None,
            load: Load::Wrk,
        }
    }

    /// One run of this target's load for `duration`.
    fn run(&self, tools: &Tools, ns: &Path, duration: Duration) -> anyhow::Result<Sample> {
        let aim = load::Aim {
            ns,
            port: self.port,
            https: self.https,
            path: self.path,
            header: self.header,
        };
        load::run(tools, self.load, aim, duration)
    }
}

/// A proxy under test: how it is started and what load it gets.
struct Contender {
    label: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    target: Target,
}

/// A started contender and its measured runs.
struct Running {
    contender: Contender,
    _daemon: Daemon,
    runs: Vec<Sample>,
}

fn start(ns: &Path, core: usize, c: &Contender) -> anyhow::Result<Daemon> {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(core.to_string())
        .arg(&c.program)
        .args(&c.args)
        .envs(c.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    netns::command_in(&mut cmd, &netns::open(&ns.to_string_lossy())?, true)?;
    Ok(Daemon(cmd.spawn().with_context(|| {
        format!("cannot start {}", c.program.display())
    })?))
}

/// Waits until something listens on 127.0.0.1:`port` inside `ns`.
fn wait_listening(ns: &Path, port: u16, what: &str) -> anyhow::Result<()> {
    let ns = ns.to_path_buf();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let ok = shoal_bench::net::in_netns(&ns, move || {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(false)
    })?;
    anyhow::ensure!(ok, "{what} did not listen on {addr}");
    Ok(())
}

/// Rounds for `proxies` compared: at least the pace's, a multiple of `proxies`.
fn rounds(proxies: usize) -> usize {
    load::pace().rounds.div_ceil(proxies.max(1)) * proxies.max(1)
}

/// Starts `group` on core 0 and waits until each listens.
fn launch(ns: &Path, group: Vec<Contender>) -> anyhow::Result<Vec<Running>> {
    let mut running = Vec::new();
    for contender in group {
        let daemon = start(ns, 0, &contender)?;
        wait_listening(ns, contender.target.port, contender.label)?;
        running.push(Running {
            contender,
            _daemon: daemon,
            runs: Vec::new(),
        });
    }
    Ok(running)
}

/// Measures `running` in interleaved rounds and stops them: each one's medians.
fn measure(
    tools: &Tools,
    ns: &Path,
    mut running: Vec<Running>,
) -> anyhow::Result<Vec<(&'static str, Sample)>> {
    let pace = load::pace();
    // All of a group's proxies run at once (idle ones cost nothing); rounds interleave
    // them so a slow spell of the machine hits every proxy alike, and medians are reported.
    for r in &running {
        // Warm up connections and caches.
        let _ = r.contender.target.run(tools, ns, pace.run);
    }
    let n = running.len();
    let total = rounds(n);
    for round in 1..=total {
        // The order rotates, so every proxy goes first, second and last equally often.
        for i in (0..n).map(|k| (k + round - 1) % n) {
            let r = &mut running[i];
            r.contender.target.run(tools, ns, pace.warm_up)?;
            let run = r.contender.target.run(tools, ns, pace.run)?;
            eprintln!(
                "bench ingress: round {round} of {total}, through {}: {:.0} req/s, p99 {:.3} ms, {:.1} Gbit/s, core 1 {:.0} % busy",
                r.contender.label,
                run.rps,
                run.p99_ms,
                run.bytes_per_sec * 8e-9,
                run.load_core_busy * 100.0
            );
            r.runs.push(run);
        }
    }
    Ok(running
        .into_iter()
        .map(|r| (r.contender.label, load::median(&r.runs)))
        .collect())
}

fn nginx_conf(dir: &Path, name: &str, server: &str) -> anyhow::Result<PathBuf> {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "worker_processes 1;\ndaemon off;\npid {0}/{name}.pid;\nerror_log {0}/{name}.err warn;\n\
         events {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  \
         client_body_temp_path {0}; proxy_temp_path {0}; fastcgi_temp_path {0}; uwsgi_temp_path {0}; scgi_temp_path {0};\n  \
         keepalive_requests 1000000;\n{server}\n}}",
        dir.display()
    );
    let file = dir.join(format!("{name}.conf"));
    std::fs::write(&file, c)?;
    Ok(file)
}

/// The backend: 100 bytes at `/`, [`PAGE`] and [`LARGE`] from `dir`, what it was sent
/// at `/seen`, and a 404 for a path the chain should have stripped (so wrk counts it as
/// an error).
fn backend_conf(dir: &Path) -> anyhow::Result<PathBuf> {
    let body = "x".repeat(100);
    let seen = format!(
        "path=$request_uri header=$http_{}",
        CHAIN_REQUEST_HEADER.to_ascii_lowercase().replace('-', "_")
    );
    nginx_conf(
        dir,
        "backend",
        &format!(
            "  server {{ listen 127.0.0.1:{BACKEND};\n    location / {{ return 200 \"{body}\"; }}\n    \
             location {CHAIN_PREFIX} {{ return 404; }}\n    location = /seen {{ return 200 \"{seen}\"; }}\n    \
             location = {PAGE} {{ root {0}; default_type application/json; }}\n    \
             location = {LARGE} {{ root {0}; default_type application/octet-stream; }}\n  }}",
            dir.display()
        ),
    )
}

/// A JSON document of exactly [`PAGE_BYTES`], like an API's list response: varied
/// enough that gzip has real work to do.
fn json_page() -> String {
    const WORDS: [&str; 16] = [
        "alpine", "harbour", "copper", "delta", "ember", "fjord", "granite", "hollow", "island",
        "juniper", "kelp", "lagoon", "meadow", "north", "orchard", "pebble",
    ];
    let mut seed: u32 = 0x5eed;
    let mut next = move || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (seed >> 8) as usize
    };
    let mut out = String::from("[");
    for id in 0.. {
        let title: Vec<&str> = (0..6).map(|_| WORDS[next() % WORDS.len()]).collect();
        let item = format!(
            "{}{{\"id\":{id},\"sku\":\"{:06x}\",\"price\":{}.{:02},\"stock\":{},\"title\":\"{}\"}}",
            if id == 0 { "" } else { "," },
            next() % 0x100_0000,
            next() % 500,
            next() % 100,
            next() % 1000,
            title.join(" ")
        );
        if out.len() + item.len() + 2 > PAGE_BYTES {
            break;
        }
        out.push_str(&item);
    }
    out.push(']');
    out.push_str(&" ".repeat(PAGE_BYTES - out.len() - 1));
    out.push('\n');
    out
}

/// shoal's proxy on `port` with one router to the backend through `middlewares` (each
/// a Træfik type and its options in TOML, named `m1`, `m2`, ... in order), run as a user
/// would: `--threads 1` and the defaults; with `cert`, the entrypoint terminates TLS.
fn shoal(
    dir: &Path,
    label: &'static str,
    target: Target,
    middlewares: &[(&str, &str)],
    cert: Option<&tls::Cert>,
) -> anyhow::Result<Contender> {
    let port = target.port;
    let mut c = format!("[entrypoints.web]\naddress = \"127.0.0.1:{port}\"\n");
    if let Some(cert) = cert {
        let _ = writeln!(
            c,
            "tls = {{ certificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}] }}",
            cert.cert.display(),
            cert.key.display()
        );
    }
    c.push_str("\n[routers.all]\nrule = \"PathPrefix(`/`)\"\nservice = \"backend\"\n");
    if !middlewares.is_empty() {
        let names: Vec<String> = (1..=middlewares.len())
            .map(|i| format!("\"m{i}\""))
            .collect();
        let _ = writeln!(c, "middlewares = [{}]", names.join(", "));
    }
    let _ = writeln!(
        c,
        "\n[services.backend]\nservers = [{{ url = \"http://127.0.0.1:{BACKEND}\" }}]"
    );
    for (i, (kind, options)) in middlewares.iter().enumerate() {
        let _ = writeln!(c, "\n[middlewares.m{}.{kind}]\n{options}", i + 1);
    }
    let file = dir.join(format!("shoal-{port}.toml"));
    std::fs::write(&file, c)?;
    let args = ["proxy", "--threads", "1", "--config"].map(String::from);
    Ok(Contender {
        label,
        program: std::env::current_exe()?,
        args: args
            .into_iter()
            .chain([file.display().to_string()])
            .collect(),
        env: Vec::new(),
        target,
    })
}

/// HAProxy on `port` (one thread, keep-alive to the backend), with `rules` in its
/// frontend; with `cert`, the frontend terminates TLS (ALPN h2 and http/1.1).
fn haproxy(
    dir: &Path,
    label: &'static str,
    program: &Path,
    target: Target,
    rules: &str,
    cert: Option<&tls::Cert>,
) -> anyhow::Result<Contender> {
    let port = target.port;
    let ssl = cert.map_or(String::new(), |c| {
        format!(" ssl crt {} alpn h2,http/1.1", c.combined.display())
    });
    let file = dir.join(format!("haproxy-{port}.cfg"));
    std::fs::write(
        &file,
        format!(
            "global\n  nbthread 1\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  http-reuse always\nfrontend f\n  bind 127.0.0.1:{port}{ssl}\n{rules}  default_backend b\nbackend b\n  server s1 127.0.0.1:{BACKEND}\n"
        ),
    )?;
    Ok(Contender {
        label,
        program: program.to_path_buf(),
        args: vec!["-db".into(), "-f".into(), file.display().to_string()],
        env: Vec::new(),
        target,
    })
}

/// Caddy as a reverse proxy on `port` with `encode gzip`, given its best knobs for one
/// core: GOMAXPROCS=1, admin API off, logs discarded, HTTP/1.1 only, 64 idle upstream
/// connections (nginx's keepalive), gzip level 5 (its default and shoal's, spelt out).
fn caddy(dir: &Path, program: &Path, target: Target) -> anyhow::Result<Contender> {
    let port = target.port;
    let file = dir.join("Caddyfile");
    std::fs::write(
        &file,
        format!(
            "{{\n  admin off\n  auto_https off\n  log {{\n    output discard\n  }}\n  servers {{\n    protocols h1\n  }}\n}}\n\
             http://:{port} {{\n  bind 127.0.0.1\n  encode {{\n    gzip 5\n  }}\n  \
             reverse_proxy 127.0.0.1:{BACKEND} {{\n    transport http {{\n      keepalive_idle_conns_per_host 64\n    }}\n  }}\n}}\n"
        ),
    )?;
    let dir = dir.display().to_string();
    Ok(Contender {
        label: "Caddy",
        program: program.to_path_buf(),
        args: ["run", "--adapter", "caddyfile", "--config"]
            .map(String::from)
            .into_iter()
            .chain([file.display().to_string()])
            .collect(),
        env: vec![
            ("GOMAXPROCS", "1".into()),
            ("XDG_CONFIG_HOME", dir.clone()),
            ("XDG_DATA_HOME", dir),
        ],
        target,
    })
}

/// Adds shoal's requests/s, p50 and p99 against `peer`'s, under the figure `names`.
fn add_pair(r: &mut Report, names: [&str; 3], shoal: &Sample, peer: &str, p: &Sample) {
    r.add(names[0], shoal.rps, "req/s", peer, p.rps);
    r.add(names[1], shoal.p50_ms, "ms", peer, p.p50_ms);
    r.add(names[2], shoal.p99_ms, "ms", peer, p.p99_ms);
}

/// The plain comparison: shoal, HAProxy and nginx as reverse proxies, no other work.
fn plain_group(dir: &Path, nginx: &Path, haproxy_bin: &Path) -> anyhow::Result<Vec<Contender>> {
    let nginx_proxy_conf = nginx_conf(
        dir,
        "proxy",
        &format!("  upstream b {{ server 127.0.0.1:{BACKEND}; keepalive 64; }}\n  server {{ listen 127.0.0.1:8084; location / {{ proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}"),
    )?;
    Ok(vec![
        shoal(dir, "shoal", Target::root(8082), &[], None)?,
        haproxy(dir, "HAProxy", haproxy_bin, Target::root(8083), "", None)?,
        Contender {
            label: "nginx",
            program: nginx.to_path_buf(),
            args: vec!["-c".into(), nginx_proxy_conf.display().to_string()],
            env: Vec::new(),
            target: Target::root(8084),
        },
    ])
}

/// The chain comparison: shoal's headers + stripPrefix + rateLimit (never limiting)
/// against HAProxy's set-header ×2, replace-path and stick-table rate check.
fn chain_group(dir: &Path, haproxy_bin: &Path) -> anyhow::Result<Vec<Contender>> {
    let target = |port| Target {
        path: CHAIN_PATH,
        ..Target::root(port)
    };
    let headers = format!(
        "customRequestHeaders = {{ {CHAIN_REQUEST_HEADER} = \"on\" }}\ncustomResponseHeaders = {{ {CHAIN_RESPONSE_HEADER} = \"on\" }}"
    );
    let strip = format!("prefixes = [\"{CHAIN_PREFIX}\"]");
    let rules = format!(
        "  stick-table type ip size 100k expire 30s store http_req_rate(1s)\n  http-request track-sc0 src\n  \
         http-request deny if {{ sc_http_req_rate(0) gt 1000000 }}\n  http-request set-header {CHAIN_REQUEST_HEADER} on\n  \
         http-request replace-path ^{CHAIN_PREFIX}/?(.*) /\\1\n  http-response set-header {CHAIN_RESPONSE_HEADER} on\n"
    );
    Ok(vec![
        shoal(
            dir,
            "shoal, middleware chain",
            target(8085),
            &[
                ("headers", &headers),
                ("stripPrefix", &strip),
                ("rateLimit", "average = 1000000\nburst = 1000000"),
            ],
            None,
        )?,
        haproxy(
            dir,
            "HAProxy, same work",
            haproxy_bin,
            target(8086),
            &rules,
            None,
        )?,
    ])
}

/// The compress comparison: shoal's compress middleware (defaults) against Caddy's
/// `encode gzip`, on [`PAGE`] asked for with gzip accepted.
fn compress_group(dir: &Path, caddy_bin: &Path) -> anyhow::Result<Vec<Contender>> {
    let target = |port| Target {
        path: PAGE,
        header: Some(ACCEPT_GZIP),
        ..Target::root(port)
    };
    Ok(vec![
        shoal(
            dir,
            "shoal, compress",
            target(8087),
            &[("compress", "")],
            None,
        )?,
        caddy(dir, caddy_bin, target(8088))?,
    ])
}

/// What a run measured: straight to the backend, each contender's medians, and the
/// compressed sizes the compress check saw.
struct Measured {
    direct: Sample,
    results: Vec<(&'static str, Sample)>,
    gzip_sizes: Vec<String>,
}

/// What `shoal bench ingress` measures: by default HTTP/1.1 in the clear (plain,
/// middleware chain, compress); with `tls` and/or `h2`, the TLS and HTTP/2 figures
/// instead (see [`tls`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// TLS 1.3: keep-alive requests/s, new handshakes/s, 1 MB responses.
    pub tls: bool,
    /// HTTP/2 over TLS, many streams per connection.
    pub h2: bool,
    /// A smoke check: 1-second runs, one round per proxy (figures not worth keeping).
    pub quick: bool,
}

/// What every comparison shares: the namespace, a directory for configurations, the
/// programs and the nginx backend (running while this lives).
struct Setup {
    ns: PathBuf,
    dir: PathBuf,
    nginx: PathBuf,
    haproxy: PathBuf,
    tools: Tools,
    _backend: Daemon,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn apt(program: &str, package: &str) -> anyhow::Result<PathBuf> {
    tools::apt(program, package).map_err(anyhow::Error::msg)
}

/// Runs the benchmark.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    load::set_quick(options.quick);
    lab::down(LAB);
    let _guard = LabGuard(LAB);
    let nginx = apt("nginx", "nginx")?;
    let haproxy = apt("haproxy", "haproxy")?;
    let h2load = if options.h2 {
        Some(apt("h2load", "nghttp2-client")?)
    } else {
        None
    };
    let tools = Tools {
        wrk: apt("wrk", "wrk")?,
        h2load,
    };
    let name = topology::ns_name(LAB, "h");
    netns::create(&name)?;
    let nl = Netlink::in_namespace(&netns::open(&name)?)?;
    nl.set_up(nl.must_index("lo").await?).await?;
    let ns = netns::path_of(&name);
    let dir = std::env::temp_dir().join(format!("shoal-bench-ingress-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let backend = Contender {
        label: "the nginx backend",
        program: nginx.clone(),
        args: vec!["-c".into(), backend_conf(&dir)?.display().to_string()],
        env: Vec::new(),
        target: Target::root(BACKEND),
    };
    let setup = Setup {
        _backend: start(&ns, 1, &backend)?,
        ns,
        dir,
        nginx,
        haproxy,
        tools,
    };
    std::fs::write(setup.dir.join(PAGE.trim_start_matches('/')), json_page())?;
    wait_listening(&setup.ns, BACKEND, backend.label)?;
    if options.tls || options.h2 {
        let openssl = apt("openssl", "openssl")?;
        return tokio::task::spawn_blocking(move || tls::run(&setup, &openssl, options)).await?;
    }
    let caddy_bin = apt("caddy", "caddy")?;
    let curl = apt("curl", "curl")?;
    let caddy_version = Command::new(&caddy_bin)
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let measured = tokio::task::spawn_blocking(move || clear(&setup, &caddy_bin, &curl)).await??;
    report(&measured, &caddy_version)
}

/// The comparisons in the clear: plain, middleware chain, compress.
fn clear(setup: &Setup, caddy_bin: &Path, curl: &Path) -> anyhow::Result<Measured> {
    let (ns, dir, tools) = (setup.ns.as_path(), setup.dir.as_path(), &setup.tools);
    let plain = plain_group(dir, &setup.nginx, &setup.haproxy)?;
    let chain = chain_group(dir, &setup.haproxy)?;
    let compress = compress_group(dir, caddy_bin)?;
    eprintln!("bench ingress: straight to the backend ...");
    let direct = Target::root(BACKEND).run(tools, ns, load::pace().run)?;
    let mut results = measure(tools, ns, launch(ns, plain)?)?;
    let chain = launch(ns, chain)?;
    for r in &chain {
        check_chain(curl, ns, dir, &r.contender)?;
    }
    results.extend(measure(tools, ns, chain)?);
    let compress = launch(ns, compress)?;
    let page = json_page();
    let mut gzip_sizes = Vec::new();
    for r in &compress {
        let size = check_gzip(curl, ns, dir, &r.contender, &page)?;
        let who = r.contender.label.split(',').next().unwrap_or_default();
        gzip_sizes.push(format!("{who} {size} bytes"));
    }
    results.extend(measure(tools, ns, compress)?);
    Ok(Measured {
        direct,
        results,
        gzip_sizes,
    })
}

/// The report: shoal against each peer, figure by figure, and how it was measured.
fn report(m: &Measured, caddy_version: &str) -> anyhow::Result<Report> {
    let pace = load::pace();
    let get = |n: &str| {
        m.results
            .iter()
            .find(|(l, _)| *l == n)
            .map(|(_, w)| w)
            .with_context(|| format!("{n} was not measured"))
    };
    let shoal = get("shoal")?;
    let mut r = Report::new("ingress");
    for peer in ["HAProxy", "nginx"] {
        let names = [
            "requests/s, proxy on one core",
            "latency p50",
            "latency p99",
        ];
        add_pair(&mut r, names, shoal, peer, get(peer)?);
    }
    r.add(
        "requests/s",
        shoal.rps,
        "req/s",
        "no proxy (wrk straight to the backend)",
        m.direct.rps,
    );
    add_pair(
        &mut r,
        [
            "requests/s, headers + stripPrefix + rateLimit",
            "latency p50, same chain",
            "latency p99, same chain",
        ],
        get("shoal, middleware chain")?,
        "HAProxy (set-header, replace-path, stick-table rate check)",
        get("HAProxy, same work")?,
    );
    add_pair(
        &mut r,
        [
            "requests/s, compress (gzip), 10 KB JSON",
            "latency p50, compress",
            "latency p99, compress",
        ],
        get("shoal, compress")?,
        "Caddy (encode gzip)",
        get("Caddy")?,
    );
    r.notes.push(format!(
        "wrk -t1 -c{WRK_CONNECTIONS} -d{}s on loopback inside a namespace; each comparison in its own interleaved rounds ({} for three proxies, {} for two) in rotating order, each run after a {}s unmeasured warm-up, medians; backend nginx (1 worker, 100-byte body, keep-alive); each proxy pinned to core 0 (HAProxy nbthread 1 with http-reuse always; nginx 1 worker with upstream keepalive; shoal proxy --threads 1 --config with its defaults (access log off, as in Træfik)); wrk and the backend share core 1. Goal: shoal ≥ 1.0× HAProxy's requests/s with p99 no worse.",
        pace.run.as_secs(),
        rounds(3),
        rounds(2),
        pace.warm_up.as_secs(),
    ));
    r.notes.push(format!(
        "Middleware chain: wrk asks for {CHAIN_PATH}; shoal's router runs headers (customRequestHeaders {CHAIN_REQUEST_HEADER}, customResponseHeaders {CHAIN_RESPONSE_HEADER}), stripPrefix {CHAIN_PREFIX} (which also adds X-Forwarded-Prefix, as Træfik's does) and rateLimit (average 1000000, burst 1000000: never limits); HAProxy does http-request set-header, http-response set-header, http-request replace-path ^{CHAIN_PREFIX}/?(.*) /\\1 and a stick-table rate check (type ip size 100k expire 30s store http_req_rate(1s), track-sc0 src, deny if sc_http_req_rate(0) gt 1000000). Before measuring, one request each proved the backend saw the header and the stripped path and the client got the response header; the backend answers 404 to an unstripped path, which would fail the run. Goal: ≥ 1.0× HAProxy, p99 no worse."
    ));
    r.notes.push(format!(
        "Compress: the backend serves a {PAGE_BYTES}-byte application/json document; wrk sends {ACCEPT_GZIP}. shoal: a compress middleware with Træfik's defaults (gzip level 5). Caddy {caddy_version} (Debian's package) as a reverse proxy with encode gzip, given its best knobs for one core: GOMAXPROCS=1 (and pinned to core 0), admin API off, logs discarded (no access log), HTTP/1.1 only, 64 idle upstream connections, gzip level 5 (its default). Before measuring, one request each came back gzip-encoded and decoded to the backend's {PAGE_BYTES} bytes; encoded sizes: {}. Goal: ≥ 1.0× Caddy.",
        m.gzip_sizes.join(", ")
    ));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_proxy_takes_every_place_equally_often() {
        assert_eq!(rounds(3), 9);
        assert_eq!(rounds(2), 10);
        assert_eq!(rounds(1), 9);
    }

    #[test]
    fn the_page_is_json_of_its_size() {
        let page = json_page();
        assert_eq!(page.len(), PAGE_BYTES);
        let parsed: serde_json::Value = serde_json::from_str(&page).unwrap();
        assert!(parsed.as_array().is_some_and(|a| a.len() > 50));
    }
}
