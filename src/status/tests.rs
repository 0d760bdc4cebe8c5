use shoal_control::api::{RaftInfo, StatusInfo, StatusSection, WatchInfo};
use shoal_control::state::{NodeStatus, Role};
use shoal_control::NodeId;

use super::*;
use crate::overlay::view::tests::state;

fn info(sections: Vec<StatusSection>) -> StatusInfo {
    StatusInfo {
        in_cluster: true,
        version: "0.1.0".into(),
        removed: false,
        cluster_id: Some("c".into()),
        node_id: Some(NodeId(1)),
        name: Some("n1".into()),
        role: Some(Role::Manager),
        addr: Some([198, 18, 0, 1].into()),
        control_addr: Some(([198, 18, 0, 1], 2377).into()),
        leader: Some("n1".into()),
        revision: 7,
        nodes_ready: 1,
        nodes_down: 1,
        raft: Some(RaftInfo {
            state: "Leader".into(),
            term: 3,
            last_log_index: Some(9),
            last_applied: Some(9),
            voters: vec!["n1".into(), "n2".into()],
            millis_since_quorum_ack: Some(12),
        }),
        watch: Some(WatchInfo {
            watchers: 2,
            events_sent: 40,
            snapshots_sent: 1,
            bytes_sent: 9_000,
        }),
        sections,
    }
}

#[test]
fn the_summary_names_every_node_the_leader_and_the_networks() {
    let mut s = state();
    s.leader = Some(NodeId(1));
    if let Some(n) = s.nodes.get_mut(&NodeId(2)) {
        n.status = NodeStatus::Down;
    }
    let mut sections = cluster_sections(&s, NodeId(1));
    sections.push(ingress_section(3, 2));
    let text = render(&info(sections));
    let row = |k: &str, v: &str| format!("  {k:<16} {v}\n");
    let field = |k: &str, v: &str| format!("{k:<18}{v}\n");
    for line in [
        field("Node:", "n1 (0000000000000001)"),
        field("Role:", "manager"),
        field("Leader:", "n1"),
        field("Nodes:", "1 ready, 1 down"),
        field("Raft:", "Leader in term 3"),
        field(
            "  watchers:",
            "2 open; sent 40 events (1 snapshot), 9000 bytes",
        ),
        format!(
            "Nodes in the cluster:\n{}{}",
            row("n1", "manager, ready, leader, 198.18.0.1 (this node)"),
            row("n2", "manager, DOWN, 198.18.0.2")
        ),
        "Networks in the cluster:\n".to_string(),
        format!(
            "Ingress:\n{}",
            row("routers", "3 in force, 2 with backends")
        ),
    ] {
        assert!(text.contains(&line), "{line:?} not in\n{text}");
    }
    // Network a has an endpoint on each node, b only on n1; b is internal.
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("  {name} ")))
            .unwrap_or_else(|| panic!("no row for {name} in\n{text}"))
            .to_string()
    };
    assert!(
        row("a").ends_with(", attachable, 1 endpoints here, 2 in all"),
        "{}",
        row("a")
    );
    assert!(
        row("b").contains(", internal, attachable, 1 endpoints here, 1 in all"),
        "{}",
        row("b")
    );
    assert!(
        row("c").ends_with("0 endpoints here, 1 in all"),
        "{}",
        row("c")
    );
}

#[test]
fn an_agent_outside_a_cluster_says_how_to_join() {
    let mut s = info(Vec::new());
    s.in_cluster = false;
    let text = render(&s);
    assert!(text.contains("shoal cluster init"), "{text}");
    assert!(!text.contains("Leader:"), "{text}");
}

#[test]
fn watch_sees_changes_but_not_clock_ticks() {
    let wg = |age: u64| StatusSection {
        title: format!(
            "{} (encrypted networks; `wg show shoal`)",
            crate::overlay::encrypted::STATUS_TITLE
        ),
        rows: vec![(
            "n2".into(),
            format!("198.18.0.2:51820 latest handshake {age}s ago"),
        )],
    };
    let a = info(vec![wg(1)]);
    let mut b = info(vec![wg(2)]);
    if let Some(r) = b.raft.as_mut() {
        r.millis_since_quorum_ack = Some(999);
    }
    assert_eq!(change_key(&a), change_key(&b));
    assert_ne!(render(&a), render(&b));
    let mut c = b.clone();
    c.revision += 1;
    assert_ne!(change_key(&b), change_key(&c));
    let mut d = b.clone();
    d.sections.push(ingress_section(1, 1));
    assert_ne!(change_key(&b), change_key(&d));
    let mut e = b.clone();
    e.leader = Some("n2".into());
    assert_ne!(change_key(&b), change_key(&e));
}
