//! Services and their tasks, as the cluster records them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::placement::{Constraint, Placement, Spread};
use super::publish::{PortRemoval, PortSpec};
use super::rollout::{
    DesiredState, FailureAction, Health, HealthCheck, UpdateConfig, UpdateOrder, UpdateStatus,
};
use super::SpecError;
use crate::ids::NodeId;

/// How many tasks a service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum ServiceMode {
    /// This many tasks, spread over the active nodes.
    Replicated {
        /// How many.
        replicas: u32,
    },
    /// One task on every active node.
    Global,
}

/// How clients find a service's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// A virtual IP per network, load-balanced in the kernel.
    #[default]
    Vip,
    /// DNS round robin over the task addresses.
    Dnsrr,
}

impl Default for ServiceMode {
    /// One replica.
    fn default() -> Self {
        ServiceMode::Replicated { replicas: 1 }
    }
}

/// What `service create` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// The service's name, unique in the cluster (and its DNS name).
    pub name: String,
    /// The networks its tasks join.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Replicated or global.
    pub mode: ServiceMode,
    /// Published ports.
    #[serde(default)]
    pub publish: Vec<PortSpec>,
    /// VIP or DNS round robin.
    #[serde(default)]
    pub endpoint_mode: EndpointMode,
    /// Labels (L7 routes live here).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The command each task runs; empty: tasks are sandboxes attached from outside.
    #[serde(default)]
    pub command: Vec<String>,
    /// Aliases and options per network (by network name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub network_options: BTreeMap<String, NetworkOptions>,
    /// Where tasks may run.
    #[serde(default, skip_serializing_if = "Placement::is_empty")]
    pub placement: Placement,
    /// The tasks' resolver settings.
    #[serde(default, skip_serializing_if = "DnsConfig::is_empty")]
    pub dns: DnsConfig,
    /// The tasks' host name, a template (`{{.Service.Name}}-{{.Task.Slot}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// How tasks are replaced when the task spec changes.
    #[serde(default, skip_serializing_if = "UpdateConfig::is_default")]
    pub update_config: UpdateConfig,
    /// The tasks' health check: a task takes traffic once it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthCheck>,
    /// How long a removed task keeps running out of every backend set before it is
    /// sent SIGTERM (ms; Docker's `--stop-grace-period`, default 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period_ms: Option<u64>,
}

impl ServiceSpec {
    /// What the tasks run with: a change here replaces them (Docker's task spec).
    pub fn task_spec_differs(&self, other: &ServiceSpec) -> bool {
        self.command != other.command
            || self.healthcheck != other.healthcheck
            || self.hostname != other.hostname
            || self.stop_grace_period_ms != other.stop_grace_period_ms
    }

    /// The stop grace period in ms.
    pub fn stop_grace_ms(&self) -> u64 {
        self.stop_grace_period_ms
            .unwrap_or(super::rollout::DEFAULT_STOP_GRACE_MS)
    }
}

/// A service's options on one network: `--network name=N,alias=A,driver-opt=K=V`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkOptions {
    /// More names of the service on this network; each resolves as the service name
    /// does (its VIP), and `tasks.<alias>` to its tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Endpoint driver options: `com.docker.network.endpoint.ifname` names the
    /// interface in the task's sandbox.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

/// The driver option naming a task's interface on a network.
pub const IFNAME_OPT: &str = "com.docker.network.endpoint.ifname";

/// One `--network` of a service: the network and its options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAttachment {
    /// The network's name or ID.
    pub target: String,
    /// Its aliases and options.
    #[serde(default, flatten)]
    pub options: NetworkOptions,
}

