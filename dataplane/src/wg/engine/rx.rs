//! The receive path: datagrams from peers to the networks' TAPs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use boringtun::noise::TunnResult;

use super::{Peer, Shared, Tables, COOKIE_REPLY, DATA, HANDSHAKE_INIT, HANDSHAKE_RESP};
use crate::wg::packet::{self as frame, Coalescer};
use crate::wg::tap::Tap;
use crate::wg::udp::{Received, BATCH, MSG_BUF};

pub(super) fn peer_for<'a>(
    tables: &'a Tables,
    datagram: &[u8],
    from: SocketAddr,
) -> Option<&'a Arc<Peer>> {
    let index = |at: usize| -> Option<u32> {
        let b = datagram.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) >> 8)
    };
    match *datagram.first()? {
        HANDSHAKE_INIT => tables.by_endpoint.get(&from),
        HANDSHAKE_RESP => tables.by_index.get(&index(8)?),
        COOKIE_REPLY | DATA => tables.by_index.get(&index(4)?),
        _ => None,
    }
}

pub(super) fn receive_loop(shared: &Shared) {
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; MSG_BUF]).collect();
    let mut got: Vec<Received> = Vec::with_capacity(BATCH);
    let mut plain = vec![0u8; MSG_BUF];
    let mut coalescers: HashMap<u32, Coalescer> = HashMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let n = match shared.socket.recv_batch(&mut bufs, &mut got) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "WireGuard receive failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if n == 0 {
            continue;
        }
        let tables = shared.tables.load();
        let taps = shared.taps.load();
        for (i, r) in got.iter().enumerate() {
            let data = &bufs[i][..r.len];
            let step = if r.segment > 0 { r.segment } else { r.len };
            for datagram in data.chunks(step.max(1)) {
                shared.counters.rx_datagrams.fetch_add(1, Ordering::Relaxed);
                receive_one(
                    shared,
                    &tables,
                    &taps,
                    &mut coalescers,
                    datagram,
                    r.from,
                    &mut plain,
                );
            }
        }
        for (vni, c) in coalescers.iter_mut() {
            if let Some(tap) = taps.get(vni) {
                c.flush(&mut |out: &[u8]| {
                    let _ = tap.write(out);
                });
            }
        }
    }
}

fn receive_one(
    shared: &Shared,
    tables: &Tables,
    taps: &HashMap<u32, Arc<Tap>>,
    coalescers: &mut HashMap<u32, Coalescer>,
    datagram: &[u8],
    from: SocketAddr,
    plain: &mut [u8],
) {
    let Some(peer) = peer_for(tables, datagram, from) else {
        shared
            .counters
            .rx_unknown_peer
            .fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut tunn = peer.tunn.lock().unwrap_or_else(|e| e.into_inner());
    match tunn.decapsulate(Some(from.ip()), datagram, plain) {
        TunnResult::WriteToNetwork(pkt) => {
            let _ = shared.socket.send(peer.endpoint, pkt);
            let mut more = vec![0u8; MSG_BUF];
            while let TunnResult::WriteToNetwork(p) = tunn.decapsulate(None, &[], &mut more) {
                let _ = shared.socket.send(peer.endpoint, p);
            }
        }
        TunnResult::WriteToTunnelV4(inner, src) => {
            if src != peer.mesh_ip {
                shared
                    .counters
                    .rx_wrong_source
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            drop(tunn);
            match frame::decap_vxlan(inner, tables.vxlan_port) {
                Ok((_, vni, eth)) => match (tables.nets.get(&vni), taps.get(&vni)) {
                    (Some(_), Some(tap)) => {
                        peer.rx_bytes.fetch_add(eth.len() as u64, Ordering::Relaxed);
                        coalescers
                            .entry(vni)
                            .or_default()
                            .push(eth, &mut |out: &[u8]| {
                                let _ = tap.write(out);
                            });
                    }
                    _ => {
                        shared.counters.rx_not_ours.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Err(_) => {
                    shared.counters.rx_not_ours.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        TunnResult::WriteToTunnelV6(..) => {
            shared.counters.rx_not_ours.fetch_add(1, Ordering::Relaxed);
        }
        TunnResult::Err(_) => {
            shared.counters.rx_invalid.fetch_add(1, Ordering::Relaxed);
        }
        TunnResult::Done => {}
    }
}
