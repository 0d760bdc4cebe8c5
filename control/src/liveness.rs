//! Node liveness as the leader sees it: heartbeats in, Ready/Leaving/Down transitions out.
//!
//! Heartbeats are not written to the log; only changes of status are. A new leader gives
//! every node a full timeout of grace before declaring it Down. A heartbeat says whether
//! the node's agent is shutting down: such a node is Leaving while it is heard from
//! (its tasks move, it leaves the balancers), Down once silent, and Ready again when a
//! heartbeat without the flag arrives (the agent started again).
//!
//! Timing: a node is heard every [`HEARTBEAT_INTERVAL`]; one silent for [`DOWN_AFTER`] is
//! Down at the leader's next tick (every [`LEADER_TICK`]). So a node that vanishes
//! without notice leaves every balancer within DOWN_AFTER + LEADER_TICK + the time to
//! commit and program the change (tens of ms): under 3 s.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::NodeId;
use crate::state::{ClusterState, NodeStatus};

/// How often every node sends a heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// A node not heard from for this long (four heartbeats) is Down.
pub const DOWN_AFTER: Duration = Duration::from_millis(2000);
/// How often the leader judges liveness (and runs the scheduler).
pub const LEADER_TICK: Duration = Duration::from_millis(250);

/// The leader's record of when each node was last heard from, and whether it said it
/// is leaving.
#[derive(Debug, Default)]
pub struct Liveness {
    last_seen: HashMap<NodeId, (Instant, bool)>,
    leader_since: Option<(Instant, u64)>,
    last_tick: Option<Instant>,
}

/// A leader tick this much later than due means the leader itself did not run (its
/// process starved or paused): heartbeats that arrived meanwhile wait unread.
pub const STALL: Duration = Duration::from_millis(1000);

/// The status a heartbeat (with its `leaving` flag) asks for, when it differs from
/// `status`: Ready for a Down or Leaving node whose agent runs normally, Leaving for
/// one whose agent is shutting down.
pub fn on_heartbeat(status: NodeStatus, leaving: bool) -> Option<NodeStatus> {
    let want = if leaving {
        NodeStatus::Leaving
    } else {
        NodeStatus::Ready
    };
    (status != want).then_some(want)
}

impl Liveness {
    /// Called on every tick while leader in `term`: resets when leadership is new.
    ///
    /// Time the leader itself did not run (a tick [`STALL`] or more late) is not counted
    /// as any node's silence: every node gets it back as grace. Without this, a leader
    /// starved of CPU (many agents on few cores) would read its queued heartbeats only
    /// after declaring their senders Down, and each false Down is a commit every node
    /// reconciles, starving the leader further.
    pub fn lead(&mut self, term: u64, now: Instant) {
        let late = self
            .last_tick
            .map(|t| now.saturating_duration_since(t).saturating_sub(LEADER_TICK))
            .filter(|late| *late >= STALL);
        self.last_tick = Some(now);
        if self.leader_since.map(|(_, t)| t) != Some(term) {
            self.leader_since = Some((now, term));
            self.last_seen.clear();
            return;
        }
        if let Some(late) = late {
            for (seen, _) in self.last_seen.values_mut() {
                *seen = (*seen + late).min(now);
            }
            if let Some((since, _)) = &mut self.leader_since {
                *since = (*since + late).min(now);
            }
        }
    }

    /// Called when this node is not the leader.
    pub fn follow(&mut self) {
        self.leader_since = None;
        self.last_seen.clear();
        self.last_tick = None;
    }

