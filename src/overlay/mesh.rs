//! The routing mesh and VIPs on this node.
//!
//! ```text
//!  src=preserve (default):
//!  client ─▶ node A:PUBLISHED ─dnat to any running task; frame from A's node MAC─▶ task (node B)
//!  task's reply ─ct mark by A's MAC ─▶ fwmark rule ─▶ default via A's node address─▶ A ─▶ client
//!  src=nat:
//!  client ─▶ node A:PUBLISHED ─dnat to any running task + snat to A's node address─▶ task
//!  sandbox ─▶ VIP:any port ─dnat in the sandbox itself─▶ a running task (no hairpin)
//! ```
//! Each node has an address of its own (own MAC, unlike the anycast gateway) on every
//! network a service publishes ports from; it sits on the network's bridge (see
//! `shoal_dataplane::overlay::NodeAddr`), so a published connection is translated once,
//! in the ingress node, like a VIP connection is in its sandbox.
//!
//! **Keeping the client's address (`src=preserve`).** Node A translates only the
//! destination, so the task sees the client's own address and port (unlike Docker's
//! mesh, moby#25526). A holds the connection's translation, so the replies must come
//! back through A, not leave by node B's own gateway. A marks such connections
//! (`MESH_PRESERVE_MARK`) and its bridge stamps their frames with A's node MAC. In
//! the task's sandbox ([`return_path`](super::return_path)), a prerouting rule gives
//! a connection whose first frame came from A's MAC a conntrack mark naming A; an
//! output rule (type route) copies it to the replies' packet mark, and an `ip rule
//! fwmark → table` sends them by a table whose only route is `default via` A's node
//! address. A's bridge lifts frames for its MAC up to A, whose conntrack undoes the
//! DNAT and sends the reply to the client. TCP and UDP alike (conntrack, not sockets,
//! carries the mark); encrypted networks alike (the frames are the same inside
//! WireGuard). A task on A itself needs nothing: its replies go to its gateway, which is
//! A. Clients on the service's own network (a task reaching its own service through a
//! node's address: the hairpin) stay source-NATed to A's node address, since a task
//! receiving its own address as a source would drop it as a martian. Marks and tables
//! are the node address as a number, unique in the cluster. Ingress nodes that are
//! not Down get them (a Leaving or drained one still forwards its connections): when A
//! goes Down or leaves, the next pass removes its rules, tables and
//! marking rules from every sandbox (A's own connections died with its conntrack, as
//! with any NAT), and new connections go to nodes that are up.
//!
//! **Source NAT (`src=nat`).** The connection leaves A source-NATed to A's node
//! address, so the task's replies come back to A on their own; the task sees A's
//! address.
//!
//! **IPv6.** A service on a dual-stack network publishes its ports on the node's IPv6
//! addresses too (`ip6 shoal` on the node, its tasks' IPv6 addresses): node A's address
//! on the network has an IPv6 address beside the IPv4 one, with the same MAC, so the
//! same marks carry the return path (chains in the sandbox's `ip6` table, `ip -6 rule`,
//! IPv6 tables whose default route goes via A's IPv6 address) and `src=nat` translates
//! to it. On an IPv6-only network, A's address is IPv6 alone (its mark made from it) and
//! the ports answer on the node's IPv6 addresses only: nothing IPv4 is programmed for
//! it. The node forwards IPv6 between the underlay and the network only for these
//! translated connections.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use shoal_control::state::{AttachSpec, ClusterState, PublishMode};
use shoal_control::{ClusterError, Member, NodeId};
use shoal_dataplane::nat_lb::{vip_table, vip_table6, Vip, Vip6, LB_TABLE};
use shoal_dataplane::netns;
use shoal_dataplane::nft::{self, NftError, Table};
use shoal_dataplane::return_path::{self, IngressPeer, IpFamily};
use tokio_util::sync::CancellationToken;

use super::view::{backends, backends6};
use super::Overlay;
use crate::agent::networks::{attach_and_wait, detach_and_wait};

/// The sandbox key of a node's own addresses in the state (they live on its bridges;
/// nothing exists at this path).
pub const NODE_SANDBOX: &str = "/run/shoal/node-address";

/// The networks this node needs an address of its own on: the first network of every
/// service that publishes a port through the mesh or has HTTP routes (on an IPv6-only
/// network the address is IPv6 alone).
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
        .filter(|n| state.networks.contains_key(n))
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

