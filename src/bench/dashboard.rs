//! `shoal bench dashboard`: the web dashboard of a lab's leader in headless Chromium,
//! against the same agent's cheapest views of the same state, in the same run.
//!
//! ```text
//!  first paint   Chromium opens /          (the page, the overview inside it)
//!                vs Chromium opens /status (plain text of the same agent)
//!  change shown  service scale ─▶ the open page shows the new count (server-sent event)
//!                vs service scale ─▶ GET /api/services answers it (polled every ms)
//! ```
//! The lab has `--nodes` nodes (3 managers), a global service (a task on every node) and
//! a replicated one that is scaled 10 ↔ 11. The page is opened once before measuring,
//! so the mesh matrix (which nodes measure only while a dashboard looks) is full.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use shoal_bench::browser::Browser;
use shoal_bench::report::Report;
use shoal_bench::stats::Summary;

use super::LabGuard;
use crate::lab::{self, LabOptions};

const LAB: &str = "benchdash";
/// Page loads and changes timed per figure.
const SAMPLES: usize = 30;
/// The dashboard inside every lab host (the default address).
const DASHBOARD: &str = "127.0.0.1:6790";

/// `GET path` on the dashboard from the current thread's namespace: the body.
fn get(path: &str) -> anyhow::Result<String> {
    let addr: SocketAddr = DASHBOARD.parse()?;
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n")?;
    let mut out = String::new();
    c.read_to_string(&mut out)?;
    let (_, body) = out.split_once("\r\n\r\n").context("not an HTTP response")?;
    Ok(body.to_string())
}

/// The desired task count of `service` as `/api/services` says.
fn desired(service: &str) -> Option<u64> {
    let services: Value = serde_json::from_str(&get("/api/services").ok()?).ok()?;
    services
        .as_array()?
        .iter()
        .find(|s| s["spec"]["name"] == service)?["desired"]
        .as_u64()
}

/// Milliseconds from navigation start to the first contentful paint of `url`.
fn first_paint(browser: &mut Browser, url: &str) -> anyhow::Result<f64> {
    browser.navigate(url);
    let fcp = "performance.getEntriesByType('paint')\
               .find(e => e.name === 'first-contentful-paint')";
    browser.wait_for(
        &format!("{url} painted"),
        &format!("document.readyState === 'complete' && !!{fcp}"),
        Duration::from_secs(30),
    );
    browser
        .eval(&format!("{fcp}.startTime"))
        .as_f64()
        .context("no paint timing")
}

/// First paints (ms) of the page and of `/status`; changes shown on the page and seen
/// by polling the API.
type Timings = (Vec<f64>, Vec<f64>, Vec<Duration>, Vec<Duration>);

/// Where the page's screenshot is left.
fn screenshot_path() -> std::path::PathBuf {
    std::env::temp_dir().join("shoal-bench-dashboard.png")
}

/// The browser part, on a thread inside n1's namespace.
fn measure(
    scale: impl Fn(u32) -> anyhow::Result<()> + Send + 'static,
    traffic: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    ns: &str,
) -> anyhow::Result<Timings> {
    let mut browser = Browser::start(ns);
    let page = format!("http://{DASHBOARD}/");
    // Once, so every node measures the mesh and the matrix is full from here on.
    first_paint(&mut browser, &page)?;
    std::thread::sleep(Duration::from_secs(12));
    let (mut page_paint, mut text_paint) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        page_paint.push(first_paint(&mut browser, &page)?);
        text_paint.push(first_paint(
            &mut browser,
            &format!("http://{DASHBOARD}/status"),
        )?);
    }
    first_paint(&mut browser, &page)?;
    browser.wait_for(
        "the live stream",
        "document.getElementById('live').textContent === 'live'",
        Duration::from_secs(10),
    );
    let (mut shown, mut polled) = (Vec::new(), Vec::new());
    for k in 0..SAMPLES * 2 {
        let replicas = if k % 2 == 0 { 11 } else { 10 };
        scale(replicas)?;
        let start = Instant::now();
        if k % 2 == 0 {
            let expr = format!(
                "document.querySelector('[data-service=\"api\"]')?.dataset.desired === '{replicas}'"
            );
            shown.push(browser.wait_for(
                "the page to show the scale",
                &expr,
                Duration::from_secs(10),
            ));
        } else {
            while desired("api") != Some(u64::from(replicas)) {
                if start.elapsed() > Duration::from_secs(10) {
                    bail!("/api/services did not show api={replicas} within 10 s");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            polled.push(start.elapsed());
        }
    }
    // Requests through the ingress while the screenshot is taken, so it shows traffic.
    let load = std::thread::spawn(traffic);
    std::thread::sleep(Duration::from_secs(1) + crate::dashboard::refresh());
    std::fs::write(screenshot_path(), browser.screenshot())?;
    load.join()
        .map_err(|_| anyhow::anyhow!("the load thread panicked"))??;
    Ok((page_paint, text_paint, shown, polled))
}

/// Waits until both services run all their tasks (`nodes` + 10).
async fn wait_running(nodes: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120 + nodes as u64);
    loop {
        let ls: Value = serde_json::from_str(
            &super::lab_shoal(LAB, "n1", &["service", "ls", "--format", "json"]).await?,
        )?;
        let running: u64 = ls
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["running"].as_u64()).sum())
            .unwrap_or(0);
        if running == nodes as u64 + 10 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {running} of {} tasks running", nodes + 10);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs the benchmark on a lab of `nodes` nodes.
