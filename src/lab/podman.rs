//! podman in every node host (`shoal lab up --podman`), so CNI can be tested on one
//! machine.
//!
//! podman has no daemon: what makes a host's podman its own is its configuration, which
//! `lab exec` (or [`PodmanPaths::env`]) points at:
//!
//! ```text
//!   <run>/n1-podman/containers.conf   CONTAINERS_CONF          cgroupfs, file events and locks
//!   <run>/n1-podman/storage.conf      CONTAINERS_STORAGE_CONF  vfs
//!   <run>/n1-podman/run, tmp          runroot, engine tmp_dir
//!   <data>/n1/podman                  graphroot (images, containers, podman's database)
//!   <run>/n1-cni                      [network] network_config_dir   SHOAL_CNI_CONF_DIR
//!   <run>/n1-cni/podman.conflist      podman's default network, its IPAM state in
//!   <run>/n1-podman/cni-ipam            (not the machine's /var/lib/cni/networks)
//!   <run>/cni-bin/shoal -> shoal      first of cni_plugin_dirs        SHOAL_CNI_BIN_DIR
//! ```
//!
//! podman runs in the host's network namespace (so its CNI plugins, the default
//! `podman` bridge among them, change only that namespace) but in the machine's mount
//! namespace: the container namespaces it binds under `/run/netns` must be visible to the
//! agent. Its containers' cgroups (`/libpod_parent/libpod-ID`) and conmon's are shared
//! with every other podman, so `lab down` finds what is left by container ID and by the
//! lab's paths on conmon's command line, after `podman rm` had its chance to run CNI DEL.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shoal_dataplane::netns;

use super::LabPaths;

/// Where a host's podman keeps its things.
#[derive(Debug, Clone)]
pub struct PodmanPaths {
    /// Its containers.conf (CONTAINERS_CONF).
    pub containers_conf: PathBuf,
    /// Its storage.conf (CONTAINERS_STORAGE_CONF).
    pub storage_conf: PathBuf,
    /// Images, containers and podman's database.
    pub graphroot: PathBuf,
    /// containers/storage's run root.
    pub runroot: PathBuf,
    /// podman's engine tmp_dir (exit files, locks, events).
    pub tmp_dir: PathBuf,
    /// podman's CNI network configuration directory (SHOAL_CNI_CONF_DIR).
    pub cni_conf_dir: PathBuf,
    /// The lab's CNI plugin directory, holding `shoal` (SHOAL_CNI_BIN_DIR); searched
    /// before /usr/lib/cni.
    pub cni_bin_dir: PathBuf,
    /// host-local's data directory for podman's default network.
    pub ipam_dir: PathBuf,
    /// The host's agent socket (SHOAL_HOST for podman and its CNI plugins).
    agent_socket: PathBuf,
    /// `<run>/HOST-podman`, holding the configuration files and run directories.
    state: PathBuf,
}

impl PodmanPaths {
    /// The paths of `host`'s podman in lab `paths`.
    pub fn new(paths: &LabPaths, host: &str) -> PodmanPaths {
        let state = paths.run.join(format!("{host}-podman"));
        PodmanPaths {
            containers_conf: state.join("containers.conf"),
            storage_conf: state.join("storage.conf"),
            graphroot: paths.data.join(host).join("podman"),
            runroot: state.join("run"),
            tmp_dir: state.join("tmp"),
            cni_conf_dir: paths.run.join(format!("{host}-cni")),
            cni_bin_dir: paths.run.join("cni-bin"),
            ipam_dir: state.join("cni-ipam"),
            agent_socket: paths.socket(host),
            state,
        }
    }

    /// The environment that makes `podman` (and `shoal cni install`) this host's.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            (
                "CONTAINERS_CONF",
                self.containers_conf.display().to_string(),
            ),
            (
                "CONTAINERS_STORAGE_CONF",
                self.storage_conf.display().to_string(),
            ),
            ("SHOAL_CNI_BIN_DIR", self.cni_bin_dir.display().to_string()),
            (
                "SHOAL_CNI_CONF_DIR",
                self.cni_conf_dir.display().to_string(),
            ),
            ("SHOAL_HOST", self.shoal_host()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn shoal_host(&self) -> String {
        format!("unix://{}", self.agent_socket.display())
    }
}

