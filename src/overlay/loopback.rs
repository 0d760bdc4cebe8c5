//! Published ports on the node's loopback addresses (`curl localhost:8080` on a node).
//!
//! ```text
//!  127.0.0.1:P / [::1]:P ─accept─▶ agent ─connect─▶ node address:P ─publish-local (nat output)─▶ a task
//!  UDP: one connected socket per client, dropped after a minute of silence
//! ```
//! The kernel cannot NAT a connection from 127.0.0.1 to another host without
//! `route_localnet`, which would expose every loopback service to the network (the
//! hole behind CVE-2020-8558). So, like Docker's `docker-proxy`, the agent listens on
//! loopback itself and relays to the node's own address, where the routing mesh's
//! output rules take the connection to a task like any other: its underlay address, or
//! for a port published only in the other family (an IPv6-only network's on an IPv4
//! underlay), the network's gateway of that family on the node's bridge. The relay stops with
//! the agent; published ports on the node's other addresses do not need it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use shoal_control::state::{ClusterState, Network, Protocol};
use shoal_control::{Member, NodeId};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a relayed connection may take to reach the node's address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A UDP flow silent this long is forgotten.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// The most UDP flows one port relays at once.
const MAX_UDP_FLOWS: usize = 1024;
/// A port that could not be bound is tried again after this long.
const RETRY: Duration = Duration::from_secs(10);

/// The ports node `me` answers on, each with the address its relay connects to (see
/// [`target`]): those any service publishes, and those forwarded to its own endpoints
/// (Docker's `-p`). A CNI runtime's ports are left out: podman, as with the reference
/// `portmap` plugin, holds each one itself with a socket on every address once ADD is
/// done, and a relay on 127.0.0.1 would make that bind fail.
pub fn published_ports(
    state: &ClusterState,
    me: NodeId,
    underlay: IpAddr,
) -> BTreeMap<(Protocol, u16), IpAddr> {
    let on = |network: Option<&String>| {
        let net = network.and_then(|n| state.networks.get(n));
        net.map_or(underlay, |n| target(n, underlay))
    };
    let services = state.services.values().flat_map(|s| {
        let to = on(s.spec.networks.first());
        s.spec
            .publish
            .iter()
            .map(move |p| ((p.protocol, p.published), to))
    });
    let forwarded = state
        .endpoints
        .values()
        .filter(|e| e.node == me)
        .filter(|e| !crate::cni::agent::is_cni_owner(e.runtime_id.as_deref()))
        .flat_map(|e| {
            let to = on(Some(&e.network));
            e.ports.iter().map(move |p| ((p.protocol, p.host_port), to))
        });
    let mut out = BTreeMap::new();
    for (port, to) in services.chain(forwarded) {
        out.entry(port).or_insert(to);
    }
    out
}

/// Where the relay of a port published from `network` connects: the node's underlay
/// address where the network has addresses of that family (the port is published in
/// it), else the network's gateway of the other family, which is on this node's bridge
/// and so local like the underlay address (an IPv6-only network's port on a node with
/// an IPv4 underlay, or an IPv4-only one's on an IPv6 underlay): the mesh's output rules
/// take either to a task.
fn target(network: &Network, underlay: IpAddr) -> IpAddr {
    let (v4, v6) = (
        network.space.as_ref().map(|s| IpAddr::V4(s.gateway())),
        network.space6.as_ref().map(|s| IpAddr::V6(s.gateway())),
    );
    let (same, other) = match underlay {
        IpAddr::V4(_) => (v4, v6),
        IpAddr::V6(_) => (v6, v4),
    };
    match (same, other) {
        (None, Some(gateway)) => gateway,
        _ => underlay,
    }
}

