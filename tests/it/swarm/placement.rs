//! Where tasks go and how ports publish, as Swarm does it.

use super::*;

/// swarmkit manager/scheduler/filter.go (HostPortFilter, MaxReplicasFilter) and docs
/// engine/swarm/services.md ("--replicas-max-per-node"; host mode "only one task per
/// node"): what cannot be placed stays pending with Swarm's reason.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn host_mode_ports_and_replicas_max_per_node_leave_the_rest_pending() {
    require_root("host_mode_ports_and_replicas_max_per_node_leave_the_rest_pending");
    let lab = Lab::up(BIN, 2, 1);
    lab.ok("n1", &["network", "create", "apps"]);
    lab.create_service(
        &[
            "--name",
            "edge",
            "--network",
            "apps",
            "--replicas",
            "3",
            "--publish",
            "mode=host,8090:80",
        ],
        &http_tool(),
    );
    let ts = wait_running(&lab, "edge", 2);
    let mut nodes: Vec<&str> = in_state(&ts, "running")
        .iter()
        .map(|t| t["node"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2"], "one task per node for the host port");
    let pending = in_state(&ts, "pending");
    assert_eq!(pending.len(), 1, "{ts:?}");
    assert_eq!(
        pending[0]["message"],
        "no suitable node (host-mode port already in use on 2 nodes)"
    );
    let table = lab.ok("n1", &["service", "ps", "edge"]);
    assert!(
        table.contains("pending") && table.contains("host-mode port already in use"),
        "{table}"
    );
    lab.create_service(
        &[
            "--name",
            "capped",
            "--network",
            "apps",
            "--replicas",
            "3",
            "--replicas-max-per-node",
            "1",
        ],
        &http_tool(),
    );
    let ts = wait_running(&lab, "capped", 2);
    let pending = in_state(&ts, "pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0]["message"],
        "no suitable node (max replicas per node limit exceed)"
    );
    let ls = lab.ok("n1", &["service", "ls"]);
    assert!(ls.contains("2/3 (max 1 per node)"), "{ls}");
    // Lifting the cap places the third task.
    lab.ok(
        "n1",
        &[
            "service",
            "update",
            "--replicas-max-per-node",
            "0",
            "capped",
        ],
    );
    wait_running(&lab, "capped", 3);
}

/// docs: engine/swarm/services.md ("Placement constraints", "Placement preferences")
/// and swarmkit manager/constraint/constraint.go.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn constraints_and_spread_preferences_place_tasks_like_swarm() {
    require_root("constraints_and_spread_preferences_place_tasks_like_swarm");
    let lab = Lab::up(BIN, 3, 1);
    lab.ok("n1", &["network", "create", "apps"]);
    lab.create_service(
        &[
            "--name",
            "db",
            "--network",
            "apps",
            "--replicas",
            "2",
            "--constraint",
            "node.role==manager",
        ],
        &http_tool(),
    );
    let ts = wait_running(&lab, "db", 2);
    assert!(ts.iter().all(|t| t["node"] == "n1"), "{ts:?}");
    lab.create_service(
        &[
            "--name",
            "gpu",
            "--network",
            "apps",
            "--constraint",
            "node.labels.gpu==yes",
        ],
        &http_tool(),
    );
    let ts = wait_until("gpu to be pending", Duration::from_secs(15), || {
        let t = lab.tasks("gpu");
        if in_state(&t, "pending").len() == 1 {
            Ok(t)
        } else {
            Err(format!("{t:?}"))
        }
    });
    assert_eq!(
        ts[0]["message"],
        "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    );
    lab.ok("n1", &["node", "update", "--label-add", "gpu=yes", "n3"]);
    let ts = wait_running(&lab, "gpu", 1);
    assert_eq!(ts[0]["node"], "n3");
    for (node, zone) in [("n1", "a"), ("n2", "a"), ("n3", "b")] {
        lab.ok(
            "n1",
            &[
                "node",
                "update",
                "--label-add",
                &format!("zone={zone}"),
                node,
            ],
        );
    }
    lab.create_service(
        &[
            "--name",
            "spread",
            "--network",
            "apps",
            "--replicas",
            "4",
            "--placement-pref",
            "spread=node.labels.zone",
        ],
        &http_tool(),
    );
    let ts = wait_running(&lab, "spread", 4);
    let in_b = ts.iter().filter(|t| t["node"] == "n3").count();
    assert_eq!(in_b, 2, "zone b holds half the tasks: {ts:?}");
    let e = lab.fails(
        "n1",
        &[
            "service",
            "create",
            "--name",
            "bad",
            "--constraint",
            "node.role=manager",
            "--",
            BIN,
        ],
    );
    assert!(
        e.contains("constraint expected one operator from ==, !="),
        "{e}"
    );
}

/// docker/cli opts/swarmopts/port.go and cli/command/service/update.go (updatePorts),
/// swarmkit portallocator.go (30000-32767): `--publish TARGET`, the long form,
/// `--publish-add` of a published port, `--publish-rm` by target port.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn ports_publish_as_the_docker_cli_does() {
    require_root("ports_publish_as_the_docker_cli_does");
    let lab = Lab::up(BIN, 1, 1);
    lab.ok("n1", &["network", "create", "apps"]);
    lab.create_service(
        &[
            "--name",
            "web",
            "--network",
            "apps",
            "--publish",
            "80",
            "--publish",
            "published=8088,target=80,protocol=tcp,mode=ingress",
        ],
        &http_tool(),
    );
    let ports = |lab: &Lab| -> Vec<String> {
        lab.json("n1", &["service", "inspect", "web"])["spec"]["publish"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{}:{}", p["published"], p["target"]))
            .collect()
    };
    assert_eq!(ports(&lab), ["30000:80", "8088:80"]);
    wait_running(&lab, "web", 1);
    let client = lab.host_ns("client");
    serves(
        &client,
        at(&lab.ip("n1"), 30000),
        "service=web",
        "the dynamic port to answer",
        Duration::from_secs(15),
    );
    lab.ok(
        "n1",
        &["service", "update", "--publish-add", "8088:80", "web"],
    );
    assert_eq!(
        ports(&lab),
        ["30000:80", "8088:80"],
        "publishing again is a no-op"
    );
    let e = lab.fails("n1", &["service", "update", "--publish-rm", "81", "web"]);
    assert!(
        e.contains("publishes no such port") && e.contains("8088:80/tcp"),
        "{e}"
    );
    lab.ok(
        "n1",
        &["service", "update", "--publish-rm", "8088:80", "web"],
    );
    assert_eq!(ports(&lab), ["30000:80"]);
    lab.ok("n1", &["service", "update", "--publish-rm", "80", "web"]);
    assert!(ports(&lab).is_empty());
}
