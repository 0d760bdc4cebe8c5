//! `shoal bench scale`: a lab of `--nodes` real agents with `--endpoints` endpoints,
//! most of them state-only (see `agent::bench`), and how soon every node's kernel and
//! resolver reflect a change, what the agents cost at rest and during a burst, and how
//! the figures grow (log-log exponent) across the sizes asked for.
//!
//! ```text
//!  for N in --nodes:   lab up N (5 managers at most, one worker at least)
//!    network "scale" (/16), service "scalesvc" on it publishing 8080 (routing mesh),
//!    one real client sandbox per node (its VIP table)
//!    for E in --endpoints (ascending): top up to E state-only endpoints, round robin
//!                                      (and, once, the service's 6 tasks, also state-only)
//!      at rest 10 s ── attach ×R ── detach ×R ── service 6→9→6 tasks ×R
//!      ── burst of 1,000 attaches ── (undo) ── the last worker killed, back up
//!      convergence of a node = max(its FDB + proxy-ARP entries (netlink events),
//!                                  its published and VIP maps' tasks (nf_tables
//!                                  events in its namespace and its client sandbox),
//!                                  its resolver's answer (polled))  − commit request
//!      (node down: − the Down commit's proposal; kill → Down reported apart)
//! ```

mod converge;
mod cost;
mod fit;
mod mesh;
mod observe;
mod report;
mod service;

use cost::{dir_bytes, mean, newest_snapshot, observe_one};

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures::StreamExt;
use serde::Serialize;
use shoal_bench::report::Report;
use shoal_bench::stats::Summary;
use shoal_control::api::{AttachRequest, EndpointInfo, NodeInfo, ServiceInfo, StatusInfo};
use shoal_control::state::{
    NodeStatus, PortSpec, Protocol, PublishMode, ServiceMode, ServiceSpec, StateOnlyEndpoint,
};

use crate::agent::bench::{BenchEndpoints, BenchEndpointsDone};
use crate::client::ApiClient;
use crate::lab::{self, Lab, LabPaths};
use observe::{Backends, Key, Listeners, Probe};

const NETWORK: &str = "scale";
const SUBNET: &str = "10.200.0.0/16";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// The service whose tasks are scaled and lose a node; its port is published through
/// the routing mesh, so every node holds its tasks in an nftables map.
const SERVICE: &str = "scalesvc";
const SERVICE_PORT: u16 = 8080;
/// The service's tasks between scale steps, and how many a step adds (on one node, in
/// one commit) and then removes.
const SERVICE_TASKS: usize = 6;
const SCALE_STEP: usize = 3;
/// How long a killed agent may take to be Down, and to be back.
const DOWN_WITHIN: Duration = Duration::from_secs(30);
/// Concurrent clients in the burst, and attaches per request of each.
const BURST_CLIENTS: usize = 8;
const BURST_CHUNK: usize = 25;
/// Tries per burst request before the run fails.
const BURST_TRIES: usize = 5;
/// Tries per top-up request before the run fails.
const TOP_UP_TRIES: u32 = 5;
/// How long a change may take to show everywhere before the run fails.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);

/// What to measure.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Lab sizes (agents).
    pub nodes: Vec<usize>,
    /// Endpoint counts, per lab.
    pub endpoints: Vec<usize>,
    /// Changes measured per kind.
    pub repeats: usize,
    /// Attaches in the burst.
    pub burst: usize,
    /// How long agents are watched at rest.
    pub rest: Duration,
    /// The lab's name.
    pub lab: String,
}

/// Removes the lab when dropped, also on error or panic.
struct Guard(String);

impl Drop for Guard {
    fn drop(&mut self) {
        lab::down(&self.0);
    }
}

