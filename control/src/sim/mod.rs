//! A simulated Raft tier for Jepsen-style tests: 3 or 5 managers in one process, on
//! tokio's paused clock, with a seeded nemesis and a linearizability check.
//!
//! ```text
//!  clients (one per task) ─writes─▶ manager ─forward─▶ leader: announce_leader + commit
//!          │             ─reads──▶ manager's Replica (after a read index, or not)
//!          ▼                            ▲ openraft + StateMachine (real) + Disk (memory)
//!  Recorder ─history─▶ shoal_lincheck  │
//!  nemesis ─partition / isolate leader / pause / crash+restart─▶ Fabric (seeded delays)
//! ```
//! What is real: openraft with shoal's configuration, the state machine and `apply`,
//! the replica the API reads, the pre-vote rule and timeouts, the leader's
//! `announce_leader` and `commit` (quorum-staleness check, write timeout). What is
//! simulated: the network ([`fabric`]), the log's disk ([`memlog`]: the real log's
//! writer thread would let the paused clock jump while it fsyncs), the forwarding hop
//! (a follower forwards to the leader it knows; the control server's second hop is not
//! modelled) and the pre-vote supervisor's loop (same rule, over the fabric).
//!
//! A run is replayable from its seed; `SHOAL_SIM_SEED` picks one seed for the tests.
//! After the clients finish, every link is healed, crashed nodes restart, a no-op is
//! committed, and every manager's final value of every object is read into the history,
//! so a lost acknowledged write is also a linearizability violation.

mod client;
mod fabric;
mod memlog;
mod nemesis;
mod node;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shoal_lincheck::kv::{Object, ObjectModel, Reply};
use shoal_lincheck::{check_with, Operation, Options, Recorder, Verdict};
use tokio::time::Instant;

pub use client::Outcome;
pub use fabric::{Fabric, Fail};
pub use memlog::Disk;
pub use nemesis::Fault;
pub use node::SimNode;

use crate::audit::{duplicate_addresses, lost_writes, value_of};
use crate::ids::NodeId;
use crate::state::{Availability, Command, NetworkSpec, Node, NodeStatus, Role, Secrets};

/// How the API serves reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// From the manager's replica as it is (what the agent's GET handlers do today).
    Local,
    /// From the manager's replica after a read index from the leader.
    ReadIndex,
}

/// One simulated run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Seeds the nemesis, the clients, the message delays and the election timeouts.
    pub seed: u64,
    /// How many managers (3 or 5).
    pub managers: usize,
    /// How many concurrent clients.
    pub clients: usize,
    /// How many operations, over all clients.
    pub ops: usize,
    /// How reads are served.
    pub read_mode: ReadMode,
}

impl Config {
    /// 3 managers, 4 clients, 100 operations, reads by read index.
    pub fn new(seed: u64) -> Config {
        Config {
            seed,
            managers: 3,
            clients: 4,
            ops: 100,
            read_mode: ReadMode::ReadIndex,
        }
    }
}

/// The simulation's wall clock, for proposal stamps: follows the paused clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// Unix milliseconds, virtually.
    pub fn now_ms(&self) -> u64 {
        1_750_000_000_000 + self.0.elapsed().as_millis() as u64
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Its seed.
    pub seed: u64,
    /// The history checked (the clients' operations, then the final reads).
    pub history: Vec<Operation<Object, Reply>>,
    /// The faults, with when they started (virtual ms since the start).
    pub faults: Vec<(u64, Fault)>,
    /// The checker's verdict.
    pub verdict: Verdict,
    /// Everything else wrong: lost writes, duplicate addresses, diverged replicas,
    /// refusals nobody expected.
    pub problems: Vec<String>,
    /// How long the run took on the simulated clock.
    pub simulated: Duration,
}

impl Report {
    /// Whether the run found nothing wrong.
    pub fn passed(&self) -> bool {
        self.verdict.is_linearizable() && self.problems.is_empty()
    }

    /// Operations whose outcome was unknown.
    pub fn unknown(&self) -> usize {
        self.history.iter().filter(|o| o.output().is_none()).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} ops ({} unknown), {} faults, {:.1}s simulated: ",
            self.seed,
            self.history.len(),
            self.unknown(),
            self.faults.len(),
            self.simulated.as_secs_f64()
        )?;
        match &self.verdict {
            Verdict::Linearizable => write!(f, "linearizable")?,
            Verdict::Timeout => write!(f, "checker timed out")?,
            Verdict::Illegal(v) => {
                write!(f, "NOT linearizable on {}: ", v.key)?;
                let show = |i: usize| format!("{:?}", self.history[i]);
                let tail: Vec<String> = v
                    .longest
                    .iter()
                    .rev()
                    .take(4)
                    .rev()
                    .map(|i| show(*i))
                    .collect();
                write!(
                    f,
                    "after [.., {}] cannot place {}",
                    tail.join(", "),
                    show(v.stuck)
                )?;
            }
        }
        for p in &self.problems {
            write!(f, "; {p}")?;
        }
        if !self.passed() {
            let faults: Vec<String> = self
                .faults
                .iter()
                .map(|(t, x)| format!("{t}ms {x}"))
                .collect();
            write!(
                f,
                "\n  faults: {}\n  replay: SHOAL_SIM_SEED={}",
                faults.join(", "),
                self.seed
            )?;
        }
        Ok(())
    }
}

