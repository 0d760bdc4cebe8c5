//! `shoal bench faults`: what faults cost, each against a baseline measured in the same
//! run.
//!
//! - The simulated Raft tier: seeded nemesis runs (partitions, pauses, leader crashes)
//!   checked for linearizability, with reads by read index (as the API serves them),
//!   against the same seeds with reads from the local replica (the agent before read
//!   barriers), which the checker must catch.
//! - A seeded nemesis run on a real lab (`shoal lab jepsen`): operations and faults,
//!   and what the checks found.
//! - A closed loop of GETs from the client host through the ingress and a mesh-published
//!   port while a node is cut off without notice (the baseline: what an unannounced
//!   loss costs), then while another node's agent gets SIGTERM (drains) and while the
//!   service has a rolling update; and a quiet window of the same length.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use shoal_bench::report::Report;
use shoal_control::sim::{self, ReadMode};

use super::LabGuard;
use crate::lab;

const LAB: &str = "benchflt";
const SIM_SEEDS: u64 = 30;
const JEPSEN_FOR: Duration = Duration::from_secs(90);
const LOAD_FOR: Duration = Duration::from_secs(20);
const HOST: &str = "web.test";

/// Runs `shoal ARGS` inside lab host `host`; its stdout.
async fn shoal(host: &str, args: &[&str]) -> anyhow::Result<String> {
    super::lab_shoal(LAB, host, args).await
}

