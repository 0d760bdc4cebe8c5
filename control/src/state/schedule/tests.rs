//! The scheduler's filters and spreading, on hand-built states.

use std::collections::BTreeMap;

use super::*;
use crate::state::fixtures::node;
use crate::state::{Constraint, EndpointMode, PortSpec, Role, ServiceSpec, Spread, TaskState};

/// n1 a manager in zone a, n2 and n3 workers in zones a and b.
fn cluster() -> ClusterState {
    let mut s = ClusterState {
        cluster_id: "c".into(),
        ..Default::default()
    };
    for n in [
        node(1, Role::Manager, &[("zone", "a")]),
        node(2, Role::Worker, &[("zone", "a")]),
        node(3, Role::Worker, &[("zone", "b")]),
    ] {
        s.nodes.insert(n.id, n);
    }
    s
}

fn service(s: &mut ClusterState, name: &str, replicas: u32, f: impl FnOnce(&mut ServiceSpec)) {
    let mut spec = ServiceSpec {
        name: name.into(),
        mode: ServiceMode::Replicated { replicas },
        endpoint_mode: EndpointMode::Vip,
        command: vec!["run".into()],
        ..Default::default()
    };
    f(&mut spec);
    s.services.insert(
        name.into(),
        Service {
            id: format!("{name}-id"),
            spec,
            vips: BTreeMap::new(),
            vips6: BTreeMap::new(),
            created_at_ms: 0,
            updated_at_ms: 0,
            version: 0,
            previous_spec: None,
            update_status: None,
        },
    );
}

/// Applies the scheduler's creations as tasks, until it has nothing more to do.
fn settle(s: &mut ClusterState) -> Assignments {
    for round in 0..10 {
        let a = schedule(s, 0);
        if a.is_empty() {
            return a;
        }
        for id in &a.remove {
            s.tasks.remove(id);
        }
        for (i, (svc, slot, node)) in a.create.iter().enumerate() {
            let id = format!("{round:02}{i:06}");
            s.tasks.insert(
                id.clone(),
                Task {
                    state: TaskState::Running,
                    ..Task::new(&id, svc, *slot, *node, 0, round)
                },
            );
        }
    }
    panic!("the scheduler did not settle");
}

fn nodes_of(s: &ClusterState, svc: &str) -> Vec<u64> {
    let mut v: Vec<u64> = s
        .tasks
        .values()
        .filter(|t| t.service == svc)
        .map(|t| t.node.0)
        .collect();
    v.sort();
    v
}

/// docs (docker service create --constraint node.role==manager).
#[test]
fn constraints_keep_tasks_on_matching_nodes() {
    let mut s = cluster();
    service(&mut s, "db", 3, |spec| {
        spec.placement.constraints = vec![Constraint::parse("node.role==manager").unwrap()];
    });
    settle(&mut s);
    assert_eq!(nodes_of(&s, "db"), [1, 1, 1]);
    service(&mut s, "worker", 2, |spec| {
        spec.placement.constraints = vec![Constraint::parse("node.labels.zone!=a").unwrap()];
    });
    settle(&mut s);
    assert_eq!(nodes_of(&s, "worker"), [3, 3]);
}

/// swarmkit scheduler: "no suitable node (scheduling constraints not satisfied on 3
/// nodes)" while nothing fits; placed once a node does.
#[test]
fn a_task_that_fits_nowhere_stays_pending_with_swarms_reason() {
    let mut s = cluster();
    service(&mut s, "gpu", 1, |spec| {
        spec.placement.constraints = vec![Constraint::parse("node.labels.gpu==yes").unwrap()];
    });
    let a = settle(&mut s);
    assert_eq!(
        a.pending,
        [(
            "gpu".to_string(),
            0,
            "no suitable node (scheduling constraints not satisfied on 3 nodes)".to_string()
        )]
    );
    s.nodes
        .get_mut(&NodeId(2))
        .unwrap()
        .labels
        .insert("gpu".into(), "yes".into());
    let a = settle(&mut s);
    assert!(a.pending.is_empty());
    assert_eq!(nodes_of(&s, "gpu"), [2]);
}

