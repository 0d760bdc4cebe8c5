//! Every node's view of the mesh, gathered on the leader for the dashboard.
//!
//! Nodes measure their peers (underlay reachability and round trip, WireGuard handshake
//! age and bytes, drops by reason) only while somebody looks: a dashboard asking the
//! leader for the views ([`LeaderRequest::MeshViews`](crate::api::LeaderRequest)) makes the
//! leader answer heartbeats with `mesh_wanted` for [`WANTED_FOR`]; nodes then put their
//! latest report in their heartbeats. Nothing is written to the Raft log, and an idle
//! cluster measures nothing.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::ids::NodeId;

/// How long one request for the views keeps nodes measuring.
pub const WANTED_FOR: Duration = Duration::from_secs(30);
/// A report older than this is left out of the views (its node stopped sending).
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// One node's view of one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    /// The peer.
    pub node: NodeId,
    /// Round trip of a TCP handshake to the peer's control port over the underlay, in
    /// microseconds; `None`: it did not answer within the probe's timeout.
    pub underlay_rtt_us: Option<u64>,
    /// Seconds since the last WireGuard handshake with it (encrypted networks); `None`:
    /// none yet, or this node has no encrypted data path.
    #[serde(default)]
    pub handshake_age_s: Option<u64>,
    /// Encrypted payload bytes received from it.
    #[serde(default)]
    pub rx_bytes: u64,
    /// Encrypted payload bytes sent to it.
    #[serde(default)]
    pub tx_bytes: u64,
}

/// One node's report: its peers, and the packets its data path dropped, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshReport {
    /// Its view of each other node.
    pub peers: Vec<PeerView>,
    /// Dropped packets by reason (counters since the agent started).
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
}

/// A node's report as the leader holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshView {
    /// The reporting node.
    pub node: NodeId,
    /// Milliseconds since the leader received it.
    pub age_ms: u64,
    /// The report.
    pub report: MeshReport,
}

/// The leader's latest report from each node, and until when nodes are asked to send
/// them.
#[derive(Debug, Default)]
pub struct MeshBoard {
    reports: HashMap<NodeId, (Instant, MeshReport)>,
    wanted_until: Option<Instant>,
}

impl MeshBoard {
    /// Whether nodes should measure and report now.
    pub fn wanted(&self, now: Instant) -> bool {
        self.wanted_until.is_some_and(|t| now < t)
    }

    /// A heartbeat brought `report` from `node`.
    pub fn record(&mut self, node: NodeId, report: MeshReport, now: Instant) {
        self.reports.insert(node, (now, report));
    }

    /// The fresh reports, by node; asking keeps nodes reporting for [`WANTED_FOR`].
    pub fn views(&mut self, now: Instant) -> Vec<MeshView> {
        self.wanted_until = Some(now + WANTED_FOR);
        self.reports
            .retain(|_, (at, _)| now.duration_since(*at) <= STALE_AFTER);
        let mut views: Vec<MeshView> = self
            .reports
            .iter()
            .map(|(node, (at, report))| MeshView {
                node: *node,
                age_ms: now.duration_since(*at).as_millis() as u64,
                report: report.clone(),
            })
            .collect();
        views.sort_by_key(|v| v.node);
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rtt: Option<u64>) -> MeshReport {
        MeshReport {
            peers: vec![PeerView {
                node: NodeId(2),
                underlay_rtt_us: rtt,
                handshake_age_s: None,
                rx_bytes: 0,
                tx_bytes: 0,
            }],
            drops: BTreeMap::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn asking_keeps_nodes_reporting_for_a_while() {
        let mut board = MeshBoard::default();
        let t0 = Instant::now();
        assert!(!board.wanted(t0), "nobody asked yet");
        board.views(t0);
        assert!(board.wanted(t0 + WANTED_FOR - Duration::from_millis(1)));
        assert!(!board.wanted(t0 + WANTED_FOR));
    }

    #[tokio::test(start_paused = true)]
    async fn views_are_the_latest_fresh_report_of_each_node() {
        let mut board = MeshBoard::default();
        let t0 = Instant::now();
        board.record(NodeId(3), report(Some(10)), t0);
        board.record(NodeId(1), report(None), t0);
        board.record(NodeId(1), report(Some(7)), t0 + Duration::from_secs(5));
        let views = board.views(t0 + Duration::from_secs(6));
        assert_eq!(views.len(), 2);
        assert_eq!(views[0].node, NodeId(1), "sorted by node");
        assert_eq!(views[0].report.peers[0].underlay_rtt_us, Some(7));
        assert_eq!(views[0].age_ms, 1000);
        let later = board.views(t0 + STALE_AFTER + Duration::from_secs(1));
        assert_eq!(
            later.iter().map(|v| v.node).collect::<Vec<_>>(),
            vec![NodeId(1)],
            "node 3 went silent: its report is stale"
        );
    }
}