/// Runs `config` on a fresh single-threaded runtime with a paused clock.
pub fn run(config: &Config) -> Report {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    rt.block_on(simulate(config))
}

/// What a series of runs found.
#[derive(Debug)]
pub struct Campaign {
    /// The runs that found something wrong.
    pub failed: Vec<Report>,
    /// How many runs.
    pub runs: usize,
    /// Operations checked, over all runs.
    pub ops: usize,
    /// Faults injected, over all runs.
    pub faults: usize,
    /// Time simulated, over all runs.
    pub simulated: Duration,
    /// Wall time taken.
    pub wall: Duration,
}

impl Campaign {
    /// Faults injected per second of wall time.
    pub fn faults_per_second(&self) -> f64 {
        self.faults as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Campaign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} runs, {} ops, {} faults, {:.0}s simulated in {:.1}s wall ({:.0} faults/s): {}",
            self.runs,
            self.ops,
            self.faults,
            self.simulated.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.faults_per_second(),
            if self.failed.is_empty() {
                "0 linearizability violations, 0 lost writes, 0 duplicate addresses".to_string()
            } else {
                format!("{} runs FAILED", self.failed.len())
            }
        )
    }
}

/// Runs `template` once per seed (its own seed ignored), calling `each` with every
/// report as it comes: for `shoal bench control-faults` and the tests.
pub fn campaign(
    template: &Config,
    seeds: impl IntoIterator<Item = u64>,
    mut each: impl FnMut(&Report),
) -> Campaign {
    let wall = std::time::Instant::now();
    let mut c = Campaign {
        failed: Vec::new(),
        runs: 0,
        ops: 0,
        faults: 0,
        simulated: Duration::ZERO,
        wall: Duration::ZERO,
    };
    for seed in seeds {
        let report = run(&Config {
            seed,
            ..template.clone()
        });
        each(&report);
        c.runs += 1;
        c.ops += report.history.len();
        c.faults += report.faults.len();
        c.simulated += report.simulated;
        if !report.passed() {
            c.failed.push(report);
        }
    }
    c.wall = wall.elapsed();
    c
}

/// The seeds to run: `SHOAL_SIM_SEED` if set, otherwise `count` seeds from `first`.
pub fn seeds(first: u64, count: u64) -> Vec<u64> {
    match std::env::var("SHOAL_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (first..first + count).collect(),
    }
}

fn sim_node(id: u64) -> Node {
    let ip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, id as u8));
    Node {
        id: NodeId(id),
        name: format!("m{id}"),
        role: Role::Manager,
        availability: Availability::Active,
        status: NodeStatus::Ready,
        addr: ip,
        control_addr: (ip, 2377).into(),
        joined_at_ms: 0,
        status_since_ms: 0,
        availability_since_ms: 0,
        labels: Default::default(),
        report: Default::default(),
        wireguard: None,
    }
}

