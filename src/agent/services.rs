//! The agent API for services.
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | POST | /v1/services | `service create` |
//! | GET | /v1/services, /v1/services/{name} | `service ls`, `service inspect`, `service ps` |
//! | POST | /v1/services/{name}/update | `service update`, `service scale` |
//! | DELETE | /v1/services/{name} | `service rm` |

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use shoal_control::api::{ServiceInfo, ServiceUpdate};
use shoal_control::state::{ApplyError, Command, Output, ServiceSpec};
use shoal_control::ClusterError;

use super::api::{body, read_member, reply};
use super::networks::propose;
use super::Agent;

/// The routes of this module.
pub fn routes() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/services", get(list).post(create))
        .route("/v1/services/{name}", get(inspect).delete(remove))
        .route("/v1/services/{name}/update", post(update))
}

async fn create(
    State(agent): State<Arc<Agent>>,
    b: Result<Json<ServiceSpec>, JsonRejection>,
) -> Response {
    let result = async {
        let spec = body(b)?;
        crate::l7::check_labels(&spec.name, &spec.labels).map_err(ClusterError::Invalid)?;
        let m = agent.member()?;
        let id = format!(
            "{:016x}{:08x}",
            rand::random::<u64>(),
            rand::random::<u32>()
        );
        let applied = propose(&m, Command::CreateService { id, spec }).await?;
        match applied.output {
            Output::Service(s) => Ok(ServiceInfo::of(&m.replica().state(), &s)),
            other => Err(ClusterError::Unavailable(format!(
                "unexpected result {other:?}"
            ))),
        }
    }
    .await;
    reply(result)
}

async fn list(State(agent): State<Arc<Agent>>) -> Response {
    reply(
        read_member(&agent)
            .await
            .map(|m| ServiceInfo::all(&m.replica().state())),
    )
}

async fn inspect(State(agent): State<Arc<Agent>>, Path(name): Path<String>) -> Response {
    reply(read_member(&agent).await.and_then(|m| {
        let state = m.replica().state();
        let s = state
            .services
            .get(&name)
            .ok_or(ApplyError::NoSuchService(name))?;
        Ok(ServiceInfo::of(&state, s))
    }))
}

async fn update(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    b: Result<Json<ServiceUpdate>, JsonRejection>,
) -> Response {
    let result = async {
        let u = body(b)?;
        let m = agent.member()?;
        if let Some(s) = m.replica().state().services.get(&name) {
            let mut labels = s.spec.labels.clone();
            labels.extend(u.labels_add.clone());
            for k in &u.labels_rm {
                labels.remove(k);
            }
            crate::l7::check_labels(&name, &labels).map_err(ClusterError::Invalid)?;
        }
        let command = Command::UpdateService { name, changes: u };
        let applied = propose(&m, command).await?;
        match applied.output {
            Output::Service(s) => Ok(ServiceInfo::of(&m.replica().state(), &s)),
            other => Err(ClusterError::Unavailable(format!(
                "unexpected result {other:?}"
            ))),
        }
    }
    .await;
    reply(result)
}

async fn remove(State(agent): State<Arc<Agent>>, Path(name): Path<String>) -> Response {
    let result = async {
        let m = agent.member()?;
        propose(&m, Command::RemoveService { name: name.clone() }).await?;
        Ok(serde_json::json!({ "removed": name }))
    }
    .await;
    reply(result)
}
