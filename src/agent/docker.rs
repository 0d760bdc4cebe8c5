//! The agent API for the Docker plugin process: `POST /v1/docker/<call>` with Docker's
//! request body, answered with Docker's reply (HTTP 200), or `{"Err": ...}` (HTTP 500)
//! for dockerd to show the user.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use super::Agent;
use crate::docker::protocol::ErrorReply;

/// The routes of this module.
pub fn routes() -> Router<Arc<Agent>> {
    Router::new().route("/v1/docker/{call}", post(call))
}

/// Serves Docker's plugin protocols straight from the agent (`--docker-plugin-socket`):
/// `POST /<call>`, the same answers as `/v1/docker/<call>`.
pub async fn serve_plugin(listener: tokio::net::UnixListener, agent: Arc<Agent>) {
    let app = Router::new().route("/{call}", post(call)).with_state(agent);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "Docker plugin socket stopped");
    }
}

async fn call(State(agent): State<Arc<Agent>>, Path(call): Path<String>, body: Bytes) -> Response {
    let member = agent.member().ok();
    let overlay = agent.overlay().ok();
    match agent.docker.call(member, overlay, &call, &body).await {
        Ok(reply) => {
            let quiet = call.ends_with("GetCapabilities") || call.ends_with("EndpointOperInfo");
            if !quiet {
                tracing::info!(call = %call, request = %String::from_utf8_lossy(&body).trim(), "Docker call");
            }
            Json(reply).into_response()
        }
        Err(err) => {
            tracing::info!(call = %call, error = %err, "Docker call refused");
            (StatusCode::INTERNAL_SERVER_ERROR, Json(ErrorReply { err })).into_response()
        }
    }
}
