//! Applying service and task commands. VIPs are allocated here, one per network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::super::{
    ApplyError, ClusterState, DesiredState, EndpointMode, Health, HealthCheck, NetworkOptions,
    Output, PortRemoval, PublishMode, Service, ServiceChanges, ServiceMode, ServiceSpec, Task,
    TaskState, UpdateState, UpdateStatus,
};
use super::service_spec::{checked_spec, validate_service_name};
use super::Changed;
use crate::ids::NodeId;

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
    let mut next_port = state.next_dynamic_port.clone();
    let spec = checked_spec(state, spec, &mut next_port)?;
    let (vips, spaces) = vips_for(state, &spec, &BTreeMap::new())?;
    let (vips6, spaces6) = vips6_for(state, &spec, &BTreeMap::new())?;
    commit_spaces(state, spaces);
    commit_spaces6(state, spaces6);
    state.next_dynamic_port = next_port;
    let service = Service {
        id: id.to_string(),
        spec,
        vips,
        vips6,
        created_at_ms: at,
        updated_at_ms: at,
        version: 0,
        previous_spec: None,
        update_status: None,
    };
    state
        .services
        .insert(service.spec.name.clone(), service.clone());
    Ok((Output::Service(Box::new(service)), true))
}

/// Address spaces changed by an allocation, by network, not yet stored.
type Spaces = BTreeMap<String, shoal_ipam::AddressSpace>;

/// The VIPs `spec` needs (one per network with IPv4 in VIP mode), keeping those of `current`
/// that are still wanted, and the address spaces changed for new ones (not yet stored).
fn vips_for(
    state: &ClusterState,
    spec: &ServiceSpec,
    current: &BTreeMap<String, Ipv4Addr>,
) -> Result<(BTreeMap<String, Ipv4Addr>, Spaces), ApplyError> {
    let owner = format!("vip:{}", spec.name);
    let mut spaces = BTreeMap::new();
    let vips = per_network(spec, current, |n| {
        let Some(mut space) = state.networks[n].space.clone() else {
            return Ok(None);
        };
        let ip = space
            .allocate(&owner)
            .map_err(|e| ApplyError::Invalid(format!("VIP on network {n}: {e}")))?;
        spaces.insert(n.to_string(), space);
        Ok(Some(ip))
    })?;
    Ok((vips, spaces))
}

/// IPv6 address spaces changed by an allocation, by network, not yet stored.
type Spaces6 = BTreeMap<String, shoal_ipam::AddressSpace6>;

/// The IPv6 VIPs `spec` needs (one per dual-stack network in VIP mode), as
/// [`vips_for`] the IPv4 ones.
fn vips6_for(
    state: &ClusterState,
    spec: &ServiceSpec,
    current: &BTreeMap<String, Ipv6Addr>,
) -> Result<(BTreeMap<String, Ipv6Addr>, Spaces6), ApplyError> {
    let owner = format!("vip:{}", spec.name);
    let mut spaces = BTreeMap::new();
    let vips = per_network(spec, current, |n| {
        let Some(mut space) = state.networks[n].space6.clone() else {
            return Ok(None);
        };
        let ip = space
            .allocate(&owner)
            .map_err(|e| ApplyError::Invalid(format!("IPv6 VIP on network {n}: {e}")))?;
        spaces.insert(n.to_string(), space);
        Ok(Some(ip))
    })?;
    Ok((vips, spaces))
}

/// One VIP per network of `spec` in VIP mode: the one in `current`, else what `lease`
/// gives (none: the network has no address of that family).
fn per_network<A: Copy>(
    spec: &ServiceSpec,
    current: &BTreeMap<String, A>,
    mut lease: impl FnMut(&str) -> Result<Option<A>, ApplyError>,
) -> Result<BTreeMap<String, A>, ApplyError> {
    let mut vips = BTreeMap::new();
    if spec.endpoint_mode != EndpointMode::Vip {
        return Ok(vips);
    }
    for n in &spec.networks {
        let ip = match current.get(n) {
            Some(ip) => Some(*ip),
            None => lease(n)?,
        };
        if let Some(ip) = ip {
            vips.insert(n.clone(), ip);
        }
    }
    Ok(vips)
}

fn commit_spaces6(state: &mut ClusterState, spaces: Spaces6) {
    for (n, space) in spaces {
        if let Some(net) = state.networks.get_mut(&n) {
            net.space6 = Some(space);
        }
    }
}

