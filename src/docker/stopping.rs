//! Whether a `kill` event means the container is going away.
//!
//! `docker stop` sends the container's stop signal (SIGTERM unless `--stop-signal` or
//! the image's `STOPSIGNAL` says otherwise), `docker kill` SIGKILL, and Docker reports
//! each as a `kill` event with the signal's number before the process has exited. The
//! provider takes a stopping container out of the routes then, as Swarm takes a task
//! out of its load balancer before stopping it, so no new request is sent to a process
//! that is shutting down; Træfik waits for `die`, and a request sent in between waits
//! for a connection that never opens. A signal that does not end a process (`docker
//! kill -s HUP` to reload) leaves the container routed.

/// Linux's signal numbers by name, for the ones a container is stopped with.
const SIGNALS: &[(&str, u32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// The signals that end a process unless it handles them, and that Docker's own
/// defaults stop with.
const ENDING: &[u32] = &[2, 3, 9, 15];

/// `SIGTERM`, `TERM`, `term` or `15` → 15; `SIGRTMIN+3` and unknown names → `None`.
pub fn signal_number(text: &str) -> Option<u32> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Whether a `kill` event carrying `signal` (its `signal` attribute) stops a container
/// whose configured stop signal is `stop_signal` (`Config.StopSignal`, often empty).
pub fn ends_container(signal: Option<&str>, stop_signal: Option<&str>) -> bool {
    let Some(sent) = signal.and_then(signal_number) else {
        return false;
    };
    ENDING.contains(&sent) || stop_signal.and_then(signal_number) == Some(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_numbers_are_read_as_docker_writes_them() {
        for (text, n) in [
            ("15", Some(15)),
            ("SIGTERM", Some(15)),
            ("TERM", Some(15)),
            ("sigquit", Some(3)),
            (" KILL ", Some(9)),
            ("SIGUSR1", Some(10)),
            ("SIGWINCH", Some(28)),
            ("0", None),
            ("65", None),
            ("SIGRTMIN+3", None),
            ("", None),
            ("NOPE", None),
            ("-9", None),
        ] {
            assert_eq!(signal_number(text), n, "{text:?}");
        }
    }

    #[test]
    fn stop_and_kill_end_a_container_and_a_reload_does_not() {
        // docker stop (TERM), docker kill (KILL), Ctrl-C (INT), nginx's graceful QUIT.
        for sent in ["15", "9", "2", "3"] {
            assert!(ends_container(Some(sent), None), "{sent}");
            assert!(ends_container(Some(sent), Some("")), "{sent}");
        }
        // docker kill -s HUP / USR2: a reload, not a stop.
        assert!(!ends_container(Some("1"), None));
        assert!(!ends_container(Some("12"), Some("SIGTERM")));
        // --stop-signal SIGUSR1: docker stop sends 10.
        assert!(ends_container(Some("10"), Some("SIGUSR1")));
        assert!(ends_container(Some("10"), Some("10")));
        assert!(!ends_container(Some("10"), Some("SIGUSR2")));
        // An event without a signal, or one that is not a number, changes nothing.
        assert!(!ends_container(None, None));
        assert!(!ends_container(Some("x"), Some("x")));
    }
}
