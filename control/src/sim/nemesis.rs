//! The nemesis: seeded faults against the managers while the clients run.
//!
//! | fault | what |
//! | --- | --- |
//! | partition | the managers split into two random groups that cannot talk |
//! | isolate leader | the leader alone on one side |
//! | pause | one manager's messages all dropped (as a SIGSTOPped process looks to others) |
//! | crash | the leader stops (memory lost, log kept) and restarts after a while |
//! | heal | every link back |

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::fabric::Fabric;
use super::memlog::Disk;
use super::node::SimNode;

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Two groups that cannot talk.
    Partition(Vec<u64>, Vec<u64>),
    /// The leader cut off from the rest.
    IsolateLeader(u64),
    /// One node's messages dropped.
    Pause(u64),
    /// The leader crashed and was restarted after `down`.
    Crash(u64, Duration),
    /// Every link restored.
    Heal,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition(a, b) => write!(f, "partition {a:?} / {b:?}"),
            Fault::IsolateLeader(l) => write!(f, "isolate leader {l}"),
            Fault::Pause(n) => write!(f, "pause {n}"),
            Fault::Crash(n, down) => write!(f, "crash {n} for {}ms", down.as_millis()),
            Fault::Heal => write!(f, "heal"),
        }
    }
}

/// What a node needs to be restarted.
pub struct Restart {
    /// Its log.
    pub disks: Vec<(u64, Disk)>,
    /// Its state machine directory.
    pub dirs: Vec<(u64, PathBuf)>,
}

impl Restart {
    /// Starts node `id` again from its disk, with pre-vote timeouts from `seed`.
    pub async fn start(&self, fabric: &Arc<Fabric>, id: u64, seed: u64) {
        let disk = self.disks.iter().find(|(i, _)| *i == id).map(|(_, d)| d);
        let dir = self.dirs.iter().find(|(i, _)| *i == id).map(|(_, d)| d);
        if let (Some(disk), Some(dir)) = (disk, dir) {
            let rng = StdRng::seed_from_u64(seed);
            if let Err(e) = SimNode::start(fabric, id, disk.clone(), dir, rng).await {
                tracing::error!(node = id, error = %e, "simulated restart failed");
            }
        }
    }
}

/// The leader as the running nodes see it (the first that says it leads).
fn leader(fabric: &Fabric) -> Option<u64> {
    fabric
        .running()
        .iter()
        .find(|n| n.is_leader())
        .map(|n| n.id)
}

/// Applies one random fault (healing first, so faults do not pile up beyond a minority
/// plus partitions); returns it.
pub async fn strike(
    fabric: &Arc<Fabric>,
    ids: &[u64],
    restart: &Restart,
    rng: &mut StdRng,
) -> Fault {
    fabric.heal();
    let fault = match rng.gen_range(0..5) {
        0 => {
            let mut all = ids.to_vec();
            all.shuffle(rng);
            let cut = rng.gen_range(1..all.len());
            let (a, b) = all.split_at(cut);
            Fault::Partition(a.to_vec(), b.to_vec())
        }
        1 => match leader(fabric) {
            Some(l) => Fault::IsolateLeader(l),
            None => Fault::Heal,
        },
        2 => Fault::Pause(ids[rng.gen_range(0..ids.len())]),
        3 => match leader(fabric) {
            Some(l) => Fault::Crash(l, Duration::from_millis(rng.gen_range(200..3000))),
            None => Fault::Heal,
        },
        _ => Fault::Heal,
    };
    match &fault {
        Fault::Partition(a, b) => fabric.partition(a, b),
        Fault::IsolateLeader(n) | Fault::Pause(n) => {
            let rest: Vec<u64> = ids.iter().copied().filter(|i| i != n).collect();
            fabric.partition(&[*n], &rest);
        }
        Fault::Crash(n, down) => {
            SimNode::crash(fabric, *n).await;
            tokio::time::sleep(*down).await;
            restart.start(fabric, *n, rng.gen()).await;
        }
        Fault::Heal => {}
    }
    fault
}
