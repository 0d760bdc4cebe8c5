//! The lab harness for shoal's integration tests.
//!
//! A [`Lab`] is a real `shoal lab` (agents in network namespaces) under a name unique to
//! the test; dropping it runs `shoal lab down`, also when the test panicked, after
//! printing the tail of every agent's log. Tests drive shoal only through its command
//! line, as users do.
//!
//! Privileged tests call [`require_root`] first: without root they fail with a clear
//! message. Built with `SHOAL_SKIP_PRIVILEGED=1` they are reported as ignored.

mod capture;
mod lab;
pub mod net;
mod sandbox;
pub mod tls;
mod wait;

pub use capture::Capture;
pub use lab::{Lab, Output};
pub use sandbox::{exec_in, sha256_hex, spawn_in, Sandbox, Sink};
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

/// Panics with an explanation unless this process may build network namespaces (root).
///
/// Privileged tests also carry
/// `#[cfg_attr(skip_privileged, ignore = "...")]`: built with `SHOAL_SKIP_PRIVILEGED=1`
/// (the build scripts turn it into the `skip_privileged` cfg), they are reported as
/// ignored, never as passed.
pub fn require_root(test: &str) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "{test} builds network namespaces and must run as root; run the tests as root, \
             or build them with SHOAL_SKIP_PRIVILEGED=1 to have them ignored"
        );
    }
}
