//! An in-memory Raft log for the simulation, standing in for
//! [`LogStore`](crate::raft::log_store::LogStore).
//!
//! The real log hands appends to a writer thread that fdatasyncs and then calls back:
//! under tokio's paused clock the runtime looks idle while that thread works, so time
//! jumps to the next timer (heartbeats and timeouts fire in zero wall time) and runs stop
//! being replayable. This log acknowledges an append at once, which models "durable
//! before acknowledged" exactly; its contents outlive a simulated crash (the [`Disk`] is
//! kept and reopened), as the real file does.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::RaftLogId;

use crate::raft::{Entry, LogId, StorageError, TypeConfig, Vote};

#[derive(Default)]
struct Saved {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

/// What one node has on "disk": survives crashes.
#[derive(Clone, Default)]
pub struct Disk(Arc<Mutex<Saved>>);

impl Disk {
    fn lock(&self) -> std::sync::MutexGuard<'_, Saved> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last log entry's ID (or the last purged one), for pre-vote.
    pub fn last_log_id(&self) -> Option<LogId> {
        let s = self.lock();
        s.entries
            .values()
            .next_back()
            .map(|e| *e.get_log_id())
            .or(s.last_purged)
    }
}

impl RaftLogReader<TypeConfig> for Disk {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for Disk {
    type LogReader = Disk;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = self.lock().last_purged;
        Ok(LogState {
            last_purged_log_id,
            last_log_id: self.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Disk {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        {
            let mut s = self.lock();
            for e in entries {
                s.entries.insert(e.get_log_id().index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut s = self.lock();
        s.entries = s.entries.split_off(&(log_id.index + 1));
        s.last_purged = Some(log_id);
        Ok(())
    }
}
