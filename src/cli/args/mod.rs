//! The command line, as `../shared/CLI.md` fixes it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod docker;
mod lab;
mod proxy;
mod service;
mod trust;

pub use proxy::{AccessLogArgs, ClientLimitsArgs, ProxyArgs, TracingArgs};

pub use trust::{EntrypointTrustArgs, IngressTrustArgs};

pub use docker::{docker_endpoint, DockerRoutesArgs};
pub use lab::LabCmd;
pub use service::{RolloutArgs, ServiceCmd, ServiceCreateArgs, ServiceUpdateArgs};

/// shoal: container cluster networking.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about, propagate_version = true)]
pub struct Cli {
    /// The agent's API socket: unix:///path/to/shoal.sock or a path.
    #[arg(long, global = true, env = "SHOAL_HOST")]
    pub host: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of list and inspect commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document on stdout.
    Json,
}

/// `--format`.
#[derive(Debug, Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node agent in the foreground.
    Agent(Box<AgentArgs>),
    /// Create, join and leave clusters.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Manage the cluster's nodes.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Show this node's view: role, leader, nodes, networks, peers (--watch: follow it).
    Status(crate::cli::status::StatusArgs),
    /// Create, list, inspect and remove overlay networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Create, list, scale, update and remove services.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Small servers for tasks and tests (HTTP, UDP echo).
    #[command(subcommand)]
    Tool(ToolCmd),
    /// Attach a sandbox (network namespace) to a network.
    Attach(AttachArgs),
    /// Detach a sandbox from a network.
    Detach(DetachArgs),
    /// Local multi-node labs in network namespaces.
    #[command(subcommand)]
    Lab(LabCmd),
    /// Start a lab with a demo workload and say what to try.
    Demo(DemoArgs),
    /// Measure shoal against baselines measured in the same run.
    Bench(BenchArgs),
    /// L7 routes in force on this node.
    #[command(subcommand)]
    Route(RouteCmd),
    /// Run the L7 proxy alone, from a file of entrypoints, routers and services.
    Proxy(ProxyArgs),
    /// shoal as Docker's network and IPAM driver.
    #[command(subcommand, name = "docker-plugin")]
    DockerPlugin(DockerPluginCmd),
    /// shoal as a CNI plugin (podman, containerd, every CNI runtime).
    #[command(subcommand)]
    Cni(CniCmd),
}

/// `shoal cni ...`.
#[derive(Debug, Subcommand)]
pub enum CniCmd {
    /// Put the plugin (a link to this binary named `shoal`) in the CNI bin dir and write
    /// a conflist that attaches to shoal network NET through this host's agent.
    Install {
        /// The shoal network containers join (it must exist).
        #[arg(long)]
        network: String,
        /// The runtime's CNI plugin directory.
        #[arg(long, env = "SHOAL_CNI_BIN_DIR", default_value = "/opt/cni/bin")]
        bin_dir: PathBuf,
        /// The runtime's CNI network configuration directory.
        #[arg(long, env = "SHOAL_CNI_CONF_DIR", default_value = "/etc/cni/net.d")]
        conf_dir: PathBuf,
        /// Port mappings (`podman run -p`) go to the reference `portmap` plugin, chained
        /// after shoal, instead of to shoal's own port forwarding.
        #[arg(long)]
        portmap: bool,
    },
}

/// `shoal docker-plugin ...`.
#[derive(Debug, Subcommand)]
pub enum DockerPluginCmd {
    /// Make shoal a managed (v2) Docker plugin and enable it, offline: then
    /// `docker network create -d NAME --ipam-driver NAME ...`.
    Install {
        /// The plugin's name in Docker.
        #[arg(long, default_value = "shoal")]
        name: String,
        /// The Docker daemon (default: DOCKER_HOST, or /var/run/docker.sock).
        #[arg(long)]
        docker_host: Option<String>,
        /// Where the plugin directory is written.
        #[arg(long, default_value = "/var/lib/shoal")]
        data_dir: PathBuf,
    },
    /// The plugin process: Docker's network and IPAM driver protocols on a unix socket,
    /// relayed to this host's agent (`--host`).
    Serve {
        /// Where to listen; /run/docker/plugins/shoal.sock makes a legacy plugin named
        /// `shoal`.
        #[arg(long, default_value = "/run/docker/plugins/shoal.sock")]
        socket: PathBuf,
    },
}

