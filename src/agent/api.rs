//! The agent's HTTP/JSON API on its unix socket; the CLI is its client.
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | /v1/status | this node's view |
//! | GET | /status | the same, as plain text (`shoal status`'s summary) |
//! | POST | /v1/cluster/init, /join, /leave | membership |
//! | GET/POST | /v1/cluster/join-token/{role}[/rotate] | tokens |
//! | GET | /v1/nodes, /v1/nodes/{node} | nodes |
//! | POST | /v1/nodes/{node}/update, /promote, /demote | node changes |
//! | DELETE | /v1/nodes/{node}?force=true | node removal |
//! | POST | /v1/bench/commit | one no-op commit (benchmarks) |
//! | POST | /v1/bench/endpoints | state-only endpoints (benchmarks; see `bench`) |

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shoal_control::api::{InitRequest, JoinCommand, LeaderRequest, LeaveRequest, NodeUpdate};
use shoal_control::state::{Command, Role};
use shoal_control::transport::ErrorBody;
use shoal_control::{ClusterError, Member};

use super::Agent;

type AppState = State<Arc<Agent>>;

fn error(e: &ClusterError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(ErrorBody {
            error: e.to_string(),
        }),
    )
        .into_response()
}

pub(super) fn reply<T: serde::Serialize>(r: Result<T, ClusterError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(&e),
    }
}

/// A JSON body, with a clear error when it is malformed.
pub(super) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ClusterError> {
    b.map(|Json(v)| v)
        .map_err(|e| ClusterError::Invalid(format!("bad request body: {}", e.body_text())))
}

/// The API router.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/v1/status", get(super::status::json))
        .route("/status", get(super::status::text))
        .route("/v1/cluster/init", post(init))
        .route("/v1/cluster/join", post(join))
        .route("/v1/cluster/leave", post(leave))
        .route("/v1/cluster/join-token/{role}", get(join_token))
        .route("/v1/cluster/join-token/{role}/rotate", post(rotate_token))
        .route("/v1/nodes", get(nodes))
        .route("/v1/nodes/{node}", get(node).delete(remove_node))
        .route("/v1/nodes/{node}/update", post(update_node))
        .route("/v1/nodes/{node}/promote", post(promote))
        .route("/v1/nodes/{node}/demote", post(demote))
        .route("/v1/bench/commit", post(bench_commit))
        .route("/v1/cluster/rotate-keys", post(rotate_keys))
        .route("/v1/routes", get(routes))
        .merge(super::networks::routes())
        .merge(super::bench::routes())
        .merge(super::services::routes())
        .merge(super::docker::routes())
        .fallback(|| async { error(&ClusterError::Invalid("no such API endpoint".into())) })
        .with_state(agent)
}

async fn init(State(agent): AppState, b: Result<Json<InitRequest>, JsonRejection>) -> Response {
    let result = async {
        let req = body(b)?;
        let _guard = agent.membership_change.lock().await;
        if let Some(m) = agent.member.load_full() {
            return Err(ClusterError::AlreadyInCluster(m.cluster_id.clone()));
        }
        let settings = agent.settings(req.advertise_addr)?;
        let (member, resp) = shoal_control::member::init(&settings, req).await?;
        agent.activate(member);
        Ok(resp)
    }
    .await;
    reply(result)
}

async fn join(State(agent): AppState, b: Result<Json<JoinCommand>, JsonRejection>) -> Response {
    let result = async {
        let cmd = body(b)?;
        let _guard = agent.membership_change.lock().await;
        if let Some(m) = agent.member.load_full() {
            return Err(ClusterError::AlreadyInCluster(m.cluster_id.clone()));
        }
        let settings = agent.settings(cmd.advertise_addr)?;
        let (member, caught_up) = shoal_control::member::join(&settings, cmd).await?;
        agent.activate(member);
        caught_up
    }
    .await;
    reply(result)
}

async fn leave(State(agent): AppState, b: Result<Json<LeaveRequest>, JsonRejection>) -> Response {
    let result = async {
        let req = body(b)?;
        let _guard = agent.membership_change.lock().await;
        let member = agent.member()?;
        member.leave(req.force).await?;
        agent.remove_tasks().await;
        agent.deactivate();
        agent.member.store(None);
        agent.key_file().remove();
        crate::overlay::reconciler::clean_up(&member.node_id.to_string())
            .await
            .map_err(|e| {
                ClusterError::Unavailable(format!(
                    "left the cluster, but could not remove every kernel object: {e}"
                ))
            })?;
        Ok(serde_json::json!({ "left": member.cluster_id }))
    }
    .await;
    reply(result)
}

fn role(s: &str) -> Result<Role, ClusterError> {
    Ok(Role::parse(s)?)
}

async fn join_token(State(agent): AppState, Path(r): Path<String>) -> Response {
    let result = async { agent.member()?.join_token(role(&r)?, false).await }.await;
    reply(result)
}

async fn rotate_token(State(agent): AppState, Path(r): Path<String>) -> Response {
    let result = async { agent.member()?.join_token(role(&r)?, true).await }.await;
    reply(result)
}

/// The member, once its replica holds everything committed before the call: reads
/// through the API are linearizable (as Docker's, they fail without a quorum).
pub(super) async fn read_member(agent: &Agent) -> Result<Arc<Member>, ClusterError> {
    let m = agent.member()?;
    m.read_barrier().await?;
    Ok(m)
}

async fn nodes(State(agent): AppState) -> Response {
    reply(read_member(&agent).await.map(|m| m.nodes()))
}

async fn node(State(agent): AppState, Path(n): Path<String>) -> Response {
    reply(read_member(&agent).await.and_then(|m| m.node(&n)))
}

/// Submits a request as this node and returns the leader's answer.
async fn as_self(agent: &Agent, request: LeaderRequest) -> Response {
    let result = async {
        let m = agent.member()?;
        m.submit(request, Some(m.node_id)).await
    }
    .await;
    reply(result)
}

async fn update_node(
    State(agent): AppState,
    Path(n): Path<String>,
    b: Result<Json<NodeUpdate>, JsonRejection>,
) -> Response {
    match body(b) {
        Ok(update) => as_self(&agent, LeaderRequest::UpdateNode { node: n, update }).await,
        Err(e) => error(&e),
    }
}

async fn promote(State(agent): AppState, Path(n): Path<String>) -> Response {
    as_self(&agent, LeaderRequest::Promote { node: n }).await
}

async fn demote(State(agent): AppState, Path(n): Path<String>) -> Response {
    as_self(&agent, LeaderRequest::Demote { node: n }).await
}

#[derive(Deserialize)]
struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

async fn remove_node(
    State(agent): AppState,
    Path(n): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Response {
    as_self(
        &agent,
        LeaderRequest::RemoveNode {
            node: n,
            force: q.force,
        },
    )
    .await
}

async fn rotate_keys(State(agent): AppState) -> Response {
    as_self(
        &agent,
        LeaderRequest::Propose {
            command: Command::RotateKeys,
        },
    )
    .await
}

async fn bench_commit(State(agent): AppState) -> Response {
    as_self(
        &agent,
        LeaderRequest::Propose {
            command: Command::Noop,
        },
    )
    .await
}

/// The L7 routes in force on this node.
async fn routes(State(agent): AppState) -> Response {
    Json(agent.ingress.proxy().routes_view()).into_response()
}
