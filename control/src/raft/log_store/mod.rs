//! The Raft log on disk: one append-only file of CRC-framed records, fdatasync'ed before
//! an append is acknowledged, plus the vote (written atomically, fsynced).
//!
//! ```text
//!  record := len:u32le crc32:u32le payload(JSON Record)
//!  Record := Entry(entry) | Truncate(from index) | Purge(up to log id)
//! ```
//! Appends go to a dedicated writer thread that batches whatever is queued into one
//! write and one fdatasync (group commit). On open, records are replayed in order; a torn
//! or corrupt tail (never acknowledged) is cut off. When purged records dominate the
//! file it is rewritten with only the live entries.
//!
//! On open, a damaged tail (a write cut short, never acknowledged) is cut with a log
//! line naming the file, the offset and the bytes cut; a bad record followed by a valid
//! one (damage before the end: acknowledged entries lost) refuses to open, with an error
//! saying how to restore the manager (see [`replay`]).
//!
//! A failed write (ENOSPC) or fdatasync (EIO) refuses its batch, cuts the file back to
//! the end of the last fdatasync'ed batch and rebuilds the entries in memory from the
//! file; later appends are written after the cut, so once the disk has room again they
//! succeed without a restart (see [`Writer::recover`] for why this is safe after a
//! failed fdatasync). openraft stops its Raft on the refused append; the member opens a
//! new Raft on the same store (`member::recovery`). Only when the cut itself fails does
//! the writer stop for good; the next open cuts the tail.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, RwLock};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{RaftLogId, StorageIOError};
use serde::{Deserialize, Serialize};

use super::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Rewrite the file when it is larger than this and mostly dead records.
const COMPACT_MIN_BYTES: u64 = 1 << 20;

/// The committed index is written to its file at most this often.
const COMMITTED_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // records live only while being framed or replayed
enum Record {
    Entry(Entry),
    Truncate(u64),
    Purge(LogId),
}

#[derive(Default)]
struct LogMem {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    /// When `committed` was last written to its file.
    committed_saved: Option<std::time::Instant>,
}

enum Job {
    Write(Vec<u8>, Option<LogFlushed<TypeConfig>>),
    /// Write these bytes (maybe none) and fdatasync; the result goes back on the channel.
    Sync(Vec<u8>, std::sync::mpsc::Sender<io::Result<()>>),
}

/// The durable Raft log of one manager.
#[derive(Clone)]
pub struct LogStore {
    mem: Arc<RwLock<LogMem>>,
    jobs: mpsc::Sender<Job>,
    dir: PathBuf,
}

fn frame(record: &Record) -> io::Result<Vec<u8>> {
    let payload = serde_json::to_vec(record).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// How a log file ends when it does not end with a whole, valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Damage {
    /// Nothing valid follows the first bad byte (a write cut short by a crash, never
    /// acknowledged): the file is cut there.
    Tail { at: usize, cut: usize },
    /// A valid record follows the bad one at `next`: records were lost before the end.
    Middle { at: usize, next: usize },
}

/// The record at `at` in `bytes`, with its framed length, if it is whole and valid.
fn record_at(bytes: &[u8], at: usize) -> Option<(Record, usize)> {
    let head = bytes.get(at..at.checked_add(8)?)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    let payload = bytes.get(at + 8..(at + 8).checked_add(len)?)?;
    if len == 0 || crc32fast::hash(payload) != crc {
        return None;
    }
    let record = serde_json::from_slice::<Record>(payload).ok()?;
    Some((record, 8 + len))
}

