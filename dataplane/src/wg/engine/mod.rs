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
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use boringtun::noise::{Tunn, TunnResult};

use super::keys::{public_from_base64, KeyError, KeyPair};
use super::plan::{EncryptedNetwork, WgPlan};
use super::tap::Tap;
use super::udp::UdpSocket;

mod rx;
#[cfg(test)]
mod tests;
mod tx;

use rx::receive_loop;
use tx::send_loop;

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
/// Seconds between keepalives to every peer (WireGuard's persistent keepalive).
pub const PERSISTENT_KEEPALIVE: u16 = 25;

/// A peer node.
pub struct Peer {
    /// Its name.
    pub name: String,
    /// Its public key, base64.
    pub public_key: String,
    /// Its WireGuard endpoint.
    pub endpoint: SocketAddr,
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
    pub endpoint: SocketAddr,
    /// Its public key.
    pub public_key: String,
    /// Its mesh address: the only inner source accepted from it (its allowed IP).
    pub mesh_ip: Ipv4Addr,
    /// Seconds between keepalives sent to it, if any.
    pub keepalive: Option<u16>,
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
    ndp: HashMap<std::net::Ipv6Addr, [u8; 6]>,
}

struct Tables {
    mesh_ip: Ipv4Addr,
    vxlan_port: u16,
    by_index: HashMap<u32, Arc<Peer>>,
    by_endpoint: HashMap<SocketAddr, Arc<Peer>>,
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
    port: u16,
    plan: Mutex<WgPlan>,
    key: Mutex<Option<KeyPair>>,
    taps: Mutex<HashMap<u32, TapHandle>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_index: AtomicU32,
}

/// What an [`Engine::update`] did.
#[derive(Debug, Default)]
pub struct Update {
    /// Networks whose TAP could not be created, with why.
    pub failed: Vec<(u32, String)>,
    /// Whether new TAPs were created (they still need plugging into their bridges).
    pub opened: bool,
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
    Key(#[from] KeyError),
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
            port,
            plan: Mutex::new(WgPlan::default()),
            key: Mutex::new(None),
            taps: Mutex::new(HashMap::new()),
            threads: Mutex::new(threads),
            next_index: AtomicU32::new(1),
        }))
    }

    /// Makes the engine follow `plan`: peers whose key did not change keep their
    /// sessions, new TAPs are created, dropped ones closed.
    pub fn update(&self, plan: &WgPlan) -> Result<Update, EngineError> {
        let mut current = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        let key = KeyPair::from_private_base64(&plan.private_key)?;
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
                    let public = public_from_base64(&p.public_key)?;
                    let index = self.next_index.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
                    let tunn = Tunn::new(
                        key.private.clone(),
                        public,
                        None,
                        Some(PERSISTENT_KEEPALIVE),
                        index,
                        None,
                    );
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
        let mut opened = false;
        let mut nets = HashMap::new();
        let mut taps = self.taps.lock().unwrap_or_else(|e| e.into_inner());
        for n in &plan.networks {
            if let std::collections::hash_map::Entry::Vacant(slot) = taps.entry(n.vni) {
                match self.open_tap(n) {
                    Ok(h) => {
                        slot.insert(h);
                        opened = true;
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
            let arp = n
                .remotes
                .iter()
                .filter_map(|(mac, ip, _)| Some(((*ip)?, *mac)))
                .collect();
            let ndp = n.neighbours6.iter().copied().collect();
            nets.insert(
                n.vni,
                Arc::new(Net {
                    vni: n.vni,
                    mtu: n.mtu as usize,
                    by_mac,
                    arp,
                    ndp,
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
        Ok(Update { failed, opened })
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
                    mesh_ip: p.mesh_ip,
                    keepalive: Some(PERSISTENT_KEEPALIVE),
                    last_handshake: handshake,
                    rx_bytes: p.rx_bytes.load(Ordering::Relaxed),
                    tx_bytes: p.tx_bytes.load(Ordering::Relaxed),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The UDP port the WireGuard socket listens on.
    pub fn listen_port(&self) -> u16 {
        self.port
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
