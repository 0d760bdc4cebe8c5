//! The human summary of one node's view, shared by `shoal status` and the agent's
//! plain-text `GET /status` (Weave's `curl localhost:6782/status` habit), and what
//! `shoal status --watch` compares to tell a change from a clock tick.
//!
//! ```text
//!  ClusterState ─ cluster_sections ─▶ StatusInfo.sections ─ render ─▶ text
//!                                     (agent adds overlay, WireGuard, ingress, tasks)
//! ```

use shoal_control::api::{StatusInfo, StatusSection};
use shoal_control::state::{ClusterState, NodeStatus};
use shoal_control::NodeId;

/// The plain-text summary of `s`.
pub fn render(s: &StatusInfo) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<18}{v}\n"));
    line("Agent:", format!("shoal {}", s.version));
    if !s.in_cluster {
        line(
            "Cluster:",
            "none (run `shoal cluster init` or `shoal cluster join`)".into(),
        );
        return out;
    }
    if s.removed {
        line(
            "Cluster:",
            "REMOVED from the cluster; run `shoal cluster leave --force`".into(),
        );
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    line("Cluster:", opt(&s.cluster_id));
    line(
        "Node:",
        format!(
            "{} ({})",
            opt(&s.name),
            s.node_id.map(|i| i.to_string()).unwrap_or_default()
        ),
    );
    line(
        "Role:",
        s.role.map(|r| r.as_str().to_string()).unwrap_or_default(),
    );
    line(
        "Address:",
        s.addr.map(|a| a.to_string()).unwrap_or_default(),
    );
    line(
        "Control:",
        s.control_addr.map(|a| a.to_string()).unwrap_or_default(),
    );
    line("Leader:", opt(&s.leader));
    line(
        "Nodes:",
        format!("{} ready, {} down", s.nodes_ready, s.nodes_down),
    );
    line("Revision:", s.revision.to_string());
    if let Some(r) = &s.raft {
        line("Raft:", format!("{} in term {}", r.state, r.term));
        line(
            "  log:",
            format!(
                "last index {}, applied {}",
                r.last_log_index
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.last_applied
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into())
            ),
        );
        line("  voters:", r.voters.join(", "));
        if let Some(ms) = r.millis_since_quorum_ack {
            line("  quorum ack:", format!("{ms} ms ago"));
        }
    }
    if let Some(w) = &s.watch {
        line(
            "  watchers:",
            format!(
                "{} open; sent {} events ({} snapshot{}), {} bytes",
                w.watchers,
                w.events_sent,
                w.snapshots_sent,
                if w.snapshots_sent == 1 { "" } else { "s" },
                w.bytes_sent
            ),
        );
    }
    for section in &s.sections {
        out.push_str(&format!("{}:\n", section.title));
        for (k, v) in &section.rows {
            // Keys longer than the column (task IDs) still get a gap.
            out.push_str(&format!("  {k:<16} {v}\n"));
        }
    }
    out
}

/// The cluster-wide sections: every node (role, status, leadership, address) and every
/// network (subnet, flags, endpoints here and in all), as node `me` sees the state.
pub fn cluster_sections(state: &ClusterState, me: NodeId) -> Vec<StatusSection> {
    let mut nodes: Vec<(String, String)> = state
        .nodes
        .values()
        .map(|n| {
            let mut v = format!(
                "{}, {}",
                n.role.as_str(),
                match n.status {
                    NodeStatus::Ready => "ready",
                    NodeStatus::Down => "DOWN",
                    NodeStatus::Leaving => "leaving",
                }
            );
            if state.leader == Some(n.id) {
                v.push_str(", leader");
            }
            v.push_str(&format!(", {}", n.addr));
            if n.id == me {
                v.push_str(" (this node)");
            }
            (n.name.clone(), v)
        })
        .collect();
    nodes.sort();
    let mut networks: Vec<(String, String)> = state
        .networks
        .values()
        .map(|net| {
            let on = |mine: bool| {
                state
                    .endpoints
                    .values()
                    .filter(|e| e.network == net.name && (!mine || e.node == me))
                    .count()
            };
            let flags: String = [
                (net.encrypted, ", encrypted"),
                (net.internal, ", internal"),
                (net.attachable, ", attachable"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| *f)
            .collect();
            (
                net.name.clone(),
                format!(
                    "{}{flags}, {} endpoints here, {} in all",
                    net.subnets(),
                    on(true),
                    on(false)
                ),
            )
        })
        .collect();
    networks.sort();
    if networks.is_empty() {
        networks.push(("(none)".into(), "no networks yet".into()));
    }
    vec![
        StatusSection {
            title: "Nodes in the cluster".into(),
            rows: nodes,
        },
        StatusSection {
            title: "Networks in the cluster".into(),
            rows: networks,
        },
    ]
}

/// The ingress section: how many routers are in force on this node.
pub fn ingress_section(routers: usize, with_backends: usize) -> StatusSection {
    StatusSection {
        title: "Ingress".into(),
        rows: vec![(
            "routers".into(),
            format!("{routers} in force, {with_backends} with backends"),
        )],
    }
}

/// What `--watch` compares: the summary without what changes by itself as time passes
/// (handshake ages and byte counts of WireGuard peers, Raft's quorum-ack age). A new
/// network, node, leader, term, revision, endpoint, task or router is a change.
pub fn change_key(s: &StatusInfo) -> String {
    let mut s = s.clone();
    if let Some(r) = s.raft.as_mut() {
        r.millis_since_quorum_ack = None;
    }
    for section in &mut s.sections {
        if section
            .title
            .starts_with(crate::overlay::encrypted::STATUS_TITLE)
        {
            for (_, v) in &mut section.rows {
                v.clear();
            }
        }
    }
    render(&s)
}

#[cfg(test)]
mod tests;
