//! Task health checks and the stop of a task that was shut down, as Docker runs them:
//! the check is `/bin/sh -c <cmd>` inside the task's sandbox every interval; `retries`
//! failures in a row (not counting those in the start period) make the task unhealthy,
//! and its node restarts it. A task shut down keeps running, out of every backend set,
//! for [`SETTLE`], then gets SIGTERM, then SIGKILL after its stop grace period (Docker's
//! `--stop-grace-period`: the time a process has to exit after SIGTERM).
//!
//! The decisions are pure ([`after_check`], [`stop_step`]); [`probe`] runs one check.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shoal_control::state::Health;

use super::process;

/// How long a task shut down stays up, out of every backend set, before SIGTERM: time
/// for every node's balancers to stop choosing it (they follow the state within
/// milliseconds; this covers a loaded node), so no new connection reaches a process
/// that is exiting.
pub const SETTLE: Duration = Duration::from_secs(2);

/// The health after one check: `ok` passes (healthy, failures reset); a failure in the
/// start period does not count; otherwise the `retries`-th failure in a row makes
/// the task unhealthy. Returns the health and the failures in a row.
pub fn after_check(
    health: Health,
    failures: u32,
    ok: bool,
    in_start_period: bool,
    retries: u32,
) -> (Health, u32) {
    if ok {
        return (Health::Healthy, 0);
    }
    if in_start_period {
        return (health, failures);
    }
    let failures = failures + 1;
    if failures >= retries {
        (Health::Unhealthy, failures)
    } else {
        (health, failures)
    }
}

/// What to do next with a task that was shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopStep {
    /// Its connections are still finishing.
    Wait,
    /// Send SIGTERM.
    Term,
    /// Send SIGKILL.
    Kill,
    /// Its process is gone.
    Stopped,
}

/// How long a started task may take to listen on its published TCP ports before it
/// counts as running anyway (it may listen elsewhere, or late by design).
pub const LISTEN_WAIT: Duration = Duration::from_secs(10);

/// The TCP ports listening in a `/proc/<pid>/net/tcp` or `tcp6` table.
pub fn listening_ports(table: &str) -> std::collections::BTreeSet<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            let port = local.rsplit_once(':')?.1;
            (state == "0A")
                .then(|| u16::from_str_radix(port, 16).ok())
                .flatten()
        })
        .collect()
}

/// Whether the process `pid` (inside a task's sandbox) sees every one of `ports`
/// listening in its network namespace: a task takes traffic once it can answer.
pub fn listens(pid: i32, ports: &[u16]) -> bool {
    let mut open = std::collections::BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            open.extend(listening_ports(&text));
        }
    }
    ports.iter().all(|p| open.contains(p))
}

/// The next step for a task shut down `since` ago, SIGTERMed `termed` ago (if so),
/// with stop grace period `grace` (SIGTERM to SIGKILL).
pub fn stop_step(
    alive: bool,
    since: Duration,
    termed: Option<Duration>,
    grace: Duration,
) -> StopStep {
    match (alive, termed) {
        (false, _) => StopStep::Stopped,
        (true, None) if since >= SETTLE => StopStep::Term,
        (true, None) => StopStep::Wait,
        (true, Some(t)) if t >= grace => StopStep::Kill,
        (true, Some(_)) => StopStep::Wait,
    }
}

/// Runs `cmd` with `/bin/sh -c` in namespace `ns` and says whether it exited 0 within
/// `timeout` (a check still running then is killed and fails).
pub async fn probe(ns: String, cmd: String, timeout: Duration) -> bool {
    let argv = vec!["/bin/sh".to_string(), "-c".to_string(), cmd];
    let child = process::spawn(
        &ns,
        &argv,
        &BTreeMap::new(),
        std::path::Path::new("/dev/null"),
        None,
    );
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%ns, error = %e, "cannot run the health check");
            return false;
        }
    };
    let until = tokio::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if tokio::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            _ => {
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_makes_healthy_and_retries_failures_make_unhealthy() {
        assert_eq!(
            after_check(Health::Starting, 2, true, false, 3),
            (Health::Healthy, 0)
        );
        assert_eq!(
            after_check(Health::Healthy, 0, false, false, 3),
            (Health::Healthy, 1)
        );
        assert_eq!(
            after_check(Health::Healthy, 1, false, false, 3),
            (Health::Healthy, 2)
        );
        assert_eq!(
            after_check(Health::Healthy, 2, false, false, 3),
            (Health::Unhealthy, 3)
        );
        assert_eq!(
            after_check(Health::Starting, 0, false, false, 1),
            (Health::Unhealthy, 1)
        );
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_but_a_pass_does() {
        assert_eq!(
            after_check(Health::Starting, 0, false, true, 1),
            (Health::Starting, 0)
        );
        assert_eq!(
            after_check(Health::Starting, 0, true, true, 1),
            (Health::Healthy, 0)
        );
    }

    #[test]
    fn listening_ports_are_read_from_the_kernels_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100000A:0050 0200000A:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
   3: 0100000A:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0
";
        let ports = listening_ports(table);
        assert_eq!(ports.into_iter().collect::<Vec<_>>(), [80, 8080]);
        let v6 =
            "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 0";
        assert!(listening_ports(v6).contains(&443));
        assert!(listening_ports("").is_empty());
        assert!(listening_ports("header\n garbage\n 0: x").is_empty());
    }

    #[test]
    fn a_task_shut_down_settles_then_gets_term_then_kill_after_its_grace() {
        let g = Duration::from_secs(10);
        let s = Duration::from_secs;
        assert_eq!(stop_step(true, SETTLE / 2, None, g), StopStep::Wait);
        assert_eq!(stop_step(true, SETTLE, None, g), StopStep::Term);
        assert_eq!(stop_step(true, s(5), Some(s(3)), g), StopStep::Wait);
        assert_eq!(stop_step(true, s(12), Some(g), g), StopStep::Kill);
        assert_eq!(stop_step(false, s(1), None, g), StopStep::Stopped);
        assert_eq!(
            stop_step(true, SETTLE, Some(Duration::ZERO), Duration::ZERO),
            StopStep::Kill,
            "no grace: SIGKILL right after SIGTERM, as Docker's --stop-grace-period 0s"
        );
    }
}
