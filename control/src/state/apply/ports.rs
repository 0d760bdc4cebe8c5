//! Published ports of services: the conflicts swarmkit's control API refuses, and the
//! serial allocation of ports published without a number.

use std::collections::{BTreeMap, BTreeSet};

use super::super::{
    ApplyError, ClusterState, EndpointMode, PortSpec, Protocol, PublishMode, DYNAMIC_PORTS,
};

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
