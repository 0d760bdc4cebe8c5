//! Applying cluster-wide commands: bootstrap, join secrets, the leader announcement and
//! the WireGuard key generation.

use shoal_ipam::PoolConfig;

use super::super::{ApplyError, ClusterState, Node, Output, Role, Secrets};
use super::node::validate_new_node;
use super::Changed;
use crate::ids::NodeId;

/// The shortest join secret accepted.
const MIN_SECRET_LEN: usize = 16;

/// `cluster init`: the first entry of every cluster. `secrets` is replaced on managers.
#[allow(clippy::too_many_arguments)] // the fields of `Command::Bootstrap`, plus where they go
pub(super) fn bootstrap(
    state: &mut ClusterState,
    secrets: Option<&mut Secrets>,
    cluster_id: &str,
    ca_cert_pem: &str,
    new_secrets: &Secrets,
    addr_pools: &PoolConfig,
    node: &Node,
    at: u64,
) -> Changed {
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
    state.cluster_id = cluster_id.to_string();
    state.created_at_ms = at;
    state.ca_cert_pem = ca_cert_pem.to_string();
    state.addr_pools = addr_pools.clone();
    state.nodes.insert(node.id, node.clone());
    if let Some(secrets) = secrets {
        *secrets = new_secrets.clone();
    }
    Ok((Output::None, true))
}

/// `cluster join-token --rotate`: only managers hold the secrets; elsewhere it is a
/// no-op that still moves the revision.
pub(super) fn rotate_token(secrets: Option<&mut Secrets>, role: Role, secret: &str) -> Changed {
    if let Some(secrets) = secrets {
        if secret.len() < MIN_SECRET_LEN {
            return Err(ApplyError::Invalid(format!(
                "a join secret must be at least {MIN_SECRET_LEN} characters"
            )));
        }
        match role {
            Role::Manager => secrets.manager_secret = secret.to_string(),
            Role::Worker => secrets.worker_secret = secret.to_string(),
        }
    }
    Ok((Output::None, true))
}

/// A new leader announces itself; an announcement from an older term is refused.
pub(super) fn set_leader(state: &mut ClusterState, id: NodeId, term: u64) -> Changed {
    if term < state.leader_term {
        return Err(ApplyError::Invalid(format!(
            "leader announcement for term {term} is older than term {}",
            state.leader_term
        )));
    }
    state.leader = Some(id);
    state.leader_term = term;
    Ok((Output::None, true))
}

/// `cluster rotate-keys`: every node makes a new WireGuard key for the next generation.
pub(super) fn rotate_keys(state: &mut ClusterState, at: u64) -> Changed {
    state.key_generation += 1;
    state.keys_rotated_at_ms = at;
    Ok((Output::None, true))
}