/// Replays the records in `bytes` into `mem`; returns the length of the valid prefix and,
/// when bytes follow it, whether they are a damaged tail or damage before the end.
///
/// Damage before the end is a bad record followed by a valid one, unless everything
/// between them is zero bytes: a file system may allocate the blocks of an append whose
/// data never reached the disk (a crash during a write that was never fdatasync'ed, so
/// never acknowledged), and those read as zeros. Anything else (bit rot, an overwritten
/// block) in front of a valid record is damage to records that were acknowledged.
fn replay(bytes: &[u8], mem: &mut LogMem) -> (usize, Option<Damage>) {
    let mut at = 0;
    while let Some((record, len)) = record_at(bytes, at) {
        apply_record(mem, record);
        at += len;
    }
    if at == bytes.len() {
        return (at, None);
    }
    let next = (at + 1..bytes.len().saturating_sub(8))
        .find(|&i| record_at(bytes, i).is_some())
        .filter(|&next| bytes[at..next].iter().any(|&b| b != 0));
    let damage = match next {
        Some(next) => Damage::Middle { at, next },
        None => Damage::Tail {
            at,
            cut: bytes.len() - at,
        },
    };
    (at, Some(damage))
}

fn apply_record(mem: &mut LogMem, record: Record) {
    match record {
        Record::Entry(e) => {
            mem.entries.insert(e.get_log_id().index, e);
        }
        Record::Truncate(from) => {
            mem.entries.split_off(&from);
        }
        Record::Purge(upto) => {
            mem.entries = mem.entries.split_off(&(upto.index + 1));
            mem.last_purged = Some(upto);
        }
    }
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, replaying what is there.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut mem = LogMem::default();
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path)?.read_to_end(&mut bytes)?;
        }
        let (valid, damage) = replay(&bytes, &mut mem);
        match damage {
            Some(Damage::Middle { at, next }) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the raft log {} is damaged before its end: the record at byte {at} is bad and a valid one follows at byte {next} (of {}), so acknowledged entries are lost; this manager will not start on it. Restore this manager from a peer: remove its data dir and join it again (or restore the data dir from a backup)",
                        path.display(),
                        bytes.len()
                    ),
                ));
            }
            Some(Damage::Tail { at, cut }) => tracing::warn!(
                file = %path.display(),
                offset = at,
                cut,
                "raft log: cutting a torn or corrupt tail (a write that was never acknowledged) at byte {at}: {cut} bytes removed"
            ),
            None => {}
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        if valid < bytes.len() {
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        if let Ok(v) = fs::read(dir.join("vote")) {
            mem.vote = serde_json::from_slice(&v).map_err(io::Error::other)?;
        }
        if let Ok(c) = fs::read(dir.join("committed")) {
            mem.committed = serde_json::from_slice(&c).ok().flatten();
        }
        let mem = Arc::new(RwLock::new(mem));
        let (jobs, rx) = mpsc::channel();
        let writer = Writer {
            file: Box::new(file),
            path,
            dir: dir.to_path_buf(),
            size: valid as u64,
            mem: mem.clone(),
            broken: None,
        };
        std::thread::Builder::new()
            .name("raft-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(LogStore {
            mem,
            jobs,
            dir: dir.to_path_buf(),
        })
    }

    fn send(&self, bytes: Vec<u8>, cb: Option<LogFlushed<TypeConfig>>) -> io::Result<()> {
        self.jobs
            .send(Job::Write(bytes, cb))
            .map_err(|_| io::Error::other("raft log writer stopped"))
    }

    /// Writes `bytes` and waits until they and everything queued before are on disk.
    async fn write_synced(&self, bytes: Vec<u8>) -> io::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.jobs
            .send(Job::Sync(bytes, tx))
            .map_err(|_| io::Error::other("raft log writer stopped"))?;
        tokio::task::spawn_blocking(move || rx.recv())
            .await
            .map_err(io::Error::other)?
            .map_err(|_| io::Error::other("raft log writer stopped"))?
    }

    /// The last log entry's ID (or the last purged one), for pre-vote.
    pub fn last_log_id(&self) -> Option<LogId> {
        let mem = self.mem.read().unwrap_or_else(|e| e.into_inner());
        mem.entries
            .values()
            .next_back()
            .map(|e| *e.get_log_id())
            .or(mem.last_purged)
    }

    fn read_range<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<Entry> {
        let mem = self.mem.read().unwrap_or_else(|e| e.into_inner());
        mem.entries.range(range).map(|(_, e)| e.clone()).collect()
    }
}

