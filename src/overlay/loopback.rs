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
//! output rules take the connection to a task like any other. The relay stops with
//! the agent; published ports on the node's other addresses do not need it.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use shoal_control::state::{ClusterState, Protocol};
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

/// The ports node `me` answers on: those any service publishes, and those forwarded to
/// its own endpoints (Docker's `-p`). A CNI runtime's ports are left out: podman, as
/// with the reference `portmap` plugin, holds each one itself with a socket on every
/// address once ADD is done, and a relay on 127.0.0.1 would make that bind fail.
pub fn published_ports(state: &ClusterState, me: NodeId) -> BTreeSet<(Protocol, u16)> {
    let services = state
        .services
        .values()
        .flat_map(|s| s.spec.publish.iter())
        .map(|p| (p.protocol, p.published));
    let forwarded = state
        .endpoints
        .values()
        .filter(|e| e.node == me)
        .filter(|e| !crate::cni::agent::is_cni_owner(e.runtime_id.as_deref()))
        .flat_map(|e| e.ports.iter().map(|p| (p.protocol, p.host_port)));
    services.chain(forwarded).collect()
}

/// Keeps a loopback relay for every published port until `stop`.
pub async fn run(member: Arc<Member>, stop: CancellationToken) {
    let mut open: HashMap<(Protocol, u16), CancellationToken> = HashMap::new();
    let mut failed: HashMap<(Protocol, u16), Instant> = HashMap::new();
    let mut changes = member.replica().changes();
    loop {
        if member.synced() && !member.is_removed() {
            let want = published_ports(&member.replica().state(), member.node_id);
            let target = member.identity().addr;
            open.retain(|port, token| {
                let keep = want.contains(port);
                if !keep {
                    token.cancel();
                }
                keep
            });
            failed.retain(|port, _| want.contains(port));
            for port in want {
                if open.contains_key(&port)
                    || failed.get(&port).is_some_and(|t| *t > Instant::now())
                {
                    continue;
                }
                match relay(port, target, stop.child_token()).await {
                    Ok(token) => {
                        failed.remove(&port);
                        open.insert(port, token);
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
