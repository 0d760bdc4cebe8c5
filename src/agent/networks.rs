//! The agent API for networks and sandboxes.
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | POST | /v1/networks | `network create` |
//! | GET | /v1/networks, /v1/networks/{name} | `network ls`, `network inspect` |
//! | DELETE | /v1/networks/{name} | `network rm` |
//! | POST | /v1/attach, /v1/detach | sandboxes join and leave networks |
//!
//! `attach` returns once the endpoint's interface exists in the sandbox; if it cannot be
//! set up, the endpoint is detached again, so nothing is left half-made.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use shoal_control::api::{
    AttachRequest, DetachRequest, EndpointInfo, LeaderRequest, LeaderResponse, NetworkInfo,
};
use shoal_control::state::{AttachSpec, Command, Endpoint, EndpointPort, NetworkSpec, Output};
use shoal_control::{ClusterError, Member};
use shoal_dataplane::netns;

use super::api::{body, read_member, reply};
use super::Agent;
use crate::overlay::Overlay;

/// How long `attach` waits for the kernel to have the endpoint.
const PROGRAMMED_WITHIN: Duration = Duration::from_secs(15);

/// The routes of this module.
pub fn routes() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/networks", get(list).post(create))
        .route("/v1/networks/{name}", get(inspect).delete(remove))
        .route("/v1/attach", post(attach))
        .route("/v1/detach", post(detach))
}

pub(crate) async fn propose(
    m: &Member,
    command: Command,
) -> Result<shoal_control::state::Applied, ClusterError> {
    match m
        .submit(LeaderRequest::Propose { command }, Some(m.node_id))
        .await?
    {
        LeaderResponse::Applied(a) => Ok(a),
        other => Err(ClusterError::Unavailable(format!(
            "unexpected answer from the leader: {other:?}"
        ))),
    }
}

async fn create(
    State(agent): State<Arc<Agent>>,
    b: Result<Json<NetworkSpec>, JsonRejection>,
) -> Response {
    let result = async {
        let spec = body(b)?;
        let m = agent.member()?;
        let id = format!("{:024x}", rand_id());
        let applied = propose(&m, Command::CreateNetwork { id, spec }).await?;
        let state = m.replica().state();
        match applied.output {
            Output::Network(n) => Ok(NetworkInfo::of(&state, &n)),
            other => Err(ClusterError::Unavailable(format!(
                "unexpected result {other:?}"
            ))),
        }
    }
    .await;
    reply(result)
}

fn rand_id() -> u128 {
    let mut b = [0u8; 16];
    if getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(1);
        return t ^ (std::process::id() as u128) << 64;
    }
    u128::from_le_bytes(b) & ((1u128 << 96) - 1)
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

async fn list(State(agent): State<Arc<Agent>>) -> Response {
    reply(
        read_member(&agent)
            .await
            .map(|m| NetworkInfo::all(&m.replica().state())),
    )
}

async fn inspect(State(agent): State<Arc<Agent>>, Path(name): Path<String>) -> Response {
    reply(read_member(&agent).await.and_then(|m| {
        let state = m.replica().state();
        let n = state.find_network(&name)?;
        Ok(NetworkInfo::of(&state, n))
    }))
}

async fn remove(State(agent): State<Arc<Agent>>, Path(name): Path<String>) -> Response {
    let result = async {
        let m = agent.member()?;
        propose(
            &m,
            Command::RemoveNetwork {
                network: name.clone(),
            },
        )
        .await?;
        Ok(serde_json::json!({ "removed": name }))
    }
    .await;
    reply(result)
}

/// The sandbox key of `netns` (a path or a name under /run/netns): its canonical path.
/// With `must_exist`, the namespace must be there and be a network namespace.
fn sandbox_key(netns_arg: &str, must_exist: bool) -> Result<String, ClusterError> {
    if netns_arg.is_empty() || netns_arg.len() > 4096 || netns_arg.contains('\0') {
        return Err(ClusterError::Invalid(format!(
            "invalid network namespace {netns_arg:?}"
        )));
    }
    if !netns_arg.contains('/') && !netns::valid_name(netns_arg) {
        return Err(ClusterError::Invalid(format!(
            "invalid network namespace name {netns_arg:?}"
        )));
    }
    let path = netns::path_of(netns_arg);
    if must_exist {
        netns::open(&path.to_string_lossy()).map_err(|e| {
            ClusterError::Invalid(format!(
                "network namespace {netns_arg} does not exist or is not a network namespace ({e}); create it first (for example with `ip netns add`)"
            ))
        })?;
    }
    Ok(std::fs::canonicalize(&path)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned())
}

