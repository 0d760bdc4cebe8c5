//! Docker's network calls: a Docker network is mapped to a shoal network, or one is made.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::{json, Value};
use shoal_control::state::{
    docker_pool, docker_pool6, validate_label, Command, Network, NetworkSpec, Role,
};
use shoal_control::Member;

use super::{
    addr_of, ip_of, lock, mapped, p, CallError, Ctx, Driver, Subnets, GLOBAL_SPACE, LOCAL_SPACE,
    NAME_WAIT, NETWORK_WAIT,
};
use crate::agent::networks::propose;
use crate::options::DriverOptions;

impl Ctx {
    /// `CreateNetwork` (each daemon) and `AllocateNetwork` (a Swarm's manager).
    pub(super) async fn create_network(
        &self,
        r: p::CreateNetwork,
        allocate: bool,
    ) -> Result<Value, CallError> {
        let options = docker_options(&r, allocate)?;
        let [pool] = r.ipv4_data.as_slice() else {
            return Err("a shoal network has one IPv4 subnet; give one --subnet (or none)".into());
        };
        for data in r.ipv4_data.iter().chain(&r.ipv6_data) {
            if ![LOCAL_SPACE, GLOBAL_SPACE, ""].contains(&data.address_space.as_str()) {
                return Err(format!(
                    "shoal networks take their addresses from shoal's IPAM, so that no address is handed out twice across hosts: add --ipam-driver with the same name as -d (Docker's IPAM gave {:?})",
                    data.address_space
                ));
            }
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
        let v6 = ipv6_pool(&r, options.ipv6)?;
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
        if let Some(net) = state.networks.values().find(|n| n.subnet() == Some(subnet)) {
            if net.encrypted != opts.encrypted || net.internal != internal {
                return Err(format!(
                    "network {} with subnet {subnet} exists with encrypted={} and internal={}; give the same options",
                    net.name, net.encrypted, net.internal
                ));
            }
            let have6 = net.space6.as_ref().map(|s| s.subnet());
            if have6 != v6.map(|p| p.subnet) {
                return Err(match have6 {
                    Some(s) => format!(
                        "network {} is dual-stack in the cluster: create it here with --ipv6 --subnet {subnet} --subnet {s}",
                        net.name
                    ),
                    None => format!(
                        "network {} has no IPv6 subnet in the cluster: create it here without --ipv6",
                        net.name
                    ),
                });
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
        let subnets = Subnets {
            v4: subnet,
            v6: v6.map(|p| p.subnet),
        };
        {
            let mut offered = lock(&self.driver.offered);
            offered.remove(&subnet.into());
            if let Some(s) = subnets.v6 {
                offered.remove(&s.into());
            }
        }
        let pending = self.driver.pending();
        if let Some(s) = pending.iter().find(|s| subnets.has(**s)) {
            return Err(format!(
                "another network with subnet {s} is being made right now; try again in a moment"
            ));
        }
        docker_pool(&state, Some(subnet), &self.driver.pending_subnets())
            .map_err(|e| e.to_string())?;
        if let Some(s) = subnets.v6 {
            docker_pool6(&state, Some(s), &self.driver.pending_subnets6())
                .map_err(|e| e.to_string())?;
        }
        let range = |s: IpNet| lock(&self.driver.ranges).remove(&s);
        let spec = NetworkSpec {
            name: String::new(),
            subnet: Some(subnet),
            gateway,
            ip_range: range(subnet.into()).and_then(|r| match r {
                IpNet::V4(r) => Some(r),
                IpNet::V6(_) => None,
            }),
            ipv6: v6.is_some(),
            subnet6: subnets.v6,
            gateway6: v6.and_then(|p| p.gateway),
            ip_range6: subnets.v6.and_then(|s| match range(s.into()) {
                Some(IpNet::V6(r)) => Some(r),
                _ => None,
            }),
            aux_addresses: aux,
            attachable: true,
            internal,
            encrypted: opts.encrypted,
            mtu: opts.mtu(),
            labels: BTreeMap::new(),
            vni: opts.vni,
            docker: Some((r.network_id.clone(), me)),
            ..NetworkSpec::default()
        };
        lock(&self.driver.creating).insert(r.network_id.clone(), subnets);
        lock(&self.driver.failed).remove(&r.network_id);
        let (driver, member) = (self.driver.clone(), self.member.clone());
        tokio::spawn(async move { driver.make_network(member, spec).await });
        Ok(answer)
    }

    pub(super) async fn delete_network(&self, r: p::NetworkRef) -> Result<Value, CallError> {
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
    pub(super) async fn network_of(&self, docker_id: &str) -> Result<Network, CallError> {
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
}

/// The options of a CreateNetwork or AllocateNetwork call.
struct NetworkOptions {
    /// `--opt`s as `KEY=VALUE`.
    opts: Vec<String>,
    /// The same, as the map AllocateNetwork hands back to every node.
    raw: BTreeMap<String, String>,
    internal: bool,
    /// `--ipv6`.
    ipv6: bool,
}

/// CreateNetwork nests the `--opt` map under `com.docker.network.generic` and says
/// `com.docker.network.internal`; AllocateNetwork gives the `--opt` map itself.
fn docker_options(r: &p::CreateNetwork, allocate: bool) -> Result<NetworkOptions, CallError> {
    let ipv6 = !r.ipv6_data.is_empty()
        || r.options.get("com.docker.network.enable_ipv6") == Some(&Value::Bool(true));
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
    let ipv6 = ipv6
        || raw
            .get("com.docker.network.enable_ipv6")
            .is_some_and(|v| v == "true");
    raw.remove("com.docker.network.enable_ipv6");
    let opts = raw.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(NetworkOptions {
        opts,
        raw,
        internal,
        ipv6,
    })
}

/// The IPv6 pool of a `--ipv6` network.
#[derive(Debug, Clone, Copy)]
struct Pool6 {
    subnet: Ipv6Net,
    gateway: Option<Ipv6Addr>,
}

/// The IPv6 subnet and gateway Docker's IPAM gave a network made with `--ipv6`.
fn ipv6_pool(r: &p::CreateNetwork, ipv6: bool) -> Result<Option<Pool6>, CallError> {
    let pool = match r.ipv6_data.as_slice() {
        [] if ipv6 => {
            return Err(
                "--ipv6 needs IPv6 addresses from shoal's IPAM: add --ipam-driver with the same name as -d".into(),
            )
        }
        [] => return Ok(None),
        [pool] => pool,
        _ => return Err("a shoal network has at most one IPv6 subnet; give one (or none)".into()),
    };
    let subnet: Ipv6Net = pool
        .pool
        .parse()
        .map_err(|_| format!("pool {:?} is not an IPv6 CIDR", pool.pool))?;
    if let Some((name, _)) = pool.aux_addresses.iter().next() {
        return Err(format!(
            "--aux-address {name}: shoal keeps aux addresses for IPv4 subnets only"
        ));
    }
    let gateway = match pool.gateway.as_str() {
        "" => None,
        g => match ip_of(g)? {
            IpAddr::V6(ip) => Some(ip),
            IpAddr::V4(ip) => {
                return Err(format!(
                    "--gateway {ip} is IPv4, for the IPv6 subnet {subnet}"
                ))
            }
        },
    };
    Ok(Some(Pool6 { subnet, gateway }))
}

impl Driver {
    /// Makes the shoal network of a new Docker network once Docker has stored it (and so
    /// can name it). Docker networks keep their name and labels; without an Engine API
    /// to ask, the network is called `docker-<ID>`.
    pub(super) async fn make_network(self: Arc<Self>, member: Arc<Member>, mut spec: NetworkSpec) {
        let Some((docker_id, _)) = spec.docker.clone() else {
            return;
        };
        let subnets = Subnets {
            v4: spec.subnet.unwrap_or_default(),
            v6: spec.subnet6,
        };
        let name = match &self.engine {
            Some(engine) => {
                let until = tokio::time::Instant::now() + NAME_WAIT;
                loop {
                    match engine.network(&docker_id).await {
                        Ok(Some(n)) => break Ok((n.name, n.labels)),
                        Ok(None) | Err(_) if tokio::time::Instant::now() < until => {
                            tokio::time::sleep(Duration::from_millis(50)).await
                        }
                        Ok(None) => break Err("Docker never stored the network".to_string()),
                        Err(e) => break Err(e),
                    }
                }
            }
            None => Ok((
                format!("docker-{}", &docker_id[..docker_id.len().min(12)]),
                BTreeMap::new(),
            )),
        };
        let result = match name {
            Ok((name, labels)) => {
                spec.name = name;
                // Labels Docker takes and shoal does not (control characters) stay
                // Docker's alone.
                spec.labels = labels
                    .into_iter()
                    .filter(|(k, v)| validate_label(k, v).is_ok())
                    .collect();
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
            lock(&self.failed).insert(docker_id.clone(), (subnets, why));
        }
        lock(&self.creating).remove(&docker_id);
    }

    /// Gives endpoint `id` its container's name and aliases once Docker shows them.
    pub(super) async fn learn_names(
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
