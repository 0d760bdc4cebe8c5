//! This node's WireGuard key: kept in the data directory (0600), announced to the cluster,
//! replaced when the cluster's key generation moves (`cluster rotate-keys` or the periodic
//! rotation). The private key never leaves the node.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_control::api::LeaderRequest;
use shoal_control::state::Command;
use shoal_control::Member;
use shoal_dataplane::wg::keys::KeyPair;
use tokio_util::sync::CancellationToken;

use super::error::OverlayError;

/// The stored key and the generation it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    private_key: String,
    generation: u64,
}

/// The node's key file.
#[derive(Debug, Clone)]
pub struct KeyFile(PathBuf);

impl KeyFile {
    /// The key file in `data_dir`.
    pub fn new(data_dir: &Path) -> KeyFile {
        KeyFile(data_dir.join("wireguard.json"))
    }

    /// The current key pair and its generation, if any.
    pub fn load(&self) -> Option<(KeyPair, u64)> {
        let bytes = std::fs::read(&self.0).ok()?;
        let s: Stored = serde_json::from_slice(&bytes).ok()?;
        KeyPair::from_private_base64(&s.private_key)
            .ok()
            .map(|k| (k, s.generation))
    }

    fn save(&self, key: &KeyPair, generation: u64) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = self.0.with_extension("tmp");
        let body = serde_json::to_vec(&Stored {
            private_key: key.private_base64(),
            generation,
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.0)
    }

    /// Removes the key (the node left its cluster).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Keeps this node's announced key current.
pub async fn run(member: Arc<Member>, keys: KeyFile, port: u16, stop: CancellationToken) {
    let mut changes = member.replica().changes();
    // The key as last loaded or saved: reading the file and deriving the public key on
    // every change of the cluster state would cost every node that much per change.
    let mut held: Option<(KeyPair, u64)> = None;
    loop {
        if member.synced() {
            if let Err(e) = step(&member, &keys, &mut held, port).await {
                tracing::warn!(error = %e, "WireGuard key not announced yet; will retry");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

async fn step(
    member: &Member,
    keys: &KeyFile,
    held: &mut Option<(KeyPair, u64)>,
    port: u16,
) -> Result<(), OverlayError> {
    let state = member.replica().state();
    let Some(me) = state.nodes.get(&member.node_id) else {
        return Ok(());
    };
    let want = state.key_generation;
    if held.is_none() {
        *held = keys.load();
    }
    let (key, generation) = match held.take() {
        Some((k, g)) if g >= want => (k, g),
        old => {
            let key = KeyPair::generate();
            keys.save(&key, want).map_err(OverlayError::StoreKey)?;
            if old.is_some() {
                tracing::info!(generation = want, "made a new WireGuard key (rotation)");
            }
            (key, want)
        }
    };
    let public = key.public_base64();
    *held = Some((key, generation));
    let current = me.wireguard.as_ref();
    if current
        .is_some_and(|w| w.public_key == public && w.port == port && w.generation == generation)
    {
        return Ok(());
    }
    let command = Command::SetWireguard {
        id: member.node_id,
        public_key: public,
        port,
        generation,
    };
    member
        .submit(LeaderRequest::Propose { command }, Some(member.node_id))
        .await?;
    Ok(())
}
