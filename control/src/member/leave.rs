//! Leaving gracefully: the agent's shutdown announced in its heartbeats, and the Raft
//! voters kept equal to the managers that are not leaving.
//!
//! ```text
//!  SIGTERM ─▶ set_leaving(true) ─▶ heartbeat{leaving} ─▶ leader: status Leaving
//!     ─▶ membership loop (leader): the Leaving manager leaves the voters (a leader
//!        removes itself: openraft steps it down once that is committed, and the others
//!        elect a new leader) ─▶ the agent exits ─▶ silent: Down
//!  agent starts again ─▶ heartbeat{leaving: false} ─▶ Ready ─▶ a voter again
//! ```
//! A manager that dies without notice stays a voter (Down): only an announced departure
//! changes the quorum, so quorum math stays right for planned shutdowns (five managers,
//! two shut down one after the other: three voters, one more may fail) and safe for
//! crashes.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use super::Member;
use crate::api::{LeaderRequest, LeaderResponse};
use crate::error::ClusterError;
use crate::ids::NodeId;
use crate::liveness::HEARTBEAT_INTERVAL;
use crate::state::{ClusterState, NodeStatus, Role};

/// One step towards the Raft voters the state asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum VoterChange {
    /// A manager that is up joins (as a learner first, then a voter).
    Add(NodeId),
    /// A voter that is no longer a manager, or is leaving, goes.
    Remove(NodeId),
    /// Learners that are neither: dropped.
    DropLearners(BTreeSet<u64>),
}

/// The next change of the Raft membership: add a Ready manager that is not a voter;
/// remove a voter that is not a manager, or is Leaving and has no tasks left (never the
/// last one); drop learners that should not be there. Down managers keep their vote.
pub(super) fn voter_change(
    state: &ClusterState,
    voters: &BTreeSet<u64>,
    learners: &BTreeSet<u64>,
) -> Option<VoterChange> {
    let managers: Vec<_> = state.managers().collect();
    if managers.is_empty() {
        return None;
    }
    if let Some(add) = managers
        .iter()
        .find(|n| n.status == NodeStatus::Ready && !voters.contains(&n.id.0))
    {
        return Some(VoterChange::Add(add.id));
    }
    // A leaving manager goes once its tasks and their endpoints are gone: it follows
    // the state by its own log, which stops when it no longer votes.
    let keeps = |id: u64| {
        let drained = !state.tasks.values().any(|t| t.node.0 == id)
            && !state
                .endpoints
                .values()
                .any(|e| e.node.0 == id && e.task.is_some());
        state.nodes.get(&NodeId(id)).is_some_and(|n| {
            n.role == Role::Manager && (n.status != NodeStatus::Leaving || !drained)
        })
    };
    if voters.len() > 1 {
        // Demoted or removed first, then leaving ones; the leader itself last, so it
        // steps down only once the others are settled.
        let leader = state.leader.map(|l| l.0);
        let mut gone: Vec<u64> = voters.iter().copied().filter(|v| !keeps(*v)).collect();
        gone.sort_by_key(|v| {
            (
                state.nodes.contains_key(&NodeId(*v)),
                Some(*v) == leader,
                *v,
            )
        });
        if let Some(v) = gone.first() {
            return Some(VoterChange::Remove(NodeId(*v)));
        }
    }
    let stale: BTreeSet<u64> = learners.iter().copied().filter(|l| !keeps(*l)).collect();
    (!stale.is_empty()).then_some(VoterChange::DropLearners(stale))
}

