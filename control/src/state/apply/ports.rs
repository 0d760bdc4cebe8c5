//! Published ports of services: the conflicts swarmkit's control API refuses, and the
//! serial allocation of ports published without a number.

use std::collections::{BTreeMap, BTreeSet};

use super::super::{
    ApplyError, ClusterState, EndpointMode, EndpointPort, Output, PortSpec, Protocol, PublishMode,
    DYNAMIC_PORTS,
};
use super::Changed;
use crate::ids::NodeId;

/// Refuses ports that clash within the service or with another service, in swarmkit's
/// words (`manager/controlapi/service.go`): a port published in ingress mode is the
/// cluster's alone; host-mode ports of different services may share a number (the
/// scheduler keeps them on different nodes).
pub(super) fn check_ports(
    state: &ClusterState,
    name: &str,
    ports: &[PortSpec],
    endpoint_mode: EndpointMode,
) -> Result<(), ApplyError> {
    for (i, p) in ports.iter().enumerate() {
        if let Some(why) = shoals_own(state, p) {
            return Err(ApplyError::Conflict(format!(
                "port {}/{} is {why}; publishing it would cut the cluster off, so publish another",
                p.published,
                p.protocol.as_str()
            )));
        }
        if ports[..i]
            .iter()
            .any(|q| q.published == p.published && q.protocol == p.protocol)
        {
            return Err(ApplyError::Conflict(format!(
                "port {}/{} is published twice (duplicate published ports provided)",
                p.published,
                p.protocol.as_str()
            )));
        }
        if endpoint_mode == EndpointMode::Dnsrr && p.mode == PublishMode::Ingress {
            return Err(ApplyError::Invalid(format!(
                "port {p}: a port published with ingress mode can't be used with dnsrr mode; use mode=host with --endpoint-mode dnsrr"
            )));
        }
        if let Some(e) = state.endpoints.values().find(|e| {
            e.ports
                .iter()
                .any(|q| q.host_port == p.published && q.protocol == p.protocol)
        }) {
            let node = state
                .nodes
                .get(&e.node)
                .map_or_else(|| e.node.to_string(), |n| n.name.clone());
            return Err(ApplyError::Conflict(format!(
                "port {}/{} is forwarded to {} ({}) on node {node}",
                p.published,
                p.protocol.as_str(),
                e.name.as_deref().unwrap_or(&e.id),
                e.addr()
            )));
        }
        for other in state.services.values().filter(|s| s.spec.name != name) {
            let Some(q) = other
                .spec
                .publish
                .iter()
                .find(|q| q.published == p.published && q.protocol == p.protocol)
            else {
                continue;
            };
            let how = match (q.mode, p.mode) {
                (PublishMode::Host, PublishMode::Host) => continue,
                (PublishMode::Host, PublishMode::Ingress) => "a host-published port",
                (PublishMode::Ingress, _) => "an ingress port",
            };
            return Err(ApplyError::Conflict(format!(
                "port '{}' is already in use by service '{}' ({}) as {how}",
                p.published, other.spec.name, other.id
            )));
        }
    }
    Ok(())
}

/// What of shoal's own a port is, if it is one: a node's control port, its WireGuard
/// port, or VXLAN's (the published port would be taken on every node's addresses).
fn shoals_own(state: &ClusterState, p: &PortSpec) -> Option<String> {
    match p.protocol {
        Protocol::Tcp => state
            .nodes
            .values()
            .find(|n| n.control_addr.port() == p.published)
            .map(|n| format!("the control port of node {}", n.name)),
        Protocol::Udp if p.published == VXLAN_PORT => Some("VXLAN's port between nodes".into()),
        Protocol::Udp => state
            .nodes
            .values()
            .find(|n| n.wireguard.as_ref().is_some_and(|w| w.port == p.published))
            .map(|n| format!("the WireGuard port of node {}", n.name)),
    }
}

/// The VXLAN port nodes use unless told otherwise (`agent --vxlan-port`).
const VXLAN_PORT: u16 = 4789;

