//! openraft's network: Raft RPCs as JSON POSTs over the mTLS peer client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::TypeConfig;
use crate::transport::{PeerClient, PeerError};

/// Paths of the Raft RPCs on the control server.
pub mod paths {
    /// AppendEntries.
    pub const APPEND: &str = "/raft/append";
    /// RequestVote.
    pub const VOTE: &str = "/raft/vote";
    /// InstallSnapshot (chunked).
    pub const SNAPSHOT: &str = "/raft/snapshot";
    /// Pre-vote (shoal's own).
    pub const PREVOTE: &str = "/raft/prevote";
}

/// Creates connections to Raft peers; shares the node's current peer client.
#[derive(Clone)]
pub struct Network {
    peers: Arc<ArcSwap<PeerClient>>,
}

impl Network {
    /// A network over the node's peer client (swapped when its certificate changes).
    pub fn new(peers: Arc<ArcSwap<PeerClient>>) -> Network {
        Network { peers }
    }
}

/// One Raft peer.
pub struct Connection {
    target: u64,
    addr: Result<SocketAddr, String>,
    peers: Arc<ArcSwap<PeerClient>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection {
            target,
            addr: node
                .addr
                .parse()
                .map_err(|e| format!("bad peer address {:?}: {e}", node.addr)),
            peers: self.peers.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl Connection {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let addr = self
            .addr
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&TransportError(e))))?;
        let peers = self.peers.load_full();
        let result: Result<Result<Resp, RaftError<u64, E>>, PeerError> =
            peers.post(addr, path, req, timeout).await;
        match result {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Err(e @ PeerError::Unreachable { .. }) => Err(RPCError::Unreachable(Unreachable::new(
                &TransportError(e.to_string()),
            ))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&TransportError(
                e.to_string(),
            )))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(paths::APPEND, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(paths::SNAPSHOT, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(paths::VOTE, &rpc, option.hard_ttl()).await
    }
}
