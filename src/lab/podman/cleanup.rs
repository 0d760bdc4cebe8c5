//! What `lab down` does about a host's podman: `podman rm` inside the host's namespace
//! while its agent still runs (so CNI DEL reaches it), then ending what is left. The
//! containers' cgroups (`/libpod_parent/libpod-ID`) and conmon's are shared with every
//! other podman on the machine, so what is left is found by container ID and by the lab's
//! paths on conmon's command line:
//!
//! ```text
//!   remove_containers   IDs from <data>/HOST/podman/vfs-containers/containers.json,
//!                       their netns (podman inspect), then podman rm -f -a -t 0
//!   clean_up            SIGKILL conmon/podman naming the lab's paths and processes in
//!                       libpod-ID cgroups; rmdir those cgroups; libcni result caches;
//!                       their netns (named by podman, or netns-*/cni-* they were in)
//!   unmount_below       whatever is still mounted below <run> and <data> (shm)
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shoal_dataplane::netns;

use super::{podman, PodmanPaths};
use crate::lab::LabPaths;

/// What a host's podman had when `lab down` began, to find what it leaves behind.
#[derive(Debug, Default)]
pub struct HostContainers {
    host: String,
    /// Full container IDs.
    ids: Vec<String>,
    /// The containers' network namespaces (under /run/netns).
    netns: Vec<PathBuf>,
}

/// The hosts of lab `paths` with a podman state directory.
pub fn hosts_on_disk(paths: &LabPaths) -> Vec<String> {
    let Ok(entries) = fs::read_dir(&paths.run) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            name.strip_suffix("-podman").map(String::from)
        })
        .collect()
}

/// The IDs of the containers in `p`'s storage.
fn stored_ids(p: &PodmanPaths) -> Vec<String> {
    let file = p.graphroot.join("vfs-containers").join("containers.json");
    let Ok(bytes) = fs::read(file) else {
        return Vec::new();
    };
    let list: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap_or_default();
    list.iter()
        .filter_map(|c| c.get("id")?.as_str())
        .filter(|id| is_container_id(id))
        .map(String::from)
        .collect()
}

