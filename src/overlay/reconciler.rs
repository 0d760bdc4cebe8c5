//! The overlay reconciler: whenever the cluster state changes (and every few seconds,
//! to repair drift), derive this node's plan, diff it against the kernel, apply the
//! difference, and tell waiting `attach` calls how their endpoints fared.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use shoal_control::api::{LeaderRequest, StatusSection};
use shoal_control::state::{ClusterState, Command};
use shoal_control::{Member, NodeId};
use shoal_dataplane::netlink::Netlink;
use shoal_dataplane::nft;
use shoal_dataplane::overlay::{self, NodePlan, ResolvConf, NFT_TABLE};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::encrypted::Encrypted;
use super::error::OverlayError;
use super::keys::KeyFile;
use super::view::node_plan;

/// How often the kernel is compared with the plan even when nothing changed.
const RESYNC: Duration = Duration::from_secs(5);

/// What the reconciler has done so far.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The state revision last applied to the kernel.
    pub revision: u64,
    /// Endpoints that could not be set up, with why.
    pub failures: HashMap<String, String>,
}

/// A running reconciler.
pub struct Overlay {
    progress: watch::Sender<Progress>,
    kick: Notify,
    stop: CancellationToken,
    plan: ArcSwap<NodePlan>,
    encrypted: Encrypted,
}

/// How the node's overlay is run.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The VXLAN UDP port between nodes.
    pub vxlan_port: u16,
    /// Idle timeout of load-balanced connections.
    pub idle_timeout: Option<Duration>,
    /// The node's upstream resolvers: DNS from sandboxes to them is answered by the
    /// network's resolver (see [`NodePlan::dns_intercept`]).
    pub dns_intercept: Vec<std::net::Ipv4Addr>,
    /// The name `wg show` knows the encrypted data path by.
    pub wg_interface: String,
}

impl Overlay {
    /// Starts reconciling for `member`.
    pub fn start(member: Arc<Member>, settings: Settings, keys: KeyFile) -> Arc<Overlay> {
        let overlay = Arc::new(Overlay {
            progress: watch::channel(Progress::default()).0,
            kick: Notify::new(),
            stop: CancellationToken::new(),
            plan: ArcSwap::from_pointee(NodePlan::default()),
            encrypted: Encrypted::new(keys, settings.wg_interface.clone()),
        });
        let me = overlay.clone();
        tokio::spawn(async move { me.run(member, settings).await });
        overlay
    }

    /// Asks for a reconciliation now.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Stops reconciling (the kernel keeps what it has; the encrypted data path stops).
    pub fn stop(&self) {
        self.stop.cancel();
        self.encrypted.shutdown();
    }

    /// The encrypted data path, for status and metrics.
    pub fn encrypted(&self) -> &Encrypted {
        &self.encrypted
    }

    /// Waits until the kernel reflects `revision`; returns the progress then.
    pub async fn wait_for(&self, revision: u64, within: Duration) -> Option<Progress> {
        let mut rx = self.progress.subscribe();
        self.kick();
        tokio::time::timeout(within, async {
            loop {
                let p = rx.borrow_and_update().clone();
                if p.revision >= revision {
                    return p;
                }
                if rx.changed().await.is_err() {
                    return p;
                }
            }
        })
        .await
        .ok()
    }

    /// A summary for `shoal status`.
    pub fn status(&self) -> StatusSection {
        let plan = self.plan.load();
        let mut rows: Vec<(String, String)> = plan
            .networks
            .iter()
            .map(|n| {
                let local = plan.endpoints.iter().filter(|e| e.vni == n.vni).count();
                (
                    n.name.clone(),
                    format!(
                        "vni {} gw {} mtu {}, {local} local / {} remote endpoints{}",
                        n.vni,
                        n.gateway
                            .map(|g| g.to_string())
                            .into_iter()
                            .chain(n.gateway6.map(|g| g.to_string()))
                            .collect::<Vec<_>>()
                            .join(" "),
                        n.mtu,
                        n.remotes.len(),
                        if n.internal { ", internal" } else { "" }
                    ),
                )
            })
            .collect();
        if rows.is_empty() {
            rows.push(("(none)".into(), "no endpoints on this node".into()));
        }
        StatusSection {
            title: "Networks on this node".into(),
            rows,
        }
    }

