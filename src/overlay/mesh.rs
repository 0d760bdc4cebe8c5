//! The routing mesh and VIPs on this node.
//!
//! ```text
//!  client ─▶ node:PUBLISHED ─dnat─▶ ingress sandbox (own address on the service network)
//!                                     ─dnat + masquerade─▶ any running task (any node)
//!  sandbox ─▶ VIP:any port ─dnat in the sandbox itself─▶ a running task (no hairpin)
//! ```
//! The ingress sandbox has addresses of its own (unique MACs), unlike the anycast
//! gateway, so source NAT to it brings the tasks' replies back through this node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use shoal_control::state::{AttachSpec, ClusterState, PublishMode};
use shoal_control::{Member, NodeId};
use shoal_dataplane::lb::{ingress_table, vip_table, Published, Vip, LB_TABLE};
use shoal_dataplane::netns;
use shoal_dataplane::nft::{self, Family, Table};
use shoal_dataplane::overlay::digest;
use tokio_util::sync::CancellationToken;

use super::view::backends;
use super::Overlay;
use crate::agent::networks::{attach_and_wait, detach_and_wait};

/// The networks this node's ingress sandbox must be on: the first network of every
/// service that publishes a port through the mesh.
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

/// Keeps the ingress sandbox `<prefix>ingress` attached to exactly the networks that need it.
pub async fn run(
    member: Arc<Member>,
    overlay: Arc<Overlay>,
    prefix: String,
    stop: CancellationToken,
) {
    let ns = format!("{prefix}ingress");
    let mut changes = member.replica().changes();
    loop {
        if member.synced() && !member.is_removed() {
            if let Err(e) = step(&member, &overlay, &ns).await {
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

async fn step(member: &Member, overlay: &Overlay, ns: &str) -> Result<(), String> {
    let state = member.replica().state();
    let want = ingress_networks(&state);
    let path = netns::path_of(ns).to_string_lossy().into_owned();
    let have: BTreeSet<String> = state
        .endpoints
        .values()
        .filter(|e| e.node == member.node_id && e.ingress)
        .map(|e| e.network.clone())
        .collect();
    if want.is_empty() && have.is_empty() {
        if netns::path_of(ns).exists() {
            netns::delete(ns).map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    if !want.is_empty() && !netns::path_of(ns).exists() {
        netns::create(ns).map_err(|e| format!("cannot create the ingress sandbox {ns}: {e}"))?;
    }
    for n in want.difference(&have) {
        let spec = AttachSpec {
            network: n.clone(),
            node: member.node_id,
            sandbox: path.clone(),
            name: None,
            aliases: vec![],
            ip: None,
            service: None,
            task: None,
            ingress: true,
        };
        attach_and_wait(member, overlay, spec)
            .await
            .map_err(|e| e.to_string())?;
    }
    for n in have.difference(&want) {
        detach_and_wait(member, Some(overlay), n, path.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Programs the VIP table of every local sandbox and the ingress sandbox's table.
pub async fn program(state: &ClusterState, me: NodeId, idle_timeout: Option<Duration>) {
    let mut sandboxes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut ingress: Option<String> = None;
    for e in state.endpoints.values().filter(|e| e.node == me) {
        if e.ingress {
            ingress = Some(e.sandbox.clone());
        }
        sandboxes
            .entry(e.sandbox.clone())
            .or_default()
            .insert(e.network.clone());
    }
    let mut jobs: Vec<(String, Table, bool)> = Vec::new();
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
        let is_ingress = ingress.as_deref() == Some(sandbox.as_str());
        let table = if is_ingress {
            let ports: Vec<Published> = state
                .services
                .values()
                .filter_map(|s| s.spec.networks.first().map(|n| (s, n)))
                .flat_map(|(s, n)| {
                    s.spec
                        .publish
                        .iter()
                        .filter(|p| p.mode == PublishMode::Ingress)
                        .map(move |p| Published {
                            service: s.spec.name.clone(),
                            protocol: p.protocol.number(),
                            port: p.published,
                            backends: backends(state, &s.spec.name, n)
                                .into_iter()
                                .map(|(ip, _)| (ip, p.target))
                                .collect(),
                        })
                })
                .collect();
            ingress_table(&ports)
        } else {
            vip_table(&vips)
        };
        jobs.push((sandbox.clone(), table, is_ingress));
    }
    let result = tokio::task::spawn_blocking(move || {
        for (sandbox, table, is_ingress) in jobs {
            let ns = match netns::open(&sandbox) {
                Ok(ns) => ns,
                Err(_) => continue,
            };
            let empty = table.chains.iter().all(|c| c.rules.is_empty());
            let applied = netns::run_in(&ns, move || -> Result<(), String> {
                if is_ingress {
                    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                        .map_err(|e| e.to_string())?;
                }
                if empty {
                    nft::remove_table(LB_TABLE, Family::Ip).map_err(|e| e.to_string())?;
                } else {
                    nft::ensure_table(&table, &digest(&table)).map_err(|e| e.to_string())?;
                }
                if let Some(t) = idle_timeout {
                    let secs = t.as_secs().max(1).to_string();
                    for f in [
                        "nf_conntrack_tcp_timeout_established",
                        "nf_conntrack_udp_timeout_stream",
                    ] {
                        let path = format!("/proc/sys/net/netfilter/{f}");
                        if std::fs::read_to_string(&path)
                            .map(|v| v.trim() != secs)
                            .unwrap_or(false)
                        {
                            let _ = std::fs::write(&path, &secs);
                        }
                    }
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