/// Keeps a loopback relay for every published port until `stop`.
pub async fn run(member: Arc<Member>, stop: CancellationToken) {
    let mut open: HashMap<(Protocol, u16), (IpAddr, CancellationToken)> = HashMap::new();
    let mut failed: HashMap<(Protocol, u16), Instant> = HashMap::new();
    let mut changes = member.replica().changes();
    loop {
        if member.synced() && !member.is_removed() {
            let underlay = member.identity().addr;
            let want = published_ports(&member.replica().state(), member.node_id, underlay);
            // A port whose relay should connect elsewhere now is bound again.
            open.retain(|port, (to, token)| {
                let keep = want.get(port) == Some(to);
                if !keep {
                    token.cancel();
                }
                keep
            });
            failed.retain(|port, _| want.contains_key(port));
            for (port, to) in want {
                if open.contains_key(&port)
                    || failed.get(&port).is_some_and(|t| *t > Instant::now())
                {
                    continue;
                }
                match relay(port, to, stop.child_token()).await {
                    Ok(token) => {
                        failed.remove(&port);
                        open.insert(port, (to, token));
                    }
                    Err(e) => {
                        if !failed.contains_key(&port) {
                            tracing::warn!(port = port.1, protocol = port.0.as_str(), error = %e, "published port not served on loopback");
                        }
                        failed.insert(port, Instant::now() + RETRY);
                    }
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Binds the relay of one port on 127.0.0.1 (and ::1 where the node has it) and
/// serves it until the returned token is cancelled.
async fn relay(
    (protocol, port): (Protocol, u16),
    target: IpAddr,
    token: CancellationToken,
) -> std::io::Result<CancellationToken> {
    let to = SocketAddr::new(target, port);
    let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port);
    match protocol {
        Protocol::Tcp => {
            let listener = TcpListener::bind(v4).await?;
            tokio::spawn(serve_tcp(listener, to, token.clone()));
            if let Ok(l) = TcpListener::bind(v6).await {
                tokio::spawn(serve_tcp(l, to, token.clone()));
            }
        }
        Protocol::Udp => {
            let socket = UdpSocket::bind(v4).await?;
            tokio::spawn(serve_udp(Arc::new(socket), to, token.clone()));
            if let Ok(s) = UdpSocket::bind(v6).await {
                tokio::spawn(serve_udp(Arc::new(s), to, token.clone()));
            }
        }
    }
    tracing::info!(
        port,
        protocol = protocol.as_str(),
        "published port served on loopback"
    );
    Ok(token)
}

async fn serve_tcp(listener: TcpListener, to: SocketAddr, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((mut client, _)) = accepted else {
            // Out of descriptors and the like: let the moment pass.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let Ok(Ok(mut upstream)) =
                tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await
            else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, to: SocketAddr, stop: CancellationToken) {
    let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let (gone_tx, mut gone) = tokio::sync::mpsc::unbounded_channel::<SocketAddr>();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, client) = tokio::select! {
            _ = stop.cancelled() => return,
            Some(client) = gone.recv() => {
                flows.remove(&client);
                continue;
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(_) => continue,
            },
        };
        let upstream = match flows.get(&client) {
            Some(u) => u.clone(),
            None if flows.len() >= MAX_UDP_FLOWS => continue,
            None => {
                let bind = match to {
                    SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                    SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
                };
                let Ok(u) = UdpSocket::bind(bind).await else {
                    continue;
                };
                if u.connect(to).await.is_err() {
                    continue;
                }
                let u = Arc::new(u);
                flows.insert(client, u.clone());
                tokio::spawn(answer_udp(
                    u.clone(),
                    socket.clone(),
                    client,
                    gone_tx.clone(),
                    stop.clone(),
                ));
                u
            }
        };
        let _ = upstream.send(&buf[..len]).await;
    }
}

/// Sends what the task answers on one flow back to its client, until the flow is idle.
async fn answer_udp(
    upstream: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    gone: tokio::sync::mpsc::UnboundedSender<SocketAddr>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => break,
            r = tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)) => r,
        };
        match received {
            Ok(Ok(len)) => {
                let _ = listener.send_to(&buf[..len], client).await;
            }
            // Idle, or the task refused (ICMP): the flow ends.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let _ = gone.send(client);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::view::tests::{bootstrapped, run};
    use shoal_control::state::{Command, NetworkSpec, PortSpec, ServiceSpec};

    #[test]
    fn the_relay_connects_to_an_address_the_port_is_published_on() {
        let mut s = bootstrapped();
        let networks = [
            ("aaaaaaaa01", "v4", false, None),
            ("aaaaaaaa02", "dual", true, None),
            ("aaaaaaaa03", "v6", true, Some(false)),
        ];
        for (i, (id, name, ipv6, ipv4)) in networks.into_iter().enumerate() {
            let spec = NetworkSpec {
                name: name.into(),
                ipv6,
                ipv4,
                ..Default::default()
            };
            run(
                &mut s,
                Command::CreateNetwork {
                    id: id.into(),
                    spec,
                },
            );
            let spec = ServiceSpec {
                name: format!("svc-{name}"),
                networks: vec![name.into()],
                publish: vec![PortSpec::parse(&format!("{}:80", 8000 + i)).unwrap()],
                ..Default::default()
            };
            let id = format!("bbbbbbbb0{i}");
            run(&mut s, Command::CreateService { id, spec });
        }
        let gateway = |n: &str, v6: bool| -> IpAddr {
            let net = &s.networks[n];
            match v6 {
                false => net.space.as_ref().unwrap().gateway().into(),
                true => net.space6.as_ref().unwrap().gateway().into(),
            }
        };
        let at = |port: u16, underlay: IpAddr| {
            published_ports(&s, NodeId(1), underlay)[&(Protocol::Tcp, port)]
        };
        let (u4, u6): (IpAddr, IpAddr) = (
            "198.18.0.1".parse().unwrap(),
            "fd00:5ea1::1".parse().unwrap(),
        );
        // The underlay address where the network has its family; else the network's
        // gateway of the other family.
        assert_eq!([at(8000, u4), at(8001, u4)], [u4, u4]);
        assert_eq!(
            at(8002, u4),
            gateway("v6", true),
            "IPv6-only, IPv4 underlay"
        );
        assert_eq!([at(8001, u6), at(8002, u6)], [u6, u6]);
        assert_eq!(
            at(8000, u6),
            gateway("v4", false),
            "IPv4-only, IPv6 underlay"
        );
    }
}