/// The file the log is appended to; a trait so tests can make its IO fail.
trait LogFile: Send {
    /// Appends `bytes` (all of them, or an error).
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// fdatasync.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes, durably (ftruncate, fsync).
    fn cut(&mut self, len: u64) -> io::Result<()>;
    /// The file's content.
    fn read_all(&mut self) -> io::Result<Vec<u8>>;
}

impl LogFile for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn cut(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        self.sync_all()
    }
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.seek(io::SeekFrom::Start(0))?;
        self.read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

struct Writer {
    file: Box<dyn LogFile>,
    path: PathBuf,
    dir: PathBuf,
    /// The end of the last batch that was written and fdatasync'ed.
    size: u64,
    mem: Arc<RwLock<LogMem>>,
    /// Why the writer stopped taking writes: a write failed and the file could not be
    /// cut back to its last good record.
    broken: Option<String>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let mut bytes = Vec::new();
            for job in &batch {
                let (Job::Write(b, _) | Job::Sync(b, _)) = job;
                bytes.extend_from_slice(b);
            }
            let result = match &self.broken {
                Some(why) => Err(io::Error::other(format!(
                    "the raft log takes no more writes since an earlier one failed ({why}); fix the disk and restart the agent"
                ))),
                None => self.write_batch(&bytes),
            };
            for job in batch {
                let r = match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                };
                match job {
                    Job::Write(_, Some(cb)) => cb.log_io_completed(r),
                    Job::Write(_, None) => {}
                    Job::Sync(_, tx) => {
                        let _ = tx.send(r);
                    }
                }
            }
            if result.is_ok() && self.size > COMPACT_MIN_BYTES {
                if let Err(e) = self.compact() {
                    tracing::warn!(error = %e, "raft log: compaction failed; keeping the old file");
                }
            }
        }
    }

    /// Writes and fdatasyncs one batch; on failure cuts the file back (see [`recover`]).
    ///
    /// [`recover`]: Writer::recover
    fn write_batch(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return self.file.sync_data().inspect_err(|e| self.recover(e));
        }
        match self.file.append(bytes).and_then(|_| self.file.sync_data()) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.recover(&e);
                Err(e)
            }
        }
    }

    /// After a failed write or fdatasync, what the file holds past `size` is unknown: a
    /// partial write (ENOSPC), or pages the kernel could not write and has since marked
    /// clean, so they still read back from the page cache but are not on disk (after
    /// which a later fdatasync that succeeds proves nothing about them: PostgreSQL's
    /// "fsyncgate"). Cutting the file back to `size`, the end of the last batch that was
    /// fdatasync'ed, drops those pages with it, so neither this process nor a restarted
    /// one can read a record that was never acknowledged; the entries in memory are then
    /// rebuilt from what the file holds. The failed batch is refused (never
    /// acknowledged), and later batches are written after the cut: when the disk has
    /// room again they succeed. Only if the cut itself fails does the writer stop for
    /// good (the next open cuts the tail).
    fn recover(&mut self, error: &io::Error) {
        let size = self.size;
        let reread = self.file.cut(size).and_then(|_| self.file.read_all());
        let check = reread.and_then(|bytes| {
            let mut fresh = LogMem::default();
            match replay(&bytes, &mut fresh) {
                (valid, None) if valid as u64 == size => Ok(fresh),
                (valid, _) => Err(io::Error::other(format!(
                    "after the cut the file reads back {valid} valid bytes of {} instead of {size}",
                    bytes.len()
                ))),
            }
        });
        match check {
            Ok(fresh) => {
                let mut mem = self.mem.write().unwrap_or_else(|e| e.into_inner());
                mem.entries = fresh.entries;
                mem.last_purged = fresh.last_purged;
                tracing::error!(
                    file = %self.path.display(),
                    error = %error,
                    offset = size,
                    "raft log: a write or fdatasync failed; the batch is refused (not acknowledged) and the file is cut back to its last good record at byte {size}; writes are taken again once the disk takes them"
                );
            }
            Err(cut) => {
                tracing::error!(
                    file = %self.path.display(),
                    error = %error,
                    "raft log: a write or fdatasync failed and cutting the file back to its last good record at byte {size} failed too ({cut}); this manager acknowledges no more log writes; fix the disk and restart the agent"
                );
                self.broken = Some(format!("{error}; then cutting back failed: {cut}"));
            }
        }
    }

    /// Rewrites the file with only the live records when they are under half of it.
    /// Queued records replayed after this rewrite are idempotent on top of it.
    fn compact(&mut self) -> io::Result<()> {
        let bytes = {
            let mem = self.mem.read().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            if let Some(p) = mem.last_purged {
                out.extend(frame(&Record::Purge(p))?);
            }
            for e in mem.entries.values() {
                out.extend(frame(&Record::Entry(e.clone()))?);
            }
            out
        };
        if (bytes.len() as u64) * 2 > self.size {
            return Ok(());
        }
        write_atomically(&self.dir, "log", &bytes, true)?;
        self.file = Box::new(
            OpenOptions::new()
                .read(true)
                .append(true)
                .open(&self.path)?,
        );
        self.size = bytes.len() as u64;
        Ok(())
    }
}

