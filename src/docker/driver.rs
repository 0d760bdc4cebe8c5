//! Docker's driver calls, answered by the agent from the cluster state.
//!
//! ```text
//!  docker network create ─▶ RequestPool (a free subnet, or the network's own) ─▶ RequestAddress(gw)
//!                         ─▶ CreateNetwork ─▶ the same subnet exists? map the Docker ID to it
//!                                           └▶ else the network is made once Docker names it
//!  docker run ─▶ RequestAddress ─▶ LeaseAddress ─▶ CreateEndpoint (MAC) ─▶ Join ─▶ Attach{handoff}
//!             ─▶ ProgramExternalConnectivity (-p) ─▶ SetEndpointPorts
//!  docker rm  ─▶ Leave ─▶ DeleteEndpoint ─▶ Detach ─▶ ReleaseAddress (the lease is gone already)
//! ```
//! Drivers are told IDs, not names: a new network gets its name from Docker's Engine
//! API as soon as Docker has stored it, a moment after `CreateNetwork` returns.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use shoal_control::state::{
    docker_pool, AttachSpec, ClusterState, Command, EndpointPort, Network, NetworkSpec, Output,
    Protocol, Role,
};
use shoal_control::Member;

use super::engine::Engine;
use super::protocol as p;
use crate::agent::networks::{attach_and_wait, detach_and_wait, propose};
use crate::options::DriverOptions;
use crate::overlay::Overlay;

/// The address space of networks local to one daemon.
pub const LOCAL_SPACE: &str = "shoal-local";
/// The address space of a Swarm's networks.
pub const GLOBAL_SPACE: &str = "shoal";
/// How long IPAM and endpoint calls wait for a network that is being made.
const NETWORK_WAIT: Duration = Duration::from_secs(10);
/// How long a subnet RequestPool offered stays taken for the next RequestPool.
const OFFER_HOLD: Duration = Duration::from_secs(60);
/// How long a new network waits for Docker to name it.
const NAME_WAIT: Duration = Duration::from_secs(30);

/// What a driver call failed with, said to the user through Docker's CLI.
pub type CallError = String;

/// An endpoint between `CreateEndpoint` and `Join`.
#[derive(Debug, Clone)]
struct Pending {
    network: String,
    ip: Ipv4Addr,
}

/// The agent's side of the Docker plugin.
pub struct Driver {
    engine: Option<Engine>,
    /// `--ip-range`s from RequestPool, by subnet, for CreateNetwork.
    ranges: Mutex<HashMap<Ipv4Net, Ipv4Net>>,
    /// Subnets RequestPool offered lately (a CreateNetwork follows at once): taken for
    /// the next RequestPool until the network is made.
    offered: Mutex<HashMap<Ipv4Net, tokio::time::Instant>>,
    /// Docker networks being made (waiting for their name): Docker ID to subnet.
    creating: Mutex<HashMap<String, Ipv4Net>>,
    /// Why a Docker network could not be made, by Docker ID, with its subnet.
    failed: Mutex<HashMap<String, (Ipv4Net, String)>>,
    endpoints: Mutex<HashMap<String, Pending>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn parse<T: DeserializeOwned>(method: &str, body: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(body)
        .map_err(|e| format!("{method}: malformed request from Docker: {e}"))
}

/// `10.0.5.1/24` or `10.0.5.1` as an address.
fn addr_of(s: &str) -> Result<Ipv4Addr, CallError> {
    s.split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 address"))
}

/// The Docker network's shoal network, if it is mapped (on any node).
fn mapped<'s>(state: &'s ClusterState, docker_id: &str) -> Option<&'s Network> {
    state
        .networks
        .values()
        .find(|n| n.docker.contains_key(docker_id))
}

impl Driver {
    /// A driver that reads names from the daemon at `engine`, if given.
    pub fn new(engine: Option<Engine>) -> Arc<Driver> {
        Arc::new(Driver {
            engine,
            ranges: Mutex::default(),
            offered: Mutex::default(),
            creating: Mutex::default(),
            failed: Mutex::default(),
            endpoints: Mutex::default(),
        })
    }

