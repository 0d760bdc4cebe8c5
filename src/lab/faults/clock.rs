//! Shifted clocks through a Linux time namespace (CLONE_NEWTIME, Linux 5.6).
//!
//! A time namespace offsets CLOCK_MONOTONIC and CLOCK_BOOTTIME (and their COARSE and
//! RAW variants) of the processes in it; the offsets can only be set before the first
//! process enters. So a jump is a restart of the agent in a new namespace: from then on
//! its monotonic clock reads `jump` seconds ahead of (or behind) every other process's.
//!
//! What it reaches: anything that carries monotonic or boot time from one process to
//! another or into a file (a deadline, an uptime, a lease measured by `Instant` and
//! written down) now disagrees by `jump`; an agent that only measures intervals within
//! itself (tokio timers, Raft election and heartbeat timeouts) must not notice. What it
//! cannot reach: CLOCK_REALTIME (`SystemTime`, certificate validity, `created_at`,
//! heartbeat timestamps) has no namespace; shifting it would change the machine's
//! clock for everyone. A jump *during* a run (a VM resumed after a pause) is what
//! `lab pause`/`lab resume` give: the agent's monotonic clock leaps forward by the pause.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `cmd` run in a new time namespace whose monotonic and boot clocks are shifted by
/// `secs`.
pub fn shift_clocks(cmd: &mut Command, secs: i64) -> io::Result<()> {
    let offsets = format!("monotonic {secs} 0\nboottime {secs} 0\n");
    let offsets_file = CString::new("/proc/self/timens_offsets").map_err(io::Error::other)?;
    let for_children = CString::new("/proc/self/ns/time_for_children").map_err(io::Error::other)?;
    // SAFETY: only async-signal-safe calls (unshare, open, write, close, setns) between
    // fork and exec, on buffers made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // The new namespace is for this process's children; its offsets are written
            // while it is empty, then this process (single-threaded after fork) enters.
            if libc::unshare(libc::CLONE_NEWTIME) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::open(offsets_file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = libc::write(fd, offsets.as_ptr().cast(), offsets.len());
            let err = io::Error::last_os_error();
            libc::close(fd);
            if n < 0 {
                return Err(err);
            }
            let ns = libc::open(for_children.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if ns < 0 {
                return Err(io::Error::last_os_error());
            }
            let r = libc::setns(ns, libc::CLONE_NEWTIME);
            let err = io::Error::last_os_error();
            libc::close(ns);
            if r != 0 {
                return Err(err);
            }
            Ok(())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The uptime (CLOCK_BOOTTIME) another process reads, in seconds.
    fn uptime_of(cmd: &mut Command) -> f64 {
        let out = cmd.arg("/proc/uptime").output().expect("run cat");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace().next().unwrap().parse().unwrap()
    }

    #[test]
    fn a_child_in_a_shifted_time_namespace_reads_its_clock_ahead() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "time namespaces need root");
        let plain = uptime_of(&mut Command::new("cat"));
        let mut cmd = Command::new("cat");
        shift_clocks(&mut cmd, 3600).unwrap();
        let shifted = uptime_of(&mut cmd);
        let ahead = shifted - plain;
        assert!((3590.0..3610.0).contains(&ahead), "ahead by {ahead}s");
    }
}
