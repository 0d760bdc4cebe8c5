//! `shoal lab jepsen`: a seeded, replayable nemesis run against a lab's control plane,
//! checked as Jepsen checks a database.
//!
//! ```text
//!  clients (N per manager) ─ create/delete/read networks and services, put/read labels ─▶ API
//!        └─ every call recorded: invoked, answered (known) or timed out (unknown) ─▶ history
//!  nemesis (seeded) ─ partition │ pause │ kill -9 ─ heal ─ partition … (the lab's own commands)
//!  after: heal, converge, final reads from every manager ─▶ linearizable? (shoal-lincheck)
//!         addresses given twice? kernel objects the state no longer has?
//! ```
//! The same seed gives the same operations and faults; timing (and so the history) is
//! the machine's.

pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use shoal_control::state::ServiceSpec;
use shoal_lincheck::kv::{Object, ObjectModel, Op};
use shoal_lincheck::Recorder;

use super::Lab;
use crate::client::unix_http;
use plan::{Fault, Kind, Outcome};

/// The run's network and service (its labels are the label objects).
const NETWORK: &str = "jepsen";
const SERVICE: &str = "jepsen";

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seeds the operations and the faults.
    pub seed: u64,
    /// How long clients and nemesis run.
    pub duration: Duration,
    /// Concurrent clients on each manager.
    pub clients_per_manager: usize,
    /// A fault (or its heal) this often.
    pub fault_every: Duration,
    /// Objects of each kind.
    pub objects: usize,
    /// An operation not answered within this is unknown.
    pub op_timeout: Duration,
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed (replay with `--seed`).
    pub seed: u64,
    /// Operations recorded (final reads included).
    pub operations: usize,
    /// Of them, answered.
    pub known: usize,
    /// Of them, not answered in time (may or may not have taken effect).
    pub unknown: usize,
    /// Operations left out: refused before reaching the store, failed reads.
    pub without_effect: usize,
    /// Faults injected, heals included, with their time into the run (ms).
    pub faults: Vec<(u64, String)>,
    /// The checker's verdict.
    pub linearizable: bool,
    /// The first violation found, if any.
    pub violation: Option<String>,
    /// How long the check took (ms).
    pub check_ms: u64,
    /// Addresses given out twice in the final state.
    pub duplicate_addresses: Vec<String>,
    /// Kernel objects the final state no longer has.
    pub stale_kernel_objects: Vec<String>,
    /// Whether every manager agreed on the leader and revision after the heal.
    pub converged: bool,
}

impl Report {
    /// Whether the run found nothing wrong.
    pub fn passed(&self) -> bool {
        self.linearizable
            && self.converged
            && self.duplicate_addresses.is_empty()
            && self.stale_kernel_objects.is_empty()
    }
}

/// One API exchange: status (`None`: no answer in time) and body.
async fn call(
    socket: &std::path::Path,
    method: http::Method,
    path: &str,
    body: Option<Value>,
    timeout: Duration,
) -> (Option<u16>, Value) {
    let body = body.map(|b| b.to_string().into_bytes());
    match unix_http(socket, method, path, body, timeout).await {
        Ok((status, bytes)) => (
            Some(status.as_u16()),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ),
        Err(_) => (None, Value::Null),
    }
}

