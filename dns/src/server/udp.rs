//! The UDP fast path: one tight receive → answer → send loop per worker, all workers on
//! one socket. Answers from the table are written into a buffer the loop reuses;
//! forwarded queries leave the loop as their own (bounded) task.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::Shared;
use crate::answer::{answer, ForwardQuery, Outcome, QueryContext, Transport};

/// Largest query datagram read; a longer one is cut here and then fails to parse.
const RECV_BUF: usize = 4096;

/// Serves UDP queries on `socket` forever (the listener aborts it to stop).
pub(super) async fn serve(shared: Arc<Shared>, socket: Arc<UdpSocket>, network: Arc<str>) {
    let mut buf = vec![0; RECV_BUF];
    let mut out = Vec::with_capacity(usize::from(shared.config.max_udp_payload));
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let query = &buf[..len];
        let ctx = QueryContext {
            client: peer.ip(),
            network: &network,
            transport: Transport::Udp,
            max_udp_payload: shared.config.max_udp_payload,
        };
        let outcome = answer(&shared.table.load(), query, &ctx, &mut out);
        shared.counters.decided(&outcome);
        match outcome {
            Outcome::Reply(_) => {
                if let Err(e) = socket.send_to(&out, peer).await {
                    tracing::debug!(%peer, error = %e, "UDP send failed");
                }
            }
            Outcome::Forward(fq) => spawn_forward(&shared, &socket, query, fq, peer),
            Outcome::Drop(_) => {}
        }
    }
}

/// Hands a query to the upstreams in its own task, unless too many are in flight
/// already (then it is dropped: the client will retry, and a flood does not pile up).
fn spawn_forward(
    shared: &Arc<Shared>,
    socket: &Arc<UdpSocket>,
    query: &[u8],
    fq: ForwardQuery,
    peer: SocketAddr,
) {
    let Ok(permit) = shared.forwards.clone().try_acquire_owned() else {
        shared.counters.dropped();
        return;
    };
    shared.counters.forwarded();
    let (shared, socket, query) = (shared.clone(), socket.clone(), query.to_vec());
    tokio::spawn(async move {
        let reply = shared
            .forward_or_servfail(&query, &fq, Transport::Udp)
            .await;
        drop(permit);
        if let Err(e) = socket.send_to(&reply, peer).await {
            tracing::debug!(%peer, error = %e, "UDP send of a forwarded reply failed");
        }
    });
}
