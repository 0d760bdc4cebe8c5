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
    let cut = torn.len() - good;
    assert_eq!(
        replay(&torn, &mut mem),
        (good, Some(Damage::Tail { at: good, cut }))
    );
    assert_eq!(mem.entries.len(), 3);

    let mut corrupt = bytes.clone();
    let mut last = frame(&Record::Entry(blank(1, 4))).unwrap();
    let n = last.len();
    last[n - 2] ^= 0xff;
    corrupt.extend(last);
    let mut mem = LogMem::default();
    assert_eq!(replay(&corrupt, &mut mem).0, good);
    assert!(matches!(
        replay(&corrupt, &mut LogMem::default()).1,
        Some(Damage::Tail { .. })
    ));
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
        store.write_synced(bytes).await.unwrap();
    }
    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(store.last_log_id().unwrap().index, 3);
}

fn records(range: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    range
        .flat_map(|i| frame(&Record::Entry(blank(1, i))).unwrap())
        .collect()
}

#[test]
fn a_bad_record_followed_by_a_valid_one_is_damage_before_the_end() {
    let head = records(1..=2);
    let mut bytes = head.clone();
    let mut bad = frame(&Record::Entry(blank(1, 3))).unwrap();
    bad[12] ^= 0x55;
    let next = head.len() + bad.len();
    bytes.extend(bad);
    bytes.extend(records(4..=5));
    let (valid, damage) = replay(&bytes, &mut LogMem::default());
    assert_eq!(valid, head.len());
    assert_eq!(
        damage,
        Some(Damage::Middle {
            at: head.len(),
            next
        })
    );
    // A length field hit instead: the next record is found by scanning.
    let mut bytes = head.clone();
    let mut bad = frame(&Record::Entry(blank(1, 3))).unwrap();
    bad[0] = 0xff;
    bytes.extend(bad);
    bytes.extend(records(4..=4));
    assert!(matches!(
        replay(&bytes, &mut LogMem::default()).1,
        Some(Damage::Middle { .. })
    ));
}

#[test]
fn zeros_before_a_valid_record_are_an_unwritten_tail_not_damage() {
    let mut bytes = records(1..=2);
    let good = bytes.len();
    bytes.extend([0u8; 4096]);
    bytes.extend(records(3..=3));
    let (valid, damage) = replay(&bytes, &mut LogMem::default());
    assert_eq!(valid, good);
    assert_eq!(
        damage,
        Some(Damage::Tail {
            at: good,
            cut: bytes.len() - good
        })
    );
}

/// What `f` logs, as text.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    text
}

#[test]
fn open_cuts_a_torn_tail_and_refuses_damage_before_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = records(1..=3);
    let good = bytes.len();
    bytes.extend(&records(4..=4)[..7]);
    fs::write(dir.path().join("log"), &bytes).unwrap();
    let log = logged(|| {
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.last_log_id().unwrap().index, 3);
    });
    for want in [
        format!("file={}", dir.path().join("log").display()),
        format!("offset={good}"),
        "cut=7".to_string(),
        "torn or corrupt tail".to_string(),
    ] {
        assert!(log.contains(&want), "{want:?} not in {log}");
    }
    assert_eq!(
        fs::metadata(dir.path().join("log")).unwrap().len(),
        good as u64
    );

    let mut bytes = records(1..=1);
    let at = bytes.len();
    bytes.extend(b"garbage!garbage!");
    bytes.extend(records(2..=2));
    fs::write(dir.path().join("log"), &bytes).unwrap();
    let e = LogStore::open(dir.path())
        .err()
        .expect("a damaged log must not open");
    let text = e.to_string();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    for want in [
        dir.path().join("log").display().to_string(),
        format!("byte {at}"),
        "damaged before its end".into(),
        "join it again".into(),
    ] {
        assert!(text.contains(&want), "{want:?} not in {text}");
    }
    // Nothing was cut: the file is left for whoever restores it.
    assert_eq!(fs::read(dir.path().join("log")).unwrap(), bytes);
}

/// What a [`MemFile`] does on its next calls.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    /// The next append writes half its bytes, then fails with ENOSPC.
    NoSpace,
    /// The next fdatasync fails with EIO.
    SyncFails,
}

/// A log file in memory whose IO fails on demand.
#[derive(Clone, Default)]
struct MemFile(Arc<std::sync::Mutex<(Vec<u8>, Vec<Fault>)>>);

impl MemFile {
    fn inject(&self, fault: Fault) {
        self.0.lock().unwrap().1.push(fault);
    }
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().0.clone()
    }
    fn take(&self, fault: Fault) -> bool {
        let mut g = self.0.lock().unwrap();
        let found = g.1.iter().position(|f| *f == fault);
        found.map(|i| g.1.remove(i)).is_some()
    }
}

