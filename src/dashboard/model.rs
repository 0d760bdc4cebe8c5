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
    /// Subnet (CIDR).
    pub subnet: String,
    /// Gateway.
    pub gateway: std::net::Ipv4Addr,
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
            subnet: n.subnet.clone(),
            gateway: n.gateway,
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

/// `/api/mesh`: reachability and traffic from each node's point of view.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MeshPanel {
    /// Node names, the matrix's rows and columns.
    pub nodes: Vec<String>,
    /// One cell per (reporting node, peer) pair reported.
    pub cells: Vec<MeshCell>,
    /// Drops by reason, by reporting node.
    pub drops: BTreeMap<String, BTreeMap<String, u64>>,
    /// Milliseconds since each node's report reached the leader.
    pub report_age_ms: BTreeMap<String, u64>,
    /// Why there is no matrix (no leader to ask, for instance).
    pub error: Option<String>,
}

/// One node's view of one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeshCell {
    /// The node that measured.
    pub from: String,
    /// The peer.
    pub to: String,
    /// Whether the peer answered over the underlay.
    pub reachable: bool,
    /// Round trip of a TCP handshake to its control port (µs).
    pub underlay_rtt_us: Option<u64>,
    /// Seconds since the last WireGuard handshake (encrypted networks; absent without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_age_s: Option<u64>,
    /// Encrypted bytes received from it.
    pub rx_bytes: u64,
    /// Encrypted bytes sent to it.
    pub tx_bytes: u64,
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

/// The mesh matrix from the leader's views, with node names from `state`.
pub fn mesh_panel(state: &ClusterState, views: &[MeshView]) -> MeshPanel {
    let name = |id| {
        state
            .nodes
            .get(&id)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let mut panel = MeshPanel {
        nodes: state.nodes.values().map(|n| n.name.clone()).collect(),
        ..MeshPanel::default()
    };
    for v in views {
        let from = name(v.node);
        for p in &v.report.peers {
            panel.cells.push(MeshCell {
                from: from.clone(),
                to: name(p.node),
                reachable: p.underlay_rtt_us.is_some(),
                underlay_rtt_us: p.underlay_rtt_us,
                handshake_age_s: p.handshake_age_s,
                rx_bytes: p.rx_bytes,
                tx_bytes: p.tx_bytes,
            });
        }
        panel.drops.insert(from.clone(), v.report.drops.clone());
        panel.report_age_ms.insert(from, v.age_ms);
    }
    panel
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
    fn the_mesh_matrix_names_nodes_and_marks_silent_peers_unreachable() {
        let s = state();
        let views = vec![MeshView {
            node: NodeId(1),
            age_ms: 120,
            report: MeshReport {
                peers: vec![PeerView {
                    node: NodeId(2),
                    underlay_rtt_us: None,
                    handshake_age_s: Some(4),
                    rx_bytes: 10,
                    tx_bytes: 20,
                }],
                drops: BTreeMap::from([("tx_no_route".to_string(), 2)]),
            },
        }];
        let m = mesh_panel(&s, &views);
        assert_eq!(m.nodes, vec!["n1", "n2"]);
        assert_eq!(m.cells.len(), 1);
        assert_eq!(
            (m.cells[0].from.as_str(), m.cells[0].to.as_str()),
            ("n1", "n2")
        );
        assert!(!m.cells[0].reachable);
        assert_eq!(m.cells[0].handshake_age_s, Some(4));
        assert_eq!(m.drops["n1"]["tx_no_route"], 2);
        assert_eq!(m.report_age_ms["n1"], 120);
    }
}
