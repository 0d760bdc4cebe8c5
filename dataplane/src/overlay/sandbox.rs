//! An endpoint's interface in its sandbox: a veth pair whose node side plugs into the
//! network's bridge and whose other side becomes `ethN` in the sandbox, with the
//! endpoint's address, MAC, MTU and routes; and the sandbox's resolv.conf.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use super::plan::EndpointPlan;
use crate::netlink::{Netlink, NetlinkError};
use crate::netns;

/// The first line of every resolv.conf shoal writes, naming the node that wrote it; files
/// without it are not shoal's, and a node only removes its own.
fn marker(owner: &str) -> String {
    format!("# written by shoal node {owner}: the overlay network's resolver on its gateway")
}

/// Why an endpoint could not be set up.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The sandbox's namespace cannot be opened.
    #[error("sandbox {path}: {source}")]
    Namespace {
        /// Its path.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// The sandbox already has a foreign interface of that name.
    #[error("sandbox {path} already has an interface named {ifname} that shoal did not make")]
    NameTaken {
        /// The sandbox.
        path: String,
        /// The name.
        ifname: String,
    },
}

/// Creates the endpoint's interface; on failure removes what it made.
pub async fn add_endpoint(
    nl: &Netlink,
    e: &EndpointPlan,
    bridge: &str,
) -> Result<(), SandboxError> {
    if e.handoff {
        return add_handoff(nl, e, bridge).await;
    }
    let path = e.sandbox.display().to_string();
    let ns = netns::open(&path).map_err(|source| SandboxError::Namespace {
        path: path.clone(),
        source,
    })?;
    let inside = Netlink::in_namespace(&ns)?;
    if inside.index(&e.ifname).await?.is_some() {
        return Err(SandboxError::NameTaken {
            path,
            ifname: e.ifname.clone(),
        });
    }
    let host = e.host_ifname();
    nl.add_veth_into(&host, e.mtu, &e.ifname, &ns, e.mac)
        .await?;
    let result = async {
        let host_idx = nl.must_index(&host).await?;
        nl.set_master(host_idx, nl.must_index(bridge).await?)
            .await?;
        nl.set_hairpin(host_idx).await?;
        nl.set_up(host_idx).await?;
        let idx = inside.must_index(&e.ifname).await?;
        if let Some(ip) = e.ip {
            inside
                .add_address(idx, ip.addr().into(), ip.prefix_len())
                .await?;
        }
        if let Some(ip6) = e.ip6 {
            inside
                .add_address6(idx, ip6.addr(), ip6.prefix_len())
                .await?;
        }
        inside.set_up(idx).await?;
        if let Some(lo) = inside.index("lo").await? {
            inside.set_up(lo).await?;
        }
        if let (true, Some(gateway)) = (e.default_route, e.gateway) {
            if !inside.has_default_route().await? {
                inside.add_default_route(gateway).await?;
            }
        }
        if let (true, Some(gateway6)) = (e.default_route6, e.gateway6) {
            if !inside.has_default_route6().await? {
                inside.add_default_route6(gateway6).await?;
            }
        }
        Ok::<(), NetlinkError>(())
    }
    .await;
    if let Err(err) = result {
        if let Ok(Some(idx)) = nl.index(&host).await {
            let _ = nl.delete(idx).await;
        }
        return Err(err.into());
    }
    Ok(())
}

/// The veth pair of an endpoint whose sandbox end the runtime takes: the node end on the
/// bridge, the other end in this namespace with the endpoint's MAC and MTU, down.
async fn add_handoff(nl: &Netlink, e: &EndpointPlan, bridge: &str) -> Result<(), SandboxError> {
    let host = e.host_ifname();
    let peer = e.peer_ifname();
    if let Some(stale) = nl.index(&peer).await? {
        nl.delete(stale).await?;
    }
    nl.add_veth(&host, &peer).await?;
    let result = async {
        let host_idx = nl.must_index(&host).await?;
        nl.set_mtu(host_idx, e.mtu).await?;
        nl.set_master(host_idx, nl.must_index(bridge).await?)
            .await?;
        nl.set_hairpin(host_idx).await?;
        nl.set_up(host_idx).await?;
        let peer_idx = nl.must_index(&peer).await?;
        nl.set_mtu(peer_idx, e.mtu).await?;
        nl.set_mac(peer_idx, e.mac).await?;
        Ok::<(), NetlinkError>(())
    }
    .await;
    if let Err(err) = result {
        if let Ok(Some(idx)) = nl.index(&host).await {
            let _ = nl.delete(idx).await;
        }
        return Err(err.into());
    }
    Ok(())
}