/// Initialises Raft on the first manager with every manager as a voter, elects it,
/// and commits the cluster's first entries.
async fn bootstrap(env: &client::Env) -> Result<(), String> {
    let first = env.ids[0];
    let node = env
        .fabric
        .node(first)
        .ok_or("the first manager is not running")?;
    let members = env
        .ids
        .iter()
        .map(|id| (*id, openraft::BasicNode::new(format!("sim-{id}"))))
        .collect::<std::collections::BTreeMap<_, _>>();
    node.raft
        .initialize(members)
        .await
        .map_err(|e| format!("initialise: {e}"))?;
    node.raft
        .trigger()
        .elect()
        .await
        .map_err(|e| format!("elect: {e}"))?;
    let until = Instant::now() + Duration::from_secs(10);
    while !node.is_leader() {
        if Instant::now() > until {
            return Err("the first manager did not become leader".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut commands = vec![Command::Bootstrap {
        cluster_id: "sim".into(),
        ca_cert_pem: String::new(),
        secrets: Secrets::default(),
        addr_pools: Default::default(),
        node: sim_node(first),
    }];
    for id in &env.ids[1..] {
        commands.push(Command::AddNode {
            node: sim_node(*id),
        });
    }
    commands.push(Command::CreateNetwork {
        id: "5eed0000000000000000000a".into(),
        spec: NetworkSpec {
            name: client::SHARED.into(),
            attachable: true,
            ..Default::default()
        },
    });
    for command in commands {
        match client::submit(env, first, command).await {
            Outcome::Applied(_) => {}
            other => return Err(format!("bootstrap: {other:?}")),
        }
    }
    Ok(())
}

/// Heals, restarts what is down, and commits a no-op; waits until every manager has
/// applied it.
async fn settle(
    env: &client::Env,
    restart: &nemesis::Restart,
    rng: &mut StdRng,
) -> Result<(), String> {
    env.fabric.heal();
    for id in &env.ids {
        if env.fabric.node(*id).is_none() {
            restart.start(&env.fabric, *id, rng.gen()).await;
        }
    }
    let until = Instant::now() + Duration::from_secs(60);
    let revision = loop {
        if let Outcome::Applied(a) = client::submit(env, env.ids[0], Command::Noop).await {
            break a.revision;
        }
        if Instant::now() > until {
            return Err("no leader committed a no-op within 60s of healing".into());
        }
        // A leader that has not heard from a majority yet refuses at once, without
        // awaiting anything: back off, or this loop keeps the paused clock (and every
        // other task) from ever moving.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    while env.ids.iter().any(|id| {
        env.fabric
            .node(*id)
            .is_none_or(|n| n.replica.revision() < revision)
    }) {
        if Instant::now() > until {
            return Err(format!(
                "not every manager reached revision {revision} after healing"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// One run, on the current runtime (which should have a paused clock).
pub async fn simulate(config: &Config) -> Report {
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let ids: Vec<u64> = (1..=config.managers as u64).collect();
    let restart = nemesis::Restart {
        disks: ids.iter().map(|id| (*id, Disk::default())).collect(),
        dirs: ids
            .iter()
            .map(|id| (*id, tmp.path().join(format!("m{id}"))))
            .collect(),
    };
    let fabric = Fabric::new(rng.gen());
    for id in &ids {
        restart.start(&fabric, *id, rng.gen()).await;
    }
    let env = Arc::new(client::Env {
        fabric: fabric.clone(),
        ids: ids.clone(),
        history: Arc::new(Recorder::new()),
        clock: Clock(start),
        read_mode: config.read_mode,
    });
    let mut problems = Vec::new();
    let mut faults = Vec::new();
    if let Err(e) = bootstrap(&env).await {
        problems.push(e);
    } else {
        let per_client = config.ops.div_ceil(config.clients.max(1));
        let clients: Vec<_> = (0..config.clients as u64)
            .map(|c| {
                let rng = StdRng::seed_from_u64(rng.gen());
                tokio::spawn(client::run(env.clone(), c, per_client, rng))
            })
            .collect();
        while !clients.iter().all(|c| c.is_finished()) {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(300..1500))).await;
            if clients.iter().all(|c| c.is_finished()) {
                break;
            }
            let at = start.elapsed().as_millis() as u64;
            faults.push((at, nemesis::strike(&fabric, &ids, &restart, &mut rng).await));
        }
        for c in clients {
            problems.extend(
                c.await
                    .unwrap_or_else(|e| vec![format!("client panicked: {e}")]),
            );
        }
        if let Err(e) = settle(&env, &restart, &mut rng).await {
            problems.push(e);
        }
    }
    let mut history = env.history.history();
    let mut keys: Vec<String> = history.iter().map(|o| o.input.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let states: Vec<_> = fabric
        .running()
        .iter()
        .map(|n| (n.id, n.replica.state()))
        .collect();
    for (id, state) in &states {
        for key in &keys {
            let op = env.history.invoke(1000 + id, Object::read(key));
            env.history.ok(op, Reply::Value(value_of(state, key)));
        }
        for p in duplicate_addresses(state) {
            problems.push(format!("manager {id}: {p}"));
        }
        for p in lost_writes(&history, state) {
            problems.push(format!("manager {id}: {p}"));
        }
    }
    if let Some((first, state)) = states.first() {
        for (id, other) in &states[1..] {
            if other != state {
                problems.push(format!("the replicas of managers {first} and {id} differ"));
            }
        }
    }
    history = env.history.history();
    let verdict = check_with(
        &ObjectModel,
        &history,
        Options {
            timeout: Some(Duration::from_secs(30)),
        },
    );
    let simulated = start.elapsed();
    for n in fabric.running() {
        SimNode::crash(&fabric, n.id).await;
    }
    Report {
        seed: config.seed,
        history,
        faults,
        verdict,
        problems,
        simulated,
    }
}

#[cfg(test)]
mod tests;
