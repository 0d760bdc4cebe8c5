//! Getting the programs a benchmark compares shoal with: found on PATH, or, only with
//! `shoal bench --install-baselines`, installed (apt-get, or `cargo install`) when
//! missing. Without the flag a missing program is an error that says what to install.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether missing baselines may be installed (`--install-baselines`), for this run.
static INSTALL: AtomicBool = AtomicBool::new(false);

/// Lets (or forbids) this run install missing baselines.
pub fn allow_install(allowed: bool) {
    INSTALL.store(allowed, Ordering::Relaxed);
}

/// Refuses an install that was not asked for, saying how to do it.
fn may_install(program: &str, how: &str) -> Result<(), String> {
    if INSTALL.load(Ordering::Relaxed) {
        Ok(())
    } else {
        Err(format!(
            "{program} is not installed: install it ({how}) or let the bench do it with --install-baselines"
        ))
    }
}

/// A program a bench started (a peer, a backend, a load generator's target), killed
/// and reaped when dropped.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `program` on PATH (or in ~/.cargo/bin), if it is there.
pub fn which(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    for d in ["/usr/sbin", "/sbin", "/usr/local/bin", "/root/.cargo/bin"] {
        dirs.push(PathBuf::from(d));
    }
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `program`, installing the Debian package `package` if it is missing and installs
/// are allowed. Services the package would start are kept from starting (a policy-rc.d
/// for the install's length), so nothing is left listening on the machine's own network.
pub fn apt(program: &str, package: &str) -> Result<PathBuf, String> {
    if let Some(p) = which(program) {
        return Ok(p);
    }
    may_install(program, &format!("apt-get install {package}"))?;
    eprintln!("bench: installing {package} (for {program}) with apt-get ...");
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists() && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok() && {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755)).is_ok()
    };
    let install = || {
        quiet(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", package])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    let result = install().or_else(|_| {
        quiet(Command::new("apt-get").arg("update"))?;
        install()
    });
    if ours {
        let _ = std::fs::remove_file(policy);
    }
    result.map_err(|e| format!("apt-get install {package} failed: {e}"))?;
    which(program).ok_or_else(|| format!("{package} is installed but {program} is not on PATH"))
}

/// `program`, building it with `cargo install krate` if it is missing and installs are
/// allowed.
pub fn cargo(program: &str, krate: &str) -> Result<PathBuf, String> {
    if let Some(p) = which(program) {
        return Ok(p);
    }
    may_install(program, &format!("cargo install {krate}"))?;
    eprintln!("bench: building {krate} with cargo install (a few minutes) ...");
    quiet(Command::new("cargo").args(["install", "--locked", krate]))
        .or_else(|_| quiet(Command::new("cargo").args(["install", krate])))
        .map_err(|e| format!("cargo install {krate} failed: {e}"))?;
    which(program).ok_or_else(|| format!("{krate} was built but {program} is not on PATH"))
}

/// Runs `cmd`, keeping its output unless it fails.
fn quiet(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = err.lines().rev().take(3).collect();
        Err(last.into_iter().rev().collect::<Vec<_>>().join(" / "))
    }
}

/// A tarball of a busybox-static root file system with `applets`, named after `name`
/// in the temporary directory, for `docker import` and `podman import`; the caller
/// removes it.
pub fn busybox_tarball(name: &str, applets: &[&str]) -> anyhow::Result<PathBuf> {
    let busybox = apt("busybox", "busybox-static").map_err(anyhow::Error::msg)?;
    let root = std::env::temp_dir().join(format!("shoal-{name}-rootfs"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::copy(&busybox, root.join("bin/busybox"))?;
    for applet in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    let tarball = std::env::temp_dir().join(format!("shoal-{name}-rootfs.tar"));
    let packed = std::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()?;
    let _ = std::fs::remove_dir_all(&root);
    if !packed.success() {
        anyhow::bail!("tar of the busybox root file system failed");
    }
    Ok(tarball)
}
