//! Becoming a member (`cluster init`, `cluster join`) and ceasing to be one (`cluster leave`).
//!
//! Each step that fails before the node is admitted leaves nothing behind: the data
//! directory is wiped and no process keeps running.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use shoal_ipam::PoolConfig;
use tokio::time::Instant;

use super::{now_ms, DataDir, Identity, Member};
use crate::api::{
    InitRequest, InitResponse, JoinCommand, JoinRequest, JoinResult, JoinTokenResponse,
    LeaderRequest, LeaderResponse,
};
use crate::error::ClusterError;
use crate::ids::{validate_name, NodeId};
use crate::pki::{self, new_ca, new_node_key, sign_node_cert};
use crate::state::{Availability, Command, Node, NodeStatus, Role, Secrets};
use crate::tls::{pinned_client_config, NodeTls, PIN_MISMATCH};
use crate::token::{new_secret, JoinToken};
use crate::transport::{PeerClient, PeerError};

/// The default control port.
pub const CONTROL_PORT: u16 = 2377;
/// How long `join` waits for the new member to catch up.
const CATCH_UP: Duration = Duration::from_secs(30);

/// What the agent knows about itself before it is a member.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Its data directory.
    pub data: DataDir,
    /// Its node name.
    pub name: String,
    /// Its advertise (underlay) address.
    pub advertise: IpAddr,
    /// Where the control server binds.
    pub listen: SocketAddr,
}

impl Settings {
    fn control_addr(&self, advertise: IpAddr) -> SocketAddr {
        SocketAddr::new(advertise, self.listen.port())
    }
}

fn storage(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Storage(e.to_string())
}

/// The pools of `--default-addr-pool` (IPv4 and IPv6 CIDRs, in order within each
/// family) and `--default-addr-pool-mask-length` (IPv4 only: IPv6 pools are cut into
/// /64s). A family given no pool keeps its default.
fn pool_config(given: &[String], mask_len: Option<u8>) -> Result<PoolConfig, ClusterError> {
    let mut pools = Vec::new();
    let mut pools6 = Vec::new();
    for p in given {
        let net: ipnet::IpNet = p
            .parse()
            .map_err(|e| ClusterError::Invalid(format!("--default-addr-pool {p:?}: {e}")))?;
        match net {
            ipnet::IpNet::V4(v4) => pools.push(v4),
            ipnet::IpNet::V6(v6) => pools6.push(v6),
        }
    }
    if pools.is_empty() {
        pools = PoolConfig::default().pools;
    }
    PoolConfig::new(pools, mask_len)
        .and_then(|cfg| cfg.with_pools6(pools6))
        .map_err(|e| ClusterError::Invalid(e.to_string()))
}

/// `cluster init`: makes a CA, this node's certificate, a one-manager Raft, and
/// commits the cluster's first entry.
pub async fn init(
    settings: &Settings,
    req: InitRequest,
) -> Result<(Arc<Member>, InitResponse), ClusterError> {
    validate_name("node", &settings.name)?;
    let addr_pools = pool_config(&req.default_addr_pools, req.default_addr_pool_mask_length)?;
    let advertise = req.advertise_addr.unwrap_or(settings.advertise);
    let cluster_id = format!("{:016x}", rand::random::<u64>());
    let node_id = NodeId::random(|_| false);
    let ca = new_ca(&cluster_id).map_err(storage)?;
    let (key, csr) = new_node_key().map_err(storage)?;
    let cert_pem =
        sign_node_cert(&ca, &csr, node_id, Role::Manager, &cluster_id).map_err(storage)?;
    let control_addr = settings.control_addr(advertise);
    let identity = Identity {
        cluster_id: cluster_id.clone(),
        node_id,
        name: settings.name.clone(),
        role: Role::Manager,
        addr: advertise,
        control_addr,
        listen_addr: settings.listen,
        managers: vec![control_addr],
    };
    let tls = NodeTls {
        ca_pem: ca.cert_pem.clone(),
        cert_pem,
        key_pem: key.serialize_pem(),
    };
    settings.data.save(&identity, &tls).map_err(storage)?;
    let secrets = Secrets {
        ca_key_pem: ca.key_pem.clone(),
        worker_secret: new_secret(),
        manager_secret: new_secret(),
    };
    let result = async {
        let member = Member::start(settings.data.clone(), identity, tls).await?;
        let bootstrapped = bootstrap(
            &member,
            &ca.cert_pem,
            secrets.clone(),
            addr_pools,
            advertise,
        )
        .await;
        if let Err(e) = bootstrapped {
            member.shutdown().await;
            return Err(e);
        }
        Ok(member)
    }
    .await;
    let member = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = settings.data.wipe();
            return Err(e);
        }
    };
    let digest = pki::digest_pem(&ca.cert_pem).map_err(storage)?;
    Ok((
        member,
        InitResponse {
            cluster_id,
            node_id,
            worker_token: JoinToken::new(&digest, &secrets.worker_secret).to_string(),
            manager_addr: control_addr,
        },
    ))
}

