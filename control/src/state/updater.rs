//! The updater: replaces the tasks of an older service version in batches, as
//! swarmkit's updater does. Pure: the leader runs it with the scheduler every tick and
//! proposes what it says; so does its reaper of tasks that were shut down.
//!
//! ```text
//!  per service, unless its update is paused:
//!    a new task failed / unhealthy / restarted ─▶ failure action (pause, continue, rollback)
//!    start-first slot whose new task is done ─▶ shut its old task down
//!    slots in progress < parallelism, and the delay passed since the last one done
//!        ─▶ next slots: start-first: a new task on the old one's node
//!                       stop-first:  shut the old task down (the scheduler fills the slot)
//!    no old task left, every slot done ─▶ completed
//!  done: running, healthy when checked, and so for the monitor period
//! ```

use std::collections::BTreeMap;

use super::{
    Availability, ClusterState, DesiredState, FailureAction, Health, Node, NodeStatus, PublishMode,
    Service, ServiceMode, Task, TaskState, UpdateOrder, UpdateState, UpdateStatus,
};
use crate::ids::NodeId;

/// How long past its grace period a task shut down on a live node may take to stop
/// before it is removed anyway (ms).
pub const REAP_SLACK_MS: u64 = 30_000;

/// What the updater wants changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdatePlan {
    /// New tasks of the current version (start-first): (service, slot, node).
    pub create: Vec<(String, u32, NodeId)>,
    /// Tasks to shut down.
    pub shutdown: Vec<String>,
    /// New update statuses.
    pub status: Vec<(String, UpdateStatus)>,
    /// Services to roll back (failure action rollback).
    pub rollback: Vec<String>,
}

impl UpdatePlan {
    /// Whether nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && self.shutdown.is_empty()
            && self.status.is_empty()
            && self.rollback.is_empty()
    }
}

/// The slot of a task: its replica slot, or its node for a global service.
fn key(mode: ServiceMode, t: &Task) -> u64 {
    match mode {
        ServiceMode::Replicated { .. } => u64::from(t.slot),
        ServiceMode::Global => t.node.0,
    }
}

/// When a ready task has been watched for the monitor period: the time it became
/// ready (its last state change) plus the monitor. `None` when not ready.
fn done_at(svc: &Service, t: &Task) -> Option<u64> {
    t.takes_traffic(svc.spec.healthcheck.is_some())
        .then(|| t.updated_at_ms + svc.spec.update_config.monitor_ms)
}

/// A new task that failed: it could not start, it is unhealthy, or it restarted.
fn failed(t: &Task) -> bool {
    t.state == TaskState::Failed || t.health == Some(Health::Unhealthy) || t.restarts > 0
}

fn status(state: UpdateState, now: u64, started: u64, message: String) -> UpdateStatus {
    UpdateStatus {
        state,
        started_at_ms: started,
        completed_at_ms: (!state.in_progress()).then_some(now),
        message,
    }
}

/// The updater's decisions at `now` (unix ms).
pub fn plan(state: &ClusterState, now: u64) -> UpdatePlan {
    let mut out = UpdatePlan::default();
    for (name, svc) in &state.services {
        if svc.spec.command.is_empty() {
            continue;
        }
        plan_service(state, name, svc, now, &mut out);
    }
    out
}

