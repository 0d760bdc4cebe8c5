//! The Engine API's containers, Swarm services, tasks, networks and events, as far as
//! the Docker route provider reads them. Fields Docker may send as `null` default to
//! empty.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::protocol::nullable;

/// `GET /containers/json` (one row).
#[derive(Debug, Clone, Deserialize)]
pub struct ContainerRow {
    /// The container's ID.
    #[serde(rename = "Id")]
    pub id: String,
}

/// `GET /containers/{id}/json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectedContainer {
    /// The container's ID.
    #[serde(rename = "Id")]
    pub id: String,
    /// Its name, with Docker's leading `/`.
    pub name: String,
    /// Running, health.
    pub state: ContainerState,
    /// Labels and exposed ports.
    pub config: ContainerConfig,
    /// The network mode.
    #[serde(default)]
    pub host_config: HostConfig,
    /// Its networks and ports.
    pub network_settings: ContainerNetworking,
}

/// A container's `State`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// `running`, `exited`, …
    #[serde(default)]
    pub status: String,
    /// Its healthcheck, if it has one.
    #[serde(default)]
    pub health: Option<HealthState>,
}

/// A container's `State.Health`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthState {
    /// `starting`, `healthy`, `unhealthy` or `none`.
    #[serde(default)]
    pub status: String,
}

/// A container's `Config`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// Its labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// `"80/tcp": {}`.
    #[serde(default, deserialize_with = "nullable")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    /// `--stop-signal` or the image's `STOPSIGNAL` (`SIGQUIT`, `3`); often absent.
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// A container's `HostConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// `default`, `host`, `none`, `container:<id>` or a network's name.
    #[serde(default)]
    pub network_mode: String,
}

/// A container's `NetworkSettings`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerNetworking {
    /// By network name.
    #[serde(default, deserialize_with = "nullable")]
    pub networks: BTreeMap<String, ContainerAddress>,
    /// `"80/tcp": [bindings] | null`: exposed and published ports.
    #[serde(default, deserialize_with = "nullable")]
    pub ports: BTreeMap<String, serde_json::Value>,
}

/// A container's endpoint on one network.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerAddress {
    /// Its IPv4 address, or empty.
    #[serde(rename = "IPAddress", default)]
    pub ip_address: String,
    /// Its IPv6 address, or empty.
    #[serde(rename = "GlobalIPv6Address", default)]
    pub global_ipv6_address: String,
}

/// `GET /info` (the Swarm part).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EngineInfo {
    /// The daemon's Swarm membership.
    #[serde(default)]
    pub swarm: SwarmState,
}

/// `Info.Swarm`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmState {
    /// `inactive`, `pending`, `active`, `error`, `locked`.
    #[serde(default)]
    pub local_node_state: String,
    /// Whether this daemon is a manager (only managers list services).
    #[serde(default)]
    pub control_available: bool,
}

/// `GET /services` (one row).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmService {
    /// The service's ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Name, labels, mode.
    pub spec: ServiceSpec,
    /// Its virtual IPs.
    #[serde(default)]
    pub endpoint: ServiceEndpoint,
}

/// A service's `Spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceSpec {
    /// The service's name.
    pub name: String,
    /// The service's own labels (`docker service create --label`).
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Replicated (with a count) or global.
    #[serde(default)]
    pub mode: ServiceMode,
}

/// A service's `Spec.Mode`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceMode {
    /// Set for replicated services.
    #[serde(default)]
    pub replicated: Option<Replicated>,
}

/// `Spec.Mode.Replicated`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Replicated {
    /// The wanted number of tasks.
    #[serde(default)]
    pub replicas: u64,
}

/// A service's `Endpoint`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceEndpoint {
    /// One per network (VIP endpoint mode).
    #[serde(rename = "VirtualIPs", default, deserialize_with = "nullable")]
    pub virtual_ips: Vec<VirtualIp>,
}

/// A service's virtual IP on one network.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VirtualIp {
    /// The network's ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// `10.0.1.2/24`.
    #[serde(default)]
    pub addr: String,
}

/// `GET /tasks` (one row).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmTask {
    /// The service it belongs to.
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// Its state now.
    pub status: TaskStatus,
    /// What Swarm wants it to be (`running`, `shutdown`, …).
    #[serde(default)]
    pub desired_state: String,
    /// Its addresses on its networks.
    #[serde(default, deserialize_with = "nullable")]
    pub networks_attachments: Vec<TaskAttachment>,
}

/// A task's `Status`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskStatus {
    /// `running`, `starting`, `failed`, …
    pub state: String,
    /// Its container, once it has one.
    #[serde(default)]
    pub container_status: Option<TaskContainer>,
}

/// A task's `Status.ContainerStatus`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskContainer {
    /// The container's ID.
    #[serde(rename = "ContainerID", default)]
    pub container_id: String,
}

/// A task's attachment to one network.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskAttachment {
    /// The network.
    pub network: AttachedNetwork,
    /// `10.0.1.3/24`.
    #[serde(default, deserialize_with = "nullable")]
    pub addresses: Vec<String>,
}

/// The network of an attachment.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttachedNetwork {
    /// Its name and whether it is the routing mesh's `ingress`.
    pub spec: AttachedNetworkSpec,
}

/// The spec of an attachment's network.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttachedNetworkSpec {
    /// The network's name.
    pub name: String,
    /// The routing mesh's network (not a way to a task).
    #[serde(default)]
    pub ingress: bool,
}

/// `GET /networks` (one row).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkRow {
    /// Its ID.
    #[serde(rename = "Id")]
    pub id: String,
    /// Its name.
    pub name: String,
    /// The routing mesh's network.
    #[serde(default)]
    pub ingress: bool,
}

/// One message of `GET /events`.
#[derive(Debug, Clone, Deserialize)]
pub struct EngineEvent {
    /// `container`, `network`, `service`, `node`, …
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// `start`, `die`, `health_status: healthy`, `connect`, …
    #[serde(rename = "Action", default)]
    pub action: String,
    /// What it happened to.
    #[serde(rename = "Actor", default)]
    pub actor: EventActor,
}

/// The object of an event.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventActor {
    /// Its ID.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// A container's labels and name; a network event's `container`.
    #[serde(rename = "Attributes", default, deserialize_with = "nullable")]
    pub attributes: BTreeMap<String, String>,
}
