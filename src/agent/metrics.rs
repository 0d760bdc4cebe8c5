//! Prometheus metrics of the agent, read from its state at scrape time, and the
//! plain-text `/status` beside them.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use shoal_control::state::NodeStatus;
use shoal_dataplane::wg::engine::PeerStats;
use tokio::net::TcpListener;

use super::Agent;

/// Serves `/metrics` and `/status` on `listener`.
pub async fn serve(listener: TcpListener, agent: Arc<Agent>) {
    let router = Router::new()
        .route("/metrics", get(scrape))
        .route("/status", get(super::status::text))
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
    text(&agent).await
}

/// The agent's metrics in Prometheus's text format.
pub async fn text(agent: &Agent) -> String {
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
            for status in [NodeStatus::Ready, NodeStatus::Down, NodeStatus::Leaving] {
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
    if let Ok(overlay) = agent.overlay() {
        if let Some((peers, counters)) = overlay.encrypted().peers() {
            wireguard(&registry, &peers, &counters);
        }
    }
    let mut families = registry.gather();
    families.extend(agent.ingress.proxy().metrics_registry().gather());
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&families, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The encrypted data path: the same per-peer figures `shoal status` prints, and drops.
fn wireguard(registry: &Registry, peers: &[PeerStats], counters: &[(&'static str, u64)]) {
    let labels = &["peer", "endpoint"];
    let (Ok(rx), Ok(tx), Ok(age), Ok(drops)) = (
        IntCounterVec::new(
            Opts::new(
                "shoal_wireguard_rx_bytes_total",
                "Payload bytes received from a peer",
            ),
            labels,
        ),
        IntCounterVec::new(
            Opts::new(
                "shoal_wireguard_tx_bytes_total",
                "Payload bytes sent to a peer",
            ),
            labels,
        ),
        IntGaugeVec::new(
            Opts::new(
                "shoal_wireguard_handshake_age_seconds",
                "Seconds since the latest handshake with a peer, -1 if none yet",
            ),
            labels,
        ),
        IntCounterVec::new(
            Opts::new(
                "shoal_wireguard_packets_total",
                "Datagrams of the encrypted data path, by what became of them",
            ),
            &["kind"],
        ),
    ) else {
        return;
    };
    for p in peers {
        let endpoint = p.endpoint.to_string();
        let l = [p.name.as_str(), endpoint.as_str()];
        rx.with_label_values(&l).inc_by(p.rx_bytes);
        tx.with_label_values(&l).inc_by(p.tx_bytes);
        age.with_label_values(&l)
            .set(p.last_handshake.map(|d| d.as_secs() as i64).unwrap_or(-1));
    }
    for (kind, n) in counters {
        drops.with_label_values(&[kind]).inc_by(*n);
    }
    for c in [rx, tx, drops] {
        let _ = registry.register(Box::new(c));
    }
    let _ = registry.register(Box::new(age));
}
