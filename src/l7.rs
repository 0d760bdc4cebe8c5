//! The L7 ingress inside the agent: routes from service labels, backends from running
//! tasks, swapped into the proxy on every change; entrypoints from `--ingress-http` and
//! `--ingress-https`, TCP ones from `--ingress-tcp`. Connections to backends leave from
//! the node's own address on the backend's network (on its bridge; see
//! `overlay::mesh`), so answers come back to this node rather than to the anycast
//! gateway of the task's.
//!
//! With `--ingress-docker`, the local dockerd's containers and Swarm services add their
//! routes ([`crate::docker::provider`]); they are this node's own, reached straight
//! from the node (not through a node address of the mesh's).
//!
//! ```text
//!  cluster state ─▶ routes(state) ──┐
//!                                   ├─▶ combine (the cluster's names win) ─▶ proxy.update
//!  Docker events ─▶ Docker routes ──┘
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use shoal_control::state::ClusterState;
use shoal_control::{Member, NodeId};
use shoal_ingress::access_log::AccessLogConfig;
use shoal_ingress::config::docker::combine;
use shoal_ingress::config::{from_labels, Entrypoint, Routes, Trust};
use shoal_ingress::proxy::TracingOptions;
use shoal_ingress::{Dialer, Proxy, ProxyOptions};
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

/// Label prefixes that make a service routed.
const PREFIXES: [&str; 4] = ["shoal.http.", "traefik.http.", "shoal.tcp.", "traefik.tcp."];

/// Whether a service's labels declare HTTP or TCP routes.
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
/// wrong and why. Backends are the service's running tasks on its first network: their
/// IPv4 addresses, on an IPv6-only network their IPv6 ones.
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
        let backends: Vec<IpAddr> = if state.networks.get(network).is_some_and(|n| n.ipv6_only()) {
            crate::overlay::view::backends6(state, name, network)
                .into_iter()
                .map(IpAddr::V6)
                .collect()
        } else {
            crate::overlay::view::backends(state, name, network)
                .into_iter()
                .map(|(ip, _)| IpAddr::V4(ip))
                .collect()
        };
        let result = from_labels(name, &service.spec.labels, &backends)
            .map_err(|e| e.to_string())
            .and_then(|r| all.merge(r).map_err(|e| e.to_string()));
        if let Err(e) = result {
            errors.push((name.clone(), e));
        }
    }
    (all, errors)
}

/// This node's own addresses on each network, by subnet (IPv4 and IPv6): a backend
/// connection leaves from the one on the backend's subnet.
type Sources = Arc<ArcSwap<Vec<(IpNet, IpAddr)>>>;

/// Where backends are: every overlay network's subnet, and the Docker backends (this
/// node's own containers, reached straight from the node).
#[derive(Debug, Default)]
struct Reach {
    /// Every overlay subnet, IPv4 and IPv6.
    overlays: Vec<IpNet>,
    docker: BTreeSet<IpAddr>,
}

/// The node's own addresses in `state`, by network subnet, in both families.
fn sources(state: &ClusterState, me: NodeId) -> Vec<(IpNet, IpAddr)> {
    state
        .endpoints
        .values()
        .filter(|e| e.node == me && e.ingress)
        .filter_map(|e| Some((state.networks.get(&e.network)?, e)))
        .flat_map(|(n, e)| {
            let v4 = n.subnet().map(IpNet::V4).zip(e.ip.map(IpAddr::V4));
            let v6 = n.space6.as_ref().map(|s| IpNet::V6(s.subnet()));
            v4.into_iter().chain(v6.zip(e.ip6.map(IpAddr::V6)))
        })
        .collect()
}

/// How a backend connection is opened.
enum Dial {
    /// Bound to this node's address on the backend's network (of the backend's family).
    From(IpAddr),
    /// As the kernel routes it (a Docker backend, or one outside every overlay).
    Straight,
    /// A task on an overlay network this node has no address on yet.
    NoSource,
}

fn plan(addr: SocketAddr, sources: &Sources, reach: &ArcSwap<Reach>) -> Dial {
    let ip = addr.ip();
    if let Some((_, from)) = sources.load().iter().find(|(net, _)| net.contains(&ip)) {
        return Dial::From(*from);
    }
    let reach = reach.load();
    // A backend outside every overlay (IPv6 too, like `[2001:db8::7]:80`) is dialled
    // as the kernel routes it; a task on an overlay this node has no address on (in
    // the backend's family) has nothing to come from.
    let on_overlay = reach.overlays.iter().any(|n| n.contains(&addr.ip()));
    if reach.docker.contains(&addr.ip()) || !on_overlay {
        Dial::Straight
    } else {
        Dial::NoSource
    }
}