/// `shoal route ...`.
#[derive(Debug, Subcommand)]
pub enum RouteCmd {
    /// The routes in force on this node, with their backends and health.
    Ls(FormatArg),
}

/// `shoal agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Where the agent keeps its identity, keys and Raft log.
    #[arg(long, default_value = "/var/lib/shoal")]
    pub data_dir: PathBuf,
    /// The unix socket the API listens on.
    #[arg(long, default_value = "/run/shoal/shoal.sock")]
    pub socket: PathBuf,
    /// This node's address on the underlay, IPv4 or IPv6 (default: the host's only
    /// global IPv4 address, or on a host without one its only global IPv6 address). All
    /// nodes of a cluster advertise addresses of one family.
    #[arg(long)]
    pub advertise_addr: Option<IpAddr>,
    /// Where the control plane (mTLS) listens (default: 0.0.0.0:2377, or [::]:2377 when
    /// the advertise address is IPv6).
    #[arg(long)]
    pub listen_addr: Option<SocketAddr>,
    /// The UDP port of VXLAN between nodes.
    #[arg(long, default_value_t = 4789, value_parser = clap::value_parser!(u16).range(1..))]
    pub vxlan_port: u16,
    /// Forward names DNS does not know to this resolver (IP:PORT, repeatable; default:
    /// the nameservers of /etc/resolv.conf).
    #[arg(long = "dns-upstream")]
    pub dns_upstream: Vec<SocketAddr>,
    /// On SIGTERM, drain before exiting, for at most this long: the node stops taking
    /// new connections and tasks everywhere, its tasks start on other nodes, then stop
    /// (SIGTERM, this long to finish their connections, SIGKILL), a manager leaves the
    /// Raft voters; the next start makes the node active again. Also the grace period of
    /// every task that stops. 0s: exit at once on SIGTERM, as on SIGINT (what the agent
    /// programmed stays). Like 250ms, 10s, 2m; at most 1h.
    #[arg(long, default_value = "10s", value_parser = parse_drain_timeout)]
    pub drain_timeout: std::time::Duration,
    /// Close load-balanced connections idle this many seconds (default: the kernel's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub lb_idle_timeout: Option<u64>,
    /// Names of the network namespaces the agent makes for tasks start with this.
    #[arg(long, default_value = "shl-")]
    pub netns_prefix: String,
    /// The UDP port of WireGuard between nodes (encrypted networks).
    #[arg(long, default_value_t = 51820, value_parser = clap::value_parser!(u16).range(1..))]
    pub wg_port: u16,
    /// The interface name `wg show` knows the encrypted data path by: its UAPI socket is
    /// /var/run/wireguard/NAME.sock while the node carries an encrypted network.
    #[arg(long, default_value = "shoal", value_parser = crate::overlay::uapi::parse_interface_name)]
    pub wg_interface: String,
    /// Replace every node's WireGuard key this often, in hours (0: never by itself).
    #[arg(long, default_value_t = 24)]
    pub key_rotation_hours: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Serve the web dashboard (and its JSON under /api/, /status, /metrics) at
    /// http://ADDR/; `off` serves none. Beyond loopback every request needs the token
    /// (--dashboard-token-file, else one is made in DATA_DIR/dashboard.token).
    #[arg(long, default_value = "127.0.0.1:6790", value_parser = parse_dashboard_addr)]
    pub dashboard_addr: DashboardAddr,
    /// A file holding the dashboard's bearer token; with it, every request needs the
    /// token, on loopback too.
    #[arg(long, value_name = "FILE")]
    pub dashboard_token_file: Option<PathBuf>,
    /// The L7 ingress's HTTP entrypoint (`web`): IP:PORT, or :PORT for every address
    /// (IPv6 and IPv4).
    #[arg(long, value_parser = parse_listen_addr)]
    pub ingress_http: Option<SocketAddr>,
    /// The L7 ingress's HTTPS entrypoint (`websecure`); needs --ingress-cert.
    #[arg(long, value_parser = parse_listen_addr)]
    pub ingress_https: Option<SocketAddr>,
    /// A certificate chain and key for the HTTPS entrypoint, as CERT_FILE:KEY_FILE (PEM;
    /// repeatable, chosen by SNI).
    #[arg(long = "ingress-cert", value_name = "CERT_FILE:KEY_FILE", value_parser = parse_cert_pair)]
    pub ingress_cert: Vec<(PathBuf, PathBuf)>,
    /// A TCP entrypoint of the ingress, NAME=IP:PORT (repeatable), for the
    /// `tcp.routers` labels of services; --ingress-cert's certificates serve the TCP
    /// routers that terminate TLS.
    #[arg(long = "ingress-tcp", value_name = "NAME=IP:PORT", value_parser = docker::parse_entrypoint)]
    pub ingress_tcp: Vec<(String, SocketAddr)>,
    #[command(flatten)]
    pub ingress_trust: IngressTrustArgs,
    #[command(flatten)]
    pub access_log: AccessLogArgs,
    #[command(flatten)]
    pub tracing: TracingArgs,
    #[command(flatten)]
    pub limits: ClientLimitsArgs,
    /// This node's name in the cluster (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The local Docker daemon, asked for network and container names when shoal is
    /// its network driver.
    #[arg(long, default_value = "unix:///var/run/docker.sock")]
    pub docker_host: String,
    /// Also serve Docker's plugin protocols here, as a legacy plugin named after the
    /// socket (/run/docker/plugins/shoal.sock: `docker network create -d shoal`).
    #[arg(long)]
    pub docker_plugin_socket: Option<PathBuf>,
    /// The ingress also routes Docker's containers and Swarm services by their labels
    /// (Træfik's and docker-flow-proxy's), from this daemon (default: --docker-host's).
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "ENDPOINT")]
    pub ingress_docker: Option<String>,
    #[command(flatten)]
    pub docker_routes: DockerRoutesArgs,
    /// Log format.
    #[arg(long, value_enum, default_value_t)]
    pub log_format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `shoal cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Create a cluster with this node as its first manager.
    Init {
        /// This node's underlay address (default: the agent's).
        #[arg(long)]
        advertise_addr: Option<IpAddr>,
        /// Address pool that network subnets are cut from (repeatable; default 10.0.0.0/8);
        /// an IPv6 one is where --ipv6 networks get their /64s (default: a ULA /48 of
        /// the cluster).
        #[arg(long = "default-addr-pool")]
        default_addr_pool: Vec<String>,
        /// Prefix length of the subnets cut from the pools (default 24).
        #[arg(long)]
        default_addr_pool_mask_length: Option<u8>,
    },
    /// Join a cluster through one of its managers.
    Join {
        /// The join token (`shoal cluster join-token worker|manager` on a manager).
        #[arg(long)]
        token: String,
        /// This node's underlay address (default: the agent's).
        #[arg(long)]
        advertise_addr: Option<IpAddr>,
        /// Refuse to join unless the token grants this role.
        #[arg(long, value_parser = ["manager", "worker"])]
        role: Option<String>,
        /// A manager's control address, IP:PORT.
        manager: String,
    },
    /// Print (or rotate) the token for joining as a worker or a manager.
    JoinToken {
        /// worker or manager.
        #[arg(value_parser = ["manager", "worker"])]
        role: String,
        /// Print only the token.
        #[arg(short, long)]
        quiet: bool,
        /// Replace the token; the old one stops working.
        #[arg(long)]
        rotate: bool,
    },
    /// Replace every node's WireGuard key now (traffic keeps flowing).
    RotateKeys,
    /// Leave the cluster (managers need --force).
    Leave {
        /// Leave even as a manager.
        #[arg(long)]
        force: bool,
    },
}

/// `shoal node ...`.
#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// List the nodes.
    Ls(FormatArg),
    /// Show one node.
    Inspect {
        /// Name, ID or ID prefix.
        node: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Change a node's availability or labels.
    Update {
        /// active, pause or drain.
        #[arg(long, value_parser = ["active", "pause", "drain"])]
        availability: Option<String>,
        /// Add or change a label (repeatable).
        #[arg(long = "label-add", value_name = "KEY=VALUE")]
        label_add: Vec<String>,
        /// Remove a label (repeatable).
        #[arg(long = "label-rm", value_name = "KEY")]
        label_rm: Vec<String>,
        /// Name, ID or ID prefix.
        node: String,
    },
    /// Make workers managers.
    Promote {
        /// Names, IDs or ID prefixes.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Make managers workers.
    Demote {
        /// Names, IDs or ID prefixes.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Remove nodes from the cluster; their certificates stop working.
    Rm {
        /// Remove even if the node is up, or a manager.
        #[arg(long, short)]
        force: bool,
        /// Names, IDs or ID prefixes.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}

/// `shoal demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The lab's name.
    #[arg(long, default_value = "demo")]
    pub name: String,
}

