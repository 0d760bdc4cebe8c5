//! `shoal lab`: a cluster on one machine, hosts as network namespaces.
//!
//! A lab named LAB owns exactly: namespaces `shl-LAB-*`, the directories
//! `/run/shoal/labs/LAB` (sockets, PIDs, logs, `lab.json`) and `/var/lib/shoal/labs/LAB`
//! (agents' data), and the processes inside its namespaces. `lab down` removes all of
//! them, whether or not `lab up` finished. With `--podman` it also owns its hosts'
//! podman containers (their processes, cgroups and `/run/netns/netns-*` namespaces; see
//! [`podman`]), which `lab down` removes first, while the agents still run.

mod agents;
pub mod docker;
pub mod faults;
pub mod jepsen;
pub mod podman;
pub mod topology;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use shoal_control::api::{
    InitRequest, InitResponse, JoinCommand, JoinResult, JoinTokenResponse, NodeInfo,
};
use shoal_control::state::NodeStatus;
use shoal_dataplane::netns;

use crate::client::ApiClient;

pub use agents::{running_pid, start as start_agent, stop as stop_agent};

/// One host of a lab, as `lab status --format json` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    /// n1..nN or client.
    pub name: String,
    /// Its network namespace.
    pub namespace: String,
    /// Its underlay address (the one its agent advertises).
    pub underlay_ip: IpAddr,
    /// Every underlay address of its eth0 (the advertised one first), when it has more
    /// than `underlay_ip`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub underlay_ips: Vec<IpAddr>,
    /// Its agent's API socket (empty for the client).
    pub socket: PathBuf,
    /// manager, worker or client.
    pub role: String,
    /// The name `wg show` knows its agent's encrypted data path by (none for the client).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub wg_interface: String,
}

/// A lab's description, kept in `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lab {
    /// Its name.
    pub name: String,
    /// Its hosts.
    pub hosts: Vec<Host>,
    /// Upstream resolvers the agents forward to.
    #[serde(default)]
    pub dns_upstream: Vec<std::net::SocketAddr>,
    /// Every node host runs a dockerd of its own.
    #[serde(default)]
    pub docker: bool,
    /// More arguments for every dockerd.
    #[serde(default)]
    pub docker_args: Vec<String>,
    /// Every node host can run podman (its own storage, state and CNI directory).
    #[serde(default)]
    pub podman: bool,
    /// More arguments for every agent.
    #[serde(default)]
    pub agent_args: Vec<String>,
    /// The size of the tmpfs each agent's data directory is on, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_tmpfs: Option<String>,
    /// The address families of the underlay.
    #[serde(default)]
    pub underlay: topology::Underlay,
}

/// How a lab is built beyond its size.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// Upstream resolvers for the agents' DNS (and the hosts' dockerds).
    pub dns_upstream: Vec<std::net::SocketAddr>,
    /// Start a dockerd in every node host.
    pub docker: bool,
    /// More arguments for every dockerd (`--live-restore`, ...).
    pub docker_args: Vec<String>,
    /// Make podman usable in every node host.
    pub podman: bool,
    /// More arguments for every agent (`--lb-idle-timeout=30`, ...).
    pub agent_args: Vec<String>,
    /// Put every agent's data directory on a tmpfs of this size (`16M`).
    pub data_tmpfs: Option<String>,
    /// The address families of the underlay (IPv4 by default).
    pub underlay: topology::Underlay,
}

impl Host {
    /// Every underlay address of the host, the advertised one first.
    pub fn addrs(&self) -> Vec<IpAddr> {
        if self.underlay_ips.is_empty() {
            vec![self.underlay_ip]
        } else {
            self.underlay_ips.clone()
        }
    }
}

impl Lab {
    /// The host named `name`.
    pub fn host(&self, name: &str) -> anyhow::Result<&Host> {
        self.hosts.iter().find(|h| h.name == name).with_context(|| {
            let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
            format!(
                "lab {} has no host {name:?} (hosts: {})",
                self.name,
                names.join(", ")
            )
        })
    }

    /// The hosts that run an agent.
    pub fn nodes(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role != "client")
    }

    /// A client of the agent on `host`.
    pub fn client(&self, host: &str) -> anyhow::Result<ApiClient> {
        let h = self.host(host)?;
        if h.role == "client" {
            bail!("{host} runs no agent");
        }
        ApiClient::new(Some(&h.socket.to_string_lossy()))
    }
}

/// Where a lab keeps its files.
#[derive(Debug, Clone)]
pub struct LabPaths {
    run: PathBuf,
    data: PathBuf,
}