/// `op` through the API of the agent at `socket`: the status and the value seen.
async fn perform(
    socket: &std::path::Path,
    object: &Object,
    timeout: Duration,
) -> (Option<u16>, Option<String>) {
    use http::Method;
    let key = &object.key;
    let label = |v: &Value, name: &str| v.pointer(name).and_then(Value::as_str).map(str::to_string);
    let (status, body) = match (Kind::of(key), &object.op) {
        (Kind::Label, Op::Put(v)) => {
            let body = json!({ "labels_add": { key: v } });
            let path = format!("/v1/services/{SERVICE}/update");
            call(socket, Method::POST, &path, Some(body), timeout).await
        }
        (Kind::Label, _) => {
            let path = format!("/v1/services/{SERVICE}");
            let (s, v) = call(socket, Method::GET, &path, None, timeout).await;
            let seen = label(&v, &format!("/spec/labels/{key}"));
            return (s, seen);
        }
        (Kind::Network, Op::Create(v)) => {
            let body = json!({ "name": key, "labels": { "v": v } });
            call(socket, Method::POST, "/v1/networks", Some(body), timeout).await
        }
        (Kind::Network, Op::Delete) => {
            let path = format!("/v1/networks/{key}");
            call(socket, Method::DELETE, &path, None, timeout).await
        }
        (Kind::Network, _) => {
            let path = format!("/v1/networks/{key}");
            let (s, v) = call(socket, Method::GET, &path, None, timeout).await;
            return (s, label(&v, "/labels/v"));
        }
        (Kind::Service, Op::Create(v)) => {
            let spec = ServiceSpec {
                name: key.clone(),
                networks: vec![NETWORK.into()],
                labels: BTreeMap::from([("v".to_string(), v.clone())]),
                command: vec!["sleep".into(), "100000".into()],
                ..ServiceSpec::default()
            };
            let body = serde_json::to_value(spec).unwrap_or_default();
            call(socket, Method::POST, "/v1/services", Some(body), timeout).await
        }
        (Kind::Service, Op::Delete) => {
            let path = format!("/v1/services/{key}");
            call(socket, Method::DELETE, &path, None, timeout).await
        }
        (Kind::Service, _) => {
            let path = format!("/v1/services/{key}");
            let (s, v) = call(socket, Method::GET, &path, None, timeout).await;
            return (s, label(&v, "/spec/labels/v"));
        }
    };
    let _ = body;
    (status, None)
}

