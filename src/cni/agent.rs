//! Between CNI and the agent API, as plain functions: the attach request an ADD
//! makes, the records DEL, CHECK and GC find, the result ADD prints, and the CNI
//! error an agent's answer becomes.
//!
//! An attachment made for CNI carries the owner `cni:<container>/<ifname>`; that is
//! how the plugin, which keeps no state of its own, finds it again.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use shoal_control::api::{AttachRequest, EndpointInfo, NetworkInfo};
use shoal_control::state::{EndpointPort, Protocol as ShoalProtocol};

use super::config::NetworkConfig;
use super::decide::{ObservedSandbox, RecordedAttachment};
use super::env::{AttachmentEnv, AttachmentKey, CniCommand, ContainerId, IfName};
use super::error::CniError;
use super::result::{CniResult, Dns, Interface, IpConfig, Route};
use super::runtime::Protocol;

const OWNER_PREFIX: &str = "cni:";

/// The owner an attachment for `key` carries.
pub fn owner(key: &AttachmentKey) -> String {
    format!("{OWNER_PREFIX}{key}")
}

/// Whether an endpoint with this owner was made by a CNI runtime.
pub fn is_cni_owner(owner: Option<&str>) -> bool {
    owner.is_some_and(|o| o.starts_with(OWNER_PREFIX))
}

/// The key in an owner string, if it is a CNI attachment's.
pub fn parse_owner(owner: &str) -> Option<AttachmentKey> {
    let (container, ifname) = owner.strip_prefix(OWNER_PREFIX)?.rsplit_once('/')?;
    Some(AttachmentKey {
        container_id: ContainerId::parse(container).ok()?,
        ifname: IfName::parse(ifname).ok()?,
    })
}

/// The CNI attachments of `network` on node `node` (by name), as the agent holds them.
pub fn records(network: &NetworkInfo, node: &str) -> Vec<RecordedAttachment> {
    network
        .endpoints
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| {
            let key = parse_owner(e.owner.as_deref()?)?;
            Some(RecordedAttachment {
                key,
                network: network.name.clone(),
                netns: e.sandbox.clone(),
            })
        })
        .collect()
}

/// The attach request for ADD: the runtime's addresses (at most one per family, as a
/// shoal interface has one of each on a dual-stack network), MAC, name, aliases and
/// forwarded ports.
pub fn attach_request(
    config: &NetworkConfig,
    env: &AttachmentEnv,
    netns: &str,
) -> Result<AttachRequest, CniError> {
    let ips = config.requested_ips(env.args.ip);
    let (mut ip, mut ip6) = (None, None);
    for asked in &ips {
        let taken = match asked.addr {
            IpAddr::V4(v4) => ip.replace(v4).is_some(),
            IpAddr::V6(v6) => ip6.replace(v6).is_some(),
        };
        if taken {
            let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
            return Err(CniError::UnsupportedField {
                key: "ips".into(),
                value: shown.join(", "),
                details: "a shoal interface has one address of each family; ask for one IPv4 and at most one IPv6 address".into(),
            });
        }
    }
    let mut ports = Vec::with_capacity(config.runtime.port_mappings.len());
    for (i, mapping) in config.runtime.port_mappings.iter().enumerate() {
        if let Some(host_ip) = mapping.host_ip.filter(|ip| !ip.is_unspecified()) {
            return Err(CniError::UnsupportedField {
                key: format!("runtimeConfig.portMappings[{i}].hostIP"),
                value: host_ip.to_string(),
                details: "shoal forwards a port on every address of the node; leave out the \
                          host address, or chain the portmap plugin instead"
                    .into(),
            });
        }
        let protocol = match mapping.protocol {
            Protocol::Tcp => ShoalProtocol::Tcp,
            Protocol::Udp => ShoalProtocol::Udp,
            Protocol::Sctp => {
                return Err(CniError::UnsupportedField {
                    key: format!("runtimeConfig.portMappings[{i}].protocol"),
                    value: "\"sctp\"".into(),
                    details: "shoal forwards tcp and udp ports".into(),
                })
            }
        };
        ports.push(EndpointPort {
            protocol,
            host_port: mapping.host_port,
            port: mapping.container_port,
        });
    }
    Ok(AttachRequest {
        network: config.network.clone(),
        netns: netns.to_string(),
        name: env.args.pod_name.clone(),
        aliases: config.runtime.aliases.clone(),
        ip,
        ip6,
        service: None,
        ifname: Some(env.key.ifname.to_string()),
        mac: config
            .runtime
            .mac
            .or(env.args.mac)
            .map(|mac| mac.to_string()),
        owner: Some(owner(&env.key)),
        ports,
    })
}

