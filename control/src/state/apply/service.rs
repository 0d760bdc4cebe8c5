//! Applying service and task commands. VIPs are allocated here, one per network.

use std::collections::BTreeMap;

use super::super::{
    ApplyError, ClusterState, EndpointMode, Output, PortSpec, PublishMode, Service, ServiceMode,
    ServiceSpec, Task, TaskState,
};
use super::{validate_label, Changed};
use crate::ids::NodeId;

/// The most replicas a service may ask for.
const MAX_REPLICAS: u32 = 1000;

fn validate_service_name(name: &str) -> Result<(), ApplyError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(ApplyError::Invalid(format!(
            "invalid service name {name:?}: it is a DNS name, so use 1-63 letters, digits, '-' or '_', starting with a letter or digit"
        )));
    }
    Ok(())
}

fn check_ports(
    state: &ClusterState,
    name: &str,
    ports: &[PortSpec],
    endpoint_mode: EndpointMode,
) -> Result<(), ApplyError> {
    for (i, p) in ports.iter().enumerate() {
        if ports[..i]
            .iter()
            .any(|q| q.published == p.published && q.protocol == p.protocol)
        {
            return Err(ApplyError::Conflict(format!(
                "port {} is published twice",
                p
            )));
        }
        if endpoint_mode == EndpointMode::Dnsrr && p.mode == PublishMode::Ingress {
            return Err(ApplyError::Invalid(format!(
                "port {p}: ingress publishing needs a VIP; use mode=host with --endpoint-mode dnsrr"
            )));
        }
        for other in state.services.values().filter(|s| s.spec.name != name) {
            if other
                .spec
                .publish
                .iter()
                .any(|q| q.published == p.published && q.protocol == p.protocol)
            {
                return Err(ApplyError::Conflict(format!(
                    "port {}/{} is already published by service {}",
                    p.published,
                    if p.protocol == super::super::Protocol::Udp {
                        "udp"
                    } else {
                        "tcp"
                    },
                    other.spec.name
                )));
            }
        }
    }
    Ok(())
}

pub(super) fn create_service(
    state: &mut ClusterState,
    id: &str,
    spec: &ServiceSpec,
    at: u64,
) -> Changed {
    validate_service_name(&spec.name)?;
    if state.services.contains_key(&spec.name) {
        return Err(ApplyError::Conflict(format!(
            "a service named {:?} already exists",
            spec.name
        )));
    }
    if id.len() < 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApplyError::Invalid(format!(
            "service ID {id:?} is not a hex ID"
        )));
    }
    if let ServiceMode::Replicated { replicas } = spec.mode {
        if replicas > MAX_REPLICAS {
            return Err(ApplyError::Invalid(format!(
                "at most {MAX_REPLICAS} replicas, not {replicas}"
            )));
        }
    }
    let mut networks = Vec::new();
    for n in &spec.networks {
        let net = state.find_network(n)?;
        if networks.contains(&net.name) {
            return Err(ApplyError::Invalid(format!(
                "network {} is given twice",
                net.name
            )));
        }
        networks.push(net.name.clone());
    }
    if !spec.publish.is_empty() && networks.is_empty() {
        return Err(ApplyError::Invalid(
            "a service that publishes ports needs a network (--network)".into(),
        ));
    }
    check_ports(state, &spec.name, &spec.publish, spec.endpoint_mode)?;
    for (k, v) in &spec.labels {
        validate_label(k, v)?;
    }
    if spec.command.len() > 256
        || spec
            .command
            .iter()
            .any(|a| a.len() > 4096 || a.contains('\0'))
    {
        return Err(ApplyError::Invalid(
            "the command has too many or too long arguments".into(),
        ));
    }
    let owner = format!("vip:{}", spec.name);
    let mut spaces = BTreeMap::new();
    let mut vips = BTreeMap::new();
    if spec.endpoint_mode == EndpointMode::Vip {
        for n in &networks {
            let mut space = state.networks[n].space.clone();
            let ip = space
                .allocate(&owner)
                .map_err(|e| ApplyError::Invalid(format!("VIP on network {n}: {e}")))?;
            vips.insert(n.clone(), ip);
            spaces.insert(n.clone(), space);
        }
    }
    for (n, space) in spaces {
        if let Some(net) = state.networks.get_mut(&n) {
            net.space = space;
        }
    }
    let spec = ServiceSpec {
        networks,
        ..spec.clone()
    };
    let service = Service {
        id: id.to_string(),
        spec,
        vips,
        created_at_ms: at,
        updated_at_ms: at,
    };
    state
        .services
        .insert(service.spec.name.clone(), service.clone());
    Ok((Output::Service(Box::new(service)), true))
}

