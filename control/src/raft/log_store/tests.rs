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

/// A log file whose first fdatasync fails (as on a disk error) and later ones succeed.
struct FailsOnce {
    failed: std::sync::atomic::AtomicBool,
}

impl Write for FailsOnce {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogFile for FailsOnce {
    fn sync_data(&self) -> io::Result<()> {
        if self.failed.swap(true, std::sync::atomic::Ordering::Relaxed) {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(EIO))
        }
    }
}

/// Linux's EIO.
const EIO: i32 = 5;

#[test]
fn after_a_failed_fdatasync_nothing_more_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer {
        file: Box::new(FailsOnce {
            failed: std::sync::atomic::AtomicBool::new(false),
        }),
        path: dir.path().join("log"),
        dir: dir.path().to_path_buf(),
        size: 0,
        mem: Arc::default(),
        broken: None,
    };
    let (jobs, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || writer.run(rx));
    let sync = |bytes: &[u8]| {
        let (tx, done) = mpsc::channel();
        jobs.send(Job::Write(bytes.to_vec(), None)).unwrap();
        jobs.send(Job::Sync(tx)).unwrap();
        done.recv().unwrap()
    };
    let first = sync(b"one").unwrap_err();
    assert!(first.to_string().contains("os error 5"), "{first}");
    // The disk would take this one, but what the failed sync held may be gone.
    let second = sync(b"two").unwrap_err().to_string();
    assert!(
        second.contains("no more writes") && second.contains("restart"),
        "{second}"
    );
    drop(jobs);
    thread.join().unwrap();
}