/// swarmkit filter.go: HostPortFilter, and Explain's order (most failures first).
#[test]
fn host_mode_ports_allow_one_task_per_node() {
    let mut s = cluster();
    s.nodes.get_mut(&NodeId(3)).unwrap().availability = Availability::Drain;
    service(&mut s, "edge", 3, |spec| {
        spec.publish = vec![PortSpec::parse("mode=host,8080:80").unwrap()];
    });
    let a = settle(&mut s);
    assert_eq!(nodes_of(&s, "edge"), [1, 2]);
    assert_eq!(
        a.pending,
        [(
            "edge".to_string(),
            2,
            "no suitable node (host-mode port already in use on 2 nodes; 1 node not available for new tasks)".to_string()
        )]
    );
    // Another service with the same host port takes the free node only.
    s.nodes.get_mut(&NodeId(3)).unwrap().availability = Availability::Active;
    service(&mut s, "other", 1, |spec| {
        spec.publish = vec![PortSpec::parse("mode=host,8080:81").unwrap()];
    });
    settle(&mut s);
    let mut all: Vec<u64> = nodes_of(&s, "edge");
    all.extend(nodes_of(&s, "other"));
    all.sort();
    assert_eq!(all, [1, 2, 3], "never two tasks on one node's port 8080");
}

/// docker service create --replicas-max-per-node; swarmkit MaxReplicasFilter.
#[test]
fn replicas_max_per_node_caps_tasks_per_node() {
    let mut s = cluster();
    service(&mut s, "web", 5, |spec| {
        spec.placement.max_replicas_per_node = Some(1);
    });
    let a = settle(&mut s);
    assert_eq!(nodes_of(&s, "web"), [1, 2, 3]);
    assert_eq!(a.pending.len(), 2);
    assert!(a
        .pending
        .iter()
        .all(|(_, _, why)| why == "no suitable node (max replicas per node limit exceed)"));
}

/// docs: "--placement-pref spread=node.labels.zone": tasks spread evenly over the
/// label's values, whatever the node count in each.
#[test]
fn spread_preference_balances_label_values_not_nodes() {
    let mut s = cluster();
    service(&mut s, "web", 4, |spec| {
        spec.placement.preferences = vec![Spread::parse("spread=node.labels.zone").unwrap()];
    });
    settle(&mut s);
    let nodes = nodes_of(&s, "web");
    let in_b = nodes.iter().filter(|n| **n == 3).count();
    assert_eq!(in_b, 2, "zone b (one node) gets half: {nodes:?}");
}

/// Swarm's constraint enforcer: a task whose node stops matching is moved.
#[test]
fn a_task_on_a_node_that_no_longer_matches_is_moved() {
    let mut s = cluster();
    service(&mut s, "db", 1, |spec| {
        spec.placement.constraints = vec![Constraint::parse("node.labels.disk==ssd").unwrap()];
    });
    s.nodes
        .get_mut(&NodeId(2))
        .unwrap()
        .labels
        .insert("disk".into(), "ssd".into());
    settle(&mut s);
    assert_eq!(nodes_of(&s, "db"), [2]);
    s.nodes.get_mut(&NodeId(2)).unwrap().labels.clear();
    s.nodes
        .get_mut(&NodeId(3))
        .unwrap()
        .labels
        .insert("disk".into(), "ssd".into());
    settle(&mut s);
    assert_eq!(nodes_of(&s, "db"), [3]);
}

#[test]
fn global_services_skip_nodes_that_do_not_match_without_pending() {
    let mut s = cluster();
    service(&mut s, "agent", 0, |spec| {
        spec.mode = ServiceMode::Global;
        spec.placement.constraints = vec![Constraint::parse("node.role==worker").unwrap()];
    });
    let a = settle(&mut s);
    assert_eq!(nodes_of(&s, "agent"), [2, 3]);
    assert!(a.pending.is_empty());
}

#[test]
fn explanations_count_in_words_and_say_no_suitable_node_without_nodes() {
    assert_eq!(explain(&BTreeMap::new()), "no suitable node");
    let failed = BTreeMap::from([(Filter::Available, 1), (Filter::Constraints, 1)]);
    assert_eq!(
        explain(&failed),
        "no suitable node (1 node not available for new tasks; scheduling constraints not satisfied on 1 node)"
    );
}

/// Adds the scheduler's creations to `s` as tasks in `state`, removes its removals;
/// returns the IDs created.
fn apply_round(s: &mut ClusterState, a: &Assignments, state: TaskState) -> Vec<String> {
    for id in &a.remove {
        s.tasks.remove(id);
    }
    let mut ids = Vec::new();
    for (svc, slot, node) in &a.create {
        let id = format!("new{:05}", s.tasks.len() + ids.len());
        s.tasks.insert(
            id.clone(),
            Task {
                state,
                ..Task::new(&id, svc, *slot, *node, s.services[svc].version, 100)
            },
        );
        ids.push(id);
    }
    ids
}

