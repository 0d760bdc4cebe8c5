//! The Raft state machine: applies committed proposals to the cluster state, publishes
//! them to the node's [`Replica`], and builds and installs snapshots (written to disk
//! atomically, fsynced).

use std::fs;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, EntryPayload, RaftLogId, RaftSnapshotBuilder, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{ApplyResult, Entry, LogId, StorageError, TypeConfig};
use crate::state::{apply, ClusterState, Proposal, Secrets};
use crate::watch::Replica;

/// What a snapshot holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SmData {
    /// The last entry applied.
    pub last_applied: Option<LogId>,
    /// The membership as of `last_applied`.
    pub membership: StoredMembership<u64, BasicNode>,
    /// The public cluster state.
    pub state: ClusterState,
    /// The managers-only part.
    pub secrets: Secrets,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, BasicNode>,
    data: SmData,
}

/// The state machine of one manager.
#[derive(Clone)]
pub struct StateMachine {
    data: Arc<Mutex<SmData>>,
    replica: Arc<Replica>,
    dir: PathBuf,
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageError::from(StorageIOError::write_state_machine(&e))
}

fn snap_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageError::from(StorageIOError::write_snapshot(None, &e))
}

impl StateMachine {
    /// Opens the state machine in `dir`, restoring the latest snapshot, and resets
    /// `replica` to it.
    pub fn open(dir: &Path, replica: Arc<Replica>) -> io::Result<StateMachine> {
        fs::create_dir_all(dir)?;
        let data = match fs::read(dir.join("snapshot.json")) {
            Ok(bytes) => {
                serde_json::from_slice::<SnapshotFile>(&bytes)
                    .map_err(io::Error::other)?
                    .data
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => SmData::default(),
            Err(e) => return Err(e),
        };
        if data.state.revision > replica.revision() || !replica.state().is_initialised() {
            replica.reset(data.state.clone());
        }
        Ok(StateMachine {
            data: Arc::new(Mutex::new(data)),
            replica,
            dir: dir.to_path_buf(),
        })
    }

    /// The managers-only secrets as of the last applied entry.
    pub fn secrets(&self) -> Secrets {
        self.lock().secrets.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SmData> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_snapshot(&self, file: &SnapshotFile) -> io::Result<()> {
        let bytes = serde_json::to_vec(file).map_err(io::Error::other)?;
        let tmp = self.dir.join("snapshot.json.tmp");
        {
            use std::io::Write;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join("snapshot.json"))?;
        fs::File::open(&self.dir)?.sync_all()
    }

    fn read_snapshot_file(&self) -> io::Result<Option<SnapshotFile>> {
        match fs::read(self.dir.join("snapshot.json")) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).map_err(io::Error::other)?,
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = self.lock().clone();
        let id = match data.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, data.state.revision),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: data.last_applied,
            last_membership: data.membership.clone(),
            snapshot_id: id,
        };
        let bytes = serde_json::to_vec(&data).map_err(snap_err)?;
        let file = SnapshotFile {
            meta: meta.clone(),
            data,
        };
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_snapshot(&file))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, BasicNode>), StorageError> {
        let data = self.lock();
        Ok((data.last_applied, data.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut results = Vec::new();
        let mut data = self.lock();
        for entry in entries {
            let log_id = *entry.get_log_id();
            data.last_applied = Some(log_id);
            let result = match entry.payload {
                EntryPayload::Blank => ApplyResult(Ok(crate::state::Applied {
                    revision: data.state.revision,
                    output: crate::state::Output::None,
                })),
                EntryPayload::Membership(m) => {
                    data.membership = StoredMembership::new(Some(log_id), m);
                    ApplyResult(Ok(crate::state::Applied {
                        revision: data.state.revision,
                        output: crate::state::Output::None,
                    }))
                }
                EntryPayload::Normal(proposal) => {
                    let SmData { state, secrets, .. } = &mut *data;
                    let outcome = apply(state, Some(secrets), &proposal);
                    if outcome.is_ok() {
                        let redacted = Proposal {
                            at_ms: proposal.at_ms,
                            command: proposal.command.redacted(),
                        };
                        self.replica.publish(state.clone(), redacted);
                    }
                    ApplyResult(outcome)
                }
            };
            results.push(result);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data: SmData = serde_json::from_slice(snapshot.get_ref()).map_err(snap_err)?;
        let file = SnapshotFile {
            meta: meta.clone(),
            data: data.clone(),
        };
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_snapshot(&file))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)?;
        let public = data.state.clone();
        *self.lock() = SmData {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            ..data
        };
        self.replica.reset(public);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(file) = self.read_snapshot_file().map_err(sm_err)? else {
            return Ok(None);
        };
        let bytes = serde_json::to_vec(&file.data).map_err(sm_err)?;
        Ok(Some(Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}