/// Runs the `shoal lab` command `args` on lab `lab` (the nemesis uses the same
/// commands a person would).
fn lab_command(lab: &str, args: &[&str]) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("find the shoal binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("lab")
        .arg(args[0])
        .arg("--name")
        .arg(lab)
        .args(&args[1..]);
    let out = cmd.output().context("run shoal lab")?;
    if !out.status.success() {
        bail!(
            "shoal lab {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Injects `fault` (a heal also resumes paused agents and starts killed ones).
fn inject(lab: &Lab, fault: &Fault, killed: &mut BTreeSet<String>) -> anyhow::Result<()> {
    match fault {
        Fault::Partition(groups) => {
            let mut args = vec!["partition".to_string()];
            for (i, g) in groups.iter().enumerate() {
                if i > 0 {
                    args.push("/".into());
                }
                args.push(g.join(","));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            lab_command(&lab.name, &args)
        }
        Fault::Pause(h) => lab_command(&lab.name, &["pause", h]),
        Fault::Kill(h) => {
            killed.insert(h.clone());
            lab_command(&lab.name, &["kill", "--signal", "KILL", h])
        }
        Fault::Heal => {
            lab_command(&lab.name, &["heal"])?;
            for h in std::mem::take(killed) {
                lab_command(&lab.name, &["start", &h])?;
            }
            Ok(())
        }
    }
}

/// The leader's host name, as the first manager that answers says.
async fn leader(lab: &Lab, managers: &[(String, PathBuf)]) -> Option<String> {
    for (_, socket) in managers {
        let (status, v) = call(
            socket,
            http::Method::GET,
            "/v1/status",
            None,
            Duration::from_secs(1),
        )
        .await;
        if status == Some(200) {
            if let Some(l) = v.get("leader").and_then(Value::as_str) {
                return lab
                    .hosts
                    .iter()
                    .find(|h| h.name == l)
                    .map(|h| h.name.clone());
            }
        }
    }
    None
}

/// Runs a nemesis run on `lab` (its managers must be Ready).
pub async fn run(lab: &Lab, options: &Options) -> anyhow::Result<Report> {
    let managers: Vec<(String, PathBuf)> = lab
        .nodes()
        .filter(|h| h.role == "manager")
        .map(|h| (h.name.clone(), h.socket.clone()))
        .collect();
    let workers: Vec<String> = lab
        .nodes()
        .filter(|h| h.role != "manager")
        .map(|h| h.name.clone())
        .collect();
    if managers.is_empty() {
        bail!("lab {} has no manager", lab.name);
    }
    set_up(&managers[0].1).await?;
    let names = Arc::new(std::sync::Mutex::new(plan::Names::new(
        options.objects,
        options.seed,
    )));
    let recorder: Arc<Recorder<Object, shoal_lincheck::kv::Reply>> = Arc::new(Recorder::new());
    let started = Instant::now();
    let deadline = started + options.duration;
    let mut clients = Vec::new();
    let mut id = 0u64;
    for (_, socket) in &managers {
        for _ in 0..options.clients_per_manager {
            id += 1;
            let (socket, names, recorder) = (socket.clone(), names.clone(), recorder.clone());
            let (seed, timeout) = (
                options.seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                options.op_timeout,
            );
            clients.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut n = 0;
                while Instant::now() < deadline {
                    // Jepsen's stagger: a client waits up to STAGGER between its
                    // operations, so a run's history is long in time, not in numbers.
                    let pause = rng.gen_range(Duration::ZERO..plan::STAGGER);
                    tokio::time::sleep(pause).await;
                    n += 1;
                    let keys = names.lock().unwrap_or_else(|e| e.into_inner()).current();
                    let object = plan::next_op(&mut rng, &keys, id, n);
                    let key = object.key.clone();
                    let outcome = record(&recorder, id, &socket, object, timeout).await;
                    names
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(&key, outcome == Outcome::Unknown);
                }
            }));
        }
    }
    // The nemesis.
    let mut rng = StdRng::seed_from_u64(options.seed);
    let manager_names: Vec<String> = managers.iter().map(|m| m.0.clone()).collect();
    let mut faults = Vec::new();
    let mut killed = BTreeSet::new();
    let mut previous: Option<Fault> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(options.fault_every.min(left)).await;
        if Instant::now() >= deadline {
            break;
        }
        let leader = leader(lab, &managers).await;
        let fault = plan::next_fault(
            &mut rng,
            previous.as_ref(),
            &manager_names,
            &workers,
            leader.as_deref(),
        );
        let at = started.elapsed().as_millis() as u64;
        if let Err(e) = inject(lab, &fault, &mut killed) {
            faults.push((at, format!("{} (failed: {e})", fault.describe())));
        } else {
            faults.push((at, fault.describe()));
        }
        previous = Some(fault);
    }
    for c in clients {
        let _ = c.await;
    }
    inject(lab, &Fault::Heal, &mut killed)?;
    faults.push((started.elapsed().as_millis() as u64, Fault::Heal.describe()));
    let phase = |what: &str| {
        eprintln!(
            "lab jepsen: {:>6.1}s  {what}",
            started.elapsed().as_secs_f64()
        )
    };
    phase(&format!(
        "clients done: {} operations, {} faults; healed",
        recorder.len(),
        faults.len()
    ));
    let converged = converge(&managers, Duration::from_secs(60)).await;
    phase(&format!("converged: {converged}"));
    // Final reads of every object ever named, from every manager (each manager's
    // reads in order, the managers side by side).
    let keys = names.lock().unwrap_or_else(|e| e.into_inner()).all();
    let readers = managers.iter().enumerate().map(|(i, (_, socket))| {
        let (recorder, keys, socket) = (recorder.clone(), keys.clone(), socket.clone());
        let timeout = options.op_timeout;
        async move {
            for key in &keys {
                let client = 1_000_000 + i as u64;
                record(&recorder, client, &socket, Object::read(key), timeout).await;
            }
        }
    });
    futures::future::join_all(readers).await;
    phase(&format!(
        "final reads of {} names from every manager",
        keys.len()
    ));
    let history = recorder.history();
    let check_started = Instant::now();
    let verdict = shoal_lincheck::check(&ObjectModel, &history);
    let check_ms = check_started.elapsed().as_millis() as u64;
    phase(&format!(
        "checked {} operations in {check_ms} ms",
        history.len()
    ));
    let (known, unknown) = history.iter().fold((0, 0), |(k, u), op| match op.output() {
        Some(_) => (k + 1, u),
        None => (k, u + 1),
    });
    let duplicate_addresses = duplicates(&managers[0].1).await;
    let stale_kernel_objects = kernel_leftovers(lab, &managers[0].1, Duration::from_secs(30)).await;
    Ok(Report {
        seed: options.seed,
        operations: history.len(),
        known,
        unknown,
        without_effect: recorder.len() - history.len(),
        faults,
        linearizable: verdict.is_linearizable(),
        violation: (!verdict.is_linearizable()).then(|| explain(&verdict, &history)),
        check_ms,
        duplicate_addresses,
        stale_kernel_objects,
        converged,
    })
}