pub async fn run(nodes: usize) -> anyhow::Result<Report> {
    if super::tools::which("chromium").is_none() {
        bail!("bench dashboard needs chromium (apt-get install chromium)");
    }
    lab::down(LAB);
    let _guard = LabGuard(LAB);
    eprintln!("bench dashboard: building a {nodes}-node lab ...");
    let started = Instant::now();
    let lab = lab::up_with(LAB, nodes, nodes.min(3), &LabOptions::default()).await?;
    eprintln!("bench dashboard: lab up in {:?}", started.elapsed());
    let exe = std::env::current_exe()?.display().to_string();
    super::lab_shoal(
        LAB,
        "n1",
        &["network", "create", "--attachable", "frontend"],
    )
    .await?;
    for (name, mode) in [("edge", "--mode=global"), ("api", "--replicas=10")] {
        let rule = format!("shoal.http.routers.{name}.rule=Host(`{name}.test`)");
        super::lab_shoal(
            LAB,
            "n1",
            &[
                "service",
                "create",
                "--name",
                name,
                "--network",
                "frontend",
                mode,
                "--label",
                &rule,
                "--",
                &exe,
                "tool",
                "http",
                "--port",
                "80",
            ],
        )
        .await?;
    }
    wait_running(nodes).await?;
    let ns = lab.host("n1")?.namespace.clone();
    let runtime = tokio::runtime::Handle::current();
    let runtime2 = runtime.clone();
    let (page, text, shown, polled) = tokio::task::spawn_blocking(move || {
        let scale = move |n: u32| {
            runtime
                .block_on(super::lab_shoal(
                    LAB,
                    "n1",
                    &["service", "scale", &format!("api={n}")],
                ))
                .map(drop)
        };
        let load = move || {
            runtime2
                .block_on(super::lab_shoal(
                    LAB,
                    "n1",
                    &[
                        "tool",
                        "load",
                        "http://198.18.0.1:80/",
                        "--host",
                        "api.test",
                        "--duration",
                        "3s",
                    ],
                ))
                .map(drop)
        };
        let file = shoal_dataplane::netns::open(&ns)?;
        shoal_dataplane::netns::run_in(&file, move || measure(scale, load, &ns))?
    })
    .await??;
    let ms = |v: &[f64]| {
        Summary::of(
            &v.iter()
                .map(|m| Duration::from_secs_f64(m / 1000.0))
                .collect::<Vec<_>>(),
        )
    };
    let (page, text, shown, polled) = (
        ms(&page),
        ms(&text),
        Summary::of(&shown),
        Summary::of(&polled),
    );
    let mut report = Report::new("dashboard");
    let label = format!("{nodes} nodes");
    report.add(
        &format!("first paint of the dashboard, p50 ({label})"),
        page.p50_ms,
        "ms",
        "first paint of /status (plain text), p50",
        text.p50_ms,
    );
    report.add(
        &format!("first paint of the dashboard, p99 ({label})"),
        page.p99_ms,
        "ms",
        "first paint of /status (plain text), p99",
        text.p99_ms,
    );
    report.add(
        "a service scale shown on the open page, p50",
        shown.p50_ms,
        "ms",
        "the scale answered by GET /api/services (polled), p50",
        polled.p50_ms,
    );
    report.add(
        "a service scale shown on the open page, p99",
        shown.p99_ms,
        "ms",
        "the scale answered by GET /api/services (polled), p99",
        polled.p99_ms,
    );
    report.notes.push(format!(
        "{SAMPLES} page loads and {SAMPLES} changes each; headless Chromium in n1's namespace; \
         the state: {nodes} nodes, a global service ({nodes} tasks), a replicated one (10–11 \
         tasks), the mesh matrix full ({} cells). Goals: first paint < 300 ms, a change on \
         the page < 1 s after its commit. Screenshot: {}.",
        nodes * (nodes - 1),
        screenshot_path().display()
    ));
    Ok(report)
}
