//! `shoal cni install`: the plugin in the runtime's CNI bin dir (a link named `shoal`
//! to this binary) and a conflist that attaches to a shoal network.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::env::is_cni_name;

/// The plugin's file name in the bin dir, and the conflist's `type`.
pub const PLUGIN: &str = "shoal";
/// The conflist's `cniVersion`: 1.0.0, the newest that podman 4.3's libcni and
/// Debian's reference plugins speak (the plugin speaks 1.1.0 to runtimes that do).
pub const CONFLIST_VERSION: &str = "1.0.0";

/// What to install.
#[derive(Debug, Clone)]
pub struct Install {
    /// The shoal network, also the CNI network's name.
    pub network: String,
    /// The local agent's API socket.
    pub socket: PathBuf,
    /// The runtime's plugin directory.
    pub bin_dir: PathBuf,
    /// The runtime's network configuration directory.
    pub conf_dir: PathBuf,
    /// Chain the reference `portmap` plugin for port mappings.
    pub portmap: bool,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The plugin link.
    pub plugin: PathBuf,
    /// The conflist.
    pub conflist: PathBuf,
}

/// The conflist for `network` through the agent at `socket`. shoal takes the `ips`,
/// `mac` and `aliases` capabilities, and `portMappings` unless `portmap` chains the
/// reference plugin for them.
pub fn conflist(network: &str, socket: &Path, portmap: bool) -> Value {
    let mut plugins = vec![json!({
        "type": PLUGIN,
        "network": network,
        "socket": socket.to_string_lossy(),
        "capabilities": {
            "ips": true,
            "mac": true,
            "aliases": true,
            "portMappings": !portmap,
        },
    })];
    if portmap {
        plugins.push(json!({
            "type": "portmap",
            "capabilities": { "portMappings": true },
        }));
    }
    json!({
        "cniVersion": CONFLIST_VERSION,
        "name": network,
        "plugins": plugins,
    })
}

/// The conflist's file name in the conf dir.
pub fn conflist_name(network: &str) -> String {
    format!("{PLUGIN}-{network}.conflist")
}

/// Writes the plugin link and the conflist, each atomically (a temporary file renamed
/// over the old one), so a runtime never reads half a file.
pub fn install(what: &Install) -> anyhow::Result<Installed> {
    use anyhow::Context;
    if !is_cni_name(&what.network) {
        anyhow::bail!(
            "network {:?} cannot be a CNI network name (a letter or digit, then letters, digits, '_', '.' or '-')",
            what.network
        );
    }
    let exe = std::env::current_exe().context("cannot find this shoal binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    for dir in [&what.bin_dir, &what.conf_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    }
    let plugin = what.bin_dir.join(PLUGIN);
    if plugin.canonicalize().ok().as_deref() != Some(exe.as_path()) {
        let temp = what
            .bin_dir
            .join(format!(".{PLUGIN}.{}", std::process::id()));
        let _ = std::fs::remove_file(&temp);
        std::os::unix::fs::symlink(&exe, &temp)
            .and_then(|()| std::fs::rename(&temp, &plugin))
            .with_context(|| format!("cannot link {} to {}", plugin.display(), exe.display()))?;
    }
    let conflist_path = what.conf_dir.join(conflist_name(&what.network));
    let text = serde_json::to_string_pretty(&conflist(&what.network, &what.socket, what.portmap))?;
    write_atomically(&conflist_path, text.as_bytes())
        .with_context(|| format!("cannot write {}", conflist_path.display()))?;
    Ok(Installed {
        plugin,
        conflist: conflist_path,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::config::NetworkConfig;
    use crate::cni::env::CniCommand;

    /// The plugin's entry as libcni hands it to the plugin: the entry's keys plus the
    /// list's name and version (and runtimeConfig for declared capabilities).
    fn as_plugin_sees_it(list: &Value, index: usize) -> Vec<u8> {
        let mut entry = list["plugins"][index].clone();
        entry["name"] = list["name"].clone();
        entry["cniVersion"] = list["cniVersion"].clone();
        entry
            .as_object_mut()
            .unwrap()
            .remove("capabilities")
            .unwrap();
        serde_json::to_vec(&entry).unwrap()
    }

    #[test]
    fn the_conflist_is_one_shoal_reads_back() {
        let list = conflist("web", Path::new("/run/shoal/shoal.sock"), false);
        let config = NetworkConfig::parse(&as_plugin_sees_it(&list, 0), CniCommand::Add).unwrap();
        assert_eq!(config.network, "web");
        assert_eq!(config.socket, "/run/shoal/shoal.sock");
        assert_eq!(config.plugin_type, PLUGIN);
        assert_eq!(list["plugins"].as_array().unwrap().len(), 1);
        assert_eq!(list["plugins"][0]["capabilities"]["portMappings"], true);
    }

    #[test]
    fn portmap_takes_the_port_mappings_when_chained() {
        let list = conflist("web", Path::new("/s.sock"), true);
        let plugins = list["plugins"].as_array().unwrap();
        assert_eq!(plugins.len(), 2);
        assert_eq!(plugins[0]["capabilities"]["portMappings"], false);
        assert_eq!(plugins[1]["type"], "portmap");
        assert_eq!(plugins[1]["capabilities"]["portMappings"], true);
    }

    #[test]
    fn names_follow_the_network() {
        assert_eq!(conflist_name("db"), "shoal-db.conflist");
    }
}
