//! The encrypted data path: frames from a network's TAP are cut into wire frames,
//! wrapped in IPv4/UDP/VXLAN between mesh addresses, encrypted with WireGuard
//! (`boringtun::noise`) and sent with UDP GSO; datagrams from peers are decrypted,
//! checked against the sending peer's mesh address, unwrapped, coalesced back into
//! superframes and written to the TAP.
//!
//! ```text
//!  TAP ─read─▶ segment ─▶ [ARP? answer locally] ─▶ encap_vxlan ─▶ Tunn::encapsulate ─▶ send_gso ─▶ peer
//!  peer ─recv_batch─▶ Tunn::decapsulate ─▶ src == peer mesh? ─▶ decap_vxlan ─▶ Coalescer ─▶ TAP
//! ```
//! Fail closed: a frame for a MAC with no peer, or for a peer without a session, is never
//! sent in the clear; boringtun queues it while it handshakes. Datagrams from unknown
//! senders, with bad authentication or with a wrong inner source are dropped and counted.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use boringtun::noise::{Tunn, TunnResult};

use super::keys::{public_from_base64, KeyPair};
use super::packet::{self as frame, Coalescer, VnetHdr};
use super::plan::{EncryptedNetwork, WgPlan};
use super::tap::{Tap, VNET_HDR_LEN};
use super::udp::{Received, UdpSocket, BATCH, MSG_BUF};

/// WireGuard message types (first byte, little-endian u32).
const HANDSHAKE_INIT: u8 = 1;
const HANDSHAKE_RESP: u8 = 2;
const COOKIE_REPLY: u8 = 3;
const DATA: u8 = 4;
/// WireGuard's transport overhead: header 16 + tag 16 (and padding to 16).
const WG_OVERHEAD: usize = 32;
/// The largest message boringtun may write instead of a data packet.
const HANDSHAKE_ROOM: usize = 148;
/// How often boringtun's timers run.
const TICK: Duration = Duration::from_millis(100);

/// A peer node.
pub struct Peer {
    /// Its name.
    pub name: String,
    /// Its public key, base64.
    pub public_key: String,
    /// Its WireGuard endpoint.
    pub endpoint: SocketAddrV4,
    /// Its mesh address.
    pub mesh_ip: Ipv4Addr,
    index: u32,
    tunn: Mutex<Tunn>,
    rx_bytes: AtomicU64,
    tx_bytes: AtomicU64,
}

/// What `shoal status` and the metrics show about a peer.
#[derive(Debug, Clone)]
pub struct PeerStats {
    /// The peer's name.
    pub name: String,
    /// Its endpoint.
    pub endpoint: SocketAddrV4,
    /// Its public key.
    pub public_key: String,
    /// Time since the last completed handshake.
    pub last_handshake: Option<Duration>,
    /// Payload bytes received from it.
    pub rx_bytes: u64,
    /// Payload bytes sent to it.
    pub tx_bytes: u64,
}

/// Dropped-packet counters, by reason.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams from no known peer.
    pub rx_unknown_peer: AtomicU64,
    /// Datagrams that did not authenticate or parse as WireGuard.
    pub rx_invalid: AtomicU64,
    /// Decrypted packets whose source is not the peer's mesh address.
    pub rx_wrong_source: AtomicU64,
    /// Decrypted packets that are not VXLAN for a network this node carries.
    pub rx_not_ours: AtomicU64,
    /// Frames with no peer to go to (unknown MAC, flooding, no key).
    pub tx_no_route: AtomicU64,
    /// Frames the TAP gave that could not be cut into wire frames.
    pub tx_malformed: AtomicU64,
    /// Datagrams sent and received.
    pub tx_datagrams: AtomicU64,
    /// Datagrams received.
    pub rx_datagrams: AtomicU64,
}

struct Net {
    vni: u32,
    mtu: usize,
    by_mac: HashMap<[u8; 6], Arc<Peer>>,
    arp: HashMap<Ipv4Addr, [u8; 6]>,
}

