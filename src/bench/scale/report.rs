//! The report of `shoal bench scale`: one block of figures per (nodes, endpoints),
//! compared with the goals of issue 18, and the growth exponents.

use std::collections::BTreeMap;

use shoal_bench::report::Report;
use shoal_control::liveness::DOWN_AFTER;

use super::mesh::MeshPoint;
use super::{fit, Point};

/// The goals of issue 18.
const GOAL_P99_MS: f64 = 1000.0;
const GOAL_RSS_MIB: f64 = 30.0;
const GOAL_CPU_PCT: f64 = 1.0;

pub(super) fn report(points: &[Point], meshes: &[MeshPoint]) -> Report {
    let mut r = Report::new("scale");
    for m in meshes {
        mesh_figures(&mut r, m);
    }
    for p in points {
        let at = format!("{} nodes, {} endpoints", p.nodes, p.endpoints);
        let kinds = [
            ("attach", &p.attach),
            ("detach", &p.detach),
            ("service scale up", &p.scale_up),
            ("service scale down", &p.scale_down),
            ("node down", &p.node_down),
        ];
        // A kind not measured at this point (node down with no worker) has no figure.
        for (kind, s) in kinds.into_iter().filter(|(_, s)| s.n > 0) {
            r.add(
                &format!("{at}: {kind} → every node, p50"),
                s.p50_ms,
                "ms",
                "goal p99",
                GOAL_P99_MS,
            );
            r.add(
                &format!("{at}: {kind} → every node, p99"),
                s.p99_ms,
                "ms",
                "goal p99",
                GOAL_P99_MS,
            );
            r.add(
                &format!("{at}: {kind} → every node, max"),
                s.max_ms,
                "ms",
                "goal p99",
                GOAL_P99_MS,
            );
        }
        if p.node_down.n > 0 {
            r.add(
                &format!("{at}: node down detected (kill → Down commit)"),
                p.down_detect_ms,
                "ms",
                "heartbeat timeout",
                DOWN_AFTER.as_secs_f64() * 1000.0,
            );
        }
        r.add(
            &format!("{at}: agent RSS at rest, max"),
            p.rss_max_mib,
            "MiB",
            "goal",
            GOAL_RSS_MIB,
        );
        r.add(
            &format!("{at}: agent private memory (RssAnon) at rest, max"),
            p.anon_max_mib,
            "MiB",
            "goal (RSS)",
            GOAL_RSS_MIB,
        );
        r.add(
            &format!("{at}: agent RSS at rest, mean"),
            p.rss_mean_mib,
            "MiB",
            "goal",
            GOAL_RSS_MIB,
        );
        r.add(
            &format!("{at}: agent CPU at rest, max"),
            p.cpu_rest_max_pct,
            "% core",
            "goal",
            GOAL_CPU_PCT,
        );
        r.add(
            &format!("{at}: agent CPU at rest, mean"),
            p.cpu_rest_mean_pct,
            "% core",
            "goal",
            GOAL_CPU_PCT,
        );
        r.add(
            &format!("{at}: leader CPU at rest"),
            p.leader_cpu_rest_pct,
            "% core",
            "goal (any agent)",
            GOAL_CPU_PCT,
        );
        r.add(
            &format!("{at}: agent CPU in a burst of attaches, mean"),
            p.cpu_burst_mean_pct,
            "% core",
            "at rest",
            p.cpu_rest_mean_pct,
        );
        r.add(
            &format!("{at}: leader CPU in the burst"),
            p.leader_cpu_burst_pct,
            "% core",
            "at rest",
            p.leader_cpu_rest_pct,
        );
        r.add(
            &format!("{at}: agent RSS after the burst, max"),
            p.rss_burst_max_mib,
            "MiB",
            "at rest",
            p.rss_max_mib,
        );
        r.add(
            &format!("{at}: burst attaches/s (one commit each)"),
            p.burst_rate,
            "/s",
            "goal p99 (1/s)",
            1.0,
        );
        if p.top_up_retries > 0 {
            r.add(
                &format!("{at}: requests putting the endpoints in sent again (no quorum)"),
                p.top_up_retries as f64,
                "",
                "nodes (one request each)",
                p.nodes as f64,
            );
        }
        r.add(
            &format!("{at}: burst requests sent again (no quorum, timeout)"),
            p.burst_retries as f64,
            "",
            "requests",
            p.burst_requests as f64,
        );
        r.add(
            &format!("{at}: burst requests failed (5 tries)"),
            p.burst_failed as f64,
            "",
            "requests",
            p.burst_requests as f64,
        );
        r.add(
            &format!("{at}: managers' watch bytes per change, all watchers"),
            p.watch_bytes_per_change / 1024.0,
            "KiB",
            "snapshot",
            p.state_bytes as f64 / 1024.0,
        );
        r.add(
            &format!("{at}: managers' watch bytes per change and watcher"),
            p.watch_bytes_per_change / p.watchers.max(1) as f64,
            "B",
            "snapshot",
            p.state_bytes as f64,
        );
        r.add(
            &format!("{at}: whole-state snapshots sent to watchers during the changes"),
            p.watch_snapshots as f64,
            "",
            "watch streams",
            p.watchers as f64,
        );
        r.add(
            &format!("{at}: leader's Raft directory"),
            p.raft_bytes as f64 / 1024.0,
            "KiB",
            "snapshot",
            p.state_bytes as f64 / 1024.0,
        );
    }
    let curve = |name: &str, f: &dyn Fn(&Point) -> f64| {
        let mut notes = Vec::new();
        let mut by_nodes: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
        let mut by_endpoints: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
        for p in points {
            by_nodes
                .entry(p.nodes)
                .or_default()
                .push((p.endpoints as f64, f(p)));
            by_endpoints
                .entry(p.endpoints)
                .or_default()
                .push((p.nodes as f64, f(p)));
        }
        for (n, pts) in by_nodes {
            if let Some(b) = fit::exponent(&pts) {
                notes.push(format!("{name} ∝ endpoints^{b:.2} at {n} nodes"));
            }
        }
        for (e, pts) in by_endpoints {
            if let Some(b) = fit::exponent(&pts) {
                notes.push(format!("{name} ∝ nodes^{b:.2} at {e} endpoints"));
            }
        }
        notes
    };
    let mut fits = Vec::new();
    fits.extend(curve("attach p99", &|p| p.attach.p99_ms));
    fits.extend(curve("detach p99", &|p| p.detach.p99_ms));
    fits.extend(curve("service scale up p99", &|p| p.scale_up.p99_ms));
    fits.extend(curve("node down p99", &|p| p.node_down.p99_ms));
    fits.extend(curve("agent RSS max", &|p| p.rss_max_mib));
    fits.extend(curve("agent CPU at rest (mean)", &|p| p.cpu_rest_mean_pct));
    fits.extend(curve("leader CPU in the burst", &|p| {
        p.leader_cpu_burst_pct
    }));
    fits.extend(curve("watch bytes per change", &|p| {
        p.watch_bytes_per_change
    }));
    if !fits.is_empty() {
        r.notes.push(format!(
            "Growth (log-log least squares): {}.",
            fits.join("; ")
        ));
    }
    r.notes.push("Every endpoint here but one client sandbox per node exists only in the cluster state (POST /v1/bench/endpoints): every node carries it in its FDB, proxy-ARP table and resolver as any endpoint of another node; no sandbox. Convergence runs from sending the change (its commit included) until the node's kernel announced both its FDB and neighbour entries (netlink events read in the node's namespace) and the node's resolver (a real query to the network gateway, polled) answered accordingly; one sample per node and change. CPU from /proc/PID/stat, RSS from VmRSS.".into());
    let (tasks, more) = (
        super::SERVICE_TASKS,
        super::SERVICE_TASKS + super::SCALE_STEP,
    );
    let down = DOWN_AFTER.as_millis();
    let beat = shoal_control::liveness::HEARTBEAT_INTERVAL.as_millis();
    let tick = shoal_control::liveness::LEADER_TICK.as_millis();
    r.notes.push(format!("Service scale: the service's tasks (state-only endpoints of the service, as `attach --service` makes) go from {tasks} to {more} in one commit on one node and back; a node has converged when its resolver lists exactly the new set under tasks.<service>, its kernel committed the new set in the nftables maps the service's tasks are drawn from (nf_tables events): its routing mesh's map for the published port (node namespace) and the VIP map of its one real client sandbox, and, other nodes than the owner, its kernel added (removed) the FDB and neighbour entries of the tasks that came (went). Node down: the last node, a worker holding tasks, is killed (SIGKILL); convergence runs from the Down commit's proposal (the node's status_since) until the other nodes' resolvers, published maps and VIP maps leave its tasks out. Its endpoints' FDB and neighbour entries stay by design: a Down node's endpoints stay in the state and leave only the balancers (VIPs, routing mesh, ingress) and DNS's task lists. Detection (kill → Down commit) is shown against the heartbeat timeout ({down} ms; heartbeats every {beat} ms, the leader judging every {tick} ms). One kill per point; the node is started again after it."));
    r
}

