use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload};

use super::*;
use crate::raft::state_machine::StateMachine;
use crate::state::ClusterState;
use crate::watch::Replica;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let log = LogStore::open(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        let sm = StateMachine::open(dir.path(), Replica::new(ClusterState::default()))
            .map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}

fn blank(term: u64, index: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 0), index),
        payload: EntryPayload::Blank,
    }
}

#[test]
fn replay_stops_at_a_torn_or_corrupt_tail() {
    let mut bytes = Vec::new();
    for i in 1..=3 {
        bytes.extend(frame(&Record::Entry(blank(1, i))).unwrap());
    }
    let good = bytes.len();
    let mut torn = bytes.clone();
    torn.extend(&frame(&Record::Entry(blank(1, 4))).unwrap()[..10]);
    let mut mem = LogMem::default();
    assert_eq!(replay(&torn, &mut mem), good);
    assert_eq!(mem.entries.len(), 3);

    let mut corrupt = bytes.clone();
    let mut last = frame(&Record::Entry(blank(1, 4))).unwrap();
    let n = last.len();
    last[n - 2] ^= 0xff;
    corrupt.extend(last);
    let mut mem = LogMem::default();
    assert_eq!(replay(&corrupt, &mut mem), good);
}

#[test]
fn truncate_and_purge_records_replay_in_order() {
    let mut bytes = Vec::new();
    for i in 1..=5 {
        bytes.extend(frame(&Record::Entry(blank(1, i))).unwrap());
    }
    bytes.extend(frame(&Record::Truncate(4)).unwrap());
    bytes.extend(frame(&Record::Entry(blank(2, 4))).unwrap());
    bytes.extend(frame(&Record::Purge(LogId::new(CommittedLeaderId::new(1, 0), 2))).unwrap());
    let mut mem = LogMem::default();
    replay(&bytes, &mut mem);
    let indexes: Vec<u64> = mem.entries.keys().copied().collect();
    assert_eq!(indexes, vec![3, 4]);
    assert_eq!(mem.entries[&4].log_id.leader_id.term, 2);
    assert_eq!(mem.last_purged.unwrap().index, 2);
}

#[tokio::test]
async fn appended_entries_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path()).unwrap();
        let bytes: Vec<u8> = (1..=3)
            .flat_map(|i| frame(&Record::Entry(blank(1, i))).unwrap())
            .collect();
        store.send(bytes, None).unwrap();
        store.sync().await.unwrap();
    }
    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(store.last_log_id().unwrap().index, 3);
}
