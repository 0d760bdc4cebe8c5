//! The encrypted data path's place in the agent: started when this node carries an
//! encrypted network, fed the WireGuard plan on every reconciliation, stopped when no
//! longer needed. Endpoints on an encrypted network it cannot serve are reported as
//! failed, so `attach` rolls them back instead of leaving them unreachable. While it
//! runs, `wg show <interface>` reads it through the UAPI socket ([`super::uapi`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shoal_control::api::StatusSection;
use shoal_control::Member;
use shoal_dataplane::overlay::NodePlan;
use shoal_dataplane::wg::engine::{Engine, PeerStats};

use super::keys::KeyFile;
use super::uapi::UapiSocket;
use super::view::wg_plan;

/// The title of the WireGuard section of `shoal status` starts with this.
pub const STATUS_TITLE: &str = "WireGuard peers";

/// Drop and packet counters, by name.
pub type Counters = Vec<(&'static str, u64)>;

/// The encrypted data path of this node, while it runs.
pub struct Encrypted {
    keys: KeyFile,
    /// The name `wg` knows the data path by (its UAPI socket's name).
    interface: String,
    engine: Mutex<Option<Arc<Engine>>>,
    uapi: Mutex<Option<UapiSocket>>,
    /// Shut down for good: a reconciliation still in flight starts nothing again.
    closed: std::sync::atomic::AtomicBool,
}

impl Encrypted {
    /// Not running yet; keys come from `keys`; `wg show interface` will show it.
    pub fn new(keys: KeyFile, interface: String) -> Encrypted {
        Encrypted {
            keys,
            interface,
            engine: Mutex::new(None),
            uapi: Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn engine(&self) -> Option<Arc<Engine>> {
        self.engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts, updates or stops the data path for `plan`; returns endpoint failures and
    /// whether new TAPs were made (to be plugged into their bridges).
    pub async fn reconcile(
        &self,
        member: &Member,
        plan: &NodePlan,
        vxlan_port: u16,
    ) -> (HashMap<String, String>, bool) {
        let mut failures = HashMap::new();
        let mut opened = false;
        let encrypted: Vec<u32> = plan
            .networks
            .iter()
            .filter(|n| n.encrypted)
            .map(|n| n.vni)
            .collect();
        if encrypted.is_empty() {
            self.stop();
            return (failures, false);
        }
        let fail_all = |failures: &mut HashMap<String, String>, why: &str| {
            for e in plan.endpoints.iter().filter(|e| encrypted.contains(&e.vni)) {
                failures.insert(e.id.clone(), why.to_string());
            }
        };
        let Some((key, _)) = self.keys.load() else {
            fail_all(&mut failures, "this node has no WireGuard key yet");
            return (failures, false);
        };
        let state = member.replica().state();
        let wg = wg_plan(&state, member.node_id, &key.private_base64(), vxlan_port);
        if wg.port == 0 || wg.mesh_ip.is_none() {
            fail_all(
                &mut failures,
                "this node's WireGuard key is not announced yet",
            );
            return (failures, false);
        }
        let engine = match self.engine() {
            Some(e) => e,
            None => match Engine::start(wg.port) {
                Ok(e) => {
                    let mut slot = self.engine.lock().unwrap_or_else(|e| e.into_inner());
                    if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
                        // The agent stopped while this pass ran: nothing starts again.
                        e.stop();
                        return (failures, false);
                    }
                    *slot = Some(e.clone());
                    drop(slot);
                    self.serve_uapi(e.clone());
                    e
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the encrypted data path");
                    fail_all(&mut failures, &e.to_string());
                    return (failures, false);
                }
            },
        };
        match tokio::task::spawn_blocking(move || engine.update(&wg)).await {
            Ok(Ok(update)) => {
                opened = update.opened;
                for (vni, why) in update.failed {
                    for e in plan.endpoints.iter().filter(|e| e.vni == vni) {
                        failures.insert(e.id.clone(), why.clone());
                    }
                }
            }
            Ok(Err(e)) => fail_all(&mut failures, &e.to_string()),
            Err(e) => fail_all(&mut failures, &e.to_string()),
        }
        (failures, opened)
    }

    /// Serves `wg show` for `engine`; the data path runs without it if it cannot.
    fn serve_uapi(&self, engine: Arc<Engine>) {
        let socket = match UapiSocket::start(&self.interface, engine) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(interface = %self.interface, error = %e, "`wg show` will not see this node: cannot serve the WireGuard UAPI socket");
                None
            }
        };
        let mut slot = self.uapi.lock().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            // Shut down meanwhile; dropping the socket removes its file.
            return;
        }
        *slot = socket;
    }

    /// Stops the data path and its UAPI socket for good (the agent stops): a
    /// reconciliation still in flight starts neither again.
    pub fn shutdown(&self) {
        // Taken under the engine's lock, so a pass either sees the flag or its engine
        // is there for `stop` to take.
        {
            let _slot = self.engine.lock().unwrap_or_else(|e| e.into_inner());
            self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.stop();
    }

    /// Stops the data path (its TAPs disappear with it) and its UAPI socket.
    pub fn stop(&self) {
        if let Some(s) = self.uapi.lock().unwrap_or_else(|e| e.into_inner()).take() {
            s.stop();
        }
        if let Some(e) = self.engine.lock().unwrap_or_else(|e| e.into_inner()).take() {
            e.stop();
        }
    }

    /// Peers and counters, while running.
    pub fn peers(&self) -> Option<(Vec<PeerStats>, Counters)> {
        let engine = self.engine()?;
        let c = engine.counters();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let counters = vec![
            ("rx_datagrams", load(&c.rx_datagrams)),
            ("tx_datagrams", load(&c.tx_datagrams)),
            ("rx_unknown_peer", load(&c.rx_unknown_peer)),
            ("rx_invalid", load(&c.rx_invalid)),
            ("rx_wrong_source", load(&c.rx_wrong_source)),
            ("rx_not_ours", load(&c.rx_not_ours)),
            ("tx_no_route", load(&c.tx_no_route)),
            ("tx_malformed", load(&c.tx_malformed)),
        ];
        Some((engine.peers(), counters))
    }

    /// `shoal status`: every peer with endpoint, handshake age, bytes in and out.
    pub fn status(&self) -> Option<StatusSection> {
        let (peers, counters) = self.peers()?;
        let mut rows: Vec<(String, String)> = peers
            .iter()
            .map(|p| {
                let handshake = match p.last_handshake {
                    Some(d) => format!("latest handshake {}s ago", d.as_secs()),
                    None => "no handshake yet".into(),
                };
                (
                    p.name.clone(),
                    format!(
                        "{} {handshake}, {} B in, {} B out",
                        p.endpoint, p.rx_bytes, p.tx_bytes
                    ),
                )
            })
            .collect();
        let dropped: Vec<String> = counters
            .iter()
            .filter(|(k, v)| *v > 0 && !k.ends_with("datagrams"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rows.push((
            "dropped".into(),
            if dropped.is_empty() {
                "nothing".into()
            } else {
                dropped.join(" ")
            },
        ));
        Some(StatusSection {
            title: format!(
                "{STATUS_TITLE} (encrypted networks; `wg show {}`)",
                self.interface
            ),
            rows,
        })
    }
}