/// The encrypted full mesh of one lab size.
fn mesh_figures(r: &mut Report, m: &MeshPoint) {
    if !r.notes.iter().any(|n| n.starts_with("Encrypted mesh:")) {
        r.notes.push("Encrypted mesh: after a lab's points, every node's client sandbox joins one encrypted network (8 attaches in flight at once), so every agent runs WireGuard with a peer per other node and greets each with a handshake initiation when its data path starts. Per node: from its own attach's answer until the agent's own account (`shoal status`, polled every 100 ms) lists a completed handshake with every peer (a node attached early waits for the peers attached after it); whole mesh: from the first attach. Memory: growth of each agent's RssAnon across it; CPU: the agents' mean over the time the whole mesh took; handshakes/s: the n(n−1)/2 node pairs over that time.".into());
    }
    let at = format!("{} nodes, encrypted mesh ({} peers each)", m.nodes, m.peers);
    for (stat, ms) in [
        ("p50", m.complete.p50_ms),
        ("p99", m.complete.p99_ms),
        ("max", m.complete.max_ms),
    ] {
        r.add(
            &format!("{at}: its attach → node handshaken with every peer, {stat}"),
            ms,
            "ms",
            "goal p99",
            GOAL_P99_MS,
        );
    }
    r.add(
        &format!("{at}: first attach → every node handshaken with every peer"),
        m.whole_ms,
        "ms",
        "goal p99",
        GOAL_P99_MS,
    );
    r.add(
        &format!("{at}: nodes without every handshake after 120 s"),
        m.incomplete as f64,
        "",
        "nodes",
        m.nodes as f64,
    );
    r.add(
        &format!("{at}: agent private memory grown with the mesh, mean"),
        m.anon_growth_mean_mib,
        "MiB",
        "goal (RSS)",
        GOAL_RSS_MIB,
    );
    r.add(
        &format!("{at}: agent private memory grown with the mesh, max"),
        m.anon_growth_max_mib,
        "MiB",
        "goal (RSS)",
        GOAL_RSS_MIB,
    );
    r.add(
        &format!("{at}: agent CPU while the mesh forms, mean"),
        m.cpu_mean_pct,
        "% core",
        "goal at rest",
        GOAL_CPU_PCT,
    );
    r.add(
        &format!("{at}: handshakes completed per second, whole mesh"),
        m.handshakes_per_s,
        "/s",
        "pairs",
        (m.nodes * m.peers / 2) as f64,
    );
}
