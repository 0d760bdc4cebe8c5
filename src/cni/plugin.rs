//! The CNI plugin's IO: the environment, stdin and stdout, the local agent's API, and
//! netlink in the container's namespace. What to do is decided by `decide` and
//! `agent`; this file only fetches the facts and carries the plans out.
//!
//! ```text
//!  CNI_* + stdin ──▶ Invocation, NetworkConfig ──▶ ADD:   observe netns, records ─▶ decide_add
//!                                                         ─▶ POST /v1/attach ─▶ add_result
//!                                                  DEL:   records, netns ─▶ decide_del ─▶ detach
//!                                                  CHECK: prevResult vs netns (+ record)
//!                                                  GC:    records ─▶ gc_stale ─▶ detach each
//!                                                  STATUS: /v1/status, /v1/networks/NET
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shoal_control::api::{DetachRequest, EndpointInfo, NetworkInfo, StatusInfo};
use shoal_control::transport::ErrorBody;
use shoal_dataplane::netlink::{Netlink, Route, RouteFamily};

use super::agent::{add_result, agent_error, attach_request, records, HostSide};
use super::config::NetworkConfig;
use super::decide::{
    check_differences, check_verdict, decide_add, decide_del, expect_from, gc_stale,
    status_verdict, AddDecision, AgentHealth, ObservedInterface, ObservedRoute, ObservedSandbox,
    RecordedAttachment,
};
use super::env::{AttachmentEnv, CniCommand, Invocation};
use super::error::CniError;
use super::result::CniResult;
use super::version::{version_reply, CniVersion};
use crate::client::{segment, unix_http, UnixHttpError};

/// The most a runtime may put on stdin (a config with a long prevResult is a few KiB).
const MAX_STDIN: u64 = 4 << 20;
/// How long an attach may take: a Raft commit and the kernel's changes.
const ATTACH_WITHIN: Duration = Duration::from_secs(60);
/// How long a query may take.
const QUERY_WITHIN: Duration = Duration::from_secs(10);

/// Whether this process was started by a CNI runtime (it sets `CNI_COMMAND`).
pub fn invoked() -> bool {
    std::env::var_os("CNI_COMMAND").is_some_and(|v| !v.is_empty())
}

/// Serves one CNI request: reads the environment and stdin, prints the result or the
/// error on stdout, and returns the exit code (0, or 1 with an error printed).
pub async fn run() -> i32 {
    let vars: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("CNI_"))
        .collect();
    let mut stdin = Vec::new();
    let read = std::io::stdin().take(MAX_STDIN).read_to_end(&mut stdin);
    let outcome = match read {
        Ok(_) => serve(&vars, &stdin).await,
        Err(e) => Err((
            CniError::Io {
                what: "the network configuration on stdin".into(),
                details: e.to_string(),
            },
            CniVersion::CURRENT.as_str().to_string(),
        )),
    };
    match outcome {
        Ok(None) => 0,
        Ok(Some(value)) => {
            println!("{value}");
            0
        }
        Err((error, version)) => {
            let reply = serde_json::to_string(&error.reply(&version))
                .unwrap_or_else(|_| format!("{{\"code\":{}}}", error.code()));
            println!("{reply}");
            1
        }
    }
}

/// The version an error is printed at when the config could not be read: the
/// config's own if it has a string one, else the current.
fn version_of(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| CniVersion::parse(v).is_ok())
        .unwrap_or_else(|| CniVersion::CURRENT.as_str().to_string())
}

