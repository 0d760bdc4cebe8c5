//! Benchmark-only API: endpoints that exist only in the cluster state.
//!
//! `POST /v1/bench/endpoints` attaches and detaches state-only endpoints (see
//! [`StateOnlyEndpoint`]) on one network of one node, in commits of at most `batch`
//! changes each. Every node programs them as it programs any endpoint of another node
//! (FDB, neighbour table, DNS); their own node carries their network but makes no
//! sandbox for them. `shoal bench scale` uses it to reach 10,000 endpoints.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shoal_control::state::{Command, StateOnlyEndpoint, MAX_STATE_ONLY_BATCH};
use shoal_control::ClusterError;

use super::api::{body, reply};
use super::networks::propose;
use super::Agent;

/// At most this many changes per request.
pub const MAX_CHANGES: usize = 100_000;
/// The commit size when the request names none.
pub const DEFAULT_BATCH: usize = 500;

/// What `POST /v1/bench/endpoints` asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchEndpoints {
    /// The network (name or ID).
    pub network: String,
    /// The node they are on (name or ID).
    pub node: String,
    /// Endpoints to attach.
    #[serde(default)]
    pub attach: Vec<StateOnlyEndpoint>,
    /// Keys of endpoints to detach.
    #[serde(default)]
    pub detach: Vec<String>,
    /// Changes per commit (1-5000; default 500).
    #[serde(default)]
    pub batch: Option<usize>,
}

/// What it answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchEndpointsDone {
    /// How many commits it took.
    pub commits: usize,
    /// The state's revision after the last one.
    pub revision: u64,
}

pub fn routes() -> Router<Arc<Agent>> {
    Router::new().route("/v1/bench/endpoints", post(endpoints))
}

/// One commit: endpoints to add, and IDs of endpoints to remove.
type Batch = (Vec<StateOnlyEndpoint>, Vec<String>);

/// The commits a request becomes: attaches first, then detaches, `batch` changes each.
fn batches(req: &BenchEndpoints) -> Result<Vec<Batch>, ClusterError> {
    let batch = req.batch.unwrap_or(DEFAULT_BATCH);
    if !(1..=MAX_STATE_ONLY_BATCH).contains(&batch) {
        return Err(ClusterError::Invalid(format!(
            "batch must be 1-{MAX_STATE_ONLY_BATCH}, not {batch}"
        )));
    }
    let total = req.attach.len() + req.detach.len();
    if total == 0 || total > MAX_CHANGES {
        return Err(ClusterError::Invalid(format!(
            "give 1-{MAX_CHANGES} endpoints to attach or detach, not {total}"
        )));
    }
    let mut out: Vec<(Vec<StateOnlyEndpoint>, Vec<String>)> = req
        .attach
        .chunks(batch)
        .map(|c| (c.to_vec(), Vec::new()))
        .collect();
    out.extend(req.detach.chunks(batch).map(|c| (Vec::new(), c.to_vec())));
    Ok(out)
}

async fn endpoints(
    State(agent): State<Arc<Agent>>,
    b: Result<Json<BenchEndpoints>, JsonRejection>,
) -> axum::response::Response {
    let result = async {
        let req = body(b)?;
        let plan = batches(&req)?;
        let m = agent.member()?;
        let node = m
            .replica()
            .state()
            .find_node(&req.node)
            .map_err(|e| ClusterError::Invalid(e.to_string()))?
            .id;
        let mut done = BenchEndpointsDone {
            commits: 0,
            revision: 0,
        };
        for (attach, detach) in plan {
            let command = Command::StateOnlyEndpoints {
                network: req.network.clone(),
                node,
                attach,
                detach,
            };
            done.revision = propose(&m, command).await?.revision;
            done.commits += 1;
        }
        Ok(done)
    }
    .await;
    reply(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(attach: usize, detach: usize, batch: Option<usize>) -> BenchEndpoints {
        BenchEndpoints {
            network: "net".into(),
            node: "n1".into(),
            attach: (0..attach)
                .map(|i| StateOnlyEndpoint {
                    key: format!("e{i}"),
                    name: None,
                    service: None,
                })
                .collect(),
            detach: (0..detach).map(|i| format!("d{i}")).collect(),
            batch,
        }
    }

    #[test]
    fn requests_become_batches_of_at_most_batch_changes() {
        let plan = batches(&req(1200, 10, None)).unwrap();
        let sizes: Vec<(usize, usize)> = plan.iter().map(|(a, d)| (a.len(), d.len())).collect();
        assert_eq!(sizes, vec![(500, 0), (500, 0), (200, 0), (0, 10)]);
        assert_eq!(plan[1].0[0].key, "e500");
        let plan = batches(&req(3, 3, Some(2))).unwrap();
        assert_eq!(plan.len(), 4);
    }

    #[test]
    fn bad_requests_are_refused() {
        for (r, want) in [
            (req(0, 0, None), "give 1-"),
            (req(1, 0, Some(0)), "batch must be"),
            (req(1, 0, Some(5001)), "batch must be"),
            (req(MAX_CHANGES, 1, None), "give 1-"),
        ] {
            let err = batches(&r).unwrap_err().to_string();
            assert!(err.contains(want), "{err} lacks {want}");
        }
    }
}
