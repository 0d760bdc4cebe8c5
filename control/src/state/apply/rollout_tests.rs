//! Rolling changes in the state machine: what bumps the service version (Docker's
//! task spec changes and `--force`), `--rollback`, update statuses, tasks shut down,
//! and health reports; then the scheduler and the updater together.

use super::service_tests::{cluster, run, web};
use super::*;
use crate::state::{
    schedule, updater, DesiredState, Health, ServiceChanges, Task, TaskState, UpdateOrder,
    UpdateState,
};

fn update(s: &mut ClusterState, changes: ServiceChanges) -> Result<Applied, ApplyError> {
    run(
        s,
        Command::UpdateService {
            name: "web".into(),
            changes,
        },
    )
}

fn with_web(replicas: u32) -> ClusterState {
    let mut s = cluster(3);
    run(
        &mut s,
        Command::CreateService {
            id: "5e41ce00".into(),
            spec: web(replicas, &[]),
        },
    )
    .unwrap();
    s
}

#[test]
fn task_spec_changes_and_force_bump_the_version_others_do_not() {
    let mut s = with_web(2);
    let version = |s: &ClusterState| s.services["web"].version;
    update(
        &mut s,
        ServiceChanges {
            replicas: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(version(&s), 0, "scaling replaces nothing");
    assert_eq!(s.services["web"].update_status, None);
    update(
        &mut s,
        ServiceChanges {
            args: Some(vec!["--port".into(), "81".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(version(&s), 1);
    assert_eq!(s.services["web"].spec.command, ["server", "--port", "81"]);
    let status = s.services["web"].update_status.clone().unwrap();
    assert_eq!(status.state, UpdateState::Updating);
    update(
        &mut s,
        ServiceChanges {
            force: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(version(&s), 2, "--force with nothing else");
    update(
        &mut s,
        ServiceChanges {
            health_cmd: Some("true".into()),
            health_interval_ms: Some(1_000),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(version(&s), 3);
    let h = s.services["web"].spec.healthcheck.clone().unwrap();
    assert_eq!((h.interval_ms, h.timeout_ms, h.retries), (1_000, 30_000, 3));
    update(
        &mut s,
        ServiceChanges {
            update_order: Some(UpdateOrder::StartFirst),
            update_parallelism: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(version(&s), 3, "the update config replaces nothing");
    assert_eq!(s.services["web"].spec.update_config.parallelism, 0);
}

#[test]
fn bad_health_and_update_options_are_refused() {
    let mut s = with_web(1);
    for (changes, words) in [
        (
            ServiceChanges {
                health_retries: Some(2),
                ..Default::default()
            },
            "--health-cmd",
        ),
        (
            ServiceChanges {
                health_cmd: Some("true".into()),
                health_interval_ms: Some(10),
                ..Default::default()
            },
            "at least 100ms",
        ),
        (
            ServiceChanges {
                health_cmd: Some(" ".into()),
                ..Default::default()
            },
            "shell command",
        ),
        (
            ServiceChanges {
                rollback: true,
                ..Default::default()
            },
            "no previous spec",
        ),
        (
            ServiceChanges {
                rollback: true,
                force: true,
                ..Default::default()
            },
            "takes no other change",
        ),
    ] {
        let e = update(&mut s, changes).unwrap_err().to_string();
        assert!(e.contains(words), "{e}");
    }
    assert_eq!(s.services["web"].version, 0);
}

#[test]
fn rollback_goes_back_to_the_previous_spec() {
    let mut s = with_web(1);
    update(
        &mut s,
        ServiceChanges {
            command: Some(vec!["other".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    update(
        &mut s,
        ServiceChanges {
            rollback: true,
            ..Default::default()
        },
    )
    .unwrap();
    let svc = &s.services["web"];
    assert_eq!(svc.spec.command, ["server"]);
    assert_eq!(svc.version, 2, "the old spec runs in new tasks");
    assert_eq!(
        svc.update_status.as_ref().unwrap().state,
        UpdateState::RollbackStarted
    );
    assert_eq!(svc.previous_spec.as_ref().unwrap().command, ["other"]);
}

/// Applies what the scheduler, the updater and the reaper say, as the leader does.
fn tick(s: &mut ClusterState, now: u64) {
    let p = schedule(s, now);
    let u = updater::plan(s, now);
    let (mut remove, mut shutdown) = updater::split_removals(s, p.remove);
    remove.extend(updater::reap(s, now));
    shutdown.extend(u.shutdown);
    let version = |svc: &str| s.services[svc].version;
    let create: Vec<Task> = p
        .create
        .into_iter()
        .chain(u.create)
        .enumerate()
        .map(|(i, (svc, slot, node))| {
            let id = format!("{:08x}{i:04}", now);
            Task::new(&id, &svc, slot, node, version(&svc), now)
        })
        .collect();
    let at = now;
    apply(
        s,
        None,
        &Proposal {
            at_ms: at,
            command: Command::PlaceTasks {
                create,
                remove,
                shutdown,
            },
        },
    )
    .unwrap();
    for (service, status) in u.status {
        apply(
            s,
            None,
            &Proposal {
                at_ms: at,
                command: Command::SetUpdateStatus { service, status },
            },
        )
        .unwrap();
    }
}

/// Every node reports its tasks: running and healthy, or shutdown once shut down.
fn report(s: &mut ClusterState, now: u64) {
    let tasks: Vec<Task> = s.tasks.values().cloned().collect();
    for t in tasks {
        let (state, health) = match t.desired {
            DesiredState::Running => (TaskState::Running, Some(Health::Healthy)),
            DesiredState::Shutdown => (TaskState::Shutdown, t.health),
        };
        apply(
            s,
            None,
            &Proposal {
                at_ms: now,
                command: Command::SetTaskState {
                    id: t.id.clone(),
                    node: t.node,
                    state,
                    message: String::new(),
                    restarts: 0,
                    health,
                },
            },
        )
        .unwrap();
    }
}

/// How many tasks take traffic, at each tick of a rolling update of 3 replicas.
fn roll(order: UpdateOrder) -> Vec<usize> {
    let mut s = with_web(3);
    let mut now = 1_000;
    tick(&mut s, now);
    report(&mut s, now);
    update(
        &mut s,
        ServiceChanges {
            health_cmd: Some("true".into()),
            update_order: Some(order),
            update_monitor_ms: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    let mut serving = Vec::new();
    for _ in 0..40 {
        now += 500;
        tick(&mut s, now);
        let svc = &s.services["web"];
        serving.push(s.tasks.values().filter(|t| t.takes_traffic(true)).count());
        if svc.update_status.as_ref().unwrap().state == UpdateState::Completed {
            assert!(s.tasks.values().all(|t| t.version == 1));
            assert_eq!(s.tasks.len(), 3, "{:?}", s.tasks);
            return serving;
        }
        report(&mut s, now);
    }
    panic!("the update did not complete: {:?}", s.services["web"]);
}

#[test]
fn start_first_keeps_three_tasks_serving_throughout() {
    let serving = roll(UpdateOrder::StartFirst);
    assert!(serving.iter().all(|n| *n >= 3), "{serving:?}");
}

#[test]
fn stop_first_keeps_two_of_three_serving_throughout() {
    let serving = roll(UpdateOrder::StopFirst);
    assert!(serving.iter().all(|n| *n >= 2), "{serving:?}");
    assert!(
        serving.contains(&2),
        "one slot at a time is out: {serving:?}"
    );
}

#[test]
fn a_scale_down_drains_the_tasks_it_removes() {
    let mut s = with_web(3);
    tick(&mut s, 1_000);
    report(&mut s, 1_000);
    update(
        &mut s,
        ServiceChanges {
            replicas: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    tick(&mut s, 2_000);
    let draining: Vec<&Task> = s
        .tasks
        .values()
        .filter(|t| t.desired == DesiredState::Shutdown)
        .collect();
    assert_eq!(draining.len(), 2);
    assert!(draining.iter().all(|t| t.shutdown_at_ms == Some(2_000)));
    assert_eq!(s.tasks.len(), 3, "still there while they drain");
    report(&mut s, 2_500);
    tick(&mut s, 3_000);
    assert_eq!(s.tasks.len(), 1, "reaped once stopped");
}