async fn serve(
    vars: &BTreeMap<String, String>,
    stdin: &[u8],
) -> Result<Option<Value>, (CniError, String)> {
    let early = |e: CniError| (e, version_of(stdin));
    let invocation = Invocation::from_env(vars).map_err(early)?;
    if invocation == Invocation::Version {
        let reply = version_reply(stdin).map_err(early)?;
        return Ok(Some(serde_json::to_value(reply).unwrap_or(Value::Null)));
    }
    let config = NetworkConfig::parse(stdin, invocation.command()).map_err(early)?;
    let version = config.cni_version;
    let api = Api {
        socket: config.socket.clone(),
        network: config.network.clone(),
        command: invocation.command(),
    };
    let outcome = match &invocation {
        Invocation::Add(env) => add(&api, &config, env)
            .await
            .map(|r| Some(r.to_json(version))),
        Invocation::Del(env) => del(&api, env).await.map(|()| None),
        Invocation::Check(env) => check(&api, &config, env).await.map(|()| None),
        Invocation::Gc { .. } => gc(&api, &config).await.map(|()| None),
        Invocation::Status => status(&api).await.map(|()| None),
        Invocation::Version => Ok(None),
    };
    outcome.map_err(|e| (e, version.as_str().to_string()))
}

/// The local agent, for one command on one network.
struct Api {
    socket: String,
    network: String,
    command: CniCommand,
}

impl Api {
    async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        within: Duration,
    ) -> Result<T, CniError> {
        let fail = |status, message: &str| {
            agent_error(self.command, &self.socket, &self.network, status, message)
        };
        let (status, bytes) = unix_http(Path::new(&self.socket), method, path, body, within)
            .await
            .map_err(|e| match e {
                UnixHttpError::Timeout => {
                    fail(None, &format!("no answer within {}s", within.as_secs()))
                }
                other => fail(None, &other.to_string()),
            })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(fail(Some(status.as_u16()), &message));
        }
        serde_json::from_slice(&bytes).map_err(|e| CniError::Decode {
            what: format!("the shoal agent's answer to {path}"),
            details: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CniError> {
        self.call(http::Method::GET, path, None, QUERY_WITHIN).await
    }

    async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CniError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CniError::Io {
            what: format!("the request to {path}"),
            details: e.to_string(),
        })?;
        self.call(http::Method::POST, path, Some(bytes), ATTACH_WITHIN)
            .await
    }

    /// This node's name in the cluster; the node must be in one.
    async fn node_name(&self) -> Result<String, CniError> {
        let status: StatusInfo = self.get("/v1/status").await?;
        match status.name {
            Some(name) if status.in_cluster && !status.removed => Ok(name),
            _ => Err(CniError::TryAgainLater {
                reason: "this node's shoal agent is not in a cluster yet (shoal cluster init \
                         or join)"
                    .into(),
            }),
        }
    }

    /// The CNI attachments of the network on this node; none if the network is gone.
    async fn records(&self) -> Result<Vec<RecordedAttachment>, CniError> {
        let node = self.node_name().await?;
        let path = format!("/v1/networks/{}", segment(&self.network));
        match self.get::<NetworkInfo>(&path).await {
            Ok(network) => Ok(records(&network, &node)),
            Err(CniError::InvalidConfig { .. }) => Ok(Vec::new()),
            Err(other) => Err(other),
        }
    }

    async fn detach(&self, record: &RecordedAttachment) -> Result<(), CniError> {
        let request = DetachRequest {
            network: record.network.clone(),
            netns: record.netns.clone(),
        };
        let _: Value = self.post("/v1/detach", &request).await?;
        Ok(())
    }
}