/// A violation, with the history of its object (one operation a line: client, call and
/// return times, what was asked and answered), so a failed seed can be read.
fn explain(
    verdict: &shoal_lincheck::Verdict,
    history: &[shoal_lincheck::Operation<Object, shoal_lincheck::kv::Reply>],
) -> String {
    let mut out = format!("{verdict:?}");
    if let shoal_lincheck::Verdict::Illegal(v) = verdict {
        for (i, op) in history.iter().enumerate() {
            if format!("{:?}", op.input.key) == v.key {
                out.push_str(&format!(
                    "\n  #{i} client {} at {}: {:?} -> {:?}",
                    op.client, op.call, op.input.op, op.outcome
                ));
            }
        }
    }
    out
}

/// One operation, recorded from invocation to its outcome.
async fn record(
    recorder: &Recorder<Object, shoal_lincheck::kv::Reply>,
    client: u64,
    socket: &std::path::Path,
    object: Object,
    timeout: Duration,
) -> Outcome {
    let id = recorder.invoke(client, object.clone());
    let (status, value) = perform(socket, &object, timeout).await;
    let outcome = plan::classify(&object.op, status, value);
    match &outcome {
        Outcome::Known(reply) => recorder.ok(id, reply.clone()),
        Outcome::Unknown => recorder.unknown(id),
        Outcome::NoEffect => recorder.failed(id),
    }
    outcome
}

/// The run's network and service, made before the clients start.
async fn set_up(socket: &std::path::Path) -> anyhow::Result<()> {
    let t = Duration::from_secs(30);
    let (s, v) = call(
        socket,
        http::Method::POST,
        "/v1/networks",
        Some(json!({ "name": NETWORK })),
        t,
    )
    .await;
    if !matches!(s, Some(200..=299 | 409)) {
        bail!("cannot create network {NETWORK}: {s:?} {v}");
    }
    let spec = ServiceSpec {
        name: SERVICE.into(),
        networks: vec![NETWORK.into()],
        ..ServiceSpec::default()
    };
    let spec = serde_json::to_value(spec)?;
    let (s, v) = call(socket, http::Method::POST, "/v1/services", Some(spec), t).await;
    if !matches!(s, Some(200..=299 | 409)) {
        bail!("cannot create service {SERVICE}: {s:?} {v}");
    }
    Ok(())
}

