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
pub use lab::{run, Lab, Output};
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

/// Panics with an explanation unless this process is root and `program --version`
/// runs (`install` says how to get it).
pub fn require_program(test: &str, program: &str, install: &str) {
    require_root(test);
    let found = std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{test} runs real {program}: install it ({install})");
}

/// A root file system with busybox-static and its common applets, for `docker import`
/// and `podman import`, in a fresh directory named after `name`; the caller removes it.
pub fn busybox_rootfs(name: &str) -> std::path::PathBuf {
    let rootfs = std::env::temp_dir().join(format!("shoal-busybox-{name}"));
    let _ = std::fs::remove_dir_all(&rootfs);
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox (apt-get install busybox-static)");
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for applet in [
        "sh", "sleep", "ping", "nslookup", "ip", "nc", "cat", "wget", "httpd", "echo", "hostname",
    ] {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
    rootfs
}

/// Waits up to 10 s until `container` pings `target` (an address or a name), running
/// commands in it with `exec` (`docker exec`, `podman exec`).
pub fn container_pings(container: &str, target: &str, exec: impl Fn(&[&str]) -> Output) {
    wait_until(
        &format!("{container} to reach {target}"),
        std::time::Duration::from_secs(10),
        || {
            let out = exec(&["ping", "-c", "1", "-W", "1", target]);
            if out.ok() {
                Ok(())
            } else {
                Err(out.stderr + &out.stdout)
            }
        },
    );
}
