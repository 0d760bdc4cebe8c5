//! The task runner: makes this node run the tasks the cluster placed on it.
//!
//! ```text
//!  state.tasks (node == me) ──▶ sandbox netns <prefix>t<id> ──attach──▶ every service network
//!                           └──▶ process (command of the service) ── exits ──▶ restart (backoff)
//!  task gone from the state ──▶ SIGTERM, up to the grace period (`--drain-timeout`)
//!                               for its connections to finish, SIGKILL; detach,
//!                               delete the netns
//! ```
//! A task of a draining node leaves every balancer before it goes from the state, so
//! only connections it already has reach it while it stops.
//! Processes run in their own session, so an agent restart leaves them running; the new
//! agent adopts them from their PID files.

mod health;
mod process;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shoal_control::api::LeaderRequest;
use shoal_control::state::hostname::{self, TemplateContext};
use shoal_control::state::{
    AttachSpec, Command, DesiredState, Health, ServiceSpec, Task, TaskState, IFNAME_OPT,
};
use shoal_control::Member;
use shoal_dataplane::netns;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::networks::{attach_and_wait, detach_and_wait};
use crate::overlay::Overlay;

/// Restart delays grow to this.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A process that ran this long resets its backoff.
const STABLE: Duration = Duration::from_secs(10);

/// One local task.
struct Local {
    ns: String,
    pid: Option<i32>,
    child: Option<std::process::Child>,
    started: Option<Instant>,
    attached: bool,
    restarts: u32,
    next_start: Instant,
    failure: Option<String>,
    /// Its health, when its service has a check; failures in a row; the next check
    /// and the one running.
    health: Option<Health>,
    failures: u32,
    next_check: Instant,
    probe: Option<tokio::task::JoinHandle<bool>>,
    /// When the runner saw it shut down, and when it sent SIGTERM.
    stopping: Option<Instant>,
    termed: Option<Instant>,
    /// Its process listens on the service's published TCP ports (or had its time).
    listening: bool,
}

impl Local {
    fn new(ns: String, pid: Option<i32>, attached: bool) -> Local {
        Local {
            ns,
            pid,
            child: None,
            started: pid.map(|_| Instant::now()),
            attached,
            restarts: 0,
            next_start: Instant::now(),
            failure: None,
            health: None,
            failures: 0,
            next_check: Instant::now(),
            probe: None,
            stopping: None,
            termed: None,
            listening: false,
        }
    }
}

/// Runs this node's tasks.
pub struct Runner {
    member: Arc<Member>,
    overlay: Arc<Overlay>,
    dir: PathBuf,
    prefix: String,
    stop: CancellationToken,
    local: tokio::sync::Mutex<HashMap<String, Local>>,
    /// How long a stopping task has to finish its connections after SIGTERM.
    grace: Duration,
}

impl Runner {
    /// Starts running tasks for `member`; task files live in `data_dir/tasks`, task
    /// namespaces are named `<prefix>t<task id>`; a task that goes gets SIGTERM and
    /// `grace` to finish its connections before SIGKILL.
    pub fn start(
        member: Arc<Member>,
        overlay: Arc<Overlay>,
        data_dir: &std::path::Path,
        prefix: &str,
        grace: Duration,
    ) -> Arc<Runner> {
        let runner = Arc::new(Runner {
            member,
            overlay,
            dir: data_dir.join("tasks"),
            prefix: prefix.to_string(),
            stop: CancellationToken::new(),
            local: tokio::sync::Mutex::new(HashMap::new()),
            grace,
        });
        let me = runner.clone();
        tokio::spawn(async move { me.run().await });
        runner
    }

    /// Stops the loop; tasks keep running (an agent restart adopts them).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Stops every local task and removes its sandbox (the node leaves the cluster).
    pub async fn remove_all(&self) {
        self.stop.cancel();
        let mut local = self.local.lock().await;
        for (id, l) in local.drain() {
            self.teardown(&id, l, false).await;
        }
    }

    /// How many tasks the runner has (a task being stopped counts until it is gone).
    pub async fn count(&self) -> usize {
        self.local.lock().await.len()
    }

    fn ns_name(&self, id: &str) -> String {
        format!("{}t{}", self.prefix, &id[..id.len().min(12)])
    }

