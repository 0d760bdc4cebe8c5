//! Simulated API clients: each sits on one manager, as the CLI does, and creates,
//! changes, removes and reads networks, services and node labels. Writes travel the
//! API's path (this manager if it leads, otherwise forwarded to the leader it knows,
//! retried only when the request provably went nowhere); the leader announces itself
//! and commits with `member`'s own `announce_leader` and `commit`. Reads are served as
//! [`ReadMode`] says.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use shoal_lincheck::kv::{Object, Reply};
use shoal_lincheck::Recorder;
use tokio::time::Instant;

use super::fabric::{Fabric, Fail};
use super::node::SimNode;
use super::{Clock, ReadMode};
use crate::audit::{value_of, LABEL};
use crate::error::ClusterError;
use crate::ids::NodeId;
use crate::member::{announce_leader, commit, SIM_SUBMIT_DEADLINE};
use crate::raft::read::{read_revision, wait_for_revision};
use crate::state::{
    Applied, ApplyError, AttachSpec, Command, NetworkSpec, ServiceChanges, ServiceSpec,
};

/// The network every service and sandbox joins (made at bootstrap).
pub const SHARED: &str = "shared";
const NETWORKS: [&str; 2] = ["na", "nb"];
const SERVICES: [&str; 2] = ["sa", "sb"];
/// How long a read may wait for the read index.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What became of a write.
#[derive(Debug)]
pub enum Outcome {
    /// Committed and applied.
    Applied(Applied),
    /// Committed; the state machine refused it.
    Refused(ApplyError),
    /// Certainly not applied.
    Failed,
    /// Maybe applied.
    Unknown,
}

/// One client's shared surroundings.
pub struct Env {
    /// The managers.
    pub fabric: Arc<Fabric>,
    /// The managers' IDs.
    pub ids: Vec<u64>,
    /// The history.
    pub history: Arc<Recorder<Object, Reply>>,
    /// The simulation's clock, for proposals.
    pub clock: Clock,
    /// How reads are served.
    pub read_mode: ReadMode,
}

/// Runs `ops` operations as client `client`, with think times, from `rng`.
pub async fn run(env: Arc<Env>, client: u64, ops: usize, mut rng: StdRng) -> Vec<String> {
    let mut unexpected = Vec::new();
    for i in 0..ops {
        let at = env.ids[rng.gen_range(0..env.ids.len())];
        let value = format!("c{client}-{i}");
        let id = format!("{:024x}", rng.gen::<u128>() & ((1 << 96) - 1));
        let net = NETWORKS[rng.gen_range(0..NETWORKS.len())];
        let svc = SERVICES[rng.gen_range(0..SERVICES.len())];
        let label_node = env.ids[rng.gen_range(0..env.ids.len())];
        let labels = BTreeMap::from([("v".to_string(), value.clone())]);
        let (object, command) = match rng.gen_range(0..100) {
            0..=14 => (
                Object::create(&format!("net/{net}"), &value),
                Some(Command::CreateNetwork {
                    id,
                    spec: NetworkSpec {
                        name: net.into(),
                        labels,
                        ..Default::default()
                    },
                }),
            ),
            15..=21 => (
                Object::delete(&format!("net/{net}")),
                Some(Command::RemoveNetwork {
                    network: net.into(),
                }),
            ),
            22..=33 => (Object::read(&format!("net/{net}")), None),
            34..=45 => (
                Object::create(&format!("svc/{svc}"), &value),
                Some(Command::CreateService {
                    id,
                    spec: ServiceSpec {
                        name: svc.into(),
                        networks: vec![SHARED.into()],
                        labels,
                        ..Default::default()
                    },
                }),
            ),
            46..=56 => (
                Object::update(&format!("svc/{svc}"), &value),
                Some(Command::UpdateService {
                    name: svc.into(),
                    changes: ServiceChanges {
                        labels_add: labels,
                        ..Default::default()
                    },
                }),
            ),
            57..=62 => (
                Object::delete(&format!("svc/{svc}")),
                Some(Command::RemoveService { name: svc.into() }),
            ),
            63..=74 => (Object::read(&format!("svc/{svc}")), None),
            75..=82 => (
                Object::put(&format!("label/{label_node}"), &value),
                Some(Command::UpdateNode {
                    id: NodeId(label_node),
                    availability: None,
                    labels_add: BTreeMap::from([(LABEL.to_string(), value.clone())]),
                    labels_rm: Vec::new(),
                }),
            ),
            83..=90 => (Object::read(&format!("label/{label_node}")), None),
            _ => {
                let sandbox = format!("/run/netns/jepsen-{client}-{i}");
                (
                    Object::put(&format!("ep/{sandbox}"), "attached"),
                    Some(Command::Attach {
                        spec: AttachSpec {
                            network: SHARED.into(),
                            node: NodeId(at),
                            sandbox,
                            ..Default::default()
                        },
                    }),
                )
            }
        };
        let op = env.history.invoke(client, object.clone());
        match command {
            None => match read(&env, at, &object.key).await {
                Some(v) => env.history.ok(op, Reply::Value(v)),
                None => env.history.failed(op),
            },
            Some(command) => match submit(&env, at, command).await {
                Outcome::Applied(_) => env.history.ok(op, Reply::Ok),
                Outcome::Refused(ApplyError::Conflict(_)) => {
                    env.history.ok(op, Reply::AlreadyExists)
                }
                Outcome::Refused(ApplyError::NoSuchNetwork(_) | ApplyError::NoSuchService(_)) => {
                    env.history.ok(op, Reply::NotFound)
                }
                Outcome::Refused(e) => {
                    unexpected.push(format!("{object:?} refused: {e}"));
                    env.history.failed(op);
                }
                Outcome::Failed => env.history.failed(op),
                Outcome::Unknown => env.history.unknown(op),
            },
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..200))).await;
    }
    unexpected
}