impl LabPaths {
    /// The paths of lab `name`.
    pub fn new(name: &str) -> LabPaths {
        LabPaths {
            run: Path::new("/run/shoal/labs").join(name),
            data: Path::new("/var/lib/shoal/labs").join(name),
        }
    }
    /// The lab's name.
    pub fn name(&self) -> &str {
        self.run
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }
    fn file(&self) -> PathBuf {
        self.run.join("lab.json")
    }
    fn socket(&self, host: &str) -> PathBuf {
        self.run.join(format!("{host}.sock"))
    }
    fn pid_file(&self, host: &str) -> PathBuf {
        self.run.join(format!("{host}.pid"))
    }
    /// The agent log of `host`.
    pub fn log_file(&self, host: &str) -> PathBuf {
        self.run.join(format!("{host}.log"))
    }
    pub(crate) fn data_dir(&self, host: &str) -> PathBuf {
        self.data.join(host)
    }
}

/// Checks a lab name: 1–12 lower-case letters, digits or `-`, starting with a letter
/// (it becomes part of namespace names).
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 12
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!("invalid lab name {name:?}: use 1-12 lower-case letters, digits or '-', starting with a letter");
    }
    Ok(())
}

/// Reads lab `name`.
pub fn load(name: &str) -> anyhow::Result<Lab> {
    validate_name(name)?;
    let path = LabPaths::new(name).file();
    let bytes = std::fs::read(&path).with_context(|| {
        format!("there is no lab named {name:?} (start one with `shoal lab up --name {name}`)")
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", path.display()))
}

fn save(paths: &LabPaths, lab: &Lab) -> anyhow::Result<()> {
    std::fs::create_dir_all(&paths.run)?;
    std::fs::write(paths.file(), serde_json::to_vec_pretty(lab)?)?;
    Ok(())
}

fn exists(name: &str) -> bool {
    LabPaths::new(name).file().exists()
        || netns::list()
            .iter()
            .any(|n| n.starts_with(&topology::ns_prefix(name)))
}

/// `lab up`: builds the lab and forms the cluster. On failure everything is removed.
pub async fn up(name: &str, nodes: usize, managers: usize) -> anyhow::Result<Lab> {
    up_with(name, nodes, managers, &LabOptions::default()).await
}

/// `lab up` with options.
pub async fn up_with(
    name: &str,
    nodes: usize,
    managers: usize,
    options: &LabOptions,
) -> anyhow::Result<Lab> {
    validate_name(name)?;
    if nodes == 0 || nodes > 200 {
        bail!("--nodes must be between 1 and 200, not {nodes}");
    }
    if managers == 0 || managers > nodes {
        bail!("--managers must be between 1 and --nodes ({nodes}), not {managers}");
    }
    if let Some(size) = &options.data_tmpfs {
        validate_tmpfs_size(size)?;
    }
    if exists(name) {
        bail!("a lab named {name:?} already exists; remove it with `shoal lab down --name {name}`");
    }
    match build(name, nodes, managers, options).await {
        Ok(lab) => Ok(lab),
        Err(e) => {
            let logs = LabPaths::new(name);
            let tail = tail_logs(&logs, nodes);
            down(name);
            Err(e.context(tail))
        }
    }
}

/// Checks a `--data-tmpfs` size: a whole number of k, M or G, from 1M to 4G.
fn validate_tmpfs_size(size: &str) -> anyhow::Result<()> {
    let bad = || format!("--data-tmpfs {size:?}: use a size from 1M to 4G such as 16M");
    let unit_at = size.len() - size.chars().last().map_or(0, char::len_utf8);
    let (digits, unit) = size.split_at(unit_at);
    let scale: u64 = match unit {
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => bail!(bad()),
    };
    let n: u64 = digits.parse().with_context(bad)?;
    if !n
        .checked_mul(scale)
        .is_some_and(|b| (1 << 20..=4 << 30).contains(&b))
    {
        bail!(bad());
    }
    Ok(())
}

/// Mounts a tmpfs of `size` on `dir` (`lab down` unmounts everything below the lab's
/// directories).
fn mount_tmpfs(dir: &Path, size: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    nix::mount::mount(
        Some("shoal-lab"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(format!("size={size},mode=0700").as_str()),
    )
    .with_context(|| format!("cannot mount a tmpfs on {}", dir.display()))
}

fn tail_logs(paths: &LabPaths, nodes: usize) -> String {
    let mut out = String::from("lab up failed; the lab was removed. Last agent log lines:");
    for i in 1..=nodes {
        let host = format!("n{i}");
        if let Ok(text) = std::fs::read_to_string(paths.log_file(&host)) {
            for line in text
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                out.push_str(&format!("\n  {host}: {line}"));
            }
        }
    }
    out
}

async fn build(
    name: &str,
    nodes: usize,
    managers: usize,
    options: &LabOptions,
) -> anyhow::Result<Lab> {
    let paths = LabPaths::new(name);
    let family = options.underlay;
    let ips = |v4: IpAddr| {
        let all = family.addrs(v4);
        let more = if all.len() > 1 {
            all.clone()
        } else {
            Vec::new()
        };
        (all[0], more)
    };
    let mut hosts: Vec<Host> = (1..=nodes)
        .map(|i| {
            let host = format!("n{i}");
            let (underlay_ip, underlay_ips) = ips(topology::node_ip(i));
            Host {
                namespace: topology::ns_name(name, &host),
                underlay_ip,
                underlay_ips,
                socket: paths.socket(&host),
                role: if i <= managers { "manager" } else { "worker" }.into(),
                wg_interface: topology::wg_interface(name, &host),
                name: host,
            }
        })
        .collect();
    let (underlay_ip, underlay_ips) = ips(topology::client_ip());
    hosts.push(Host {
        name: "client".into(),
        namespace: topology::ns_name(name, "client"),
        underlay_ip,
        underlay_ips,
        socket: PathBuf::new(),
        role: "client".into(),
        wg_interface: String::new(),
    });
    let lab = Lab {
        name: name.to_string(),
        hosts,
        dns_upstream: options.dns_upstream.clone(),
        docker: options.docker,
        docker_args: options.docker_args.clone(),
        podman: options.podman,
        agent_args: options.agent_args.clone(),
        data_tmpfs: options.data_tmpfs.clone(),
        underlay: family,
    };
    save(&paths, &lab)?;
    if let Some(size) = &lab.data_tmpfs {
        for h in lab.nodes() {
            mount_tmpfs(&paths.data_dir(&h.name), size)?;
        }
    }
    topology::create_underlay(name).await?;
    for h in &lab.hosts {
        topology::create_host(name, &h.name, &h.addrs()).await?;
    }
    if lab.docker {
        for h in lab.nodes() {
            std::fs::create_dir_all(&docker::DockerPaths::new(&paths, &h.name).plugins)?;
        }
    }
    if lab.podman {
        for h in lab.nodes() {
            podman::prepare(&paths, &h.name)?;
        }
        let checks = lab.nodes().map(|h| {
            let (paths, h) = (paths.clone(), h.clone());
            tokio::task::spawn_blocking(move || podman::check(&paths, &h))
        });
        for r in futures::future::join_all(checks).await {
            r??;
        }
    }
    let starts = lab.nodes().map(|h| agents::start(&paths, h, &lab));
    for r in futures::future::join_all(starts).await {
        r?;
    }
    form_cluster(&lab).await?;
    if lab.docker {
        let starts = lab.nodes().map(|h| docker::start(&paths, h, &lab));
        for r in futures::future::join_all(starts).await {
            r?;
        }
    }
    Ok(lab)
}

async fn form_cluster(lab: &Lab) -> anyhow::Result<()> {
    let first = lab.nodes().next().context("a lab needs a node")?;
    let n1 = lab.client(&first.name)?;
    let init: InitResponse = n1
        .post(
            "/v1/cluster/init",
            &InitRequest {
                advertise_addr: Some(first.underlay_ip),
                ..Default::default()
            },
        )
        .await
        .context("cluster init on n1")?;
    let manager: JoinTokenResponse = n1.get("/v1/cluster/join-token/manager").await?;
    let join = |host: &Host, token: &str| {
        let client = lab.client(&host.name);
        let cmd = JoinCommand {
            token: token.to_string(),
            remote: init.manager_addr.to_string(),
            advertise_addr: Some(host.underlay_ip),
            role: None,
        };
        let name = host.name.clone();
        async move {
            let r: JoinResult = client?
                .post("/v1/cluster/join", &cmd)
                .await
                .with_context(|| format!("cluster join on {name}"))?;
            Ok::<_, anyhow::Error>(r)
        }
    };
    for host in lab.nodes().skip(1).filter(|h| h.role == "manager") {
        join(host, &manager.token).await?;
    }
    let workers = lab
        .nodes()
        .filter(|h| h.role == "worker")
        .map(|h| join(h, &init.worker_token));
    for r in futures::future::join_all(workers).await {
        r?;
    }
    let want = lab.nodes().count();
    wait_ready(&n1, want, Duration::from_secs(60)).await
}

/// Waits until `client`'s node sees `want` nodes, all Ready, and a leader.
pub async fn wait_ready(client: &ApiClient, want: usize, within: Duration) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let nodes: Vec<NodeInfo> = client.get("/v1/nodes").await.unwrap_or_default();
        let ready = nodes
            .iter()
            .filter(|n| n.status == NodeStatus::Ready)
            .count();
        let leader = nodes
            .iter()
            .any(|n| n.manager_status.as_deref() == Some("Leader"));
        if nodes.len() == want && ready == want && leader {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            bail!("the cluster did not become ready within {}s: {ready} of {want} nodes Ready, leader known: {leader}", within.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `lab down`: removes the hosts' podman containers (while the agents run), kills every
/// process in the lab's namespaces, removes their dead WireGuard UAPI sockets, deletes the namespaces (and with them every
/// interface), and removes the lab's files. Never fails half-way: it reports what it
/// could not remove.
pub fn down(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let prefix = topology::ns_prefix(name);
    let namespaces: Vec<String> = netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    let paths = LabPaths::new(name);
    let hosts: Vec<String> = namespaces
        .iter()
        .filter_map(|ns| ns.strip_prefix(&prefix).map(String::from))
        .collect();
    faults::resume_all(&paths);
    let podman = remove_podman_containers(&paths);
    for host in &hosts {
        docker::kill_containers(&paths, host);
    }
    for ns in &namespaces {
        agents::kill_all_in(ns);
    }
    // The killed agents could not remove their `wg show` sockets; nobody answers on them.
    for host in &hosts {
        let socket = crate::overlay::uapi::socket_path(&topology::wg_interface(name, host));
        if let Err(e) = crate::overlay::uapi::take_if_stale(&socket) {
            problems.push(format!("{}: {e}", socket.display()));
        }
    }
    for found in &podman {
        problems.extend(podman::clean_up(&paths, found));
    }
    for host in &hosts {
        docker::kill_containers(&paths, host);
    }
    for ns in &namespaces {
        if let Err(e) = netns::delete(ns) {
            problems.push(format!("namespace {ns}: {e}"));
        }
        agents::remove_tree(&Path::new("/etc/netns").join(ns));
    }
    problems.extend(podman::unmount_below(&paths));
    agents::remove_tree(&paths.run);
    agents::remove_tree(&paths.data);
    problems
}

/// `podman rm` in every host with a podman of its own (those whose namespace is gone are
/// only cleaned up after), all hosts at once.
fn remove_podman_containers(paths: &LabPaths) -> Vec<podman::HostContainers> {
    let hosts = podman::hosts_on_disk(paths);
    std::thread::scope(|s| {
        let removals: Vec<_> = hosts
            .iter()
            .map(|host| {
                let ns = topology::ns_name(paths.name(), host);
                s.spawn(move || podman::remove_containers(paths, host, &ns))
            })
            .collect();
        removals.into_iter().filter_map(|r| r.join().ok()).collect()
    })
}

/// `lab exec`: runs `command` inside `host`, with SHOAL_HOST set to its agent; returns
/// the command's exit code.
pub fn exec(lab: &Lab, host: &str, command: &[String]) -> anyhow::Result<i32> {
    let h = lab.host(host)?;
    let (program, args) = command.split_first().context("no command given after --")?;
    // `shoal` means this very binary, also when it is not on PATH.
    let program = match program.as_str() {
        "shoal" if !crate::cli::shoal_on_path() => std::env::current_exe()?,
        other => std::path::PathBuf::from(other),
    };
    let mut cmd = std::process::Command::new(&program);
    cmd.args(args);
    if h.role != "client" {
        cmd.env("SHOAL_HOST", format!("unix://{}", h.socket.display()));
        if lab.docker {
            cmd.env(
                "DOCKER_HOST",
                docker::DockerPaths::new(&LabPaths::new(&lab.name), host).host(),
            );
        }
        if lab.podman {
            cmd.envs(podman::PodmanPaths::new(&LabPaths::new(&lab.name), host).env());
        }
    }
    let ns = netns::open(&h.namespace)?;
    netns::command_in(&mut cmd, &ns, false)?;
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {program:?} in {host}"))?;
    Ok(status.code().unwrap_or(128 + 9))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tmpfs_sizes_are_checked() {
        for ok in ["1M", "16M", "512m", "4G", "2048k"] {
            assert!(super::validate_tmpfs_size(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "16",
            "16MB",
            "0M",
            "5G",
            "512k",
            "é",
            "99999999999999999G",
        ] {
            assert!(super::validate_tmpfs_size(bad).is_err(), "{bad}");
        }
    }
}
