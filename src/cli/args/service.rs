//! `shoal service ...`.

use clap::{Args, Subcommand};

use super::{Format, FormatArg};

/// `shoal service ...`.
#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Create a service.
    Create(Box<ServiceCreateArgs>),
    /// List services.
    Ls(FormatArg),
    /// List a service's tasks.
    Ps {
        /// The service.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a service.
    Inspect {
        /// The service.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Set the replica count: NAME=N (repeatable).
    Scale {
        /// NAME=N.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Change a service: labels, ports, networks, placement, DNS, replicas.
    Update(Box<ServiceUpdateArgs>),
    /// Remove services and their tasks.
    Rm {
        /// Names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `shoal service create`.
#[derive(Debug, Args)]
pub struct ServiceCreateArgs {
    /// The service's name (also its DNS name).
    #[arg(long)]
    pub name: String,
    /// A network its tasks join: NAME, or name=NAME[,alias=ALIAS]...[,driver-opt=K=V]
    /// (repeatable).
    #[arg(long = "network")]
    pub network: Vec<String>,
    /// How many tasks (replicated mode, default 1).
    #[arg(long, conflicts_with = "mode")]
    pub replicas: Option<u32>,
    /// `global`: one task on every active node.
    #[arg(long, value_parser = ["replicated", "global"])]
    pub mode: Option<String>,
    /// Publish a port: [PUBLISHED:]TARGET[/tcp|/udp], [mode=host,]PUBLISHED:TARGET, or
    /// published=P,target=T,protocol=tcp|udp,mode=ingress|host,src=preserve|nat;
    /// without a published port one is assigned from 30000-32767 (repeatable). src=
    /// (ingress mode): preserve (default) lets tasks see the client's address, nat
    /// shows them the ingress node's.
    #[arg(long = "publish", short = 'p')]
    pub publish: Vec<String>,
    /// vip (default) or dnsrr.
    #[arg(long, value_parser = ["vip", "dnsrr"])]
    pub endpoint_mode: Option<String>,
    /// A label (repeatable); L7 routes are labels.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Placement constraint: node.id, node.hostname, node.role, node.ip,
    /// node.platform.os|arch, node.labels.NAME with == or != (repeatable).
    #[arg(long = "constraint")]
    pub constraint: Vec<String>,
    /// Placement preference: spread=node.labels.NAME (repeatable).
    #[arg(long = "placement-pref")]
    pub placement_pref: Vec<String>,
    /// At most this many tasks of the service on one node (0: no cap).
    #[arg(long)]
    pub replicas_max_per_node: Option<u32>,
    /// An upstream resolver for the tasks' names shoal does not know (repeatable).
    #[arg(long = "dns")]
    pub dns: Vec<std::net::IpAddr>,
    /// A search domain of the tasks' resolv.conf (repeatable).
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// A resolver option of the tasks' resolv.conf (repeatable).
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// The tasks' host name; may use {{.Service.Name}}, {{.Task.Slot}}, {{.Node.Hostname}}...
    #[arg(long)]
    pub hostname: Option<String>,
    /// How tasks are replaced and checked.
    #[command(flatten)]
    pub rollout: RolloutArgs,
    /// The command each task runs, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// `shoal service update`.
#[derive(Debug, Args)]
pub struct ServiceUpdateArgs {
    /// Add or change a label.
    #[arg(long = "label-add", value_name = "KEY=VALUE")]
    pub label_add: Vec<String>,
    /// Remove a label.
    #[arg(long = "label-rm", value_name = "KEY")]
    pub label_rm: Vec<String>,
    /// Publish a port (as --publish); a port already published is left as it is, but
    /// takes the src= given (default preserve): e.g. `8080:80,src=nat` switches it.
    #[arg(long = "publish-add")]
    pub publish_add: Vec<String>,
    /// Stop publishing a port, by target port: TARGET[/udp], PUBLISHED:TARGET, or
    /// target=T,mode=host.
    #[arg(long = "publish-rm")]
    pub publish_rm: Vec<String>,
    /// New replica count.
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Join a network: NAME or name=NAME[,alias=ALIAS]... (repeatable).
    #[arg(long = "network-add")]
    pub network_add: Vec<String>,
    /// Leave a network (repeatable).
    #[arg(long = "network-rm")]
    pub network_rm: Vec<String>,
    /// vip or dnsrr.
    #[arg(long, value_parser = ["vip", "dnsrr"])]
    pub endpoint_mode: Option<String>,
    /// Add a placement constraint.
    #[arg(long = "constraint-add")]
    pub constraint_add: Vec<String>,
    /// Remove a placement constraint.
    #[arg(long = "constraint-rm")]
    pub constraint_rm: Vec<String>,
    /// Add a placement preference.
    #[arg(long = "placement-pref-add")]
    pub placement_pref_add: Vec<String>,
    /// Remove a placement preference.
    #[arg(long = "placement-pref-rm")]
    pub placement_pref_rm: Vec<String>,
    /// A new cap of tasks per node (0: none).
    #[arg(long)]
    pub replicas_max_per_node: Option<u32>,
    /// Add an upstream resolver.
    #[arg(long = "dns-add")]
    pub dns_add: Vec<std::net::IpAddr>,
    /// Remove an upstream resolver.
    #[arg(long = "dns-rm")]
    pub dns_rm: Vec<std::net::IpAddr>,
    /// Add a search domain.
    #[arg(long = "dns-search-add")]
    pub dns_search_add: Vec<String>,
    /// Remove a search domain.
    #[arg(long = "dns-search-rm")]
    pub dns_search_rm: Vec<String>,
    /// Add a resolver option.
    #[arg(long = "dns-option-add")]
    pub dns_option_add: Vec<String>,
    /// Remove a resolver option.
    #[arg(long = "dns-option-rm")]
    pub dns_option_rm: Vec<String>,
    /// A new host name template ("" removes it).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Replace the tasks even if nothing changes.
    #[arg(long)]
    pub force: bool,
    /// Go back to the previous spec (no other option with it).
    #[arg(long)]
    pub rollback: bool,
    /// New arguments after the task's program, as one shell-quoted string.
    #[arg(long)]
    pub args: Option<String>,
    /// How tasks are replaced and checked.
    #[command(flatten)]
    pub rollout: RolloutArgs,
    /// The service.
    pub name: String,
    /// A new command (program and arguments), after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// `--update-*`, `--health-*` and `--stop-grace-period`, on create and update.
/// Durations are Go's: 500ms, 10s, 1m30s.
#[derive(Debug, Args, Default)]
pub struct RolloutArgs {
    /// Tasks replaced at a time (default 1; 0: all at once).
    #[arg(long)]
    pub update_parallelism: Option<u32>,
    /// Wait between batches (default 0s).
    #[arg(long)]
    pub update_delay: Option<String>,
    /// stop-first (default: the old task drains and stops, then the new one starts)
    /// or start-first (the new one runs and is healthy before the old one drains).
    #[arg(long, value_parser = ["stop-first", "start-first"])]
    pub update_order: Option<String>,
    /// pause (default), continue or rollback when a new task fails.
    #[arg(long, value_parser = ["pause", "continue", "rollback"])]
    pub update_failure_action: Option<String>,
    /// How long a new task is watched for failure once ready (default 5s).
    #[arg(long)]
    pub update_monitor: Option<String>,
    /// Health check: a shell command run in the task's sandbox; exit 0 is healthy. A
    /// task with a check takes traffic once it passes.
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Between checks (default 30s).
    #[arg(long)]
    pub health_interval: Option<String>,
    /// A check running longer fails (default 30s).
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Failures in a row that make a task unhealthy (default 3); it is then restarted.
    #[arg(long)]
    pub health_retries: Option<u32>,
    /// Failures in this time after a start do not count (default 0s).
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Remove the health check.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// How long a task being stopped has to exit after SIGTERM before SIGKILL (default
    /// 10s). It is out of every backend set for 2s before SIGTERM.
    #[arg(long)]
    pub stop_grace_period: Option<String>,
}
