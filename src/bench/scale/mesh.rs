//! The encrypted full mesh at a lab's size: every node's client sandbox joins one
//! encrypted network, so every agent runs WireGuard with a peer for each other node
//! (n − 1). Measured from the nodes: how long after its own attach each node has
//! completed a handshake with every peer (its own account, `shoal status`), how long
//! the whole mesh took, the handshakes' CPU, and what n − 1 peers cost an agent in
//! memory.
//!
//! ```text
//!  RSS, CPU ticks ─▶ network create --opt encrypted ─▶ attach every client sandbox,
//!    8 at a time ─▶ poll every agent's WireGuard peers until each has n − 1
//!    handshakes (or time out) ─▶ RSS, CPU ticks again
//! ```

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;
use shoal_bench::stats::Summary;
use shoal_control::api::{AttachRequest, EndpointInfo, StatusInfo};

use super::cost::mean;
use super::observe;
use crate::lab::Lab;

/// The encrypted network.
const NETWORK: &str = "scalesec";
const SUBNET: &str = "10.201.0.0/16";
/// How long the whole mesh may take to handshake before the figure says so.
const HANDSHAKES_WITHIN: Duration = Duration::from_secs(120);
/// How often every agent is asked.
const POLL: Duration = Duration::from_millis(100);
/// Attaches in flight at once.
const ATTACHING: usize = 8;

/// What the mesh cost at one lab size.
#[derive(Debug, Clone, Serialize)]
pub struct MeshPoint {
    /// Agents.
    pub nodes: usize,
    /// Peers per agent (nodes − 1).
    pub peers: usize,
    /// Per node: from its own attach's answer until it had a handshake with every
    /// peer (ms).
    pub complete: Summary,
    /// From the first attach until every node had every handshake (ms).
    pub whole_ms: f64,
    /// Nodes that had not completed every handshake within the bound.
    pub incomplete: usize,
    /// Mean and largest growth of an agent's private memory (RssAnon) with the mesh (MiB).
    pub anon_growth_mean_mib: f64,
    /// Largest growth.
    pub anon_growth_max_mib: f64,
    /// Mean agent CPU from the first attach until the mesh completed (% of a core).
    pub cpu_mean_pct: f64,
    /// The mesh's handshakes per second over all nodes (n × (n − 1) / 2 pairs, each
    /// one handshake, over the time to complete).
    pub handshakes_per_s: f64,
}

/// Peers of the agent behind `status` with a completed handshake, and all its peers.
pub fn handshaken(status: &StatusInfo) -> (usize, usize) {
    let Some(section) = status
        .sections
        .iter()
        .find(|s| s.title.starts_with(crate::overlay::encrypted::STATUS_TITLE))
    else {
        return (0, 0);
    };
    let peers: Vec<&(String, String)> = section
        .rows
        .iter()
        .filter(|(name, _)| name != "dropped")
        .collect();
    let done = peers
        .iter()
        .filter(|(_, v)| v.contains("latest handshake"))
        .count();
    (done, peers.len())
}