impl ScaleOptions {
    /// Checks the sizes.
    pub fn validate(&self) -> anyhow::Result<()> {
        lab::validate_name(&self.lab)?;
        if self.rest.is_zero() || self.rest > Duration::from_secs(600) {
            bail!("--rest-secs: 1 to 600");
        }
        if self.nodes.is_empty() || self.nodes.iter().any(|n| !(2..=200).contains(n)) {
            bail!("--nodes: give lab sizes from 2 to 200");
        }
        if self.endpoints.is_empty() || self.endpoints.iter().any(|e| !(1..=50_000).contains(e)) {
            bail!("--endpoints: give endpoint counts from 1 to 50000");
        }
        if self.repeats == 0 || self.repeats > 100 {
            bail!("--repeats: 1 to 100");
        }
        if self.burst == 0 || self.burst > 10_000 {
            bail!("--burst: 1 to 10000");
        }
        Ok(())
    }
}

/// What one (nodes, endpoints) point measured.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Agents.
    pub nodes: usize,
    /// State-only endpoints put in the state (besides: the service's tasks, also
    /// state-only, and per node a client sandbox and the node's own address).
    pub endpoints: usize,
    /// Convergence of attaches, per node (ms).
    pub attach: Summary,
    /// Convergence of detaches, per node (ms).
    pub detach: Summary,
    /// Convergence of a service going from SERVICE_TASKS to SERVICE_TASKS + SCALE_STEP
    /// tasks, per node (ms).
    pub scale_up: Summary,
    /// And back down.
    pub scale_down: Summary,
    /// From the Down commit of a killed worker until a node no longer offers its tasks
    /// (resolver, published and VIP maps), per node (ms).
    pub node_down: Summary,
    /// From the kill until the managers' Down commit was proposed (ms); 0 when not
    /// measured.
    pub down_detect_ms: f64,
    /// Largest and mean agent RSS at rest (MiB).
    pub rss_max_mib: f64,
    /// Mean agent RSS at rest (MiB).
    pub rss_mean_mib: f64,
    /// Largest private part of an agent's RSS at rest (RssAnon, MiB).
    pub anon_max_mib: f64,
    /// Largest and mean agent CPU at rest (% of a core).
    pub cpu_rest_max_pct: f64,
    /// Mean agent CPU at rest.
    pub cpu_rest_mean_pct: f64,
    /// The leader's CPU at rest.
    pub leader_cpu_rest_pct: f64,
    /// Mean agent CPU during the burst.
    pub cpu_burst_mean_pct: f64,
    /// The leader's CPU during the burst.
    pub leader_cpu_burst_pct: f64,
    /// Largest agent RSS right after the burst (MiB).
    pub rss_burst_max_mib: f64,
    /// Attaches per second in the burst (one commit each).
    pub burst_rate: f64,
    /// Burst requests that had to be sent again.
    pub burst_retries: usize,
    /// Requests that put this point's state-only endpoints in and had to be sent
    /// again (the managers starved past the commit timeout).
    pub top_up_retries: usize,
    /// Burst requests.
    pub burst_requests: usize,
    /// Burst requests that failed every try.
    pub burst_failed: usize,
    /// The leader's Raft data directory (log and snapshot), bytes.
    pub raft_bytes: u64,
    /// The leader's newest snapshot, bytes.
    pub state_bytes: u64,
    /// What the managers' watch streams sent per attach or detach, over all watchers
    /// (pings in the meantime included), bytes.
    pub watch_bytes_per_change: f64,
    /// Watch streams open on the managers.
    pub watchers: u64,
    /// Whole-state snapshots the managers sent their watchers during the changes.
    pub watch_snapshots: u64,
}