    fn pid_file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.pid"))
    }

    /// Takes over processes a previous agent started.
    async fn adopt(&self) {
        let _ = std::fs::create_dir_all(&self.dir);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut local = self.local.lock().await;
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".pid") else {
                continue;
            };
            let pid = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            let ns = self.ns_name(id);
            let pid = pid.filter(|p| process::alive(*p, &ns));
            tracing::info!(task = id, pid = ?pid, "adopting task");
            local.insert(id.to_string(), Local::new(ns, pid, true));
        }
    }

    async fn run(self: Arc<Self>) {
        self.adopt().await;
        let mut changes = self.member.replica().changes();
        loop {
            if self.member.synced() && !self.member.is_removed() {
                self.step().await;
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn step(&self) {
        let state = self.member.replica().state();
        let me = self.member.node_id;
        let mine: BTreeMap<&String, &Task> =
            state.tasks.iter().filter(|(_, t)| t.node == me).collect();
        let mut local = self.local.lock().await;
        let gone: Vec<String> = local
            .keys()
            .filter(|id| !mine.contains_key(id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(l) = local.remove(&id) {
                self.teardown(&id, l, true).await;
            }
        }
        for (id, task) in mine {
            let ns = self.ns_name(id);
            let l = local
                .entry(id.clone())
                .or_insert_with(|| Local::new(ns, None, false));
            let checked = state
                .services
                .get(&task.service)
                .and_then(|s| s.spec.healthcheck.clone());
            let (want, message, health) = if task.desired == DesiredState::Shutdown {
                let grace = state
                    .services
                    .get(&task.service)
                    .map(|s| s.spec.stop_grace_ms())
                    .unwrap_or(0);
                if self.stop_step(task, l, Duration::from_millis(grace)) {
                    (TaskState::Shutdown, String::new(), task.health)
                } else {
                    (task.state, task.message.clone(), task.health)
                }
            } else {
                self.drive(task, l).await;
                if let Some(check) = &checked {
                    self.check_health(task, check, l).await;
                }
                let (want, message) = match (&l.failure, l.pid) {
                    (Some(f), _) => (TaskState::Failed, f.clone()),
                    (None, Some(pid)) => {
                        // Running (and so in every balancer) once it can answer: a
                        // process that is starting refuses connections.
                        let ports = tcp_targets(&state, &task.service);
                        l.listening = l.listening
                            || ports.is_empty()
                            || health::listens(pid, &ports)
                            || l.started
                                .is_some_and(|s| s.elapsed() >= health::LISTEN_WAIT);
                        if l.listening {
                            (TaskState::Running, String::new())
                        } else {
                            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                            let wait = format!(
                                "started; waiting for it to listen on TCP {}",
                                ports.join(", ")
                            );
                            (TaskState::Assigned, wait)
                        }
                    }
                    (None, None) => (TaskState::Assigned, String::new()),
                };
                (want, message, checked.as_ref().and(l.health))
            };
            if task.state != want
                || task.message != message
                || task.restarts != l.restarts
                || task.health != health
            {
                let command = Command::SetTaskState {
                    id: id.clone(),
                    node: me,
                    state: want,
                    message,
                    restarts: l.restarts,
                    health,
                };
                if let Err(e) = self
                    .member
                    .submit(LeaderRequest::Propose { command }, Some(me))
                    .await
                {
                    tracing::debug!(error = %e, task = %id, "task state not reported yet");
                }
            }
        }
    }

    /// One step of stopping a task that was shut down: it stays up (out of every
    /// backend set) for [`health::SETTLE`], then gets SIGTERM, then SIGKILL `grace`
    /// later. Returns whether its process is gone.
    fn stop_step(&self, task: &Task, l: &mut Local, grace: Duration) -> bool {
        let since = *l.stopping.get_or_insert_with(|| {
            tracing::info!(task = %task.id, service = %task.service, grace = ?grace, "task shut down; draining");
            Instant::now()
        });
        let alive = match (l.pid, &mut l.child) {
            (None, _) => false,
            (Some(_), Some(c)) => matches!(c.try_wait(), Ok(None)),
            (Some(pid), None) => process::alive(pid, &l.ns),
        };
        let step = health::stop_step(alive, since.elapsed(), l.termed.map(|t| t.elapsed()), grace);
        match step {
            health::StopStep::Wait => {}
            health::StopStep::Term => {
                tracing::info!(task = %task.id, "out of every balancer; SIGTERM");
                process::signal(l.pid, &l.ns, false);
                l.termed = Some(Instant::now());
            }
            health::StopStep::Kill => {
                tracing::info!(task = %task.id, "still running; SIGKILL");
                process::signal(l.pid, &l.ns, true);
            }
            health::StopStep::Stopped => {
                if l.pid.take().is_some() {
                    tracing::info!(task = %task.id, "task stopped");
                }
                if let Some(mut c) = l.child.take() {
                    let _ = c.wait();
                }
                let _ = std::fs::remove_file(self.pid_file(&task.id));
            }
        }
        step == health::StopStep::Stopped
    }

    /// Collects a finished health check and starts the next when due; an unhealthy
    /// task is killed (and restarted by [`Runner::drive`]).
    async fn check_health(
        &self,
        task: &Task,
        check: &shoal_control::state::HealthCheck,
        l: &mut Local,
    ) {
        let Some(pid) = l.pid else {
            l.probe = None;
            return;
        };
        if let Some(p) = l.probe.take_if(|p| p.is_finished()) {
            let ok = p.await.unwrap_or(false);
            let in_start = l
                .started
                .is_some_and(|s| s.elapsed() < Duration::from_millis(check.start_period_ms));
            let (h, f) = health::after_check(
                l.health.unwrap_or(Health::Starting),
                l.failures,
                ok,
                in_start,
                check.retries,
            );
            if l.health != Some(h) {
                tracing::info!(task = %task.id, health = h.as_str(), "task health changed");
            }
            l.health = Some(h);
            l.failures = f;
            if h == Health::Unhealthy {
                tracing::warn!(task = %task.id, "task unhealthy; restarting it");
                process::signal(Some(pid), &l.ns, true);
                return;
            }
        }
        if l.probe.is_none() && Instant::now() >= l.next_check {
            l.next_check = Instant::now() + Duration::from_millis(check.interval_ms);
            l.probe = Some(tokio::spawn(health::probe(
                l.ns.clone(),
                check.command.clone(),
                Duration::from_millis(check.timeout_ms),
            )));
        }
    }

    /// Moves one task towards running: sandbox, endpoints, process.
    async fn drive(&self, task: &Task, l: &mut Local) {
        let state = self.member.replica().state();
        let Some(service) = state.services.get(&task.service) else {
            return;
        };
        if l.attached {
            // `service update --network-add/-rm` reaches tasks that run already.
            let sandbox = netns::path_of(&l.ns).to_string_lossy().into_owned();
            if let Err(e) = self.sync_networks(task, &service.spec, &sandbox).await {
                tracing::warn!(task = %task.id, error = %e, "cannot change the task's networks");
            }
        }
        if let Some(pid) = l.pid {
            let exited = match &mut l.child {
                Some(c) => !matches!(c.try_wait(), Ok(None)),
                None => !process::alive(pid, &l.ns),
            };
            if !exited {
                return;
            }
            let ran = l.started.map(|s| s.elapsed()).unwrap_or_default();
            tracing::info!(task = %task.id, service = %task.service, ran = ?ran, "task process exited; restarting");
            let backoff = if ran >= STABLE {
                Duration::from_millis(200)
            } else {
                backoff(l.restarts)
            };
            l.pid = None;
            l.child = None;
            l.listening = false;
            l.restarts += 1;
            l.next_start = Instant::now() + backoff;
        }
        if Instant::now() < l.next_start {
            return;
        }
        match self.launch(task, &service.spec, l).await {
            Ok(()) => l.failure = None,
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "task did not start");
                l.failure = Some(e);
                l.next_start = Instant::now() + backoff(l.restarts);
                l.restarts += 1;
            }
        }
    }

    async fn launch(&self, task: &Task, spec: &ServiceSpec, l: &mut Local) -> Result<(), String> {
        let command = &spec.command;
        if !netns::path_of(&l.ns).exists() {
            netns::create(&l.ns)
                .map_err(|e| format!("cannot create the task sandbox {}: {e}", l.ns))?;
        }
        let sandbox = netns::path_of(&l.ns).to_string_lossy().into_owned();
        if !l.attached {
            self.sync_networks(task, spec, &sandbox).await?;
            l.attached = true;
        }
        let state = self.member.replica().state();
        let hostname = match (
            &spec.hostname,
            state.services.get(&task.service),
            state.nodes.get(&task.node),
        ) {
            (Some(template), Some(service), Some(node)) => {
                let ctx = TemplateContext {
                    service,
                    task,
                    node,
                };
                Some(hostname::expand(template, &ctx).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let node = self.member.identity().name;
        let env: BTreeMap<String, String> = [
            ("SHOAL_TASK_ID", task.id.clone()),
            ("SHOAL_SERVICE", task.service.clone()),
            // The slot as `service ps` shows it (from 1), and the task's name there.
            ("SHOAL_TASK_SLOT", (task.slot + 1).to_string()),
            ("SHOAL_TASK_NAME", task.name(spec.mode)),
            ("SHOAL_NODE", node),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let log = self.dir.join(format!("{}.log", task.id));
        let child = process::spawn(&l.ns, command, &env, &log, hostname.as_deref())
            .map_err(|e| format!("cannot start {:?}: {e}", command.first()))?;
        let pid = child.id() as i32;
        std::fs::write(self.pid_file(&task.id), pid.to_string()).map_err(|e| e.to_string())?;
        tracing::info!(task = %task.id, service = %task.service, pid, "task started");
        l.pid = Some(pid);
        l.child = Some(child);
        l.started = Some(Instant::now());
        l.health = spec.healthcheck.as_ref().map(|_| Health::Starting);
        l.failures = 0;
        l.next_check = Instant::now();
        Ok(())
    }

    /// Attaches the task's sandbox to the service's networks it is not on and detaches
    /// it from those the service left. Networks with an interface name of their own
    /// go first, so the automatic `eth<N>` names keep clear of them.
    async fn sync_networks(
        &self,
        task: &Task,
        spec: &ServiceSpec,
        sandbox: &str,
    ) -> Result<(), String> {
        let state = self.member.replica().state();
        let me = self.member.node_id;
        let have: BTreeSet<String> = state
            .endpoints
            .values()
            .filter(|e| e.node == me && e.sandbox == sandbox)
            .map(|e| e.network.clone())
            .collect();
        let ifname = |n: &str| {
            spec.network_options
                .get(n)
                .and_then(|o| o.driver_opts.get(IFNAME_OPT))
                .cloned()
        };
        let mut join: Vec<&String> = spec
            .networks
            .iter()
            .filter(|n| !have.contains(*n))
            .collect();
        join.sort_by_key(|n| ifname(n).is_none());
        for n in join {
            let attach = AttachSpec {
                network: n.clone(),
                node: me,
                sandbox: sandbox.to_string(),
                service: Some(task.service.clone()),
                task: Some(task.id.clone()),
                ifname: ifname(n),
                ..Default::default()
            };
            attach_and_wait(&self.member, &self.overlay, attach)
                .await
                .map_err(|e| e.to_string())?;
        }
        for n in have.iter().filter(|n| !spec.networks.contains(n)) {
            detach_and_wait(&self.member, Some(&self.overlay), n, sandbox.to_string())
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn teardown(&self, id: &str, mut l: Local, detach: bool) {
        tracing::info!(task = id, "stopping task");
        if let Some(pid) = l.pid {
            process::stop(pid, &l.ns, self.grace).await;
        }
        if let Some(c) = &mut l.child {
            let _ = c.wait();
        }
        let sandbox = netns::path_of(&l.ns).to_string_lossy().into_owned();
        if detach {
            let state = self.member.replica().state();
            let nets: Vec<String> = state
                .endpoints
                .values()
                .filter(|e| e.node == self.member.node_id && e.sandbox == sandbox)
                .map(|e| e.network.clone())
                .collect();
            for n in nets {
                if let Err(e) =
                    detach_and_wait(&self.member, Some(&self.overlay), &n, sandbox.clone()).await
                {
                    tracing::warn!(task = id, error = %e, "cannot detach the task's endpoint");
                }
            }
        }
        if let Err(e) = netns::delete(&l.ns) {
            tracing::warn!(task = id, error = %e, "cannot delete the task sandbox");
        }
        let _ = std::fs::remove_file(self.pid_file(id));
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.log")));
    }

    /// Local tasks for `shoal status`: (task, pid, restarts).
    pub async fn summary(&self) -> Vec<(String, Option<i32>, u32)> {
        let local = self.local.lock().await;
        let mut out: Vec<_> = local
            .iter()
            .map(|(id, l)| (id.clone(), l.pid, l.restarts))
            .collect();
        out.sort();
        out
    }
}

fn backoff(restarts: u32) -> Duration {
    (Duration::from_millis(500) * 2u32.saturating_pow(restarts.min(5))).min(MAX_BACKOFF)
}

/// The published TCP target ports of `service`: its tasks must listen on them before
/// they take traffic.
fn tcp_targets(state: &shoal_control::state::ClusterState, service: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = state
        .services
        .get(service)
        .map(|s| {
            s.spec
                .publish
                .iter()
                .filter(|p| p.protocol == shoal_control::state::Protocol::Tcp)
                .map(|p| p.target)
                .collect()
        })
        .unwrap_or_default();
    ports.sort_unstable();
    ports.dedup();
    ports
}