impl NetworkAttachment {
    /// Parses `--network` as docker/cli's `opts/network.go` does: a network name or ID,
    /// or `name=N[,alias=A]...[,driver-opt=K=V]...` (keys and aliases lower-cased).
    pub fn parse(s: &str) -> Result<NetworkAttachment, SpecError> {
        let bad = |reason: String| SpecError::Network {
            spec: s.to_string(),
            reason,
        };
        if !s.contains('=') {
            if s.trim().is_empty() || s.contains(',') {
                return Err(bad("network name/id is not specified".into()));
            }
            return Ok(NetworkAttachment {
                target: s.trim().to_string(),
                options: NetworkOptions::default(),
            });
        }
        let mut out = NetworkAttachment::default();
        for field in s.split(',') {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| bad(format!("invalid field {field}")))?;
            match key.trim().to_ascii_lowercase().as_str() {
                "name" => out.target = value.trim().to_string(),
                "alias" => out.options.aliases.push(value.trim().to_ascii_lowercase()),
                "driver-opt" => {
                    let (k, v) = value.split_once('=').ok_or_else(|| {
                        bad("invalid key value pair format in driver options".into())
                    })?;
                    out.options
                        .driver_opts
                        .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
                k @ ("ip" | "ip6" | "mac-address" | "link-local-ip" | "gw-priority") => {
                    return Err(bad(format!(
                        "{k} is for containers; a service's tasks get their addresses from the network"
                    )))
                }
                other => return Err(bad(format!("invalid field key {other}"))),
            }
        }
        if out.target.is_empty() {
            return Err(bad("network name/id is not specified".into()));
        }
        Ok(out)
    }
}

/// The resolver settings of a service's tasks: `--dns`, `--dns-search`, `--dns-option`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Upstream resolvers for what the network's resolver does not own (instead of
    /// the node's); the tasks still ask the network's resolver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<IpAddr>,
    /// The `search` line of the tasks' resolv.conf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// The `options` line (`ndots:0` is added unless an `ndots` option is given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl DnsConfig {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == DnsConfig::default()
    }
}

/// What `service update` changes; every field is optional. The first five are what
/// the first shoal releases sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceChanges {
    /// New replica count.
    #[serde(default)]
    pub replicas: Option<u32>,
    /// Labels to set.
    #[serde(default)]
    pub labels_add: BTreeMap<String, String>,
    /// Labels to remove.
    #[serde(default)]
    pub labels_rm: Vec<String>,
    /// Ports to publish; one already published is left as it is.
    #[serde(default)]
    pub publish_add: Vec<PortSpec>,
    /// Published ports to withdraw.
    #[serde(default)]
    pub publish_rm: Vec<PortRemoval>,
    /// Networks to join (with aliases and options).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks_add: Vec<NetworkAttachment>,
    /// Networks to leave (names or IDs); removed before any is added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks_rm: Vec<String>,
    /// A new endpoint mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<EndpointMode>,
    /// Placement constraints to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints_add: Vec<Constraint>,
    /// Placement constraints to remove (as written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints_rm: Vec<Constraint>,
    /// Placement preferences to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences_add: Vec<Spread>,
    /// Placement preferences to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences_rm: Vec<Spread>,
    /// A new cap of tasks per node; 0 lifts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u32>,
    /// Upstream resolvers to add and remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_add: Vec<IpAddr>,
    /// See `dns_add`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_rm: Vec<IpAddr>,
    /// Search domains to add and remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search_add: Vec<String>,
    /// See `dns_search_add`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search_rm: Vec<String>,
    /// Resolver options to add and remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_option_add: Vec<String>,
    /// See `dns_option_add`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_option_rm: Vec<String>,
    /// A new host name template; empty: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Replace the tasks even if nothing else changes (`--force`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Go back to the previous spec (`--rollback`); nothing else may change with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
    /// A new command (program and arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// New arguments after the program (`--args`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// `--update-parallelism`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_parallelism: Option<u32>,
    /// `--update-delay` (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_delay_ms: Option<u64>,
    /// `--update-order`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_order: Option<UpdateOrder>,
    /// `--update-failure-action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_failure_action: Option<FailureAction>,
    /// `--update-monitor` (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_monitor_ms: Option<u64>,
    /// `--health-cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_cmd: Option<String>,
    /// `--health-interval` (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_interval_ms: Option<u64>,
    /// `--health-timeout` (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout_ms: Option<u64>,
    /// `--health-retries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_retries: Option<u32>,
    /// `--health-start-period` (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_start_period_ms: Option<u64>,
    /// `--no-healthcheck`: remove the health check.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_healthcheck: bool,
    /// `--stop-grace-period` (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period_ms: Option<u64>,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Its ID.
    pub id: String,
    /// What it is.
    pub spec: ServiceSpec,
    /// Its virtual IP on each of its networks (VIP mode).
    pub vips: BTreeMap<String, Ipv4Addr>,
    /// Its IPv6 virtual IP on each of its dual-stack networks (VIP mode), from the
    /// network's IPv6 subnet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vips6: BTreeMap<String, Ipv6Addr>,
    /// When it was created (unix ms).
    pub created_at_ms: u64,
    /// When it last changed (unix ms).
    pub updated_at_ms: u64,
    /// The version of its task spec: bumped by a change that replaces the tasks.
    #[serde(default)]
    pub version: u64,
    /// The spec before the last update (for `--rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_spec: Option<Box<ServiceSpec>>,
    /// How the last task replacement went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_status: Option<UpdateStatus>,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Wanted, but no node can take it (never stored: `service ps` shows the slots the
    /// scheduler could not place, with the reason).
    Pending,
    /// Placed on a node, not started yet.
    Assigned,
    /// Its process runs and its endpoints exist.
    Running,
    /// It could not start; its node keeps trying.
    Failed,
    /// Its process was stopped after the task was shut down.
    Shutdown,
}

