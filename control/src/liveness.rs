//! Node liveness as the leader sees it: heartbeats in, Ready/Down transitions out.
//!
//! Heartbeats are not written to the log; only changes of status are. A new leader gives
//! every node a full timeout of grace before declaring it Down.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::NodeId;
use crate::state::{ClusterState, NodeStatus};

/// How often every node sends a heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1000);
/// A node not heard from for this long is Down.
pub const DOWN_AFTER: Duration = Duration::from_millis(3500);

/// The leader's record of when each node was last heard from.
#[derive(Debug, Default)]
pub struct Liveness {
    last_seen: HashMap<NodeId, Instant>,
    leader_since: Option<(Instant, u64)>,
}

impl Liveness {
    /// Called on every tick while leader in `term`: resets when leadership is new.
    pub fn lead(&mut self, term: u64, now: Instant) {
        if self.leader_since.map(|(_, t)| t) != Some(term) {
            self.leader_since = Some((now, term));
            self.last_seen.clear();
        }
    }

    /// Called when this node is not the leader.
    pub fn follow(&mut self) {
        self.leader_since = None;
        self.last_seen.clear();
    }

    /// A heartbeat from `id` arrived.
    pub fn heard(&mut self, id: NodeId, now: Instant) {
        self.last_seen.insert(id, now);
    }

    /// The status changes due now.
    pub fn transitions(&self, state: &ClusterState, now: Instant) -> Vec<(NodeId, NodeStatus)> {
        let Some((since, _)) = self.leader_since else {
            return Vec::new();
        };
        state
            .nodes
            .values()
            .filter_map(|node| {
                let seen = self.last_seen.get(&node.id).copied();
                let alive = now.duration_since(seen.unwrap_or(since)) <= DOWN_AFTER;
                match (node.status, alive, seen.is_some()) {
                    (NodeStatus::Ready, false, _) => Some((node.id, NodeStatus::Down)),
                    (NodeStatus::Down, true, true) => Some((node.id, NodeStatus::Ready)),
                    _ => None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Availability, Node, Role};

    fn state_with(status: NodeStatus) -> ClusterState {
        let mut s = ClusterState {
            cluster_id: "c".into(),
            ..Default::default()
        };
        let ip: std::net::IpAddr = [198, 18, 0, 1].into();
        s.nodes.insert(
            NodeId(1),
            Node {
                id: NodeId(1),
                name: "n1".into(),
                role: Role::Worker,
                availability: Availability::Active,
                status,
                addr: ip,
                control_addr: (ip, 2377).into(),
                joined_at_ms: 0,
                status_since_ms: 0,
                labels: Default::default(),
                report: Default::default(),
                wireguard: None,
            },
        );
        s
    }

    #[tokio::test(start_paused = true)]
    async fn silent_node_goes_down_after_grace() {
        let mut l = Liveness::default();
        let t0 = Instant::now();
        l.lead(1, t0);
        let s = state_with(NodeStatus::Ready);
        assert!(l.transitions(&s, t0 + DOWN_AFTER).is_empty());
        let t = t0 + DOWN_AFTER + Duration::from_millis(1);
        assert_eq!(l.transitions(&s, t), vec![(NodeId(1), NodeStatus::Down)]);
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_keeps_ready_and_revives_down() {
        let mut l = Liveness::default();
        let t0 = Instant::now();
        l.lead(1, t0);
        l.heard(NodeId(1), t0 + Duration::from_secs(3));
        let ready = state_with(NodeStatus::Ready);
        assert!(l
            .transitions(&ready, t0 + Duration::from_secs(6))
            .is_empty());
        let down = state_with(NodeStatus::Down);
        assert_eq!(
            l.transitions(&down, t0 + Duration::from_secs(4)),
            vec![(NodeId(1), NodeStatus::Ready)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn down_node_without_heartbeat_stays_down_and_followers_judge_nothing() {
        let mut l = Liveness::default();
        let t0 = Instant::now();
        let down = state_with(NodeStatus::Down);
        assert!(l.transitions(&down, t0).is_empty());
        l.lead(2, t0);
        assert!(l.transitions(&down, t0 + Duration::from_secs(1)).is_empty());
        l.follow();
        assert!(l
            .transitions(&state_with(NodeStatus::Ready), t0 + Duration::from_secs(60))
            .is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn new_term_resets_grace() {
        let mut l = Liveness::default();
        let t0 = Instant::now();
        l.lead(1, t0);
        let t1 = t0 + Duration::from_secs(10);
        l.lead(2, t1);
        assert!(l
            .transitions(&state_with(NodeStatus::Ready), t1 + Duration::from_secs(1))
            .is_empty());
    }
}
