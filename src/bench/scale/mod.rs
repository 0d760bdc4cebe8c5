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

mod fit;
mod observe;
mod report;

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
    }
    Ok(report::report(&points))
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
    /// State-only endpoints per node index so far.
    placed: Vec<usize>,
    /// The service's tasks between changes: node index, key, address.
    tasks: Vec<(usize, String, Ipv4Addr)>,
    serial: usize,
    /// Burst requests sent again (refused for want of a quorum, or timed out).
    burst_retries: usize,
    /// Burst requests that failed every try.
    burst_failed: usize,
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
            placed,
            tasks: Vec::new(),
            serial: 0,
            burst_retries: 0,
            burst_failed: 0,
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
            self.endpoints(&BenchEndpoints {
                network: NETWORK.into(),
                node: host.clone(),
                attach,
                detach: Vec::new(),
                batch: Some(500),
            })
            .await?;
            self.placed[i] = want;
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

    /// Nodes carrying the network (they have endpoints on it).
    fn carriers(&self) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|i| self.placed[*i] > 0)
            .collect()
    }

    /// Polls every carrier's resolver until `name` resolves (or, `present` false, no
    /// longer does); returns when each one first did, by node index.
    async fn dns_everywhere(
        &mut self,
        name: &str,
        present: bool,
        since: Instant,
    ) -> anyhow::Result<BTreeMap<usize, (Instant, Vec<Ipv4Addr>)>> {
        let carriers = self.carriers();
        let what = if present { "appear" } else { "vanish" };
        self.dns_until(name, &carriers, since, what, |ips| {
            ips.is_empty() != present
        })
        .await
    }

    /// Polls the resolvers of `nodes` until their answer for `name` is `done` (`what`
    /// it is, for the error); returns when each one first was, by node index.
    async fn dns_until(
        &mut self,
        name: &str,
        nodes: &[usize],
        since: Instant,
        what: &str,
        done: impl Fn(&[Ipv4Addr]) -> bool,
    ) -> anyhow::Result<BTreeMap<usize, (Instant, Vec<Ipv4Addr>)>> {
        let mut out: BTreeMap<usize, (Instant, Vec<Ipv4Addr>)> = BTreeMap::new();
        while out.len() < nodes.len() {
            if since.elapsed() > CONVERGE_WITHIN {
                bail!(
                    "{name} did not {what} in the DNS of {} of {} nodes within {}s",
                    nodes.len() - out.len(),
                    nodes.len(),
                    CONVERGE_WITHIN.as_secs()
                );
            }
            // All queries out first, then the answers: a round takes as long as the
            // slowest resolver, not the sum of them.
            let asked: Vec<usize> = nodes
                .iter()
                .copied()
                .filter(|i| !out.contains_key(i))
                .filter(|i| self.probes[*i].ask(name))
                .collect();
            for i in asked {
                if let Some(ips) = self.probes[i].answer() {
                    if done(&ips) {
                        out.insert(i, (Instant::now(), ips));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(out)
    }

    /// When node `node`'s kernel announced both the neighbour (proxy-ARP) and the FDB
    /// entry of `ip` added (or, `added` false, removed); waits for them.
    async fn neighbour_shows(
        &self,
        node: usize,
        ip: Ipv4Addr,
        added: bool,
        what: &str,
    ) -> anyhow::Result<Instant> {
        let mac = shoal_ipam::mac_for(ip);
        let until = Instant::now() + CONVERGE_WITHIN;
        loop {
            let seen = &self.listeners.seen;
            match (
                seen.when(node, (Key::Ip(ip), added)),
                seen.when(node, (Key::Mac(mac), added)),
            ) {
                (Some(a), Some(b)) => return Ok(a.max(b)),
                _ if Instant::now() > until => bail!(
                    "{} never showed the {what} ({ip}) in its kernel",
                    self.hosts[node],
                ),
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// Since when node `node`'s kernel has held exactly `want` as the service's tasks,
    /// counting from `since`, in both the map its published port draws from (in the
    /// node's namespace) and the VIP map of its client sandbox; waits for both.
    async fn balancers_show(
        &self,
        node: usize,
        want: &BTreeSet<Ipv4Addr>,
        since: Instant,
    ) -> anyhow::Result<Instant> {
        let until = Instant::now() + CONVERGE_WITHIN;
        loop {
            let published = self.published.when(node, want, since);
            let vip = self.vips.when(node, want, since);
            if let (Some(a), Some(b)) = (published, vip) {
                return Ok(a.max(b));
            }
            if Instant::now() > until {
                bail!(
                    "{}'s {} map of {SERVICE} never held its {} tasks",
                    self.hosts[node],
                    if published.is_none() {
                        "published"
                    } else {
                        "VIP"
                    },
                    want.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The addresses of the service's tasks (between changes).
    fn task_ips(&self) -> BTreeSet<Ipv4Addr> {
        self.tasks.iter().map(|(_, _, ip)| *ip).collect()
    }

    /// State-only tasks of the service, named by their keys.
    fn service_tasks(keys: &[String]) -> Vec<StateOnlyEndpoint> {
        keys.iter()
            .map(|k| StateOnlyEndpoint {
                key: k.clone(),
                name: Some(k.clone()),
                service: Some(SERVICE.into()),
            })
            .collect()
    }

    /// Attaches the service's SERVICE_TASKS tasks, from the last node backwards (so
    /// the last node, the worker that is killed, has one), learns their addresses, and
    /// waits until every carrier's resolver, published map and VIP map has them all.
    async fn place_tasks(&mut self) -> anyhow::Result<()> {
        let n = self.hosts.len();
        let mut by_node: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for i in 0..SERVICE_TASKS {
            by_node
                .entry(n - 1 - i % n)
                .or_default()
                .push(format!("t{i}"));
        }
        let carriers = self.carriers();
        let asker = *carriers.first().context("no carrier")?;
        let since = Instant::now();
        for (node, keys) in by_node {
            self.endpoints(&BenchEndpoints {
                network: NETWORK.into(),
                node: self.hosts[node].clone(),
                attach: Self::service_tasks(&keys),
                detach: Vec::new(),
                batch: None,
            })
            .await?;
            for key in keys {
                let seen = self
                    .dns_until(&key, &[asker], Instant::now(), "appear", |ips| {
                        !ips.is_empty()
                    })
                    .await?;
                let ip = seen
                    .values()
                    .find_map(|(_, ips)| ips.first().copied())
                    .context("no address resolved")?;
                self.tasks.push((node, key, ip));
            }
        }
        self.tasks_everywhere(&carriers, since).await?;
        Ok(())
    }

    /// Waits until `nodes` resolve `tasks.<service>` to its tasks and their kernels
    /// committed them in their published and VIP maps since `since`.
    async fn tasks_everywhere(&mut self, nodes: &[usize], since: Instant) -> anyhow::Result<()> {
        let want = self.task_ips();
        let name = format!("tasks.{SERVICE}");
        self.dns_until(&name, nodes, since, "list its tasks", |ips| {
            ips.iter().copied().collect::<BTreeSet<_>>() == want
        })
        .await?;
        for &node in nodes {
            self.balancers_show(node, &want, since).await?;
        }
        Ok(())
    }

    /// One change: attaches (or detaches) a named state-only endpoint on a node and
    /// returns each other carrier's convergence.
    async fn change(
        &mut self,
        attach: bool,
        key: &str,
        owner: usize,
    ) -> anyhow::Result<Vec<Duration>> {
        let ip = if attach {
            None
        } else {
            let (_, ips) = self
                .dns_everywhere(key, true, Instant::now())
                .await?
                .into_values()
                .next()
                .context("no carrier")?;
            ips.first().copied()
        };
        let req = BenchEndpoints {
            network: NETWORK.into(),
            node: self.hosts[owner].clone(),
            attach: if attach {
                vec![StateOnlyEndpoint {
                    key: key.into(),
                    name: Some(key.into()),
                    service: None,
                }]
            } else {
                Vec::new()
            },
            detach: if attach { Vec::new() } else { vec![key.into()] },
            batch: None,
        };
        let t0 = Instant::now();
        self.endpoints(&req).await?;
        let dns = self.dns_everywhere(key, attach, t0).await?;
        let ip = match ip {
            Some(ip) => ip,
            None => *dns
                .values()
                .find_map(|(_, ips)| ips.first())
                .context("no address resolved")?,
        };
        let what = format!("{} of {key}", if attach { "attach" } else { "detach" });
        let mut out = Vec::new();
        for (&node, (dns_at, _)) in &dns {
            if node == owner {
                continue;
            }
            let kernel = self.neighbour_shows(node, ip, attach, &what).await?;
            out.push(kernel.max(*dns_at).saturating_duration_since(t0));
        }
        Ok(out)
    }

    /// One scale step of the service: SCALE_STEP tasks `keys` attached on node `owner`
    /// in one commit (or, `up` false, detached again), and each carrier's convergence:
    /// its resolver lists the new set under `tasks.<service>`, its published and VIP
    /// maps hold it, and (other nodes than the owner) its kernel has (or no longer has)
    /// the FDB and neighbour entries of the tasks that came (or went).
    async fn scale(
        &mut self,
        up: bool,
        keys: &[String],
        owner: usize,
    ) -> anyhow::Result<Vec<Duration>> {
        let before = self.task_ips();
        let changed: BTreeSet<Ipv4Addr> = if up {
            BTreeSet::new()
        } else {
            self.tasks
                .iter()
                .filter(|(_, k, _)| keys.contains(k))
                .map(|(_, _, ip)| *ip)
                .collect()
        };
        let want_len = if up {
            before.len() + keys.len()
        } else {
            before.len() - changed.len()
        };
        let req = BenchEndpoints {
            network: NETWORK.into(),
            node: self.hosts[owner].clone(),
            attach: if up {
                Self::service_tasks(keys)
            } else {
                Vec::new()
            },
            detach: if up { Vec::new() } else { keys.to_vec() },
            batch: None,
        };
        self.listeners.seen.clear();
        self.published.clear();
        self.vips.clear();
        let carriers = self.carriers();
        let name = format!("tasks.{SERVICE}");
        let t0 = Instant::now();
        self.endpoints(&req).await?;
        let dns = self
            .dns_until(&name, &carriers, t0, "list the new tasks", |ips| {
                let got: BTreeSet<Ipv4Addr> = ips.iter().copied().collect();
                got.len() == want_len
                    && if up {
                        got.is_superset(&before)
                    } else {
                        got.is_disjoint(&changed) && got.is_subset(&before)
                    }
            })
            .await?;
        let want: BTreeSet<Ipv4Addr> = dns
            .values()
            .next()
            .map(|(_, ips)| ips.iter().copied().collect())
            .context("no carrier")?;
        let changed: BTreeSet<Ipv4Addr> = if up {
            want.difference(&before).copied().collect()
        } else {
            changed
        };
        let what = format!("scale {} of {SERVICE}", if up { "up" } else { "down" });
        let mut out = Vec::new();
        for (&node, (dns_at, _)) in &dns {
            let mut at = self.balancers_show(node, &want, t0).await?.max(*dns_at);
            if node != owner {
                for ip in &changed {
                    at = at.max(self.neighbour_shows(node, *ip, up, &what).await?);
                }
            }
            out.push(at.saturating_duration_since(t0));
        }
        if up {
            let ips: Vec<Ipv4Addr> = changed.into_iter().collect();
            // Which key has which address does not matter: they go together.
            for (key, ip) in keys.iter().zip(ips) {
                self.tasks.push((owner, key.clone(), ip));
            }
        } else {
            self.tasks.retain(|(_, k, _)| !keys.contains(k));
        }
        Ok(out)
    }

    /// Kills the last node's agent (a worker holding tasks of the service), and
    /// measures from the managers' Down commit until every other carrier no longer
    /// offers its tasks: its resolver's `tasks.<service>` and its published and VIP maps
    /// leave them out. Their FDB and neighbour entries stay by design (a Down node's
    /// endpoints stay in the state; only the balancers and DNS's task lists drop them),
    /// so no kernel entry of theirs is waited for. Returns the convergence per node
    /// and the time from the kill to the Down commit's proposal; then starts the agent
    /// again and waits until its tasks are back everywhere. `None` when the last node
    /// is a manager or holds no task.
    async fn node_down(&mut self) -> anyhow::Result<Option<(Vec<Duration>, Duration)>> {
        let victim = self.hosts.len() - 1;
        let host = self.lab.host(&self.hosts[victim])?.clone();
        let gone: BTreeSet<Ipv4Addr> = self
            .tasks
            .iter()
            .filter(|(node, _, _)| *node == victim)
            .map(|(_, _, ip)| *ip)
            .collect();
        if host.role != "worker" || gone.is_empty() {
            return Ok(None);
        }
        let want: BTreeSet<Ipv4Addr> = self.task_ips().difference(&gone).copied().collect();
        let others: Vec<usize> = self
            .carriers()
            .into_iter()
            .filter(|i| *i != victim)
            .collect();
        let paths = LabPaths::new(&self.lab.name);
        self.published.clear();
        self.vips.clear();
        let killed = Instant::now();
        let killed_ms = unix_ms(SystemTime::now());
        lab::stop_agent(&paths, &host, nix::sys::signal::Signal::SIGKILL).await?;
        // Every other node's resolver is polled from the kill on, so that none is
        // asked late; the Down commit's time is read from the state afterwards.
        let name = format!("tasks.{SERVICE}");
        let dns = self
            .dns_until(
                &name,
                &others,
                killed,
                "drop the Down node's tasks",
                |ips| ips.iter().copied().collect::<BTreeSet<_>>() == want,
            )
            .await?;
        let mut done = Vec::new();
        for (&node, (dns_at, _)) in &dns {
            let lb = self.balancers_show(node, &want, killed).await?;
            done.push(lb.max(*dns_at));
        }
        let down_ms = loop {
            // A read refused meanwhile (the leader could not confirm its lead on a
            // loaded machine) is asked again.
            match self.client.get::<Vec<NodeInfo>>("/v1/nodes").await {
                Ok(nodes) => {
                    let node = nodes
                        .iter()
                        .find(|n| n.name == host.name)
                        .context("the killed node is gone from the cluster")?;
                    if node.status == NodeStatus::Down {
                        break node.status_since_ms;
                    }
                }
                Err(e) => eprintln!("bench scale: reading the nodes: {e:#}"),
            }
            if killed.elapsed() > DOWN_WITHIN {
                bail!(
                    "{} was not marked Down within {}s",
                    host.name,
                    DOWN_WITHIN.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let detect = Duration::from_millis(down_ms.saturating_sub(killed_ms));
        // The Down commit's proposal on this machine's clock, as an instant.
        let down_at = killed + detect;
        let out = done
            .iter()
            .map(|at| at.saturating_duration_since(down_at))
            .collect();
        eprintln!("bench scale: starting {} again ...", host.name);
        lab::start_agent(&paths, &host, &self.lab).await?;
        let carriers = self.carriers();
        self.tasks_everywhere(&carriers, killed).await?;
        Ok(Some((out, detect)))
    }

    fn pids(&self) -> Vec<i32> {
        let paths = LabPaths::new(&self.lab.name);
        self.lab
            .nodes()
            .filter_map(|h| lab::running_pid(&paths, h))
            .collect()
    }

    /// What the managers' watch streams have sent so far, summed over the managers
    /// (a worker follows the manager it reached, the leader first).
    async fn managers_watch(&self) -> anyhow::Result<shoal_control::api::WatchInfo> {
        let mut sum = shoal_control::api::WatchInfo::default();
        for host in &self.hosts {
            let status: StatusInfo = self.lab.client(host)?.get("/v1/status").await?;
            if let Some(w) = status.watch {
                sum.watchers += w.watchers;
                sum.events_sent += w.events_sent;
                sum.snapshots_sent += w.snapshots_sent;
                sum.bytes_sent += w.bytes_sent;
            }
        }
        Ok(sum)
    }

    async fn leader_pid(&self) -> anyhow::Result<(String, i32)> {
        let status: StatusInfo = self.client.get("/v1/status").await?;
        let leader = status.leader.context("no leader")?;
        let paths = LabPaths::new(&self.lab.name);
        let pid =
            lab::running_pid(&paths, self.lab.host(&leader)?).context("leader not running")?;
        Ok((leader, pid))
    }

    /// CPU (% of a core) of every pid over what `work` takes, and the wall time.
    async fn cpu_during<F: std::future::Future<Output = anyhow::Result<()>>>(
        pids: &[i32],
        work: F,
    ) -> anyhow::Result<(Vec<f64>, Duration)> {
        let before: Vec<u64> = pids
            .iter()
            .map(|p| observe::usage(*p).map_or(0, |u| u.ticks))
            .collect();
        let t0 = Instant::now();
        work.await?;
        let wall = t0.elapsed();
        let tps = observe::ticks_per_second();
        let pct = pids
            .iter()
            .zip(before)
            .map(|(p, b)| {
                let after = observe::usage(*p).map_or(b, |u| u.ticks);
                (after.saturating_sub(b)) as f64 / tps / wall.as_secs_f64() * 100.0
            })
            .collect();
        Ok((pct, wall))
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

fn observe_one(pids: &[i32], values: &[f64], pid: i32) -> f64 {
    pids.iter()
        .position(|p| *p == pid)
        .and_then(|i| values.get(i).copied())
        .unwrap_or(0.0)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The bytes of every file below `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The size of the newest snapshot file below `dir`, if any.
fn newest_snapshot(dir: &std::path::Path) -> Option<u64> {
    let mut best: Option<(std::time::SystemTime, u64)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().contains("snap") {
                let at = meta.modified().ok()?;
                if best.is_none_or(|(t, _)| at > t) {
                    best = Some((at, meta.len()));
                }
            }
        }
    }
    best.map(|(_, len)| len)
}