/// The node's end of the veth pair, as the driver found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSide {
    /// Its name.
    pub name: String,
    /// Its MAC.
    pub mac: String,
}

/// ADD's result: the node's end (chained plugins such as `bandwidth` look for it),
/// the container's interface, its addresses (IPv4, IPv6 or both) with their gateways,
/// the default route of each family the sandbox has through the gateway, and shoal's
/// resolver.
pub fn add_result(
    endpoint: &EndpointInfo,
    host: Option<HostSide>,
    netns: &str,
    observed: &ObservedSandbox,
) -> Result<CniResult, CniError> {
    let decode = |address: &str, e: ipnet::AddrParseError| CniError::Decode {
        what: "the agent's answer".into(),
        details: format!("address {address:?}: {e}"),
    };
    let mut addresses: Vec<(IpNet, IpAddr)> = Vec::new();
    if let (Some(address), Some(gateway)) = (&endpoint.address, endpoint.gateway) {
        let net: Ipv4Net = address.parse().map_err(|e| decode(address, e))?;
        addresses.push((net.into(), gateway.into()));
    }
    if let (Some(address), Some(gateway)) = (&endpoint.address6, endpoint.gateway6) {
        let net: Ipv6Net = address.parse().map_err(|e| decode(address, e))?;
        addresses.push((net.into(), gateway.into()));
    }
    if addresses.is_empty() {
        return Err(CniError::Decode {
            what: "the agent's answer".into(),
            details: format!("endpoint {} has no address", endpoint.id),
        });
    }
    let mut result = CniResult::default();
    if let Some(host) = host {
        result.interfaces.push(Interface {
            name: host.name,
            mac: Some(host.mac),
            ..Default::default()
        });
    }
    let mtu = observed
        .interface
        .as_ref()
        .map(|i| i.mtu)
        .filter(|m| *m != 0)
        .or(Some(endpoint.mtu).filter(|m| *m != 0));
    result.interfaces.push(Interface {
        name: endpoint.ifname.clone(),
        mac: Some(endpoint.mac.clone()),
        mtu,
        sandbox: Some(netns.to_string()),
        ..Default::default()
    });
    let index = result.interfaces.len() - 1;
    for (address, gateway) in addresses {
        result.ips.push(IpConfig {
            address,
            gateway: Some(gateway),
            interface: Some(index),
        });
        let default_via_gateway = observed
            .routes
            .iter()
            .any(|r| r.dst.prefix_len() == 0 && r.gw == Some(gateway));
        if default_via_gateway {
            let any = match gateway {
                IpAddr::V4(_) => IpNet::V4(Ipv4Net::default()),
                IpAddr::V6(_) => IpNet::V6(Ipv6Net::default()),
            };
            result.routes.push(Route {
                dst: any,
                gw: Some(gateway),
                mtu: None,
                advmss: None,
                priority: None,
                table: None,
                scope: None,
            });
        }
    }
    result.dns = Dns {
        nameservers: vec![endpoint.dns],
        ..Default::default()
    };
    Ok(result)
}

/// What the agent's answer means to the runtime. `status` is `None` when the agent
/// did not answer at all.
pub fn agent_error(
    command: CniCommand,
    socket: &str,
    network: &str,
    status: Option<u16>,
    message: &str,
) -> CniError {
    match status {
        None if command == CniCommand::Status => CniError::PluginNotAvailable {
            reason: format!("the shoal agent at {socket} does not answer: {message}"),
            details: String::new(),
        },
        None => CniError::TryAgainLater {
            reason: format!(
                "the shoal agent at {socket} does not answer ({message}); is `shoal agent` \
                 running on this node?"
            ),
        },
        Some(421 | 502 | 503 | 504) => CniError::TryAgainLater {
            reason: format!("the cluster cannot take the change now: {message}"),
        },
        Some(status) if (400..500).contains(&status) => CniError::InvalidConfig {
            field: format!("network {network:?}"),
            details: format!("the shoal agent refused: {message}"),
        },
        Some(_) => CniError::Io {
            what: format!("{} through the shoal agent", command.as_str()),
            details: message.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
