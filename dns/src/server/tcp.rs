//! DNS over TCP (RFC 7766): each message framed by a two-byte length; several queries
//! per connection, answered in order; idle connections closed; a bounded number open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::Shared;
use crate::answer::{answer, Outcome, QueryContext, Transport};

/// Pause after a failed accept (e.g. out of file descriptors) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections forever (the listener aborts it, and so its connections).
pub(super) async fn serve(shared: Arc<Shared>, listener: TcpListener, network: Arc<str>) {
    let slots = Arc::new(Semaphore::new(shared.config.max_tcp_connections));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "TCP accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many TCP connections, closing");
            continue;
        };
        let (shared, network) = (shared.clone(), network.clone());
        connections.spawn(async move {
            if let Err(e) = connection(&shared, stream, peer, &network).await {
                tracing::debug!(%peer, error = %e, "TCP connection ended");
            }
            drop(slot);
        });
    }
}

/// Answers queries on one connection until the client closes it, it idles, or it sends
/// something that gets no reply.
async fn connection(
    shared: &Shared,
    mut stream: TcpStream,
    peer: SocketAddr,
    network: &str,
) -> std::io::Result<()> {
    let idle = shared.config.tcp_idle_timeout;
    let mut query = Vec::new();
    let mut out = Vec::new();
    loop {
        let Ok(len) = timeout(idle, stream.read_u16()).await else {
            return Ok(());
        };
        query.resize(usize::from(len?), 0);
        timeout(idle, stream.read_exact(&mut query)).await??;
        let ctx = QueryContext {
            client: peer.ip(),
            network,
            transport: Transport::Tcp,
            max_udp_payload: shared.config.max_udp_payload,
        };
        let outcome = answer(&shared.table.load(), &query, &ctx, &mut out);
        shared.counters.decided(&outcome);
        match outcome {
            Outcome::Reply(_) => write_framed(&mut stream, &out).await?,
            Outcome::Forward(fq) => {
                shared.counters.forwarded();
                let reply = shared
                    .forward_or_servfail(&query, &fq, Transport::Tcp, peer.ip())
                    .await;
                write_framed(&mut stream, &reply).await?;
            }
            Outcome::Drop(_) => return Ok(()),
        }
    }
}

/// Writes one length-prefixed message in a single write.
async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "reply over 65535 bytes")
    })?;
    let mut framed = Vec::with_capacity(2 + message.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}