/// Gives every port of `ports` published as 0 a number from [`DYNAMIC_PORTS`], serially
/// per protocol from where the last search ended (`next`), skipping every port a
/// service publishes. Changes `ports` and `next` only on success.
pub(super) fn assign_dynamic(
    state: &ClusterState,
    name: &str,
    ports: &mut [PortSpec],
    next: &mut BTreeMap<Protocol, u16>,
) -> Result<(), ApplyError> {
    let mut used: BTreeSet<(Protocol, u16)> = state
        .services
        .values()
        .filter(|s| s.spec.name != name)
        .flat_map(|s| s.spec.publish.iter())
        .chain(ports.iter())
        .filter(|p| p.published != 0)
        .map(|p| (p.protocol, p.published))
        .collect();
    let mut cursor = next.clone();
    let mut assigned = ports.to_vec();
    let span = u32::from(DYNAMIC_PORTS.end() - DYNAMIC_PORTS.start()) + 1;
    for p in assigned.iter_mut().filter(|p| p.published == 0) {
        let start = cursor
            .get(&p.protocol)
            .copied()
            .filter(|n| DYNAMIC_PORTS.contains(n))
            .unwrap_or(*DYNAMIC_PORTS.start());
        let offset = u32::from(start - DYNAMIC_PORTS.start());
        let port = (0..span)
            .map(|i| *DYNAMIC_PORTS.start() + ((offset + i) % span) as u16)
            .find(|port| !used.contains(&(p.protocol, *port)))
            .ok_or_else(|| {
                ApplyError::Conflict(format!(
                    "no {} port is free in the dynamic range {}-{}; publish with an explicit port",
                    p.protocol.as_str(),
                    DYNAMIC_PORTS.start(),
                    DYNAMIC_PORTS.end()
                ))
            })?;
        used.insert((p.protocol, port));
        p.published = port;
        let following = if port == *DYNAMIC_PORTS.end() {
            *DYNAMIC_PORTS.start()
        } else {
            port + 1
        };
        cursor.insert(p.protocol, following);
    }
    ports.copy_from_slice(&assigned);
    *next = cursor;
    Ok(())
}

/// `SetEndpointPorts`: ports of `node` forwarded to endpoint `id` there. A port that a
/// service publishes (the mesh's are on every node), another endpoint of the node
/// forwards, or shoal itself uses, is refused.
pub(super) fn set_endpoint_ports(
    state: &mut ClusterState,
    id: &str,
    node: NodeId,
    ports: &[EndpointPort],
) -> Changed {
    let endpoint = state
        .endpoints
        .get(id)
        .ok_or_else(|| ApplyError::Invalid(format!("no endpoint {id}")))?;
    if endpoint.node != node {
        return Err(ApplyError::Invalid(format!(
            "endpoint {id} is not on node {node}"
        )));
    }
    for (i, p) in ports.iter().enumerate() {
        if p.host_port == 0 || p.port == 0 {
            return Err(ApplyError::Invalid(
                "a forwarded port needs a host port and a container port".into(),
            ));
        }
        let spec = PortSpec {
            published: p.host_port,
            target: p.port,
            protocol: p.protocol,
            mode: PublishMode::Host,
            src: Default::default(),
        };
        if let Some(why) = shoals_own(state, &spec) {
            return Err(ApplyError::Conflict(format!(
                "port {}/{} is {why}",
                p.host_port,
                p.protocol.as_str()
            )));
        }
        let same = |q: &EndpointPort| q.host_port == p.host_port && q.protocol == p.protocol;
        if ports[..i].iter().any(same) {
            return Err(ApplyError::Conflict(format!(
                "port {}/{} is given twice",
                p.host_port,
                p.protocol.as_str()
            )));
        }
        if let Some(s) = state.services.values().find(|s| {
            s.spec
                .publish
                .iter()
                .any(|q| q.published == p.host_port && q.protocol == p.protocol)
        }) {
            return Err(ApplyError::Conflict(format!(
                "port {}/{} is published by service {}",
                p.host_port,
                p.protocol.as_str(),
                s.spec.name
            )));
        }
        if let Some(other) = state
            .endpoints
            .values()
            .find(|e| e.node == node && e.id != id && e.ports.iter().any(same))
        {
            return Err(ApplyError::Conflict(format!(
                "port {}/{} of this node already goes to {} ({})",
                p.host_port,
                p.protocol.as_str(),
                other.name.as_deref().unwrap_or(&other.id),
                other.addr()
            )));
        }
    }
    let e = state
        .endpoints
        .get(id)
        .ok_or_else(|| ApplyError::Invalid(format!("no endpoint {id}")))?;
    if e.ports == ports {
        return Ok((Output::None, false));
    }
    state.endpoints.update(id, |e| e.ports = ports.to_vec());
    Ok((Output::None, true))
}