    /// Answers one call: `method` is the URL's last part (`NetworkDriver.Join`).
    pub async fn call(
        self: &Arc<Self>,
        member: Option<Arc<Member>>,
        overlay: Option<Arc<Overlay>>,
        method: &str,
        body: &[u8],
    ) -> Result<Value, CallError> {
        // Calls that need no cluster.
        match method {
            "Plugin.Activate" => {
                return Ok(json!(p::Activate {
                    implements: vec!["NetworkDriver", "IpamDriver"],
                }))
            }
            "NetworkDriver.GetCapabilities" => return Ok(json!(self.capabilities().await)),
            "IpamDriver.GetCapabilities" => {
                return Ok(json!(p::IpamCapabilities {
                    requires_mac_address: false,
                }))
            }
            "IpamDriver.GetDefaultAddressSpaces" => {
                return Ok(json!(p::AddressSpaces {
                    local_default_address_space: LOCAL_SPACE,
                    global_default_address_space: GLOBAL_SPACE,
                }))
            }
            "NetworkDriver.DiscoverNew" | "NetworkDriver.DiscoverDelete" => return Ok(json!({})),
            "NetworkDriver.EndpointOperInfo" => {
                let r: p::EndpointRef = parse(method, body)?;
                let mut value = BTreeMap::new();
                if let Some(m) = &member {
                    let state = m.replica().state();
                    if let Some(e) = state
                        .endpoints
                        .values()
                        .find(|e| e.runtime_id.as_deref() == Some(&r.endpoint_id))
                    {
                        value.insert("shoal.endpoint".to_string(), e.id.clone());
                        value.insert("shoal.network".to_string(), e.network.clone());
                    }
                }
                return Ok(json!(p::OperInfo { value }));
            }
            _ => {}
        }
        let member = member.ok_or_else(|| {
            "this node's shoal agent is not in a cluster yet: run `shoal cluster init` or `shoal cluster join` first".to_string()
        })?;
        let overlay = overlay.ok_or("the shoal agent is still starting; try again")?;
        let ctx = Ctx {
            driver: self.clone(),
            member,
            overlay,
        };
        match method {
            "IpamDriver.RequestPool" => ctx.request_pool(parse(method, body)?),
            "IpamDriver.ReleasePool" => {
                let r: p::ReleasePool = parse(method, body)?;
                if let Ok(subnet) = Ctx::pool_subnet(&r.pool_id) {
                    lock(&self.offered).remove(&subnet);
                }
                Ok(json!({}))
            }
            "IpamDriver.RequestAddress" => ctx.request_address(parse(method, body)?).await,
            "IpamDriver.ReleaseAddress" => ctx.release_address(parse(method, body)?).await,
            "NetworkDriver.CreateNetwork" => ctx.create_network(parse(method, body)?, false).await,
            "NetworkDriver.AllocateNetwork" => ctx.create_network(parse(method, body)?, true).await,
            "NetworkDriver.DeleteNetwork" | "NetworkDriver.FreeNetwork" => {
                ctx.delete_network(parse(method, body)?).await
            }
            "NetworkDriver.CreateEndpoint" => ctx.create_endpoint(parse(method, body)?).await,
            "NetworkDriver.Join" => ctx.join(parse(method, body)?).await,
            "NetworkDriver.Leave" => Ok(json!({})),
            "NetworkDriver.DeleteEndpoint" => ctx.delete_endpoint(parse(method, body)?).await,
            "NetworkDriver.ProgramExternalConnectivity" => {
                ctx.program_ports(parse(method, body)?).await
            }
            "NetworkDriver.RevokeExternalConnectivity" => {
                let r: p::EndpointRef = parse(method, body)?;
                ctx.set_ports(&r.endpoint_id, Vec::new()).await
            }
            other => Err(format!("{other} is not a call shoal knows")),
        }
    }

