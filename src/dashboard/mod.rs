//! The web dashboard every agent serves (`--dashboard-addr`, 127.0.0.1:6790 by default):
//! one page, its script and style inside the binary, fed by the same JSON scripts read.
//!
//! | path | what |
//! | --- | --- |
//! | `/` | the page, with the overview inside it for the first paint |
//! | `/api/overview` | every panel in one document ([`model::Overview`]) |
//! | `/api/cluster` | nodes, leader, term, Raft lag ([`model::ClusterPanel`]) |
//! | `/api/nodes` | as `shoal node ls --format json` |
//! | `/api/networks` | as `shoal network ls --format json` |
//! | `/api/services` | as `shoal service ls --format json` |
//! | `/api/routes` | as `shoal route ls --format json` |
//! | `/api/ingress` | entrypoints, routers with health and traffic ([`model::IngressPanel`]) |
//! | `/api/mesh` | each node's view of each other ([`model::MeshPanel`]) |
//! | `/api/events` | server-sent events: `overview` on every change, and every 2 s |
//! | `/status`, `/metrics` | plain text, Prometheus text |
//!
//! The panels show this node's replica of the state (no leader needed: a dashboard is
//! most wanted when the cluster is unwell), at the revision each document names.
//! Beyond loopback every request needs the bearer token ([`auth`]).

mod assets;
pub mod auth;
pub mod model;
pub mod probe;
pub mod traffic;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use shoal_control::api::{NetworkInfo, ServiceInfo};
use shoal_control::member::now_ms;
use shoal_control::mesh::MeshView;
use shoal_control::{ClusterError, Member};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::agent::Agent;
use model::{MeshPanel, Overview};

/// How often live pages get a fresh overview when nothing changed (rates, mesh).
const REFRESH: Duration = Duration::from_secs(2);
/// Changes that arrive this close together go out as one update.
const COALESCE: Duration = Duration::from_millis(25);
/// How long the leader's mesh views are reused.
const MESH_FRESH: Duration = Duration::from_secs(1);

/// How often a live page gets a fresh overview when nothing changed.
pub fn refresh() -> Duration {
    REFRESH + COALESCE
}

/// The leader's mesh views, or why there are none.
type MeshViews = Result<Vec<MeshView>, String>;

/// The dashboard of one agent.
pub struct Dashboard {
    agent: Arc<Agent>,
    access: auth::Access,
    /// The previous reading of the ingress's metrics (rates are over the time since).
    traffic: Mutex<Option<traffic::Sample>>,
    /// The leader's latest mesh views, and when they were asked for.
    mesh: tokio::sync::Mutex<Option<(Instant, MeshViews)>>,
}

/// Serves the dashboard on `listener` until the process ends.
pub async fn serve(listener: TcpListener, agent: Arc<Agent>, access: auth::Access) {
    let dashboard = Arc::new(Dashboard {
        agent,
        access,
        traffic: Mutex::new(None),
        mesh: tokio::sync::Mutex::new(None),
    });
    let router = Router::new()
        .route("/", get(page))
        .route("/app.js", get(|| async { assets::script() }))
        .route("/app.css", get(|| async { assets::style() }))
        .route("/api/overview", get(overview))
        .route("/api/cluster", get(cluster))
        .route("/api/nodes", get(nodes))
        .route("/api/networks", get(networks))
        .route("/api/services", get(services))
        .route("/api/routes", get(routes))
        .route("/api/ingress", get(ingress))
        .route("/api/mesh", get(mesh))
        .route("/api/events", get(events))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page on the dashboard\n") })
        .layer(axum::middleware::from_fn_with_state(
            dashboard.clone(),
            auth::check,
        ))
        .with_state(dashboard);
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "dashboard server stopped");
    }
}

type Shared = State<Arc<Dashboard>>;

fn unavailable(e: &ClusterError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
}

fn json_or_error<T: serde::Serialize>(r: Result<T, ClusterError>) -> Response {
    match r {
        Ok(v) => ([(header::CACHE_CONTROL, "no-store")], Json(v)).into_response(),
        Err(e) => unavailable(&e),
    }
}

impl Dashboard {
    fn member(&self) -> Result<Arc<Member>, ClusterError> {
        self.agent.member()
    }

    /// The ingress panel, with traffic over the time since the previous reading (at
    /// least a second ago).
    fn ingress(&self) -> model::IngressPanel {
        let proxy = self.agent.ingress.proxy();
        let now = traffic::sample(&proxy.metrics_registry().gather(), now_ms());
        let routers = {
            let mut last = self.traffic.lock().unwrap_or_else(|e| e.into_inner());
            let routers = traffic::routers(last.as_ref(), &now);
            if last.as_ref().is_none_or(|l| now.at_ms >= l.at_ms + 1000) {
                *last = Some(now.clone());
            }
            routers
        };
        model::ingress_panel(
            self.agent.ingress.entrypoints(),
            proxy.routes_view(),
            &routers,
            now.services,
        )
    }

