//! The big lab, CI-sized: `shoal bench scale` on 20 real agents with 1,000 state-only
//! endpoints. Every attach and detach shows in every node's kernel (FDB and proxy-ARP
//! entries, read as netlink events in its namespace) and resolver (real queries)
//! within the bound; so does every scale step of a service (its tasks in every node's
//! resolver, published-port map and client sandbox's VIP map too) and a killed worker
//! (its tasks out of every other node's resolver and maps, from its Down commit),
//! whose Down is committed within a bound of the heartbeat timeout; no agent's RSS
//! passes its bound, at rest or after a burst of attaches. The 100-node run is the benchmark, not this test.

use serde_json::Value;
use shoal_tests::{require_root, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

/// Convergence bound for any node, any change (p99 and max): generous for a debug
/// build on two shared cores; the release figure at this size is far below it.
const CONVERGE_MS: f64 = 5_000.0;
/// RSS bound for any agent (debug builds are larger than release ones).
const RSS_MIB: f64 = 120.0;
/// From a kill to the Down commit: about the heartbeat timeout (2 s), less the time
/// since the last heartbeat before the kill (half a second, more when heartbeats run
/// late on a loaded machine), plus the leader's tick and slack for a debug build.
const DETECT_MS: (f64, f64) = (500.0, 6_000.0);
/// How much more private memory an agent may have once it runs WireGuard with 19
/// peers (the data path's buffers and threads, and the peers' sessions).
const MESH_MIB: f64 = 32.0;

fn figure(report: &Value, name: &str) -> f64 {
    report["figures"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["name"] == name))
        .and_then(|f| f["value"].as_f64())
        .unwrap_or_else(|| panic!("no figure {name:?} in {report:#}"))
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn twenty_agents_and_a_thousand_endpoints_converge_within_bounds() {
    require_root("scale");
    let lab = Lab::unique_name();
    let out = shoal_tests::run(std::process::Command::new(BIN).args([
        "bench",
        "scale",
        "--nodes",
        "20",
        "--endpoints",
        "1000",
        "--repeats",
        "3",
        "--burst",
        "100",
        "--rest-secs",
        "5",
        "--lab",
        &lab,
        "--format",
        "json",
    ]));
    // The bench removes its lab also when it fails; make sure.
    shoal_tests::run(std::process::Command::new(BIN).args(["lab", "down", "--name", &lab]));
    assert!(
        out.ok(),
        "bench scale failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    let report: Value = serde_json::from_str(&out.stdout).expect("the report is JSON");
    let at = "20 nodes, 1000 endpoints";
    for kind in [
        "attach",
        "detach",
        "service scale up",
        "service scale down",
        "node down",
    ] {
        for stat in ["p99", "max"] {
            let ms = figure(&report, &format!("{at}: {kind} → every node, {stat}"));
            assert!(
                ms > 0.0 && ms < CONVERGE_MS,
                "{kind} {stat} {ms} ms (bound {CONVERGE_MS} ms)"
            );
        }
    }
    let detect = figure(
        &report,
        &format!("{at}: node down detected (kill → Down commit)"),
    );
    assert!(
        detect > DETECT_MS.0 && detect < DETECT_MS.1,
        "node down detected after {detect} ms (bounds {DETECT_MS:?})"
    );
    // What the managers stream per change is the change, not the state: no watcher is
    // sent a snapshot, and each gets a few hundred bytes per change (pings included).
    let per_watcher = figure(
        &report,
        &format!("{at}: managers' watch bytes per change and watcher"),
    );
    assert!(
        per_watcher > 0.0 && per_watcher < 4096.0,
        "{per_watcher} bytes per change and watcher"
    );
    let snapshots = figure(
        &report,
        &format!("{at}: whole-state snapshots sent to watchers during the changes"),
    );
    assert_eq!(snapshots, 0.0, "snapshots sent during the changes");
    // The encrypted full mesh: every agent with a handshake with each of its 19 peers,
    // soon, and 19 peers cost an agent little memory.
    let mesh = "20 nodes, encrypted mesh (19 peers each)";
    let incomplete = figure(
        &report,
        &format!("{mesh}: nodes without every handshake after 120 s"),
    );
    assert_eq!(incomplete, 0.0, "nodes without every handshake");
    let complete = figure(
        &report,
        &format!("{mesh}: first attach → every node handshaken with every peer"),
    );
    assert!(
        complete > 0.0 && complete < CONVERGE_MS,
        "mesh handshaken after {complete} ms (bound {CONVERGE_MS} ms)"
    );
    let grown = figure(
        &report,
        &format!("{mesh}: agent private memory grown with the mesh, max"),
    );
    assert!(
        grown < MESH_MIB,
        "{grown} MiB more with the mesh (bound {MESH_MIB})"
    );
    for name in [
        format!("{at}: agent RSS at rest, max"),
        format!("{at}: agent RSS after the burst, max"),
    ] {
        let mib = figure(&report, &name);
        assert!(
            mib > 0.0 && mib < RSS_MIB,
            "{name}: {mib} MiB (bound {RSS_MIB})"
        );
    }
}