/// What is in the sandbox `netns`: the interface `ifname` (MAC, MTU, addresses) and
/// the main table's routes. A namespace that is not there holds nothing.
async fn observe(netns: &str, ifname: &str) -> Result<ObservedSandbox, CniError> {
    let Ok(ns) = shoal_dataplane::netns::open(netns) else {
        return Ok(ObservedSandbox::default());
    };
    let netlink_error = |e: shoal_dataplane::netlink::NetlinkError| CniError::Io {
        what: format!("the interfaces of {netns}"),
        details: e.to_string(),
    };
    let nl = Netlink::in_namespace(&ns).map_err(netlink_error)?;
    let interface = match nl.link_info(ifname).await.map_err(netlink_error)? {
        None => None,
        Some(link) => {
            let addresses = nl
                .addresses_of(link.index)
                .await
                .map_err(netlink_error)?
                .into_iter()
                .filter_map(|(ip, prefix)| IpNet::new(ip, prefix).ok())
                // The kernel's own link-local address is no address CNI gave.
                .filter(|net| !is_link_local(net.addr()))
                .collect();
            Some(ObservedInterface {
                mac: link.mac.map(shoal_ipam::format_mac).unwrap_or_default(),
                mtu: link.mtu,
                addresses,
            })
        }
    };
    let mut routes = Vec::new();
    for r in nl.main_routes::<Ipv4Addr>().await.map_err(netlink_error)? {
        routes.extend(observed_route(r));
    }
    for r in nl.main_routes::<Ipv6Addr>().await.map_err(netlink_error)? {
        routes.extend(observed_route(r));
    }
    Ok(ObservedSandbox { interface, routes })
}

/// A route of the sandbox as CHECK compares it.
fn observed_route<A: RouteFamily>(r: Route<A>) -> Option<ObservedRoute> {
    Some(ObservedRoute {
        dst: IpNet::new(r.dst.into(), r.prefix).ok()?,
        gw: r.gateway.map(Into::into),
    })
}

/// Whether `ip` is an IPv6 link-local address (fe80::/10).
fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// The node's end of endpoint `id`'s veth pair, in this (the node's) namespace.
async fn host_side(id: &str) -> Option<HostSide> {
    let name = shoal_dataplane::overlay::host_ifname(id);
    let nl = Netlink::current().ok()?;
    let link = nl.link_info(&name).await.ok()??;
    Some(HostSide {
        name,
        mac: shoal_ipam::format_mac(link.mac?),
    })
}

fn netns_of(env: &AttachmentEnv) -> Result<&str, CniError> {
    env.netns
        .as_deref()
        .ok_or_else(|| CniError::InvalidEnvironment {
            names: vec!["CNI_NETNS"],
            details: "CNI_NETNS is required".into(),
        })
}

async fn add(
    api: &Api,
    config: &NetworkConfig,
    env: &AttachmentEnv,
) -> Result<CniResult, CniError> {
    let netns = netns_of(env)?;
    if shoal_dataplane::netns::open(netns).is_err() {
        return Err(CniError::InvalidEnvironment {
            names: vec!["CNI_NETNS"],
            details: format!("CNI_NETNS {netns:?} is not a network namespace"),
        });
    }
    let request = attach_request(config, env, netns)?;
    let before = observe(netns, env.key.ifname.as_str()).await?;
    let records = api.records().await?;
    let recorded = records.iter().find(|r| r.key == env.key);
    match decide_add(netns, &env.key.ifname, recorded, before.interface.is_some())? {
        AddDecision::Create => {}
        AddDecision::ReplaceStale(stale) => api.detach(&stale).await?,
    }
    let endpoint: EndpointInfo = api.post("/v1/attach", &request).await?;
    let made = async {
        let after = observe(netns, env.key.ifname.as_str()).await?;
        let host = host_side(&endpoint.id).await;
        add_result(&endpoint, host, netns, &after)
    }
    .await;
    let ours = match made {
        Ok(result) => result,
        Err(e) => {
            let record = RecordedAttachment {
                key: env.key.clone(),
                network: endpoint.network.clone(),
                netns: endpoint.sandbox.clone(),
            };
            if let Err(undo) = api.detach(&record).await {
                tracing::warn!(error = %undo, "cannot undo a half-made CNI attachment");
            }
            return Err(e);
        }
    };
    Ok(match config.prev_result.clone() {
        Some(prev) => CniResult::chained_after(prev, ours),
        None => ours,
    })
}

