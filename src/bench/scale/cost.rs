//! What the agents cost in `bench scale`: their processes, CPU over a stretch of
//! work, the leader and the managers' watch streams, the Raft directory on disk.

use super::*;

impl Run<'_> {
    pub(super) fn pids(&self) -> Vec<i32> {
        let paths = LabPaths::new(&self.lab.name);
        self.lab
            .nodes()
            .filter_map(|h| lab::running_pid(&paths, h))
            .collect()
    }

    /// What the managers' watch streams have sent so far, summed over the managers
    /// (a worker follows the manager it reached, the leader first).
    pub(super) async fn managers_watch(&self) -> anyhow::Result<shoal_control::api::WatchInfo> {
        let mut sum = shoal_control::api::WatchInfo::default();
        for host in &self.hosts {
            let status: StatusInfo = self.lab.client(host)?.get("/v1/status").await?;
            if let Some(w) = status.watch {
                sum.watchers += w.watchers;
                sum.events_sent += w.events_sent;
                sum.snapshots_sent += w.snapshots_sent;
                sum.bytes_sent += w.bytes_sent;
            }
        }
        Ok(sum)
    }

    pub(super) async fn leader_pid(&self) -> anyhow::Result<(String, i32)> {
        let status: StatusInfo = self.client.get("/v1/status").await?;
        let leader = status.leader.context("no leader")?;
        let paths = LabPaths::new(&self.lab.name);
        let pid =
            lab::running_pid(&paths, self.lab.host(&leader)?).context("leader not running")?;
        Ok((leader, pid))
    }

    /// CPU (% of a core) of every pid over what `work` takes, and the wall time.
    pub(super) async fn cpu_during<F: std::future::Future<Output = anyhow::Result<()>>>(
        pids: &[i32],
        work: F,
    ) -> anyhow::Result<(Vec<f64>, Duration)> {
        let before: Vec<u64> = pids
            .iter()
            .map(|p| observe::usage(*p).map_or(0, |u| u.ticks))
            .collect();
        let t0 = Instant::now();
        work.await?;
        let wall = t0.elapsed();
        let tps = observe::ticks_per_second();
        let pct = pids
            .iter()
            .zip(before)
            .map(|(p, b)| {
                let after = observe::usage(*p).map_or(b, |u| u.ticks);
                (after.saturating_sub(b)) as f64 / tps / wall.as_secs_f64() * 100.0
            })
            .collect();
        Ok((pct, wall))
    }
}

pub(super) fn observe_one(pids: &[i32], values: &[f64], pid: i32) -> f64 {
    pids.iter()
        .position(|p| *p == pid)
        .and_then(|i| values.get(i).copied())
        .unwrap_or(0.0)
}

pub(super) fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The bytes of every file below `dir`.
pub(super) fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The size of the newest snapshot file below `dir`, if any.
pub(super) fn newest_snapshot(dir: &std::path::Path) -> Option<u64> {
    let mut best: Option<(std::time::SystemTime, u64)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().contains("snap") {
                let at = meta.modified().ok()?;
                if best.is_none_or(|(t, _)| at > t) {
                    best = Some((at, meta.len()));
                }
            }
        }
    }
    best.map(|(_, len)| len)
}
