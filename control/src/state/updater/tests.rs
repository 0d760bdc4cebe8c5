//! The updater on hand-built states: batches, order, delay, health gating, failure
//! actions, and the reaper.

use std::collections::BTreeMap;

use super::*;
use crate::state::fixtures::node;
use crate::state::{HealthCheck, Role, ServiceSpec, UpdateConfig};

const NOW: u64 = 1_000_000;

/// Nodes 1-3; service `web` with 3 replicas at version 1, update started at NOW - 100,
/// tasks of version 0 running in slots 0-2 on nodes 1-3.
fn cluster(cfg: UpdateConfig, checked: bool) -> ClusterState {
    let mut s = ClusterState {
        cluster_id: "c".into(),
        ..Default::default()
    };
    for id in 1..=3 {
        let n = node(id, Role::Manager, &[]);
        s.nodes.insert(n.id, n);
    }
    let spec = ServiceSpec {
        name: "web".into(),
        mode: ServiceMode::Replicated { replicas: 3 },
        command: vec!["run".into()],
        update_config: cfg,
        healthcheck: checked.then(|| HealthCheck::new("true")),
        ..Default::default()
    };
    s.services.insert(
        "web".into(),
        Service {
            id: "web-id".into(),
            spec: spec.clone(),
            vips: BTreeMap::new(),
            vips6: BTreeMap::new(),
            created_at_ms: 0,
            updated_at_ms: NOW - 100,
            version: 1,
            previous_spec: Some(Box::new(spec)),
            update_status: Some(UpdateStatus {
                state: UpdateState::Updating,
                started_at_ms: NOW - 100,
                completed_at_ms: None,
                message: String::new(),
            }),
        },
    );
    for slot in 0..3 {
        add(&mut s, &format!("old{slot}"), slot, slot as u64 + 1, 0, 0);
    }
    s
}

/// A running task of `web` (healthy), last changed at `at`.
fn add(s: &mut ClusterState, id: &str, slot: u32, node: u64, version: u64, at: u64) {
    let mut t = Task::new(id, "web", slot, NodeId(node), version, at);
    t.state = TaskState::Running;
    t.health = Some(Health::Healthy);
    s.tasks.insert(id.into(), t);
}

fn cfg(parallelism: u32, order: UpdateOrder) -> UpdateConfig {
    UpdateConfig {
        parallelism,
        order,
        monitor_ms: 0,
        ..Default::default()
    }
}

#[test]
fn stop_first_shuts_down_one_old_task_at_a_time() {
    let s = cluster(cfg(1, UpdateOrder::StopFirst), false);
    let p = plan(&s, NOW);
    assert_eq!(p.shutdown, vec!["old0"]);
    assert!(p.create.is_empty(), "the scheduler fills the slot");
}

#[test]
fn a_slot_without_a_task_is_in_progress() {
    let mut s = cluster(cfg(1, UpdateOrder::StopFirst), false);
    s.tasks.remove("old0");
    assert_eq!(plan(&s, NOW), UpdatePlan::default());
}

#[test]
fn parallelism_sets_the_batch_and_zero_is_all_at_once() {
    let s = cluster(cfg(2, UpdateOrder::StopFirst), false);
    assert_eq!(plan(&s, NOW).shutdown, vec!["old0", "old1"]);
    let s = cluster(cfg(0, UpdateOrder::StopFirst), false);
    assert_eq!(plan(&s, NOW).shutdown, vec!["old0", "old1", "old2"]);
}

#[test]
fn start_first_starts_the_new_task_on_the_old_ones_node() {
    let s = cluster(cfg(1, UpdateOrder::StartFirst), false);
    let p = plan(&s, NOW);
    assert_eq!(p.create, vec![("web".to_string(), 0, NodeId(1))]);
    assert!(p.shutdown.is_empty());
}

#[test]
fn start_first_waits_for_the_new_task_to_be_healthy_then_shuts_the_old_one_down() {
    let mut s = cluster(cfg(1, UpdateOrder::StartFirst), true);
    add(&mut s, "new0", 0, 1, 1, NOW - 50);
    s.tasks.get_mut("new0").unwrap().health = Some(Health::Starting);
    assert_eq!(
        plan(&s, NOW),
        UpdatePlan::default(),
        "not healthy yet: nothing moves"
    );
    s.tasks.get_mut("new0").unwrap().health = Some(Health::Healthy);
    let p = plan(&s, NOW);
    assert_eq!(p.shutdown, vec!["old0"]);
    assert_eq!(
        p.create,
        vec![("web".to_string(), 1, NodeId(2))],
        "slot 0 is done, so the next one starts"
    );
}

#[test]
fn without_a_health_check_running_is_enough() {
    let mut s = cluster(cfg(1, UpdateOrder::StartFirst), false);
    add(&mut s, "new0", 0, 1, 1, NOW - 50);
    s.tasks.get_mut("new0").unwrap().health = None;
    assert_eq!(plan(&s, NOW).shutdown, vec!["old0"]);
}

#[test]
fn the_monitor_period_holds_the_next_batch() {
    let mut c = cfg(1, UpdateOrder::StartFirst);
    c.monitor_ms = 1_000;
    let mut s = cluster(c, false);
    add(&mut s, "new0", 0, 1, 1, NOW - 400);
    assert_eq!(plan(&s, NOW), UpdatePlan::default());
    let p = plan(&s, NOW + 600);
    assert_eq!(p.shutdown, vec!["old0"]);
    assert_eq!(p.create.len(), 1);
}