fn plan_service(state: &ClusterState, name: &str, svc: &Service, now: u64, out: &mut UpdatePlan) {
    let current = svc.update_status.as_ref();
    let rolling_back = current.is_some_and(|s| {
        matches!(
            s.state,
            UpdateState::RollbackStarted | UpdateState::RollbackPaused
        )
    });
    if current.is_some_and(|s| matches!(s.state, UpdateState::Paused | UpdateState::RollbackPaused))
    {
        return;
    }
    let started = current.map(|s| s.started_at_ms).unwrap_or(0);
    let cfg = svc.spec.update_config;
    let mode = svc.spec.mode;
    let active: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| t.service == name && t.desired == DesiredState::Running)
        .collect();
    let new: Vec<&Task> = active
        .iter()
        .copied()
        .filter(|t| t.version >= svc.version)
        .collect();
    let mut old: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for t in active.iter().filter(|t| t.version < svc.version) {
        old.entry(key(mode, t)).or_default().push(t);
    }
    let in_progress = current.is_some_and(|s| s.state.in_progress());
    if in_progress && cfg.failure_action != FailureAction::Continue {
        if let Some(f) = new.iter().find(|t| failed(t) && t.updated_at_ms >= started) {
            let why = format!(
                "update paused due to failure or early termination of task {}",
                f.id
            );
            if cfg.failure_action == FailureAction::Rollback
                && !rolling_back
                && svc.previous_spec.is_some()
            {
                out.rollback.push(name.to_string());
            } else {
                let paused = if rolling_back {
                    UpdateState::RollbackPaused
                } else {
                    UpdateState::Paused
                };
                out.status
                    .push((name.to_string(), status(paused, now, started, why)));
            }
            return;
        }
    }
    let new_by_key: BTreeMap<u64, &Task> = new.iter().map(|t| (key(mode, t), *t)).collect();
    // Start-first slots whose new task is done: the old one goes.
    for (k, olds) in &old {
        if new_by_key
            .get(k)
            .and_then(|t| done_at(svc, t))
            .is_some_and(|d| d <= now)
        {
            out.shutdown.extend(olds.iter().map(|t| t.id.clone()));
        }
    }
    // Slots in progress: a new task not done yet, or (replicated) no task at all.
    let mut busy = new
        .iter()
        .filter(|t| done_at(svc, t).is_none_or(|d| d > now))
        .count();
    if let ServiceMode::Replicated { replicas } = mode {
        busy += (0..u64::from(replicas))
            .filter(|k| !new_by_key.contains_key(k) && !old.contains_key(k))
            .count();
    }
    let last_done = new
        .iter()
        .filter(|t| t.created_at_ms >= started)
        .filter_map(|t| done_at(svc, t))
        .max();
    let waited = last_done.is_none_or(|d| now >= d + cfg.delay_ms);
    let budget = if cfg.parallelism == 0 {
        usize::MAX
    } else {
        (cfg.parallelism as usize).saturating_sub(busy)
    };
    let host_ports = svc.spec.publish.iter().any(|p| p.mode == PublishMode::Host);
    let next = old.iter().filter(|(k, _)| !new_by_key.contains_key(k));
    if waited && budget > 0 {
        for (_, olds) in next.take(budget) {
            let first = olds[0];
            let node_ok = state.nodes.get(&first.node).is_some_and(|n| {
                n.status == NodeStatus::Ready && n.availability == Availability::Active
            });
            if cfg.order == UpdateOrder::StartFirst && node_ok && !host_ports {
                out.create.push((name.to_string(), first.slot, first.node));
            } else {
                out.shutdown.extend(olds.iter().map(|t| t.id.clone()));
            }
        }
    }
    if in_progress && old.is_empty() && busy == 0 {
        let (done, message) = if rolling_back {
            (UpdateState::RollbackCompleted, "rollback completed")
        } else {
            (UpdateState::Completed, "update completed")
        };
        out.status.push((
            name.to_string(),
            status(done, now, started, message.to_string()),
        ));
    }
}

/// Splits the scheduler's removals: tasks on a node that is gone or Down are removed at
/// once (nothing can drain them); the others (Ready or Leaving nodes) are shut down, to
/// drain.
/// Returns (remove, shutdown).
pub fn split_removals(state: &ClusterState, remove: Vec<String>) -> (Vec<String>, Vec<String>) {
    remove.into_iter().partition(|id| {
        state
            .tasks
            .get(id)
            .is_none_or(|t| state.nodes.get(&t.node).is_none_or(|n| !n.runs_tasks()))
    })
}

/// Tasks shut down that can go from the state at `now`: their node stopped them, or
/// is gone or Down, or took more than the grace period and `REAP_SLACK_MS`.
pub fn reap(state: &ClusterState, now: u64) -> Vec<String> {
    state
        .tasks
        .values()
        .filter(|t| t.desired == DesiredState::Shutdown)
        .filter(|t| {
            let grace = state
                .services
                .get(&t.service)
                .map(|s| s.spec.stop_grace_ms())
                .unwrap_or(0);
            let late = t
                .shutdown_at_ms
                .is_none_or(|at| now > at + grace + REAP_SLACK_MS);
            let node_ok = state.nodes.get(&t.node).is_some_and(Node::runs_tasks);
            t.state == TaskState::Shutdown || !node_ok || late
        })
        .map(|t| t.id.clone())
        .collect()
}

#[cfg(test)]
mod tests;
