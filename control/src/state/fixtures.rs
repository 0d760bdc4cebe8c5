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