/// What a sandbox's resolv.conf says: the network's resolver, and the search domains
/// and options its service asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// The gateway of the sandbox's first network (where its resolver listens): the
    /// IPv4 one, on an IPv6-only network the IPv6 one.
    pub nameserver: Option<IpAddr>,
    /// The `search` line; none when empty.
    pub search: Vec<String>,
    /// The `options` line; `ndots:0` is added unless an `ndots` option is given (as
    /// Docker does for its embedded resolver).
    pub options: Vec<String>,
}

impl ResolvConf {
    /// The file's text, after the marker line of `owner`.
    pub fn render(&self, owner: &str) -> String {
        let mut out = format!("{}\n", marker(owner));
        if let Some(ns) = self.nameserver {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.search.is_empty() {
            out.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        let mut options = self.options.clone();
        if !options.iter().any(|o| o.starts_with("ndots:")) {
            options.insert(0, "ndots:0".into());
        }
        out.push_str(&format!("options {}\n", options.join(" ")));
        out
    }
}

/// Writes `/etc/netns/<name>/resolv.conf` as `conf` says, unless it already says so;
/// `owner` is the writing node.
pub fn write_resolv_conf(owner: &str, name: &str, conf: &ResolvConf) -> io::Result<bool> {
    let dir = Path::new("/etc/netns").join(name);
    let path = dir.join("resolv.conf");
    let want = conf.render(owner);
    if fs::read_to_string(&path).ok().as_deref() == Some(want.as_str()) {
        return Ok(false);
    }
    fs::create_dir_all(&dir)?;
    let tmp = dir.join("resolv.conf.shoal-tmp");
    fs::write(&tmp, want)?;
    fs::rename(tmp, path)?;
    Ok(true)
}

/// Removes the resolv.conf files node `owner` wrote for namespaces not in `keep` (and
/// their directories, when empty).
pub fn remove_stale_resolv_confs(owner: &str, keep: &[String]) {
    let mark = marker(owner);
    let Ok(dir) = fs::read_dir("/etc/netns") else {
        return;
    };
    for entry in dir.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let path = entry.path().join("resolv.conf");
        let ours = fs::read_to_string(&path)
            .map(|s| s.starts_with(&mark))
            .unwrap_or(false);
        if ours {
            let _ = fs::remove_file(&path);
            let _ = fs::remove_dir(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Docker's embedded-DNS resolv.conf: only the resolver, `--dns-search` as the
    /// search line, `--dns-option` as options with ndots:0 unless ndots is given.
    #[test]
    fn resolv_conf_carries_search_and_options_and_ndots_0_by_default() {
        let plain = ResolvConf {
            nameserver: Some(Ipv4Addr::new(10, 0, 1, 1).into()),
            ..Default::default()
        };
        assert!(plain
            .render("n1")
            .ends_with("nameserver 10.0.1.1\noptions ndots:0\n"));
        let custom = ResolvConf {
            nameserver: Some(Ipv4Addr::new(10, 0, 1, 1).into()),
            search: vec!["example.com".into(), "corp".into()],
            options: vec!["ndots:2".into(), "timeout:1".into()],
        };
        let text = custom.render("n1");
        assert!(text.contains("search example.com corp\n"), "{text}");
        assert!(text.contains("options ndots:2 timeout:1\n"), "{text}");
        assert!(!text.contains("ndots:0"), "{text}");
    }
}
