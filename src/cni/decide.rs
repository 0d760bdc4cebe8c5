//! The decisions a runtime relies on, as plain functions of what the agent recorded
//! and what the driver observed: ADD and DEL idempotency, CHECK's comparison with
//! `prevResult`, GC's selection, STATUS's answer.
//!
//! ```text
//!  driver: agent records + netns observation ──▶ decide_* ──▶ plan / differences
//!          ──▶ driver carries the plan out (agent API, netlink)
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::env::{AttachmentKey, IfName};
use super::error::CniError;
use super::result::{CniResult, Route};

/// An attachment the agent made for CNI and still holds (addresses, DNS names, ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedAttachment {
    /// Container and interface.
    pub key: AttachmentKey,
    /// The shoal network it is on.
    pub network: String,
    /// The sandbox it was made in.
    pub netns: String,
}

/// What ADD should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddDecision {
    /// Nothing is there: create the attachment.
    Create,
    /// The agent holds a record for this container and interface but the sandbox has
    /// no such interface: a runtime that lost track (crashed between ADD and DEL,
    /// or re-created the sandbox under the same ID). Release the record, then create.
    ReplaceStale(RecordedAttachment),
}

/// ADD for `(container, ifname)`: spec 1.1 says "if an interface of the requested name
/// already exists in the container, the CNI plugin MUST return with an error", so an
/// interface seen in the sandbox is code 100 whatever the records say.
pub fn decide_add(
    netns: &str,
    ifname: &IfName,
    recorded: Option<&RecordedAttachment>,
    interface_in_sandbox: bool,
) -> Result<AddDecision, CniError> {
    if interface_in_sandbox {
        return Err(CniError::InterfaceExists {
            ifname: ifname.to_string(),
            netns: netns.to_string(),
        });
    }
    Ok(match recorded {
        Some(record) => AddDecision::ReplaceStale(record.clone()),
        None => AddDecision::Create,
    })
}

/// What DEL should do; every part may be absent, and DEL succeeds either way.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DelPlan {
    /// Release the agent's record (addresses, names, ports).
    pub release: Option<RecordedAttachment>,
    /// Delete the interface in this sandbox.
    pub remove_interface_in: Option<String>,
}

impl DelPlan {
    /// Whether there is nothing left to undo (a repeated DEL, or a DEL of an ADD
    /// that never happened): the plugin reports success.
    pub fn is_noop(&self) -> bool {
        self.release.is_none() && self.remove_interface_in.is_none()
    }
}

/// DEL is best effort and idempotent (spec: "plugins MUST accept multiple DEL calls
/// ... and return success if the interface in question, or any modifications added,
/// are missing"). `netns` is `None` when the runtime gave no CNI_NETNS (the sandbox
/// is gone); the record is released all the same.
pub fn decide_del(
    netns: Option<&str>,
    recorded: Option<&RecordedAttachment>,
    interface_in_sandbox: bool,
) -> DelPlan {
    DelPlan {
        release: recorded.cloned(),
        remove_interface_in: netns.filter(|_| interface_in_sandbox).map(str::to_string),
    }
}

/// What CHECK expects, from `prevResult`: the interface shoal made in the sandbox,
/// its addresses, and the routes of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckExpectation {
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// The MAC the result reported, if any.
    pub mac: Option<String>,
    /// The MTU the result reported, if any.
    pub mtu: Option<u32>,
    /// The addresses with `interface` pointing at it.
    pub addresses: Vec<IpNet>,
    /// Every route of the result (all are in the sandbox: shoal makes no host routes
    /// that a result reports).
    pub routes: Vec<Route>,
}

/// Finds the sandbox interface in `prevResult`; code 7 if the result has none by
/// that name in that sandbox (CHECK's parameters must be those of the ADD).
pub fn expect_from(
    prev: &CniResult,
    ifname: &IfName,
    netns: &str,
) -> Result<CheckExpectation, CniError> {
    let index = prev
        .interfaces
        .iter()
        .position(|i| i.name == ifname.as_str() && i.sandbox.as_deref() == Some(netns))
        .ok_or_else(|| CniError::InvalidConfig {
            field: "prevResult.interfaces".into(),
            details: format!(
                "prevResult lists no interface {ifname} in sandbox {netns}; CHECK must be called \
                 with the CNI_IFNAME and CNI_NETNS of the ADD and its result"
            ),
        })?;
    let interface = &prev.interfaces[index];
    Ok(CheckExpectation {
        ifname: ifname.to_string(),
        netns: netns.to_string(),
        mac: interface.mac.clone().filter(|m| !m.is_empty()),
        mtu: interface.mtu,
        addresses: prev
            .ips
            .iter()
            .filter(|ip| ip.interface == Some(index))
            .map(|ip| ip.address)
            .collect(),
        routes: prev.routes.clone(),
    })
}

/// The interface as the driver found it in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedInterface {
    /// Its MAC, as text.
    pub mac: String,
    /// Its MTU.
    pub mtu: u32,
    /// Its addresses with prefixes.
    pub addresses: Vec<IpNet>,
}

/// A route found in the sandbox's main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedRoute {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    pub gw: Option<IpAddr>,
}

/// What the driver found in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedSandbox {
    /// The interface named `CNI_IFNAME`, if there is one.
    pub interface: Option<ObservedInterface>,
    /// The routes of the sandbox.
    pub routes: Vec<ObservedRoute>,
}

