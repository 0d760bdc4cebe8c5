//! The pure state machine: `apply(state, secrets, proposal)`.
//!
//! Every branch validates before it mutates, so an error leaves the state untouched and
//! does not bump the revision. Nothing here reads a clock or draws a random number.

pub(super) mod docker;
mod network;
pub(super) mod ports;
mod service;
mod service_spec;

use super::{
    Applied, ApplyError, ClusterState, Command, Node, NodeStatus, Output, Proposal, Role, Secrets,
};
use crate::ids::{validate_name, NodeId};

/// What a command did: its output, and whether the state changed (only then does the
/// revision move).
type Changed = Result<(Output, bool), ApplyError>;

/// Applies one proposal. `secrets` is `Some` on managers and `None` on nodes that replay
/// the (redacted) watch stream.
pub fn apply(
    state: &mut ClusterState,
    secrets: Option<&mut Secrets>,
    proposal: &Proposal,
) -> Result<Applied, ApplyError> {
    let at = proposal.at_ms;
    if !state.is_initialised() && !matches!(proposal.command, Command::Bootstrap { .. }) {
        return Err(ApplyError::NotInitialised);
    }
    let (output, changed) = match &proposal.command {
        Command::Bootstrap {
            cluster_id,
            ca_cert_pem,
            secrets: new_secrets,
            addr_pools,
            node,
        } => {
            if state.is_initialised() {
                return Err(ApplyError::AlreadyInitialised(state.cluster_id.clone()));
            }
            if cluster_id.is_empty() {
                return Err(ApplyError::Invalid("cluster ID must not be empty".into()));
            }
            addr_pools
                .validate()
                .map_err(|e| ApplyError::Invalid(e.to_string()))?;
            validate_new_node(state, node)?;
            state.cluster_id = cluster_id.clone();
            state.created_at_ms = at;
            state.ca_cert_pem = ca_cert_pem.clone();
            state.addr_pools = addr_pools.clone();
            state.nodes.insert(node.id, node.clone());
            if let Some(secrets) = secrets {
                *secrets = new_secrets.clone();
            }
            (Output::None, true)
        }
        Command::AddNode { node } => {
            validate_new_node(state, node)?;
            state.nodes.insert(node.id, node.clone());
            (Output::None, true)
        }
        Command::SetNodeStatus { id, status } => {
            let node = node_mut(state, *id)?;
            if node.status != *status {
                node.status = *status;
                node.status_since_ms = at;
            }
            (Output::None, true)
        }
        Command::UpdateNode {
            id,
            availability,
            labels_add,
            labels_rm,
        } => {
            for (k, v) in labels_add {
                validate_label(k, v)?;
            }
            let node = node_mut(state, *id)?;
            if let Some(a) = availability {
                node.availability = *a;
            }
            for k in labels_rm {
                node.labels.remove(k);
            }
            for (k, v) in labels_add {
                node.labels.insert(k.clone(), v.clone());
            }
            (Output::None, true)
        }
        Command::SetRole { id, role } => {
            let node = node_ref(state, *id)?;
            if node.role == Role::Manager && *role == Role::Worker && manager_count(state) == 1 {
                return Err(ApplyError::LastManager(node.name.clone()));
            }
            node_mut(state, *id)?.role = *role;
            (Output::None, true)
        }
        Command::RemoveNode { id } => {
            let node = node_ref(state, *id)?;
            if node.role == Role::Manager {
                if manager_count(state) == 1 {
                    return Err(ApplyError::LastManager(node.name.clone()));
                }
                return Err(ApplyError::IsManager(node.name.clone()));
            }
            state.nodes.remove(id);
            state.removed.insert(*id);
            network::forget_node_endpoints(state, *id);
            state.tasks.retain(|_, t| t.node != *id);
            if state.leader == Some(*id) {
                state.leader = None;
            }
            (Output::None, true)
        }
        Command::RotateToken { role, secret } => {
            if let Some(secrets) = secrets {
                if secret.len() < 16 {
                    return Err(ApplyError::Invalid(
                        "a join secret must be at least 16 characters".into(),
                    ));
                }
                match role {
                    Role::Manager => secrets.manager_secret = secret.clone(),
                    Role::Worker => secrets.worker_secret = secret.clone(),
                }
            }
            (Output::None, true)
        }
        Command::SetLeader { id, term } => {
            if *term < state.leader_term {
                return Err(ApplyError::Invalid(format!(
                    "leader announcement for term {term} is older than term {}",
                    state.leader_term
                )));
            }
            state.leader = Some(*id);
            state.leader_term = *term;
            (Output::None, true)
        }
        Command::ReportNode { id, report } => network::report_node(state, *id, report)?,
        Command::CreateNetwork { id, spec } => network::create_network(state, id, spec, at)?,
        Command::RemoveNetwork { network: n } => network::remove_network(state, n)?,
        Command::Attach { spec } => network::attach(state, spec, at)?,
        Command::Detach {
            network: n,
            node,
            sandbox,
        } => network::detach(state, n, *node, sandbox)?,
        Command::SetWireguard {
            id,
            public_key,
            port,
            generation,
        } => network::set_wireguard(state, *id, public_key, *port, *generation)?,
        Command::RotateKeys => {
            state.key_generation += 1;
            state.keys_rotated_at_ms = at;
            (Output::None, true)
        }
        Command::CreateService { id, spec } => service::create_service(state, id, spec, at)?,
        Command::UpdateService { name, changes } => {
            service::update_service(state, name, changes, at)?
        }
        Command::RemoveService { name } => service::remove_service(state, name)?,
        Command::PlaceTasks { create, remove } => service::place_tasks(state, create, remove)?,
        Command::SetTaskState {
            id,
            node,
            state: s,
            message,
            restarts,
        } => service::set_task_state(state, id, *node, *s, message, *restarts, at)?,
        Command::MapDockerNetwork {
            node,
            network: n,
            docker_id,
        } => docker::map_network(state, n, docker_id, *node)?,
        Command::UnmapDockerNetwork { docker_id, node } => {
            docker::unmap_network(state, docker_id, *node)?
        }
        Command::LeaseAddress {
            node,
            network: n,
            ip,
        } => docker::lease(state, n, *node, *ip)?,
        Command::ReleaseAddress { network: n, ip, .. } => docker::release(state, n, *ip)?,
        Command::SetEndpointNames {
            node,
            endpoint,
            name,
            aliases,
        } => docker::set_names(state, endpoint, *node, name.as_deref(), aliases)?,
        Command::SetEndpointPorts {
            node,
            endpoint,
            ports,
        } => ports::set_endpoint_ports(state, endpoint, *node, ports)?,
        Command::Noop => (Output::None, true),
    };
    if changed {
        state.revision += 1;
    }
    Ok(Applied {
        revision: state.revision,
        output,
    })
}

fn validate_new_node(state: &ClusterState, node: &Node) -> Result<(), ApplyError> {
    validate_name("node", &node.name).map_err(ApplyError::Invalid)?;
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
    Ok(())
}

/// Checks one label: a key of 1–128 printable characters without `=`, a value of at
/// most 1024.
pub fn validate_label(key: &str, value: &str) -> Result<(), ApplyError> {
    let key_ok = !key.is_empty()
        && key.len() <= 128
        && !key.contains('=')
        && key.chars().all(|c| c.is_ascii_graphic());
    if !key_ok {
        return Err(ApplyError::Invalid(format!(
            "invalid label key {key:?}: use 1-128 printable characters without '=' or spaces"
        )));
    }
    if value.len() > 1024 || value.chars().any(|c| c.is_control()) {
        return Err(ApplyError::Invalid(format!(
            "invalid value for label {key:?}: at most 1024 characters, no control characters"
        )));
    }
    Ok(())
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod service_tests;

#[cfg(test)]
mod service_update_tests;

#[cfg(test)]
mod docker_tests;
