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
//! That half ([`remove_containers`], [`clean_up`], [`unmount_below`]) is in `cleanup.rs`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use shoal_dataplane::netns;

use super::LabPaths;

mod cleanup;

pub use cleanup::{clean_up, hosts_on_disk, remove_containers, unmount_below, HostContainers};

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
}
