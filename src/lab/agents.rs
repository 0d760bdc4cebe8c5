//! The agent processes of a lab: started inside their host's namespace, detached, with
//! their PID on file; stopped by signal; found by namespace when the PID file is gone.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shoal_dataplane::netns;

use super::{Host, LabPaths};
use crate::client::ApiClient;

/// The lab's name, from its paths.
fn lab_name(paths: &LabPaths) -> &str {
    paths.name()
}

/// Whether `pid` is a live process inside namespace `ns`.
fn alive_in(pid: i32, ns: &str) -> bool {
    let Ok(inode) = netns::inode(ns) else {
        return false;
    };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        .unwrap_or(true);
    // A leader that is a zombie while other threads still exit (closing a TAP can take
    // seconds) still holds the agent's files, its data directory lock among them.
    let threads = fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    (zombie && threads > 1) || (!zombie && netns::pids_in(inode).contains(&pid))
}

/// The PID of the agent of `host`, if it runs.
pub fn running_pid(paths: &LabPaths, host: &Host) -> Option<i32> {
    let pid: i32 = fs::read_to_string(paths.pid_file(&host.name))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive_in(pid, &host.namespace).then_some(pid)
}

/// Starts the agent of `host` and waits until its API answers.
pub async fn start(paths: &LabPaths, host: &Host, lab: &super::Lab) -> anyhow::Result<()> {
    start_shifted(paths, host, lab, None).await
}

/// Like [`start`], in a time namespace with the clocks shifted by `clock_secs`.
pub async fn start_shifted(
    paths: &LabPaths,
    host: &Host,
    lab: &super::Lab,
    clock_secs: Option<i64>,
) -> anyhow::Result<()> {
    let dns_upstream = &lab.dns_upstream;
    if let Some(pid) = running_pid(paths, host) {
        bail!("the agent on {} is already running (pid {pid})", host.name);
    }
    let data = paths.data_dir(&host.name);
    fs::create_dir_all(&data)?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.log_file(&host.name))?;
    let exe = std::env::current_exe().context("cannot find the shoal binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("agent")
        .arg("--data-dir")
        .arg(&data)
        .arg("--socket")
        .arg(&host.socket)
        .arg("--advertise-addr")
        .arg(host.underlay_ip.to_string())
        .arg("--listen-addr")
        .arg(listen_addr(host, lab.underlay).to_string())
        .arg("--node-name")
        .arg(&host.name)
        .arg("--ingress-http")
        .arg(std::net::SocketAddr::new(host.underlay_ip, 80).to_string())
        .arg("--docker-host")
        .arg(super::docker::DockerPaths::new(paths, &host.name).host())
        .args(lab.docker.then(|| {
            let d = super::docker::DockerPaths::new(paths, &host.name);
            format!(
                "--docker-plugin-socket={}",
                d.plugins.join("shoal.sock").display()
            )
        }))
        .args(
            dns_upstream
                .iter()
                .flat_map(|u| ["--dns-upstream".to_string(), u.to_string()]),
        )
        .args(
            (!host.wg_interface.is_empty())
                .then(|| format!("--wg-interface={}", host.wg_interface)),
        )
        .args(&lab.agent_args)
        .arg("--netns-prefix")
        .arg(format!(
            "{}{}-",
            super::topology::ns_prefix(lab_name(paths)),
            host.name
        ))
        .env(
            "RUST_LOG",
            std::env::var("SHOAL_LAB_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let ns = netns::open(&host.namespace)?;
    netns::command_in(&mut cmd, &ns, true)?;
    if let Some(secs) = clock_secs {
        super::faults::shift_clocks(&mut cmd, secs)?;
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start the agent of {}", host.name))?;
    fs::write(paths.pid_file(&host.name), child.id().to_string())?;
    let client = ApiClient::new(Some(&host.socket.to_string_lossy()))?;
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while !client.ping().await {
        if tokio::time::Instant::now() > until {
            bail!(
                "the agent of {} did not come up; see {}",
                host.name,
                paths.log_file(&host.name).display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The control plane's listen address of `host`'s agent: its underlay address, or on a
/// dual-stack underlay every address (`[::]`), so that it may also advertise IPv4.
fn listen_addr(host: &Host, underlay: super::topology::Underlay) -> std::net::SocketAddr {
    let ip = match underlay {
        super::topology::Underlay::Dual => std::net::Ipv6Addr::UNSPECIFIED.into(),
        _ => host.underlay_ip,
    };
    std::net::SocketAddr::new(ip, 2377)
}

/// Sends `signal` to the agent of `host` and waits for it to exit.
pub async fn stop(paths: &LabPaths, host: &Host, signal: Signal) -> anyhow::Result<()> {
    let Some(pid) = running_pid(paths, host) else {
        bail!("the agent on {} is not running", host.name);
    };
    kill(Pid::from_raw(pid), signal)?;
    // A paused agent (`lab pause`) only sees the signal once it runs again.
    let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    while alive_in(pid, &host.namespace) {
        if tokio::time::Instant::now() > until {
            kill(Pid::from_raw(pid), Signal::SIGKILL)?;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = fs::remove_file(paths.pid_file(&host.name));
    Ok(())
}

/// Kills every process inside namespace `ns` (agents, tasks, test tools).
pub fn kill_all_in(ns: &str) {
    let Ok(inode) = netns::inode(ns) else { return };
    for _ in 0..50 {
        let pids = netns::pids_in(inode);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes a file or directory tree if it exists.
pub fn remove_tree(path: &Path) {
    if path.is_dir() {
        let _ = fs::remove_dir_all(path);
    } else {
        let _ = fs::remove_file(path);
    }
}