/// Runs the benchmark.
pub async fn run(options: &ScaleOptions) -> anyhow::Result<Report> {
    options.validate()?;
    let mut endpoints = options.endpoints.clone();
    endpoints.sort_unstable();
    endpoints.dedup();
    let mut points = Vec::new();
    let mut meshes = Vec::new();
    for &nodes in &options.nodes {
        lab::down(&options.lab);
        let _guard = Guard(options.lab.clone());
        eprintln!("bench scale: building a lab of {nodes} agents ...");
        // An odd number of managers, at most 5, and a worker at least (to kill).
        let most = (nodes - 1).min(5);
        let managers = most - usize::from(most % 2 == 0);
        let started = Instant::now();
        let lab = lab::up(&options.lab, nodes, managers).await?;
        eprintln!(
            "bench scale: lab up in {:.0}s",
            started.elapsed().as_secs_f64()
        );
        let mut run = Run::new(lab, options).await?;
        for &e in &endpoints {
            let point = run.point(e).await?;
            // Each point as soon as it is measured: a later size may fail.
            eprintln!("bench scale: point {}", serde_json::to_string(&point)?);
            points.push(point);
        }
        eprintln!("bench scale: the encrypted mesh of {nodes} agents ...");
        let pids = run.pids();
        let mesh = mesh::measure(&run.lab, &run.hosts, &run.clients, &pids).await?;
        eprintln!("bench scale: mesh {}", serde_json::to_string(&mesh)?);
        meshes.push(mesh);
    }
    Ok(report::report(&points, &meshes))
}

/// One lab being measured.
struct Run<'a> {
    lab: Lab,
    options: &'a ScaleOptions,
    client: ApiClient,
    hosts: Vec<String>,
    listeners: Listeners,
    /// The service's published map in every node's namespace.
    published: Arc<Backends>,
    /// The service's VIP map in every node's client sandbox.
    vips: Arc<Backends>,
    probes: Vec<Probe>,
    /// Every node's real client sandbox (its namespace's name), by node index.
    clients: Vec<String>,
    /// State-only endpoints per node index so far.
    placed: Vec<usize>,
    /// The service's tasks between changes: node index, key, address.
    tasks: Vec<(usize, String, Ipv4Addr)>,
    serial: usize,
    /// Burst requests sent again (refused for want of a quorum, or timed out).
    burst_retries: usize,
    /// Burst requests that failed every try.
    burst_failed: usize,
    /// Top-up requests sent again.
    top_up_retries: usize,
}