async fn del(api: &Api, env: &AttachmentEnv) -> Result<(), CniError> {
    let records = api.records().await?;
    let recorded = records.iter().find(|r| r.key == env.key);
    let in_sandbox = match env.netns.as_deref() {
        Some(netns) => observe(netns, env.key.ifname.as_str())
            .await?
            .interface
            .is_some(),
        None => false,
    };
    let plan = decide_del(env.netns.as_deref(), recorded, in_sandbox);
    if plan.is_noop() {
        return Ok(());
    }
    if let Some(record) = &plan.release {
        api.detach(record).await?;
    }
    if let Some(netns) = &plan.remove_interface_in {
        remove_interface(netns, env.key.ifname.as_str()).await?;
    }
    Ok(())
}

/// Deletes `ifname` in `netns` if it is still there (the agent's detach removes the
/// pair it made; this is for an interface left without a record).
async fn remove_interface(netns: &str, ifname: &str) -> Result<(), CniError> {
    let Ok(ns) = shoal_dataplane::netns::open(netns) else {
        return Ok(());
    };
    let io = |e: shoal_dataplane::netlink::NetlinkError| CniError::Io {
        what: format!("removing {ifname} in {netns}"),
        details: e.to_string(),
    };
    let nl = Netlink::in_namespace(&ns).map_err(io)?;
    if let Some(index) = nl.index(ifname).await.map_err(io)? {
        nl.delete(index).await.map_err(io)?;
    }
    Ok(())
}

async fn check(api: &Api, config: &NetworkConfig, env: &AttachmentEnv) -> Result<(), CniError> {
    let netns = netns_of(env)?;
    let prev = config
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::InvalidConfig {
            field: "prevResult".into(),
            details: "CHECK needs the ADD result as prevResult".into(),
        })?;
    let expected = expect_from(prev, &env.key.ifname, netns)?;
    if shoal_dataplane::netns::open(netns).is_err() {
        return Err(CniError::UnknownContainer {
            container_id: env.key.container_id.to_string(),
            details: format!("its network namespace {netns} is gone"),
        });
    }
    let observed = observe(netns, env.key.ifname.as_str()).await?;
    let mut differences: Vec<String> = check_differences(&expected, &observed)
        .iter()
        .map(ToString::to_string)
        .collect();
    let records = api.records().await?;
    if !records.iter().any(|r| r.key == env.key) {
        differences.push(format!(
            "the shoal agent holds no attachment for {} on network {}",
            env.key, api.network
        ));
    }
    if differences.is_empty() {
        return check_verdict(&expected, &[]);
    }
    Err(CniError::CheckFailed {
        ifname: expected.ifname,
        netns: expected.netns,
        differences,
    })
}

async fn gc(api: &Api, config: &NetworkConfig) -> Result<(), CniError> {
    let valid = config.valid_attachments.as_deref().unwrap_or_default();
    let records = api.records().await?;
    for stale in gc_stale(&api.network, &records, valid) {
        tracing::info!(attachment = %stale.key, "GC: no longer valid; detaching");
        api.detach(&stale).await?;
    }
    Ok(())
}

async fn status(api: &Api) -> Result<(), CniError> {
    let health = match api.get::<StatusInfo>("/v1/status").await {
        Err(CniError::PluginNotAvailable { reason, .. }) => AgentHealth::Unreachable(reason),
        Err(other) => return Err(other),
        Ok(s) if !s.in_cluster || s.removed => {
            AgentHealth::NotReady("the node is not in a cluster".into())
        }
        Ok(s) if s.leader.is_none() => {
            AgentHealth::NotReady("the cluster has no leader (no quorum of managers)".into())
        }
        Ok(_) => {
            let path = format!("/v1/networks/{}", segment(&api.network));
            match api.get::<NetworkInfo>(&path).await {
                Ok(n) if n.capacity > 0 && n.in_use >= n.capacity => {
                    AgentHealth::AddressesExhausted(n.name)
                }
                Ok(_) => AgentHealth::Ready,
                Err(CniError::InvalidConfig { .. }) => {
                    AgentHealth::NetworkUnknown(api.network.clone())
                }
                Err(other) => return Err(other),
            }
        }
    };
    status_verdict(&health)
}
