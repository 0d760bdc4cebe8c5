//! `shoal bench ingress`: HTTP requests/s and latency through shoal's L7 proxy, HAProxy
//! and nginx (as a reverse proxy) to the same nginx backend, in the same run. Everything
//! runs on the loopback of a network namespace made for the bench; the proxy under test
//! is pinned to core 0, the backend and wrk (1 thread, 50 connections) to the other.

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

const LAB: &str = "benchig";
const BACKEND: u16 = 8081;
const DURATION: &str = "5s";
/// Interleaved rounds per proxy (a multiple of the three proxies, so each takes every
/// place in a round equally often); the figures are their medians.
const ROUNDS: usize = 9;
/// The unmeasured run right before each measured one: the first proxy of a round would
/// otherwise pay for the machine's switch from the previous proxy (its p99 above all).
const WARM_UP: &str = "1s";

/// One wrk run.
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn start(ns: &Path, core: usize, program: &Path, args: &[String]) -> anyhow::Result<Daemon> {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(core.to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    netns::command_in(&mut cmd, &netns::open(&ns.to_string_lossy())?, true)?;
    Ok(Daemon(cmd.spawn().with_context(|| {
        format!("cannot start {}", program.display())
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

/// Milliseconds from wrk's "0.73ms" / "512.00us" / "1.02s".
fn millis(s: &str) -> Option<f64> {
    let (num, factor) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * factor)
}

fn parse_wrk(out: &str) -> Option<Wrk> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().ok(),
            ["50%", v] => p50 = millis(v),
            ["99%", v] => p99 = millis(v),
            _ => {}
        }
    }
    Some(Wrk {
        rps: rps?,
        p50_ms: p50?,
        p99_ms: p99?,
    })
}

/// The median of each figure over `runs` (not empty).
fn median(runs: Vec<Wrk>) -> Wrk {
    let mid = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    Wrk {
        rps: mid(runs.iter().map(|r| r.rps).collect()),
        p50_ms: mid(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: mid(runs.iter().map(|r| r.p99_ms).collect()),
    }
}

fn wrk(wrk: &Path, ns: &Path, port: u16) -> anyhow::Result<Wrk> {
    wrk_for(wrk, ns, port, DURATION)
}

fn wrk_for(wrk: &Path, ns: &Path, port: u16, duration: &str) -> anyhow::Result<Wrk> {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg("1")
        .arg(wrk)
        .args(["-t1", "-c50", "-d", duration, "--latency"])
        .arg(format!("http://127.0.0.1:{port}/"));
    netns::command_in(&mut cmd, &netns::open(&ns.to_string_lossy())?, false)?;
    let out = cmd.output().context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = text.contains("Non-2xx") || text.contains("Socket errors");
    anyhow::ensure!(!errors, "errors during the run on port {port}: {text}");
    parse_wrk(&text).with_context(|| format!("cannot read wrk's output: {text}"))
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

/// Runs the benchmark.
pub async fn run() -> anyhow::Result<Report> {
    lab::down(LAB);
    let _guard = LabGuard(LAB);
    let nginx = tools::apt("nginx", "nginx").map_err(|e| anyhow::anyhow!(e))?;
    let haproxy = tools::apt("haproxy", "haproxy").map_err(|e| anyhow::anyhow!(e))?;
    let wrk_bin = tools::apt("wrk", "wrk").map_err(|e| anyhow::anyhow!(e))?;
    let name = topology::ns_name(LAB, "h");
    netns::create(&name)?;
    let nl = Netlink::in_namespace(&netns::open(&name)?)?;
    nl.set_up(nl.must_index("lo").await?).await?;
    let ns = netns::path_of(&name);
    let dir = std::env::temp_dir().join(format!("shoal-bench-ingress-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let body = "x".repeat(100);
    let backend_conf = nginx_conf(
        &dir,
        "backend",
        &format!(
            "  server {{ listen 127.0.0.1:{BACKEND}; location / {{ return 200 \"{body}\"; }} }}"
        ),
    )?;
    let _backend = start(
        &ns,
        1,
        &nginx,
        &["-c".into(), backend_conf.display().to_string()],
    )?;
    wait_listening(&ns, BACKEND, "the nginx backend")?;

    // shoal's proxy from a file.
    let shoal_conf = dir.join("shoal.toml");
    std::fs::write(
        &shoal_conf,
        format!(
            "[entrypoints.web]\naddress = \"127.0.0.1:8082\"\n\n[routers.all]\nrule = \"PathPrefix(`/`)\"\nservice = \"backend\"\n\n[services.backend]\nservers = [{{ url = \"http://127.0.0.1:{BACKEND}\" }}]\n"
        ),
    )?;
    let haproxy_conf = dir.join("haproxy.cfg");
    std::fs::write(
        &haproxy_conf,
        format!(
            "global\n  nbthread 1\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  http-reuse always\nfrontend f\n  bind 127.0.0.1:8083\n  default_backend b\nbackend b\n  server s1 127.0.0.1:{BACKEND}\n"
        ),
    )?;
    let nginx_proxy_conf = nginx_conf(
        &dir,
        "proxy",
        &format!(
            "  upstream b {{ server 127.0.0.1:{BACKEND}; keepalive 64; }}\n  server {{ listen 127.0.0.1:8084; location / {{ proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}"
        ),
    )?;
    let me = std::env::current_exe()?;
    let proxies: [(&str, PathBuf, Vec<String>, u16); 3] = [
        (
            "shoal",
            me,
            vec![
                "proxy".into(),
                "--threads".into(),
                "1".into(),
                "--config".into(),
                shoal_conf.display().to_string(),
            ],
            8082,
        ),
        (
            "HAProxy",
            haproxy,
            vec![
                "-db".into(),
                "-f".into(),
                haproxy_conf.display().to_string(),
            ],
            8083,
        ),
        (
            "nginx",
            nginx,
            vec!["-c".into(), nginx_proxy_conf.display().to_string()],
            8084,
        ),
    ];
    let ns2 = ns.clone();
    let results = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(String, Wrk)>> {
        eprintln!("bench ingress: straight to the backend ...");
        let direct = wrk(&wrk_bin, &ns2, BACKEND)?;
        // All proxies run at once (idle ones cost nothing); rounds interleave them so a
        // slow spell of the machine hits every proxy alike, and medians are reported.
        let mut running = Vec::new();
        for (label, program, args, port) in proxies {
            let p = start(&ns2, 0, &program, &args)?;
            wait_listening(&ns2, port, label)?;
            // Warm up connections and caches.
            let _ = wrk(&wrk_bin, &ns2, port);
            running.push((label, port, p, Vec::new()));
        }
        for round in 1..=ROUNDS {
            // The order rotates, so every proxy goes first, second and last equally often.
            let n = running.len();
            let order: Vec<usize> = (0..n).map(|k| (k + round - 1) % n).collect();
            for i in order {
                let (label, port, _, runs) = &mut running[i];
                wrk_for(&wrk_bin, &ns2, *port, WARM_UP)?;
                let run = wrk(&wrk_bin, &ns2, *port)?;
                eprintln!(
                    "bench ingress: round {round} of {ROUNDS}, through {label}: {:.0} req/s, p99 {:.3} ms",
                    run.rps, run.p99_ms
                );
                runs.push(run);
            }
        }
        let mut out = vec![("direct".to_string(), direct)];
        for (label, _, _, runs) in running {
            out.push((label.to_string(), median(runs)));
        }
        Ok(out)
    })
    .await??;
    let _ = std::fs::remove_dir_all(&dir);
    let get = |n: &str| results.iter().find(|(l, _)| l == n).map(|(_, w)| w);
    let (Some(shoal), Some(direct)) = (get("shoal"), get("direct")) else {
        anyhow::bail!("shoal's proxy was not measured");
    };
    let mut r = Report::new("ingress");
    for peer in ["HAProxy", "nginx"] {
        if let Some(p) = get(peer) {
            r.add(
                "requests/s, proxy on one core",
                shoal.rps,
                "req/s",
                peer,
                p.rps,
            );
            r.add("latency p50", shoal.p50_ms, "ms", peer, p.p50_ms);
            r.add("latency p99", shoal.p99_ms, "ms", peer, p.p99_ms);
        }
    }
    r.add(
        "requests/s",
        shoal.rps,
        "req/s",
        "no proxy (wrk straight to the backend)",
        direct.rps,
    );
    r.notes.push(format!(
        "wrk -t1 -c50 -d{DURATION} on loopback inside a namespace, {ROUNDS} rounds in rotating order, each run after a {WARM_UP} unmeasured warm-up, medians; backend nginx (1 worker, 100-byte body, keep-alive); each proxy pinned to core 0 (HAProxy nbthread 1 with http-reuse always; nginx 1 worker with upstream keepalive; shoal proxy --config with its defaults (access log off, as in Træfik)); wrk and the backend share core 1. Goal: shoal ≥ 1.0× HAProxy's requests/s with p99 no worse."
    ));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_figure_is_its_own_median() {
        let run = |rps, p50_ms, p99_ms| Wrk {
            rps,
            p50_ms,
            p99_ms,
        };
        let m = median(vec![
            run(3.0, 1.0, 9.0),
            run(1.0, 3.0, 7.0),
            run(2.0, 2.0, 8.0),
        ]);
        assert_eq!((m.rps, m.p50_ms, m.p99_ms), (2.0, 2.0, 8.0));
    }

    #[test]
    fn wrk_output_is_read() {
        let out = "  Latency Distribution\n     50%  730.00us\n     75%    1.10ms\n     90%    1.30ms\n     99%    1.44ms\n  600000 requests in 10.00s, 80MB read\nRequests/sec:  60123.45\nTransfer/sec:      8.00MB\n";
        let w = parse_wrk(out).unwrap();
        assert_eq!(w.rps, 60123.45);
        assert!((w.p50_ms - 0.73).abs() < 1e-9);
        assert!((w.p99_ms - 1.44).abs() < 1e-9);
        assert!(parse_wrk("garbage").is_none());
        assert_eq!(millis("2s"), Some(2000.0));
    }
}
