//! The routing mesh and VIPs on this node.
//!
//! ```text
//!  client ─▶ node:PUBLISHED ─dnat to any running task + snat to the node's address─▶ task
//!  sandbox ─▶ VIP:any port ─dnat in the sandbox itself─▶ a running task (no hairpin)
//! ```
//! The node's address on a published service's network is its own (own MAC), unlike
//! the anycast gateway, so source NAT to it brings the tasks' answers back through this
//! node; it sits on the network's bridge (see `shoal_dataplane::overlay::NodeAddr`), so
//! a published connection is translated once, in the node, like a VIP connection is in
//! its sandbox.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use shoal_control::state::{AttachSpec, ClusterState, PublishMode};
use shoal_control::{ClusterError, Member, NodeId};
use shoal_dataplane::nat_lb::{vip_table, Vip, LB_TABLE};
use shoal_dataplane::netns;
use shoal_dataplane::nft::{self, Family, NftError, Table};
use tokio_util::sync::CancellationToken;

use super::view::backends;
use super::Overlay;
use crate::agent::networks::{attach_and_wait, detach_and_wait};

/// The sandbox key of a node's own addresses in the state (they live on its bridges;
/// nothing exists at this path).
pub const NODE_SANDBOX: &str = "/run/shoal/node-address";

/// The networks this node needs an address of its own on: the first network of every
/// service that publishes a port through the mesh or has HTTP routes.
pub fn ingress_networks(state: &ClusterState) -> BTreeSet<String> {
    state
        .services
        .values()
        .filter(|s| {
            s.spec
                .publish
                .iter()
                .any(|p| p.mode == PublishMode::Ingress)
                || crate::l7::routed(&s.spec.labels)
        })
        .filter_map(|s| s.spec.networks.first().cloned())
        .collect()
}

/// Keeps this node's own addresses on exactly the networks that need them.
pub async fn run(member: Arc<Member>, overlay: Arc<Overlay>, stop: CancellationToken) {
    let mut changes = member.replica().changes();
    loop {
        if member.synced() && !member.is_removed() {
            if let Err(e) = step(&member, &overlay).await {
                tracing::warn!(error = %e, "routing mesh not ready yet; will retry");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

async fn step(member: &Member, overlay: &Overlay) -> Result<(), ClusterError> {
    let state = member.replica().state();
    let want = ingress_networks(&state);
    let have: BTreeMap<String, String> = state
        .endpoints
        .values()
        .filter(|e| e.node == member.node_id && e.ingress)
        .map(|e| (e.network.clone(), e.sandbox.clone()))
        .collect();
    for n in want.iter().filter(|n| !have.contains_key(*n)) {
        let spec = AttachSpec {
            network: n.clone(),
            node: member.node_id,
            sandbox: NODE_SANDBOX.into(),
            name: None,
            aliases: vec![],
            ip: None,
            service: None,
            task: None,
            ingress: true,
            ifname: None,
            ..Default::default()
        };
        attach_and_wait(member, overlay, spec).await?;
    }
    for (n, sandbox) in have.iter().filter(|(n, _)| !want.contains(*n)) {
        detach_and_wait(member, Some(overlay), n, sandbox.clone()).await?;
    }
    Ok(())
}

/// Programs the VIP table of every local sandbox, with the idle timeout of its
/// load-balanced connections as a conntrack timeout policy of the table's own (no
/// sysctl changes: the sandbox's other connections keep the kernel's timeouts).
pub async fn program(state: &ClusterState, me: NodeId, idle_timeout: Option<Duration>) {
    let idle_secs = idle_timeout.map(idle_secs);
    let mut sandboxes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in state
        .endpoints
        .values()
        .filter(|e| e.node == me && !e.ingress)
    {
        sandboxes
            .entry(e.sandbox.clone())
            .or_default()
            .insert(e.network.clone());
    }
    let mut jobs: Vec<(String, Table)> = Vec::new();
    for (sandbox, networks) in &sandboxes {
        let vips: Vec<Vip> = state
            .services
            .values()
            .flat_map(|s| {
                s.vips
                    .iter()
                    .filter(|(n, _)| networks.contains(*n))
                    .map(move |(n, vip)| (s, n, *vip))
            })
            .map(|(s, n, vip)| Vip {
                service: s.spec.name.clone(),
                vip,
                backends: backends(state, &s.spec.name, n)
                    .into_iter()
                    .map(|(ip, _)| ip)
                    .collect(),
            })
            .collect();
        jobs.push((sandbox.clone(), vip_table(&vips, idle_secs)));
    }
    let result = tokio::task::spawn_blocking(move || {
        for (sandbox, table) in jobs {
            let ns = match netns::open(&sandbox) {
                Ok(ns) => ns,
                Err(_) => continue,
            };
            let empty = table.chains.iter().all(|c| c.rules.is_empty());
            let applied = netns::run_in(&ns, move || -> Result<(), NftError> {
                if empty {
                    nft::remove_table(LB_TABLE, Family::Ip)?;
                } else {
                    nft::ensure_table(&table)?;
                }
                Ok(())
            });
            match applied {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(sandbox = %sandbox, error = %e, "cannot program load balancing")
                }
                Err(e) => {
                    tracing::warn!(sandbox = %sandbox, error = %e, "cannot enter the sandbox")
                }
            }
        }
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "load balancing programming failed");
    }
}

/// An idle timeout in whole seconds, as conntrack counts them (at least one).
pub fn idle_secs(t: Duration) -> u32 {
    u32::try_from(t.as_secs()).unwrap_or(u32::MAX).max(1)
}