    /// Subnets offered by RequestPool in the last minute, or being made.
    fn pending_subnets(&self) -> Vec<Ipv4Net> {
        let fresh = tokio::time::Instant::now() - OFFER_HOLD;
        let mut out: Vec<Ipv4Net> = lock(&self.offered)
            .iter()
            .filter(|(_, at)| **at > fresh)
            .map(|(s, _)| *s)
            .collect();
        out.extend(lock(&self.creating).values().copied());
        out
    }

    /// Global (so a Swarm's managers allocate) in a Swarm, local otherwise (Docker
    /// refuses global networks outside a Swarm); reaching across hosts either way.
    async fn capabilities(&self) -> p::Capabilities {
        let swarm = match &self.engine {
            Some(e) => e.in_swarm().await.unwrap_or(false),
            None => false,
        };
        p::Capabilities {
            scope: if swarm { "global" } else { "local" },
            connectivity_scope: "global",
        }
    }
}

/// One call's context.
struct Ctx {
    driver: Arc<Driver>,
    member: Arc<Member>,
    overlay: Arc<Overlay>,
}

impl Ctx {
    fn state(&self) -> Arc<ClusterState> {
        self.member.replica().state()
    }

    async fn propose(&self, command: Command) -> Result<Output, CallError> {
        propose(&self.member, command)
            .await
            .map(|a| a.output)
            .map_err(|e| e.to_string())
    }

    /// `RequestPool`: the subnet asked for, or the next free one; nothing is held.
    fn request_pool(&self, r: p::RequestPool) -> Result<Value, CallError> {
        if r.v6 {
            return Err("shoal networks are IPv4 only for now: leave out --ipv6".into());
        }
        if ![LOCAL_SPACE, GLOBAL_SPACE, ""].contains(&r.address_space.as_str()) {
            return Err(format!(
                "address space {:?} is not shoal's",
                r.address_space
            ));
        }
        // Docker's own markers (com.docker.network.*) come along in a Swarm.
        if let Some(k) = r
            .options
            .keys()
            .find(|k| !k.starts_with("com.docker.network."))
        {
            return Err(format!(
                "--ipam-opt {k}: shoal's IPAM takes no options; give --subnet, --ip-range, --gateway or --aux-address"
            ));
        }
        let requested = match r.pool.as_str() {
            "" => None,
            s => {
                let net: Ipv4Net = s
                    .parse()
                    .map_err(|_| format!("--subnet {s:?} is not an IPv4 CIDR"))?;
                if net.trunc() != net {
                    return Err(format!(
                        "--subnet {s} is not a network address; did you mean {}?",
                        net.trunc()
                    ));
                }
                Some(net)
            }
        };
        let pending = self.driver.pending_subnets();
        let subnet = docker_pool(&self.state(), requested, &pending).map_err(|e| e.to_string())?;
        lock(&self.driver.offered).insert(subnet, tokio::time::Instant::now());
        if !r.sub_pool.is_empty() {
            let range: Ipv4Net = r
                .sub_pool
                .parse()
                .map_err(|_| format!("--ip-range {:?} is not an IPv4 CIDR", r.sub_pool))?;
            if !subnet.contains(&range) {
                return Err(format!(
                    "--ip-range {range} is not inside --subnet {subnet}"
                ));
            }
            lock(&self.driver.ranges).insert(subnet, range);
        }
        Ok(json!(p::PoolGranted {
            pool_id: format!("shoal/{subnet}"),
            pool: subnet.to_string(),
            data: BTreeMap::new(),
        }))
    }