impl Member {
    /// Whether this node's agent announced that it is shutting down.
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::SeqCst)
    }

    /// Announces that this node's agent is shutting down (`true`) or runs normally
    /// (`false`): every heartbeat carries it from now on, and one goes at once.
    pub async fn set_leaving(&self, leaving: bool) -> Result<(), ClusterError> {
        self.leaving.store(leaving, Ordering::SeqCst);
        let answer = self
            .submit_with(
                LeaderRequest::Heartbeat {
                    leaving,
                    mesh: None,
                },
                Some(self.node_id),
                0,
                HEARTBEAT_INTERVAL * 2,
            )
            .await?;
        if let LeaderResponse::Alive { voter, .. } = answer {
            self.voter_per_leader.store(voter, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Whether this node votes in Raft (never on workers): as the leader said at the
    /// last heartbeat (a node removed from the voters may never receive the entry
    /// that removes it), or as it knows itself when it leads.
    pub fn is_voter(&self) -> bool {
        self.raft().is_some_and(|r| {
            if r.is_leader() {
                r.voters().contains(&self.node_id.0)
            } else {
                self.voter_per_leader.load(Ordering::SeqCst)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Availability, Node};

    fn node(id: u64, role: Role, status: NodeStatus) -> Node {
        let ip: std::net::IpAddr = [198, 18, 0, id as u8].into();
        Node {
            id: NodeId(id),
            name: format!("n{id}"),
            role,
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
        }
    }

    fn state(nodes: &[(u64, Role, NodeStatus)], leader: u64) -> ClusterState {
        let mut s = ClusterState {
            cluster_id: "c".into(),
            leader: Some(NodeId(leader)),
            ..Default::default()
        };
        for (id, role, status) in nodes {
            s.nodes.insert(NodeId(*id), node(*id, *role, *status));
        }
        s
    }

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    use NodeStatus::{Down, Leaving, Ready};
    use Role::{Manager, Worker};

    #[test]
    fn a_leaving_manager_leaves_the_voters_and_a_crashed_one_keeps_its_vote() {
        let s = state(
            &[
                (1, Manager, Ready),
                (2, Manager, Leaving),
                (3, Manager, Down),
            ],
            1,
        );
        assert_eq!(
            voter_change(&s, &set(&[1, 2, 3]), &set(&[])),
            Some(VoterChange::Remove(NodeId(2)))
        );
        assert_eq!(voter_change(&s, &set(&[1, 3]), &set(&[])), None);
    }

    #[test]
    fn a_leaving_manager_keeps_its_vote_until_its_tasks_are_gone() {
        let mut s = state(&[(1, Manager, Ready), (2, Manager, Leaving)], 1);
        s.tasks.insert(
            "t".into(),
            crate::state::Task {
                state: crate::state::TaskState::Running,
                ..crate::state::Task::new("t", "web", 0, NodeId(2), 1, 0)
            },
        );
        assert_eq!(voter_change(&s, &set(&[1, 2]), &set(&[])), None);
        s.tasks.clear();
        assert_eq!(
            voter_change(&s, &set(&[1, 2]), &set(&[])),
            Some(VoterChange::Remove(NodeId(2)))
        );
    }

    #[test]
    fn the_leader_leaves_last_and_the_last_voter_stays() {
        let s = state(
            &[
                (1, Manager, Leaving),
                (2, Manager, Leaving),
                (3, Manager, Ready),
            ],
            1,
        );
        assert_eq!(
            voter_change(&s, &set(&[1, 2, 3]), &set(&[])),
            Some(VoterChange::Remove(NodeId(2)))
        );
        assert_eq!(
            voter_change(&s, &set(&[1, 3]), &set(&[])),
            Some(VoterChange::Remove(NodeId(1)))
        );
        let alone = state(&[(1, Manager, Leaving)], 1);
        assert_eq!(voter_change(&alone, &set(&[1]), &set(&[])), None);
    }

    #[test]
    fn a_manager_back_from_leaving_votes_again_but_a_down_one_is_not_added() {
        let back = state(&[(1, Manager, Ready), (2, Manager, Ready)], 1);
        assert_eq!(
            voter_change(&back, &set(&[1]), &set(&[])),
            Some(VoterChange::Add(NodeId(2)))
        );
        let gone = state(&[(1, Manager, Ready), (2, Manager, Down)], 1);
        assert_eq!(voter_change(&gone, &set(&[1]), &set(&[])), None);
    }

    #[test]
    fn demoted_and_removed_voters_go_and_stale_learners_are_dropped() {
        let s = state(&[(1, Manager, Ready), (2, Worker, Ready)], 1);
        assert_eq!(
            voter_change(&s, &set(&[1, 2, 9]), &set(&[])),
            Some(VoterChange::Remove(NodeId(9)))
        );
        assert_eq!(
            voter_change(&s, &set(&[1, 2]), &set(&[])),
            Some(VoterChange::Remove(NodeId(2)))
        );
        assert_eq!(
            voter_change(&s, &set(&[1]), &set(&[2])),
            Some(VoterChange::DropLearners(set(&[2])))
        );
    }
}