fn service_mut<'a>(state: &'a mut ClusterState, name: &str) -> Result<&'a mut Service, ApplyError> {
    state
        .services
        .get_mut(name)
        .ok_or_else(|| ApplyError::NoSuchService(name.to_string()))
}

#[allow(clippy::too_many_arguments)] // the fields of Command::UpdateService, one by one
pub(super) fn update_service(
    state: &mut ClusterState,
    name: &str,
    replicas: Option<u32>,
    labels_add: &BTreeMap<String, String>,
    labels_rm: &[String],
    publish_add: &[PortSpec],
    publish_rm: &[u16],
    at: u64,
) -> Changed {
    let current = state
        .services
        .get(name)
        .ok_or_else(|| ApplyError::NoSuchService(name.to_string()))?
        .clone();
    for (k, v) in labels_add {
        validate_label(k, v)?;
    }
    let mut spec = current.spec.clone();
    if let Some(r) = replicas {
        match spec.mode {
            ServiceMode::Global => {
                return Err(ApplyError::Invalid(format!(
                    "{name} is a global service; it cannot be scaled"
                )))
            }
            ServiceMode::Replicated { .. } if r > MAX_REPLICAS => {
                return Err(ApplyError::Invalid(format!(
                    "at most {MAX_REPLICAS} replicas, not {r}"
                )))
            }
            ServiceMode::Replicated { .. } => spec.mode = ServiceMode::Replicated { replicas: r },
        }
    }
    for k in labels_rm {
        spec.labels.remove(k);
    }
    spec.labels
        .extend(labels_add.iter().map(|(k, v)| (k.clone(), v.clone())));
    spec.publish.retain(|p| !publish_rm.contains(&p.published));
    spec.publish.extend(publish_add.iter().copied());
    if !spec.publish.is_empty() && spec.networks.is_empty() {
        return Err(ApplyError::Invalid(
            "a service that publishes ports needs a network".into(),
        ));
    }
    check_ports(state, name, &spec.publish, spec.endpoint_mode)?;
    if spec == current.spec {
        return Ok((Output::Service(Box::new(current)), false));
    }
    let svc = service_mut(state, name)?;
    svc.spec = spec;
    svc.updated_at_ms = at;
    Ok((Output::Service(Box::new(svc.clone())), true))
}

pub(super) fn remove_service(state: &mut ClusterState, name: &str) -> Changed {
    let svc = state
        .services
        .remove(name)
        .ok_or_else(|| ApplyError::NoSuchService(name.to_string()))?;
    let owner = format!("vip:{name}");
    for n in svc.vips.keys() {
        if let Some(net) = state.networks.get_mut(n) {
            net.space.release_owner(&owner);
        }
    }
    state.tasks.retain(|_, t| t.service != name);
    Ok((Output::None, true))
}

pub(super) fn place_tasks(state: &mut ClusterState, create: &[Task], remove: &[String]) -> Changed {
    for t in create {
        if !state.services.contains_key(&t.service) {
            return Err(ApplyError::NoSuchService(t.service.clone()));
        }
        if !state.nodes.contains_key(&t.node) {
            return Err(ApplyError::NoSuchNode(t.node.to_string()));
        }
        if t.id.len() < 8
            || !t.id.bytes().all(|b| b.is_ascii_hexdigit())
            || state.tasks.contains_key(&t.id)
        {
            return Err(ApplyError::Invalid(format!(
                "task ID {:?} is not a fresh hex ID",
                t.id
            )));
        }
    }
    let mut changed = false;
    for id in remove {
        changed |= state.tasks.remove(id).is_some();
    }
    for t in create {
        state.tasks.insert(t.id.clone(), t.clone());
        changed = true;
    }
    Ok((Output::None, changed))
}

pub(super) fn set_task_state(
    state: &mut ClusterState,
    id: &str,
    node: NodeId,
    new: TaskState,
    message: &str,
    restarts: u32,
    at: u64,
) -> Changed {
    let Some(task) = state.tasks.get_mut(id) else {
        // The task was removed meanwhile: nothing to record.
        return Ok((Output::None, false));
    };
    if task.node != node {
        return Err(ApplyError::Invalid(format!(
            "task {id} does not run on node {node}"
        )));
    }
    let message: String = message.chars().take(1024).collect();
    if task.state == new && task.message == message && task.restarts == restarts {
        return Ok((Output::None, false));
    }
    task.state = new;
    task.message = message;
    task.restarts = restarts;
    task.updated_at_ms = at;
    Ok((Output::None, true))
}