    fn pool_subnet(pool_id: &str) -> Result<Ipv4Net, CallError> {
        pool_id
            .strip_prefix("shoal/")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("pool {pool_id:?} is not shoal's"))
    }

    /// The network with `subnet`, waiting a moment for one Docker is making.
    async fn network_with(&self, subnet: Ipv4Net) -> Result<Network, CallError> {
        let until = tokio::time::Instant::now() + NETWORK_WAIT;
        loop {
            if let Some(n) = self
                .state()
                .networks
                .values()
                .find(|n| n.space.subnet() == subnet)
            {
                return Ok(n.clone());
            }
            if let Some((_, why)) = lock(&self.driver.failed)
                .values()
                .find(|(s, _)| *s == subnet)
            {
                return Err(why.clone());
            }
            let being_made = lock(&self.driver.creating).values().any(|s| *s == subnet);
            if !being_made || tokio::time::Instant::now() >= until {
                return Err(format!(
                    "no shoal network has subnet {subnet}; was the network removed?"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `RequestAddress`: the gateway of the (future) network, or a lease.
    async fn request_address(&self, r: p::RequestAddress) -> Result<Value, CallError> {
        let subnet = Self::pool_subnet(&r.pool_id)?;
        let given = match r.address.as_str() {
            "" => None,
            a => Some(addr_of(a)?),
        };
        if let Some(ip) = given.filter(|ip| !subnet.contains(ip)) {
            return Err(format!(
                "address {ip} is outside the network's subnet {subnet}"
            ));
        }
        let gateway_request =
            r.options.get(p::GATEWAY_REQUEST.0).map(String::as_str) == Some(p::GATEWAY_REQUEST.1);
        let ip = if gateway_request {
            let existing = self
                .state()
                .networks
                .values()
                .find(|n| n.space.subnet() == subnet)
                .map(|n| n.space.gateway());
            match (existing, given) {
                (Some(gw), Some(ip)) if gw != ip => {
                    return Err(format!(
                        "the network with subnet {subnet} has gateway {gw}, not {ip}"
                    ))
                }
                (Some(gw), _) => gw,
                (None, Some(ip)) => ip,
                (None, None) => subnet
                    .hosts()
                    .next()
                    .ok_or_else(|| format!("subnet {subnet} has no host addresses"))?,
            }
        } else {
            let net = self.network_with(subnet).await?;
            let command = Command::LeaseAddress {
                node: self.member.node_id,
                network: net.name.clone(),
                ip: given,
            };
            match self.propose(command).await? {
                Output::Address { ip } => ip,
                other => return Err(format!("unexpected answer to a lease: {other:?}")),
            }
        };
        Ok(json!(p::AddressGranted {
            address: format!("{ip}/{}", subnet.prefix_len()),
            data: BTreeMap::new(),
        }))
    }

    async fn release_address(&self, r: p::ReleaseAddress) -> Result<Value, CallError> {
        let subnet = Self::pool_subnet(&r.pool_id)?;
        let ip = addr_of(&r.address)?;
        let state = self.state();
        if let Some(net) = state.networks.values().find(|n| n.space.subnet() == subnet) {
            let command = Command::ReleaseAddress {
                node: self.member.node_id,
                network: net.name.clone(),
                ip,
            };
            self.propose(command).await?;
        }
        Ok(json!({}))
    }

    /// `CreateNetwork` (each daemon) and `AllocateNetwork` (a Swarm's manager).
    async fn create_network(
        &self,
        r: p::CreateNetwork,
        allocate: bool,
    ) -> Result<Value, CallError> {
        let options = docker_options(&r, allocate)?;
        let [pool] = r.ipv4_data.as_slice() else {
            return Err("a shoal network has one IPv4 subnet; give one --subnet (or none)".into());
        };
        if ![LOCAL_SPACE, GLOBAL_SPACE, ""].contains(&pool.address_space.as_str()) {
            return Err(format!(
                "shoal networks take their addresses from shoal's IPAM, so that no address is handed out twice across hosts: add --ipam-driver with the same name as -d (Docker's IPAM gave {:?})",
                pool.address_space
            ));
        }
        let subnet: Ipv4Net = pool
            .pool
            .parse()
            .map_err(|_| format!("pool {:?} is not an IPv4 CIDR", pool.pool))?;
        let gateway = match pool.gateway.as_str() {
            "" => None,
            g => Some(addr_of(g)?),
        };
        let mut aux = BTreeMap::new();
        for (k, v) in &pool.aux_addresses {
            aux.insert(k.clone(), addr_of(v)?);
        }
        let opts = DriverOptions::parse(&options.opts).map_err(|e| e.to_string())?;
        let internal = options.internal;
        let answer = if allocate {
            json!(p::Allocated {
                options: options.raw.clone(),
            })
        } else {
            json!({})
        };
        let state = self.state();
        let me = self.member.node_id;
        if let Some(net) = state.networks.values().find(|n| n.space.subnet() == subnet) {
            if net.encrypted != opts.encrypted || net.internal != internal {
                return Err(format!(
                    "network {} with subnet {subnet} exists with encrypted={} and internal={}; give the same options",
                    net.name, net.encrypted, net.internal
                ));
            }
            let command = Command::MapDockerNetwork {
                node: me,
                network: net.name.clone(),
                docker_id: r.network_id.clone(),
            };
            self.propose(command).await?;
            return Ok(answer);
        }
        if state.nodes.get(&me).map(|n| n.role) != Some(Role::Manager) {
            return Err(format!(
                "this node is a shoal worker, and only managers make networks: create the network on a manager (docker network create there, or shoal network create), then here with --subnet {subnet}"
            ));
        }
        lock(&self.driver.offered).remove(&subnet);
        let pending = self.driver.pending_subnets();
        if pending.contains(&subnet) {
            return Err(format!(
                "another network with subnet {subnet} is being made right now; try again in a moment"
            ));
        }
        docker_pool(&state, Some(subnet), &pending).map_err(|e| e.to_string())?;
        let spec = NetworkSpec {
            name: String::new(),
            subnet: Some(subnet),
            gateway,
            ip_range: lock(&self.driver.ranges).remove(&subnet),
            aux_addresses: aux,
            attachable: true,
            internal,
            encrypted: opts.encrypted,
            mtu: opts.mtu(),
            labels: BTreeMap::new(),
            vni: opts.vni,
            docker: Some((r.network_id.clone(), me)),
        };
        lock(&self.driver.creating).insert(r.network_id.clone(), subnet);
        lock(&self.driver.failed).remove(&r.network_id);
        let (driver, member) = (self.driver.clone(), self.member.clone());
        tokio::spawn(async move { driver.make_network(member, spec).await });
        Ok(answer)
    }

    async fn delete_network(&self, r: p::NetworkRef) -> Result<Value, CallError> {
        lock(&self.driver.failed).remove(&r.network_id);
        let command = Command::UnmapDockerNetwork {
            node: self.member.node_id,
            docker_id: r.network_id,
        };
        self.propose(command).await?;
        Ok(json!({}))
    }

    /// The shoal network of Docker network `docker_id`, waiting a moment for one being
    /// made.
    async fn network_of(&self, docker_id: &str) -> Result<Network, CallError> {
        let until = tokio::time::Instant::now() + NETWORK_WAIT;
        loop {
            if let Some(n) = mapped(&self.state(), docker_id) {
                return Ok(n.clone());
            }
            if let Some((_, why)) = lock(&self.driver.failed).get(docker_id) {
                return Err(why.clone());
            }
            if !lock(&self.driver.creating).contains_key(docker_id)
                || tokio::time::Instant::now() >= until
            {
                return Err(format!(
                    "Docker network {} is no shoal network (was it made while this node's agent was away? remove it and create it again)",
                    &docker_id[..docker_id.len().min(12)]
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn create_endpoint(&self, r: p::CreateEndpoint) -> Result<Value, CallError> {
        let net = self.network_of(&r.network_id).await?;
        let iface = r.interface.unwrap_or_default();
        if iface.address.is_empty() {
            return Err(
                "Docker gave the endpoint no address: shoal networks need --ipam-driver with the same name as -d"
                    .into(),
            );
        }
        if !iface.address_ipv6.is_empty() {
            return Err("shoal networks are IPv4 only for now".into());
        }
        let ip = addr_of(&iface.address)?;
        if !net.space.subnet().contains(&ip) {
            return Err(format!(
                "address {ip} is outside {}'s subnet {}",
                net.name,
                net.space.subnet()
            ));
        }
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
            },
        );
        Ok(json!(p::EndpointCreated {
            interface: iface.mac_address.is_empty().then(|| p::Interface {
                mac_address: mac,
                ..Default::default()
            }),
        }))
    }

    async fn join(&self, r: p::Join) -> Result<Value, CallError> {
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
            gateway: net.space.gateway().to_string(),
            static_routes: Vec::new(),
        }))
    }

    async fn delete_endpoint(&self, r: p::EndpointRef) -> Result<Value, CallError> {
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
    async fn program_ports(&self, r: p::ExternalConnectivity) -> Result<Value, CallError> {
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

    async fn set_ports(
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

/// The options of a CreateNetwork or AllocateNetwork call.
struct NetworkOptions {
    /// `--opt`s as `KEY=VALUE`.
    opts: Vec<String>,
    /// The same, as the map AllocateNetwork hands back to every node.
    raw: BTreeMap<String, String>,
    internal: bool,
}

/// CreateNetwork nests the `--opt` map under `com.docker.network.generic` and says
/// `com.docker.network.internal`; AllocateNetwork gives the `--opt` map itself.
fn docker_options(r: &p::CreateNetwork, allocate: bool) -> Result<NetworkOptions, CallError> {
    if !r.ipv6_data.is_empty()
        || r.options.get("com.docker.network.enable_ipv6") == Some(&Value::Bool(true))
    {
        return Err("shoal networks are IPv4 only for now: leave out --ipv6".into());
    }
    let generic = if allocate {
        Some(Value::Object(r.options.clone().into_iter().collect()))
    } else {
        r.options.get("com.docker.network.generic").cloned()
    };
    let mut raw = BTreeMap::new();
    if let Some(Value::Object(map)) = generic {
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => return Err(format!("--opt {k}: unexpected value {other}")),
            };
            raw.insert(k, v);
        }
    }
    let internal = r.options.get("com.docker.network.internal") == Some(&Value::Bool(true))
        || raw
            .get("com.docker.network.internal")
            .is_some_and(|v| v == "true");
    raw.remove("com.docker.network.internal");
    let opts = raw.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(NetworkOptions {
        opts,
        raw,
        internal,
    })
}

impl Driver {
    /// Makes the shoal network of a new Docker network once Docker has stored it (and so
    /// can name it). Docker networks keep their name; without an Engine API to ask,
    /// the network is called `docker-<ID>`.
    async fn make_network(self: Arc<Self>, member: Arc<Member>, mut spec: NetworkSpec) {
        let Some((docker_id, _)) = spec.docker.clone() else {
            return;
        };
        let subnet = spec.subnet.unwrap_or_default();
        let name = match &self.engine {
            Some(engine) => {
                let until = tokio::time::Instant::now() + NAME_WAIT;
                loop {
                    match engine.network(&docker_id).await {
                        Ok(Some(n)) => break Ok(n.name),
                        Ok(None) | Err(_) if tokio::time::Instant::now() < until => {
                            tokio::time::sleep(Duration::from_millis(50)).await
                        }
                        Ok(None) => break Err("Docker never stored the network".to_string()),
                        Err(e) => break Err(e),
                    }
                }
            }
            None => Ok(format!("docker-{}", &docker_id[..docker_id.len().min(12)])),
        };
        let result = match name {
            Ok(name) => {
                spec.name = name;
                let id = format!("{:024x}", rand::random::<u128>() & ((1 << 96) - 1));
                propose(&member, Command::CreateNetwork { id, spec })
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(format!("cannot learn the network's name from Docker: {e}")),
        };
        if let Err(why) = result {
            tracing::warn!(docker_network = %docker_id, error = %why, "Docker network not made in shoal");
            lock(&self.failed).insert(docker_id.clone(), (subnet, why));
        }
        lock(&self.creating).remove(&docker_id);
    }

    /// Gives endpoint `id` its container's name and aliases once Docker shows them.
    async fn learn_names(
        self: Arc<Self>,
        member: Arc<Member>,
        docker_net: String,
        docker_ep: String,
        id: String,
    ) {
        let Some(engine) = &self.engine else { return };
        let until = tokio::time::Instant::now() + NAME_WAIT;
        let names = loop {
            match engine.names_of(&docker_net, &docker_ep).await {
                Ok(Some(names)) => break names,
                _ if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => return,
            }
        };
        // Docker's aliases include the short container ID; DNS takes what is valid.
        let aliases = names
            .aliases
            .into_iter()
            .filter(|a| *a != names.name)
            .map(|a| a.to_ascii_lowercase())
            .collect();
        let command = Command::SetEndpointNames {
            node: member.node_id,
            endpoint: id.clone(),
            name: Some(names.name.to_ascii_lowercase()),
            aliases,
        };
        if let Err(e) = propose(&member, command).await {
            tracing::warn!(endpoint = %id, error = %e, "container names not recorded");
        }
    }
}

/// Endpoints younger than this are left alone by the clean-up: Docker lists a
/// container on its network only once it has started.
const SETTLE_MS: u64 = 10_000;
/// How often the clean-up looks.
const CLEANUP_EVERY: Duration = Duration::from_secs(30);

impl Driver {
    /// Keeps this node's Docker endpoints and networks in step with the daemon, at
    /// start and then every half minute: endpoints of containers that went while the
    /// agent was away are detached, Docker networks that went are let go.
    pub async fn follow(
        self: Arc<Self>,
        member: Arc<Member>,
        overlay: Arc<Overlay>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        loop {
            if member.synced() && !member.is_removed() {
                if let Err(e) = self.clean_up(&engine, &member, &overlay).await {
                    tracing::debug!(error = %e, "Docker clean-up skipped");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(CLEANUP_EVERY) => {}
            }
        }
    }

    async fn clean_up(
        &self,
        engine: &Engine,
        member: &Member,
        overlay: &Overlay,
    ) -> Result<(), String> {
        let state = member.replica().state();
        let me = member.node_id;
        let now = shoal_control::member::now_ms();
        let mut live: HashMap<String, Option<super::engine::EngineNetwork>> = HashMap::new();
        for net in state.networks.values() {
            for (docker_id, nodes) in &net.docker {
                if nodes.contains(&me) {
                    live.insert(docker_id.clone(), engine.network(docker_id).await?);
                }
            }
        }
        for e in state.endpoints.values() {
            let Some(runtime_id) = e.runtime_id.as_deref() else {
                continue;
            };
            if e.node != me || !e.handoff || now.saturating_sub(e.created_at_ms) < SETTLE_MS {
                continue;
            }
            let Some(net) = state.networks.get(&e.network) else {
                continue;
            };
            let present = net.docker.keys().any(|id| {
                live.get(id)
                    .and_then(Option::as_ref)
                    .is_some_and(|n| n.containers.values().any(|c| c.endpoint_id == runtime_id))
            });
            if !present {
                tracing::info!(endpoint = %e.id, docker_endpoint = %runtime_id, "its container is gone; detaching");
                if let Err(err) =
                    detach_and_wait(member, Some(overlay), &e.network, e.sandbox.clone()).await
                {
                    tracing::warn!(endpoint = %e.id, error = %err, "cannot detach a gone container's endpoint");
                }
            }
        }
        for (docker_id, net) in live {
            if net.is_none() && !lock(&self.creating).contains_key(&docker_id) {
                tracing::info!(docker_network = %docker_id, "Docker no longer has this network; letting it go");
                let command = Command::UnmapDockerNetwork {
                    node: me,
                    docker_id,
                };
                if let Err(err) = propose(member, command).await {
                    tracing::warn!(error = %err, "cannot let a gone Docker network go");
                }
            }
        }
        Ok(())
    }
}