/// Opens backend connections bound to this node's address on the backend's network.
fn dialer(sources: Sources, reach: Arc<ArcSwap<Reach>>) -> Dialer {
    Dialer::new(move |addr| {
        let plan = plan(addr, &sources, &reach);
        Box::pin(async move {
            match plan {
                Dial::From(from) => {
                    let socket = match from {
                        IpAddr::V4(_) => TcpSocket::new_v4()?,
                        IpAddr::V6(_) => TcpSocket::new_v6()?,
                    };
                    socket.bind(SocketAddr::new(from, 0))?;
                    socket.connect(addr).await
                }
                Dial::Straight => tokio::net::TcpStream::connect(addr).await,
                Dial::NoSource => Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("this node has no address on the network of backend {addr} yet"),
                )),
            }
        })
    })
}

/// The routes of each source, and what was last swapped in.
#[derive(Default)]
struct Published {
    cluster: Routes,
    docker: Routes,
    last: Option<Routes>,
    reported: BTreeSet<String>,
}

/// The ingress: its proxy and entrypoints.
pub struct Ingress {
    proxy: Arc<Proxy>,
    sources: Sources,
    reach: Arc<ArcSwap<Reach>>,
    entrypoints: BTreeMap<String, Entrypoint>,
    /// TCP entrypoints (`--ingress-tcp`), for `tcp.routers` labels.
    tcp_entrypoints: BTreeMap<String, Entrypoint>,
    published: std::sync::Mutex<Published>,
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
        tracing: Option<TracingOptions>,
        limits: &crate::cli::args::ClientLimitsArgs,
    ) -> anyhow::Result<Ingress> {
        let sources: Sources = Arc::default();
        let reach: Arc<ArcSwap<Reach>> = Arc::default();
        let proxy = Proxy::new(limits.apply(ProxyOptions {
            dialer: dialer(sources.clone(), reach.clone()),
            access_log,
            tracing,
            ..Default::default()
        }))?;
        let mut entrypoints = BTreeMap::new();
        if let Some(address) = http {
            entrypoints.insert("web".to_string(), Entrypoint::new(address));
        }
        if let Some(address) = https {
            anyhow::ensure!(
                !certificates.is_empty(),
                "--ingress-https needs at least one --ingress-cert CERT_FILE:KEY_FILE"
            );
            entrypoints.insert(
                "websecure".to_string(),
                Entrypoint {
                    certificates,
                    ..Entrypoint::new(address)
                },
            );
        }
        Ok(Ingress {
            proxy,
            sources,
            reach,
            entrypoints,
            tcp_entrypoints: BTreeMap::new(),
            published: Default::default(),
        })
    }

    /// Adds the TCP entrypoints `tcp` (`--ingress-tcp NAME=IP:PORT`); `certificates`
    /// serve TCP routers that terminate TLS there.
    pub fn with_tcp(
        mut self,
        tcp: &[(String, SocketAddr)],
        certificates: Vec<(PathBuf, PathBuf)>,
    ) -> anyhow::Result<Ingress> {
        for (name, address) in tcp {
            anyhow::ensure!(
                !self.entrypoints.contains_key(name),
                "--ingress-tcp {name}: the HTTP entrypoint has this name"
            );
            let entrypoint = Entrypoint {
                certificates: certificates.clone(),
                ..Entrypoint::new(*address)
            };
            anyhow::ensure!(
                self.tcp_entrypoints
                    .insert(name.clone(), entrypoint)
                    .is_none(),
                "--ingress-tcp {name} is given twice"
            );
        }
        Ok(self)
    }

    /// Every entrypoint (HTTP and TCP) reads PROXY headers as `proxy_protocol` says
    /// (`--ingress-proxy-protocol-…`); the HTTP ones keep the forwarding headers of
    /// the clients `forwarded_headers` trusts (`--ingress-forwarded-headers-…`).
    pub fn with_trust(
        mut self,
        proxy_protocol: Option<Trust>,
        forwarded_headers: Trust,
    ) -> Ingress {
        for ep in self.entrypoints.values_mut() {
            ep.proxy_protocol = proxy_protocol.clone();
            ep.forwarded_headers = forwarded_headers.clone();
        }
        for ep in self.tcp_entrypoints.values_mut() {
            ep.proxy_protocol = proxy_protocol.clone();
        }
        self
    }

    /// Where each entrypoint (HTTP and TCP) listens.
    pub fn entrypoints(&self) -> BTreeMap<String, SocketAddr> {
        self.entrypoints
            .iter()
            .chain(&self.tcp_entrypoints)
            .map(|(name, e)| (name.clone(), e.address))
            .collect()
    }

    /// The proxy.
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Binds the entrypoints; fails if one cannot be bound or its certificates loaded.
    pub async fn start(&self) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut started = self.proxy.start(&self.entrypoints).await?;
        started.extend(self.proxy.start_tcp(&self.tcp_entrypoints).await?);
        for s in &started {
            tracing::info!(entrypoint = %s.entrypoint, address = %s.address, "ingress listening");
        }
        Ok(started.into_iter().map(|s| s.task).collect())
    }

    /// Follows the cluster state: routes are rebuilt and swapped in on every change.
    pub async fn follow(self: Arc<Self>, member: Arc<Member>, stop: CancellationToken) {
        let mut changes = member.replica().changes();
        let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
        loop {
            if member.synced() {
                let state = member.replica().state();
                self.sources
                    .store(Arc::new(sources(&state, member.node_id)));
                let overlays: Vec<IpNet> = state
                    .networks
                    .values()
                    .flat_map(|n| {
                        let v6 = n.space6.as_ref().map(|s| IpNet::V6(s.subnet()));
                        n.subnet().map(IpNet::V4).into_iter().chain(v6)
                    })
                    .collect();
                self.reach.rcu(|r| Reach {
                    overlays: Vec::clone(&overlays),
                    docker: r.docker.clone(),
                });
                let (routes, errors) = routes(&state);
                for e in &errors {
                    if !reported.contains(e) {
                        tracing::warn!(service = %e.0, error = %e.1, "ignoring the routes of a service");
                    }
                }
                reported = errors.into_iter().collect();
                self.publish(|p| p.cluster = routes);
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    /// Takes the routes of the local dockerd's containers and Swarm services.
    pub fn set_docker(&self, routes: Routes) {
        let backends: BTreeSet<IpAddr> = routes
            .services
            .values()
            .flat_map(|s| s.servers.iter().map(|b| b.addr.ip()))
            .collect();
        self.reach.rcu(|r| Reach {
            overlays: r.overlays.clone(),
            docker: backends.clone(),
        });
        self.publish(|p| p.docker = routes);
    }

    /// Changes one source with `change`, then swaps the combined routes in if they
    /// differ from those in force.
    fn publish(&self, change: impl FnOnce(&mut Published)) {
        let mut p = self.published.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut p);
        let (all, messages) = combine(&p.cluster, &p.docker);
        let messages: BTreeSet<String> = messages.into_iter().collect();
        for m in messages.difference(&p.reported) {
            tracing::warn!(problem = %m, "route left out");
        }
        p.reported = messages;
        if p.last.as_ref() != Some(&all) {
            match self.proxy.update(all.clone()) {
                Ok(()) => p.last = Some(all),
                Err(e) => tracing::warn!(error = %e, "routes refused"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn backends_are_dialled_from_the_node_address_on_their_overlay_or_straight() {
        let sources: Sources = Arc::new(ArcSwap::from_pointee(vec![
            ("10.0.1.0/24".parse().unwrap(), "10.0.1.3".parse().unwrap()),
            (
                "fd12:3456:789a:2::/64".parse().unwrap(),
                "fd12:3456:789a:2::3".parse().unwrap(),
            ),
        ]));
        let reach = ArcSwap::from_pointee(Reach {
            overlays: vec![
                "10.0.1.0/24".parse().unwrap(),
                "10.0.2.0/24".parse().unwrap(),
                "fd12:3456:789a:1::/64".parse().unwrap(),
                "fd12:3456:789a:2::/64".parse().unwrap(),
            ],
            docker: BTreeSet::new(),
        });
        let dial = |a: &str| plan(a.parse().unwrap(), &sources, &reach);
        assert!(matches!(dial("10.0.1.7:80"), Dial::From(ip) if ip == Ipv4Addr::new(10, 0, 1, 3)));
        let from6: IpAddr = "fd12:3456:789a:2::3".parse().unwrap();
        assert!(
            matches!(dial("[fd12:3456:789a:2::7]:80"), Dial::From(ip) if ip == from6),
            "a task on an IPv6-only network, from the node's IPv6 address on it"
        );
        assert!(matches!(dial("10.0.2.7:80"), Dial::NoSource));
        assert!(matches!(dial("192.0.2.7:80"), Dial::Straight));
        assert!(
            matches!(dial("[2001:db8::7]:80"), Dial::Straight),
            "an IPv6 backend outside the overlays"
        );
        assert!(
            matches!(dial("[fd12:3456:789a:1::7]:80"), Dial::NoSource),
            "no IPv6 address of the node's on that network yet"
        );
    }
}
