//! A dockerd in every lab host (`shoal lab up --docker`), so Docker can be tested on one
//! machine.
//!
//! Each dockerd runs in its host's network namespace and in a mount namespace of its
//! own, where `/run/docker` (plugin sockets, container namespaces) is a private tmpfs and
//! `/etc/resolv.conf` is the lab's; its data and exec roots, API socket, PID file and
//! log are the lab's files, and its containers live under a cgroup of their own, so
//! `lab down` finds and ends every process, also those inside containers.

use std::ffi::CString;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shoal_dataplane::netns;

use super::{Host, LabPaths};

/// Where a host's dockerd keeps its things.
#[derive(Debug, Clone)]
pub struct DockerPaths {
    /// The API socket.
    pub socket: PathBuf,
    data: PathBuf,
    exec: PathBuf,
    pid: PathBuf,
    log: PathBuf,
    resolv: PathBuf,
    /// The PID file of the process keeping the mount namespace.
    holder: PathBuf,
    /// The directory dockerd sees as /run/docker/plugins (the agent's legacy plugin
    /// socket `shoal.sock` is in it).
    pub plugins: PathBuf,
    /// The cgroup (below every controller's root) holding its containers.
    pub cgroup: String,
}

impl DockerPaths {
    /// The paths of `host`'s dockerd in lab `paths`.
    pub fn new(paths: &LabPaths, host: &str) -> DockerPaths {
        DockerPaths {
            socket: paths.run.join(format!("{host}.docker.sock")),
            data: paths.data.join(host).join("docker"),
            exec: paths.run.join(format!("{host}-d")),
            pid: paths.run.join(format!("{host}.docker.pid")),
            log: paths.run.join(format!("{host}.docker.log")),
            resolv: paths.run.join("resolv.conf"),
            holder: paths.run.join(format!("{host}.mnt.pid")),
            plugins: paths.run.join(format!("{host}-plugins")),
            cgroup: format!("shoal-lab-{}-{host}", paths.name()),
        }
    }

