//! Docker's endpoint calls: an endpoint is a shoal endpoint handed off to the container.

use std::net::IpAddr;

use serde_json::{json, Value};
use shoal_control::state::{AttachSpec, Command, EndpointPort, Protocol};

use super::{addr_of, ip_of, lock, p, CallError, Ctx, Pending, NETWORK_WAIT};
use crate::agent::networks::{attach_and_wait, detach_and_wait, propose};

impl Ctx {
    pub(super) async fn create_endpoint(&self, r: p::CreateEndpoint) -> Result<Value, CallError> {
        let net = self.network_of(&r.network_id).await?;
        let iface = r.interface.unwrap_or_default();
        if iface.address.is_empty() {
            return Err(
                "Docker gave the endpoint no address: shoal networks need --ipam-driver with the same name as -d"
                    .into(),
            );
        }
        let ip = addr_of(&iface.address)?;
        let subnet = net.subnet().ok_or_else(|| ipv6_only(&net))?;
        if !subnet.contains(&ip) {
            return Err(format!(
                "address {ip} is outside {}'s subnet {subnet}",
                net.name
            ));
        }
        let ip6 = match (iface.address_ipv6.as_str(), net.space6.as_ref()) {
            ("", None) => None,
            ("", Some(_)) => {
                return Err(format!(
                    "network {} is dual-stack: Docker gave the endpoint no IPv6 address (was the Docker network made without --ipv6 on this host?)",
                    net.name
                ))
            }
            (a, None) => {
                return Err(format!(
                    "network {} has no IPv6 subnet, but Docker gave the endpoint {a}",
                    net.name
                ))
            }
            (a, Some(space6)) => match ip_of(a)? {
                IpAddr::V6(ip6) if space6.subnet().contains(&ip6) => Some(ip6),
                other => {
                    return Err(format!(
                        "address {other} is outside {}'s IPv6 subnet {}",
                        net.name,
                        space6.subnet()
                    ))
                }
            },
        };
        let mac = shoal_ipam::format_mac(shoal_ipam::mac_for(ip));
        if !iface.mac_address.is_empty() && !iface.mac_address.eq_ignore_ascii_case(&mac) {
            return Err(format!(
                "shoal gives every endpoint the MAC of its address ({mac} for {ip}); leave out --mac-address"
            ));
        }
        lock(&self.driver.endpoints).insert(
            r.endpoint_id,
            Pending {
                network: net.name,
                ip,
                ip6,
            },
        );
        Ok(json!(p::EndpointCreated {
            interface: iface.mac_address.is_empty().then(|| p::Interface {
                mac_address: mac,
                ..Default::default()
            }),
        }))
    }

    pub(super) async fn join(&self, r: p::Join) -> Result<Value, CallError> {
        let state = self.state();
        let me = self.member.node_id;
        let existing = state
            .endpoints
            .values()
            .find(|e| e.node == me && e.runtime_id.as_deref() == Some(&r.endpoint_id))
            .cloned();
        let endpoint = match existing {
            Some(e) => e,
            None => {
                let pending = lock(&self.driver.endpoints)
                    .get(&r.endpoint_id)
                    .cloned()
                    .ok_or("Join of an endpoint shoal did not create (was the agent restarted? start the container again)")?;
                if !r.sandbox_key.starts_with('/') {
                    return Err(format!("sandbox key {:?} is not a path", r.sandbox_key));
                }
                let spec = AttachSpec {
                    network: pending.network,
                    node: me,
                    sandbox: r.sandbox_key.clone(),
                    ip: Some(pending.ip),
                    ip6: pending.ip6,
                    handoff: true,
                    runtime_id: Some(r.endpoint_id.clone()),
                    ..Default::default()
                };
                let e = attach_and_wait(&self.member, &self.overlay, spec)
                    .await
                    .map_err(|e| e.to_string())?;
                lock(&self.driver.endpoints).remove(&r.endpoint_id);
                e
            }
        };
        let net = state
            .networks
            .get(&endpoint.network)
            .cloned()
            .or_else(|| self.state().networks.get(&endpoint.network).cloned())
            .ok_or("the network went away")?;
        let (driver, member) = (self.driver.clone(), self.member.clone());
        let (docker_net, docker_ep, id) = (
            r.network_id.clone(),
            r.endpoint_id.clone(),
            endpoint.id.clone(),
        );
        tokio::spawn(async move { driver.learn_names(member, docker_net, docker_ep, id).await });
        Ok(json!(p::Joined {
            interface_name: p::InterfaceName {
                src_name: shoal_dataplane::overlay::peer_ifname(&endpoint.id),
                dst_prefix: "eth".into(),
            },
            gateway: net
                .space
                .as_ref()
                .ok_or_else(|| ipv6_only(&net))?
                .gateway()
                .to_string(),
            gateway_ipv6: net
                .space6
                .as_ref()
                .map(|s| s.gateway().to_string())
                .unwrap_or_default(),
            static_routes: Vec::new(),
        }))
    }