fn io_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageError::from(StorageIOError::write_logs(&e))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.read_range(range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let mem = self.mem.read().unwrap_or_else(|e| e.into_inner());
        let last = mem
            .entries
            .values()
            .next_back()
            .map(|e| *e.get_log_id())
            .or(mem.last_purged);
        Ok(LogState {
            last_purged_log_id: mem.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_atomically(&dir, "vote", &bytes, true))
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?
            .map_err(|e| StorageIOError::write_vote(&e))?;
        self.mem.write().unwrap_or_else(|e| e.into_inner()).vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.mem.read().unwrap_or_else(|e| e.into_inner()).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not fsynced, and written at most every COMMITTED_EVERY: a committed index older
        // than the real one only means re-applying more of the log after a restart, and
        // openraft asks for this after every commit (a file written per commit cost the
        // leader's Raft task tens of microseconds each).
        let due = {
            let mut mem = self.mem.write().unwrap_or_else(|e| e.into_inner());
            mem.committed = committed;
            let due = mem
                .committed_saved
                .is_none_or(|at| at.elapsed() >= COMMITTED_EVERY);
            if due {
                mem.committed_saved = Some(std::time::Instant::now());
            }
            due
        };
        if due {
            let bytes = serde_json::to_vec(&committed).map_err(io_err)?;
            write_atomically(&self.dir, "committed", &bytes, false).map_err(io_err)?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.mem.read().unwrap_or_else(|e| e.into_inner()).committed)
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
        let mut bytes = Vec::new();
        {
            let mut mem = self.mem.write().unwrap_or_else(|e| e.into_inner());
            for e in entries {
                bytes.extend(frame(&Record::Entry(e.clone())).map_err(io_err)?);
                mem.entries.insert(e.get_log_id().index, e);
            }
        }
        self.send(bytes, Some(callback)).map_err(io_err)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = frame(&Record::Truncate(log_id.index)).map_err(io_err)?;
        self.mem
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .split_off(&log_id.index);
        self.write_synced(bytes).await.map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = frame(&Record::Purge(log_id)).map_err(io_err)?;
        apply_record(
            &mut self.mem.write().unwrap_or_else(|e| e.into_inner()),
            Record::Purge(log_id),
        );
        self.send(bytes, None).map_err(io_err)
    }
}

#[cfg(test)]
mod tests;