    /// `unix://` and the socket, for DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

/// The resolv.conf the lab's dockerds forward their containers' names to: the lab's
/// upstream resolvers, or the machine's own.
fn write_resolv_conf(paths: &DockerPaths, upstream: &[std::net::SocketAddr]) -> anyhow::Result<()> {
    let text = if upstream.is_empty() {
        fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
    } else {
        upstream
            .iter()
            .map(|u| format!("nameserver {}\n", u.ip()))
            .collect()
    };
    fs::write(&paths.resolv, text)?;
    Ok(())
}

fn c_path(p: &std::path::Path) -> anyhow::Result<CString> {
    CString::new(p.to_string_lossy().as_bytes()).context("a path with a NUL byte")
}

/// Starts `host`'s dockerd and waits until its API answers.
pub async fn start(paths: &LabPaths, host: &Host, lab: &super::Lab) -> anyhow::Result<()> {
    let (upstream, extra) = (&lab.dns_upstream, &lab.docker_args);
    let d = DockerPaths::new(paths, &host.name);
    fs::create_dir_all(&d.data)?;
    fs::create_dir_all(&d.exec)?;
    write_resolv_conf(&d, upstream)?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&d.log)?;
    let mut cmd = Command::new("dockerd");
    cmd.arg("--data-root")
        .arg(&d.data)
        .arg("--exec-root")
        .arg(&d.exec)
        .arg("--pidfile")
        .arg(&d.pid)
        .arg("--host")
        .arg(d.host())
        .args([
            "--storage-driver",
            "vfs",
            "--bridge",
            "none",
            "--iptables=false",
        ])
        .args([
            "--ip6tables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
        ])
        .args(extra)
        .arg("--cgroup-parent")
        .arg(format!("/{}", d.cgroup))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let ns = netns::open(&host.namespace)?;
    netns::command_in(&mut cmd, &ns, true)?;
    // dockerd enters the host's lasting mount namespace, where the bind mounts of its
    // containers' network namespaces survive a dockerd restart (live-restore).
    let mnt = fs::File::open(format!("/proc/{}/ns/mnt", mount_holder(host, &d)?))?;
    // SAFETY: only async-signal-safe calls (setns) between fork and exec.
    unsafe {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = mnt.as_raw_fd();
        cmd.pre_exec(move || {
            let _ = &mnt;
            if libc::setns(fd, libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .context("cannot start dockerd (install Docker: apt-get install docker.io)")?;
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ping = crate::client::unix_http(
            &d.socket,
            http::Method::GET,
            "/_ping",
            None,
            Duration::from_secs(2),
        )
        .await;
        if matches!(ping, Ok((s, _)) if s.is_success()) {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            bail!(
                "dockerd on {} did not come up; see {}",
                host.name,
                d.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The PID of the process that keeps `host`'s Docker mount namespace, started if it
/// does not run: a `sleep` in a mount namespace of its own where `/run/docker` is a
/// private tmpfs (with the lab's plugin directory at `/run/docker/plugins`) and
/// `/etc/resolv.conf` is the lab's.
fn mount_holder(host: &Host, d: &DockerPaths) -> anyhow::Result<i32> {
    if let Some(pid) = fs::read_to_string(&d.holder)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .filter(|p| fs::metadata(format!("/proc/{p}")).is_ok())
    {
        return Ok(pid);
    }
    let mut cmd = Command::new("sleep");
    cmd.arg("infinity")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    netns::command_in(&mut cmd, &netns::open(&host.namespace)?, true)?;
    let (root, run_docker, etc_resolv) = (c"/", c"/run/docker", c"/etc/resolv.conf");
    let (tmpfs, resolv) = (c"tmpfs", c_path(&d.resolv)?);
    let (plugins, run_plugins) = (c_path(&d.plugins)?, c"/run/docker/plugins");
    fs::create_dir_all(&d.plugins)?;
    // SAFETY: only async-signal-safe calls (unshare, mkdir, mount) between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let none = std::ptr::null();
            let private = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(none, root.as_ptr(), none, private, std::ptr::null()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::mkdir(run_docker.as_ptr(), 0o711);
            let fs_tmpfs = tmpfs.as_ptr();
            if libc::mount(fs_tmpfs, run_docker.as_ptr(), fs_tmpfs, 0, std::ptr::null()) != 0
                || libc::mount(
                    resolv.as_ptr(),
                    etc_resolv.as_ptr(),
                    none,
                    libc::MS_BIND,
                    std::ptr::null(),
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            libc::mkdir(run_plugins.as_ptr(), 0o700);
            if libc::mount(
                plugins.as_ptr(),
                run_plugins.as_ptr(),
                none,
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .context("cannot start the mount namespace holder")?;
    let pid = child.id() as i32;
    fs::write(&d.holder, pid.to_string())?;
    // Its mounts are in place once it runs `sleep` (exec follows the set-up).
    for _ in 0..200 {
        if fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep") {
            return Ok(pid);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    bail!("the mount namespace holder of {} did not start", host.name)
}

/// The PID of `host`'s dockerd, if it runs.
pub fn running_pid(paths: &LabPaths, host: &str) -> Option<i32> {
    let d = DockerPaths::new(paths, host);
    let pid: i32 = fs::read_to_string(&d.pid).ok()?.trim().parse().ok()?;
    fs::metadata(format!("/proc/{pid}")).ok().map(|_| pid)
}

/// Stops `host`'s dockerd with `signal` and waits until it is gone; its containers keep
/// running (dockerd is told to stop, not to stop them, only with SIGKILL).
pub async fn stop(paths: &LabPaths, host: &str, signal: Signal) -> anyhow::Result<()> {
    let Some(pid) = running_pid(paths, host) else {
        bail!("dockerd on {host} is not running");
    };
    kill(Pid::from_raw(pid), signal)?;
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while fs::metadata(format!("/proc/{pid}")).is_ok() {
        if tokio::time::Instant::now() > until {
            kill(Pid::from_raw(pid), Signal::SIGKILL)?;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Kills every process in the containers' cgroup of `host` and removes the cgroups.
pub fn kill_containers(paths: &LabPaths, host: &str) {
    let d = DockerPaths::new(paths, host);
    let Ok(controllers) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let roots: Vec<PathBuf> = controllers
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(&d.cgroup))
        .filter(|p| p.is_dir())
        .collect();
    for _ in 0..50 {
        let mut any = false;
        for root in &roots {
            for pid in procs_below(root) {
                any = true;
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        if !any {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for root in &roots {
        remove_cgroups(root);
    }
}

fn procs_below(dir: &std::path::Path) -> Vec<i32> {
    let mut out: Vec<i32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.path().is_dir() {
                out.extend(procs_below(&e.path()));
            }
        }
    }
    out
}

/// Removes a cgroup directory tree, children first (cgroupfs removes with rmdir).
fn remove_cgroups(dir: &std::path::Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.path().is_dir() {
                remove_cgroups(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}
