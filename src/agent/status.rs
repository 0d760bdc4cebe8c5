//! This node's view, as JSON for `shoal status` (`GET /v1/status`) and as plain text
//! for people and scripts (`GET /status`, on the API socket and the metrics address):
//! node, role, leader, term, every node, every network, WireGuard peers with handshake
//! ages, ingress routers, tasks.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shoal_control::api::StatusInfo;

use super::Agent;

/// Everything `shoal status` shows.
pub async fn info(agent: &Agent) -> StatusInfo {
    let Some(m) = agent.member.load_full() else {
        return StatusInfo {
            in_cluster: false,
            version: env!("CARGO_PKG_VERSION").to_string(),
            removed: false,
            cluster_id: None,
            node_id: None,
            name: Some(agent.name.clone()),
            role: None,
            addr: agent.advertise,
            control_addr: None,
            leader: None,
            revision: 0,
            nodes_ready: 0,
            nodes_down: 0,
            raft: None,
            watch: None,
            sections: Vec::new(),
        };
    };
    let mut s = m.status();
    s.sections = crate::status::cluster_sections(&m.replica().state(), m.node_id);
    if let Ok(o) = agent.overlay() {
        s.sections.push(o.status());
        s.sections.extend(o.encrypted().status());
    }
    let routes = agent.ingress.proxy().routes_view();
    let with_backends = routes.iter().filter(|r| !r.backends.is_empty()).count();
    s.sections
        .push(crate::status::ingress_section(routes.len(), with_backends));
    if let Some(section) = agent.task_status().await {
        s.sections.push(section);
    }
    s
}

/// `GET /v1/status`.
pub async fn json(State(agent): State<Arc<Agent>>) -> Response {
    Json(info(&agent).await).into_response()
}

/// `GET /status`: the same as `shoal status` prints.
pub async fn text(State(agent): State<Arc<Agent>>) -> Response {
    plain(&agent).await
}

/// The plain-text status of `agent` (the API socket, the metrics address, the dashboard).
pub async fn plain(agent: &Agent) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        crate::status::render(&info(agent).await),
    )
        .into_response()
}
