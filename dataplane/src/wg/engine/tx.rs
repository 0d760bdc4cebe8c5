//! The send path: frames from a network's TAP to peers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use boringtun::noise::TunnResult;

use super::{Peer, Shared, DATA, HANDSHAKE_ROOM, WG_OVERHEAD};
use crate::wg::packet::{self as frame, VnetHdr};
use crate::wg::tap::{Tap, VNET_HDR_LEN};

/// Outgoing datagrams to one peer, packed for one GSO send.
struct Batch {
    buf: Vec<u8>,
    len: usize,
    segment: usize,
    peer: Option<Arc<Peer>>,
}

impl Batch {
    fn flush(&mut self, shared: &Shared) {
        if let (Some(peer), true) = (&self.peer, self.len > 0) {
            match shared
                .socket
                .send_gso(peer.endpoint, &self.buf[..self.len], self.segment)
            {
                Ok(()) => {
                    let n = self.len.div_ceil(self.segment.max(1)) as u64;
                    shared.counters.tx_datagrams.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(peer = %peer.name, error = %e, "WireGuard send failed"),
            }
        }
        self.len = 0;
        self.segment = 0;
        self.peer = None;
    }
}

pub(super) fn send_loop(shared: &Shared, tap: &Tap, stop: &AtomicBool, vni: u32) {
    let mut read_buf = vec![0u8; VNET_HDR_LEN + 65_535 + 64];
    let mut scratch = vec![0u8; 65_536 + 256];
    let mut inner = vec![0u8; 65_536];
    let mut batch = Batch {
        buf: vec![0u8; 65_535],
        len: 0,
        segment: 0,
        peer: None,
    };
    let mut reply = [0u8; VNET_HDR_LEN + 96];
    while !stop.load(Ordering::Relaxed) && !shared.stop.load(Ordering::Relaxed) {
        match tap.readable(200) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(vni, error = %e, "TAP poll failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let n = match tap.read(&mut read_buf) {
            Ok(n) if n > VNET_HDR_LEN => n,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(vni, error = %e, "TAP read failed");
                continue;
            }
        };
        let tables = shared.tables.load();
        let Some(net) = tables.nets.get(&vni) else {
            continue;
        };
        let Ok(hdr) = VnetHdr::parse(&read_buf[..VNET_HDR_LEN]) else {
            shared.counters.tx_malformed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let frame = &read_buf[VNET_HDR_LEN..n];
        let mut emit = |seg: &[u8]| {
            if let Some(target) = crate::wg::arp::request_target(seg) {
                if let Some(mac) = net.arp.get(&target) {
                    VnetHdr::default().write(&mut reply[..VNET_HDR_LEN]);
                    if let Some(len) = crate::wg::arp::reply(seg, *mac, &mut reply[VNET_HDR_LEN..])
                    {
                        let _ = tap.write(&reply[..VNET_HDR_LEN + len]);
                    }
                }
                return;
            }
            if let Some(target) = crate::wg::ndp::solicitation_target(seg) {
                if let Some(mac) = net.ndp.get(&target) {
                    VnetHdr::default().write(&mut reply[..VNET_HDR_LEN]);
                    let out = &mut reply[VNET_HDR_LEN..];
                    if let Some(len) = crate::wg::ndp::advertisement(seg, *mac, out) {
                        let _ = tap.write(&reply[..VNET_HDR_LEN + len]);
                    }
                }
                return;
            }
            let mut dst = [0u8; 6];
            dst.copy_from_slice(&seg[..6]);
            let Some(peer) = net.by_mac.get(&dst) else {
                shared.counters.tx_no_route.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let port = frame::flow_port(seg);
            let Ok(len) = frame::encap_vxlan(
                &mut inner,
                tables.mesh_ip,
                peer.mesh_ip,
                port,
                tables.vxlan_port,
                net.vni,
                seg,
            ) else {
                shared.counters.tx_malformed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            // boringtun does not pad: a data packet is the inner packet plus 32 bytes. It
            // also needs room for a handshake message (148 bytes) in case it has no session.
            let wire = len + WG_OVERHEAD;
            let same_peer = batch.peer.as_ref().is_some_and(|p| Arc::ptr_eq(p, peer));
            let room = batch.buf.len() - batch.len;
            if batch.len > 0
                && (!same_peer || room < wire.max(HANDSHAKE_ROOM) || wire > batch.segment)
            {
                batch.flush(shared);
            }
            let mut tunn = peer.tunn.lock().unwrap_or_else(|e| e.into_inner());
            let out = &mut batch.buf[batch.len..];
            match tunn.encapsulate(&inner[..len], out) {
                TunnResult::WriteToNetwork(pkt) => {
                    let pkt_len = pkt.len();
                    if pkt_len == wire && pkt[0] == DATA {
                        peer.tx_bytes.fetch_add(seg.len() as u64, Ordering::Relaxed);
                        if batch.len == 0 {
                            batch.segment = pkt_len;
                            batch.peer = Some(peer.clone());
                        }
                        batch.len += pkt_len;
                        if pkt_len < batch.segment {
                            drop(tunn);
                            batch.flush(shared);
                        }
                    } else {
                        // A handshake initiation: the frame waits in boringtun's queue.
                        let msg = pkt.to_vec();
                        drop(tunn);
                        let _ = shared.socket.send(peer.endpoint, &msg);
                    }
                }
                TunnResult::Err(e) => {
                    tracing::debug!(peer = %peer.name, error = ?e, "encapsulate failed")
                }
                _ => {}
            }
        };
        if frame::segment(&hdr, frame, net.mtu, &mut scratch, &mut emit).is_err() {
            shared.counters.tx_malformed.fetch_add(1, Ordering::Relaxed);
        }
        batch.flush(shared);
    }
}
