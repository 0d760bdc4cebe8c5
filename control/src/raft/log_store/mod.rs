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
//! A failed write or fdatasync stops the writer for good: after a failed fdatasync the
//! kernel may have dropped the dirty pages it could not write, so a later fdatasync
//! that succeeds would prove nothing (PostgreSQL's "fsyncgate"). Every later append is
//! refused, openraft stops this node's Raft, and the log says to fix the disk and
//! restart; the torn tail, never acknowledged, is cut off on the next open.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, RwLock};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{RaftLogId, StorageIOError};
use serde::{Deserialize, Serialize};

use super::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Rewrite the file when it is larger than this and mostly dead records.
const COMPACT_MIN_BYTES: u64 = 1 << 20;

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
}

enum Job {
    Write(Vec<u8>, Option<LogFlushed<TypeConfig>>),
    Sync(std::sync::mpsc::Sender<io::Result<()>>),
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

/// Replays the records in `bytes`; returns the state and the length of the valid prefix.
fn replay(bytes: &[u8], mem: &mut LogMem) -> usize {
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap_or_default());
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<Record>(payload) else {
            break;
        };
        apply_record(mem, record);
        at += 8 + len;
    }
    at
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
        let valid = replay(&bytes, &mut mem);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if valid < bytes.len() {
            tracing::warn!(
                cut = bytes.len() - valid,
                "raft log: cutting a torn or corrupt tail"
            );
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

    async fn sync(&self) -> io::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.jobs
            .send(Job::Sync(tx))
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

/// The file the log is appended to; a trait so tests can make writes fail.
trait LogFile: Write + Send {
    fn sync_data(&self) -> io::Result<()>;
}

impl LogFile for File {
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
}

struct Writer {
    file: Box<dyn LogFile>,
    path: PathBuf,
    dir: PathBuf,
    size: u64,
    mem: Arc<RwLock<LogMem>>,
    /// Why the writer stopped taking writes, once a write or fdatasync failed.
    broken: Option<String>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let mut bytes = Vec::new();
            for job in &batch {
                if let Job::Write(b, _) = job {
                    bytes.extend_from_slice(b);
                }
            }
            let result = match &self.broken {
                Some(why) => Err(io::Error::other(format!(
                    "the raft log takes no more writes since an earlier one failed ({why}); fix the disk and restart the agent"
                ))),
                None => {
                    let written = self
                        .file
                        .write_all(&bytes)
                        .and_then(|_| self.file.sync_data());
                    if let Err(e) = &written {
                        tracing::error!(
                            error = %e,
                            "raft log: a write or fdatasync failed; this manager acknowledges no more log writes (what the failed sync held may be lost); fix the disk and restart the agent"
                        );
                        self.broken = Some(e.to_string());
                    }
                    written
                }
            };
            self.size += bytes.len() as u64;
            for job in batch {
                let r = match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                };
                match job {
                    Job::Write(_, Some(cb)) => cb.log_io_completed(r),
                    Job::Write(_, None) => {}
                    Job::Sync(tx) => {
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
        self.file = Box::new(OpenOptions::new().append(true).open(&self.path)?);
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
        // Not fsynced: losing it only means re-applying from the snapshot after a crash.
        let bytes = serde_json::to_vec(&committed).map_err(io_err)?;
        write_atomically(&self.dir, "committed", &bytes, false).map_err(io_err)?;
        self.mem
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .committed = committed;
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
        self.send(bytes, None).map_err(io_err)?;
        self.sync().await.map_err(io_err)
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