/// Waits until every manager answers with the same leader and revision.
async fn converge(managers: &[(String, PathBuf)], within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        let mut seen = BTreeSet::new();
        let mut all = true;
        for (_, socket) in managers {
            let (s, v) = call(
                socket,
                http::Method::GET,
                "/v1/status",
                None,
                Duration::from_secs(2),
            )
            .await;
            let leader = v.get("leader").and_then(Value::as_str).map(str::to_string);
            let revision = v.get("revision").and_then(Value::as_u64);
            match (s, leader, revision) {
                (Some(200), Some(l), Some(r)) => {
                    seen.insert((l, r));
                }
                _ => all = false,
            }
        }
        if all && seen.len() == 1 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Addresses given out twice in the state `socket`'s agent holds.
async fn duplicates(socket: &std::path::Path) -> Vec<String> {
    let t = Duration::from_secs(10);
    let (_, networks) = call(socket, http::Method::GET, "/v1/networks", None, t).await;
    let (_, services) = call(socket, http::Method::GET, "/v1/services", None, t).await;
    let mut subnets = BTreeMap::new();
    let mut addresses: BTreeMap<String, Vec<(String, Ipv4Addr)>> = BTreeMap::new();
    for n in networks.as_array().into_iter().flatten() {
        let name = n["name"].as_str().unwrap_or_default().to_string();
        if let Some(subnet) = n["subnet"].as_str().and_then(|s| s.parse().ok()) {
            subnets.insert(name.clone(), subnet);
        }
        for e in n["endpoints"].as_array().into_iter().flatten() {
            let ip = e["address"]
                .as_str()
                .and_then(|a| a.split('/').next()?.parse().ok());
            if let Some(ip) = ip {
                let owner = format!("endpoint {}", e["id"].as_str().unwrap_or_default());
                addresses.entry(name.clone()).or_default().push((owner, ip));
            }
        }
    }
    for s in services.as_array().into_iter().flatten() {
        let service = s["spec"]["name"].as_str().unwrap_or_default();
        for (network, vip) in s["vips"].as_object().into_iter().flatten() {
            if let Some(ip) = vip.as_str().and_then(|v| v.parse().ok()) {
                let owner = format!("the VIP of {service}");
                addresses
                    .entry(network.clone())
                    .or_default()
                    .push((owner, ip));
            }
        }
    }
    plan::duplicate_addresses(&subnets, &addresses)
}

/// Kernel objects on the lab's nodes that the state no longer has, after giving the
/// reconcilers `within` to catch up.
async fn kernel_leftovers(lab: &Lab, socket: &std::path::Path, within: Duration) -> Vec<String> {
    let until = Instant::now() + within;
    loop {
        let found = kernel_leftovers_now(lab, socket).await;
        if found.is_empty() || Instant::now() >= until {
            return found;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn kernel_leftovers_now(lab: &Lab, socket: &std::path::Path) -> Vec<String> {
    let t = Duration::from_secs(10);
    let (_, networks) = call(socket, http::Method::GET, "/v1/networks", None, t).await;
    let (_, services) = call(socket, http::Method::GET, "/v1/services", None, t).await;
    let mut vnis = BTreeSet::new();
    let mut endpoint_ids = BTreeSet::new();
    for n in networks.as_array().into_iter().flatten() {
        if let Some(vni) = n["vni"].as_u64() {
            vnis.insert(vni as u32);
        }
        for e in n["endpoints"].as_array().into_iter().flatten() {
            endpoint_ids.insert(e["id"].as_str().unwrap_or_default().to_string());
        }
    }
    let mut tasks_by_node: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in services.as_array().into_iter().flatten() {
        for t in s["tasks"].as_array().into_iter().flatten() {
            let node = t["node"].as_str().unwrap_or_default().to_string();
            let id = t["id"].as_str().unwrap_or_default().to_string();
            tasks_by_node.entry(node).or_default().insert(id);
        }
    }
    let namespaces = list_namespaces();
    let mut found = Vec::new();
    for host in lab.nodes() {
        let links = list_links(&host.namespace);
        let prefix = format!("{}-", host.namespace);
        let empty = BTreeSet::new();
        let tasks = tasks_by_node.get(&host.name).unwrap_or(&empty);
        found.extend(plan::stale_kernel_objects(
            &host.name,
            &namespaces,
            &links,
            &prefix,
            tasks,
            &vnis,
            &endpoint_ids,
        ));
    }
    found
}

/// Every named network namespace.
fn list_namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The interface names in namespace `ns`.
fn list_links(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show"])
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect()
}
