//! The pure state machine: `apply(state, secrets, proposal)`.
//!
//! Every branch validates before it mutates, so an error leaves the state untouched and
//! does not bump the revision. Nothing here reads a clock or draws a random number.
//!
//! ```text
//!  apply ─ initialised? ─▶ dispatch ─┬─ cluster: bootstrap, join tokens, leader, keys
//!                                    ├─ node:    join, status, update, role, removal
//!                                    ├─ network: networks, endpoints, reports, WireGuard
//!                                    ├─ service: services, tasks (service_spec checks specs)
//!                                    ├─ docker:  Docker network IDs, leases, names
//!                                    └─ ports:   endpoint ports
//!        ─ changed? ─▶ revision + 1
//! ```

mod cluster;
pub(super) mod docker;
mod network;
mod network6;
mod node;
pub use node::underlay_family_mismatch;
pub(super) mod ports;
mod service;
mod service_spec;
mod state_only;

use super::{Applied, ApplyError, ClusterState, Command, Output, Proposal, Secrets};

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
    if !state.is_initialised() && !matches!(proposal.command, Command::Bootstrap { .. }) {
        return Err(ApplyError::NotInitialised);
    }
    let (output, changed) = dispatch(state, secrets, &proposal.command, proposal.at_ms)?;
    if changed {
        state.revision += 1;
    }
    Ok(Applied {
        revision: state.revision,
        output,
    })
}

/// Hands each command to the module that applies its kind: [`cluster`], [`node`],
/// [`network`], [`service`], [`docker`], [`ports`].
fn dispatch(
    state: &mut ClusterState,
    secrets: Option<&mut Secrets>,
    command: &Command,
    at: u64,
) -> Changed {
    match command {
        Command::Bootstrap {
            cluster_id,
            ca_cert_pem,
            secrets: new_secrets,
            addr_pools,
            node,
        } => cluster::bootstrap(
            state,
            secrets,
            cluster_id,
            ca_cert_pem,
            new_secrets,
            addr_pools,
            node,
            at,
        ),
        Command::RotateToken { role, secret } => cluster::rotate_token(secrets, *role, secret),
        Command::SetLeader { id, term } => cluster::set_leader(state, *id, *term),
        Command::RotateKeys => cluster::rotate_keys(state, at),
        Command::AddNode { node } => node::add_node(state, node),
        Command::SetNodeStatus { id, status } => node::set_node_status(state, *id, *status, at),
        Command::UpdateNode {
            id,
            availability,
            labels_add,
            labels_rm,
        } => node::update_node(state, *id, *availability, labels_add, labels_rm, at),
        Command::SetRole { id, role } => node::set_role(state, *id, *role),
        Command::RemoveNode { id } => node::remove_node(state, *id),
        Command::ReportNode { id, report } => node::report_node(state, *id, report),
        Command::CreateNetwork { id, spec } => network::create_network(state, id, spec, at),
        Command::RemoveNetwork { network: n } => network::remove_network(state, n),
        Command::Attach { spec } => {
            state_only::refuse_reserved_sandbox(&spec.sandbox)?;
            network::attach(state, spec, at)
        }
        Command::Detach {
            network: n,
            node,
            sandbox,
        } => network::detach(state, n, *node, sandbox),
        Command::SetWireguard {
            id,
            public_key,
            port,
            generation,
        } => node::set_wireguard(state, *id, public_key, *port, *generation),
        Command::CreateService { id, spec } => service::create_service(state, id, spec, at),
        Command::UpdateService { name, changes } => {
            service::update_service(state, name, changes, at)
        }
        Command::RemoveService { name } => service::remove_service(state, name),
        Command::PlaceTasks {
            create,
            remove,
            shutdown,
        } => service::place_tasks(state, create, remove, shutdown, at),
        Command::SetUpdateStatus { service: s, status } => {
            service::set_update_status(state, s, status)
        }
        Command::SetTaskState {
            id,
            node,
            state: s,
            message,
            restarts,
            health,
        } => {
            let report = service::TaskReport {
                state: *s,
                message,
                restarts: *restarts,
                health: *health,
            };
            service::set_task_state(state, id, *node, &report, at)
        }
        Command::MapDockerNetwork {
            node,
            network: n,
            docker_id,
        } => docker::map_network(state, n, docker_id, *node),
        Command::UnmapDockerNetwork { docker_id, node } => {
            docker::unmap_network(state, docker_id, *node)
        }
        Command::LeaseAddress {
            node,
            network: n,
            ip,
            ipv6,
        } => docker::lease(state, n, *node, *ip, *ipv6),
        Command::ReleaseAddress { network: n, ip, .. } => docker::release(state, n, *ip),
        Command::SetEndpointNames {
            node,
            endpoint,
            name,
            aliases,
        } => docker::set_names(state, endpoint, *node, name.as_deref(), aliases),
        Command::SetEndpointPorts {
            node,
            endpoint,
            ports,
        } => ports::set_endpoint_ports(state, endpoint, *node, ports),
        Command::StateOnlyEndpoints {
            network: n,
            node,
            attach,
            detach,
        } => state_only::state_only_endpoints(state, n, *node, attach, detach, at),
        Command::Noop => Ok((Output::None, true)),
    }
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod service_tests;

#[cfg(test)]
mod service_update_tests;

#[cfg(test)]
mod docker_tests;

#[cfg(test)]
mod rollout_tests;
