//! Zero-error service changes on a real lab: `service update --force` of a 3-replica
//! HTTP service with a health check, under a closed-loop load of GETs from the client
//! host through a published port (the mesh) and through the L7 ingress, fails no
//! request — start-first, and stop-first with 3 replicas. The tasks being replaced
//! leave every backend set first, drain for the stop grace period, then stop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use shoal_tests::{require_root, wait_until, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

/// Starts `shoal tool load` in the client host against `addr` for `secs` seconds.
fn load(lab: &Lab, addr: &str, host: &str, secs: u64) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &lab.host_ns("client"), BIN, "tool", "load"])
        .args([
            &format!("http://{addr}/"),
            "--host",
            host,
            "--concurrency",
            "4",
        ])
        .args(["--duration", &format!("{secs}s"), "--timeout", "3s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shoal tool load")
}

/// The report of a load run.
fn report(child: Child) -> Value {
    let out = child.wait_with_output().expect("load output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no load report ({e}): {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Waits until `service` has 3 tasks of its current version running and healthy, and
/// none other.
fn settled(lab: &Lab, service: &str) {
    wait_until(
        &format!("3 healthy tasks of {service}"),
        Duration::from_secs(60),
        || {
            let s = lab.json("n1", &["service", "inspect", service]);
            let version = s["version"].as_u64().unwrap_or(0);
            let tasks = s["tasks"].as_array().cloned().unwrap_or_default();
            let good = tasks
                .iter()
                .filter(|t| {
                    t["state"] == "running"
                        && t["health"] == "healthy"
                        && t["version"].as_u64() == Some(version)
                        && t["desired"] == "running"
                })
                .count();
            if good == 3 && tasks.len() == 3 {
                Ok(())
            } else {
                Err(format!("{tasks:?}"))
            }
        },
    );
}

/// Waits until GETs to `addr` with `Host: host` from the client host are answered.
fn answers(lab: &Lab, addr: &str, host: &str) {
    wait_until(
        &format!("{addr} ({host}) to answer"),
        Duration::from_secs(30),
        || {
            let out = Command::new("ip")
                .args(["netns", "exec", &lab.host_ns("client"), BIN, "tool", "load"])
                .args([
                    &format!("http://{addr}/"),
                    "--host",
                    host,
                    "--requests",
                    "20",
                ])
                .args(["--duration", "5s", "--timeout", "1s"])
                .output()
                .expect("shoal tool load");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let s: Value = serde_json::from_str(stdout.trim()).unwrap_or_default();
            let failed = s["failures"].as_array().is_none_or(|f| !f.is_empty());
            if out.status.success() && s["ok"].as_u64() == Some(20) && !failed {
                Ok(())
            } else {
                Err(stdout)
            }
        },
    );
}

/// Runs the update `args` of `echo` under load through n1's published port and n2's
/// ingress, and checks that it completes with no failed request.
fn update_under_load(lab: &Lab, args: &[&str]) {
    let mesh = format!("{}:8080", lab.ip("n1"));
    let ingress = format!("{}:80", lab.ip("n2"));
    let before = lab.json("n1", &["service", "inspect", "echo"])["version"]
        .as_u64()
        .unwrap();
    answers(lab, &mesh, "load");
    answers(lab, &ingress, "echo.test");
    let mesh_load = load(lab, &mesh, "load", 40);
    let ingress_load = load(lab, &ingress, "echo.test", 40);
    std::thread::sleep(Duration::from_secs(2));
    let mut full = vec!["service", "update"];
    full.extend(args);
    full.push("echo");
    lab.ok("n1", &full);
    wait_until("the update to complete", Duration::from_secs(35), || {
        let s = lab.json("n1", &["service", "inspect", "echo"]);
        match s["update_status"]["state"].as_str() {
            Some("completed") if s["version"].as_u64() == Some(before + 1) => Ok(()),
            _ => Err(format!("{}", s["update_status"])),
        }
    });
    settled(lab, "echo");
    for (what, child) in [("mesh", mesh_load), ("ingress", ingress_load)] {
        let r = report(child);
        let failures = r["failures"].as_array().cloned().unwrap_or_default();
        assert!(
            failures.is_empty(),
            "{what}: {} of {} requests failed: {failures:?}",
            failures.len(),
            r["requests"]
        );
        let answered = r["answered_by"].as_object().cloned().unwrap_or_default();
        assert!(
            answered.len() >= 6,
            "{what}: the old and the new tasks answered: {answered:?}"
        );
        assert!(r["ok"].as_u64().unwrap_or(0) > 100, "{what}: {r}");
    }
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn rolling_updates_under_load_fail_no_request() {
    require_root("rolling_updates_under_load_fail_no_request");
    let lab = Lab::up(BIN, 3, 1);
    lab.ok("n1", &["network", "create", "--attachable", "web"]);
    let health = format!("{BIN} tool load http://127.0.0.1:80/ --requests 1 --timeout 1s --check");
    lab.create_service(
        &[
            "--name",
            "echo",
            "--network",
            "web",
            "--replicas",
            "3",
            "--publish",
            "8080:80",
            "--label",
            "shoal.http.routers.echo.rule=Host(`echo.test`)",
            "--health-cmd",
            &health,
            "--health-interval",
            "300ms",
            "--health-timeout",
            "2s",
            "--health-retries",
            "2",
            "--stop-grace-period",
            "2s",
            "--update-monitor",
            "1s",
        ],
        &[BIN, "tool", "http", "--port", "80"],
    );
    settled(&lab, "echo");
    let inspect = lab.ok("n1", &["service", "inspect", "echo"]);
    assert!(
        inspect.contains("order stop-first") && inspect.contains("Stop grace: 2s"),
        "{inspect}"
    );
    update_under_load(&lab, &["--force", "--update-order", "start-first"]);
    update_under_load(&lab, &["--force", "--update-order", "stop-first"]);
    let ps = lab.ok("n1", &["service", "ps", "echo"]);
    assert!(ps.contains("HEALTH") && ps.contains("healthy"), "{ps}");
}
