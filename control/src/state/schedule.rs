//! The scheduler: which tasks should exist, and where. Pure: the leader runs it on the
//! current state and proposes the difference.
//!
//! - A node takes new tasks when it is Ready and Active; its tasks stay while it is
//!   Ready and not draining (pause keeps them, drain moves them).
//! - Replicated services keep one task per slot `0..replicas`, each new one placed on
//!   the eligible node with the fewest tasks of the service, then the fewest tasks.
//! - Global services keep one task on every eligible node.
//! - Services without a command have no scheduled tasks: their tasks are sandboxes
//!   attached from outside (`shoal attach --service`).

use std::collections::BTreeMap;

use super::{Availability, ClusterState, NodeStatus, ServiceMode, Task};
use crate::ids::NodeId;

/// What the scheduler wants changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// New tasks: (service, slot, node).
    pub create: Vec<(String, u32, NodeId)>,
    /// Tasks to remove, by ID.
    pub remove: Vec<String>,
}

impl Placement {
    /// Whether nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.remove.is_empty()
    }
}

fn keeps(state: &ClusterState, node: NodeId) -> bool {
    state
        .nodes
        .get(&node)
        .is_some_and(|n| n.status == NodeStatus::Ready && n.availability != Availability::Drain)
}

fn eligible(state: &ClusterState) -> Vec<NodeId> {
    state
        .nodes
        .values()
        .filter(|n| n.status == NodeStatus::Ready && n.availability == Availability::Active)
        .map(|n| n.id)
        .collect()
}

/// The placement changes the state needs.
pub fn schedule(state: &ClusterState) -> Placement {
    let mut out = Placement::default();
    let mut by_service: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in state.tasks.values() {
        by_service.entry(t.service.as_str()).or_default().push(t);
    }
    // Tasks per node after this round, for spreading.
    let mut load: BTreeMap<NodeId, usize> = BTreeMap::new();
    for t in state.tasks.values() {
        if keeps(state, t.node) && state.services.contains_key(&t.service) {
            *load.entry(t.node).or_default() += 1;
        }
    }
    let nodes = eligible(state);
    for (name, tasks) in &by_service {
        if state
            .services
            .get(*name)
            .is_none_or(|s| s.spec.command.is_empty())
        {
            out.remove.extend(tasks.iter().map(|t| t.id.clone()));
        }
    }
    for (name, svc) in &state.services {
        if svc.spec.command.is_empty() {
            continue;
        }
        let mut tasks: Vec<&Task> = by_service.get(name.as_str()).cloned().unwrap_or_default();
        tasks.sort_by(|a, b| {
            (a.slot, a.created_at_ms, &a.id).cmp(&(b.slot, b.created_at_ms, &b.id))
        });
        let mut mine: BTreeMap<NodeId, usize> = BTreeMap::new();
        let mut kept: Vec<&Task> = Vec::new();
        for t in tasks {
            let duplicate = match svc.spec.mode {
                ServiceMode::Replicated { replicas } => {
                    t.slot >= replicas || kept.iter().any(|k| k.slot == t.slot)
                }
                ServiceMode::Global => kept.iter().any(|k| k.node == t.node),
            };
            if duplicate || !keeps(state, t.node) {
                out.remove.push(t.id.clone());
                if keeps(state, t.node) {
                    if let Some(l) = load.get_mut(&t.node) {
                        *l = l.saturating_sub(1);
                    }
                }
            } else {
                *mine.entry(t.node).or_default() += 1;
                kept.push(t);
            }
        }
        match svc.spec.mode {
            ServiceMode::Replicated { replicas } => {
                for slot in 0..replicas {
                    if kept.iter().any(|k| k.slot == slot) {
                        continue;
                    }
                    let best = nodes.iter().min_by_key(|n| {
                        (
                            mine.get(n).copied().unwrap_or(0),
                            load.get(n).copied().unwrap_or(0),
                            **n,
                        )
                    });
                    if let Some(node) = best.copied() {
                        *mine.entry(node).or_default() += 1;
                        *load.entry(node).or_default() += 1;
                        out.create.push((name.clone(), slot, node));
                    }
                }
            }
            ServiceMode::Global => {
                for node in &nodes {
                    if !kept.iter().any(|k| k.node == *node) {
                        out.create.push((name.clone(), 0, *node));
                    }
                }
            }
        }
    }
    out.remove.sort();
    out.remove.dedup();
    out
}
