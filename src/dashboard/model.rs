//! The dashboard's panels, built from the cluster state and what this agent measures.
//! Pure: everything here is computed from its arguments.
//!
//! The names are the JSON of `/api/overview` and of the panels under `/api/` (see the
//! table in [`super`]); they are part of the contract, so fields are added, never renamed.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;
use shoal_control::api::{NetworkInfo, NodeInfo, RaftInfo, ServiceInfo};
use shoal_control::mesh::MeshView;
use shoal_control::state::{ClusterState, DesiredState};
use shoal_control::NodeId;
use shoal_ingress::proxy::RouteStatus;

use super::traffic::{RouterTraffic, ServiceTraffic};

/// Everything the page shows, in one document (first paint, and every live update).
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// When this agent built it (unix ms).
    pub generated_at_ms: u64,
    /// The state revision it shows.
    pub revision: u64,
    /// Nodes, leader, Raft.
    pub cluster: ClusterPanel,
    /// Networks with their pool usage and endpoints per node.
    pub networks: Vec<NetworkSummary>,
    /// Services with their tasks.
    pub services: Vec<ServiceInfo>,
    /// This node's ingress.
    pub ingress: IngressPanel,
    /// Every node's view of every other.
    pub mesh: MeshPanel,
}

/// `/api/cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterPanel {
    /// The cluster's ID.
    pub cluster_id: String,
    /// The node serving this page.
    pub node: String,
    /// The leader's name, as last announced.
    pub leader: Option<String>,
    /// The term in which it announced itself.
    pub leader_term: u64,
    /// This node's Raft view (managers).
    pub raft: Option<RaftInfo>,
    /// Every node, with what runs on it.
    pub nodes: Vec<NodeRow>,
}

/// One node: `node ls --format json`'s row and its load.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    /// As `shoal node ls --format json` prints it.
    #[serde(flatten)]
    pub info: NodeInfo,
    /// Tasks placed on it that should run.
    pub tasks: usize,
    /// Endpoints it holds (tasks, containers, sandboxes).
    pub endpoints: usize,
    /// Raft entries it is behind the leader's log (shown when the leader serves the page).
    pub raft_lag: Option<u64>,
}

/// `/api/networks` rows without the endpoint list, with endpoints per node.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkSummary {
    /// Its ID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Subnet (CIDR): the IPv4 one, on an IPv6-only network the IPv6 one.
    pub subnet: String,
    /// Gateway, of the same family.
    pub gateway: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// Whether its traffic between nodes is encrypted (WireGuard).
    pub encrypted: bool,
    /// Whether sandboxes and containers may attach.
    pub attachable: bool,
    /// No traffic leaves it.
    pub internal: bool,
    /// Its MTU.
    pub mtu: u32,
    /// Addresses in use.
    pub in_use: u32,
    /// Addresses it can give.
    pub capacity: u32,
    /// Endpoints by node name.
    pub endpoints_per_node: BTreeMap<String, usize>,
}

impl NetworkSummary {
    /// The summary of `n` (as `network ls --format json` prints it).
    pub fn of(n: &NetworkInfo) -> NetworkSummary {
        let mut endpoints_per_node = BTreeMap::new();
        for e in &n.endpoints {
            *endpoints_per_node.entry(e.node.clone()).or_insert(0) += 1;
        }
        NetworkSummary {
            id: n.id.clone(),
            name: n.name.clone(),
            subnet: n
                .ipam_config
                .first()
                .map(|c| c.subnet.clone())
                .unwrap_or_default(),
            gateway: n
                .ipam_config
                .first()
                .map(|c| c.gateway.clone())
                .unwrap_or_default(),
            vni: n.vni,
            encrypted: n.encrypted,
            attachable: n.attachable,
            internal: n.internal,
            mtu: n.mtu,
            in_use: n.in_use,
            capacity: n.capacity,
            endpoints_per_node,
        }
    }
}

/// `/api/ingress`: this node's entrypoints and routers, with traffic.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngressPanel {
    /// Where it listens, by entrypoint name.
    pub entrypoints: BTreeMap<String, SocketAddr>,
    /// Routers with their backends' health and their traffic.
    pub routers: Vec<RouterPanel>,
    /// Retries, breaker refusals and ejections, by service.
    pub services: BTreeMap<String, ServiceTraffic>,
}

/// One router: `route ls --format json`'s row and its recent traffic.
#[derive(Debug, Clone, Serialize)]
pub struct RouterPanel {
    /// As `shoal route ls --format json` prints it.
    #[serde(flatten)]
    pub route: RouteStatus,
    /// Requests, rate and latency percentiles.
    pub traffic: RouterTraffic,
}