struct Tables {
    mesh_ip: Ipv4Addr,
    vxlan_port: u16,
    by_index: HashMap<u32, Arc<Peer>>,
    by_endpoint: HashMap<SocketAddrV4, Arc<Peer>>,
    by_mesh: HashMap<Ipv4Addr, Arc<Peer>>,
    nets: HashMap<u32, Arc<Net>>,
}

struct TapHandle {
    tap: Arc<Tap>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    socket: UdpSocket,
    tables: ArcSwap<Tables>,
    taps: ArcSwap<HashMap<u32, Arc<Tap>>>,
    counters: Counters,
}

/// A running encrypted data path.
pub struct Engine {
    shared: Arc<Shared>,
    plan: Mutex<WgPlan>,
    key: Mutex<Option<KeyPair>>,
    taps: Mutex<HashMap<u32, TapHandle>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_index: AtomicU32,
}

/// Why the engine could not do what was asked.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The WireGuard socket could not be opened.
    #[error("cannot open the WireGuard socket on port {port}: {source}")]
    Socket {
        /// The port.
        port: u16,
        /// Why.
        source: io::Error,
    },
    /// A TAP device could not be created.
    #[error("cannot create TAP {name}: {source}")]
    Tap {
        /// Its name.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// The plan holds a key that is not a key.
    #[error("bad WireGuard key: {0}")]
    Key(String),
}

