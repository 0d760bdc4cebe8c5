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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use shoal_control::state::{ClusterState, Command, Network, Output};
use shoal_control::Member;

mod cleanup;
mod endpoint;
mod ipam;
mod network;

use super::engine::Engine;
use super::protocol as p;
use crate::agent::networks::propose;
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
    /// Its IPv6 address, on a network made with `--ipv6`.
    ip6: Option<Ipv6Addr>,
}

/// The subnets of a Docker network being made: IPv4, and IPv6 with `--ipv6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Subnets {
    v4: Ipv4Net,
    v6: Option<Ipv6Net>,
}

impl Subnets {
    fn has(&self, subnet: IpNet) -> bool {
        match subnet {
            IpNet::V4(s) => s == self.v4,
            IpNet::V6(s) => Some(s) == self.v6,
        }
    }
}

/// The agent's side of the Docker plugin.
pub struct Driver {
    engine: Option<Engine>,
    /// `--ip-range`s from RequestPool, by subnet (of either family), for CreateNetwork.
    ranges: Mutex<HashMap<IpNet, IpNet>>,
    /// Subnets RequestPool offered lately (a CreateNetwork follows at once): taken for
    /// the next RequestPool until the network is made.
    offered: Mutex<HashMap<IpNet, tokio::time::Instant>>,
    /// Docker networks being made (waiting for their name): Docker ID to subnets.
    creating: Mutex<HashMap<String, Subnets>>,
    /// Why a Docker network could not be made, by Docker ID, with its subnets.
    failed: Mutex<HashMap<String, (Subnets, String)>>,
    endpoints: Mutex<HashMap<String, Pending>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn parse<T: DeserializeOwned>(method: &str, body: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(body)
        .map_err(|e| format!("{method}: malformed request from Docker: {e}"))
}

/// `10.0.5.1/24` or `10.0.5.1` as an IPv4 address.
fn addr_of(s: &str) -> Result<Ipv4Addr, CallError> {
    match ip_of(s)? {
        IpAddr::V4(ip) => Ok(ip),
        IpAddr::V6(_) => Err(format!("{s:?} is not an IPv4 address")),
    }
}

/// `fd00::1/64`, `10.0.5.1/24` or either without the prefix as an address.
fn ip_of(s: &str) -> Result<IpAddr, CallError> {
    s.split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address"))
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
    fn pending(&self) -> Vec<IpNet> {
        let fresh = tokio::time::Instant::now() - OFFER_HOLD;
        let mut out: Vec<IpNet> = lock(&self.offered)
            .iter()
            .filter(|(_, at)| **at > fresh)
            .map(|(s, _)| *s)
            .collect();
        for s in lock(&self.creating).values() {
            out.push(s.v4.into());
            out.extend(s.v6.map(IpNet::from));
        }
        out
    }

    /// The IPv4 ones of [`Driver::pending`].
    fn pending_subnets(&self) -> Vec<Ipv4Net> {
        let v4 = |s| match s {
            IpNet::V4(s) => Some(s),
            IpNet::V6(_) => None,
        };
        self.pending().into_iter().filter_map(v4).collect()
    }

    /// The IPv6 ones of [`Driver::pending`].
    fn pending_subnets6(&self) -> Vec<Ipv6Net> {
        let v6 = |s| match s {
            IpNet::V6(s) => Some(s),
            IpNet::V4(_) => None,
        };
        self.pending().into_iter().filter_map(v6).collect()
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
}
