//! Telling the cluster about this node's own network: its routes (network subnets must
//! not overlap them) and its underlay MTU (network MTUs derive from it).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use shoal_control::api::LeaderRequest;
use shoal_control::state::{Command, NodeReport};
use shoal_control::Member;
use shoal_dataplane::netlink::{Netlink, NetlinkError};
use shoal_dataplane::overlay::PREFIX;
use tokio_util::sync::CancellationToken;

/// How often the report is refreshed.
const EVERY: Duration = Duration::from_secs(10);

/// Reads this node's report from the kernel: routes of the main table that are not
/// shoal's and not the default route, and the MTU of the interface holding `advertise`.
pub async fn read(nl: &Netlink, advertise: IpAddr) -> Result<NodeReport, NetlinkError> {
    let links = nl.links().await?;
    let name_of = |i: u32| {
        links
            .iter()
            .find(|l| l.0 == i)
            .map(|l| l.1.clone())
            .unwrap_or_default()
    };
    let mut routes: Vec<Ipv4Net> = nl
        .routes_v4()
        .await?
        .into_iter()
        .filter(|(_, prefix, oif)| {
            *prefix > 0 && !oif.is_some_and(|i| name_of(i).starts_with(PREFIX))
        })
        .filter_map(|(dst, prefix, _)| Ipv4Net::new(dst, prefix).ok().map(|n| n.trunc()))
        .collect();
    routes.sort();
    routes.dedup();
    let mut routes6: Vec<Ipv6Net> = nl
        .routes_v6()
        .await?
        .into_iter()
        .filter(|(dst, _, oif)| {
            let special = dst.segments()[0] & 0xffc0 == 0xfe80 || dst.segments()[0] >> 8 == 0xff;
            !special && !oif.is_some_and(|i| name_of(i).starts_with(PREFIX))
        })
        .filter_map(|(dst, prefix, _)| Ipv6Net::new(dst, prefix).ok().map(|n| n.trunc()))
        .collect();
    routes6.sort();
    routes6.dedup();
    let addrs = nl.addresses().await?;
    let underlay_mtu = addrs
        .iter()
        .find(|(_, ip)| *ip == advertise)
        .and_then(|(i, _)| links.iter().find(|l| l.0 == *i))
        .map(|l| l.2)
        .unwrap_or(shoal_control::state::DEFAULT_UNDERLAY_MTU);
    // Part of the replicated node record, so kept as the message the operator reads.
    let no_encryption = shoal_dataplane::wg::tap::capability()
        .err()
        .map(|e| e.to_string());
    Ok(NodeReport {
        routes,
        routes6,
        underlay_mtu,
        no_encryption,
        arch: nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_else(|_| std::env::consts::ARCH.into()),
    })
}

/// Reports whenever what the node would report differs from what the state holds.
pub async fn run(member: Arc<Member>, stop: CancellationToken) {
    let nl = match Netlink::current() {
        Ok(nl) => nl,
        Err(e) => {
            tracing::error!(error = %e, "cannot open netlink to read this node's routes");
            return;
        }
    };
    loop {
        let state = member.replica().state();
        let advertise = member.identity().addr;
        if let (true, Some(me)) = (member.synced(), state.nodes.get(&member.node_id)) {
            match read(&nl, advertise).await {
                Ok(report) if report != me.report => {
                    let command = Command::ReportNode {
                        id: member.node_id,
                        report,
                    };
                    if let Err(e) = member
                        .submit(LeaderRequest::Propose { command }, Some(member.node_id))
                        .await
                    {
                        tracing::debug!(error = %e, "node report not delivered; will retry");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read this node's routes"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(if member.synced() { EVERY } else { Duration::from_millis(500) }) => {}
        }
    }
}