/// `/api/mesh`: reachability and traffic from each node's point of view, as matrices
/// whose rows are the measuring nodes and columns their peers, both in `nodes` order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MeshPanel {
    /// Node names, in natural order (n2 before n10): the rows and the columns.
    pub nodes: Vec<String>,
    /// Whether each node's report reached the leader recently (a row without one is
    /// unknown, not unreachable).
    pub reported: Vec<bool>,
    /// Round trip (µs) of a TCP handshake from row to column over the underlay; `null`:
    /// unreachable, or not measured (the diagonal, rows not reported).
    pub rtt_us: Vec<Vec<Option<u64>>>,
    /// WireGuard from row to column (encrypted networks): `[handshake age (s), bytes
    /// in, bytes out]`, `null` without a handshake; absent when no node has a peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<Vec<Vec<Option<[u64; 3]>>>>,
    /// Drops by reason, by reporting node (only nodes with drops).
    pub drops: BTreeMap<String, BTreeMap<String, u64>>,
    /// Milliseconds since each node's report reached the leader.
    pub report_age_ms: BTreeMap<String, u64>,
    /// Why there is no matrix (no leader to ask, for instance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The cluster panel: `nodes` as `node ls` shows them, with tasks and endpoints counted
/// from `state`, and Raft lag from the leader's `matched` index per node ID.
pub fn cluster_panel(
    state: &ClusterState,
    me: &str,
    nodes: Vec<NodeInfo>,
    raft: Option<RaftInfo>,
    matched: &BTreeMap<u64, u64>,
) -> ClusterPanel {
    let mut tasks: BTreeMap<_, usize> = BTreeMap::new();
    for t in state.tasks.values() {
        if t.desired == DesiredState::Running {
            *tasks.entry(t.node).or_default() += 1;
        }
    }
    let mut endpoints: BTreeMap<_, usize> = BTreeMap::new();
    for e in state.endpoints.values() {
        *endpoints.entry(e.node).or_default() += 1;
    }
    let last = raft.as_ref().and_then(|r| r.last_log_index);
    let leading = raft.as_ref().is_some_and(|r| r.state == "Leader");
    let nodes = nodes
        .into_iter()
        .map(|info| NodeRow {
            tasks: tasks.get(&info.id).copied().unwrap_or(0),
            endpoints: endpoints.get(&info.id).copied().unwrap_or(0),
            raft_lag: match (leading, last, matched.get(&info.id.0)) {
                (true, Some(last), Some(m)) => Some(last.saturating_sub(*m)),
                _ => None,
            },
            info,
        })
        .collect();
    ClusterPanel {
        cluster_id: state.cluster_id.clone(),
        node: me.to_string(),
        leader: state.leader_node().map(|n| n.name.clone()),
        leader_term: state.leader_term,
        raft,
        nodes,
    }
}

/// The mesh matrices from the leader's views, with node names from `state`.
pub fn mesh_panel(state: &ClusterState, views: &[MeshView]) -> MeshPanel {
    let mut nodes: Vec<(&str, NodeId)> = state
        .nodes
        .values()
        .map(|n| (n.name.as_str(), n.id))
        .collect();
    nodes.sort_by(|a, b| natural(a.0, b.0));
    let index: BTreeMap<NodeId, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, (_, id))| (*id, i))
        .collect();
    let n = nodes.len();
    let mut panel = MeshPanel {
        nodes: nodes.iter().map(|(name, _)| name.to_string()).collect(),
        reported: vec![false; n],
        rtt_us: vec![vec![None; n]; n],
        ..MeshPanel::default()
    };
    let mut wireguard = vec![vec![None; n]; n];
    let mut any_wireguard = false;
    for v in views {
        let Some(&row) = index.get(&v.node) else {
            continue; // a node no longer in the state
        };
        panel.reported[row] = true;
        for p in &v.report.peers {
            let Some(&col) = index.get(&p.node) else {
                continue;
            };
            panel.rtt_us[row][col] = p.underlay_rtt_us;
            if let Some(age) = p.handshake_age_s {
                wireguard[row][col] = Some([age, p.rx_bytes, p.tx_bytes]);
                any_wireguard = true;
            }
        }
        let name = panel.nodes[row].clone();
        if !v.report.drops.is_empty() {
            panel.drops.insert(name.clone(), v.report.drops.clone());
        }
        panel.report_age_ms.insert(name, v.age_ms);
    }
    panel.wireguard = any_wireguard.then_some(wireguard);
    panel
}

