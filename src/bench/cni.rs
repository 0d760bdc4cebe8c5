//! `shoal bench cni`: how long a CNI ADD (and DEL) takes through shoal's plugin,
//! against the reference `bridge` + `host-local` plugins doing the same work on the
//! same lab host, in rotating order; and podman containers on a shoal network across
//! two lab hosts, against shoal's own sandboxes in the same lab.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use shoal_bench::report::Report;
use shoal_bench::stats::Summary;
use shoal_dataplane::netns;

use super::overlay::{measure_interleaved, shoal_network, Figures, Pair};
use super::LabGuard;
use crate::lab::podman::PodmanPaths;
use crate::lab::{self, Lab, LabOptions, LabPaths};

/// The lab the bench runs on.
const LAB: &str = "benchcni";
/// ADD/DEL pairs per plugin.
const ROUNDS: usize = 100;
/// Where Debian's containernetworking-plugins are.
const REFERENCE_DIR: &str = "/usr/lib/cni";

/// One plugin under measurement: how the runtime would call it.
struct Plugin {
    /// What the report calls it.
    label: &'static str,
    /// The binary.
    binary: PathBuf,
    /// The network config on stdin.
    config: Value,
    /// The lab host whose namespace the plugin runs in.
    host: &'static str,
}

/// Runs `plugin` for `command` on container `id` in `ns`; returns how long it took.
fn call(lab: &Lab, plugin: &Plugin, command: &str, id: &str, ns: &str) -> anyhow::Result<Duration> {
    let host_ns = netns::open(&lab.host(plugin.host)?.namespace)?;
    let mut cmd = Command::new(&plugin.binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", ns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", REFERENCE_DIR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    netns::command_in(&mut cmd, &host_ns, false)?;
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("run {}", plugin.binary.display()))?;
    child
        .stdin
        .take()
        .context("the plugin's stdin")?
        .write_all(plugin.config.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "{} {command}: {}{}",
            plugin.label,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(took)
}

/// ADD and DEL timings of each plugin, `ROUNDS` each, the order rotating every round
/// so no plugin always goes first.
fn time_add_del(lab: &Lab, plugins: &[Plugin]) -> anyhow::Result<Vec<(Summary, Summary)>> {
    let mut adds = vec![Vec::with_capacity(ROUNDS); plugins.len()];
    let mut dels = vec![Vec::with_capacity(ROUNDS); plugins.len()];
    for round in 0..ROUNDS {
        for turn in 0..plugins.len() {
            let i = (round + turn) % plugins.len();
            let name = crate::lab::topology::ns_name(LAB, &format!("add{i}"));
            netns::create(&name)?;
            let ns = netns::path_of(&name).to_string_lossy().into_owned();
            let id = format!("bench{round}x{i}");
            let timed = call(lab, &plugins[i], "ADD", &id, &ns)
                .and_then(|add| Ok((add, call(lab, &plugins[i], "DEL", &id, &ns)?)));
            let _ = netns::delete(&name);
            let (add, del) = timed?;
            adds[i].push(add);
            dels[i].push(del);
        }
    }
    Ok(adds
        .iter()
        .zip(&dels)
        .map(|(a, d)| (Summary::of(a), Summary::of(d)))
        .collect())
}

/// The image every host gets.
const IMAGE: &str = "busybox:bench";

/// `podman ARGS` with `host`'s own podman, in its namespace.
fn podman(lab: &Lab, host: &str, args: &[&str], stdin: Option<&Path>) -> anyhow::Result<String> {
    let paths = PodmanPaths::new(&LabPaths::new(LAB), host);
    let host_ns = netns::open(&lab.host(host)?.namespace)?;
    let mut cmd = Command::new("podman");
    cmd.args(args).envs(paths.env());
    if let Some(file) = stdin {
        cmd.stdin(std::fs::File::open(file)?);
    }
    netns::command_in(&mut cmd, &host_ns, false)?;
    let out = cmd.output().context("podman")?;
    if !out.status.success() {
        bail!(
            "podman {} on {host}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A busybox image on every host, from a tarball of busybox-static.
fn import_busybox(lab: &Lab, hosts: &[&str]) -> anyhow::Result<()> {
    let tarball = super::tools::busybox_tarball(LAB, &["sh", "sleep"])?;
    let imported = hosts
        .iter()
        .try_for_each(|host| podman(lab, host, &["import", "-", IMAGE], Some(&tarball)).map(drop));
    let _ = std::fs::remove_file(&tarball);
    imported
}

/// Two podman containers, on n1 and n2, on shoal network `network` through the CNI
/// plugin, as `shoal cni install` sets it up.
fn podman_pair(lab: &Lab, network: &str) -> anyhow::Result<Pair> {
    let mut ends = Vec::new();
    for host in ["n1", "n2"] {
        let paths = PodmanPaths::new(&LabPaths::new(LAB), host);
        crate::cni::install::install(&crate::cni::install::Install {
            network: network.into(),
            socket: lab.host(host)?.socket.clone(),
            bin_dir: paths.cni_bin_dir.clone(),
            conf_dir: paths.cni_conf_dir.clone(),
            portmap: false,
        })?;
        let name = format!("c-{host}");
        podman(
            lab,
            host,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                network,
                IMAGE,
                "sleep",
                "3600",
            ],
            None,
        )?;
        let f = format!(
            "{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}} {{{{.NetworkSettings.SandboxKey}}}}"
        );
        let out = podman(lab, host, &["inspect", "-f", &f, &name], None)?;
        let (ip, ns) = out.split_once(' ').context("podman inspect")?;
        ends.push((ip.parse::<std::net::Ipv4Addr>()?, PathBuf::from(ns)));
    }
    Ok(Pair {
        client: ends[0].1.clone(),
        server: ends[1].1.clone(),
        server_ip: ends[1].0.into(),
    })
}

/// Runs the benchmark.
pub async fn run() -> anyhow::Result<Report> {
    lab::down(LAB);
    let _guard = LabGuard(LAB);
    let bridge = Path::new(REFERENCE_DIR).join("bridge");
    if !bridge.exists() {
        super::tools::apt("bridge CNI plugin", "containernetworking-plugins")
            .map_err(anyhow::Error::msg)?;
    }
    super::tools::apt("podman", "podman").map_err(anyhow::Error::msg)?;
    eprintln!("bench cni: a 2-node lab with podman ...");
    let options = LabOptions {
        podman: true,
        ..Default::default()
    };
    let lab = lab::up_with(LAB, 2, 1, &options).await?;
    let spec = shoal_control::state::NetworkSpec {
        name: "cni".into(),
        attachable: true,
        ..Default::default()
    };
    let _: shoal_control::api::NetworkInfo = lab.client("n1")?.post("/v1/networks", &spec).await?;
    // A container that stays on each node, as on a host in use: the network's bridge
    // and VXLAN device stay up, as the reference's bridge does once made (shoal removes
    // a network's devices from a node when its last endpoint there leaves).
    for host in ["n1", "n2"] {
        let ns = crate::lab::topology::ns_name(LAB, &format!("resident-{host}"));
        netns::create(&ns)?;
        let request = shoal_control::api::AttachRequest {
            network: "cni".into(),
            netns: ns,
            ..Default::default()
        };
        let _: shoal_control::api::EndpointInfo =
            lab.client(host)?.post("/v1/attach", &request).await?;
    }
    let host_local_dir = std::env::temp_dir().join(format!("shoal-{LAB}-host-local"));
    let _ = std::fs::remove_dir_all(&host_local_dir);
    let shoal = std::env::current_exe()?;
    let shoal_on = |host: &'static str, label: &'static str| Plugin {
        label,
        binary: shoal.clone(),
        config: json!({
            "cniVersion": "1.0.0",
            "name": "cni",
            "type": "shoal",
            "socket": lab.host(host).map(|h| h.socket.to_string_lossy().into_owned()).unwrap_or_default(),
        }),
        host,
    };
    let plugins = [
        shoal_on("n1", "shoal, on the leader"),
        shoal_on("n2", "shoal, on a worker"),
        Plugin {
            label: "bridge + host-local",
            binary: bridge,
            config: json!({
                "cniVersion": "1.0.0",
                "name": "ref",
                "type": "bridge",
                "bridge": "refbr0",
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.98.0.0/16"}]],
                    "dataDir": host_local_dir,
                },
            }),
            host: "n1",
        },
    ];
    eprintln!("bench cni: {ROUNDS} ADD + DEL per plugin, in rotating order ...");
    let lab_for_timing = lab.clone();
    let timings =
        tokio::task::spawn_blocking(move || time_add_del(&lab_for_timing, &plugins)).await?;
    let _ = std::fs::remove_dir_all(&host_local_dir);
    let [(leader_add, leader_del), (worker_add, worker_del), (ref_add, ref_del)]: [(
        Summary,
        Summary,
    ); 3] = timings?
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected three sets of timings"))?;
    eprintln!("bench cni: podman containers and shoal sandboxes across hosts, in turn ...");
    import_busybox(&lab, &["n1", "n2"])?;
    let containers = podman_pair(&lab, "cni")?;
    let sandboxes = shoal_network(&lab, "sbx", false).await?;
    let [c, s]: [Figures; 2] = measure_interleaved(vec![(containers, 5600), (sandboxes, 5700)])
        .await?
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected two sets of figures"))?;
    let mut r = Report::new("cni");
    let same_lab = "shoal sandboxes, same lab";
    r.add(
        "TCP 1 stream, podman container to container across hosts",
        c.one,
        "Gbit/s",
        same_lab,
        s.one,
    );
    r.add("TCP 4 streams", c.four, "Gbit/s", same_lab, s.four);
    r.add(
        "request/response p50",
        c.rtt.p50_ms * 1000.0,
        "µs",
        same_lab,
        s.rtt.p50_ms * 1000.0,
    );
    let reference = "bridge + host-local, same host";
    r.add(
        "ADD p50, on the leader",
        leader_add.p50_ms,
        "ms",
        reference,
        ref_add.p50_ms,
    );
    r.add(
        "ADD p99, on the leader",
        leader_add.p99_ms,
        "ms",
        reference,
        ref_add.p99_ms,
    );
    r.add(
        "ADD p50, on a worker",
        worker_add.p50_ms,
        "ms",
        reference,
        ref_add.p50_ms,
    );
    r.add(
        "ADD p99, on a worker",
        worker_add.p99_ms,
        "ms",
        reference,
        ref_add.p99_ms,
    );
    r.add(
        "DEL p50, on the leader",
        leader_del.p50_ms,
        "ms",
        reference,
        ref_del.p50_ms,
    );
    r.add(
        "DEL p50, on a worker",
        worker_del.p50_ms,
        "ms",
        reference,
        ref_del.p50_ms,
    );
    r.notes.push(format!(
        "{ROUNDS} ADD + DEL per plugin into fresh namespaces, with one container staying on the network on each node (as the reference's bridge stays once made), timed from spawning the plugin to its exit (as a runtime sees it), the plugins' order rotating every round. shoal does more per ADD: a Raft commit of the endpoint (a round trip to the leader from a worker), its DNS names, and its place in every node's overlay; the reference allocates from a file and makes a local bridge. Containers from a busybox image, podman 4.3 with its CNI backend; TCP from the bench's threads inside the containers' namespaces. Goals: ADD p50/p99 ≤ the reference; containers ≥ 0.95× sandboxes."
    ));
    Ok(r)
}
