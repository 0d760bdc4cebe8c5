//! Baselines that need no peer.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Latency of appending a small record and `fdatasync`ing it, `n` times, in a file under
/// `dir` — the least any durable commit on this disk can cost.
pub fn fsync_latencies(dir: &Path, n: usize) -> io::Result<Vec<Duration>> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fsync-baseline");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let record = [0x5au8; 256];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        file.write_all(&record)?;
        // SAFETY: fdatasync on a file descriptor we own.
        if unsafe { libc::fdatasync(file.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        out.push(start.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(out)
}