/// The resource limits a container may ask for here. As root podman asks for 1048576
/// open files and processes, which needs CAP_SYS_RESOURCE when the hard limits are lower
/// (runc then fails with "error setting rlimits"); and podman lowers its own process
/// limit to 32768 before it starts conmon, so no container can get more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerLimits {
    /// RLIMIT_NOFILE, soft and hard.
    pub nofile: u64,
    /// RLIMIT_NPROC, soft and hard.
    pub nproc: u64,
}

impl ContainerLimits {
    /// What this process may grant (its hard limits), capped at what podman would ask.
    pub fn current() -> ContainerLimits {
        let hard = |resource| {
            let mut r = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit only writes the struct it is given.
            let ok = unsafe { libc::getrlimit(resource, &mut r) } == 0;
            if ok {
                r.rlim_max
            } else {
                u64::MAX
            }
        };
        ContainerLimits {
            nofile: hard(libc::RLIMIT_NOFILE).min(1_048_576),
            nproc: hard(libc::RLIMIT_NPROC).min(32_768),
        }
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|s| toml_str(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// The text of `p`'s containers.conf.
pub fn containers_conf(p: &PodmanPaths, limits: ContainerLimits) -> String {
    let path = |p: &Path| toml_str(&p.display().to_string());
    let ulimits = [
        format!("nofile={0}:{0}", limits.nofile),
        format!("nproc={0}:{0}", limits.nproc),
    ];
    let plugin_dirs = [p.cni_bin_dir.display().to_string(), "/usr/lib/cni".into()];
    format!(
        "# Written by `shoal lab up --podman`.\n\
         [containers]\n\
         default_ulimits = {ulimits}\n\
         \n\
         [network]\n\
         network_backend = \"cni\"\n\
         network_config_dir = {conf_dir}\n\
         cni_plugin_dirs = {plugin_dirs}\n\
         \n\
         [engine]\n\
         cgroup_manager = \"cgroupfs\"\n\
         events_logger = \"file\"\n\
         lock_type = \"file\"\n\
         tmp_dir = {tmp_dir}\n\
         image_copy_tmp_dir = \"storage\"\n\
         # SHOAL_HOST also for the exit command conmon runs when a container stops by\n\
         # itself (`podman container cleanup`, CNI DEL): it gets CONTAINERS_CONF only.\n\
         env = {env}\n",
        ulimits = toml_list(&ulimits),
        conf_dir = path(&p.cni_conf_dir),
        plugin_dirs = toml_list(&plugin_dirs),
        tmp_dir = path(&p.tmp_dir),
        env = toml_list(&[format!("SHOAL_HOST={}", p.shoal_host())]),
    )
}

/// The text of `p`'s storage.conf.
pub fn storage_conf(p: &PodmanPaths) -> String {
    format!(
        "# Written by `shoal lab up --podman`.\n\
         [storage]\n\
         driver = \"vfs\"\n\
         graphroot = {}\n\
         runroot = {}\n",
        toml_str(&p.graphroot.display().to_string()),
        toml_str(&p.runroot.display().to_string()),
    )
}

/// The conflist of podman's default network `podman`, as podman 4.3 makes it in memory
/// when there is none on disk, but with host-local's state in the lab (by default it is
/// /var/lib/cni/networks/podman, shared by every lab host and the machine).
pub fn default_network_conflist(p: &PodmanPaths) -> String {
    let list = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "podman",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni-podman0",
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "ranges": [[{ "subnet": "10.88.0.0/16", "gateway": "10.88.0.1" }]],
                    "dataDir": p.ipam_dir.display().to_string(),
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
            { "type": "firewall" },
            { "type": "tuning" }
        ]
    });
    format!("{list:#}\n")
}

/// Writes `host`'s podman configuration and makes its directories, with the lab's CNI
/// plugin directory holding a link to this binary as `shoal`.
pub fn prepare(paths: &LabPaths, host: &str) -> anyhow::Result<()> {
    let p = PodmanPaths::new(paths, host);
    for dir in [
        &p.state,
        &p.runroot,
        &p.tmp_dir,
        &p.graphroot,
        &p.cni_conf_dir,
        &p.cni_bin_dir,
        &p.ipam_dir,
    ] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let exe = std::env::current_exe().context("cannot find the shoal binary")?;
    let link = p.cni_bin_dir.join("shoal");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&exe, &link)
        .with_context(|| format!("cannot link {} to {}", link.display(), exe.display()))?;
    fs::write(
        &p.containers_conf,
        containers_conf(&p, ContainerLimits::current()),
    )?;
    fs::write(&p.storage_conf, storage_conf(&p))?;
    fs::write(
        p.cni_conf_dir.join("podman.conflist"),
        default_network_conflist(&p),
    )?;
    Ok(())
}