impl TaskState {
    /// Lower-case word for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Running => "running",
            TaskState::Failed => "failed",
            TaskState::Shutdown => "shutdown",
        }
    }
}

/// One replica of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Its ID (hex, chosen by the leader).
    pub id: String,
    /// Its service's name.
    pub service: String,
    /// Its replica slot (replicated services; 0 for global ones).
    pub slot: u32,
    /// The node it runs on.
    pub node: NodeId,
    /// How it is doing, as its node reports.
    pub state: TaskState,
    /// Why, when it failed.
    pub message: String,
    /// How often its process was restarted.
    pub restarts: u32,
    /// When it was placed (unix ms).
    pub created_at_ms: u64,
    /// When its state last changed (unix ms).
    pub updated_at_ms: u64,
    /// The service version it runs.
    #[serde(default)]
    pub version: u64,
    /// Running, or shut down (draining, then stopped).
    #[serde(default, skip_serializing_if = "DesiredState::is_running")]
    pub desired: DesiredState,
    /// When it was shut down (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_at_ms: Option<u64>,
    /// Its health, when its service has a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

impl Task {
    /// A new task placed at `at`, in state assigned.
    pub fn new(id: &str, service: &str, slot: u32, node: NodeId, version: u64, at: u64) -> Task {
        Task {
            id: id.to_string(),
            service: service.to_string(),
            slot,
            node,
            state: TaskState::Assigned,
            message: String::new(),
            restarts: 0,
            created_at_ms: at,
            updated_at_ms: at,
            version,
            desired: DesiredState::Running,
            shutdown_at_ms: None,
            health: None,
        }
    }

    /// Whether it should be sent new connections: running, not shut down, and healthy
    /// if its service has a health check (`checked`).
    pub fn takes_traffic(&self, checked: bool) -> bool {
        self.state == TaskState::Running
            && self.desired == DesiredState::Running
            && (!checked || self.health == Some(Health::Healthy))
    }

    /// The name users see, as Docker's: `<service>.<slot>` for replicated tasks (slots
    /// count from 1 there, from 0 in [`Task::slot`]), `<service>.<node ID>` for global ones.
    pub fn name(&self, mode: ServiceMode) -> String {
        match mode {
            ServiceMode::Replicated { .. } => format!("{}.{}", self.service, self.slot + 1),
            ServiceMode::Global => format!("{}.{}", self.service, self.node),
        }
    }

    /// The task's container name, as Docker's: its name and its ID
    /// (`<service>.<slot>.<task ID>`); a DNS name on its networks.
    pub fn container_name(&self, mode: ServiceMode) -> String {
        format!("{}.{}", self.name(mode), self.id)
    }
}
