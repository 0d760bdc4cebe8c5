//! The scheduler: which tasks should exist, and where. Pure: the leader runs it on the
//! current state and proposes the difference; `service ps` runs it to say why a slot
//! is still pending.
//!
//! ```text
//!  every node ─▶ ready and active? ─▶ constraints? ─▶ host port free? ─▶ under the cap? ─▶ candidate
//!                  (each node is counted against the first filter it fails, as swarmkit's
//!                   pipeline does; none left: "no suitable node (… on N nodes)")
//!  candidates ─▶ spread over label values (fewest tasks of the service first), then the
//!                node with the fewest tasks of the service, then the fewest tasks
//! ```
//! - A node takes new tasks when it is Ready and Active; its tasks stay while it is
//!   Ready and not draining (pause keeps them, drain moves them), and while it meets
//!   the service's constraints (Swarm's constraint enforcer).
//! - A node runs at most one task per host-mode published port (of any service), and at
//!   most `max_replicas_per_node` tasks of a service.
//! - Replicated services keep one task per slot `0..replicas`; global services one task
//!   on every node that passes the filters.
//! - Services without a command have no scheduled tasks: their tasks are sandboxes
//!   attached from outside (`shoal attach --service`).
//! - A node that is evacuating (drained, or its agent is shutting down: Leaving) keeps
//!   its tasks until their replacements run: a task there does not hold its slot, so a
//!   replacement is placed elsewhere at once, and the task goes when a task of its slot
//!   runs on another node, when no node can take the slot, when it is a global task
//!   (nothing replaces it), or [`REPLACEMENT_WAIT_MS`] after the node began evacuating.
//!   It takes no new connections meanwhile (`Node::serves`); its node lets the
//!   connections it has finish before stopping it.
//! - Tasks shut down are left alone (their nodes drain and stop them); a task of an
//!   older version in a slot that has a newer one is left to the updater.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Availability, ClusterState, Node, NodeStatus, Protocol, PublishMode, Service, ServiceMode,
    Task, TaskState,
};
use crate::ids::NodeId;

/// What the scheduler wants changed, and what it could not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignments {
    /// New tasks: (service, slot, node).
    pub create: Vec<(String, u32, NodeId)>,
    /// Tasks to remove, by ID.
    pub remove: Vec<String>,
    /// Slots of replicated services no node can take: (service, slot, why).
    pub pending: Vec<(String, u32, String)>,
}

impl Assignments {
    /// Whether nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.remove.is_empty()
    }
}

/// How long a task on an evacuating node waits for its replacement to run before it
/// goes anyway (Swarm's stop grace period).
pub const REPLACEMENT_WAIT_MS: u64 = 10_000;

fn keeps(node: Option<&Node>) -> bool {
    node.is_some_and(|n| n.status == NodeStatus::Ready && n.availability != Availability::Drain)
}

/// The host-mode ports a service's tasks bind on their node.
fn host_ports(svc: &Service) -> Vec<(Protocol, u16)> {
    svc.spec
        .publish
        .iter()
        .filter(|p| p.mode == PublishMode::Host)
        .map(|p| (p.protocol, p.published))
        .collect()
}

/// The filters a node is checked against, in swarmkit's order, with the words of
/// their explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Filter {
    Available,
    Constraints,
    HostPort,
    MaxReplicas,
}

impl Filter {
    fn explain(self, nodes: usize) -> String {
        let on = if nodes == 1 {
            "1 node".to_string()
        } else {
            format!("{nodes} nodes")
        };
        match self {
            Filter::Available => format!("{on} not available for new tasks"),
            Filter::Constraints => format!("scheduling constraints not satisfied on {on}"),
            Filter::HostPort => format!("host-mode port already in use on {on}"),
            Filter::MaxReplicas => "max replicas per node limit exceed".into(),
        }
    }
}

/// What the round has placed so far: tasks per node, per service and node, and host
/// ports taken per node.
#[derive(Default)]
struct Load {
    all: BTreeMap<NodeId, usize>,
    mine: BTreeMap<(String, NodeId), usize>,
    ports: BTreeMap<NodeId, BTreeSet<(Protocol, u16)>>,
}

