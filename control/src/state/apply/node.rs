//! Applying node commands: joins, heartbeats' verdicts, `node update`, promotion and
//! demotion, removal.

use std::collections::BTreeMap;

use super::super::{
    mesh_pool, ApplyError, Availability, ClusterState, Node, NodeReport, NodeStatus, Output, Role,
    WireguardPeer,
};
use super::{network, validate_label, Changed};
use crate::ids::{validate_name, NodeId};

/// The most routes a node may report.
const MAX_ROUTES: usize = 4096;

/// A node joined.
pub(super) fn add_node(state: &mut ClusterState, node: &Node) -> Changed {
    validate_new_node(state, node)?;
    state.nodes.insert(node.id, node.clone());
    Ok((Output::None, true))
}

/// The leader saw a node's heartbeats stop or resume; `status_since_ms` moves only when
/// the status does.
pub(super) fn set_node_status(
    state: &mut ClusterState,
    id: NodeId,
    status: NodeStatus,
    at: u64,
) -> Changed {
    let node = node_mut(state, id)?;
    if node.status != status {
        node.status = status;
        node.status_since_ms = at;
    }
    Ok((Output::None, true))
}

/// `node update`: availability (`availability_since_ms` moves only when it does) and
/// labels (removals first, so a key in both is set).
pub(super) fn update_node(
    state: &mut ClusterState,
    id: NodeId,
    availability: Option<Availability>,
    labels_add: &BTreeMap<String, String>,
    labels_rm: &[String],
    at: u64,
) -> Changed {
    for (k, v) in labels_add {
        validate_label(k, v)?;
    }
    let node = node_mut(state, id)?;
    if let Some(a) = availability {
        if node.availability != a {
            node.availability = a;
            node.availability_since_ms = at;
        }
    }
    for k in labels_rm {
        node.labels.remove(k);
    }
    for (k, v) in labels_add {
        node.labels.insert(k.clone(), v.clone());
    }
    Ok((Output::None, true))
}

/// `node promote` / `node demote`; the last manager cannot be demoted.
pub(super) fn set_role(state: &mut ClusterState, id: NodeId, role: Role) -> Changed {
    let node = node_ref(state, id)?;
    if node.role == Role::Manager && role == Role::Worker && manager_count(state) == 1 {
        return Err(ApplyError::LastManager(node.name.clone()));
    }
    node_mut(state, id)?.role = role;
    Ok((Output::None, true))
}

/// `node rm`: a worker goes with its endpoints and tasks, and its ID is never taken
/// back. Managers must be demoted first.
pub(super) fn remove_node(state: &mut ClusterState, id: NodeId) -> Changed {
    let node = node_ref(state, id)?;
    if node.role == Role::Manager {
        if manager_count(state) == 1 {
            return Err(ApplyError::LastManager(node.name.clone()));
        }
        return Err(ApplyError::IsManager(node.name.clone()));
    }
    state.nodes.remove(&id);
    state.removed.insert(id);
    network::forget_node_endpoints(state, id);
    super::super::retain(&mut state.tasks, |_, t| t.node != id);
    if state.leader == Some(id) {
        state.leader = None;
    }
    Ok((Output::None, true))
}

/// Checks a node that is about to join: a valid, unused name, an ID never seen, Ready.
pub(super) fn validate_new_node(state: &ClusterState, node: &Node) -> Result<(), ApplyError> {
    validate_name("node", &node.name)?;
    if state.removed.contains(&node.id) {
        return Err(ApplyError::Removed(node.id.to_string()));
    }
    if state.nodes.contains_key(&node.id) {
        return Err(ApplyError::Invalid(format!(
            "node ID {} is already in use",
            node.id
        )));
    }
    if let Some(other) = state.nodes.values().find(|n| n.name == node.name) {
        return Err(ApplyError::NodeNameTaken {
            name: node.name.clone(),
            id: other.id.to_string(),
        });
    }
    if node.status != NodeStatus::Ready {
        return Err(ApplyError::Invalid("a new node must be Ready".into()));
    }
    if let Some(why) = underlay_family_mismatch(state, &node.name, node.addr) {
        return Err(ApplyError::Invalid(why));
    }
    Ok(())
}