/// `shoal bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub what: BenchKind,
    /// `overlay` only: measure an encrypted network against the plain overlay,
    /// wireguard-go and boringtun-cli.
    #[arg(long)]
    pub encrypted: bool,
    /// `overlay`: TCP over IPv6 between two sandboxes on a dual-stack network, against
    /// TCP over IPv4 between the same two. `mesh`: a published port over IPv6 (a dual
    /// underlay, a dual-stack network) against going straight to the task's IPv6 address.
    #[arg(long)]
    pub ipv6: bool,
    /// `ingress` only: measure TLS 1.3 at the edge against HAProxy (OpenSSL) instead of
    /// plain HTTP: keep-alive requests/s, new handshakes/s (ECDSA P-256 and RSA 2048,
    /// full and resumed), 1 MB responses.
    #[arg(long)]
    pub tls: bool,
    /// `ingress` only: measure HTTP/2 over TLS (h2load, many streams per connection)
    /// against HAProxy instead of plain HTTP.
    #[arg(long)]
    pub h2: bool,
    /// `ingress` only: a smoke check with 1-second runs and one round per proxy.
    #[arg(long, hide = true)]
    pub quick: bool,
    /// Install missing baselines (apt-get, cargo install); without it a missing one is
    /// an error naming what to install.
    #[arg(long)]
    pub install_baselines: bool,
    /// `scale`: lab sizes to measure, comma-separated (10,30,100); `dashboard`: the
    /// lab's size (the first one).
    #[arg(long, value_delimiter = ',', default_value = "10")]
    pub nodes: Vec<usize>,
    /// `scale` only: endpoint counts to measure on each lab, comma-separated
    /// (100,1000,10000); state-only endpoints (no sandbox each).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub endpoints: Vec<usize>,
    /// `scale` only: changes measured per kind (attach, detach).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// `scale` only: attaches in the burst (one commit each).
    #[arg(long, default_value_t = 1000)]
    pub burst: usize,
    /// `scale` only: seconds the agents are watched at rest.
    #[arg(long, default_value_t = 10)]
    pub rest_secs: u64,
    /// `scale` only: the lab's name.
    #[arg(long, default_value = "benchscale")]
    pub lab: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// The benchmarks.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BenchKind {
    /// TCP throughput and latency between sandboxes on two nodes, against a veth pair and
    /// a hand-built kernel VXLAN.
    Overlay,
    /// Raft commit latency, throughput and failover on a 3-manager lab.
    Control,
    /// A published port (routing mesh) against going straight to the task: throughput
    /// and new connections per second.
    Mesh,
    /// The network resolver's queries/s and latency, against unbound with the same names.
    Dns,
    /// HTTP through shoal's L7 proxy against HAProxy and nginx, proxy on one core;
    /// with --tls or --h2, TLS 1.3 and HTTP/2 at the edge against HAProxy (OpenSSL).
    Ingress,
    /// Docker containers on a shoal network across hosts, against shoal's sandboxes and
    /// Docker's own overlay driver; `docker run` until a peer answers.
    Docker,
    /// How soon the ingress routes by a Docker change (docker run, docker stop, a Swarm
    /// service's label), against Docker's own time for it.
    DockerRoutes,
    /// CNI ADD/DEL latency through shoal's plugin against the reference bridge +
    /// host-local plugins; podman containers on a shoal network across hosts against
    /// shoal's sandboxes.
    Cni,
    /// What faults cost: seeded nemesis runs (simulated and on a lab) checked for
    /// linearizability, against reads from the local replica; failed requests while a
    /// node is cut off, drained by SIGTERM, and while a service has a rolling update.
    Faults,
    /// The web dashboard in headless Chromium: first paint against the agent's plain
    /// `/status`, a change shown on the open page against polling its JSON.
    Dashboard,
    /// Scale: a lab of --nodes agents with --endpoints state-only endpoints; how soon
    /// every node's kernel and resolver reflect an attach, a detach, a service scale
    /// and a node down (with its detection time), the agents' RSS and
    /// CPU at rest and in a burst of attaches, the leader's Raft directory, and the
    /// growth exponents across the sizes.
    Scale,
    /// Every one of the above, one after the other (the overlay also `--encrypted` and
    /// `--ipv6`; `dashboard` and `scale` at their defaults), then one table of every
    /// figure; a benchmark that fails is named at the end and the others still run.
    All,
}

