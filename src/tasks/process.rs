//! Task processes: started inside the task's network namespace, in a session of their
//! own (they outlive an agent restart), with a private mount namespace in which the
//! sandbox's resolv.conf is bound over /etc/resolv.conf (what `ip netns exec` does).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shoal_dataplane::netns;

/// Starts `argv` inside namespace `ns_name` with `env`, output appended to `log`; with
/// `hostname`, in a UTS namespace of its own under that host name.
pub fn spawn(
    ns_name: &str,
    argv: &[String],
    env: &BTreeMap<String, String>,
    log: &Path,
    hostname: Option<&str>,
) -> std::io::Result<Child> {
    let hostname = hostname.map(|h| h.as_bytes().to_vec());
    let (program, args) = argv.split_first().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the task has no command")
    })?;
    let ns = netns::open(ns_name)?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let resolv = Path::new("/etc/netns").join(ns_name).join("resolv.conf");
    let resolv =
        CString::new(resolv.to_string_lossy().as_bytes()).map_err(std::io::Error::other)?;
    let target = c"/etc/resolv.conf";
    let root = c"/";
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let fd = ns.as_raw_fd();
    let keep: File = ns;
    // SAFETY: between fork and exec only async-signal-safe system calls are made.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let _ = &keep;
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 || libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(name) = &hostname {
                if libc::unshare(libc::CLONE_NEWUTS) != 0
                    || libc::sethostname(name.as_ptr().cast(), name.len()) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::access(resolv.as_ptr(), libc::R_OK) == 0 {
                // Without a resolv.conf of its own the task keeps the host's.
                libc::mount(
                    resolv.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                );
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Whether `pid` is a live (not zombie) process inside namespace `ns_name`.
pub fn alive(pid: i32, ns_name: &str) -> bool {
    let Ok(inode) = netns::inode(ns_name) else {
        return false;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
    running && netns::pids_in(inode).contains(&pid)
}

/// Stops the process group of `pid`: SIGTERM, then SIGKILL after `grace`.
pub async fn stop(pid: i32, ns_name: &str, grace: std::time::Duration) {
    let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
    let until = tokio::time::Instant::now() + grace;
    while alive(pid, ns_name) && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    if let Ok(inode) = netns::inode(ns_name) {
        for p in netns::pids_in(inode) {
            let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}

/// Sends the process group of `pid` SIGTERM, or (`kill`) SIGKILL to it and to every
/// other process in namespace `ns_name`.
pub fn signal(pid: Option<i32>, ns_name: &str, kill: bool) {
    let sig = if kill {
        Signal::SIGKILL
    } else {
        Signal::SIGTERM
    };
    if let Some(pid) = pid {
        let _ = killpg(Pid::from_raw(pid), sig);
    }
    if kill {
        if let Ok(inode) = netns::inode(ns_name) {
            for p in netns::pids_in(inode) {
                let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
    }
}
