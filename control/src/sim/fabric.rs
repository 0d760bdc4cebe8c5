//! The simulated network between managers: every message waits a seeded delay each
//! way, and a cut link drops it. A request dropped on the way is never seen (the caller
//! learns so, as from a refused connection); a reply dropped on the way back leaves the
//! caller not knowing whether its request took effect.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::node::SimNode;
use crate::raft::TypeConfig;

/// Why a message got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Fail {
    /// The request never reached its target (cut link, or the target is down).
    #[error("unreachable")]
    Unreachable,
    /// The request may have been handled; its answer was lost or late.
    #[error("answer lost")]
    Lost,
}

/// The managers and the links between them.
pub struct Fabric {
    nodes: Mutex<BTreeMap<u64, Arc<SimNode>>>,
    cut: Mutex<BTreeSet<(u64, u64)>>,
    rng: Mutex<StdRng>,
}

impl Fabric {
    /// A fabric with no nodes and every link up; delays come from `seed`.
    pub fn new(seed: u64) -> Arc<Fabric> {
        Arc::new(Fabric {
            nodes: Mutex::new(BTreeMap::new()),
            cut: Mutex::new(BTreeSet::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        })
    }

    /// The running node `id`, unless it is down.
    pub fn node(&self, id: u64) -> Option<Arc<SimNode>> {
        lock(&self.nodes).get(&id).cloned()
    }

    /// Every running node.
    pub fn running(&self) -> Vec<Arc<SimNode>> {
        lock(&self.nodes).values().cloned().collect()
    }

    pub(super) fn insert(&self, node: Arc<SimNode>) {
        lock(&self.nodes).insert(node.id, node);
    }

    pub(super) fn remove(&self, id: u64) -> Option<Arc<SimNode>> {
        lock(&self.nodes).remove(&id)
    }

    /// Cuts every link between `a` and `b` (both ways).
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        let mut cut = lock(&self.cut);
        for x in a {
            for y in b {
                cut.insert((*x, *y));
                cut.insert((*y, *x));
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        lock(&self.cut).clear();
    }

    fn delivers(&self, from: u64, to: u64) -> bool {
        !lock(&self.cut).contains(&(from, to))
    }

    fn delay(&self) -> Duration {
        Duration::from_millis(lock(&self.rng).gen_range(1..=12))
    }

    /// Sends a request from `from` to `to`, handled there by `handle`, within `ttl`.
    pub async fn call<R, F, Fut>(
        &self,
        from: u64,
        to: u64,
        ttl: Duration,
        handle: F,
    ) -> Result<R, Fail>
    where
        F: FnOnce(Arc<SimNode>) -> Fut,
        Fut: Future<Output = R>,
    {
        let trip = async {
            tokio::time::sleep(self.delay()).await;
            let target = match self.node(to) {
                Some(n) if self.delivers(from, to) => n,
                _ => {
                    // A dropped SYN: the caller waits, then gives up.
                    tokio::time::sleep(ttl.min(Duration::from_millis(200))).await;
                    return Err(Fail::Unreachable);
                }
            };
            let answer = handle(target).await;
            tokio::time::sleep(self.delay()).await;
            if !self.delivers(to, from) || self.node(from).is_none() {
                return Err(Fail::Lost);
            }
            Ok(answer)
        };
        tokio::time::timeout(ttl, trip)
            .await
            .unwrap_or(Err(Fail::Lost))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// openraft's view of the fabric from one node.
#[derive(Clone)]
pub struct Net {
    fabric: Weak<Fabric>,
    from: u64,
}

impl Net {
    pub(super) fn new(fabric: &Arc<Fabric>, from: u64) -> Net {
        Net {
            fabric: Arc::downgrade(fabric),
            from,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Net {
    type Network = Conn;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Conn {
        Conn {
            net: self.clone(),
            target,
        }
    }
}

/// One node's link to another.
pub struct Conn {
    net: Net,
    target: u64,
}

impl Conn {
    async fn rpc<Resp, E, F, Fut>(
        &self,
        ttl: Duration,
        handle: F,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        E: std::error::Error,
        F: FnOnce(Arc<SimNode>) -> Fut,
        Fut: Future<Output = Result<Resp, RaftError<u64, E>>>,
    {
        let Some(fabric) = self.net.fabric.upgrade() else {
            return Err(RPCError::Unreachable(Unreachable::new(&Fail::Unreachable)));
        };
        match fabric.call(self.net.from, self.target, ttl, handle).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(Fail::Unreachable) => {
                Err(RPCError::Unreachable(Unreachable::new(&Fail::Unreachable)))
            }
            Err(Fail::Lost) => Err(RPCError::Network(NetworkError::new(&Fail::Lost))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.rpc(option.hard_ttl(), |n| async move {
            // As the control server's route: word from the leader resets pre-vote.
            let result = n.raft.append_entries(rpc).await;
            if matches!(&result, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
                n.contact.touch();
            }
            result
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.rpc(option.hard_ttl(), |n| async move {
            let result = n.raft.install_snapshot(rpc).await;
            if result.is_ok() {
                n.contact.touch();
            }
            result
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.rpc(option.hard_ttl(), |n| async move { n.raft.vote(rpc).await })
            .await
    }
}