async fn bootstrap(
    member: &Member,
    ca_pem: &str,
    secrets: Secrets,
    addr_pools: PoolConfig,
    advertise: IpAddr,
) -> Result<(), ClusterError> {
    let raft = member
        .raft()
        .ok_or_else(|| ClusterError::Unavailable("Raft did not start".into()))?;
    let identity = member.identity();
    let mut members = BTreeMap::new();
    members.insert(
        member.node_id.0,
        BasicNode::new(identity.control_addr.to_string()),
    );
    raft.raft
        .initialize(members)
        .await
        .map_err(|e| ClusterError::Storage(format!("cannot initialise Raft: {e}")))?;
    let until = Instant::now() + Duration::from_secs(10);
    while !raft.is_leader() {
        if Instant::now() > until {
            return Err(ClusterError::Unavailable(
                "this node did not become the Raft leader".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = now_ms();
    let node = Node {
        id: member.node_id,
        name: identity.name.clone(),
        role: Role::Manager,
        availability: Availability::Active,
        status: NodeStatus::Ready,
        addr: advertise,
        control_addr: identity.control_addr,
        joined_at_ms: now,
        status_since_ms: now,
        availability_since_ms: now,
        labels: Default::default(),
        report: Default::default(),
        wireguard: None,
    };
    let command = Command::Bootstrap {
        cluster_id: member.cluster_id.clone(),
        ca_cert_pem: ca_pem.to_string(),
        secrets,
        addr_pools,
        node,
    };
    member.propose_local(&raft, command).await?;
    Ok(())
}

/// Parses `IP:PORT` or `IP` (port 2377).
fn parse_remote(s: &str) -> Result<SocketAddr, ClusterError> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, CONTROL_PORT));
    }
    Err(ClusterError::Invalid(format!(
        "manager address {s:?} is not IP:PORT (for example 198.18.0.1:2377)"
    )))
}

/// `cluster join`: pins the CA by the token's digest, asks a manager for admission,
/// saves the certificate and starts as a member. The second result says whether the new
/// member caught up in time (the node is admitted either way).
pub async fn join(
    settings: &Settings,
    cmd: JoinCommand,
) -> Result<(Arc<Member>, Result<JoinResult, ClusterError>), ClusterError> {
    validate_name("node", &settings.name)?;
    let token: JoinToken = cmd.token.parse()?;
    let remote = parse_remote(&cmd.remote)?;
    let advertise = cmd.advertise_addr.unwrap_or(settings.advertise);
    let control_addr = settings.control_addr(advertise);
    let (key, csr_pem) = new_node_key().map_err(storage)?;
    let client = PeerClient::new(pinned_client_config(&token.ca_digest).map_err(storage)?);
    let request = JoinRequest {
        secret: token.secret.clone(),
        role: cmd.role,
        name: settings.name.clone(),
        addr: advertise,
        control_addr,
        csr_pem,
    };
    let answer: LeaderResponse = client
        .post(remote, "/v1/join", &request, Duration::from_secs(15))
        .await
        .map_err(|e| join_error(remote, &token, e))?;
    let LeaderResponse::Joined(joined) = answer else {
        return Err(ClusterError::Join(format!(
            "the manager at {remote} gave an unexpected answer"
        )));
    };
    let identity = Identity {
        cluster_id: joined.cluster_id.clone(),
        node_id: joined.node_id,
        name: settings.name.clone(),
        role: joined.role,
        addr: advertise,
        control_addr,
        listen_addr: settings.listen,
        managers: if joined.managers.is_empty() {
            vec![remote]
        } else {
            joined.managers.clone()
        },
    };
    let tls = NodeTls {
        ca_pem: joined.ca_pem.clone(),
        cert_pem: joined.cert_pem.clone(),
        key_pem: key.serialize_pem(),
    };
    settings.data.save(&identity, &tls).map_err(storage)?;
    let member = match Member::start(settings.data.clone(), identity, tls).await {
        Ok(m) => m,
        Err(e) => {
            let _ = settings.data.wipe();
            return Err(ClusterError::Join(format!(
                "admitted as node {} but cannot start: {e}; remove it with `shoal node rm --force {}` on a manager",
                joined.node_id, settings.name
            )));
        }
    };
    let result = JoinResult {
        cluster_id: joined.cluster_id,
        node_id: joined.node_id,
        role: joined.role,
    };
    let caught_up = wait_caught_up(&member, joined.role).await.map(|()| result);
    Ok((member, caught_up))
}

