//! Leaving on SIGTERM: the node drains before the agent exits.
//!
//! ```text
//!  SIGTERM ─▶ heartbeats say "leaving" ─▶ the leader marks the node Leaving
//!    ─▶ every node's mesh, VIPs, DNS and ingress drop its tasks (conntrack keeps the
//!       connections they have) ─▶ the scheduler starts their replacements elsewhere
//!    ─▶ a task goes from the state once its replacement runs ─▶ this node's runner
//!       stops it: SIGTERM, up to --drain-timeout for its connections to finish, SIGKILL
//!    ─▶ a manager leaves the Raft voters (a leader steps down) ─▶ exit
//! ```
//! Whatever is not done when `--drain-timeout` has passed stays as it is: tasks still
//! placed here keep running (the next agent adopts them), and what the agent
//! programmed into the kernel stays, as after any agent stop. The next start of the
//! agent makes the node Ready again (an operator's `drain` stays).

use std::time::Duration;

use shoal_control::state::{ClusterState, NodeStatus};
use shoal_control::{Member, NodeId};

/// Where a leaving node is in its drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The state shows the node Leaving (every node stopped choosing its tasks).
    pub announced: bool,
    /// Tasks the state still places on the node (waiting for their replacements).
    pub placed: usize,
    /// Tasks the node's runner still has (stopping: connections finishing).
    pub local: usize,
    /// The node still votes in Raft.
    pub voter: bool,
}

/// What the leaving agent does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Wait; the reason is logged.
    Wait(String),
    /// Everything is done: exit.
    Exit,
    /// The time is up: exit with this much undone.
    GiveUp(String),
}

/// The drain plan: wait until the node is announced, its tasks are replaced and
/// stopped, and it no longer votes; give up when `elapsed` reaches `timeout`.
pub fn next(p: &Progress, elapsed: Duration, timeout: Duration) -> Next {
    let why = if !p.announced {
        Some("announcing that this node is leaving".to_string())
    } else if p.placed > 0 {
        Some(format!(
            "{} task(s) waiting for their replacements to run elsewhere",
            p.placed
        ))
    } else if p.local > 0 {
        Some(format!("{} task(s) finishing their connections", p.local))
    } else if p.voter {
        Some("leaving the Raft voters".to_string())
    } else {
        None
    };
    match why {
        None => Next::Exit,
        Some(why) if elapsed >= timeout => Next::GiveUp(why),
        Some(why) => Next::Wait(why),
    }
}

/// What the state says about node `me`: (announced, tasks placed on it).
pub fn observe(state: &ClusterState, me: NodeId) -> (bool, usize) {
    let announced = state
        .nodes
        .get(&me)
        .is_some_and(|n| n.status == NodeStatus::Leaving);
    let placed = state.tasks.values().filter(|t| t.node == me).count();
    (announced, placed)
}

/// Drains this node for at most `timeout`: announces it is leaving and waits for the
/// plan to finish.
pub async fn drain(member: &Member, runner: Option<&crate::tasks::Runner>, timeout: Duration) {
    let start = tokio::time::Instant::now();
    tracing::info!(timeout = ?timeout, "leaving: draining this node before exiting");
    // Every heartbeat says so from now on, should this one not get through.
    if let Err(e) = member.set_leaving(true).await {
        tracing::debug!(error = %e, "leaving not announced yet");
    }
    let mut last = String::new();
    loop {
        let (announced, placed) = observe(&member.replica().state(), member.node_id);
        let local = match runner {
            Some(r) => r.count().await,
            None => 0,
        };
        let progress = Progress {
            announced,
            placed,
            local,
            // The last voter cannot leave (the cluster would have none).
            voter: member
                .raft()
                .is_some_and(|r| r.voters().len() > 1 && member.is_voter()),
        };
        match next(&progress, start.elapsed(), timeout) {
            Next::Exit => {
                tracing::info!(took = ?start.elapsed(), "drained; exiting");
                return;
            }
            Next::GiveUp(why) => {
                tracing::warn!(timeout = ?timeout, "drain timeout passed while {why}; exiting");
                return;
            }
            Next::Wait(why) => {
                if why != last {
                    tracing::info!("leaving: {why}");
                    last = why;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    fn p(announced: bool, placed: usize, local: usize, voter: bool) -> Progress {
        Progress {
            announced,
            placed,
            local,
            voter,
        }
    }

    #[test]
    fn the_plan_waits_in_order_for_announcement_replacements_connections_and_raft() {
        let s = Duration::from_secs(1);
        let wait = |p: Progress| match next(&p, s, T) {
            Next::Wait(why) => why,
            other => panic!("{other:?}"),
        };
        assert!(wait(p(false, 2, 2, true)).starts_with("announcing"));
        assert!(wait(p(true, 2, 2, true)).contains("2 task(s) waiting for their replacements"));
        assert!(wait(p(true, 0, 1, true)).contains("finishing their connections"));
        assert!(wait(p(true, 0, 0, true)).contains("Raft"));
        assert_eq!(next(&p(true, 0, 0, false), s, T), Next::Exit);
    }

    #[test]
    fn the_plan_gives_up_at_the_timeout_saying_what_is_left() {
        assert_eq!(
            next(&p(true, 1, 1, false), T, T),
            Next::GiveUp("1 task(s) waiting for their replacements to run elsewhere".into())
        );
        assert_eq!(next(&p(true, 0, 0, false), T * 2, T), Next::Exit);
    }

    #[test]
    fn observe_reads_the_nodes_status_and_its_tasks() {
        use crate::overlay::view::tests::{bootstrapped, run};
        use shoal_control::state::Command;
        let mut s = bootstrapped();
        assert_eq!(observe(&s, NodeId(1)), (false, 0));
        run(
            &mut s,
            Command::SetNodeStatus {
                id: NodeId(1),
                status: NodeStatus::Leaving,
            },
        );
        assert_eq!(observe(&s, NodeId(1)), (true, 0));
    }
}
