//! A member's identity on disk.
//!
//! ```text
//!  <data-dir>/identity.json   node ID, cluster ID, name, role, addresses, known managers
//!  <data-dir>/tls/ca.pem, node.pem, node.key (0600)
//!  <data-dir>/raft/           log, vote, snapshot (managers)
//! ```
//! `identity.json` is written last and removed first: its presence means "member".

use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ids::NodeId;
use crate::state::Role;
use crate::tls::NodeTls;

/// Who this node is in its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The cluster.
    pub cluster_id: String,
    /// This node.
    pub node_id: NodeId,
    /// Its name.
    pub name: String,
    /// The role it runs as.
    pub role: Role,
    /// Its underlay address.
    pub addr: IpAddr,
    /// The control address others dial.
    pub control_addr: SocketAddr,
    /// Where the control server binds.
    pub listen_addr: SocketAddr,
    /// Managers' control addresses, as last known (to find the cluster after a restart).
    pub managers: Vec<SocketAddr>,
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir(pub PathBuf);

impl DataDir {
    fn identity(&self) -> PathBuf {
        self.0.join("identity.json")
    }
    fn tls(&self) -> PathBuf {
        self.0.join("tls")
    }
    /// Where a manager keeps its Raft log and snapshots.
    pub fn raft(&self) -> PathBuf {
        self.0.join("raft")
    }

    /// Loads the identity and TLS material, if this node is a member.
    pub fn load(&self) -> io::Result<Option<(Identity, NodeTls)>> {
        let bytes = match fs::read(self.identity()) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let identity: Identity = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::other(format!("{}: {e}", self.identity().display())))?;
        let read = |name: &str| fs::read_to_string(self.tls().join(name));
        let tls = NodeTls {
            ca_pem: read("ca.pem")?,
            cert_pem: read("node.pem")?,
            key_pem: read("node.key")?,
        };
        Ok(Some((identity, tls)))
    }

    /// Saves TLS material, then the identity (atomically).
    pub fn save(&self, identity: &Identity, tls: &NodeTls) -> io::Result<()> {
        fs::create_dir_all(self.tls())?;
        fs::set_permissions(self.tls(), fs::Permissions::from_mode(0o700))?;
        write_file(&self.tls().join("ca.pem"), tls.ca_pem.as_bytes(), 0o644)?;
        write_file(&self.tls().join("node.pem"), tls.cert_pem.as_bytes(), 0o644)?;
        write_file(&self.tls().join("node.key"), tls.key_pem.as_bytes(), 0o600)?;
        self.save_identity(identity)
    }

    /// Saves the identity alone (atomically).
    pub fn save_identity(&self, identity: &Identity) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(identity).map_err(io::Error::other)?;
        write_file(&self.identity(), &bytes, 0o644)
    }

    /// Removes everything a membership left: identity first, then keys and Raft data.
    pub fn wipe(&self) -> io::Result<()> {
        remove_if_exists(&self.identity())?;
        for dir in [self.tls(), self.raft()] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` via a temporary file, fsynced, with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_wipe_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir(dir.path().to_path_buf());
        assert!(d.load().unwrap().is_none());
        let ip: IpAddr = [198, 18, 0, 1].into();
        let id = Identity {
            cluster_id: "c".into(),
            node_id: NodeId(5),
            name: "n1".into(),
            role: Role::Manager,
            addr: ip,
            control_addr: (ip, 2377).into(),
            listen_addr: (ip, 2377).into(),
            managers: vec![(ip, 2377).into()],
        };
        let tls = NodeTls {
            ca_pem: "ca".into(),
            cert_pem: "cert".into(),
            key_pem: "key".into(),
        };
        d.save(&id, &tls).unwrap();
        let (back, tls_back) = d.load().unwrap().unwrap();
        assert_eq!(back, id);
        assert_eq!(tls_back.key_pem, "key");
        let mode = fs::metadata(dir.path().join("tls/node.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        d.wipe().unwrap();
        assert!(d.load().unwrap().is_none());
    }
}