impl Engine {
    /// Opens the WireGuard socket and starts the receive and timer threads.
    pub fn start(port: u16) -> Result<Arc<Engine>, EngineError> {
        let socket = UdpSocket::bind(port, Duration::from_millis(200))
            .map_err(|source| EngineError::Socket { port, source })?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            socket,
            tables: ArcSwap::from_pointee(Tables {
                mesh_ip: Ipv4Addr::UNSPECIFIED,
                vxlan_port: 4789,
                by_index: HashMap::new(),
                by_endpoint: HashMap::new(),
                by_mesh: HashMap::new(),
                nets: HashMap::new(),
            }),
            taps: ArcSwap::from_pointee(HashMap::new()),
            counters: Counters::default(),
        });
        let rx = {
            let s = shared.clone();
            std::thread::Builder::new()
                .name("wg-rx".into())
                .spawn(move || receive_loop(&s))
        };
        let timers = {
            let s = shared.clone();
            std::thread::Builder::new()
                .name("wg-timers".into())
                .spawn(move || timer_loop(&s))
        };
        let threads = [rx, timers]
            .into_iter()
            .collect::<io::Result<Vec<_>>>()
            .map_err(|source| EngineError::Socket { port, source })?;
        Ok(Arc::new(Engine {
            shared,
            plan: Mutex::new(WgPlan::default()),
            key: Mutex::new(None),
            taps: Mutex::new(HashMap::new()),
            threads: Mutex::new(threads),
            next_index: AtomicU32::new(1),
        }))
    }

    /// Makes the engine follow `plan`: peers whose key did not change keep their
    /// sessions, new TAPs are created, dropped ones closed. Returns the networks whose TAP
    /// could not be created, with why.
    pub fn update(&self, plan: &WgPlan) -> Result<Vec<(u32, String)>, EngineError> {
        let mut current = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        let key = KeyPair::from_private_base64(&plan.private_key).map_err(EngineError::Key)?;
        let key_changed = current.private_key != plan.private_key;
        *self.key.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.clone());
        let old = self.shared.tables.load_full();
        let mut by_mesh = HashMap::new();
        let mut by_index = HashMap::new();
        let mut by_endpoint = HashMap::new();
        // Peers that need a handshake now rather than when traffic first waits for one:
        // new ones, and all of them when this node's key changed.
        let mut greet = Vec::new();
        for p in &plan.peers {
            let keep = old
                .by_mesh
                .get(&p.mesh_ip)
                .filter(|o| o.public_key == p.public_key && o.endpoint == p.endpoint)
                .cloned();
            let peer = match keep {
                Some(peer) => {
                    if key_changed {
                        peer.tunn
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .set_static_private(key.private.clone(), key.public, None);
                        greet.push(peer.clone());
                    }
                    peer
                }
                None => {
                    let public = public_from_base64(&p.public_key).map_err(EngineError::Key)?;
                    let index = self.next_index.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
                    let tunn = Tunn::new(key.private.clone(), public, None, Some(25), index, None);
                    let peer = Arc::new(Peer {
                        name: p.name.clone(),
                        public_key: p.public_key.clone(),
                        endpoint: p.endpoint,
                        mesh_ip: p.mesh_ip,
                        index,
                        tunn: Mutex::new(tunn),
                        rx_bytes: AtomicU64::new(0),
                        tx_bytes: AtomicU64::new(0),
                    });
                    greet.push(peer.clone());
                    peer
                }
            };
            by_index.insert(peer.index, peer.clone());
            by_endpoint.insert(peer.endpoint, peer.clone());
            by_mesh.insert(peer.mesh_ip, peer);
        }
        let mut failed = Vec::new();
        let mut nets = HashMap::new();
        let mut taps = self.taps.lock().unwrap_or_else(|e| e.into_inner());
        for n in &plan.networks {
            if let std::collections::hash_map::Entry::Vacant(slot) = taps.entry(n.vni) {
                match self.open_tap(n) {
                    Ok(h) => {
                        slot.insert(h);
                    }
                    Err(e) => {
                        failed.push((n.vni, e.to_string()));
                        continue;
                    }
                }
            }
            let by_mac = n
                .remotes
                .iter()
                .filter_map(|(mac, _, node)| by_mesh.get(node).map(|p| (*mac, p.clone())))
                .collect();
            let arp = n.remotes.iter().map(|(mac, ip, _)| (*ip, *mac)).collect();
            nets.insert(
                n.vni,
                Arc::new(Net {
                    vni: n.vni,
                    mtu: n.mtu as usize,
                    by_mac,
                    arp,
                }),
            );
        }
        let gone: Vec<u32> = taps
            .keys()
            .filter(|v| !nets.contains_key(v))
            .copied()
            .collect();
        for vni in gone {
            if let Some(mut h) = taps.remove(&vni) {
                h.stop.store(true, Ordering::Relaxed);
                if let Some(t) = h.thread.take() {
                    let _ = t.join();
                }
            }
        }
        self.shared.taps.store(Arc::new(
            taps.iter().map(|(v, h)| (*v, h.tap.clone())).collect(),
        ));
        self.shared.tables.store(Arc::new(Tables {
            mesh_ip: plan.mesh_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            vxlan_port: plan.vxlan_port,
            by_index,
            by_endpoint,
            by_mesh,
            nets,
        }));
        *current = plan.clone();
        let mut buf = [0u8; HANDSHAKE_ROOM];
        for peer in greet {
            let mut tunn = peer.tunn.lock().unwrap_or_else(|e| e.into_inner());
            if let TunnResult::WriteToNetwork(msg) =
                tunn.format_handshake_initiation(&mut buf, false)
            {
                let _ = self.shared.socket.send(peer.endpoint, msg);
            }
        }
        Ok(failed)
    }

    fn open_tap(&self, n: &EncryptedNetwork) -> Result<TapHandle, EngineError> {
        let tap = Arc::new(Tap::open(&n.tap).map_err(|source| EngineError::Tap {
            name: n.tap.clone(),
            source,
        })?);
        let stop = Arc::new(AtomicBool::new(false));
        let (s, t, st, vni) = (self.shared.clone(), tap.clone(), stop.clone(), n.vni);
        let thread = std::thread::Builder::new()
            .name(format!("wg-tx-{vni}"))
            .spawn(move || send_loop(&s, &t, &st, vni))
            .map_err(|source| EngineError::Tap {
                name: n.tap.clone(),
                source,
            })?;
        Ok(TapHandle {
            tap,
            stop,
            thread: Some(thread),
        })
    }

    /// Every peer's state.
    pub fn peers(&self) -> Vec<PeerStats> {
        let tables = self.shared.tables.load();
        let mut out: Vec<PeerStats> = tables
            .by_mesh
            .values()
            .map(|p| {
                let (handshake, ..) = p.tunn.lock().unwrap_or_else(|e| e.into_inner()).stats();
                PeerStats {
                    name: p.name.clone(),
                    endpoint: p.endpoint,
                    public_key: p.public_key.clone(),
                    last_handshake: handshake,
                    rx_bytes: p.rx_bytes.load(Ordering::Relaxed),
                    tx_bytes: p.tx_bytes.load(Ordering::Relaxed),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The drop counters.
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Stops every thread and closes every TAP.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut taps = self.taps.lock().unwrap_or_else(|e| e.into_inner());
        for (_, mut h) in taps.drain() {
            h.stop.store(true, Ordering::Relaxed);
            if let Some(t) = h.thread.take() {
                let _ = t.join();
            }
        }
        self.shared.taps.store(Arc::new(HashMap::new()));
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = t.join();
        }
    }
}

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

fn send_loop(shared: &Shared, tap: &Tap, stop: &AtomicBool, vni: u32) {
    let mut read_buf = vec![0u8; VNET_HDR_LEN + 65_535 + 64];
    let mut scratch = vec![0u8; 65_536 + 256];
    let mut inner = vec![0u8; 65_536];
    let mut batch = Batch {
        buf: vec![0u8; 65_535],
        len: 0,
        segment: 0,
        peer: None,
    };
    let mut reply = [0u8; VNET_HDR_LEN + 64];
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
            if let Some(target) = super::arp::request_target(seg) {
                if let Some(mac) = net.arp.get(&target) {
                    VnetHdr::default().write(&mut reply[..VNET_HDR_LEN]);
                    if let Some(len) = super::arp::reply(seg, *mac, &mut reply[VNET_HDR_LEN..]) {
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

fn peer_for<'a>(tables: &'a Tables, datagram: &[u8], from: SocketAddrV4) -> Option<&'a Arc<Peer>> {
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

fn receive_loop(shared: &Shared) {
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
    from: SocketAddrV4,
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
    match tunn.decapsulate(Some(std::net::IpAddr::V4(*from.ip())), datagram, plain) {
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

fn timer_loop(shared: &Shared) {
    let mut buf = vec![0u8; 2048];
    let mut next = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        next += TICK;
        let tables = shared.tables.load();
        for peer in tables.by_mesh.values() {
            let mut tunn = peer.tunn.lock().unwrap_or_else(|e| e.into_inner());
            if let TunnResult::WriteToNetwork(pkt) = tunn.update_timers(&mut buf) {
                let _ = shared.socket.send(peer.endpoint, pkt);
            }
        }
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        } else {
            next = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const THEIRS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 51820);

    /// Our tunnel to them and theirs to us, with a completed handshake.
    fn pair() -> (Arc<Peer>, Tunn) {
        let (ours, theirs) = (KeyPair::generate(), KeyPair::generate());
        let mut a = Tunn::new(ours.private.clone(), theirs.public, None, None, 7, None);
        let mut b = Tunn::new(theirs.private.clone(), ours.public, None, None, 9, None);
        let (mut m1, mut m2, mut m3) = ([0u8; 256], [0u8; 256], [0u8; 256]);
        let TunnResult::WriteToNetwork(init) = a.format_handshake_initiation(&mut m1, false) else {
            panic!("no initiation");
        };
        let TunnResult::WriteToNetwork(resp) = b.decapsulate(None, init, &mut m2) else {
            panic!("no response");
        };
        // The response completes our side; the keepalive we answer with completes theirs.
        if let TunnResult::WriteToNetwork(keepalive) = a.decapsulate(None, resp, &mut m3) {
            let _ = b.decapsulate(None, keepalive, &mut m2);
        }
        let peer = Arc::new(Peer {
            name: "n2".into(),
            public_key: theirs.public_base64(),
            endpoint: THEIRS,
            mesh_ip: Ipv4Addr::new(100, 96, 0, 2),
            index: 7,
            tunn: Mutex::new(a),
            rx_bytes: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
        });
        (peer, b)
    }

    fn tables(peer: &Arc<Peer>) -> Tables {
        Tables {
            mesh_ip: Ipv4Addr::new(100, 96, 0, 1),
            vxlan_port: 4789,
            by_index: HashMap::from([(peer.index, peer.clone())]),
            by_endpoint: HashMap::from([(peer.endpoint, peer.clone())]),
            by_mesh: HashMap::from([(peer.mesh_ip, peer.clone())]),
            nets: HashMap::new(),
        }
    }

    /// An IPv4/UDP packet from their mesh address, sealed by their tunnel.
    fn sealed(b: &mut Tunn) -> Vec<u8> {
        let mut ip = vec![0u8; 60];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&60u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[100, 96, 0, 2]);
        ip[16..20].copy_from_slice(&[100, 96, 0, 1]);
        let mut out = vec![0u8; 256];
        match b.encapsulate(&ip, &mut out) {
            TunnResult::WriteToNetwork(d) => d.to_vec(),
            _ => panic!("no session"),
        }
    }

    fn opens(peer: &Peer, datagram: &[u8]) -> bool {
        let mut plain = vec![0u8; MSG_BUF];
        let mut tunn = peer.tunn.lock().unwrap();
        matches!(
            tunn.decapsulate(None, datagram, &mut plain),
            TunnResult::WriteToTunnelV4(..) | TunnResult::WriteToTunnelV6(..)
        )
    }

    #[test]
    fn a_sealed_packet_opens_once_and_a_replay_does_not() {
        let (peer, mut b) = pair();
        let t = tables(&peer);
        let d = sealed(&mut b);
        assert!(peer_for(&t, &d, THEIRS).is_some());
        assert!(opens(&peer, &d));
        assert!(!opens(&peer, &d), "a replayed datagram was accepted");
    }

    #[test]
    fn handshakes_from_unknown_endpoints_find_no_peer() {
        let (peer, _) = pair();
        let t = tables(&peer);
        let stranger = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 9), 51820);
        let mut init = vec![0u8; 148];
        init[0] = HANDSHAKE_INIT;
        assert!(peer_for(&t, &init, stranger).is_none());
        assert!(peer_for(&t, &init, THEIRS).is_some());
        assert!(peer_for(&t, &[], THEIRS).is_none());
        assert!(peer_for(&t, &[DATA, 0, 0], THEIRS).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn garbage_never_opens(bytes in proptest::collection::vec(any::<u8>(), 0..400), kind in 0u8..6) {
            let (peer, _) = pair();
            let t = tables(&peer);
            let mut d = bytes;
            if let Some(first) = d.first_mut() {
                *first = kind;
            }
            if let Some(p) = peer_for(&t, &d, THEIRS) {
                prop_assert!(!opens(p, &d));
            }
        }

        #[test]
        fn damaged_or_cut_packets_never_open(at in 0usize..120, flip in 1u8..=255, cut in 0usize..120) {
            let (peer, mut b) = pair();
            let t = tables(&peer);
            let good = sealed(&mut b);
            let mut flipped = good.clone();
            let i = at % flipped.len();
            flipped[i] ^= flip;
            let truncated = &good[..cut.min(good.len() - 1)];
            for d in [&flipped[..], truncated] {
                if let Some(p) = peer_for(&t, d, THEIRS) {
                    prop_assert!(!opens(p, d));
                }
            }
            prop_assert!(opens(&peer, &good));
        }
    }
}
