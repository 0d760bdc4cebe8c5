//! The L7 ingress inside the agent: routes from service labels, backends from running
//! tasks, swapped into the proxy on every change; entrypoints from `--ingress-http` and
//! `--ingress-https`. Connections to backends leave from the node's own address on the
//! backend's network (on its bridge; see `overlay::mesh`), so answers come back to this
//! node rather than to the anycast gateway of the task's.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::Ipv4Net;
use shoal_control::state::ClusterState;
use shoal_control::{Member, NodeId};
use shoal_ingress::access_log::AccessLogConfig;
use shoal_ingress::config::{from_labels, Entrypoint, Routes};
use shoal_ingress::{Dialer, Proxy, ProxyOptions};
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

/// Label prefixes that make a service routed.
const PREFIXES: [&str; 2] = ["shoal.http.", "traefik.http."];

/// Whether a service's labels declare HTTP routes.
pub fn routed(labels: &BTreeMap<String, String>) -> bool {
    labels
        .keys()
        .any(|k| PREFIXES.iter().any(|p| k.starts_with(p)))
}

/// Checks a service's route labels before they are stored.
pub fn check_labels(service: &str, labels: &BTreeMap<String, String>) -> Result<(), String> {
    if !routed(labels)
        && !labels
            .keys()
            .any(|k| k == "traefik.enable" || k == "shoal.enable")
    {
        return Ok(());
    }
    from_labels(service, labels, &[])
        .map(|_| ())
        .map_err(|e| format!("bad route labels: {e}"))
}

/// The routes of every routed service in `state`, with the services whose labels are
/// wrong and why. Backends are the service's running tasks on its first network.
pub fn routes(state: &ClusterState) -> (Routes, Vec<(String, String)>) {
    let mut all = Routes::default();
    let mut errors = Vec::new();
    for (name, service) in &state.services {
        if !routed(&service.spec.labels) {
            continue;
        }
        let Some(network) = service.spec.networks.first() else {
            errors.push((name.clone(), "the service is on no network".into()));
            continue;
        };
        let backends: Vec<IpAddr> = crate::overlay::view::backends(state, name, network)
            .into_iter()
            .map(|(ip, _)| IpAddr::V4(ip))
            .collect();
        let result = from_labels(name, &service.spec.labels, &backends)
            .map_err(|e| e.to_string())
            .and_then(|r| all.merge(r).map_err(|e| e.to_string()));
        if let Err(e) = result {
            errors.push((name.clone(), e));
        }
    }
    (all, errors)
}

/// This node's own address on each network: a backend connection leaves from the one
/// on the backend's network.
type Sources = Arc<ArcSwap<Vec<(Ipv4Net, Ipv4Addr)>>>;

/// The node's own addresses in `state`, by network subnet.
fn sources(state: &ClusterState, me: NodeId) -> Vec<(Ipv4Net, Ipv4Addr)> {
    state
        .endpoints
        .values()
        .filter(|e| e.node == me && e.ingress)
        .filter_map(|e| Some((state.networks.get(&e.network)?.space.subnet(), e.ip)))
        .collect()
}

/// Opens backend connections bound to this node's address on the backend's network.
fn dialer(sources: Sources) -> Dialer {
    Dialer::new(move |addr| {
        let from = match addr.ip() {
            IpAddr::V4(ip) => sources
                .load()
                .iter()
                .find(|(net, _)| net.contains(&ip))
                .map(|(_, from)| *from),
            IpAddr::V6(_) => None,
        };
        Box::pin(async move {
            let from = from.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("this node has no address on the network of backend {addr} yet"),
                )
            })?;
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
            socket.connect(addr).await
        })
    })
}

/// The ingress: its proxy and entrypoints.
pub struct Ingress {
    proxy: Arc<Proxy>,
    sources: Sources,
    entrypoints: BTreeMap<String, Entrypoint>,
}

impl Ingress {
    /// A proxy whose backend connections leave from this node's own addresses; `http`
    /// and `https` become the entrypoints `web` and `websecure` (the latter with
    /// `certificates`).
    pub fn new(
        http: Option<SocketAddr>,
        https: Option<SocketAddr>,
        certificates: Vec<(PathBuf, PathBuf)>,
        access_log: Option<AccessLogConfig>,
    ) -> anyhow::Result<Ingress> {
        let sources: Sources = Arc::default();
        let proxy = Proxy::new(ProxyOptions {
            dialer: dialer(sources.clone()),
            access_log,
            ..Default::default()
        })?;
        let mut entrypoints = BTreeMap::new();
        if let Some(address) = http {
            entrypoints.insert(
                "web".to_string(),
                Entrypoint {
                    address,
                    certificates: Vec::new(),
                },
            );
        }
        if let Some(address) = https {
            anyhow::ensure!(
                !certificates.is_empty(),
                "--ingress-https needs at least one --ingress-cert CERT_FILE:KEY_FILE"
            );
            entrypoints.insert(
                "websecure".to_string(),
                Entrypoint {
                    address,
                    certificates,
                },
            );
        }
        Ok(Ingress {
            proxy,
            sources,
            entrypoints,
        })
    }

    /// The proxy.
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Binds the entrypoints; fails if one cannot be bound or its certificates loaded.
    pub async fn start(&self) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let started = self.proxy.start(&self.entrypoints).await?;
        for s in &started {
            tracing::info!(entrypoint = %s.entrypoint, address = %s.address, "ingress listening");
        }
        Ok(started.into_iter().map(|s| s.task).collect())
    }

    /// Follows the cluster state: routes are rebuilt and swapped in on every change.
    pub async fn follow(self: Arc<Self>, member: Arc<Member>, stop: CancellationToken) {
        let mut changes = member.replica().changes();
        let mut last: Option<Routes> = None;
        let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
        loop {
            if member.synced() {
                let state = member.replica().state();
                self.sources
                    .store(Arc::new(sources(&state, member.node_id)));
                let (routes, errors) = routes(&state);
                for e in &errors {
                    if !reported.contains(e) {
                        tracing::warn!(service = %e.0, error = %e.1, "ignoring the routes of a service");
                    }
                }
                reported = errors.into_iter().collect();
                if last.as_ref() != Some(&routes) {
                    match self.proxy.update(routes.clone()) {
                        Ok(()) => last = Some(routes),
                        Err(e) => tracing::warn!(error = %e, "routes refused"),
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }
}
