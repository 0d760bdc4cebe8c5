//! Carrying out a diff over netlink. Each change is tried on its own; one failure does
//! not stop the others, and every outcome is reported (the agent turns endpoint failures
//! into errors for whoever attached them).

use std::net::Ipv4Addr;

use super::diff::Change;
use super::sandbox::{self, SandboxError};
use crate::netlink::{Netlink, NetlinkError};

/// Why one change could not be carried out. The others are still tried.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The kernel refused a link, address, FDB or neighbour request.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// An endpoint's veth pair could not be made or configured in its sandbox.
    #[error(transparent)]
    Endpoint(#[from] SandboxError),
}

/// What became of one change.
#[derive(Debug)]
pub struct Outcome {
    /// The change, for logs.
    pub change: String,
    /// The endpoint it concerned, if any.
    pub endpoint: Option<String>,
    /// Whether it worked.
    pub result: Result<(), ChangeError>,
}

async fn run(nl: &Netlink, change: &Change) -> Result<(), ChangeError> {
    match change {
        Change::DeleteLink { name, .. } => {
            if let Some(i) = nl.index(name).await? {
                nl.delete(i).await?;
            }
        }
        Change::CreateBridge { network } => {
            let br = network.bridge();
            nl.add_bridge_with(&br, network.gateway_mac, network.mtu)
                .await?;
            if let Some(gateway) = network.gateway {
                let i = nl.must_index(&br).await?;
                nl.add_address(i, gateway.addr().into(), gateway.prefix_len())
                    .await?;
            }
        }
        Change::FixLink { name, mtu, mac } => {
            let i = nl.must_index(name).await?;
            nl.set_link(i, *mtu, *mac).await?;
        }
        Change::AddAddress { link, ip, prefix } => {
            let i = nl.must_index(link).await?;
            nl.add_address(i, (*ip).into(), *prefix).await?;
        }
        Change::DelAddress { link, ip, prefix } => {
            let i = nl.must_index(link).await?;
            nl.del_address(i, *ip, *prefix).await?;
        }
        Change::AddAddress6 { link, ip, prefix } => {
            let i = nl.must_index(link).await?;
            nl.add_address6(i, *ip, *prefix).await?;
        }
        Change::DelAddress6 { link, ip, prefix } => {
            let i = nl.must_index(link).await?;
            nl.del_address6(i, *ip, *prefix).await?;
        }
        Change::AddNeigh6 { vxlan, ip, mac } => {
            let i = nl.must_index(vxlan).await?;
            nl.add_neigh6(i, *ip, *mac).await?;
        }
        Change::DelNeigh6 { vxlan, ip } => {
            let i = nl.must_index(vxlan).await?;
            nl.del_neigh6(i, *ip).await?;
        }
        Change::CreateVxlan {
            network,
            local,
            port,
        } => {
            let master = nl.must_index(&network.bridge()).await?;
            nl.add_vxlan(
                &network.vxlan(),
                network.vni,
                *local,
                *port,
                network.mtu,
                master,
                true,
            )
            .await?;
        }
        Change::AddFdb { vxlan, mac, dst } => {
            let i = nl.must_index(vxlan).await?;
            nl.add_fdb(i, *mac, *dst).await?;
        }
        Change::DelFdb { vxlan, mac, dst } => {
            let i = nl.must_index(vxlan).await?;
            nl.del_fdb(i, *mac, *dst).await?;
        }
        Change::AddNeigh { vxlan, ip, mac } => {
            let i = nl.must_index(vxlan).await?;
            nl.add_neigh(i, *ip, *mac).await?;
        }
        Change::DelNeigh { vxlan, ip, .. } => {
            let i = nl.must_index(vxlan).await?;
            nl.del_neigh(i, *ip).await?;
        }
        Change::PlugTap { tap, bridge, mtu } => {
            let i = nl.must_index(tap).await?;
            nl.set_mtu(i, *mtu).await?;
            nl.set_master(i, nl.must_index(bridge).await?).await?;
            nl.set_up(i).await?;
        }
        Change::AddEndpoint { endpoint, bridge } => {
            sandbox::add_endpoint(nl, endpoint, bridge).await?;
        }
    }
    Ok(())
}

/// Carries out `changes` in order.
pub async fn apply(nl: &Netlink, changes: &[Change]) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(changes.len());
    for change in changes {
        let result = run(nl, change).await;
        let endpoint = match change {
            Change::AddEndpoint { endpoint, .. } => Some(endpoint.id.clone()),
            _ => None,
        };
        match &result {
            Ok(()) => tracing::info!(change = %change, "dataplane"),
            Err(err) => tracing::warn!(change = %change, error = %err, "dataplane change failed"),
        }
        out.push(Outcome {
            change: change.to_string(),
            endpoint,
            result,
        });
    }
    out
}

/// Turns on IPv4 forwarding in this namespace (routing from sandboxes to the underlay).
pub fn ensure_forwarding() -> std::io::Result<()> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path)?.trim() != "1" {
        std::fs::write(path, "1")?;
    }
    Ok(())
}

/// Turns on IPv6 forwarding in this namespace (published ports answering over IPv6 are
/// forwarded from the underlay to dual-stack networks' bridges; the `inet` table keeps
/// everything else out). A forwarding interface ignores router advertisements unless
/// its `accept_ra` is 2, so the interfaces that take them now (1) are set to 2 first:
/// the host keeps its IPv6 default route.
pub fn ensure_forwarding6() -> std::io::Result<()> {
    let conf = std::path::Path::new("/proc/sys/net/ipv6/conf");
    let forwarding = conf.join("all/forwarding");
    if std::fs::read_to_string(&forwarding)?.trim() == "1" {
        return Ok(());
    }
    let mut taking = Vec::new();
    for entry in std::fs::read_dir(conf)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let accept_ra = std::fs::read_to_string(conf.join(&name).join("accept_ra"))?;
        taking.push((name, accept_ra.trim().to_string()));
    }
    for name in keep_router_advertisements(&taking) {
        std::fs::write(conf.join(name).join("accept_ra"), "2")?;
    }
    std::fs::write(forwarding, "1")
}

/// The interfaces among `(name, accept_ra)` whose `accept_ra` must become 2 for them to
/// go on taking router advertisements once forwarding is on: those at 1, not shoal's
/// own (nor `all`, `default` or `lo`).
fn keep_router_advertisements(ifaces: &[(String, String)]) -> Vec<&str> {
    ifaces
        .iter()
        .filter(|(name, ra)| {
            ra == "1"
                && !name.starts_with(super::PREFIX)
                && !["all", "default", "lo"].contains(&name.as_str())
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

/// The address is in the plan's local tunnel endpoint family (IPv4 only for now).
pub fn local_ipv4(addr: std::net::IpAddr) -> Option<Ipv4Addr> {
    match addr {
        std::net::IpAddr::V4(v4) => Some(v4),
        std::net::IpAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn interfaces_taking_router_advertisements_keep_taking_them_when_forwarding() {
        let ifaces: Vec<(String, String)> = [
            ("all", "1"),
            ("default", "1"),
            ("lo", "1"),
            ("eth0", "1"),
            ("eth1", "0"),
            ("wlan0", "2"),
            ("shl-b4096", "1"),
        ]
        .iter()
        .map(|(n, r)| (n.to_string(), r.to_string()))
        .collect();
        assert_eq!(super::keep_router_advertisements(&ifaces), ["eth0"]);
    }
}