/// Gives back the IPv6 VIPs of `current` that `kept` no longer holds.
fn release_vips6(
    state: &mut ClusterState,
    current: &BTreeMap<String, Ipv6Addr>,
    kept: &BTreeMap<String, Ipv6Addr>,
) {
    for (n, ip) in current.iter().filter(|(n, _)| !kept.contains_key(*n)) {
        if let Some(space) = state
            .networks
            .get_mut(n)
            .and_then(|net| net.space6.as_mut())
        {
            space.release(*ip);
        }
    }
}

fn commit_spaces(state: &mut ClusterState, spaces: Spaces) {
    for (n, space) in spaces {
        if let Some(net) = state.networks.get_mut(&n) {
            net.space = Some(space);
        }
    }
}

/// `spec` with `changes` applied, in the order Docker's CLI applies them: ports and
/// networks are removed before any is added.
fn changed_spec(
    state: &ClusterState,
    name: &str,
    current: &ServiceSpec,
    changes: &ServiceChanges,
) -> Result<ServiceSpec, ApplyError> {
    let mut spec = current.clone();
    if let Some(r) = changes.replicas {
        match spec.mode {
            ServiceMode::Global => {
                return Err(ApplyError::Invalid(format!(
                    "{name} is a global service; it cannot be scaled"
                )))
            }
            ServiceMode::Replicated { .. } => spec.mode = ServiceMode::Replicated { replicas: r },
        }
    }
    for k in &changes.labels_rm {
        spec.labels.remove(k);
    }
    spec.labels.extend(
        changes
            .labels_add
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    for removal in &changes.publish_rm {
        if !spec.publish.iter().any(|p| removal.takes(p)) {
            let now: Vec<String> = spec.publish.iter().map(|p| p.to_string()).collect();
            let hint = match removal {
                PortRemoval::Spec(s) if s.mode == PublishMode::Ingress => {
                    " (--publish-rm takes the target port, or PUBLISHED:TARGET; add mode=host for host-mode ports)"
                }
                _ => "",
            };
            return Err(ApplyError::Invalid(format!(
                "--publish-rm {removal}: {name} publishes no such port{hint}; it publishes: {}",
                if now.is_empty() {
                    "nothing".to_string()
                } else {
                    now.join(", ")
                }
            )));
        }
        spec.publish.retain(|p| !removal.takes(p));
    }
    // A port already published is left as it is, except for its `src=`: adding it
    // again with another one switches the mode (new connections follow).
    for add in &changes.publish_add {
        match spec.publish.iter_mut().find(|p| p.same_port(add)) {
            Some(p) => p.src = add.src,
            None => spec.publish.push(*add),
        }
    }
    for reference in &changes.networks_rm {
        let net = state.find_network(reference)?.name.clone();
        spec.networks.retain(|n| *n != net);
        spec.network_options.remove(&net);
    }
    for add in &changes.networks_add {
        let net = state.find_network(&add.target)?.name.clone();
        if spec.networks.contains(&net) {
            return Err(ApplyError::Conflict(format!(
                "service is already attached to network {net}"
            )));
        }
        spec.networks.push(net.clone());
        if add.options != NetworkOptions::default() {
            spec.network_options.insert(net, add.options.clone());
        }
    }
    if let Some(mode) = changes.endpoint_mode {
        spec.endpoint_mode = mode;
    }
    let placement = &mut spec.placement;
    placement
        .constraints
        .retain(|c| !changes.constraints_rm.contains(c));
    for c in &changes.constraints_add {
        if !placement.constraints.contains(c) {
            placement.constraints.push(c.clone());
        }
    }
    placement
        .preferences
        .retain(|p| !changes.preferences_rm.contains(p));
    placement
        .preferences
        .extend(changes.preferences_add.iter().cloned());
    if let Some(m) = changes.max_replicas_per_node {
        placement.max_replicas_per_node = Some(m);
    }
    let dns = &mut spec.dns;
    edit_list(&mut dns.nameservers, &changes.dns_rm, &changes.dns_add);
    edit_list(
        &mut dns.search,
        &changes.dns_search_rm,
        &changes.dns_search_add,
    );
    edit_list(
        &mut dns.options,
        &changes.dns_option_rm,
        &changes.dns_option_add,
    );
    if let Some(h) = &changes.hostname {
        spec.hostname = (!h.is_empty()).then(|| h.clone());
    }
    changed_task_spec(name, &mut spec, changes)?;
    Ok(spec)
}

/// The command, update config, health check and grace period of `changes` applied
/// to `spec`.
fn changed_task_spec(
    name: &str,
    spec: &mut ServiceSpec,
    changes: &ServiceChanges,
) -> Result<(), ApplyError> {
    if let Some(c) = &changes.command {
        spec.command = c.clone();
    }
    if let Some(args) = &changes.args {
        let Some(program) = spec.command.first().cloned() else {
            return Err(ApplyError::Invalid(format!(
                "--args: {name} has no command to give arguments to"
            )));
        };
        spec.command = std::iter::once(program)
            .chain(args.iter().cloned())
            .collect();
    }
    let u = &mut spec.update_config;
    if let Some(p) = changes.update_parallelism {
        u.parallelism = p;
    }
    if let Some(d) = changes.update_delay_ms {
        u.delay_ms = d;
    }
    if let Some(o) = changes.update_order {
        u.order = o;
    }
    if let Some(a) = changes.update_failure_action {
        u.failure_action = a;
    }
    if let Some(m) = changes.update_monitor_ms {
        u.monitor_ms = m;
    }
    if changes.no_healthcheck {
        spec.healthcheck = None;
    }
    let tunes_health = changes.health_interval_ms.is_some()
        || changes.health_timeout_ms.is_some()
        || changes.health_retries.is_some()
        || changes.health_start_period_ms.is_some();
    if changes.no_healthcheck && (tunes_health || changes.health_cmd.is_some()) {
        return Err(ApplyError::Invalid(
            "--no-healthcheck conflicts with --health-* options".into(),
        ));
    }
    if let Some(cmd) = &changes.health_cmd {
        match &mut spec.healthcheck {
            Some(h) => h.command = cmd.clone(),
            None => spec.healthcheck = Some(HealthCheck::new(cmd)),
        }
    }
    if tunes_health {
        let Some(h) = &mut spec.healthcheck else {
            return Err(ApplyError::Invalid(format!(
                "{name} has no health check; give --health-cmd with the --health-* options"
            )));
        };
        h.interval_ms = changes.health_interval_ms.unwrap_or(h.interval_ms);
        h.timeout_ms = changes.health_timeout_ms.unwrap_or(h.timeout_ms);
        h.retries = changes.health_retries.unwrap_or(h.retries);
        h.start_period_ms = changes.health_start_period_ms.unwrap_or(h.start_period_ms);
    }
    if let Some(g) = changes.stop_grace_period_ms {
        spec.stop_grace_period_ms = Some(g);
    }
    Ok(())
}

/// Removes `rm` from `list`, then appends what of `add` it does not hold.
fn edit_list<T: PartialEq + Clone>(list: &mut Vec<T>, rm: &[T], add: &[T]) {
    list.retain(|x| !rm.contains(x));
    for a in add {
        if !list.contains(a) {
            list.push(a.clone());
        }
    }
}

pub(super) fn update_service(
    state: &mut ClusterState,
    name: &str,
    changes: &ServiceChanges,
    at: u64,
) -> Changed {
    let current = state
        .services
        .get(name)
        .ok_or_else(|| ApplyError::NoSuchService(name.to_string()))?
        .clone();
    let wanted = if changes.rollback {
        if *changes
            != (ServiceChanges {
                rollback: true,
                ..Default::default()
            })
        {
            return Err(ApplyError::Invalid(
                "--rollback takes no other change".into(),
            ));
        }
        let Some(previous) = &current.previous_spec else {
            return Err(ApplyError::Invalid(format!(
                "service {name} has no previous spec to roll back to"
            )));
        };
        ServiceSpec::clone(previous)
    } else {
        changed_spec(state, name, &current.spec, changes)?
    };
    let mut next_port = state.next_dynamic_port.clone();
    let spec = checked_spec(state, &wanted, &mut next_port)?;
    if spec == current.spec && !changes.force {
        return Ok((Output::Service(Box::new(current)), false));
    }
    let replace = changes.force || spec.task_spec_differs(&current.spec);
    let paused = current
        .update_status
        .as_ref()
        .is_some_and(|u| matches!(u.state, UpdateState::Paused | UpdateState::RollbackPaused));
    let update_status = if replace || paused {
        Some(UpdateStatus {
            state: if changes.rollback {
                UpdateState::RollbackStarted
            } else {
                UpdateState::Updating
            },
            started_at_ms: at,
            completed_at_ms: None,
            message: if changes.rollback {
                "manually requested rollback".into()
            } else {
                "update in progress".into()
            },
        })
    } else {
        current.update_status.clone()
    };
    let (vips, spaces) = vips_for(state, &spec, &current.vips)?;
    let (vips6, spaces6) = vips6_for(state, &spec, &current.vips6)?;
    commit_spaces(state, spaces);
    commit_spaces6(state, spaces6);
    release_vips6(state, &current.vips6, &vips6);
    let kept: BTreeSet<&String> = vips.keys().collect();
    for gone in current.vips.keys().filter(|n| !kept.contains(n)) {
        if let Some(space) = state.networks.get_mut(gone).and_then(|n| n.space.as_mut()) {
            if let Some(ip) = current.vips.get(gone) {
                space.release(*ip);
            }
        }
    }
    state.next_dynamic_port = next_port;
    let svc = state
        .services
        .get_mut(name)
        .ok_or_else(|| ApplyError::NoSuchService(name.to_string()))?;
    svc.previous_spec = Some(Box::new(std::mem::replace(&mut svc.spec, spec)));
    svc.vips = vips;
    svc.vips6 = vips6;
    svc.updated_at_ms = at;
    if replace {
        svc.version += 1;
    }
    svc.update_status = update_status;
    Ok((Output::Service(Box::new(svc.clone())), true))
}

pub(super) fn remove_service(state: &mut ClusterState, name: &str) -> Changed {
    let svc = state
        .services
        .remove(name)
        .ok_or_else(|| ApplyError::NoSuchService(name.to_string()))?;
    let owner = format!("vip:{name}");
    for n in svc.vips.keys() {
        if let Some(space) = state.networks.get_mut(n).and_then(|n| n.space.as_mut()) {
            space.release_owner(&owner);
        }
    }
    release_vips6(state, &svc.vips6, &BTreeMap::new());
    super::super::retain(&mut state.tasks, |_, t| t.service != name);
    Ok((Output::None, true))
}

/// The updater's word on a service's update: its new status.
pub(super) fn set_update_status(
    state: &mut ClusterState,
    name: &str,
    status: &UpdateStatus,
) -> Changed {
    let svc = state
        .services
        .get_mut(name)
        .ok_or_else(|| ApplyError::NoSuchService(name.to_string()))?;
    if svc.update_status.as_ref() == Some(status) {
        return Ok((Output::None, false));
    }
    svc.update_status = Some(status.clone());
    Ok((Output::None, true))
}

/// The scheduler's and the updater's decisions: tasks created, removed, and shut
/// down (out of every backend set; their nodes stop them after the grace period).
pub(super) fn place_tasks(
    state: &mut ClusterState,
    create: &[Task],
    remove: &[String],
    shutdown: &[String],
    at: u64,
) -> Changed {
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
    for id in shutdown {
        if let Some(t) = state.tasks.get_mut(id) {
            if t.desired == DesiredState::Running {
                t.desired = DesiredState::Shutdown;
                t.shutdown_at_ms = Some(at);
                t.updated_at_ms = at;
                changed = true;
            }
        }
    }
    for t in create {
        state.tasks.insert(t.id.clone(), t.clone());
        changed = true;
    }
    Ok((Output::None, changed))
}

/// What a node reports about one of its tasks.
pub(super) struct TaskReport<'a> {
    pub state: TaskState,
    pub message: &'a str,
    pub restarts: u32,
    pub health: Option<Health>,
}

pub(super) fn set_task_state(
    state: &mut ClusterState,
    id: &str,
    node: NodeId,
    report: &TaskReport<'_>,
    at: u64,
) -> Changed {
    let TaskReport {
        state: new,
        message,
        restarts,
        health,
    } = *report;
    if new == TaskState::Pending {
        return Err(ApplyError::Invalid(
            "pending is the scheduler's word for a task with no node; a node reports assigned, running or failed".into(),
        ));
    }
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
    if task.state == new
        && task.message == message
        && task.restarts == restarts
        && task.health == health
    {
        return Ok((Output::None, false));
    }
    task.state = new;
    task.health = health;
    task.message = message;
    task.restarts = restarts;
    task.updated_at_ms = at;
    Ok((Output::None, true))
}