    pub(super) async fn delete_endpoint(&self, r: p::EndpointRef) -> Result<Value, CallError> {
        lock(&self.driver.endpoints).remove(&r.endpoint_id);
        let state = self.state();
        let me = self.member.node_id;
        if let Some(e) = state
            .endpoints
            .values()
            .find(|e| e.node == me && e.runtime_id.as_deref() == Some(&r.endpoint_id))
        {
            detach_and_wait(
                &self.member,
                Some(&self.overlay),
                &e.network,
                e.sandbox.clone(),
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        Ok(json!({}))
    }

    /// `ProgramExternalConnectivity`: `-p HOST:CONTAINER` becomes a port of this node
    /// forwarded to the endpoint, on every address of the node.
    pub(super) async fn program_ports(
        &self,
        r: p::ExternalConnectivity,
    ) -> Result<Value, CallError> {
        let bindings: Vec<p::PortBinding> = match r.options.get("com.docker.network.portmap") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| format!("port mappings from Docker: {e}"))?,
        };
        let mut ports = Vec::new();
        for b in bindings {
            let protocol = match b.proto {
                6 => Protocol::Tcp,
                17 => Protocol::Udp,
                _ => {
                    return Err(format!(
                        "port {}: shoal forwards tcp and udp ports only",
                        b.port
                    ))
                }
            };
            if !matches!(b.host_ip.as_str(), "" | "0.0.0.0" | "::") {
                return Err(format!(
                    "-p {}:{}:{}: shoal forwards a port on every address of the node; leave out the host address",
                    b.host_ip, b.host_port, b.port
                ));
            }
            if b.host_port == 0 {
                return Err(format!(
                    "port {}: give the host port (-p HOST:{}); shoal does not pick one",
                    b.port, b.port
                ));
            }
            ports.push(EndpointPort {
                protocol,
                host_port: b.host_port,
                port: b.port,
            });
        }
        self.set_ports(&r.endpoint_id, ports).await
    }

    pub(super) async fn set_ports(
        &self,
        docker_endpoint: &str,
        ports: Vec<EndpointPort>,
    ) -> Result<Value, CallError> {
        let state = self.state();
        let me = self.member.node_id;
        let Some(e) = state
            .endpoints
            .values()
            .find(|e| e.node == me && e.runtime_id.as_deref() == Some(docker_endpoint))
        else {
            return if ports.is_empty() {
                Ok(json!({}))
            } else {
                Err("ports for an endpoint that has not joined".into())
            };
        };
        if e.ports == ports {
            return Ok(json!({}));
        }
        let command = Command::SetEndpointPorts {
            node: me,
            endpoint: e.id.clone(),
            ports,
        };
        let revision = propose(&self.member, command)
            .await
            .map_err(|e| e.to_string())?
            .revision;
        self.overlay.wait_for(revision, NETWORK_WAIT).await;
        Ok(json!({}))
    }
}

/// Why Docker cannot have an endpoint on the IPv6-only network `net`.
fn ipv6_only(net: &shoal_control::state::Network) -> String {
    format!(
        "network {} is IPv6-only (--ipv4=false): shoal's Docker driver carries only networks with IPv4",
        net.name
    )
}