/// `shoal network ...`.
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create an overlay network.
    Create {
        /// The driver (only `overlay`).
        #[arg(short = 'd', long = "driver", default_value = "overlay")]
        driver: String,
        /// Subnet in CIDR form (default: cut from the cluster's address pools); one
        /// per address family: an IPv6 one with --ipv6.
        #[arg(long)]
        subnet: Vec<String>,
        /// Gateway address (default: the subnet's first host); one per family.
        #[arg(long)]
        gateway: Vec<String>,
        /// Allocate addresses from this sub-range only; one per family.
        #[arg(long)]
        ip_range: Vec<String>,
        /// Dual-stack: endpoints get an IPv6 address too, from the IPv6 --subnet or
        /// a /64 cut from the cluster's IPv6 pools.
        #[arg(long)]
        ipv6: bool,
        /// `--ipv4=false` (with --ipv6): an IPv6-only network, whose endpoints get no
        /// IPv4 address (Docker's `--ipv4=false`).
        #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true,
              default_missing_value = "true", action = clap::ArgAction::Set)]
        ipv4: bool,
        /// Keep a named address out of allocation (repeatable).
        #[arg(long = "aux-address", value_name = "NAME=IP")]
        aux_address: Vec<String>,
        /// Let any sandbox attach, not only service tasks.
        #[arg(long)]
        attachable: bool,
        /// No traffic to or from outside the network.
        #[arg(long)]
        internal: bool,
        /// Driver options: `encrypted`, `mtu=N` (repeatable).
        #[arg(long = "opt", short = 'o', value_name = "OPT[=VALUE]")]
        opt: Vec<String>,
        /// A label (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        label: Vec<String>,
        /// The network's name.
        name: String,
    },
    /// List networks.
    Ls(FormatArg),
    /// Show a network and its endpoints.
    Inspect {
        /// Name or ID.
        network: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove networks (refused while they have endpoints).
    Rm {
        /// Names or IDs.
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

/// `shoal attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The network.
    #[arg(long)]
    pub network: String,
    /// The sandbox's DNS name on the network.
    #[arg(long)]
    pub name: Option<String>,
    /// More DNS names (repeatable).
    #[arg(long = "alias")]
    pub alias: Vec<String>,
    /// An explicit IPv4 address.
    #[arg(long)]
    pub ip: Option<String>,
    /// An explicit IPv6 address (on a network made with --ipv6).
    #[arg(long)]
    pub ip6: Option<String>,
    /// The service the sandbox is a task of.
    #[arg(long)]
    pub service: Option<String>,
    /// The interface's name in the sandbox (default: the first free ethN).
    #[arg(long)]
    pub ifname: Option<String>,
    /// The interface's MAC (default: 02:42 and the address's four bytes).
    #[arg(long)]
    pub mac: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// A network namespace: a path (/run/netns/x) or a name under /run/netns.
    pub netns: String,
}

/// `shoal detach`.
#[derive(Debug, Args)]
pub struct DetachArgs {
    /// The network.
    #[arg(long)]
    pub network: String,
    /// A network namespace: a path or a name under /run/netns.
    pub netns: String,
}

/// `shoal tool ...`: small servers a task can run.
#[derive(Debug, Subcommand)]
pub enum ToolCmd {
    /// Answer every HTTP request with which task answered and the address the request
    /// came from (`peer=IP:PORT`), over IPv6 and IPv4; on SIGTERM finish the requests
    /// in flight, then exit.
    Http {
        /// The TCP port.
        #[arg(long, default_value_t = 80)]
        port: u16,
    },
    /// Tell each TCP connection and UDP datagram its source address as the task saw it
    /// (`peer=IP:PORT`, and which task answered), on the same TCP and UDP port.
    Peer {
        /// The TCP and UDP port (1-65535).
        #[arg(long, default_value_t = 7000, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
    },
    /// A closed loop of idempotent HTTP GETs (one connection each) for a while; prints
    /// a JSON summary with every failed request and when it started.
    Load {
        /// http://IP[:PORT]/PATH.
        url: String,
        /// The Host header (default: the URL's IP and port).
        #[arg(long)]
        host: Option<String>,
        /// How long to run, like 10s or 2m.
        #[arg(long, default_value = "10s", value_parser = shoal_ingress::config::parse_duration)]
        duration: std::time::Duration,
        /// A request without its whole answer after this long fails.
        #[arg(long, default_value = "2s", value_parser = shoal_ingress::config::parse_duration)]
        timeout: std::time::Duration,
        /// Loops running at once (1-256).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
        /// Stop after this many requests (0: no limit, the duration ends the run).
        #[arg(long, default_value_t = 0)]
        requests: u64,
        /// Exit 1 if any request failed (e.g. `--requests 1 --check` as a health check).
        #[arg(long)]
        check: bool,
        /// Connect from this local address.
        #[arg(long)]
        source: Option<std::net::IpAddr>,
    },
    /// Echo every UDP datagram, prefixed with which task answered.
    UdpEcho {
        /// The UDP port.
        #[arg(long, default_value_t = 5353)]
        port: u16,
    },
}

/// `--dashboard-addr`: where the dashboard listens, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashboardAddr {
    /// `off`.
    Off,
    /// The default, on loopback: the agent runs on without it if the port is taken.
    Default(SocketAddr),
    /// An address given on the command line: the agent does not start without it.
    Given(SocketAddr),
}