    /// Every node's view of the mesh, asked from the leader at most once a second.
    async fn mesh(&self, member: &Member) -> MeshPanel {
        let views = {
            let mut cached = self.mesh.lock().await;
            match &*cached {
                Some((at, views)) if at.elapsed() < MESH_FRESH => views.clone(),
                _ => {
                    let views = tokio::time::timeout(Duration::from_secs(1), member.mesh_views())
                        .await
                        .unwrap_or_else(|_| {
                            Err(ClusterError::Unavailable(
                                "the leader did not answer".into(),
                            ))
                        })
                        .map_err(|e| e.to_string());
                    *cached = Some((Instant::now(), views.clone()));
                    views
                }
            }
        };
        let state = member.replica().state();
        match views {
            Ok(v) => model::mesh_panel(&state, &v),
            Err(error) => MeshPanel {
                error: Some(error),
                ..model::mesh_panel(&state, &[])
            },
        }
    }

    fn cluster(&self, member: &Member) -> model::ClusterPanel {
        let state = member.replica().state();
        let matched: BTreeMap<u64, u64> = member
            .raft()
            .and_then(|r| r.metrics().replication)
            .map(|rep| {
                rep.iter()
                    .filter_map(|(id, log)| log.map(|l| (*id, l.index)))
                    .collect()
            })
            .unwrap_or_default();
        model::cluster_panel(
            &state,
            &member.identity().name,
            member.nodes(),
            member.status().raft,
            &matched,
        )
    }

    async fn overview(&self) -> Result<Overview, ClusterError> {
        let member = self.member()?;
        let state = member.replica().state();
        let mesh = self.mesh(&member).await;
        Ok(Overview {
            generated_at_ms: now_ms(),
            revision: state.revision,
            cluster: self.cluster(&member),
            networks: NetworkInfo::all(&state)
                .iter()
                .map(model::NetworkSummary::of)
                .collect(),
            services: ServiceInfo::all(&state),
            ingress: self.ingress(),
            mesh,
        })
    }
}

async fn page(State(d): Shared) -> Response {
    let initial = match d.overview().await {
        Ok(o) => serde_json::to_string(&o).unwrap_or_default(),
        Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
    };
    assets::page(&initial)
}

async fn overview(State(d): Shared) -> Response {
    json_or_error(d.overview().await)
}

async fn cluster(State(d): Shared) -> Response {
    json_or_error(d.member().map(|m| d.cluster(&m)))
}

async fn nodes(State(d): Shared) -> Response {
    json_or_error(d.member().map(|m| m.nodes()))
}

async fn networks(State(d): Shared) -> Response {
    json_or_error(d.member().map(|m| NetworkInfo::all(&m.replica().state())))
}

async fn services(State(d): Shared) -> Response {
    json_or_error(d.member().map(|m| ServiceInfo::all(&m.replica().state())))
}

async fn routes(State(d): Shared) -> Response {
    json_or_error(Ok::<_, ClusterError>(d.agent.ingress.proxy().routes_view()))
}

async fn ingress(State(d): Shared) -> Response {
    json_or_error(Ok::<_, ClusterError>(d.ingress()))
}

async fn mesh(State(d): Shared) -> Response {
    match d.member() {
        Ok(m) => json_or_error(Ok::<_, ClusterError>(d.mesh(&m).await)),
        Err(e) => unavailable(&e),
    }
}

async fn status(State(d): Shared) -> Response {
    crate::agent::status_text(&d.agent).await
}

async fn metrics(State(d): Shared) -> Response {
    crate::agent::metrics_text(&d.agent).await.into_response()
}

/// One event: the overview, or why there is none.
async fn event(d: &Dashboard) -> Event {
    match d.overview().await {
        Ok(o) => Event::default()
            .event("overview")
            .json_data(&o)
            .unwrap_or_else(|e| Event::default().event("problem").data(e.to_string())),
        Err(e) => Event::default().event("problem").data(e.to_string()),
    }
}

/// `/api/events`: an overview now, then one whenever the state changes (changes within
/// [`COALESCE`] go together) and every [`REFRESH`] otherwise.
async fn events(State(d): Shared) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = d.member().ok().map(|m| m.replica().changes());
    let stream =
        futures::stream::unfold((d, changes, true), |(d, mut changes, first)| async move {
            if !first {
                let changed = async {
                    match changes.as_mut() {
                        Some(c) => {
                            if c.changed().await.is_err() {
                                std::future::pending::<()>().await;
                            }
                            tokio::time::sleep(COALESCE).await;
                            c.borrow_and_update();
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep(REFRESH) => {}
                }
            }
            if changes.is_none() {
                changes = d.member().ok().map(|m| m.replica().changes());
            }
            let e = event(&d).await;
            Some((Ok(e), (d, changes, false)))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A Ready worker `n{id}` at 198.18.0.{id}, for the panels' tests.
#[cfg(test)]
pub(crate) fn test_node(id: u64) -> shoal_control::state::Node {
    use shoal_control::state::{Availability, Node, NodeStatus, Role};
    Node {
        id: shoal_control::NodeId(id),
        name: format!("n{id}"),
        role: Role::Worker,
        availability: Availability::Active,
        status: NodeStatus::Ready,
        addr: format!("198.18.0.{id}").parse().expect("an address"),
        control_addr: format!("198.18.0.{id}:4242").parse().expect("an address"),
        joined_at_ms: 0,
        status_since_ms: 0,
        availability_since_ms: 0,
        labels: BTreeMap::new(),
        report: Default::default(),
        wireguard: None,
    }
}
