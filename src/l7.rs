//! The L7 ingress inside the agent: routes from service labels, backends from running
//! tasks, swapped into the proxy on every change; entrypoints from `--ingress-http` and
//! `--ingress-https`. Connections to backends leave from the node's ingress sandbox
//! (`<prefix>ingress`), which has an address of its own on each routed network, so
//! answers come back to this node rather than to the anycast gateway of the task's.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shoal_control::state::ClusterState;
use shoal_control::Member;
use shoal_dataplane::netns;
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

/// Opens backend connections from sockets made inside the namespace at `ns` (a socket
/// keeps the namespace it was made in).
fn dialer(ns: PathBuf) -> Dialer {
    Dialer::new(move |addr| {
        let ns = ns.clone();
        Box::pin(async move {
            let socket = tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&ns)?;
                netns::run_in(&file, move || {
                    if addr.is_ipv4() {
                        TcpSocket::new_v4()
                    } else {
                        TcpSocket::new_v6()
                    }
                })?
            })
            .await
            .map_err(io::Error::other)??;
            socket.connect(addr).await
        })
    })
}

/// The ingress: its proxy and entrypoints.
pub struct Ingress {
    proxy: Arc<Proxy>,
    entrypoints: BTreeMap<String, Entrypoint>,
}

impl Ingress {
    /// A proxy whose backend connections leave from namespace `ns`; `http` and `https`
    /// become the entrypoints `web` and `websecure` (the latter with `certificates`).
    pub fn new(
        ns: &str,
        http: Option<SocketAddr>,
        https: Option<SocketAddr>,
        certificates: Vec<(PathBuf, PathBuf)>,
    ) -> anyhow::Result<Ingress> {
        let proxy = Proxy::new(ProxyOptions {
            dialer: dialer(netns::path_of(ns)),
            ..Default::default()
        })
        .context("cannot set up the ingress metrics")?;
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
        Ok(Ingress { proxy, entrypoints })
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
                let (routes, errors) = routes(&member.replica().state());
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
