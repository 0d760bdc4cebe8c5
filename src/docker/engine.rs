//! The little of Docker's Engine API shoal needs. The driver: a network's name (drivers
//! are told only IDs), a container's names on a network, whether the daemon is in a
//! Swarm, and the networks and endpoints it has (to clean up after a restart). The
//! route provider: running containers inspected, Swarm services, tasks and networks, and
//! the event stream ([`super::events`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::events::EventStream;
use super::objects::{
    ContainerRow, EngineInfo, InspectedContainer, NetworkRow, SwarmService, SwarmTask,
};
use super::protocol::nullable;
use crate::client::{segment, unix_http};

/// How long one Engine API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of one dockerd.
#[derive(Debug, Clone)]
pub struct Engine {
    socket: PathBuf,
}

/// A network as `GET /networks/{id}` shows it (what the driver uses of it).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EngineNetwork {
    /// Its name.
    pub name: String,
    /// Its `--label`s (Docker does not hand them to drivers).
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Its containers on this daemon, by container ID: their endpoint IDs.
    #[serde(default, deserialize_with = "nullable")]
    pub containers: BTreeMap<String, EngineEndpoint>,
}

/// A container's endpoint as a network lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EngineEndpoint {
    /// Docker's endpoint ID.
    #[serde(rename = "EndpointID", default)]
    pub endpoint_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Container {
    name: String,
    network_settings: ContainerNetworks,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerNetworks {
    #[serde(default, deserialize_with = "nullable")]
    networks: BTreeMap<String, ContainerEndpoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerEndpoint {
    #[serde(rename = "EndpointID", default)]
    endpoint_id: String,
    #[serde(default)]
    aliases: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Info {
    swarm: SwarmInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SwarmInfo {
    #[serde(default)]
    local_node_state: String,
}

/// A container's names on one network: its name and its aliases there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerNames {
    /// The container's name (without Docker's leading `/`).
    pub name: String,
    /// Its aliases on the network (`--network-alias`; Docker adds the short ID).
    pub aliases: Vec<String>,
}

impl Engine {
    /// A client of the daemon at `host` (`unix:///var/run/docker.sock` or a path), as
    /// given with `--docker-host`.
    pub fn new(host: &str) -> Result<Engine, String> {
        Engine::from_flag("--docker-host", host)
    }

    /// A client of the daemon at `host`, as given with `flag` (named in the error).
    pub fn from_flag(flag: &str, host: &str) -> Result<Engine, String> {
        let path = host.strip_prefix("unix://").unwrap_or(host);
        if path.is_empty() || path.contains("://") {
            return Err(format!(
                "{flag} {host:?}: only unix:///path/to/docker.sock is supported"
            ));
        }
        Ok(Engine {
            socket: PathBuf::from(path),
        })
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>, String> {
        let (status, body) = unix_http(&self.socket, http::Method::GET, path, None, CALL_TIMEOUT)
            .await
            .map_err(|e| format!("Docker at {}: {e}", self.socket.display()))?;
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!(
                "Docker at {} answered {status} to {path}",
                self.socket.display()
            ));
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("Docker's answer to {path}: {e}"))
    }

    /// The network with ID `id`, if the daemon has it.
    pub async fn network(&self, id: &str) -> Result<Option<EngineNetwork>, String> {
        self.get(&format!("/networks/{}", crate::client::segment(id)))
            .await
    }

    /// The names of the container whose endpoint on network `network_id` is
    /// `endpoint_id`, if one is there yet.
    pub async fn names_of(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<ContainerNames>, String> {
        let Some(net) = self.network(network_id).await? else {
            return Ok(None);
        };
        let Some(container) = net
            .containers
            .iter()
            .find(|(_, e)| e.endpoint_id == endpoint_id)
            .map(|(id, _)| id.clone())
        else {
            return Ok(None);
        };
        let Some(c) = self
            .get::<Container>(&format!(
                "/containers/{}/json",
                crate::client::segment(&container)
            ))
            .await?
        else {
            return Ok(None);
        };
        let aliases = c
            .network_settings
            .networks
            .values()
            .find(|e| e.endpoint_id == endpoint_id)
            .and_then(|e| e.aliases.clone())
            .unwrap_or_default();
        Ok(Some(ContainerNames {
            name: c.name.trim_start_matches('/').to_string(),
            aliases,
        }))
    }

    /// Whether the daemon is in a Swarm, or joining one (a new manager's allocator asks
    /// for the driver's scope while the node is still `pending`).
    pub async fn in_swarm(&self) -> Result<bool, String> {
        let info: Option<Info> = self.get("/info").await?;
        Ok(info.is_some_and(|i| {
            !matches!(i.swarm.local_node_state.as_str(), "" | "inactive" | "error")
        }))
    }

    /// The IDs of the running containers.
    pub async fn running_containers(&self) -> Result<Vec<String>, String> {
        let rows: Option<Vec<ContainerRow>> = self.get("/containers/json").await?;
        Ok(rows.unwrap_or_default().into_iter().map(|r| r.id).collect())
    }

    /// Container `id` in full, if it still exists.
    pub async fn inspect(&self, id: &str) -> Result<Option<InspectedContainer>, String> {
        self.get(&format!("/containers/{}/json", segment(id))).await
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<EngineInfo, String> {
        self.get("/info")
            .await?
            .ok_or_else(|| format!("Docker at {} has no /info", self.socket.display()))
    }

    /// The Swarm's services (a manager only).
    pub async fn services(&self) -> Result<Vec<SwarmService>, String> {
        Ok(self.get("/services").await?.unwrap_or_default())
    }

    /// The Swarm's tasks that are meant to run.
    pub async fn running_tasks(&self) -> Result<Vec<SwarmTask>, String> {
        let filters = segment(r#"{"desired-state":["running"]}"#);
        Ok(self
            .get(&format!("/tasks?filters={filters}"))
            .await?
            .unwrap_or_default())
    }

    /// The daemon's networks.
    pub async fn networks(&self) -> Result<Vec<NetworkRow>, String> {
        Ok(self.get("/networks").await?.unwrap_or_default())
    }

    /// The events that can change routes: containers starting, being stopped (`kill`),
    /// dying, changing health
    /// or name; network (dis)connections; Swarm services and nodes changing.
    pub async fn route_events(&self) -> Result<EventStream, String> {
        let filters = serde_json::json!({
            "type": ["container", "network", "service", "node"],
            "event": [
                "start", "restart", "kill", "die", "stop", "destroy", "health_status",
                "rename", "update", "pause", "unpause", "connect", "disconnect", "create",
                "remove"
            ],
        });
        let path = format!("/events?filters={}", segment(&filters.to_string()));
        EventStream::open(&self.socket, &path).await
    }
}
