//! Test fixtures shared by the state's unit tests.

use std::net::{IpAddr, Ipv4Addr};

use super::{Availability, Node, NodeReport, NodeStatus, Role};
use crate::ids::NodeId;

/// A Ready, Active node `n<id>` at 198.18.0.<id> with `labels`, reporting x86_64.
pub(crate) fn node(id: u64, role: Role, labels: &[(&str, &str)]) -> Node {
    let ip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, id as u8));
    Node {
        id: NodeId(id),
        name: format!("n{id}"),
        role,
        availability: Availability::Active,
        status: NodeStatus::Ready,
        addr: ip,
        control_addr: (ip, 2377).into(),
        joined_at_ms: 0,
        status_since_ms: 0,
        availability_since_ms: 0,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        report: NodeReport {
            arch: "x86_64".into(),
            ..Default::default()
        },
        wireguard: None,
    }
}

/// An initialised state with manager n1 and an attachable /16 network `name` on
/// 10.50.0.0/16; returns the state and n1's ID.
pub(crate) fn state_with_network(name: &str) -> (super::ClusterState, NodeId) {
    use super::{apply, Command, NetworkSpec, Proposal, Secrets};
    let mut state = super::ClusterState::default();
    let run = |state: &mut super::ClusterState, command| {
        apply(state, None, &Proposal { at_ms: 1, command }).expect("fixture command applies");
    };
    run(
        &mut state,
        Command::Bootstrap {
            cluster_id: "c".into(),
            ca_cert_pem: "CA".into(),
            secrets: Secrets::default(),
            addr_pools: shoal_ipam::PoolConfig::default(),
            node: node(1, Role::Manager, &[]),
        },
    );
    run(
        &mut state,
        Command::CreateNetwork {
            id: "0123456789ab".into(),
            spec: NetworkSpec {
                name: name.into(),
                subnet: Some("10.50.0.0/16".parse().expect("a subnet")),
                attachable: true,
                ..Default::default()
            },
        },
    );
    (state, NodeId(1))
}