/// Linux's EIO and ENOSPC.
const EIO: i32 = 5;
const ENOSPC: i32 = 28;

impl LogFile for MemFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.take(Fault::NoSpace) {
            self.0.lock().unwrap().0.extend(&bytes[..bytes.len() / 2]);
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        self.0.lock().unwrap().0.extend(bytes);
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if self.take(Fault::SyncFails) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(())
    }
    fn cut(&mut self, len: u64) -> io::Result<()> {
        self.0.lock().unwrap().0.truncate(len as usize);
        Ok(())
    }
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        Ok(self.bytes())
    }
}

/// A store whose writer writes to `file`.
fn store_on(file: Box<dyn LogFile>, dir: &Path) -> LogStore {
    let mem: Arc<RwLock<LogMem>> = Arc::default();
    let writer = Writer {
        file,
        path: dir.join("log"),
        dir: dir.to_path_buf(),
        size: 0,
        mem: mem.clone(),
        broken: None,
    };
    let (jobs, rx) = mpsc::channel();
    std::thread::spawn(move || writer.run(rx));
    LogStore {
        mem,
        jobs,
        dir: dir.to_path_buf(),
    }
}

/// Appends entries `range` as openraft would (in memory first, then the writer).
async fn append(store: &LogStore, range: std::ops::RangeInclusive<u64>) -> io::Result<()> {
    {
        let mut mem = store.mem.write().unwrap();
        for i in range.clone() {
            mem.entries.insert(i, blank(1, i));
        }
    }
    store.write_synced(records(range)).await
}

fn indexes(store: &LogStore) -> Vec<u64> {
    store.mem.read().unwrap().entries.keys().copied().collect()
}

fn replayed(bytes: &[u8]) -> Vec<u64> {
    let mut mem = LogMem::default();
    assert_eq!(replay(bytes, &mut mem), (bytes.len(), None));
    mem.entries.keys().copied().collect()
}

#[tokio::test]
async fn enospc_refuses_the_batch_cuts_it_back_and_later_appends_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let file = MemFile::default();
    let store = store_on(Box::new(file.clone()), dir.path());
    append(&store, 1..=2).await.unwrap();
    let good = file.bytes();

    file.inject(Fault::NoSpace);
    let e = append(&store, 3..=4).await.unwrap_err();
    assert!(e.to_string().contains("os error 28"), "{e}");
    assert_eq!(file.bytes(), good, "the partial write is cut back");
    assert_eq!(indexes(&store), vec![1, 2], "memory matches the file again");

    // Space is back: the same entries go in, after the cut, without a restart.
    append(&store, 3..=4).await.unwrap();
    assert_eq!(replayed(&file.bytes()), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn after_a_failed_fdatasync_the_batch_is_never_acknowledged_nor_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = MemFile::default();
    let store = store_on(Box::new(file.clone()), dir.path());
    append(&store, 1..=1).await.unwrap();
    let good = file.bytes();

    file.inject(Fault::SyncFails);
    let e = append(&store, 2..=3).await.unwrap_err();
    assert!(e.to_string().contains("os error 5"), "{e}");
    // The pages the failed sync held are gone from the file, not only unacknowledged:
    // nothing reads entries 2 and 3 back, in this process or after a restart.
    assert_eq!(file.bytes(), good);
    assert_eq!(indexes(&store), vec![1]);
    append(&store, 2..=2).await.unwrap();
    assert_eq!(indexes(&store), vec![1, 2]);
    assert_eq!(replayed(&file.bytes()), vec![1, 2]);
}

/// A tmpfs of `size` mounted on a temporary directory, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "shoal-test"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_tmpfs_refuses_appends_and_they_succeed_once_space_returns() {
    let fs_ = Tmpfs::mount("256k");
    let dir = fs_.0.path().join("raft");
    let store = LogStore::open(&dir).unwrap();
    append(&store, 1..=1).await.unwrap();
    let filler = fs_.0.path().join("filler");
    let mut f = File::create(&filler).unwrap();
    let chunk = vec![0xa5u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    drop(f);
    let e = append(&store, 2..=200).await.unwrap_err();
    assert!(e.to_string().contains("os error 28"), "{e}");
    assert_eq!(indexes(&store), vec![1]);
    fs::remove_file(&filler).unwrap();
    append(&store, 2..=200).await.unwrap();
    drop(store);
    let reopened = LogStore::open(&dir).unwrap();
    assert_eq!(reopened.last_log_id().unwrap().index, 200);
    assert_eq!(indexes(&reopened), (1..=200).collect::<Vec<_>>());
}
