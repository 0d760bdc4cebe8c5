//! The lab harness for shoal's integration tests.
//!
//! A [`Lab`] is a real `shoal lab` (agents in network namespaces) under a name unique to
//! the test; dropping it runs `shoal lab down`, also when the test panicked, after
//! printing the tail of every agent's log. Tests drive shoal only through its command
//! line, as users do.
//!
//! Privileged tests call [`privileged`] first: without root they fail with a clear
//! message, or are reported as skipped when `SHOAL_SKIP_PRIVILEGED=1`.

mod capture;
mod lab;
pub mod net;
mod sandbox;
pub mod tls;
mod wait;

pub use capture::Capture;
pub use lab::{Lab, Output};
pub use sandbox::{exec_in, spawn_in, Sandbox};
pub use wait::wait_until;

/// The IP address of an endpoint as `attach --format json` prints it (without the
/// prefix length).
pub fn ip_of(endpoint: &serde_json::Value) -> String {
    endpoint["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {endpoint}"))
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Whether privileged tests may run here. Without root: panics with an explanation,
/// unless `SHOAL_SKIP_PRIVILEGED=1`, in which case it prints SKIPPED and returns false.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("SHOAL_SKIP_PRIVILEGED").as_deref() == Ok("1") {
        eprintln!("SKIPPED {test}: needs root (SHOAL_SKIP_PRIVILEGED=1)");
        return false;
    }
    panic!(
        "{test} builds network namespaces and must run as root; \
         run the tests as root, or set SHOAL_SKIP_PRIVILEGED=1 to skip them"
    );
}
