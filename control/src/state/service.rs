//! Services and their tasks, as the cluster records them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

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

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

/// Where a published port answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// On every node, reaching a task on any node (the routing mesh).
    Ingress,
    /// Only on nodes that run a task, reaching that task.
    Host,
}

/// `--publish [mode=host,]PUBLISHED:TARGET[/tcp|/udp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// The port on the nodes' underlay addresses.
    pub published: u16,
    /// The port of the tasks.
    pub target: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Ingress (routing mesh) or host.
    pub mode: PublishMode,
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let mode = if self.mode == PublishMode::Host {
            "mode=host,"
        } else {
            ""
        };
        write!(f, "{mode}{}:{}/{proto}", self.published, self.target)
    }
}

impl PortSpec {
    /// Parses `[mode=host,|mode=ingress,]PUBLISHED:TARGET[/tcp|/udp]` (also Docker's long
    /// form `published=P,target=T,protocol=udp,mode=host`).
    pub fn parse(s: &str) -> Result<PortSpec, String> {
        let bad = |why: &str| {
            format!("--publish {s:?}: {why}; use [mode=host,]PUBLISHED:TARGET[/tcp|/udp]")
        };
        let port = |v: &str, what: &str| -> Result<u16, String> {
            match v.parse::<u16>() {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(bad(&format!("{what} port {v:?} must be 1-65535"))),
            }
        };
        let mut mode = PublishMode::Ingress;
        let mut protocol = Protocol::Tcp;
        let (mut published, mut target) = (None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("mode", "host")) => mode = PublishMode::Host,
                Some(("mode", "ingress")) => mode = PublishMode::Ingress,
                Some(("mode", m)) => return Err(bad(&format!("unknown mode {m:?}"))),
                Some(("published", v)) => published = Some(port(v, "published")?),
                Some(("target", v)) => target = Some(port(v, "target")?),
                Some(("protocol", "tcp")) => protocol = Protocol::Tcp,
                Some(("protocol", "udp")) => protocol = Protocol::Udp,
                Some((k, _)) => return Err(bad(&format!("unknown field {k:?}"))),
                None => {
                    let (ports, proto) = match part.split_once('/') {
                        Some((p, "tcp")) => (p, Protocol::Tcp),
                        Some((p, "udp")) => (p, Protocol::Udp),
                        Some((_, other)) => {
                            return Err(bad(&format!("unknown protocol {other:?}")))
                        }
                        None => (part, Protocol::Tcp),
                    };
                    protocol = proto;
                    let (p, t) = ports
                        .split_once(':')
                        .ok_or_else(|| bad("expected PUBLISHED:TARGET"))?;
                    published = Some(port(p, "published")?);
                    target = Some(port(t, "target")?);
                }
            }
        }
        match (published, target) {
            (Some(published), Some(target)) => Ok(PortSpec {
                published,
                target,
                protocol,
                mode,
            }),
            _ => Err(bad("both a published and a target port are needed")),
        }
    }
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

/// What `service create` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When it was created (unix ms).
    pub created_at_ms: u64,
    /// When it last changed (unix ms).
    pub updated_at_ms: u64,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Placed on a node, not started yet.
    Assigned,
    /// Its process runs and its endpoints exist.
    Running,
    /// It could not start; its node keeps trying.
    Failed,
}

impl TaskState {
    /// Lower-case word for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Assigned => "assigned",
            TaskState::Running => "running",
            TaskState::Failed => "failed",
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
}
