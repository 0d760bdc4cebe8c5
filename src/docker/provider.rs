//! The Docker route provider (`shoal proxy --docker`, `shoal agent --ingress-docker`):
//! follows one dockerd's event stream and keeps the routes of its containers and Swarm
//! services in step, without polling.
//!
//! ```text
//!  connect ─▶ GET /events (subscribed first, so nothing falls between list and watch)
//!          ─▶ list: running containers (inspected), Swarm services + tasks (managers)
//!          ─▶ build routes (shoal_ingress::config::docker) ─▶ publish
//!  event   ─▶ re-inspect that container / re-list the Swarm (20 ms of events batched)
//!          ─▶ build ─▶ publish if changed
//!  kill with a stopping signal ─▶ out of the routes at once, before the batch
//!          (see [`super::stopping`]); back on its next start
//!  Swarm not converged (tasks still starting) ─▶ look again after 250 ms, for 60 s
//!  stream ends or Docker fails ─▶ keep the routes, reconnect after 0.1 s … 5 s, list again
//! ```
//! A workload with bad labels is logged once (naming it and the label) and left out;
//! the others keep their routes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ipnet::IpNet;
use shoal_ingress::config::docker::{build, DockerRoutes, DockerSettings, Problem, Severity};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use super::objects::{EngineEvent, InspectedContainer};
use super::{stopping, workloads};

/// How long events are gathered before one rebuild.
const BATCH: Duration = Duration::from_millis(20);
/// How often a Swarm that is still starting tasks is looked at again.
const RECHECK: Duration = Duration::from_millis(250);
/// How long after a Swarm change it is looked at again while not converged.
const CONVERGE: Duration = Duration::from_secs(60);
/// Reconnection delays.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the provider knows of the daemon.
struct Watch {
    engine: Engine,
    settings: DockerSettings,
    containers: BTreeMap<String, InspectedContainer>,
    /// Containers Docker is stopping (a `kill` that ends them): kept out of the routes
    /// while they still run.
    stopping: BTreeSet<String>,
    swarm: Vec<shoal_ingress::config::docker::Workload>,
    swarm_manager: bool,
    converge_until: Option<Instant>,
    recheck_at: Option<Instant>,
    last: Option<DockerRoutes>,
    reported: BTreeSet<Problem>,
}

/// What events asked to look at again.
#[derive(Default)]
struct Dirty {
    containers: BTreeSet<String>,
    swarm: bool,
    /// A container left the routes: publish before gathering more events.
    urgent: bool,
}