/// What [`program`] makes of the local sandboxes: each one's VIP table (with its return
/// path chains) and the ingress peers its return routes lead to. Pure: a pass whose plan
/// equals the last one's has nothing to program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LbPlan {
    /// Every local sandbox's tables (`ip`, `ip6`), by sandbox.
    pub tables: Vec<(String, [Table; 2])>,
    /// The ingress peers of the sandboxes that have any.
    pub peers: BTreeMap<String, Vec<IngressPeer>>,
}

/// The [`LbPlan`] of node `me` in `state`.
pub fn lb_plan(state: &ClusterState, me: NodeId, idle_timeout: Option<Duration>) -> LbPlan {
    let idle_secs = idle_timeout.map(idle_secs);
    let peers = super::return_path::peers(state, me);
    let mut sandboxes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in state
        .endpoints
        .values()
        .filter(|e| e.node == me && !e.ingress && !e.is_state_only())
    {
        sandboxes
            .entry(e.sandbox.clone())
            .or_default()
            .insert(e.network.clone());
    }
    // Per sandbox: its ip table, then its ip6 one, programmed in one visit.
    let mut jobs: Vec<(String, [Table; 2])> = Vec::new();
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
        let mut table = vip_table(&vips, idle_secs);
        if let Some(p) = peers.get(sandbox) {
            table.chains.extend(return_path::chains(p, IpFamily::V4));
        }
        let vips6: Vec<Vip6> = state
            .services
            .values()
            .flat_map(|s| {
                s.vips6
                    .iter()
                    .filter(|(n, _)| networks.contains(*n))
                    .map(move |(n, vip)| Vip6 {
                        service: s.spec.name.clone(),
                        vip: *vip,
                        backends: backends6(state, &s.spec.name, n),
                    })
            })
            .collect();
        let mut table6 = vip_table6(&vips6, idle_secs);
        if let Some(p) = peers.get(sandbox) {
            // Replies over IPv6 go back through the peers that have an IPv6 address.
            table6.chains.extend(return_path::chains(p, IpFamily::V6));
        }
        jobs.push((sandbox.clone(), [table, table6]));
    }
    LbPlan {
        tables: jobs,
        peers,
    }
}

/// Programs the VIP tables of every local sandbox (`ip`, and `ip6` for IPv6 VIPs), with
/// the idle timeout of its load-balanced connections as a conntrack timeout policy of the table's own (no
/// sysctl changes: the sandbox's other connections keep the kernel's timeouts), and the
/// return path of published connections that keep the client's address (its marking
/// chains in the same table, its policy routes after).
///
/// Returns false when any sandbox could not be programmed, or was not there (yet): a
/// container's namespace may appear after its endpoint, with no change of the state.
pub async fn program(plan: LbPlan) -> bool {
    let LbPlan {
        tables: jobs,
        peers,
    } = plan;
    let names: Vec<String> = jobs.iter().map(|(sandbox, _)| sandbox.clone()).collect();
    let result = tokio::task::spawn_blocking(move || {
        let mut clean = true;
        for (sandbox, tables) in jobs {
            let Ok(ns) = netns::open(&sandbox) else {
                clean = false;
                continue;
            };
            // Each table is tried even if the other fails; the first error is told.
            let applied = netns::run_in(&ns, move || -> Result<(), NftError> {
                let mut first = Ok(());
                for table in &tables {
                    let done = if table.chains.iter().all(|c| c.rules.is_empty()) {
                        nft::remove_table(LB_TABLE, table.family).map(drop)
                    } else {
                        nft::ensure_table(table).map(drop)
                    };
                    if first.is_ok() {
                        first = done;
                    }
                }
                first
            });
            match applied {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => {
                    tracing::warn!(sandbox = %sandbox, error = %e, "cannot program load balancing")
                }
                Err(e) => {
                    tracing::warn!(sandbox = %sandbox, error = %e, "cannot enter the sandbox")
                }
            }
            clean = false;
        }
        clean
    })
    .await;
    let clean = result.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "load balancing programming failed");
        false
    });
    super::return_path::program(&names, &peers).await && clean
}

/// An idle timeout in whole seconds, as conntrack counts them (at least one).
pub fn idle_secs(t: Duration) -> u32 {
    u32::try_from(t.as_secs()).unwrap_or(u32::MAX).max(1)
}
