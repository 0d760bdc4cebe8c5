//! `shoal bench control`: Raft commit latency and throughput on a 3-manager lab, and the
//! time from killing the leader to the next successful write; against the disk's own
//! fdatasync latency measured in the same run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use shoal_bench::baseline::fsync_latencies;
use shoal_bench::report::Report;
use shoal_bench::stats::Summary;
use shoal_control::api::{LeaderResponse, StatusInfo};

use super::LabGuard;
use crate::client::ApiClient;
use crate::lab::{self, LabPaths};

const LAB: &str = "benchctl";
const SEQUENTIAL: usize = 500;
const CONCURRENCY: usize = 32;
const THROUGHPUT_FOR: Duration = Duration::from_secs(3);

async fn commit(client: &ApiClient) -> anyhow::Result<()> {
    let _: LeaderResponse = client
        .post("/v1/bench/commit", &serde_json::json!({}))
        .await?;
    Ok(())
}

async fn latencies(client: &ApiClient, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        commit(client).await?;
        out.push(start.elapsed());
    }
    Ok(out)
}

async fn throughput(client: &ApiClient) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + THROUGHPUT_FOR;
    let workers = (0..CONCURRENCY).map(|_| {
        let client = client.clone();
        let done = done.clone();
        tokio::spawn(async move {
            while Instant::now() < until {
                if commit(&client).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    });
    futures::future::join_all(workers).await;
    done.load(Ordering::Relaxed) as f64 / THROUGHPUT_FOR.as_secs_f64()
}

/// Runs the benchmark.
pub async fn run() -> anyhow::Result<Report> {
    lab::down(LAB);
    let _guard = LabGuard(LAB);
    let fsync = Summary::of(&fsync_latencies(
        std::path::Path::new("/var/lib/shoal/bench-baseline"),
        SEQUENTIAL,
    )?);
    let _ = std::fs::remove_dir_all("/var/lib/shoal/bench-baseline");
    eprintln!("bench control: building a 3-manager lab ...");
    let lab = lab::up(LAB, 3, 3).await?;
    let status: StatusInfo = lab.client("n1")?.get("/v1/status").await?;
    let leader = status.leader.context("no leader after lab up")?;
    let follower = lab
        .nodes()
        .find(|h| h.name != leader)
        .map(|h| h.name.clone())
        .context("no follower")?;
    let to_leader = lab.client(&leader)?;
    let to_follower = lab.client(&follower)?;
    latencies(&to_leader, 20).await?;
    eprintln!("bench control: {SEQUENTIAL} sequential commits on the leader ...");
    let direct = Summary::of(&latencies(&to_leader, SEQUENTIAL).await?);
    let forwarded = Summary::of(&latencies(&to_follower, SEQUENTIAL / 2).await?);
    eprintln!(
        "bench control: {CONCURRENCY} concurrent clients for {}s ...",
        THROUGHPUT_FOR.as_secs()
    );
    let rate = throughput(&to_leader).await;
    eprintln!("bench control: killing the leader ({leader}) ...");
    let killed = Instant::now();
    lab::stop_agent(&LabPaths::new(LAB), lab.host(&leader)?, Signal::SIGKILL).await?;
    let failover = loop {
        if commit(&to_follower).await.is_ok() {
            break killed.elapsed();
        }
        if killed.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("no write succeeded within 60s of killing the leader");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let mut r = Report::new("control");
    r.add(
        "commit p50, on the leader",
        direct.p50_ms,
        "ms",
        "fdatasync p50",
        fsync.p50_ms,
    );
    r.add(
        "commit p99, on the leader",
        direct.p99_ms,
        "ms",
        "fdatasync p99",
        fsync.p99_ms,
    );
    r.add(
        "commit p50, forwarded by a follower",
        forwarded.p50_ms,
        "ms",
        "fdatasync p50",
        fsync.p50_ms,
    );
    r.add(
        "commit p99, forwarded by a follower",
        forwarded.p99_ms,
        "ms",
        "fdatasync p99",
        fsync.p99_ms,
    );
    let fsyncs_per_s = if fsync.mean_ms > 0.0 {
        1000.0 / fsync.mean_ms
    } else {
        0.0
    };
    r.add(
        &format!("commits/s, {CONCURRENCY} clients"),
        rate,
        "/s",
        "sequential fdatasyncs/s",
        fsyncs_per_s,
    );
    r.add(
        "leader killed → next write",
        failover.as_secs_f64(),
        "s",
        "min election timeout",
        1.6,
    );
    r.notes.push(format!(
        "Commits are measured from the CLI side of the agent API (unix socket, HTTP/JSON), through Raft on 3 managers with fdatasync before every acknowledgement. Leader {leader} killed with SIGKILL; writes retried through {follower}."
    ));
    Ok(r)
}