/// Names in natural order: n2 before n10.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| {
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (head, tail) = s.split_at(s.len() - digits);
        (head.to_string(), tail.parse::<u64>().ok())
    };
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}

/// The ingress panel: each router with its service's traffic.
pub fn ingress_panel(
    entrypoints: BTreeMap<String, SocketAddr>,
    routes: Vec<RouteStatus>,
    routers: &BTreeMap<String, RouterTraffic>,
    services: BTreeMap<String, ServiceTraffic>,
) -> IngressPanel {
    IngressPanel {
        entrypoints,
        routers: routes
            .into_iter()
            .map(|route| RouterPanel {
                traffic: routers.get(&route.router).cloned().unwrap_or_default(),
                route,
            })
            .collect(),
        services,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_control::mesh::{MeshReport, PeerView};
    use shoal_control::state::Task;
    use shoal_control::NodeId;

    fn state() -> ClusterState {
        let mut s = ClusterState::default();
        for id in [1, 2] {
            s.nodes.insert(NodeId(id), crate::dashboard::test_node(id));
        }
        s.leader = Some(NodeId(1));
        s.leader_term = 3;
        let mut t = Task::new("t1", "web", 1, NodeId(2), 1, 0);
        t.desired = DesiredState::Running;
        s.tasks.insert("t1".into(), t.clone());
        t.desired = DesiredState::Shutdown;
        s.tasks.insert("t2".into(), t);
        s
    }

    fn info(s: &ClusterState, id: u64) -> NodeInfo {
        shoal_control::member::node_info(s, &s.nodes[&NodeId(id)], NodeId(1))
    }

    #[test]
    fn nodes_count_running_tasks_and_lag_only_on_the_leader() {
        let s = state();
        let nodes = vec![info(&s, 1), info(&s, 2)];
        let raft = RaftInfo {
            state: "Leader".into(),
            term: 3,
            last_log_index: Some(40),
            last_applied: Some(40),
            voters: vec!["n1".into()],
            millis_since_quorum_ack: Some(1),
        };
        let matched = BTreeMap::from([(1, 40), (2, 31)]);
        let p = cluster_panel(&s, "n1", nodes.clone(), Some(raft.clone()), &matched);
        assert_eq!(p.leader.as_deref(), Some("n1"));
        assert_eq!(p.leader_term, 3);
        assert_eq!(
            p.nodes[1].tasks, 1,
            "the task being shut down is not counted"
        );
        assert_eq!(p.nodes[0].tasks, 0);
        assert_eq!(p.nodes[1].raft_lag, Some(9));
        let follower = RaftInfo {
            state: "Follower".into(),
            ..raft
        };
        let p = cluster_panel(&s, "n1", nodes, Some(follower), &matched);
        assert_eq!(p.nodes[1].raft_lag, None, "only the leader knows the lag");
    }

    #[test]
    fn the_mesh_matrix_orders_nodes_naturally_and_tells_unknown_from_unreachable() {
        let mut s = state();
        s.nodes.insert(NodeId(10), crate::dashboard::test_node(10));
        let views = vec![MeshView {
            node: NodeId(1),
            age_ms: 120,
            report: MeshReport {
                peers: vec![
                    PeerView {
                        node: NodeId(2),
                        underlay_rtt_us: None,
                        handshake_age_s: Some(4),
                        rx_bytes: 10,
                        tx_bytes: 20,
                    },
                    PeerView {
                        node: NodeId(10),
                        underlay_rtt_us: Some(300),
                        handshake_age_s: None,
                        rx_bytes: 0,
                        tx_bytes: 0,
                    },
                ],
                drops: BTreeMap::from([("tx_no_route".to_string(), 2)]),
            },
        }];
        let m = mesh_panel(&s, &views);
        assert_eq!(m.nodes, vec!["n1", "n2", "n10"], "n2 before n10");
        assert_eq!(m.reported, vec![true, false, false]);
        assert_eq!(
            m.rtt_us[0],
            vec![None, None, Some(300)],
            "n1 to n2 unreachable"
        );
        assert_eq!(m.rtt_us[1], vec![None, None, None], "n2 did not report");
        let wg = m.wireguard.as_ref().expect("a WireGuard peer");
        assert_eq!(wg[0][1], Some([4, 10, 20]));
        assert_eq!(m.drops["n1"]["tx_no_route"], 2);
        assert_eq!(m.report_age_ms["n1"], 120);
        let plain = mesh_panel(&s, &[]);
        assert!(
            plain.wireguard.is_none(),
            "no matrix when nobody has a peer"
        );
        assert_eq!(serde_json::to_value(&plain).unwrap().get("wireguard"), None);
    }
}