impl<'a> Run<'a> {
    async fn new(lab: Lab, options: &'a ScaleOptions) -> anyhow::Result<Run<'a>> {
        let client = lab.client("n1")?;
        let _: serde_json::Value = client
            .post(
                "/v1/networks",
                &serde_json::json!({"name": NETWORK, "subnet": SUBNET, "attachable": true}),
            )
            .await
            .context("network create")?;
        let hosts: Vec<String> = lab.nodes().map(|h| h.name.clone()).collect();
        let namespaces: Vec<File> = lab
            .nodes()
            .map(|h| shoal_dataplane::netns::open(&h.namespace))
            .collect::<Result<_, _>>()?;
        let mut listeners = Listeners::start(&namespaces)?;
        // Followed before the service exists: they see its maps from their start.
        let published = listeners.follow(
            &namespaces,
            shoal_dataplane::overlay::NFT_TABLE,
            &shoal_dataplane::overlay::port_chain(6, SERVICE_PORT),
        )?;
        let service = ServiceSpec {
            name: SERVICE.into(),
            networks: vec![NETWORK.into()],
            // No scheduled task: its tasks are attached from outside (state-only here).
            mode: ServiceMode::Replicated { replicas: 0 },
            publish: vec![PortSpec {
                published: SERVICE_PORT,
                target: 80,
                protocol: Protocol::Tcp,
                mode: PublishMode::Ingress,
                src: Default::default(),
            }],
            ..Default::default()
        };
        let service: ServiceInfo = client
            .post("/v1/services", &service)
            .await
            .context("service create")?;
        let vip = *service
            .vips
            .get(NETWORK)
            .context("the service has no VIP")?;
        // One real sandbox per node, a client of the service: its VIP table (in the
        // sandbox, where VIPs are translated) is followed too.
        let clients: Vec<String> = hosts
            .iter()
            .map(|h| lab::topology::ns_name(&lab.name, &format!("{h}-client")))
            .collect();
        let mut client_namespaces = Vec::new();
        for ns in &clients {
            shoal_dataplane::netns::create(ns)?;
            client_namespaces.push(shoal_dataplane::netns::open(ns)?);
        }
        let vips = listeners.follow(
            &client_namespaces,
            shoal_dataplane::nat_lb::LB_TABLE,
            &shoal_dataplane::nat_lb::vip_map(vip.into()),
        )?;
        for (host, ns) in hosts.iter().zip(&clients) {
            let req = AttachRequest {
                network: NETWORK.into(),
                netns: ns.clone(),
                ..Default::default()
            };
            let _: EndpointInfo = lab
                .client(host)?
                .post("/v1/attach", &req)
                .await
                .with_context(|| format!("a client sandbox on {host}"))?;
        }
        let server = SocketAddr::new(GATEWAY.into(), 53);
        let probes = namespaces
            .iter()
            .map(|ns| Probe::new(ns, server))
            .collect::<Result<_, _>>()?;
        let placed = vec![0; hosts.len()];
        Ok(Run {
            lab,
            options,
            client,
            hosts,
            listeners,
            published,
            vips,
            probes,
            clients,
            placed,
            tasks: Vec::new(),
            serial: 0,
            burst_retries: 0,
            burst_failed: 0,
            top_up_retries: 0,
        })
    }

    async fn endpoints(&self, req: &BenchEndpoints) -> anyhow::Result<BenchEndpointsDone> {
        self.client
            .post("/v1/bench/endpoints", req)
            .await
            .with_context(|| format!("state-only endpoints on {}", req.node))
    }

    /// Adds state-only endpoints round robin until there are `total`; waits until every
    /// node carrying the network resolves the last one of each node.
    async fn top_up(&mut self, total: usize) -> anyhow::Result<()> {
        let have: usize = self.placed.iter().sum();
        if total <= have {
            return Ok(());
        }
        let n = self.hosts.len();
        eprintln!(
            "bench scale: {} agents, adding {} state-only endpoints ...",
            n,
            total - have
        );
        for (i, host) in self.hosts.clone().iter().enumerate() {
            let want = total / n + usize::from(i < total % n);
            let attach: Vec<StateOnlyEndpoint> = (self.placed[i]..want)
                .map(|j| StateOnlyEndpoint {
                    key: format!("s{i}-{j}"),
                    name: Some(format!("s{i}-{j}")),
                    service: None,
                })
                .collect();
            if attach.is_empty() {
                continue;
            }
            let req = BenchEndpoints {
                network: NETWORK.into(),
                node: host.clone(),
                attach,
                detach: Vec::new(),
                batch: Some(500),
            };
            // Every agent reconciles every commit here, all of them on this machine's
            // cores: the managers may be starved long enough to refuse a write (no
            // quorum in time). Such a request is sent again after the agents caught up
            // (asking again for what was committed is harmless: the keys are the same).
            let mut tries = 0;
            loop {
                tries += 1;
                match self.endpoints(&req).await {
                    Ok(_) => break,
                    Err(e) if tries >= TOP_UP_TRIES => return Err(e),
                    Err(e) => {
                        eprintln!("bench scale: sent again after {e:#}");
                        self.top_up_retries += 1;
                        tokio::time::sleep(Duration::from_secs(2 << tries)).await;
                    }
                }
            }
            self.placed[i] = want;
            // Paced: every tenth node, until every node resolves the newest endpoint.
            if i % 10 == 9 {
                let newest = format!("s{i}-{}", want - 1);
                self.dns_everywhere(&newest, true, Instant::now()).await?;
            }
        }
        let last = format!("s0-{}", self.placed[0] - 1);
        self.dns_everywhere(&last, true, Instant::now()).await?;
        if self.tasks.is_empty() {
            self.place_tasks().await?;
        }
        // Let the reconcilers finish with the kernels.
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(())
    }

    async fn point(&mut self, total: usize) -> anyhow::Result<Point> {
        self.top_up(total).await?;
        let n = self.hosts.len();
        let pids = self.pids();
        let (leader, leader_pid) = self.leader_pid().await?;
        eprintln!(
            "bench scale: {n} agents, {total} endpoints: at rest for {}s ...",
            self.options.rest.as_secs()
        );
        let rest = self.options.rest;
        let (cpu_rest, _) = Self::cpu_during(&pids, async {
            tokio::time::sleep(rest).await;
            Ok(())
        })
        .await?;
        let leader_cpu_rest = observe_one(&pids, &cpu_rest, leader_pid);
        let rss: Vec<f64> = pids
            .iter()
            .filter_map(|p| observe::usage(*p).map(|u| u.rss_kib as f64 / 1024.0))
            .collect();
        let anon: Vec<f64> = pids
            .iter()
            .filter_map(|p| observe::usage(*p).map(|u| u.anon_kib as f64 / 1024.0))
            .collect();
        eprintln!(
            "bench scale: {} attaches and detaches, one at a time ...",
            self.options.repeats
        );
        let (mut attach, mut detach) = (Vec::new(), Vec::new());
        let watch_before = self.managers_watch().await?;
        let mut changes = 0usize;
        for r in 0..self.options.repeats {
            self.serial += 1;
            let key = format!("c{}", self.serial);
            let owner = (r * 7 + 1) % n;
            if self.placed[owner] == 0 {
                continue;
            }
            self.listeners.seen.clear();
            attach.extend(self.change(true, &key, owner).await?);
            self.listeners.seen.clear();
            detach.extend(self.change(false, &key, owner).await?);
            changes += 2;
        }
        let watch_after = self.managers_watch().await?;
        eprintln!(
            "bench scale: service {SERVICE} {SERVICE_TASKS} → {} → {SERVICE_TASKS} tasks ×{} ...",
            SERVICE_TASKS + SCALE_STEP,
            self.options.repeats
        );
        let (mut scale_up, mut scale_down) = (Vec::new(), Vec::new());
        for r in 0..self.options.repeats {
            self.serial += 1;
            let keys: Vec<String> = (0..SCALE_STEP)
                .map(|j| format!("u{}-{j}", self.serial))
                .collect();
            let owner = (r * 7 + 3) % n;
            scale_up.extend(self.scale(true, &keys, owner).await?);
            scale_down.extend(self.scale(false, &keys, owner).await?);
        }
        let burst = self.options.burst;
        eprintln!("bench scale: a burst of {burst} attaches (one commit each) ...");
        self.serial += 1;
        let owner = n - 1;
        let keys: Vec<String> = (0..burst)
            .map(|i| format!("b{}-{i}", self.serial))
            .collect();
        // BURST_CLIENTS clients at once, each sending attaches of BURST_CHUNK keys, one
        // commit per attach: the leader batches what arrives together, as it would
        // for many runtimes attaching at once.
        let requests: Vec<BenchEndpoints> = keys
            .chunks(BURST_CHUNK)
            .map(|chunk| BenchEndpoints {
                network: NETWORK.into(),
                node: self.hosts[owner].clone(),
                attach: chunk
                    .iter()
                    .map(|k| StateOnlyEndpoint {
                        key: k.clone(),
                        name: Some(k.clone()),
                        service: None,
                    })
                    .collect(),
                detach: Vec::new(),
                batch: Some(1),
            })
            .collect();
        let lasts: Vec<String> = keys
            .chunks(BURST_CHUNK)
            .filter_map(|c| c.last().cloned())
            .collect();
        self.burst_retries = 0;
        self.burst_failed = 0;
        let (cpu_burst, wall) = {
            let this = &mut *self;
            let pids = pids.clone();
            Self::cpu_during(&pids, async {
                let client = this.client.clone();
                let sent = futures::stream::iter(requests.into_iter().map(|req| {
                    let client = client.clone();
                    async move {
                        // A refused or timed-out request is sent again, as a runtime
                        // would: attaching a key already attached changes nothing.
                        let mut tries = 0;
                        loop {
                            tries += 1;
                            match client
                                .post::<_, BenchEndpointsDone>("/v1/bench/endpoints", &req)
                                .await
                            {
                                Ok(done) => return Ok((done, tries - 1)),
                                Err(e) if tries >= BURST_TRIES => {
                                    return Err(e.context("burst attaches"))
                                }
                                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                            }
                        }
                    }
                }))
                .buffer_unordered(BURST_CLIENTS)
                .collect::<Vec<_>>()
                .await;
                // A request that failed every try is counted, not fatal: how a burst
                // fails at a size is a figure too.
                for r in sent {
                    match r {
                        Ok((_, retried)) => this.burst_retries += retried,
                        Err(e) => {
                            eprintln!("bench scale: {e:#}");
                            this.burst_failed += 1;
                        }
                    }
                }
                if this.burst_failed > 0 {
                    return Ok(());
                }
                for last in &lasts {
                    this.dns_everywhere(last, true, Instant::now()).await?;
                }
                Ok(())
            })
            .await?
        };
        let rss_burst = pids
            .iter()
            .filter_map(|p| observe::usage(*p).map(|u| u.rss_kib as f64 / 1024.0))
            .fold(0.0, f64::max);
        self.endpoints(&BenchEndpoints {
            network: NETWORK.into(),
            node: self.hosts[owner].clone(),
            attach: Vec::new(),
            detach: keys,
            batch: Some(500),
        })
        .await?;
        eprintln!("bench scale: node down (the last node's agent killed) ...");
        let (node_down, down_detect) = match self.node_down().await? {
            Some(measured) => measured,
            None => {
                eprintln!("bench scale: not measured: the last node is a manager or has no task");
                Default::default()
            }
        };
        let raft_bytes = dir_bytes(&LabPaths::new(&self.lab.name).data_dir(&leader));
        let state_bytes =
            newest_snapshot(&LabPaths::new(&self.lab.name).data_dir(&leader)).unwrap_or(0);
        Ok(Point {
            nodes: n,
            endpoints: total,
            attach: Summary::of(&attach),
            detach: Summary::of(&detach),
            scale_up: Summary::of(&scale_up),
            scale_down: Summary::of(&scale_down),
            node_down: Summary::of(&node_down),
            down_detect_ms: down_detect.as_secs_f64() * 1000.0,
            rss_max_mib: rss.iter().copied().fold(0.0, f64::max),
            rss_mean_mib: mean(&rss),
            anon_max_mib: anon.iter().copied().fold(0.0, f64::max),
            cpu_rest_max_pct: cpu_rest.iter().copied().fold(0.0, f64::max),
            cpu_rest_mean_pct: mean(&cpu_rest),
            leader_cpu_rest_pct: leader_cpu_rest,
            cpu_burst_mean_pct: mean(&cpu_burst),
            leader_cpu_burst_pct: observe_one(&pids, &cpu_burst, leader_pid),
            rss_burst_max_mib: rss_burst,
            burst_rate: burst as f64 / wall.as_secs_f64(),
            burst_retries: self.burst_retries,
            top_up_retries: std::mem::take(&mut self.top_up_retries),
            burst_requests: burst.div_ceil(BURST_CHUNK),
            burst_failed: self.burst_failed,
            raft_bytes,
            state_bytes,
            watch_bytes_per_change: watch_after
                .bytes_sent
                .saturating_sub(watch_before.bytes_sent) as f64
                / changes.max(1) as f64,
            watchers: watch_after.watchers,
            watch_snapshots: watch_after
                .snapshots_sent
                .saturating_sub(watch_before.snapshots_sent),
        })
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
