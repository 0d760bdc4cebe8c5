//! Prometheus metrics of the agent, read from its state at scrape time.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use shoal_control::state::NodeStatus;
use tokio::net::TcpListener;

use super::Agent;

/// Serves `/metrics` on `listener`.
pub async fn serve(listener: TcpListener, agent: Arc<Agent>) {
    let router = Router::new()
        .route("/metrics", get(scrape))
        .with_state(agent);
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "metrics server stopped");
    }
}

fn gauge(registry: &Registry, name: &str, help: &str, value: i64) {
    if let Ok(g) = IntGauge::new(name, help) {
        g.set(value);
        let _ = registry.register(Box::new(g));
    }
}

async fn scrape(State(agent): State<Arc<Agent>>) -> String {
    let registry = Registry::new();
    let member = agent.member.load_full();
    gauge(
        &registry,
        "shoal_in_cluster",
        "1 if this node is a cluster member",
        member.is_some() as i64,
    );
    if let Some(m) = member {
        let state = m.replica().state();
        gauge(
            &registry,
            "shoal_state_revision",
            "Revision of the cluster state this node has",
            state.revision as i64,
        );
        if let Ok(nodes) =
            IntGaugeVec::new(Opts::new("shoal_nodes", "Nodes by status"), &["status"])
        {
            for status in [NodeStatus::Ready, NodeStatus::Down] {
                let n = state.nodes.values().filter(|n| n.status == status).count();
                nodes.with_label_values(&[status.as_str()]).set(n as i64);
            }
            let _ = registry.register(Box::new(nodes));
        }
        if let Some(raft) = m.raft() {
            let metrics = raft.metrics();
            gauge(
                &registry,
                "shoal_raft_term",
                "Current Raft term",
                metrics.current_term as i64,
            );
            gauge(
                &registry,
                "shoal_raft_is_leader",
                "1 if this manager leads",
                raft.is_leader() as i64,
            );
            gauge(
                &registry,
                "shoal_raft_last_log_index",
                "Last Raft log index",
                metrics.last_log_index.unwrap_or(0) as i64,
            );
            gauge(
                &registry,
                "shoal_raft_applied_index",
                "Last applied Raft log index",
                metrics.last_applied.map(|l| l.index).unwrap_or(0) as i64,
            );
        }
    }
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}