/// Measures the mesh of `lab`'s agents (`pids`, in `hosts` order), attaching the
/// sandboxes `sandboxes` (one per host) to a new encrypted network.
pub async fn measure(
    lab: &Lab,
    hosts: &[String],
    sandboxes: &[String],
    pids: &[i32],
) -> anyhow::Result<MeshPoint> {
    let n = hosts.len();
    let first = lab.client(&hosts[0])?;
    let _: serde_json::Value = first
        .post(
            "/v1/networks",
            &serde_json::json!({
                "name": NETWORK, "subnet": SUBNET, "attachable": true, "encrypted": true,
            }),
        )
        .await
        .context("encrypted network create")?;
    let before: Vec<Option<observe::Usage>> = pids.iter().map(|p| observe::usage(*p)).collect();
    // Every node at once (a few at a time), as a cluster whose nodes all carry a new
    // encrypted network would; each node's engine greets every peer when it starts.
    let started = Instant::now();
    let attach = |i: usize| async move {
        let req = AttachRequest {
            network: NETWORK.into(),
            netns: sandboxes[i].clone(),
            ..Default::default()
        };
        let _: EndpointInfo = lab
            .client(&hosts[i])?
            .post("/v1/attach", &req)
            .await
            .with_context(|| format!("{}'s sandbox on the encrypted network", hosts[i]))?;
        anyhow::Ok((i, Instant::now()))
    };
    let mut attached = vec![started; n];
    let mut answers = futures::stream::iter((0..n).map(attach)).buffer_unordered(ATTACHING);
    while let Some(answer) = answers.next().await {
        let (i, at) = answer?;
        attached[i] = at;
    }
    drop(answers);
    let mut done: Vec<Option<Instant>> = vec![None; n];
    while done.iter().any(Option::is_none) && started.elapsed() < HANDSHAKES_WITHIN {
        for (i, host) in hosts.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            let status: StatusInfo = match lab.client(host)?.get("/v1/status").await {
                Ok(s) => s,
                Err(_) => continue,
            };
            let (complete, peers) = handshaken(&status);
            if peers + 1 >= n && complete + 1 >= n {
                done[i] = Some(Instant::now());
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let finished = started.elapsed();
    let after: Vec<Option<observe::Usage>> = pids.iter().map(|p| observe::usage(*p)).collect();
    let growth: Vec<f64> = before
        .iter()
        .zip(&after)
        .filter_map(|(b, a)| {
            Some((a.as_ref()?.anon_kib as f64 - b.as_ref()?.anon_kib as f64) / 1024.0)
        })
        .collect();
    let ticks: Vec<f64> = before
        .iter()
        .zip(&after)
        .filter_map(|(b, a)| Some(a.as_ref()?.ticks.saturating_sub(b.as_ref()?.ticks) as f64))
        .collect();
    let seconds = finished.as_secs_f64().max(1e-3);
    let cpu_mean_pct = mean(&ticks) / observe::ticks_per_second() / seconds * 100.0;
    let complete: Vec<Duration> = done
        .iter()
        .zip(&attached)
        .filter_map(|(d, a)| Some(d.as_ref()?.saturating_duration_since(*a)))
        .collect();
    let whole = done
        .iter()
        .flatten()
        .max()
        .map_or(0.0, |last| last.duration_since(started).as_secs_f64());
    Ok(MeshPoint {
        nodes: n,
        peers: n - 1,
        complete: Summary::of(&complete),
        whole_ms: whole * 1000.0,
        incomplete: done.iter().filter(|d| d.is_none()).count(),
        anon_growth_mean_mib: mean(&growth),
        anon_growth_max_mib: growth.iter().copied().fold(0.0, f64::max),
        cpu_mean_pct,
        handshakes_per_s: (n * (n - 1) / 2) as f64 / whole.max(1e-3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_control::api::StatusSection;

    fn status(rows: &[(&str, &str)]) -> StatusInfo {
        let mut s: StatusInfo = serde_json::from_value(serde_json::json!({
            "in_cluster": true, "version": "x", "removed": false, "revision": 1,
            "nodes_ready": 1, "nodes_down": 0,
        }))
        .unwrap();
        s.sections = vec![StatusSection {
            title: format!(
                "{} (encrypted networks; `wg show x`)",
                crate::overlay::encrypted::STATUS_TITLE
            ),
            rows: rows
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }];
        s
    }

    #[test]
    fn handshakes_are_counted_from_the_status_rows() {
        let s = status(&[
            (
                "n2",
                "198.18.0.2:51820 latest handshake 3s ago, 0 B in, 0 B out",
            ),
            ("n3", "198.18.0.3:51820 no handshake yet, 0 B in, 0 B out"),
            ("dropped", "nothing"),
        ]);
        assert_eq!(handshaken(&s), (1, 2));
        let mut none = s.clone();
        none.sections.clear();
        assert_eq!(handshaken(&none), (0, 0));
    }
}