/// Why node `name` advertising `addr` cannot join: the cluster's underlay is of the
/// other address family (VXLAN devices and tunnels are of one family, so a mixed
/// cluster would have nodes that cannot reach each other's overlay).
pub fn underlay_family_mismatch(
    state: &ClusterState,
    name: &str,
    addr: std::net::IpAddr,
) -> Option<String> {
    let family = |a: std::net::IpAddr| if a.is_ipv4() { "IPv4" } else { "IPv6" };
    let other = state
        .nodes
        .values()
        .find(|n| n.addr.is_ipv4() != addr.is_ipv4())?;
    Some(format!(
        "node {name} advertises {addr}, an {} address, but this cluster's underlay is {} (node {} advertises {}): all nodes of a cluster advertise addresses of one family; start the agent with an {} --advertise-addr",
        family(addr),
        family(other.addr),
        other.name,
        other.addr,
        family(other.addr),
    ))
}

fn node_ref(state: &ClusterState, id: NodeId) -> Result<&Node, ApplyError> {
    state
        .nodes
        .get(&id)
        .ok_or_else(|| ApplyError::NoSuchNode(id.to_string()))
}

fn node_mut(state: &mut ClusterState, id: NodeId) -> Result<&mut Node, ApplyError> {
    state
        .nodes
        .get_mut(&id)
        .ok_or_else(|| ApplyError::NoSuchNode(id.to_string()))
}

fn manager_count(state: &ClusterState) -> usize {
    state.managers().count()
}

/// A node's report of itself (routes, underlay MTU, ...), checked for plausibility.
pub(super) fn report_node(state: &mut ClusterState, id: NodeId, report: &NodeReport) -> Changed {
    if report.routes.len() > MAX_ROUTES || report.routes6.len() > MAX_ROUTES {
        return Err(ApplyError::Invalid(format!(
            "a node may report at most {MAX_ROUTES} routes of each family, not {} and {}",
            report.routes.len(),
            report.routes6.len()
        )));
    }
    if !(576..=65535).contains(&report.underlay_mtu) {
        return Err(ApplyError::Invalid(format!(
            "underlay MTU {} is not plausible",
            report.underlay_mtu
        )));
    }
    let node = state
        .nodes
        .get_mut(&id)
        .ok_or_else(|| ApplyError::NoSuchNode(id.to_string()))?;
    if node.report == *report {
        return Ok((Output::None, false));
    }
    node.report = report.clone();
    Ok((Output::None, true))
}

/// Checks a base64 X25519 public key (32 bytes).
fn valid_public_key(key: &str) -> bool {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    key.len() == 44
        && key.ends_with('=')
        && !key.ends_with("==")
        && key.bytes().take(43).all(|b| ALPHABET.contains(&b))
}

pub(super) fn set_wireguard(
    state: &mut ClusterState,
    id: NodeId,
    public_key: &str,
    port: u16,
    generation: u64,
) -> Changed {
    if !valid_public_key(public_key) {
        return Err(ApplyError::Invalid(format!(
            "{public_key:?} is not a base64 X25519 public key"
        )));
    }
    if port == 0 {
        return Err(ApplyError::Invalid("WireGuard port 0 is not a port".into()));
    }
    if state.nodes.values().any(|n| {
        n.id != id
            && n.wireguard
                .as_ref()
                .is_some_and(|w| w.public_key == public_key)
    }) {
        return Err(ApplyError::Conflict(
            "another node already uses this WireGuard public key".into(),
        ));
    }
    let node = state
        .nodes
        .get(&id)
        .ok_or_else(|| ApplyError::NoSuchNode(id.to_string()))?;
    let mesh_ip = match &node.wireguard {
        Some(w) => w.mesh_ip,
        None => {
            let used: std::collections::BTreeSet<std::net::Ipv4Addr> = state
                .nodes
                .values()
                .filter_map(|n| n.wireguard.as_ref().map(|w| w.mesh_ip))
                .collect();
            mesh_pool()
                .hosts()
                .find(|ip| !used.contains(ip))
                .ok_or_else(|| ApplyError::Invalid("the WireGuard mesh pool is exhausted".into()))?
        }
    };
    let peer = WireguardPeer {
        public_key: public_key.to_string(),
        mesh_ip,
        port,
        generation,
    };
    let node = state
        .nodes
        .get_mut(&id)
        .ok_or_else(|| ApplyError::NoSuchNode(id.to_string()))?;
    if node.wireguard.as_ref() == Some(&peer) {
        return Ok((Output::None, false));
    }
    node.wireguard = Some(peer);
    Ok((Output::None, true))
}