impl Load {
    fn add(&mut self, svc: &Service, node: NodeId) {
        *self.all.entry(node).or_default() += 1;
        *self.mine.entry((svc.spec.name.clone(), node)).or_default() += 1;
        self.ports.entry(node).or_default().extend(host_ports(svc));
    }

    fn mine(&self, svc: &str, node: NodeId) -> usize {
        self.mine
            .get(&(svc.to_string(), node))
            .copied()
            .unwrap_or(0)
    }

    /// The first filter `node` fails for a new task of `svc`, if any.
    fn fails(&self, svc: &Service, node: &Node) -> Option<Filter> {
        if node.status != NodeStatus::Ready || node.availability != Availability::Active {
            return Some(Filter::Available);
        }
        if !svc.spec.placement.allows(node) {
            return Some(Filter::Constraints);
        }
        let taken = self.ports.get(&node.id);
        if host_ports(svc)
            .iter()
            .any(|p| taken.is_some_and(|t| t.contains(p)))
        {
            return Some(Filter::HostPort);
        }
        let cap = match svc.spec.mode {
            ServiceMode::Replicated { .. } => svc.spec.placement.max_replicas_per_node,
            ServiceMode::Global => None,
        };
        if cap.is_some_and(|cap| cap > 0 && self.mine(&svc.spec.name, node.id) >= cap as usize) {
            return Some(Filter::MaxReplicas);
        }
        None
    }
}

/// Swarm's words for a task no node can take: the filters sorted by how many nodes
/// failed them, most first.
fn explain(failed: &BTreeMap<Filter, usize>) -> String {
    let mut counts: Vec<(Filter, usize)> = failed.iter().map(|(f, n)| (*f, *n)).collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let parts: Vec<String> = counts.iter().map(|(f, n)| f.explain(*n)).collect();
    if parts.is_empty() {
        "no suitable node".into()
    } else {
        format!("no suitable node ({})", parts.join("; "))
    }
}

/// Picks the node for one more task of `svc` among `candidates`: down the spread
/// preferences, the label value with the fewest tasks of the service; then the node
/// with the fewest tasks of the service, then the fewest tasks, then the lowest ID.
fn pick<'n>(
    svc: &Service,
    candidates: &[&'n Node],
    load: &Load,
    state: &ClusterState,
) -> Option<&'n Node> {
    let mut group: Vec<&Node> = candidates.to_vec();
    for pref in &svc.spec.placement.preferences {
        let mut by_value: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
        for n in &group {
            by_value.entry(pref.value_of(n)).or_default().push(n);
        }
        // Tasks of the service per value count every node with that value, not only
        // the candidates (a full node still holds its share).
        let tasks_with = |value: &str| -> usize {
            state
                .nodes
                .values()
                .filter(|n| pref.value_of(n) == value)
                .map(|n| load.mine(&svc.spec.name, n.id))
                .sum()
        };
        group = by_value
            .into_iter()
            .min_by_key(|(value, _)| tasks_with(value))
            .map(|(_, nodes)| nodes)
            .unwrap_or_default();
    }
    group.into_iter().min_by_key(|n| {
        (
            load.mine(&svc.spec.name, n.id),
            load.all.get(&n.id).copied().unwrap_or(0),
            n.id,
        )
    })
}