/// Reads `key` at manager `at`; `None` if the read could not be served. With a read
/// index, as `Member::read_barrier`: the leader's revision after confirming its
/// leadership, then this replica caught up to it.
async fn read(env: &Env, at: u64, key: &str) -> Option<Option<String>> {
    let node = env.fabric.node(at)?;
    if env.read_mode == ReadMode::ReadIndex {
        let revision = if node.is_leader() {
            read_revision(&node.raft, &node.replica, READ_TIMEOUT)
                .await
                .ok()?
        } else {
            let leader = node.leader().filter(|l| *l != at)?;
            env.fabric
                .call(at, leader, READ_TIMEOUT, |l| async move {
                    read_revision(&l.raft, &l.replica, READ_TIMEOUT).await
                })
                .await
                .ok()?
                .ok()?
        };
        wait_for_revision(&node.replica, revision, READ_TIMEOUT)
            .await
            .ok()?;
    }
    Some(value_of(&node.replica.state(), key))
}

/// What the leader does with a forwarded or local write (`Member::handle`).
async fn on_leader(node: &SimNode, command: Command, at_ms: u64) -> Result<Applied, ClusterError> {
    let me = NodeId(node.id);
    announce_leader(&node.raft, &node.replica.state(), me, at_ms).await?;
    commit(&node.raft, command, at_ms).await
}

fn outcome(result: Result<Applied, ClusterError>) -> Option<Outcome> {
    match result {
        Ok(a) => Some(Outcome::Applied(a)),
        Err(ClusterError::Apply(e)) => Some(Outcome::Refused(e)),
        // Refused before it was proposed: try again, as `Member::submit` does.
        Err(ClusterError::NotLeader(_)) => None,
        // A write timeout, or a leader that stopped: maybe committed.
        Err(_) => Some(Outcome::Unknown),
    }
}

/// `Member::submit` over the fabric: handle here if leading, otherwise forward to the
/// known leader; retry only what provably did not get anywhere, until the deadline.
pub async fn submit(env: &Env, at: u64, command: Command) -> Outcome {
    let until = Instant::now() + SIM_SUBMIT_DEADLINE;
    loop {
        let Some(node) = env.fabric.node(at) else {
            // The agent is down: the client's connection is refused.
            return Outcome::Failed;
        };
        if node.is_leader() {
            if let Some(o) = outcome(on_leader(&node, command.clone(), env.clock.now_ms()).await) {
                return o;
            }
        } else if let Some(leader) = node.leader().filter(|l| *l != at) {
            let command = command.clone();
            let at_ms = env.clock.now_ms();
            let answer = env
                .fabric
                .call(at, leader, SIM_SUBMIT_DEADLINE, |l| async move {
                    if l.is_leader() {
                        on_leader(&l, command, at_ms).await
                    } else {
                        Err(ClusterError::NotLeader(None))
                    }
                })
                .await;
            match answer {
                Ok(r) => {
                    if let Some(o) = outcome(r) {
                        return o;
                    }
                }
                Err(Fail::Unreachable) => {}
                Err(Fail::Lost) => return Outcome::Unknown,
            }
        }
        if Instant::now() >= until {
            return Outcome::Failed;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}
