//! The control plane under `shoal lab` faults: a partition with the leader on the
//! minority side, a paused leader, a lossy and a rate-limited link, a full disk and a
//! shifted clock; and `lab heal` leaving no rule, qdisc or filler behind.

use std::time::{Duration, Instant};

use shoal_tests::{exec_in, require_root, wait_until, Lab};

use super::{label, labels, leader, BIN};

/// The leader `host` sees, if its replica names one among `among`.
fn leader_among(lab: &Lab, host: &str, among: &[String]) -> Result<String, String> {
    // Reads are linearizable: while no leader answers, `node ls` fails (as Docker's
    // does), which is one more reason to wait.
    let out = lab.shoal(host, &["node", "ls", "--format", "json"]);
    if !out.ok() {
        return Err(format!("{host}: node ls: {}", out.stderr));
    }
    let nodes: Vec<serde_json::Value> = serde_json::from_str(&out.stdout)
        .map_err(|e| format!("{host}: node ls is not JSON ({e}): {}", out.stdout))?;
    nodes
        .iter()
        .find(|n| n["manager_status"] == "Leader")
        .and_then(|n| n["name"].as_str().map(String::from))
        .filter(|l| among.contains(l))
        .ok_or_else(|| format!("{host} sees no leader among {among:?}: {nodes:?}"))
}

/// What `host` has of the lab's faults: nft tables and eth0's root qdisc.
fn traces(lab: &Lab, host: &str) -> String {
    let ns = lab.host_ns(host);
    let tables = exec_in(&ns, &["nft", "list", "tables"]).stdout;
    let qdisc = exec_in(&ns, &["tc", "qdisc", "show", "dev", "eth0", "root"]).stdout;
    format!("{tables}{qdisc}")
}

/// Packets lost of `count` pings from the client to `ip`.
fn ping_loss(lab: &Lab, ip: &str, count: usize) -> usize {
    let n = count.to_string();
    let out = exec_in(
        &lab.host_ns("client"),
        &["ping", "-q", "-n", "-c", &n, "-i", "0.02", "-W", "1", ip],
    );
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("received"))
        .unwrap_or_else(|| panic!("no ping summary: {}{}", out.stdout, out.stderr));
    let received: usize = line
        .split(", ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line:?}"));
    count - received
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn partitions_pauses_and_slow_links_behave_and_heal_leaves_nothing() {
    require_root("partitions_pauses_and_slow_links_behave_and_heal_leaves_nothing");
    let lab = Lab::up(BIN, 3, 3);
    let old = leader(&lab, "n1");
    let majority: Vec<String> = lab.nodes().into_iter().filter(|h| *h != old).collect();
    assert!(label(&lab, &old, "n1", "before=partition"));

    // The leader alone on one side, the other two managers on the other; the client is
    // in no group and still reaches everyone.
    let out = lab.partition(&format!("{} / {}", majority.join(","), old));
    assert!(out.contains("Partitioned"), "{out}");
    let status = lab.cli(&["lab", "status", "--name", &lab.name]).stdout;
    assert!(
        status.contains(&format!("partition {} / {old}", majority.join(","))),
        "{status}"
    );

    // The minority cannot commit: the write fails, and says why.
    let start = Instant::now();
    let err = lab.fails(&old, &["node", "update", "--label-add", "lost=1", "n1"]);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert!(
        err.contains("no quorum") || err.contains("majority"),
        "the minority's refusal should say why: {err}"
    );
    // The majority elects a leader of its own and takes writes.
    wait_until("a leader in the majority", Duration::from_secs(15), || {
        leader_among(&lab, &majority[0], &majority)
    });
    wait_until("a write in the majority", Duration::from_secs(10), || {
        label(&lab, &majority[0], "n1", "during=partition")
            .then_some(())
            .ok_or_else(|| "refused".to_string())
    });

    // Healed, the old leader catches up with what the majority wrote.
    lab.heal();
    wait_until("the minority to catch up", Duration::from_secs(20), || {
        let l = labels(&lab, &old, "n1");
        (l["during"] == "partition" && l["before"] == "partition")
            .then_some(())
            .ok_or_else(|| format!("{old} has {l}"))
    });
    assert!(labels(&lab, &old, "n1").get("lost").is_none());

    // A paused leader is replaced within seconds; resumed, it follows.
    let current = wait_until("one leader again", Duration::from_secs(15), || {
        leader_among(&lab, &old, &lab.nodes())
    });
    let others: Vec<String> = lab.nodes().into_iter().filter(|h| *h != current).collect();
    lab.pause(&current);
    let paused = Instant::now();
    // Within the bound of the killed-leader test, with slack for a loaded machine.
    let took = wait_until(
        "a write after the leader was paused",
        Duration::from_secs(20),
        || {
            label(&lab, &others[0], "n2", "after=pause")
                .then(|| paused.elapsed())
                .ok_or_else(|| "refused".to_string())
        },
    );
    eprintln!("first write {took:?} after the leader was paused");
    wait_until(
        "a new leader after the pause",
        Duration::from_secs(10),
        || leader_among(&lab, &others[0], &others),
    );
    lab.resume(&current);
    wait_until(
        "the resumed node to catch up",
        Duration::from_secs(20),
        || {
            (labels(&lab, &current, "n2")["after"] == "pause")
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        },
    );

    // Loss on n1's egress shows as lost pings from the client; a rate is a tbf qdisc.
    let n1 = lab.ip("n1");
    assert_eq!(ping_loss(&lab, &n1, 20), 0, "no loss before `lab slow`");
    lab.slow("n1", &["--loss", "50"]);
    let lost = ping_loss(&lab, &n1, 100);
    assert!((20..=80).contains(&lost), "{lost} of 100 lost at 50% loss");
    lab.slow("n2", &["--rate", "1mbit"]);
    assert!(traces(&lab, "n2").contains("tbf"), "{}", traces(&lab, "n2"));
    let delay = lab.cli(&["lab", "slow", "--name", &lab.name, "n3", "--delay", "50"]);
    if !delay.ok() {
        assert!(delay.stderr.contains("sch_netem"), "{}", delay.stderr);
    }

    // Heal: no table, no qdisc of ours anywhere, nothing in force.
    let healed = lab.heal();
    assert!(
        healed.contains("loss 50%") && healed.contains("rate 1mbit"),
        "{healed}"
    );
    for host in lab.nodes().iter().chain([&"client".to_string()]) {
        let t = traces(&lab, host);
        for gone in ["shoal_lab_cut", "shoal_lab_loss", "tbf", "netem"] {
            assert!(!t.contains(gone), "{gone} left on {host}: {t}");
        }
    }
    assert_eq!(ping_loss(&lab, &n1, 20), 0, "loss after heal");
    let status = lab.cli(&["lab", "status", "--name", &lab.name]).stdout;
    assert!(!status.contains("Faults in force"), "{status}");
}

