//! `shoal lab ...` arguments.

use std::net::SocketAddr;

use clap::{Args, Subcommand};

use super::Format;

/// `--name` of a lab.
#[derive(Debug, Args)]
pub struct LabName {
    /// The lab's name (labs with different names run side by side).
    #[arg(long, default_value = "lab")]
    pub name: String,
}

/// `shoal lab ...`.
#[derive(Debug, Subcommand)]
pub enum LabCmd {
    /// Build a lab and form a cluster on it; returns when every node is Ready.
    Up {
        /// How many nodes (n1..nN).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// How many of them are managers (the first M).
        #[arg(long, default_value_t = 1)]
        managers: usize,
        /// The agents forward names DNS does not know to this resolver (IP:PORT).
        #[arg(long = "dns-upstream")]
        dns_upstream: Vec<SocketAddr>,
        /// Start a dockerd in every node host (each with its own data, sockets and
        /// mounts); `lab exec` then points `docker` at it.
        #[arg(long)]
        docker: bool,
        /// One more argument for every dockerd (repeatable; implies --docker), e.g.
        /// --docker-arg=--live-restore.
        #[arg(long = "docker-arg", allow_hyphen_values = true)]
        docker_arg: Vec<String>,
        /// Make podman usable in every node host (each its own storage, state and CNI
        /// configuration directory); `lab exec` then points `podman` at it.
        #[arg(long)]
        podman: bool,
        /// One more argument for every agent (repeatable), e.g.
        /// --agent-arg=--lb-idle-timeout=30.
        #[arg(long = "agent-arg", allow_hyphen_values = true)]
        agent_arg: Vec<String>,
        /// Put every agent's data directory on a tmpfs of its own of this size (e.g.
        /// 16M), so `lab fill` can fill it; unmounted by `lab down`.
        #[arg(long = "data-tmpfs", value_name = "SIZE")]
        data_tmpfs: Option<String>,
        /// The underlay's address families: ipv4 (198.18.0.N/15), ipv6 (fd00:5ea1::N/64)
        /// or dual (both; the agents advertise the IPv6 address).
        #[arg(long, value_enum, default_value_t)]
        underlay: crate::lab::topology::Underlay,
        #[command(flatten)]
        lab: LabName,
    },
    /// Show the lab's hosts.
    Status {
        #[command(flatten)]
        lab: LabName,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Run a command inside a lab host (SHOAL_HOST set to its agent).
    Exec {
        #[command(flatten)]
        lab: LabName,
        /// n1..nN or client.
        host: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Stop a host's agent (SIGTERM, or --signal KILL to crash it).
    Kill {
        #[command(flatten)]
        lab: LabName,
        /// n1..nN.
        host: String,
        /// TERM or KILL.
        #[arg(long, default_value = "TERM", value_parser = ["TERM", "KILL"])]
        signal: String,
        /// Stop the host's dockerd instead of its agent.
        #[arg(long)]
        dockerd: bool,
    },
    /// Start a host's agent again (it keeps its data).
    Start {
        #[command(flatten)]
        lab: LabName,
        /// n1..nN.
        host: String,
        /// Start the host's dockerd instead of its agent.
        #[arg(long)]
        dockerd: bool,
    },
    /// Cut the lab's network between groups of hosts (nftables drops in the hosts'
    /// namespaces, established connections included); hosts in no group keep talking
    /// to everyone. Replaces an earlier partition.
    Partition {
        #[command(flatten)]
        lab: LabName,
        /// Groups of hosts separated by `/`, e.g. `n1,n2 / n3,client`.
        #[arg(required = true, num_args = 1..)]
        groups: Vec<String>,
    },
    /// Remove every fault: partition, slow links, paused agents, filled disks, shifted
    /// clocks.
    Heal {
        #[command(flatten)]
        lab: LabName,
    },
    /// Freeze a host's agent (SIGSTOP) until `lab resume` or `lab heal`.
    Pause {
        #[command(flatten)]
        lab: LabName,
        /// n1..nN.
        host: String,
    },
    /// Let a paused agent run again (SIGCONT).
    Resume {
        #[command(flatten)]
        lab: LabName,
        /// n1..nN.
        host: String,
    },
    /// Make what leaves a host on its underlay link slow or lossy (replaces an earlier
    /// `lab slow` of that host).
    Slow {
        #[command(flatten)]
        lab: LabName,
        /// n1..nN or client.
        host: String,
        /// Delay every packet by this many milliseconds (needs the kernel's sch_netem).
        #[arg(long, value_name = "MS")]
        delay: Option<u32>,
        /// Drop this percentage of packets (1-100; nftables).
        #[arg(long, value_name = "PCT")]
        loss: Option<u8>,
        /// Limit the rate, e.g. 1mbit, 512kbit (tc tbf).
        #[arg(long, value_name = "RATE")]
        rate: Option<String>,
    },
    /// Fill a host's data directory until the disk is full (needs `lab up
    /// --data-tmpfs`); `lab heal` removes the filler.
    Fill {
        #[command(flatten)]
        lab: LabName,
        /// n1..nN.
        host: String,
    },
    /// Restart a host's agent in a time namespace whose monotonic and boot clocks are
    /// shifted (the wall clock cannot be: Linux has no namespace for it).
    Clock {
        #[command(flatten)]
        lab: LabName,
        /// n1..nN.
        host: String,
        /// The shift, e.g. +30s, -10s, +5m.
        #[arg(long, allow_hyphen_values = true)]
        jump: String,
    },
    /// Remove the lab: processes, namespaces, interfaces, files.
    Down {
        #[command(flatten)]
        lab: LabName,
    },
    /// A seeded nemesis run against the lab's control plane, checked as Jepsen checks
    /// a database: clients on every manager create, delete and read networks and
    /// services and put and read labels while the lab is partitioned, paused and
    /// crashed; the history must be linearizable, no address given twice, no kernel
    /// object left that the state no longer has. Exit code 1 if anything is wrong.
    Jepsen {
        #[command(flatten)]
        lab: LabName,
        /// Seeds operations and faults (default: from the clock; printed either way).
        #[arg(long)]
        seed: Option<u64>,
        /// How long clients and faults run (e.g. 60s, 5m).
        #[arg(long, default_value = "60s", value_parser = shoal_ingress::config::parse_duration)]
        duration: std::time::Duration,
        /// Concurrent clients on each manager.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
        clients_per_manager: u64,
        /// A fault, or its heal, this often.
        #[arg(long, default_value = "3s", value_parser = shoal_ingress::config::parse_duration)]
        fault_every: std::time::Duration,
        /// Objects of each kind (labels, networks, services).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=50))]
        objects: u64,
        /// An operation not answered within this counts as unknown.
        #[arg(long, default_value = "5s", value_parser = shoal_ingress::config::parse_duration)]
        op_timeout: std::time::Duration,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}