fn is_container_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes every container of `host`'s podman with `podman rm -f -a -t 0`, run inside
/// the host's namespace `ns` while its agent still runs (so CNI DEL reaches it). Never
/// runs podman outside the host's namespace: its CNI plugins would change that one.
pub fn remove_containers(paths: &LabPaths, host: &str, ns: &str) -> HostContainers {
    let p = PodmanPaths::new(paths, host);
    let mut found = HostContainers {
        host: host.to_string(),
        ids: stored_ids(&p),
        netns: Vec::new(),
    };
    let Ok(ns) = netns::open(ns) else {
        return found;
    };
    if !p.containers_conf.exists() {
        return found;
    }
    if !found.ids.is_empty() {
        let mut args = vec![
            "inspect",
            "--type",
            "container",
            "--format",
            "{{.NetworkSettings.SandboxKey}}",
        ];
        args.extend(found.ids.iter().map(String::as_str));
        if let Ok(out) = podman(&p, &ns, &args, Duration::from_secs(30)) {
            found.netns = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| PathBuf::from(l.trim()))
                .filter(|l| l.parent() == Some(Path::new(netns::NETNS_DIR)))
                .collect();
        }
    }
    let rm = ["rm", "--force", "--all", "--time", "0"];
    match podman(&p, &ns, &rm, Duration::from_secs(60)) {
        Ok(out) if out.status.success() => {}
        Ok(out) => tracing::warn!(
            "podman rm on {host}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => tracing::warn!("podman rm on {host}: {e:#}"),
    }
    found
}

/// Ends what `podman rm` left of `found`'s containers (processes in their cgroups,
/// conmon and podman processes naming the lab's directories), removes their cgroups and
/// their network namespaces (those podman named, and `netns-*`/`cni-*` ones the ended
/// processes were in); returns what it could not remove.
pub fn clean_up(paths: &LabPaths, found: &HostContainers) -> Vec<String> {
    let mut ids = found.ids.clone();
    let prefixes = [
        format!("{}/", paths.run.display()),
        format!("{}/", paths.data.display()),
    ];
    let mut left = Vec::new();
    // The network namespaces of those processes: podman's, if podman could not say.
    let mut net_inodes = Vec::new();
    for _ in 0..100 {
        left = lab_processes(&prefixes, &mut ids);
        if left.is_empty() {
            break;
        }
        for &pid in &left {
            net_inodes.extend(net_inode(pid));
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut problems = Vec::new();
    if !left.is_empty() {
        problems.push(format!(
            "podman on {}: processes {left:?} did not end",
            found.host
        ));
    }
    if let Ok(controllers) = fs::read_dir("/sys/fs/cgroup") {
        for c in controllers.filter_map(|e| e.ok()) {
            for id in &ids {
                remove_cgroups(&c.path().join("libpod_parent").join(format!("libpod-{id}")));
            }
        }
    }
    forget_cni_results(&ids);
    let mut namespaces = found.netns.clone();
    namespaces.extend(
        netns::list()
            .into_iter()
            .filter(|n| n.starts_with("netns-") || n.starts_with("cni-"))
            .filter(|n| netns::inode(n).is_ok_and(|i| net_inodes.contains(&i)))
            .map(|n| netns::path_of(&n)),
    );
    for ns in &namespaces {
        if let Err(e) = netns::delete(&ns.to_string_lossy()) {
            problems.push(format!("{}: {e}", ns.display()));
        }
    }
    problems
}

/// Removes libcni's cached results (`/var/lib/cni/results/NET-ID-IFNAME`, kept until
/// CNI DEL) of containers `ids`.
fn forget_cni_results(ids: &[String]) {
    let Ok(entries) = fs::read_dir("/var/lib/cni/results") else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if ids.iter().any(|id| name.contains(&format!("-{id}-"))) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// The inode of `pid`'s network namespace.
fn net_inode(pid: i32) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let link = link.to_str()?;
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Live processes of the lab's podman: in a cgroup of one of `ids`, or conmon/podman
/// with an argument under one of `prefixes` (a conmon's `-c ID` joins `ids`).
fn lab_processes(prefixes: &[String], ids: &mut Vec<String>) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pids: Vec<i32> = proc_dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| pid != me && !is_zombie(pid))
        .collect();
    let mut out = Vec::new();
    for pid in pids {
        let args: Vec<String> = fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let program = args.first().map(|a| a.rsplit('/').next().unwrap_or(a));
        let ours = matches!(program, Some("conmon" | "podman"))
            && args
                .iter()
                .any(|a| prefixes.iter().any(|p| a.contains(p.as_str())));
        if ours {
            if let Some(i) = args.iter().position(|a| a == "-c") {
                if let Some(id) = args.get(i + 1).filter(|id| is_container_id(id)) {
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
            }
            out.push(pid);
            continue;
        }
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if ids
            .iter()
            .any(|id| cgroup.contains(&format!("/libpod-{id}")))
        {
            out.push(pid);
        }
    }
    out
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Removes a cgroup directory tree, children first (cgroupfs removes with rmdir).
fn remove_cgroups(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.path().is_dir() {
                remove_cgroups(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Unmounts everything mounted below the lab's directories (podman's containers' shm
/// among them), deepest first; returns what it could not unmount.
pub fn unmount_below(paths: &LabPaths) -> Vec<String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points = mount_points_below(&mountinfo, &[&paths.run, &paths.data]);
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    let mut problems = Vec::new();
    for p in points {
        match nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => problems.push(format!("cannot unmount {}: {e}", p.display())),
        }
    }
    problems
}

/// The mount points in `mountinfo` (the text of /proc/self/mountinfo) strictly below one
/// of `dirs`.
fn mount_points_below(mountinfo: &str, dirs: &[&Path]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| dirs.iter().any(|d| p.starts_with(d) && p != d))
        .collect();
    out.dedup();
    out
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_below_the_lab_only() {
        let info = "\
49 27 0:40 / /var/lib/shoal/labs/pm/n1/podman/vfs-containers/ab/userdata/shm rw - tmpfs shm rw
50 27 0:41 / /var/lib/shoal/labs/pm2/n1/x rw - tmpfs shm rw
51 27 0:42 / /run/shoal/labs/pm rw - tmpfs t rw
52 27 0:43 / /run/shoal/labs/pm/a\\040b rw - tmpfs t rw";
        let lab = LabPaths::new("pm");
        assert_eq!(
            mount_points_below(info, &[&lab.run, &lab.data]),
            vec![
                PathBuf::from("/var/lib/shoal/labs/pm/n1/podman/vfs-containers/ab/userdata/shm"),
                PathBuf::from("/run/shoal/labs/pm/a b"),
            ]
        );
    }
}