    async fn run(self: Arc<Self>, member: Arc<Member>, settings: Settings) {
        let vxlan_port = settings.vxlan_port;
        let nl = match Netlink::current() {
            Ok(nl) => nl,
            Err(e) => {
                tracing::error!(error = %e, "overlay reconciler cannot open netlink; the data path is not managed");
                return;
            }
        };
        let mut changes = member.replica().changes();
        let mut detaching: HashSet<String> = HashSet::new();
        let mut first = true;
        // The kernel as the last pass left it (see `kernel_cache`); `fresh` passes read
        // the kernel again: the first, the periodic resync, and kicks.
        let mut cache: Option<overlay::Observed> = None;
        let mut done: Option<Plans> = None;
        let mut fresh = true;
        // Changes arriving more often than RESYNC never let its timer fire: the kernel
        // is read again at least that often anyway.
        let mut read_at = tokio::time::Instant::now();
        loop {
            if member.synced() && !member.is_removed() {
                if fresh || read_at.elapsed() >= RESYNC {
                    cache = None;
                    read_at = tokio::time::Instant::now();
                }
                let mut progress =
                    reconcile(&member, &nl, &settings, &self.plan, &mut cache, &mut done).await;
                let plan = self.plan.load_full();
                if plan.networks.iter().any(|n| n.encrypted) || self.encrypted.peers().is_some() {
                    let (failed, opened) =
                        self.encrypted.reconcile(&member, &plan, vxlan_port).await;
                    if opened {
                        // Plug the new TAPs into their bridges before reporting.
                        cache = None;
                        let again =
                            reconcile(&member, &nl, &settings, &self.plan, &mut cache, &mut done)
                                .await;
                        progress.failures.extend(again.failures);
                    }
                    if !failed.is_empty() {
                        done = None;
                    }
                    progress.failures.extend(failed);
                }
                self.collect_gone_sandboxes(&member, &mut detaching);
                if std::mem::take(&mut first) {
                    tracing::info!(
                        revision = progress.revision,
                        failures = progress.failures.len(),
                        "first reconciliation done: the data path is in step with the cluster state"
                    );
                }
                self.progress.send_replace(progress);
            }
            fresh = tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = changes.changed() => false,
                _ = self.kick.notified() => true,
                _ = tokio::time::sleep(RESYNC) => true,
            };
        }
    }

    /// Detaches endpoints whose sandbox namespace no longer exists (the container is gone).
    fn collect_gone_sandboxes(&self, member: &Arc<Member>, detaching: &mut HashSet<String>) {
        let plan = self.plan.load();
        let state = member.replica().state();
        for e in &plan.endpoints {
            // A runtime that moves the interface itself says when it is gone (Docker's
            // DeleteEndpoint); its sandbox path may not be visible here at all.
            if e.handoff || e.sandbox.exists() || !detaching.insert(e.id.clone()) {
                continue;
            }
            let Some(ep) = state.endpoints.get(&e.id) else {
                continue;
            };
            tracing::info!(endpoint = %e.id, sandbox = %e.sandbox.display(), "sandbox is gone; detaching its endpoint");
            let command = Command::Detach {
                network: ep.network.clone(),
                node: ep.node,
                sandbox: ep.sandbox.clone(),
            };
            let member = member.clone();
            tokio::spawn(async move {
                if let Err(err) = member
                    .submit(LeaderRequest::Propose { command }, Some(member.node_id))
                    .await
                {
                    tracing::warn!(error = %err, "cannot detach the endpoint of a vanished sandbox");
                }
            });
        }
        detaching.retain(|id| plan.endpoints.iter().any(|e| &e.id == id));
    }
}

/// Everything a pass programs, computed from the state alone.
#[derive(Debug, PartialEq)]
struct Plans {
    node: NodePlan,
    lb: super::mesh::LbPlan,
    resolv: BTreeMap<String, ResolvConf>,
}

fn plans(state: &ClusterState, me: NodeId, settings: &Settings) -> Plans {
    let mut node = node_plan(state, me, settings.vxlan_port);
    node.dns_intercept = settings.dns_intercept.clone();
    node.lb_idle_timeout = settings.idle_timeout.map(super::mesh::idle_secs);
    let lb = super::mesh::lb_plan(state, me, settings.idle_timeout);
    let resolv = super::view::resolv_confs(state, &node);
    Plans { node, lb, resolv }
}