/// The PID of `host`'s agent, from the lab's PID file.
fn agent_pid(lab: &Lab, host: &str) -> String {
    let file = format!("/run/shoal/labs/{}/{host}.pid", lab.name);
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .trim()
        .to_string()
}

/// The clock offsets of `host`'s agent's time namespace.
fn timens_offsets(lab: &Lab, host: &str) -> String {
    let file = format!("/proc/{}/timens_offsets", agent_pid(lab, host));
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn a_full_disk_refuses_writes_until_healed_and_a_shifted_clock_changes_nothing() {
    require_root("a_full_disk_refuses_writes_until_healed_and_a_shifted_clock_changes_nothing");
    let lab = Lab::up_with(BIN, 1, 1, &["--data-tmpfs", "16M"]);
    assert!(label(&lab, "n1", "n1", "before=fill"));
    let out = lab.fill("n1");
    assert!(out.contains("until it was full"), "{out}");

    // Some write soon needs a page the disk does not have: from then on every write is
    // refused with the reason, none acknowledged.
    let err = wait_until("a write refused", Duration::from_secs(20), || {
        let out = lab.shoal("n1", &["node", "update", "--label-add", "big=1", "n1"]);
        if out.ok() {
            Err("accepted".to_string())
        } else {
            Ok(out.stderr)
        }
    });
    assert!(
        err.contains("storage error") && err.contains("No space left on device"),
        "{err}"
    );
    assert!(lab.log("n1").contains("os error 28"), "ENOSPC in the log");

    // Space back: the Raft is started again on the log on disk, without a restart.
    let pid = agent_pid(&lab, "n1");
    lab.heal();
    wait_until("writes to work again", Duration::from_secs(20), || {
        label(&lab, "n1", "n1", "after=fill")
            .then_some(())
            .ok_or_else(|| "refused".to_string())
    });
    assert_eq!(agent_pid(&lab, "n1"), pid, "the agent was not restarted");
    let l = labels(&lab, "n1", "n1");
    assert_eq!(
        (&l["before"], &l["after"]),
        (&"fill".into(), &"fill".into()),
        "{l}"
    );

    // The agent restarted with its monotonic clock an hour ahead keeps its state and
    // works; its time namespace says so.
    lab.clock("n1", "+1h");
    assert_ne!(agent_pid(&lab, "n1"), pid, "restarted");
    let status = lab.json("n1", &["status"]);
    let offsets = timens_offsets(&lab, "n1");
    assert!(offsets.contains("3600"), "{offsets}");
    assert!(status["raft"].is_object(), "{status}");
    wait_until(
        "a write after the clock jump",
        Duration::from_secs(20),
        || {
            label(&lab, "n1", "n1", "after=clock")
                .then_some(())
                .ok_or_else(|| "refused".to_string())
        },
    );
    assert_eq!(labels(&lab, "n1", "n1")["before"], "fill");
    lab.heal();
    let offsets = timens_offsets(&lab, "n1");
    assert!(!offsets.contains("3600"), "healed clock: {offsets}");

    // `lab down` with the agent paused and its disk full leaves no process or mount.
    lab.pause("n1");
    lab.fill("n1");
    let pid = agent_pid(&lab, "n1");
    let out = lab.cli(&["lab", "down", "--name", &lab.name]);
    assert!(out.ok(), "lab down: {}", out.stderr);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("/labs/{}/", lab.name)),
        "a tmpfs of the lab is still mounted"
    );
    wait_until("the paused agent gone", Duration::from_secs(5), || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let gone = stat.is_empty() || stat.contains(") Z");
        gone.then_some(()).ok_or(stat)
    });
}