#[test]
fn the_delay_separates_batches() {
    let mut c = cfg(1, UpdateOrder::StopFirst);
    c.delay_ms = 5_000;
    let mut s = cluster(c, false);
    s.tasks.remove("old0");
    add(&mut s, "new0", 0, 1, 1, NOW - 50);
    assert!(plan(&s, NOW).shutdown.is_empty(), "within the delay");
    assert_eq!(plan(&s, NOW - 50 + 5_000).shutdown, vec!["old1"]);
}

#[test]
fn a_failed_new_task_pauses_the_update() {
    let mut s = cluster(cfg(1, UpdateOrder::StopFirst), false);
    s.tasks.remove("old0");
    add(&mut s, "new0", 0, 1, 1, NOW - 50);
    s.tasks.get_mut("new0").unwrap().state = TaskState::Failed;
    let p = plan(&s, NOW);
    assert!(p.shutdown.is_empty() && p.create.is_empty());
    let (svc, st) = &p.status[0];
    assert_eq!((svc.as_str(), st.state), ("web", UpdateState::Paused));
    assert!(st.message.contains("new0"), "{}", st.message);
    // Paused: nothing moves until the next `service update`.
    s.services.get_mut("web").unwrap().update_status = Some(st.clone());
    s.tasks.get_mut("new0").unwrap().state = TaskState::Running;
    assert_eq!(plan(&s, NOW + 10), UpdatePlan::default());
}

#[test]
fn failure_action_continue_goes_on_and_rollback_rolls_back() {
    let mut c = cfg(2, UpdateOrder::StopFirst);
    c.failure_action = FailureAction::Continue;
    let mut s = cluster(c, true);
    s.tasks.remove("old0");
    add(&mut s, "new0", 0, 1, 1, NOW - 50);
    s.tasks.get_mut("new0").unwrap().health = Some(Health::Unhealthy);
    let p = plan(&s, NOW);
    assert_eq!(p.shutdown, vec!["old1"], "one slot busy, one more goes");
    assert!(p.status.is_empty());
    s.services
        .get_mut("web")
        .unwrap()
        .spec
        .update_config
        .failure_action = FailureAction::Rollback;
    let p = plan(&s, NOW);
    assert_eq!(p.rollback, vec!["web"]);
    assert!(p.shutdown.is_empty());
}

#[test]
fn a_rollback_that_fails_pauses() {
    let mut c = cfg(1, UpdateOrder::StopFirst);
    c.failure_action = FailureAction::Rollback;
    let mut s = cluster(c, false);
    s.services
        .get_mut("web")
        .unwrap()
        .update_status
        .as_mut()
        .unwrap()
        .state = UpdateState::RollbackStarted;
    s.tasks.remove("old0");
    add(&mut s, "new0", 0, 1, 1, NOW - 50);
    s.tasks.get_mut("new0").unwrap().restarts = 1;
    let p = plan(&s, NOW);
    assert!(p.rollback.is_empty());
    assert_eq!(p.status[0].1.state, UpdateState::RollbackPaused);
}

#[test]
fn the_update_completes_when_every_slot_is_done() {
    let mut s = cluster(cfg(1, UpdateOrder::StopFirst), false);
    for slot in 0..3 {
        s.tasks.remove(&format!("old{slot}"));
        add(
            &mut s,
            &format!("new{slot}"),
            slot,
            slot as u64 + 1,
            1,
            NOW - 50,
        );
    }
    let p = plan(&s, NOW);
    assert_eq!(p.status.len(), 1);
    let st = &p.status[0].1;
    assert_eq!(st.state, UpdateState::Completed);
    assert_eq!(st.completed_at_ms, Some(NOW));
    s.services.get_mut("web").unwrap().update_status = Some(st.clone());
    assert_eq!(plan(&s, NOW + 1), UpdatePlan::default(), "completed stays");
}

#[test]
fn host_mode_ports_and_unavailable_nodes_fall_back_to_stop_first() {
    let mut s = cluster(cfg(1, UpdateOrder::StartFirst), false);
    s.nodes.get_mut(&NodeId(1)).unwrap().availability = Availability::Drain;
    let p = plan(&s, NOW);
    assert_eq!(p.shutdown, vec!["old0"]);
    assert!(p.create.is_empty());
}

#[test]
fn removals_on_live_nodes_drain_and_the_reaper_takes_them_when_stopped() {
    let mut s = cluster(cfg(1, UpdateOrder::StopFirst), false);
    s.nodes.get_mut(&NodeId(2)).unwrap().status = NodeStatus::Down;
    let (remove, shutdown) = split_removals(&s, vec!["old0".into(), "old1".into()]);
    assert_eq!(
        (remove, shutdown),
        (vec!["old1".into()], vec!["old0".into()])
    );
    let t = s.tasks.get_mut("old0").unwrap();
    t.desired = DesiredState::Shutdown;
    t.shutdown_at_ms = Some(NOW);
    assert!(reap(&s, NOW + 1).is_empty(), "still draining");
    assert_eq!(
        reap(&s, NOW + 10_000 + REAP_SLACK_MS + 1),
        vec!["old0"],
        "stuck past the grace period"
    );
    s.tasks.get_mut("old0").unwrap().state = TaskState::Shutdown;
    assert_eq!(reap(&s, NOW + 1), vec!["old0"]);
}

#[test]
fn shut_down_tasks_take_no_traffic_and_health_gates_it() {
    let mut t = Task::new("t1", "web", 0, NodeId(1), 0, 0);
    t.state = TaskState::Running;
    assert!(t.takes_traffic(false));
    assert!(
        !t.takes_traffic(true),
        "a checked task without a passed check"
    );
    t.health = Some(Health::Healthy);
    assert!(t.takes_traffic(true));
    t.health = Some(Health::Unhealthy);
    assert!(!t.takes_traffic(true));
    t.health = Some(Health::Healthy);
    t.desired = DesiredState::Shutdown;
    assert!(!t.takes_traffic(true));
}