/// Runs `shoal lab VERB --name LAB ARGS`.
async fn lab_verb(verb: &str, args: &[&str]) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("find the shoal binary")?;
    let out = tokio::process::Command::new(&exe)
        .args(["lab", verb, "--name", LAB])
        .args(args)
        .output()
        .await
        .context("run shoal lab")?;
    if !out.status.success() {
        bail!(
            "shoal lab {verb} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Waits until `check` is `Ok`, or fails with its last error after `within`.
async fn until<F, Fut>(what: &str, within: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > within => bail!("{what} not within {within:?}: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Waits until `want` tasks of `web` run, none on `not`.
async fn settled(want: usize, not: Option<&str>) -> anyhow::Result<()> {
    until("web's tasks to settle", Duration::from_secs(60), || async {
        let ps: Value = serde_json::from_str(
            &shoal("n1", &["service", "ps", "web", "--format", "json"]).await?,
        )?;
        let nodes: Vec<&str> = ps
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["state"] == "running")
            .filter_map(|t| t["node"].as_str())
            .collect();
        if nodes.len() == want && not.is_none_or(|n| !nodes.contains(&n)) {
            Ok(())
        } else {
            bail!("running on {nodes:?}")
        }
    })
    .await
}

/// Waits until `node` has `status` as n1 sees it.
async fn status_is(node: &str, status: &str) -> anyhow::Result<()> {
    until(
        &format!("{node} {status}"),
        Duration::from_secs(30),
        || async {
            let ls: Value =
                serde_json::from_str(&shoal("n1", &["node", "ls", "--format", "json"]).await?)?;
            let now = ls
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| n["name"] == node)
                .and_then(|n| n["status"].as_str())
                .unwrap_or_default()
                .to_string();
            if now == status {
                Ok(())
            } else {
                bail!("{node} is {now:?}")
            }
        },
    )
    .await
}

/// What a load through one entry saw.
struct Seen {
    requests: u64,
    /// When each failed request started (unix ms).
    failures: Vec<u64>,
}

/// `shoal tool load` from the client host to `url` for `duration`.
async fn load(url: String, duration: Duration) -> anyhow::Result<Seen> {
    let d = format!("{}ms", duration.as_millis());
    let out = shoal(
        "client",
        &[
            "tool",
            "load",
            &url,
            "--host",
            HOST,
            "--duration",
            &d,
            "--timeout",
            "2s",
            "--concurrency",
            "4",
        ],
    )
    .await?;
    let s: Value = serde_json::from_str(out.lines().last().unwrap_or_default())
        .with_context(|| format!("shoal tool load printed {out:?}"))?;
    Ok(Seen {
        requests: s["requests"].as_u64().unwrap_or(0),
        failures: s["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["at_ms"].as_u64())
            .collect(),
    })
}

/// The ingress's and the mesh's loads through n1 while `action` runs (it starts after
/// 2 s); also when the action began (unix ms).
async fn under_load<Fut>(action: Fut) -> anyhow::Result<([Seen; 2], u64)>
where
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let ip = lab::load(LAB)?.host("n1")?.underlay_ip;
    let ingress = tokio::spawn(load(format!("http://{ip}:80/"), LOAD_FOR));
    let mesh = tokio::spawn(load(format!("http://{ip}:8080/"), LOAD_FOR));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let began = now_ms();
    action.await?;
    Ok(([ingress.await??, mesh.await??], began))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn failed(seen: &[Seen; 2]) -> f64 {
    seen.iter().map(|s| s.failures.len() as f64).sum()
}

fn requests(seen: &[Seen; 2]) -> u64 {
    seen.iter().map(|s| s.requests).sum()
}

/// Runs the benchmark.
pub async fn run() -> anyhow::Result<Report> {
    let mut r = Report::new("faults");

    eprintln!("bench faults: {SIM_SEEDS} simulated seeds, twice ...");
    let (good, stale) = tokio::task::spawn_blocking(|| {
        let template = sim::Config::new(0);
        let good = sim::campaign(&template, 1..=SIM_SEEDS, |_| {});
        let local = sim::Config {
            read_mode: ReadMode::Local,
            ..template
        };
        let stale = sim::campaign(&local, 1..=SIM_SEEDS, |_| {});
        (good, stale)
    })
    .await?;
    eprintln!("bench faults: read index: {good}");
    eprintln!("bench faults: local reads: {stale}");
    r.add(
        &format!("simulated runs with a violation ({SIM_SEEDS} seeds, 3 managers)"),
        good.failed.len() as f64,
        "runs",
        "same seeds, reads from the local replica",
        stale.failed.len() as f64,
    );
    r.add(
        "simulated faults injected per second",
        good.faults_per_second(),
        "/s",
        "faults in the same runs",
        good.faults as f64,
    );

    lab::down(LAB);
    let _guard = LabGuard(LAB);
    eprintln!("bench faults: building a 4-node lab (3 managers) ...");
    let lab = lab::up(LAB, 4, 3).await?;
    let seed = now_ms();
    eprintln!(
        "bench faults: lab jepsen, seed {seed}, {}s ...",
        JEPSEN_FOR.as_secs()
    );
    let options = lab::jepsen::Options {
        seed,
        duration: JEPSEN_FOR,
        clients_per_manager: 2,
        fault_every: Duration::from_secs(2),
        objects: 3,
        op_timeout: Duration::from_secs(5),
    };
    let j = lab::jepsen::run(&lab, &options).await?;
    eprintln!(
        "bench faults: lab jepsen: {} operations, {} faults, passed: {}",
        j.operations,
        j.faults.len(),
        j.passed()
    );
    let problems = usize::from(!j.linearizable)
        + usize::from(!j.converged)
        + j.duplicate_addresses.len()
        + j.stale_kernel_objects.len();
    r.add(
        "lab nemesis run: violations, duplicates, stale kernel objects",
        problems as f64,
        "",
        &format!("operations checked ({} faults)", j.faults.len()),
        j.operations as f64,
    );
    let total_faults = good.faults + j.faults.len();
    r.add(
        "seeded nemesis faults checked (simulated + lab)",
        total_faults as f64,
        "",
        "goal",
        1000.0,
    );

    eprintln!("bench faults: service web, 6 replicas, under load ...");
    shoal("n1", &["network", "create", "--attachable", "web"]).await?;
    let exe = std::env::current_exe()?.display().to_string();
    shoal(
        "n1",
        &[
            "service",
            "create",
            "--name",
            "web",
            "--network",
            "web",
            "--replicas",
            "6",
            "--publish",
            "published=8080,target=80",
            "--label",
            "shoal.http.routers.web.rule=Host(`web.test`)",
            "--",
            &exe,
            "tool",
            "http",
            "--port",
            "80",
        ],
    )
    .await?;
    settled(6, None).await?;
    let ip = lab.host("n1")?.underlay_ip;
    until("web to answer", Duration::from_secs(30), || async {
        let s = load(format!("http://{ip}:8080/"), Duration::from_millis(500)).await?;
        let t = load(format!("http://{ip}:80/"), Duration::from_millis(500)).await?;
        if s.failures.is_empty() && t.failures.is_empty() && s.requests > 0 && t.requests > 0 {
            Ok(())
        } else {
            bail!("{} and {} failures", s.failures.len(), t.failures.len())
        }
    })
    .await?;

    let (quiet, _) = under_load(async { Ok(()) }).await?;
    // Neither the leader nor the entry: no election in the way.
    let status: shoal_control::api::StatusInfo = lab.client("n1")?.get("/v1/status").await?;
    let leader = status.leader.context("no leader")?;
    let victims: Vec<String> = ["n2", "n3", "n4"]
        .iter()
        .filter(|n| **n != leader)
        .map(|n| n.to_string())
        .collect();
    let (cut, term) = (victims[0].clone(), victims[1].clone());

    eprintln!("bench faults: {cut} cut off without notice ...");
    let rest: Vec<&str> = ["n1", "n2", "n3", "n4"]
        .into_iter()
        .filter(|n| *n != cut)
        .collect();
    let rest = rest.join(",");
    let (lost, cut_at) = under_load(lab_verb("partition", &[&cut, "/", &rest])).await?;
    let last_after = |s: &Seen| {
        s.failures
            .iter()
            .map(|at| at.saturating_sub(cut_at))
            .max()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let window = (shoal_control::liveness::DOWN_AFTER
        + shoal_control::liveness::LEADER_TICK
        + shoal_control::liveness::HEARTBEAT_INTERVAL)
        .as_secs_f64();
    r.add(
        "node cut off: last failed request after the cut, ingress",
        last_after(&lost[0]),
        "s",
        "heartbeat window",
        window,
    );
    r.add(
        "node cut off: last failed request after the cut, published port",
        last_after(&lost[1]),
        "s",
        "heartbeat window",
        window,
    );
    lab_verb("heal", &[]).await?;
    status_is(&cut, "ready").await?;

    eprintln!("bench faults: rolling update under load ...");
    settled(6, None).await?;
    let (updated, _) = under_load(async {
        shoal("n1", &["service", "update", "--force", "web"]).await?;
        until(
            "the update to complete",
            Duration::from_secs(60),
            || async {
                let s: Value = serde_json::from_str(
                    &shoal("n1", &["service", "inspect", "web", "--format", "json"]).await?,
                )?;
                match s["update_status"]["state"].as_str() {
                    Some("completed") => Ok(()),
                    other => bail!("update {other:?}"),
                }
            },
        )
        .await
    })
    .await?;
    settled(6, None).await?;

    eprintln!("bench faults: SIGTERM to {term}'s agent under load ...");
    let (drained, _) = under_load(lab_verb("kill", &[&term])).await?;
    lab_verb("start", &[&term]).await?;

    r.add(
        "failed requests, node cut off without notice",
        failed(&lost),
        "",
        &format!("quiet window ({} requests)", requests(&quiet)),
        failed(&quiet),
    );
    r.add(
        "failed requests, agent SIGTERMed (drains its tasks)",
        failed(&drained),
        "",
        "node cut off without notice",
        failed(&lost),
    );
    r.add(
        "failed requests, service update --force (defaults)",
        failed(&updated),
        "",
        "node cut off without notice",
        failed(&lost),
    );
    r.notes.push(format!(
        "Simulated: {good}. Lab: 4 nodes, 3 managers; jepsen seed {seed}, {}s, a fault or heal every 2s (partitions, pauses, kill -9, the leader half the time). Loads: 2 × 4 closed loops of GETs (one connection each, 2 s timeout) for {}s through n1's ingress (:80) and published port (:8080), {} to {} requests per phase; 6 tasks of web on 4 nodes.",
        JEPSEN_FOR.as_secs(),
        LOAD_FOR.as_secs(),
        [&quiet, &lost, &updated, &drained].iter().map(|s| requests(s)).min().unwrap_or(0),
        [&quiet, &lost, &updated, &drained].iter().map(|s| requests(s)).max().unwrap_or(0),
    ));
    Ok(r)
}
