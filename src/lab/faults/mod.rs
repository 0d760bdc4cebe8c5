//! Faults in a lab: partitions, slow or lossy links, paused agents, full disks, shifted
//! clocks. What they do to the network is planned in [`plan`]; this module runs the
//! plans in the hosts' namespaces, signals and restarts agents, and keeps the faults in
//! force in the lab's `faults.json` (for `lab status` and `lab heal`). Nothing is done
//! outside the lab's namespaces, its agents and its directories.
//!
//! What the kernel lacks is said, not faked: without sch_netem there is no `--delay`.
//! A clock jump shifts CLOCK_MONOTONIC and CLOCK_BOOTTIME of a restarted agent through a
//! time namespace; CLOCK_REALTIME (certificates, timestamps) cannot be shifted per
//! process (see [`clock`]).

mod clock;
pub mod plan;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shoal_dataplane::netns;

pub use clock::shift_clocks;
pub use plan::{Fault, Link};

use super::{agents, Lab, LabPaths};

/// The name of the file `lab fill` writes.
const FILLER: &str = "shoal-lab-filler";

fn faults_file(paths: &LabPaths) -> PathBuf {
    paths.run.join("faults.json")
}

/// The faults in force in the lab.
pub fn load(paths: &LabPaths) -> anyhow::Result<Vec<Fault>> {
    match fs::read(faults_file(paths)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is damaged", faults_file(paths).display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

fn save(paths: &LabPaths, faults: &[Fault]) -> anyhow::Result<()> {
    fs::write(faults_file(paths), serde_json::to_vec_pretty(faults)?)?;
    Ok(())
}

fn add(paths: &LabPaths, fault: Fault) -> anyhow::Result<()> {
    save(paths, &plan::with_fault(&load(paths)?, fault))
}

/// Runs `steps`, each inside its namespace; stops at the first failure that matters.
fn run(steps: &[plan::Step]) -> anyhow::Result<()> {
    for step in steps {
        let out = run_step(step)?;
        if !out.status.success() && !step.may_fail {
            bail!(
                "`{}` in {} failed: {}",
                step.argv.join(" "),
                step.namespace,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

fn run_step(step: &plan::Step) -> anyhow::Result<std::process::Output> {
    let (program, args) = step.argv.split_first().context("an empty command")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    netns::command_in(&mut cmd, &netns::open(&step.namespace)?, false)?;
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {program} (is it installed?)"))?;
    if let (Some(text), Some(mut stdin)) = (&step.stdin, child.stdin.take()) {
        stdin.write_all(text.as_bytes())?;
    }
    Ok(child.wait_with_output()?)
}

/// `lab partition`.
pub fn partition(lab: &Lab, args: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
    let groups = plan::parse_groups(lab, args)?;
    run(&plan::partition(lab, &groups)?)?;
    add(
        &LabPaths::new(&lab.name),
        Fault::Partition {
            groups: groups.clone(),
        },
    )?;
    Ok(groups)
}

/// Whether the kernel has sch_netem, tried on `lo` of `namespace` (and removed again).
fn netem_available(namespace: &str) -> anyhow::Result<bool> {
    let probe = |args: &[&str]| plan::Step {
        namespace: namespace.to_string(),
        argv: ["tc"].iter().chain(args).map(|s| s.to_string()).collect(),
        stdin: None,
        may_fail: true,
    };
    let out = run_step(&probe(&[
        "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
    ]))?;
    if out.status.success() {
        run_step(&probe(&["qdisc", "del", "dev", "lo", "root"]))?;
        return Ok(true);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("unknown") || err.contains("No such file") {
        return Ok(false);
    }
    bail!(
        "cannot tell whether the kernel has sch_netem: tc says {}",
        err.trim()
    )
}

/// `lab slow`.
pub fn slow(lab: &Lab, host: &str, link: Link) -> anyhow::Result<()> {
    link.validate()?;
    let ns = &lab.host(host)?.namespace;
    let netem = link.delay_ms.is_none() || netem_available(ns)?;
    run(&plan::slow(lab, host, &link, netem)?)?;
    add(
        &LabPaths::new(&lab.name),
        Fault::Slow {
            host: host.to_string(),
            link,
        },
    )
}

/// The running agent of `host` (not the client's).
fn agent_pid(lab: &Lab, host: &str) -> anyhow::Result<i32> {
    let h = lab.host(host)?;
    if h.role == "client" {
        bail!("{host} runs no agent");
    }
    agents::running_pid(&LabPaths::new(&lab.name), h)
        .with_context(|| format!("the agent on {host} is not running"))
}

/// `lab pause`.
pub fn pause(lab: &Lab, host: &str) -> anyhow::Result<i32> {
    let pid = agent_pid(lab, host)?;
    let paths = LabPaths::new(&lab.name);
    if load(&paths)?
        .iter()
        .any(|f| matches!(f, Fault::Pause { host: h, .. } if h == host))
    {
        bail!(
            "the agent on {host} is already paused; `lab resume --name {} {host}`",
            lab.name
        );
    }
    kill(Pid::from_raw(pid), Signal::SIGSTOP)?;
    add(
        &paths,
        Fault::Pause {
            host: host.to_string(),
            pid,
        },
    )?;
    Ok(pid)
}

/// `lab resume`.
pub fn resume(lab: &Lab, host: &str) -> anyhow::Result<()> {
    lab.host(host)?;
    let paths = LabPaths::new(&lab.name);
    let faults = load(&paths)?;
    let Some(Fault::Pause { pid, .. }) = faults
        .iter()
        .find(|f| matches!(f, Fault::Pause { host: h, .. } if h == host))
    else {
        bail!("the agent on {host} is not paused");
    };
    // It may have been killed meanwhile; then there is nothing to resume.
    let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
    let rest: Vec<Fault> = faults
        .iter()
        .filter(|f| !matches!(f, Fault::Pause { host: h, .. } if h == host))
        .cloned()
        .collect();
    save(&paths, &rest)
}

/// `lab fill`: writes a filler into `host`'s data directory until the file system is
/// full; only on the lab's own tmpfs (`lab up --data-tmpfs`), never the machine's disk.
pub fn fill(lab: &Lab, host: &str) -> anyhow::Result<u64> {
    if lab.host(host)?.role == "client" {
        bail!("{host} runs no agent and has no data directory");
    }
    let paths = LabPaths::new(&lab.name);
    let dir = paths.data_dir(host);
    if lab.data_tmpfs.is_none() || !is_tmpfs(&dir) {
        bail!(
            "{} is not on a tmpfs of the lab's own, and filling it would fill the machine's disk; build the lab with `lab up --data-tmpfs SIZE`",
            dir.display()
        );
    }
    let file = dir.join(FILLER);
    let bytes = fill_up(&file)?;
    add(
        &paths,
        Fault::Fill {
            host: host.to_string(),
            file,
            bytes,
        },
    )?;
    Ok(bytes)
}

fn is_tmpfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false)
}

/// Appends to `file` in ever smaller pieces until the file system says it is full;
/// returns the bytes written.
fn fill_up(file: &Path) -> anyhow::Result<u64> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("cannot create {}", file.display()))?;
    let mut written = 0u64;
    for piece in [1 << 20, 4096, 1] {
        let chunk = vec![0x5a_u8; piece];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(e).context(format!("filling {}", file.display())),
            }
        }
    }
    Ok(written)
}

/// `lab clock`: restarts `host`'s agent with its clocks shifted by `jump_secs`.
pub async fn clock(lab: &Lab, host: &str, jump_secs: i64) -> anyhow::Result<()> {
    let h = lab.host(host)?;
    if h.role == "client" {
        bail!("{host} runs no agent");
    }
    let paths = LabPaths::new(&lab.name);
    if agents::running_pid(&paths, h).is_some() {
        resume_if_paused(&paths, host)?;
        agents::stop(&paths, h, Signal::SIGTERM).await?;
    }
    agents::start_shifted(&paths, h, lab, Some(jump_secs)).await?;
    add(
        &paths,
        Fault::Clock {
            host: host.to_string(),
            jump_secs,
        },
    )
}

/// Lets `host`'s agent run again if `lab pause` stopped it, and forgets the pause.
pub fn resume_if_paused(paths: &LabPaths, host: &str) -> anyhow::Result<()> {
    let faults = load(paths)?;
    for f in &faults {
        if let Fault::Pause { host: h, pid } = f {
            if h == host {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
            }
        }
    }
    let rest: Vec<Fault> = faults
        .into_iter()
        .filter(|f| !matches!(f, Fault::Pause { host: h, .. } if h == host))
        .collect();
    save(paths, &rest)
}

/// `lab heal`: undoes every fault; returns what it undid. Network faults are removed
/// from every host whatever `faults.json` says.
pub async fn heal(lab: &Lab) -> anyhow::Result<Vec<String>> {
    let paths = LabPaths::new(&lab.name);
    let faults = load(&paths)?;
    let mut problems = Vec::new();
    for f in &faults {
        match f {
            Fault::Pause { pid, .. } => {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
            }
            Fault::Fill { file, .. } => {
                if let Err(e) = fs::remove_file(file) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        problems.push(format!("{}: {e}", file.display()));
                    }
                }
            }
            _ => {}
        }
    }
    if let Err(e) = run(&plan::heal_network(lab)) {
        problems.push(e.to_string());
    }
    for f in &faults {
        if let Fault::Clock { host, .. } = f {
            let h = lab.host(host)?;
            if agents::running_pid(&paths, h).is_some() {
                if let Err(e) = agents::stop(&paths, h, Signal::SIGTERM).await {
                    problems.push(format!("{host}: {e}"));
                }
            }
            if let Err(e) = agents::start(&paths, h, lab).await {
                problems.push(format!("{host}: {e}"));
            }
        }
    }
    save(&paths, &[])?;
    if !problems.is_empty() {
        bail!("lab heal left faults behind:\n  {}", problems.join("\n  "));
    }
    Ok(faults.iter().map(Fault::describe).collect())
}

/// SIGCONT to every agent `faults.json` says is paused (before `lab down` kills them).
pub fn resume_all(paths: &LabPaths) {
    for f in load(paths).unwrap_or_default() {
        if let Fault::Pause { pid, .. } = f {
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        }
    }
}