/// One way the sandbox is not as `prevResult` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckDifference {
    /// The interface is gone.
    InterfaceMissing,
    /// The MAC changed.
    MacDiffers {
        /// From the result.
        expected: String,
        /// In the sandbox.
        found: String,
    },
    /// The MTU changed.
    MtuDiffers {
        /// From the result.
        expected: u32,
        /// In the sandbox.
        found: u32,
    },
    /// An address of the result is not on the interface.
    AddressMissing(IpNet),
    /// A route of the result is not in the sandbox.
    RouteMissing(Route),
}

impl fmt::Display for CheckDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckDifference::InterfaceMissing => write!(f, "the interface is missing"),
            CheckDifference::MacDiffers { expected, found } => {
                write!(f, "MAC is {found}, the result says {expected}")
            }
            CheckDifference::MtuDiffers { expected, found } => {
                write!(f, "MTU is {found}, the result says {expected}")
            }
            CheckDifference::AddressMissing(net) => write!(f, "address {net} is missing"),
            CheckDifference::RouteMissing(route) => match route.gw {
                Some(gw) => write!(f, "route to {} via {gw} is missing", route.dst),
                None => write!(f, "route to {} is missing", route.dst),
            },
        }
    }
}

/// Compares the sandbox with the expectation. Only what the result lists is checked:
/// extra addresses and routes may come from later plugins in the chain (spec: "must
/// allow for a later chained plugin to have modified networking resources"). A route
/// without `gw` matches any next hop to its destination, as the reference plugins'
/// `ValidateExpectedRoute` does.
pub fn check_differences(
    expected: &CheckExpectation,
    observed: &ObservedSandbox,
) -> Vec<CheckDifference> {
    let Some(interface) = &observed.interface else {
        return vec![CheckDifference::InterfaceMissing];
    };
    let mut differences = Vec::new();
    if let Some(mac) = expected
        .mac
        .as_ref()
        .filter(|m| !m.eq_ignore_ascii_case(&interface.mac))
    {
        differences.push(CheckDifference::MacDiffers {
            expected: mac.clone(),
            found: interface.mac.clone(),
        });
    }
    if let Some(mtu) = expected.mtu.filter(|m| *m != 0 && *m != interface.mtu) {
        differences.push(CheckDifference::MtuDiffers {
            expected: mtu,
            found: interface.mtu,
        });
    }
    for address in &expected.addresses {
        if !interface.addresses.contains(address) {
            differences.push(CheckDifference::AddressMissing(*address));
        }
    }
    for route in &expected.routes {
        let found = observed.routes.iter().any(|r| {
            r.dst.trunc() == route.dst.trunc() && route.gw.is_none_or(|gw| r.gw == Some(gw))
        });
        if !found {
            differences.push(CheckDifference::RouteMissing(*route));
        }
    }
    differences
}

/// CHECK's answer: success, or code 101 listing every difference.
pub fn check_verdict(
    expected: &CheckExpectation,
    differences: &[CheckDifference],
) -> Result<(), CniError> {
    if differences.is_empty() {
        return Ok(());
    }
    Err(CniError::CheckFailed {
        ifname: expected.ifname.clone(),
        netns: expected.netns.clone(),
        differences: differences.iter().map(ToString::to_string).collect(),
    })
}

/// GC: the attachments of `network` the agent holds for CNI that the runtime no
/// longer lists as valid, in key order. Attachments of other networks are never
/// chosen: the runtime's list covers only the network it runs GC for.
pub fn gc_stale(
    network: &str,
    recorded: &[RecordedAttachment],
    valid: &[AttachmentKey],
) -> Vec<RecordedAttachment> {
    let valid: BTreeSet<&AttachmentKey> = valid.iter().collect();
    let mut stale: Vec<RecordedAttachment> = recorded
        .iter()
        .filter(|r| r.network == network && !valid.contains(&r.key))
        .cloned()
        .collect();
    stale.sort_by(|a, b| a.key.cmp(&b.key));
    stale.dedup_by(|a, b| a.key == b.key);
    stale
}

/// What the driver learnt about the agent for STATUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentHealth {
    /// The agent answers and can attach to the network.
    Ready,
    /// No answer on the socket (the reason names the socket).
    Unreachable(String),
    /// The agent answers but cannot change the cluster state (not in a cluster, no
    /// leader).
    NotReady(String),
    /// The agent does not know the configured shoal network.
    NetworkUnknown(String),
    /// The network has no addresses left to give.
    AddressesExhausted(String),
}

/// STATUS: success when ADD can be served, else code 50. (Code 51, "existing
/// containers may have limited connectivity", is never shoal's answer: the data path
/// of attached containers keeps working while the agent or the cluster is down.)
pub fn status_verdict(health: &AgentHealth) -> Result<(), CniError> {
    let unavailable = |reason: String, details: &str| {
        Err(CniError::PluginNotAvailable {
            reason,
            details: details.to_string(),
        })
    };
    match health {
        AgentHealth::Ready => Ok(()),
        AgentHealth::Unreachable(why) => unavailable(
            why.clone(),
            "start `shoal agent` on this node, or make the network config's `socket` its API socket",
        ),
        AgentHealth::NotReady(why) => unavailable(
            format!("the shoal agent is not ready: {why}"),
            "join the node to a cluster (shoal cluster init or join), or wait for a quorum of managers",
        ),
        AgentHealth::NetworkUnknown(network) => unavailable(
            format!("the agent has no network {network:?}"),
            "create it (shoal network create --attachable NAME), or set the config's `network`",
        ),
        AgentHealth::AddressesExhausted(network) => unavailable(
            format!("network {network:?} has no free addresses"),
            "remove containers from it, or use a network with a larger subnet",
        ),
    }
}

#[cfg(test)]
mod tests;
