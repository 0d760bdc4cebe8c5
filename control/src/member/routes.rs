//! The control server's endpoints (mTLS, node to node). Who may call each, and with
//! how large a body, is checked first, by [`gate`](super::gate).
//!
//! | path | who may call |
//! | --- | --- |
//! | `/raft/*` | managers |
//! | `/v1/join` | anyone with a join token (no certificate yet), rate-limited |
//! | `/v1/leader` | members; workers only for themselves |
//! | `/v1/watch?since=REV` | members |

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest,
};
use serde::Deserialize;

use super::gate::{gate, JOIN_BODY, MEMBER_BODY, RAFT_BODY};
use super::submit::LEADER_PATH;
use super::Member;
use crate::api::{Forwarded, JoinRequest, LeaderRequest};
use crate::error::ClusterError;
use crate::pki::PeerIdentity;
use crate::raft::network::paths;
use crate::raft::prevote::{decide, PreVoteRequest};
use crate::raft::TypeConfig;
use crate::server::Caller;
use crate::state::Role;
use crate::transport::ErrorBody;
use crate::watch::{Outgoing, WatchEvent};

/// Turns an error into a JSON error response with its status.
pub fn error_response(e: &ClusterError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(ErrorBody {
            error: e.to_string(),
        }),
    )
        .into_response()
}

fn reply<T: serde::Serialize>(r: Result<T, ClusterError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => error_response(&e),
    }
}

/// The control router for `member`.
/// Callers are checked by [`gate`] before any body is read; each group of routes has
/// its own body limit.
pub fn router(member: Arc<Member>) -> Router {
    let raft = Router::new()
        .route(paths::APPEND, post(append))
        .route(paths::VOTE, post(vote))
        .route(paths::SNAPSHOT, post(snapshot))
        .route(paths::PREVOTE, post(prevote))
        .layer(DefaultBodyLimit::max(RAFT_BODY));
    let members = Router::new()
        .route(LEADER_PATH, post(leader))
        .route("/v1/watch", get(watch))
        .layer(DefaultBodyLimit::max(MEMBER_BODY));
    let anyone = Router::new()
        .route("/v1/join", post(join))
        .layer(DefaultBodyLimit::max(JOIN_BODY));
    raft.merge(members)
        .merge(anyone)
        .layer(axum::middleware::from_fn_with_state(member.clone(), gate))
        .with_state(member)
}

impl Member {
    /// The verified identity of a member calling us, refusing removed nodes.
    pub(super) fn member_caller(&self, caller: &Caller) -> Result<PeerIdentity, ClusterError> {
        let id = caller.0.clone().ok_or_else(|| {
            ClusterError::Forbidden("this endpoint needs a node certificate".into())
        })?;
        if self.replica.state().removed.contains(&id.node_id) {
            return Err(ClusterError::Forbidden(format!(
                "node {} has been removed from the cluster",
                id.node_id
            )));
        }
        Ok(id)
    }

    pub(super) fn raft_caller(
        &self,
        caller: &Caller,
    ) -> Result<Arc<super::RaftNode>, ClusterError> {
        let id = self.member_caller(caller)?;
        if self.role_of(id.node_id, id.role) != Role::Manager {
            return Err(ClusterError::Forbidden(format!(
                "node {} is not a manager",
                id.node_id
            )));
        }
        self.raft().ok_or_else(|| {
            ClusterError::Unavailable("this node is not a manager (no Raft here)".into())
        })
    }
}

async fn append(
    State(m): State<Arc<Member>>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<AppendEntriesRequest<TypeConfig>>,
) -> Response {
    let raft = match m.raft_caller(&caller) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let result = raft.raft.append_entries(req).await;
    if matches!(&result, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
        raft.contact.touch();
    }
    Json(result).into_response()
}

async fn vote(
    State(m): State<Arc<Member>>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<VoteRequest<u64>>,
) -> Response {
    match m.raft_caller(&caller) {
        Ok(raft) => Json(raft.raft.vote(req).await).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn snapshot(
    State(m): State<Arc<Member>>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    match m.raft_caller(&caller) {
        Ok(raft) => {
            let result = raft.raft.install_snapshot(req).await;
            if result.is_ok() {
                raft.contact.touch();
            }
            Json(result).into_response()
        }
        Err(e) => error_response(&e),
    }
}

async fn prevote(
    State(m): State<Arc<Member>>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<PreVoteRequest>,
) -> Response {
    match m.raft_caller(&caller) {
        Ok(raft) => Json(decide(
            raft.is_leader(),
            raft.contact.elapsed(),
            raft.log.last_log_id(),
            &req,
        ))
        .into_response(),
        Err(e) => error_response(&e),
    }
}

async fn join(State(m): State<Arc<Member>>, Json(req): Json<JoinRequest>) -> Response {
    if m.raft().is_none() {
        return error_response(&ClusterError::Invalid(
            "this node is a worker; join through a manager's address".into(),
        ));
    }
    reply(m.submit(LeaderRequest::Join(req), None).await)
}

async fn leader(
    State(m): State<Arc<Member>>,
    Extension(caller): Extension<Caller>,
    Json(fwd): Json<Forwarded>,
) -> Response {
    let id = match m.member_caller(&caller) {
        Ok(id) => id,
        Err(e) => return error_response(&e),
    };
    let requester = if m.role_of(id.node_id, id.role) == Role::Manager {
        fwd.on_behalf_of.unwrap_or(id.node_id)
    } else {
        id.node_id
    };
    reply(
        m.submit_with(
            fwd.request,
            Some(requester),
            fwd.hops,
            super::submit::SUBMIT_DEADLINE,
        )
        .await,
    )
}

#[derive(Deserialize)]
struct WatchQuery {
    #[serde(default)]
    since: u64,
}

/// Interval of keep-alive pings on the watch stream.
const PING_EVERY: Duration = Duration::from_secs(2);

async fn watch(
    State(m): State<Arc<Member>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<WatchQuery>,
) -> Response {
    if let Err(e) = m.member_caller(&caller) {
        return error_response(&e);
    }
    let sub = m.replica.subscribe(q.since);
    let mut backlog: VecDeque<_> = sub.backlog.into();
    // After the catch-up, a ping with the revision the watcher now stands at: it knows it
    // has caught up when it gets there.
    backlog.push_back(Outgoing::new(WatchEvent::Ping {
        revision: m.replica.revision(),
    }));
    let stop = m.stop.clone();
    let replica = m.replica.clone();
    let counted = replica.sent.watcher();
    let stream = futures::stream::unfold(
        (backlog, sub.live, stop, replica, counted),
        |(mut backlog, mut live, stop, replica, counted)| async move {
            let event = match backlog.pop_front() {
                Some(e) => e,
                None => tokio::select! {
                    _ = stop.cancelled() => return None,
                    r = live.recv() => match r {
                        Ok(e) => e,
                        // Lagged or closed: end the stream; the watcher resumes from its revision.
                        Err(_) => return None,
                    },
                    _ = tokio::time::sleep(PING_EVERY) => Outgoing::new(WatchEvent::Ping { revision: replica.revision() }),
                },
            };
            let line = event.line()?.clone();
            replica.sent.sent(&event.event, line.len());
            Some((
                Ok::<_, std::convert::Infallible>(line),
                (backlog, live, stop, replica, counted),
            ))
        },
    );
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(axum::body::Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