/// Runs `podman info` in `host`'s namespace with its configuration, to fail `lab up`
/// early when podman is missing or does not take the configuration.
pub fn check(paths: &LabPaths, host: &super::Host) -> anyhow::Result<()> {
    let p = PodmanPaths::new(paths, &host.name);
    let ns = netns::open(&host.namespace)?;
    let args = ["info", "--format", "{{.Store.GraphRoot}}"];
    let out = podman(&p, &ns, &args, Duration::from_secs(60))
        .context("cannot run podman (install it: apt-get install podman)")?;
    let graphroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || Path::new(&graphroot) != p.graphroot {
        bail!(
            "podman on {} does not use its lab configuration {}: {}",
            host.name,
            p.containers_conf.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs podman with `p`'s environment inside `ns`; kills it after `within` (and then does
/// not wait for its output: a hung CNI plugin may still hold the pipes).
fn podman(
    p: &PodmanPaths,
    ns: &fs::File,
    args: &[&str],
    within: Duration,
) -> anyhow::Result<std::process::Output> {
    let mut cmd = Command::new("podman");
    cmd.args(args)
        .envs(p.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    netns::command_in(&mut cmd, ns, false)?;
    let mut child = cmd.spawn()?;
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let until = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            std::thread::spawn(move || child.wait());
            bail!("podman {} did not finish within {within:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

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

    fn paths() -> PodmanPaths {
        PodmanPaths::new(&LabPaths::new("pm"), "n1")
    }

    #[test]
    fn containers_conf_points_at_the_hosts_own_directories() {
        let p = paths();
        let text = containers_conf(
            &p,
            ContainerLimits {
                nofile: 20000,
                nproc: 32768,
            },
        );
        for line in [
            "[network]",
            "network_backend = \"cni\"",
            "network_config_dir = \"/run/shoal/labs/pm/n1-cni\"",
            "cni_plugin_dirs = [\"/run/shoal/labs/pm/cni-bin\", \"/usr/lib/cni\"]",
            "cgroup_manager = \"cgroupfs\"",
            "events_logger = \"file\"",
            "lock_type = \"file\"",
            "tmp_dir = \"/run/shoal/labs/pm/n1-podman/tmp\"",
            "default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]",
            "env = [\"SHOAL_HOST=unix:///run/shoal/labs/pm/n1.sock\"]",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn storage_conf_uses_vfs_below_the_lab() {
        let text = storage_conf(&paths());
        assert!(text.contains("driver = \"vfs\"\n"));
        assert!(text.contains("graphroot = \"/var/lib/shoal/labs/pm/n1/podman\"\n"));
        assert!(text.contains("runroot = \"/run/shoal/labs/pm/n1-podman/run\"\n"));
    }

    #[test]
    fn env_names_the_hosts_files() {
        let env = paths().env();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("CONTAINERS_CONF"),
            Some("/run/shoal/labs/pm/n1-podman/containers.conf")
        );
        assert_eq!(get("SHOAL_CNI_BIN_DIR"), Some("/run/shoal/labs/pm/cni-bin"));
        assert_eq!(get("SHOAL_CNI_CONF_DIR"), Some("/run/shoal/labs/pm/n1-cni"));
    }

    #[test]
    fn default_network_keeps_its_ipam_state_in_the_lab() {
        let list: serde_json::Value =
            serde_json::from_str(&default_network_conflist(&paths())).unwrap();
        assert_eq!(list["name"], "podman");
        assert_eq!(list["plugins"][0]["bridge"], "cni-podman0");
        assert_eq!(
            list["plugins"][0]["ipam"]["dataDir"],
            "/run/shoal/labs/pm/n1-podman/cni-ipam"
        );
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_str("a\nb"), "\"a\\u000ab\"");
    }

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