/// `web` with 2 replicas settled on n1..n3; returns the node of slot 0 and its task.
fn web_settled() -> (ClusterState, NodeId, String) {
    let mut s = cluster();
    service(&mut s, "web", 2, |_| {});
    settle(&mut s);
    let t = s.tasks.values().find(|t| t.slot == 0).unwrap();
    (s.clone(), t.node, t.id.clone())
}

fn evacuate(s: &mut ClusterState, node: NodeId, how: &str, at: u64) {
    let n = s.nodes.get_mut(&node).unwrap();
    match how {
        "drain" => {
            n.availability = Availability::Drain;
            n.availability_since_ms = at;
        }
        "leaving" => {
            n.status = NodeStatus::Leaving;
            n.status_since_ms = at;
        }
        _ => unreachable!(),
    }
}

#[test]
fn an_evacuating_nodes_task_stays_until_its_replacement_runs() {
    for how in ["drain", "leaving"] {
        let (mut s, node, old) = web_settled();
        evacuate(&mut s, node, how, 1_000);
        let a = schedule(&s, 1_500);
        assert!(a.remove.is_empty(), "{how}: {a:?}");
        assert_eq!(a.create.len(), 1, "{how}: {a:?}");
        assert_eq!((a.create[0].1, a.create[0].2 != node), (0, true), "{how}");
        let new = apply_round(&mut s, &a, TaskState::Assigned);
        let a = schedule(&s, 2_000);
        assert!(a.is_empty(), "{how}: waits for the replacement: {a:?}");
        s.tasks.get_mut(&new[0]).unwrap().state = TaskState::Running;
        let a = schedule(&s, 2_500);
        assert_eq!(a.remove, vec![old.clone()], "{how}");
        assert!(a.create.is_empty(), "{how}");
    }
}

#[test]
fn an_evacuating_nodes_task_goes_after_the_wait_or_when_nothing_replaces_it() {
    let (mut s, node, old) = web_settled();
    evacuate(&mut s, node, "drain", 1_000);
    let a = schedule(&s, 1_000);
    apply_round(&mut s, &a, TaskState::Assigned);
    assert!(schedule(&s, 1_000 + REPLACEMENT_WAIT_MS - 1)
        .remove
        .is_empty());
    assert_eq!(
        schedule(&s, 1_000 + REPLACEMENT_WAIT_MS).remove,
        vec![old.clone()]
    );
    // No other node can take the slot: nothing to wait for.
    let (mut s, node, old) = web_settled();
    crate::state::each_mut(&mut s.nodes, |n| {
        n.availability = Availability::Drain;
        n.availability_since_ms = 1_000;
    });
    let a = schedule(&s, 1_000);
    assert!(a.remove.contains(&old), "{a:?}");
    assert_eq!(a.pending.len(), 2, "{a:?}");
    let _ = node;
    // A global task has no replacement.
    let mut s = cluster();
    service(&mut s, "agent", 0, |spec| spec.mode = ServiceMode::Global);
    settle(&mut s);
    evacuate(&mut s, NodeId(2), "leaving", 1_000);
    let a = schedule(&s, 1_000);
    assert_eq!(a.remove.len(), 1);
    assert_eq!(s.tasks[&a.remove[0]].node, NodeId(2));
}

#[test]
fn a_down_nodes_tasks_go_at_once_and_an_undrained_node_keeps_its_own() {
    let (mut s, node, old) = web_settled();
    s.nodes.get_mut(&node).unwrap().status = NodeStatus::Down;
    let a = schedule(&s, 0);
    assert_eq!(a.remove, vec![old]);
    // Drained, then active again before the replacement runs: the old task stays and
    // the replacement, a duplicate of its slot, goes.
    let (mut s, node, old) = web_settled();
    evacuate(&mut s, node, "drain", 1_000);
    let a = schedule(&s, 1_000);
    let new = apply_round(&mut s, &a, TaskState::Assigned);
    s.nodes.get_mut(&node).unwrap().availability = Availability::Active;
    let a = schedule(&s, 1_500);
    assert_eq!(a.remove, new);
    assert!(s.tasks.contains_key(&old));
}