/// Runs until `stop`, calling `publish` with the routes whenever they change.
pub async fn run(
    engine: Engine,
    settings: DockerSettings,
    mut publish: impl FnMut(&DockerRoutes) + Send,
    stop: CancellationToken,
) {
    let mut w = Watch {
        engine,
        settings,
        containers: BTreeMap::new(),
        stopping: BTreeSet::new(),
        swarm: Vec::new(),
        swarm_manager: false,
        converge_until: None,
        recheck_at: None,
        last: None,
        reported: BTreeSet::new(),
    };
    let mut delay = BACKOFF_MIN;
    let mut last_error = String::new();
    loop {
        match w.session(&mut publish, &stop, &mut delay).await {
            Ok(()) => return,
            Err(e) => {
                if e != last_error {
                    tracing::warn!(docker = %w.engine.socket().display(), error = %e,
                        "Docker routes: cannot reach the daemon; the routes in force stay, retrying");
                    last_error = e;
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

impl Watch {
    /// One connection: list, then follow events until the stream ends or fails.
    async fn session(
        &mut self,
        publish: &mut impl FnMut(&DockerRoutes),
        stop: &CancellationToken,
        delay: &mut Duration,
    ) -> Result<(), String> {
        let mut events = self.engine.route_events().await?;
        self.list_all().await?;
        *delay = BACKOFF_MIN;
        tracing::info!(docker = %self.engine.socket().display(), containers = self.containers.len(),
            swarm_services = self.swarm.len(), "Docker routes: following the daemon's events");
        self.publish(publish);
        loop {
            let mut dirty = Dirty::default();
            let recheck = self.recheck_at;
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                event = events.next() => {
                    self.note(event?.ok_or("Docker ended the event stream")?, &mut dirty);
                    if dirty.urgent {
                        self.publish(publish);
                    }
                    let until = Instant::now() + BATCH;
                    while let Ok(more) = tokio::time::timeout_at(until, events.next()).await {
                        self.note(more?.ok_or("Docker ended the event stream")?, &mut dirty);
                    }
                }
                _ = tokio::time::sleep_until(recheck.unwrap_or_else(Instant::now)), if recheck.is_some() => {
                    dirty.swarm = true;
                }
            }
            self.apply(dirty).await?;
            self.publish(publish);
        }
    }

    /// Marks what `event` may have changed.
    fn note(&mut self, event: EngineEvent, dirty: &mut Dirty) {
        tracing::debug!(kind = %event.kind, action = %event.action, id = %event.actor.id, "Docker event");
        let swarm = |dirty: &mut Dirty, until: &mut Option<Instant>| {
            dirty.swarm = true;
            *until = Some(Instant::now() + CONVERGE);
        };
        match event.kind.as_str() {
            "container" => {
                if event
                    .actor
                    .attributes
                    .contains_key("com.docker.swarm.service.id")
                {
                    swarm(dirty, &mut self.converge_until);
                }
                self.note_stopping(&event, dirty);
                dirty.containers.insert(event.actor.id);
            }
            "network" => {
                if let Some(c) = event.actor.attributes.get("container") {
                    dirty.containers.insert(c.clone());
                }
            }
            "service" | "node" => swarm(dirty, &mut self.converge_until),
            _ => {}
        }
    }

    /// Keeps [`Watch::stopping`] in step with a container event: a `kill` that ends
    /// the container, or its death, takes it out of the routes now; its next start
    /// brings it back.
    fn note_stopping(&mut self, event: &EngineEvent, dirty: &mut Dirty) {
        let id = &event.actor.id;
        match event.action.as_str() {
            "kill" => {
                let configured = self
                    .containers
                    .get(id)
                    .and_then(|c| c.config.stop_signal.as_deref());
                let signal = event.actor.attributes.get("signal").map(String::as_str);
                if stopping::ends_container(signal, configured) {
                    self.stopping.insert(id.clone());
                    dirty.urgent |= self.containers.remove(id).is_some();
                }
            }
            "start" | "restart" | "unpause" => {
                self.stopping.remove(id);
            }
            // Not running any more: out now, without waiting for an inspect that
            // Docker answers only once it has finished tearing the container down.
            "die" | "stop" | "destroy" | "pause" => {
                self.stopping.remove(id);
                dirty.urgent |= self.containers.remove(id).is_some();
            }
            _ => {}
        }
    }

    /// Looks again at what `dirty` names.
    async fn apply(&mut self, dirty: Dirty) -> Result<(), String> {
        for id in dirty.containers {
            match self.engine.inspect(&id).await? {
                Some(c) if c.state.status == "running" && !self.stopping.contains(&c.id) => {
                    self.containers.insert(c.id.clone(), c);
                }
                _ => {
                    self.containers.retain(|k, _| !k.starts_with(&id));
                }
            }
        }
        if dirty.swarm {
            self.list_swarm().await?;
        }
        Ok(())
    }

    /// Every running container and the Swarm.
    async fn list_all(&mut self) -> Result<(), String> {
        let mut containers = BTreeMap::new();
        for id in self.engine.running_containers().await? {
            if let Some(c) = self.engine.inspect(&id).await? {
                containers.insert(c.id.clone(), c);
            }
        }
        self.containers = containers;
        // What was stopping when the stream broke has stopped or started again since.
        self.stopping.clear();
        self.converge_until = Some(Instant::now() + CONVERGE);
        self.list_swarm().await
    }

    /// The Swarm's services and tasks, when this daemon is a manager.
    async fn list_swarm(&mut self) -> Result<(), String> {
        let info = self.engine.info().await?;
        self.swarm_manager =
            info.swarm.local_node_state == "active" && info.swarm.control_available;
        self.recheck_at = None;
        if !self.swarm_manager {
            self.swarm.clear();
            return Ok(());
        }
        let (services, tasks, networks) = tokio::try_join!(
            self.engine.services(),
            self.engine.running_tasks(),
            self.engine.networks()
        )?;
        let containers = &self.containers;
        self.swarm = workloads::swarm(&services, &tasks, &networks, |id| {
            containers.get(id).cloned()
        });
        let now = Instant::now();
        if !workloads::converged(&services, &tasks) && self.converge_until.is_some_and(|u| u > now)
        {
            self.recheck_at = Some(now + RECHECK);
        }
        Ok(())
    }

    /// The routes of everything known now.
    fn build(&self) -> DockerRoutes {
        let peer = |id: &str| {
            self.containers
                .values()
                .find(|c| c.id.starts_with(id) || c.name.trim_start_matches('/') == id)
                .cloned()
        };
        let mut all: Vec<_> = self
            .containers
            .values()
            // In Swarm mode a task's routes come from its service's labels, not from
            // its container's.
            .filter(|c| !(self.swarm_manager && workloads::is_swarm_task(c)))
            .map(|c| workloads::container(c, peer))
            .collect();
        all.extend(self.swarm.iter().cloned());
        let mut settings = self.settings.clone();
        settings.local_networks = local_networks();
        build(&all, &settings)
    }

    /// Publishes the routes if they changed; logs problems once each.
    fn publish(&mut self, publish: &mut impl FnMut(&DockerRoutes)) {
        let routes = self.build();
        let problems: BTreeSet<Problem> = routes.problems.iter().cloned().collect();
        for p in problems.difference(&self.reported) {
            match p.severity {
                Severity::Error => {
                    tracing::error!(workload = %p.workload, error = %p.message, "Docker routes: left out")
                }
                Severity::Warning => {
                    tracing::warn!(workload = %p.workload, warning = %p.message, "Docker routes")
                }
            }
        }
        self.reported = problems;
        if self.last.as_ref().map(|l| &l.routes) != Some(&routes.routes) {
            tracing::info!(
                routers = routes.routes.routers.len(),
                services = routes.routes.services.len(),
                "Docker routes changed"
            );
            publish(&routes);
            self.last = Some(routes);
        }
    }
}

/// The networks of this host's (or namespace's) interface addresses.
fn local_networks() -> Vec<IpNet> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let addr = a.address?;
            let mask = a.netmask?;
            if let (Some(ip), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
                let prefix = u32::from(m.ip()).count_ones() as u8;
                return IpNet::new(ip.ip().into(), prefix).ok();
            }
            if let (Some(ip), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                let prefix = u128::from(m.ip()).count_ones() as u8;
                return IpNet::new(ip.ip().into(), prefix).ok();
            }
            None
        })
        .filter(|n| !n.addr().is_loopback())
        .collect()
}