/// The placement changes the state needs, at `now_ms` (leader's clock).
pub fn schedule(state: &ClusterState, now_ms: u64) -> Assignments {
    let mut out = Assignments::default();
    // Tasks shut down are on their way out: the scheduler neither keeps nor counts them.
    let mut by_service: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in state.tasks.values().filter(|t| t.desired.is_running()) {
        by_service.entry(t.service.as_str()).or_default().push(t);
    }
    for (name, tasks) in &by_service {
        if state
            .services
            .get(*name)
            .is_none_or(|s| s.spec.command.is_empty())
        {
            out.remove.extend(tasks.iter().map(|t| t.id.clone()));
        }
    }
    // First what stays, over every service, so host ports and loads are known before
    // anything new is placed.
    let mut load = Load::default();
    let mut kept: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    let mut evacuating: Vec<&Task> = Vec::new();
    for (name, svc) in &state.services {
        if svc.spec.command.is_empty() {
            continue;
        }
        let mut tasks: Vec<&Task> = by_service.get(name.as_str()).cloned().unwrap_or_default();
        // The newest version first in each slot: an older task in a slot that has a
        // newer one is the updater's (start-first keeps it until the new one is ready).
        tasks.sort_by(|a, b| {
            (a.slot, std::cmp::Reverse(a.version), a.created_at_ms, &a.id).cmp(&(
                b.slot,
                std::cmp::Reverse(b.version),
                b.created_at_ms,
                &b.id,
            ))
        });
        let mine = kept.entry(name.as_str()).or_default();
        for t in tasks {
            let node = state.nodes.get(&t.node);
            let holder = match svc.spec.mode {
                ServiceMode::Replicated { replicas } => {
                    if t.slot >= replicas {
                        out.remove.push(t.id.clone());
                        continue;
                    }
                    mine.iter().find(|k| k.slot == t.slot)
                }
                ServiceMode::Global => mine.iter().find(|k| k.node == t.node),
            };
            if holder.is_some_and(|k| k.version > t.version) && keeps(node) {
                continue;
            }
            let duplicate = holder.is_some();
            // A task may stay where a new one could go, bar the node's availability
            // (pause keeps tasks): constraints, host ports and the cap still hold.
            let fits = node.is_some_and(|n| {
                let staying = Node {
                    availability: Availability::Active,
                    ..n.clone()
                };
                load.fails(svc, &staying).is_none()
            });
            let leaving = node.is_some_and(Node::evacuating);
            if duplicate || !(keeps(node) || leaving) {
                out.remove.push(t.id.clone());
            } else if leaving {
                evacuating.push(t);
            } else if !fits {
                out.remove.push(t.id.clone());
            } else {
                load.add(svc, t.node);
                mine.push(t);
            }
        }
    }
    let nodes: Vec<&Node> = state.nodes.values().collect();
    for (name, svc) in &state.services {
        if svc.spec.command.is_empty() {
            continue;
        }
        let mine = kept.get(name.as_str()).cloned().unwrap_or_default();
        match svc.spec.mode {
            ServiceMode::Replicated { replicas } => {
                for slot in 0..replicas {
                    if mine.iter().any(|k| k.slot == slot) {
                        continue;
                    }
                    let mut failed: BTreeMap<Filter, usize> = BTreeMap::new();
                    let mut candidates = Vec::new();
                    for n in &nodes {
                        match load.fails(svc, n) {
                            Some(f) => *failed.entry(f).or_default() += 1,
                            None => candidates.push(*n),
                        }
                    }
                    match pick(svc, &candidates, &load, state) {
                        Some(node) => {
                            load.add(svc, node.id);
                            out.create.push((name.clone(), slot, node.id));
                        }
                        None => out.pending.push((name.clone(), slot, explain(&failed))),
                    }
                }
            }
            ServiceMode::Global => {
                for n in &nodes {
                    if !mine.iter().any(|k| k.node == n.id) && load.fails(svc, n).is_none() {
                        load.add(svc, n.id);
                        out.create.push((name.clone(), 0, n.id));
                    }
                }
            }
        }
    }
    for t in evacuating {
        if replaced(state, &kept, &out, t, now_ms) {
            out.remove.push(t.id.clone());
        }
    }
    out.remove.sort();
    out.remove.dedup();
    out
}

/// Whether task `t`, on an evacuating node, may go now: a task of its slot runs
/// elsewhere, or nothing will replace it, or it waited long enough.
fn replaced(
    state: &ClusterState,
    kept: &BTreeMap<&str, Vec<&Task>>,
    out: &Assignments,
    t: &Task,
    now_ms: u64,
) -> bool {
    let Some(svc) = state.services.get(&t.service) else {
        return true;
    };
    let since = state
        .nodes
        .get(&t.node)
        .and_then(Node::evacuating_since_ms)
        .unwrap_or(0);
    if now_ms.saturating_sub(since) >= REPLACEMENT_WAIT_MS {
        return true;
    }
    match svc.spec.mode {
        ServiceMode::Global => true,
        ServiceMode::Replicated { .. } => {
            let pending = out
                .pending
                .iter()
                .any(|(name, slot, _)| *name == t.service && *slot == t.slot);
            let running = kept.get(t.service.as_str()).is_some_and(|mine| {
                mine.iter()
                    .any(|k| k.slot == t.slot && k.state == TaskState::Running)
            });
            pending || running
        }
    }
}

#[cfg(test)]
mod tests;