fn join_error(remote: SocketAddr, token: &JoinToken, e: PeerError) -> ClusterError {
    match e {
        PeerError::Unreachable { reason, .. } if reason.contains(PIN_MISMATCH) => ClusterError::Join(format!(
            "the manager at {remote} presented a CA that does not match the token (expected CA digest {}): the token belongs to another cluster, or the connection is intercepted",
            token.ca_digest
        )),
        PeerError::Unreachable { reason, .. } => ClusterError::Join(format!(
            "cannot reach the manager at {remote}: {reason}"
        )),
        PeerError::Timeout { after, .. } => ClusterError::Join(format!(
            "the manager at {remote} did not answer within {}s",
            after.as_secs()
        )),
        PeerError::Remote { message, status, .. } => match status {
            403 => ClusterError::Forbidden(format!("join refused: {message}")),
            _ => ClusterError::Join(format!("join refused by {remote}: {message}")),
        },
        other => ClusterError::Join(other.to_string()),
    }
}

async fn wait_caught_up(member: &Member, role: Role) -> Result<(), ClusterError> {
    let until = Instant::now() + CATCH_UP;
    loop {
        let in_state = member.replica.state().nodes.contains_key(&member.node_id);
        let voter = match role {
            Role::Worker => true,
            Role::Manager => member
                .raft()
                .is_some_and(|r| r.voters().contains(&member.node_id.0)),
        };
        if in_state && voter {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(ClusterError::Join(format!(
                "joined as node {}, but it has not caught up with the cluster within {}s; see `shoal status`",
                member.node_id,
                CATCH_UP.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Member {
    /// `cluster join-token ROLE [--rotate]` (managers only).
    pub async fn join_token(
        &self,
        role: Role,
        rotate: bool,
    ) -> Result<JoinTokenResponse, ClusterError> {
        let raft = self.raft().ok_or_else(|| {
            ClusterError::Forbidden("join tokens are only available on managers".into())
        })?;
        let token = if rotate {
            match self
                .submit(LeaderRequest::RotateToken { role }, Some(self.node_id))
                .await?
            {
                LeaderResponse::Token { token } => token,
                _ => {
                    return Err(ClusterError::Unavailable(
                        "the leader returned no token".into(),
                    ))
                }
            }
        } else {
            let digest = pki::digest_pem(&self.ca_pem()).map_err(storage)?;
            let secrets = raft.sm.secrets();
            JoinToken::new(&digest, secrets.secret_for(role)).to_string()
        };
        Ok(JoinTokenResponse {
            role,
            token,
            manager_addr: self.identity().control_addr,
        })
    }

    /// `cluster leave`: a worker just goes (it shows as Down until `node rm`); a manager
    /// needs `force`, and first tries to leave the Raft voters so the others keep quorum.
    pub async fn leave(&self, force: bool) -> Result<(), ClusterError> {
        let identity = self.identity();
        if identity.role == Role::Manager && !self.is_removed() {
            let state = self.replica.state();
            let managers = state.managers().count();
            if !force {
                return Err(ClusterError::Invalid(format!(
                    "this node is a manager ({managers} in the cluster): demote it first with `shoal node demote {}`, or use --force{}",
                    identity.name,
                    if managers == 1 { " (as the last manager this destroys the cluster)" } else { "" }
                )));
            }
            if managers > 1 {
                let demote = LeaderRequest::Demote {
                    node: self.node_id.to_string(),
                };
                match self.submit(demote, Some(self.node_id)).await {
                    Ok(_) => self.wait_not_voter().await,
                    Err(e) => tracing::warn!(error = %e, "leaving without demotion"),
                }
            }
        }
        self.shutdown().await;
        self.data.wipe().map_err(storage)
    }

    async fn wait_not_voter(&self) {
        let until = Instant::now() + Duration::from_secs(10);
        while let Some(raft) = self.raft() {
            if !raft.voters().contains(&self.node_id.0) || Instant::now() > until {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_addr_pools_of_both_families_are_split() {
        let given = ["fd00:aa::/48".to_string(), "172.20.0.0/16".to_string()];
        let cfg = pool_config(&given, Some(26)).unwrap();
        assert_eq!(cfg.pools, vec!["172.20.0.0/16".parse().unwrap()]);
        assert_eq!(cfg.mask_len, 26);
        assert_eq!(cfg.pools6, vec!["fd00:aa::/48".parse().unwrap()]);
        let only6 = pool_config(&["2001:db8::/56".to_string()], None).unwrap();
        assert_eq!(only6.pools, PoolConfig::default().pools);
        assert_eq!(pool_config(&[], None).unwrap(), PoolConfig::default());
        let err = pool_config(&["fd00::/96".to_string()], None).unwrap_err();
        assert!(err.to_string().contains("at least one /64"), "{err}");
        let err = pool_config(&["nope".to_string()], None).unwrap_err();
        assert!(
            err.to_string().contains("--default-addr-pool \"nope\""),
            "{err}"
        );
    }
}