/// Parses `--dashboard-addr`: `off` or IP:PORT.
pub fn parse_dashboard_addr(s: &str) -> Result<DashboardAddr, String> {
    if s == "off" {
        return Ok(DashboardAddr::Off);
    }
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| format!("{s:?} is not IP:PORT (such as 127.0.0.1:6790) or `off`"))?;
    Ok(if s == DEFAULT_DASHBOARD_ADDR {
        DashboardAddr::Default(addr)
    } else {
        DashboardAddr::Given(addr)
    })
}

/// Where the dashboard listens unless told otherwise.
pub const DEFAULT_DASHBOARD_ADDR: &str = "127.0.0.1:6790";

/// `--drain-timeout`: a duration up to an hour.
pub fn parse_drain_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = shoal_ingress::config::parse_duration(s)?;
    if d > std::time::Duration::from_secs(3600) {
        return Err(format!("{s} is longer than the 1h a drain may take"));
    }
    Ok(d)
}

/// `CERT_FILE:KEY_FILE`.
fn parse_cert_pair(s: &str) -> Result<(PathBuf, PathBuf), String> {
    match s.split_once(':') {
        Some((c, k)) if !c.is_empty() && !k.is_empty() => Ok((PathBuf::from(c), PathBuf::from(k))),
        _ => Err(format!("expected CERT_FILE:KEY_FILE, got {s:?}")),
    }
}

/// An entrypoint address: `IP:PORT`, `[IPv6]:PORT`, or `:PORT` (every address,
/// IPv6 and IPv4, as Træfik's `:80`).
fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    shoal_ingress::proxy::listen::parse_address(s)
        .ok_or_else(|| format!("{s:?} is not IP:PORT, [IPv6]:PORT or :PORT (such as :80)"))
}
