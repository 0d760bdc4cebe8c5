//! Docker endpoints and networks that went while the agent was away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shoal_control::state::Command;
use shoal_control::Member;

use super::{lock, Driver};
use crate::agent::networks::{detach_and_wait, propose};
use crate::docker::engine::{Engine, EngineNetwork};
use crate::overlay::Overlay;

/// Endpoints younger than this are left alone by the clean-up: Docker lists a
/// container on its network only once it has started.
const SETTLE_MS: u64 = 10_000;
/// How often the clean-up looks.
const CLEANUP_EVERY: Duration = Duration::from_secs(30);

impl Driver {
    /// Keeps this node's Docker endpoints and networks in step with the daemon, at
    /// start and then every half minute: endpoints of containers that went while the
    /// agent was away are detached, Docker networks that went are let go.
    pub async fn follow(
        self: Arc<Self>,
        member: Arc<Member>,
        overlay: Arc<Overlay>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        loop {
            if member.synced() && !member.is_removed() {
                if let Err(e) = self.clean_up(&engine, &member, &overlay).await {
                    tracing::debug!(error = %e, "Docker clean-up skipped");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(CLEANUP_EVERY) => {}
            }
        }
    }

    pub(super) async fn clean_up(
        &self,
        engine: &Engine,
        member: &Member,
        overlay: &Overlay,
    ) -> Result<(), String> {
        let state = member.replica().state();
        let me = member.node_id;
        let now = shoal_control::member::now_ms();
        let mut live: HashMap<String, Option<EngineNetwork>> = HashMap::new();
        for net in state.networks.values() {
            for (docker_id, nodes) in &net.docker {
                if nodes.contains(&me) {
                    live.insert(docker_id.clone(), engine.network(docker_id).await?);
                }
            }
        }
        for e in state.endpoints.values() {
            let Some(runtime_id) = e.runtime_id.as_deref() else {
                continue;
            };
            if e.node != me || !e.handoff || now.saturating_sub(e.created_at_ms) < SETTLE_MS {
                continue;
            }
            let Some(net) = state.networks.get(&e.network) else {
                continue;
            };
            let present = net.docker.keys().any(|id| {
                live.get(id)
                    .and_then(Option::as_ref)
                    .is_some_and(|n| n.containers.values().any(|c| c.endpoint_id == runtime_id))
            });
            if !present {
                tracing::info!(endpoint = %e.id, docker_endpoint = %runtime_id, "its container is gone; detaching");
                if let Err(err) =
                    detach_and_wait(member, Some(overlay), &e.network, e.sandbox.clone()).await
                {
                    tracing::warn!(endpoint = %e.id, error = %err, "cannot detach a gone container's endpoint");
                }
            }
        }
        for (docker_id, net) in live {
            if net.is_none() && !lock(&self.creating).contains_key(&docker_id) {
                tracing::info!(docker_network = %docker_id, "Docker no longer has this network; letting it go");
                let command = Command::UnmapDockerNetwork {
                    node: me,
                    docker_id,
                };
                if let Err(err) = propose(member, command).await {
                    tracing::warn!(error = %err, "cannot let a gone Docker network go");
                }
            }
        }
        Ok(())
    }
}
