//! A single-node Swarm: a service's own labels (not its containers') route to its
//! tasks, balanced, and scaling adds tasks to the route.

use std::collections::BTreeSet;

use super::*;

/// The bodies (task hostnames) of `n` answers for `host`.
fn answered_by(lab: &Lab, at: SocketAddr, host: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .filter_map(|_| match get(lab, at, host, "/") {
            Some((200, body)) => Some(body),
            _ => None,
        })
        .collect()
}

#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn a_swarm_service_with_labels_is_balanced_over_its_tasks_and_scales() {
    let lab = lab(&[]);
    let at = ingress(&lab);
    let ip = lab.ip("n1");
    docker_ok(
        &lab,
        &[
            "swarm",
            "init",
            "--advertise-addr",
            &format!("{ip}:2477"),
            "--listen-addr",
            &format!("{ip}:2477"),
            "--data-path-port",
            "4790",
        ],
    );
    // A Swarm-scoped bridge: every node makes it locally, so the tasks are on a
    // bridge in n1's namespace, where the agent's ingress reaches them.
    docker_ok(
        &lab,
        &[
            "network",
            "create",
            "-d",
            "bridge",
            "--scope",
            "swarm",
            "--attachable",
            "--subnet",
            "10.78.0.0/24",
            "tasks",
        ],
    );
    let cmd = httpd("$(hostname)", "exit 0");
    let mut args = vec![
        "service",
        "create",
        "--detach",
        "--name",
        "app",
        "--network",
        "tasks",
        "--replicas",
        "2",
        "--label",
        "traefik.http.routers.app.rule=Host(`app.test`)",
        "--label",
        "traefik.http.services.app.loadbalancer.server.port=80",
        // Container labels do not count in Swarm mode: this one would break the route.
        "--container-label",
        "traefik.docker.network=nowhere",
        IMAGE,
    ];
    args.extend(cmd.iter().map(String::as_str));
    docker_ok(&lab, &args);
    wait_until(
        "two tasks to answer app.test",
        Duration::from_secs(30),
        || {
            let seen = answered_by(&lab, at, "app.test", 10);
            if seen.len() == 2 {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    );
    docker_ok(&lab, &["service", "scale", "--detach", "app=3"]);
    wait_until(
        "three tasks to answer app.test",
        Duration::from_secs(30),
        || {
            let seen = answered_by(&lab, at, "app.test", 15);
            if seen.len() == 3 {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    );
    // A label change on the service is in force at once.
    let start = Instant::now();
    docker_ok(
        &lab,
        &[
            "service",
            "update",
            "--detach",
            "--label-add",
            "traefik.http.routers.app.rule=Host(`shop.test`)",
            "app",
        ],
    );
    let moved = time_until("the new rule", Duration::from_secs(5), || {
        match get(&lab, at, "shop.test", "/") {
            Some((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    eprintln!(
        "docker service update --label-add → rule in force: {moved:?} (command took {:?})",
        start.elapsed() - moved
    );
    assert!(moved < Duration::from_secs(1), "{moved:?}");
    docker_ok(&lab, &["service", "rm", "app"]);
    let _ = docker(&lab, &["swarm", "leave", "--force"]);
}