    /// A heartbeat from `id` arrived; `leaving`: its agent is shutting down.
    pub fn heard(&mut self, id: NodeId, leaving: bool, now: Instant) {
        self.last_seen.insert(id, (now, leaving));
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
                let alive = now.duration_since(seen.map_or(since, |s| s.0)) <= DOWN_AFTER;
                let next = match (alive, seen) {
                    (false, _) => (node.status != NodeStatus::Down).then_some(NodeStatus::Down),
                    (true, Some((_, leaving))) => on_heartbeat(node.status, leaving),
                    (true, None) => None,
                };
                next.map(|s| (node.id, s))
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
                availability_since_ms: 0,
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
        l.heard(NodeId(1), false, t0 + Duration::from_secs(1));
        let ready = state_with(NodeStatus::Ready);
        assert!(l
            .transitions(&ready, t0 + Duration::from_secs(3))
            .is_empty());
        let down = state_with(NodeStatus::Down);
        assert_eq!(
            l.transitions(&down, t0 + Duration::from_secs(2)),
            vec![(NodeId(1), NodeStatus::Ready)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_leaving_node_is_leaving_while_heard_down_when_silent_ready_when_back() {
        let mut l = Liveness::default();
        let t0 = Instant::now();
        l.lead(1, t0);
        l.heard(NodeId(1), true, t0);
        let ready = state_with(NodeStatus::Ready);
        assert_eq!(
            l.transitions(&ready, t0 + Duration::from_millis(500)),
            vec![(NodeId(1), NodeStatus::Leaving)]
        );
        let leaving = state_with(NodeStatus::Leaving);
        assert!(l
            .transitions(&leaving, t0 + Duration::from_millis(500))
            .is_empty());
        assert_eq!(
            l.transitions(&leaving, t0 + DOWN_AFTER + Duration::from_millis(1)),
            vec![(NodeId(1), NodeStatus::Down)]
        );
        // The agent started again: its heartbeats no longer say it is leaving.
        l.heard(NodeId(1), false, t0 + Duration::from_secs(5));
        for from in [NodeStatus::Leaving, NodeStatus::Down] {
            assert_eq!(
                l.transitions(&state_with(from), t0 + Duration::from_secs(5)),
                vec![(NodeId(1), NodeStatus::Ready)]
            );
        }
    }

    #[test]
    fn heartbeats_ask_for_the_status_their_flag_names() {
        assert_eq!(on_heartbeat(NodeStatus::Ready, false), None);
        assert_eq!(
            on_heartbeat(NodeStatus::Down, false),
            Some(NodeStatus::Ready)
        );
        assert_eq!(
            on_heartbeat(NodeStatus::Leaving, false),
            Some(NodeStatus::Ready)
        );
        assert_eq!(
            on_heartbeat(NodeStatus::Ready, true),
            Some(NodeStatus::Leaving)
        );
        assert_eq!(
            on_heartbeat(NodeStatus::Down, true),
            Some(NodeStatus::Leaving)
        );
        assert_eq!(on_heartbeat(NodeStatus::Leaving, true), None);
    }

    #[test]
    fn unannounced_loss_is_noticed_within_three_seconds() {
        assert!(DOWN_AFTER + LEADER_TICK + HEARTBEAT_INTERVAL <= Duration::from_secs(3));
        assert!(
            DOWN_AFTER >= HEARTBEAT_INTERVAL * 4,
            "a late heartbeat or two is no loss"
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
    async fn a_stalled_leader_does_not_count_its_stall_as_silence() {
        let mut l = Liveness::default();
        let t0 = Instant::now();
        l.lead(1, t0);
        l.heard(NodeId(1), false, t0);
        let ready = state_with(NodeStatus::Ready);
        // Ticks on time: silence counts.
        let mut t = t0;
        while t < t0 + DOWN_AFTER {
            t += LEADER_TICK;
            l.lead(1, t);
        }
        t += LEADER_TICK;
        l.lead(1, t);
        assert_eq!(
            l.transitions(&ready, t),
            vec![(NodeId(1), NodeStatus::Down)]
        );
        // The leader's next tick comes 5 s late: the node, heard just before, is not
        // Down for it; it is once silent for DOWN_AFTER of the leader's running time.
        l.heard(NodeId(1), false, t);
        let late = t + LEADER_TICK + Duration::from_secs(5);
        l.lead(1, late);
        assert!(l.transitions(&ready, late).is_empty());
        assert!(l
            .transitions(&ready, late + DOWN_AFTER - LEADER_TICK)
            .is_empty());
        assert_eq!(
            l.transitions(&ready, late + DOWN_AFTER + Duration::from_millis(1)),
            vec![(NodeId(1), NodeStatus::Down)]
        );
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