/// Attaches `spec`'s sandbox and waits until the kernel has the endpoint; on failure
/// the endpoint is detached again, so nothing is left half-made.
pub(crate) async fn attach_and_wait(
    m: &Member,
    overlay: &Overlay,
    spec: AttachSpec,
) -> Result<Endpoint, ClusterError> {
    let sandbox = spec.sandbox.clone();
    let applied = propose(m, Command::Attach { spec }).await?;
    let Output::Endpoint(endpoint) = applied.output else {
        return Err(ClusterError::Unavailable(
            "the leader returned no endpoint".into(),
        ));
    };
    let progress = overlay.wait_for(applied.revision, PROGRAMMED_WITHIN).await;
    let failure = match &progress {
        None => Some(format!(
            "the interface was not set up within {}s",
            PROGRAMMED_WITHIN.as_secs()
        )),
        Some(p) => p.failures.get(&endpoint.id).cloned(),
    };
    if let Some(why) = failure {
        let undo = Command::Detach {
            network: endpoint.network.clone(),
            node: m.node_id,
            sandbox,
        };
        if let Err(e) = propose(m, undo).await {
            tracing::warn!(error = %e, "cannot detach the endpoint that failed to attach");
        }
        return Err(ClusterError::Invalid(format!(
            "cannot attach to {}: {why}",
            endpoint.network
        )));
    }
    Ok(*endpoint)
}

/// Forwards `ports` of this node to a fresh `endpoint` and waits for the kernel; if
/// that fails (a port taken, the rules refused), the endpoint is detached again.
async fn forward_or_undo(
    m: &Member,
    overlay: &Overlay,
    endpoint: &Endpoint,
    ports: Vec<EndpointPort>,
) -> Result<(), ClusterError> {
    let command = Command::SetEndpointPorts {
        node: m.node_id,
        endpoint: endpoint.id.clone(),
        ports,
    };
    let failure = match propose(m, command).await {
        Err(e) => e,
        Ok(applied) => match overlay.wait_for(applied.revision, PROGRAMMED_WITHIN).await {
            Some(_) => return Ok(()),
            None => ClusterError::Unavailable(format!(
                "the forwarded ports were not set up within {}s",
                PROGRAMMED_WITHIN.as_secs()
            )),
        },
    };
    let sandbox = endpoint.sandbox.clone();
    if let Err(e) = detach_and_wait(m, Some(overlay), &endpoint.network, sandbox).await {
        tracing::warn!(error = %e, "cannot detach the endpoint whose ports failed");
    }
    Err(failure)
}

/// Detaches a sandbox from a network and waits until the kernel has forgotten it.
pub(crate) async fn detach_and_wait(
    m: &Member,
    overlay: Option<&Overlay>,
    network: &str,
    sandbox: String,
) -> Result<(), ClusterError> {
    let command = Command::Detach {
        network: network.to_string(),
        node: m.node_id,
        sandbox,
    };
    let applied = propose(m, command).await?;
    if let Some(o) = overlay {
        o.wait_for(applied.revision, PROGRAMMED_WITHIN).await;
    }
    Ok(())
}

async fn attach(
    State(agent): State<Arc<Agent>>,
    b: Result<Json<AttachRequest>, JsonRejection>,
) -> Response {
    let result = async {
        let req = body(b)?;
        let m = agent.member()?;
        let sandbox = sandbox_key(&req.netns, true)?;
        let mac = req
            .mac
            .as_deref()
            .map(shoal_ipam::parse_mac)
            .transpose()
            .map_err(|e| ClusterError::Invalid(e.to_string()))?;
        let spec = AttachSpec {
            network: req.network.clone(),
            node: m.node_id,
            sandbox,
            name: req.name,
            aliases: req.aliases,
            ip: req.ip,
            ip6: req.ip6,
            service: req.service,
            task: None,
            ingress: false,
            ifname: req.ifname,
            mac,
            runtime_id: req.owner,
            ..Default::default()
        };
        let overlay = agent.overlay()?;
        let endpoint = attach_and_wait(&m, &overlay, spec).await?;
        if !req.ports.is_empty() {
            forward_or_undo(&m, &overlay, &endpoint, req.ports).await?;
        }
        let state = m.replica().state();
        let net = state.find_network(&endpoint.network)?;
        let endpoint = state.endpoints.get(&endpoint.id).unwrap_or(&endpoint);
        Ok(EndpointInfo::of(&state, net, endpoint))
    }
    .await;
    reply(result)
}

async fn detach(
    State(agent): State<Arc<Agent>>,
    b: Result<Json<DetachRequest>, JsonRejection>,
) -> Response {
    let result = async {
        let req = body(b)?;
        let m = agent.member()?;
        let sandbox = sandbox_key(&req.netns, false)?;
        let overlay = agent.overlay().ok();
        detach_and_wait(&m, overlay.as_deref(), &req.network, sandbox).await?;
        Ok(serde_json::json!({ "detached": req.network }))
    }
    .await;
    reply(result)
}