/// One pass. `cache`: the kernel as the last pass left it, used instead of reading the
/// kernel when present; left for the next pass when this one only changed FDB and
/// neighbour entries, all successfully (see `kernel_cache`). `done`: the plans the last
/// pass carried out without a failure; a pass with the cache still there (no resync, no
/// kick since) and the same plans has nothing to do. Most changes of the cluster state
/// (a task's state, a node's heartbeat, a label, another node's sandbox on a network
/// this node does not carry) leave this node's plans as they were.
async fn reconcile(
    member: &Member,
    nl: &Netlink,
    settings: &Settings,
    last: &ArcSwap<NodePlan>,
    cache: &mut Option<overlay::Observed>,
    done: &mut Option<Plans>,
) -> Progress {
    let state = member.replica().state();
    let plans = plans(&state, member.node_id, settings);
    if cache.is_some() && done.as_ref() == Some(&plans) {
        return Progress {
            revision: state.revision,
            failures: HashMap::new(),
        };
    }
    *done = None;
    let plan = &plans.node;
    let mut failures = HashMap::new();
    let mut clean = true;
    let observed = match cache.take() {
        Some(cached) => Ok(cached),
        None => overlay::observe(nl).await,
    };
    match observed {
        Ok(mut observed) => {
            let changes = overlay::diff(plan, &observed);
            let mut all_applied = true;
            for o in overlay::apply(nl, &changes).await {
                all_applied &= o.result.is_ok();
                if let (Some(id), Err(e)) = (o.endpoint, o.result) {
                    failures.insert(id, e.to_string());
                }
            }
            if all_applied && super::kernel_cache::fold(&mut observed, &changes) {
                *cache = Some(observed);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the kernel's overlay state"),
    }
    if let Err(e) = apply_rules(plan).await {
        clean = false;
        tracing::warn!(error = %e, "cannot program nftables");
    }
    if !plan.networks.is_empty() {
        if let Err(e) = overlay::ensure_forwarding() {
            clean = false;
            tracing::warn!(error = %e, "cannot enable IPv4 forwarding");
        }
    }
    if overlay::publishes_ipv6(plan) {
        if let Err(e) = overlay::ensure_forwarding6() {
            clean = false;
            tracing::warn!(error = %e, "cannot enable IPv6 forwarding");
        }
    }
    clean &= write_resolv_confs(&member.node_id.to_string(), &plans.resolv);
    clean &= super::mesh::program(plans.lb.clone()).await;
    forget_vanished(&last.load(), plan, &state).await;
    last.store(Arc::new(plans.node.clone()));
    if clean && failures.is_empty() && cache.is_some() {
        *done = Some(plans);
    }
    Progress {
        revision: state.revision,
        failures,
    }
}

/// Deletes the conntrack entries of published ports' backends that vanished since the
/// last pass (see [`super::view::vanished_backends`]).
async fn forget_vanished(before: &NodePlan, now: &NodePlan, state: &ClusterState) {
    let gone = super::view::vanished_backends(before, now, state);
    if gone.is_empty() {
        return;
    }
    let result = tokio::task::spawn_blocking(move || {
        for ip in gone {
            match shoal_dataplane::conntrack::forget_reply_source(ip) {
                Ok(()) => tracing::info!(backend = %ip, "backend gone; its connections forgotten"),
                Err(e) => {
                    tracing::warn!(backend = %ip, error = %e, "cannot delete the gone backend's connections")
                }
            }
        }
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "conntrack clean-up did not run");
    }
}

/// Programs (or removes) shoal's nftables tables for `plan`: the node's own (`ip`),
/// where the node has addresses of its own on networks the bridge one, and where it
/// carries dual-stack networks the IPv6 one (`inet`), and where it publishes ports over
/// IPv6 their `ip6` one. A table with no rules is removed.
pub async fn apply_rules(plan: &NodePlan) -> Result<(), OverlayError> {
    let tables = [
        overlay::ruleset(plan),
        overlay::bridge_ruleset(plan),
        overlay::ruleset6(plan),
        overlay::ruleset_ip6(plan),
    ];
    tokio::task::spawn_blocking(move || {
        // Every network adds rules to the `ip` table, so an empty table means none.
        for table in tables {
            if table.chains.iter().all(|c| c.rules.is_empty()) {
                nft::remove_table(NFT_TABLE, table.family)?;
            } else {
                nft::ensure_table(&table)?;
            }
        }
        Ok::<(), nft::NftError>(())
    })
    .await??;
    Ok(())
}

/// Writes the sandboxes' resolv.conf files and removes those of sandboxes gone; false
/// when any could not be written.
fn write_resolv_confs(owner: &str, confs: &BTreeMap<String, ResolvConf>) -> bool {
    let mut clean = true;
    for (name, conf) in confs {
        if let Err(e) = overlay::write_resolv_conf(owner, name, conf) {
            clean = false;
            tracing::warn!(error = %e, netns = %name, "cannot write resolv.conf");
        }
    }
    let keep: Vec<String> = confs.keys().cloned().collect();
    overlay::remove_stale_resolv_confs(owner, &keep);
    clean
}

/// Removes every kernel object shoal made on this node (used by `cluster leave`).
pub async fn clean_up(owner: &str) -> Result<(), OverlayError> {
    let nl = Netlink::current()?;
    let empty = NodePlan::default();
    let observed = overlay::observe(&nl).await?;
    let failed: Vec<(String, overlay::ChangeError)> =
        overlay::apply(&nl, &overlay::diff(&empty, &observed))
            .await
            .into_iter()
            .filter_map(|o| o.result.err().map(|e| (o.change, e)))
            .collect();
    apply_rules(&empty).await?;
    overlay::remove_stale_resolv_confs(owner, &[]);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(OverlayError::Changes(failed))
    }
}
