//! `shoal agent`: the long-running process on every node.
//!
//! ```text
//!  unix socket (HTTP/JSON) ──▶ api ──▶ Agent ──▶ Member (control crate): Raft, mTLS, watch
//!  metrics address ──▶ /metrics (Prometheus text), /status (plain text)
//! ```
//! On SIGTERM the agent drains the node first ([`leave`]: no new connections or tasks,
//! tasks replaced elsewhere then stopped gracefully, Raft left) for at most
//! `--drain-timeout`; on SIGINT (or with `--drain-timeout 0s`) it exits at once. Either
//! way it then stops its duties, and what it programmed into the kernel stays, so a
//! restart does not cut traffic.

mod addr;
mod api;
pub mod bench;
mod docker;
pub mod leave;
mod metrics;
pub(crate) mod networks;
mod services;
mod status;

use std::future::IntoFuture;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use arc_swap::ArcSwapOption;
use shoal_control::member::{DataDir, Settings};
use shoal_control::{ClusterError, Member};
use tokio::net::UnixListener;

use tokio_util::sync::CancellationToken;

use crate::cli::args::{AgentArgs, LogFormat};
use crate::overlay::Overlay;

/// The agent's state: its settings and, once in a cluster, its membership.
pub struct Agent {
    data: DataDir,
    name: String,
    advertise: Option<IpAddr>,
    /// `--listen-addr`, if given.
    listen: Option<SocketAddr>,
    member: ArcSwapOption<Member>,
    /// Serialises init, join and leave.
    membership_change: tokio::sync::Mutex<()>,
    vxlan_port: u16,
    wg_port: u16,
    wg_interface: String,
    key_rotation: std::time::Duration,
    overlay: ArcSwapOption<Overlay>,
    runner: ArcSwapOption<crate::tasks::Runner>,
    netns_prefix: String,
    lb_idle_timeout: Option<std::time::Duration>,
    dns_upstream: Vec<SocketAddr>,
    drain_timeout: std::time::Duration,
    duties: std::sync::Mutex<Option<CancellationToken>>,
    /// The L7 ingress.
    pub ingress: Arc<crate::l7::Ingress>,
    /// Docker's network and IPAM driver.
    docker: Arc<crate::docker::driver::Driver>,
}

impl Agent {
    /// The membership, or the error that says this node is not in a cluster.
    pub fn member(&self) -> Result<Arc<Member>, ClusterError> {
        self.member.load_full().ok_or(ClusterError::NotInCluster)
    }

    /// The overlay reconciler, when in a cluster.
    pub fn overlay(&self) -> Result<Arc<Overlay>, ClusterError> {
        self.overlay.load_full().ok_or(ClusterError::NotInCluster)
    }

    /// Becomes a member: keeps `member` and starts the node's data-path duties.
    fn activate(&self, member: Arc<Member>) {
        self.deactivate();
        member.set_key_rotation(self.key_rotation);
        let stop = CancellationToken::new();
        tokio::spawn(self.ingress.clone().follow(member.clone(), stop.clone()));
        tokio::spawn(crate::overlay::report::run(member.clone(), stop.clone()));
        tokio::spawn(crate::overlay::keys::run(
            member.clone(),
            self.key_file(),
            self.wg_port,
            stop.clone(),
        ));
        let settings = crate::overlay::reconciler::Settings {
            vxlan_port: self.vxlan_port,
            idle_timeout: self.lb_idle_timeout,
            dns_intercept: crate::overlay::dns::upstreams(&self.dns_upstream)
                .into_iter()
                .filter(|u| u.port() == 53)
                .filter_map(|u| match u.ip() {
                    IpAddr::V4(v4) if !v4.is_loopback() => Some(v4),
                    _ => None,
                })
                .collect(),
            wg_interface: self.wg_interface.clone(),
        };
        let overlay = Overlay::start(member.clone(), settings, self.key_file());
        tokio::spawn(crate::overlay::loopback::run(member.clone(), stop.clone()));
        tokio::spawn(
            self.docker
                .clone()
                .follow(member.clone(), overlay.clone(), stop.clone()),
        );
        tokio::spawn(crate::overlay::dns::run(
            member.clone(),
            self.dns_upstream.clone(),
            stop.clone(),
        ));
        tokio::spawn(crate::overlay::mesh::run(
            member.clone(),
            overlay.clone(),
            stop.clone(),
        ));
        tokio::spawn(crate::dashboard::probe::run(
            member.clone(),
            overlay.clone(),
            stop.clone(),
        ));
        self.runner.store(Some(crate::tasks::Runner::start(
            member.clone(),
            overlay.clone(),
            &self.data.0,
            &self.netns_prefix,
            self.drain_timeout,
        )));
        self.overlay.store(Some(overlay));
        *self.duties.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
        self.member.store(Some(member));
    }

    /// The tasks this node runs, for `shoal status`.
    pub async fn task_status(&self) -> Option<shoal_control::api::StatusSection> {
        let runner = self.runner.load_full()?;
        let rows: Vec<(String, String)> = runner
            .summary()
            .await
            .into_iter()
            .map(|(id, pid, restarts)| {
                let pid = pid
                    .map(|p| format!("pid {p}"))
                    .unwrap_or_else(|| "not running".into());
                (id, format!("{pid}, {restarts} restarts"))
            })
            .collect();
        (!rows.is_empty()).then(|| shoal_control::api::StatusSection {
            title: "Tasks on this node".into(),
            rows,
        })
    }

    /// Stops and removes every task of this node (it leaves the cluster).
    pub async fn remove_tasks(&self) {
        if let Some(r) = self.runner.load_full() {
            r.remove_all().await;
        }
    }

    /// This node's WireGuard key file.
    pub fn key_file(&self) -> crate::overlay::keys::KeyFile {
        crate::overlay::keys::KeyFile::new(&self.data.0)
    }

    /// Stops the data-path duties; what is in the kernel stays.
    fn deactivate(&self) {
        if let Some(r) = self.runner.swap(None) {
            r.stop();
        }
        if let Some(o) = self.overlay.swap(None) {
            o.stop();
        }
        if let Some(stop) = self.duties.lock().unwrap_or_else(|e| e.into_inner()).take() {
            stop.cancel();
        }
    }

    /// Settings for init/join, with an optional advertise address override.
    fn settings(&self, advertise: Option<IpAddr>) -> Result<Settings, ClusterError> {
        let advertise = match advertise.or(self.advertise) {
            Some(a) => a,
            None => addr::detect().map_err(ClusterError::Invalid)?,
        };
        let listen = addr::listen_for(self.listen, advertise).map_err(ClusterError::Invalid)?;
        Ok(Settings {
            data: self.data.clone(),
            name: self.name.clone(),
            advertise,
            listen,
        })
    }
}

pub(crate) fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,openraft=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Takes the data directory's lock so two agents never share it.
fn lock_data_dir(dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    // A previous agent that was killed may still be exiting (its TAP devices going away)
    // for a few seconds; wait for it rather than fail a restart.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut file = std::fs::File::create(dir.join("agent.lock"))?;
    loop {
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, e)) if std::time::Instant::now() < deadline => {
                tracing::info!(error = %e, "the data directory is locked; waiting for the previous agent to exit");
                file = f;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err((_, e)) => {
                anyhow::bail!(
                    "another shoal agent is using the data directory {} ({e})",
                    dir.display()
                )
            }
        }
    }
}

/// Binds the API socket, refusing to steal it from a live agent.
async fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            bail!("another agent is already listening on {}", path.display());
        }
        std::fs::remove_file(path)?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

pub(crate) use metrics::text as metrics_text;
pub(crate) use status::plain as status_text;

/// Starts the dashboard where `--dashboard-addr` says: a given address must be
/// bound; the default one is skipped with a warning when taken.
async fn serve_dashboard(args: &AgentArgs, agent: Arc<Agent>) -> anyhow::Result<()> {
    use crate::cli::args::DashboardAddr;
    let (addr, required) = match args.dashboard_addr {
        DashboardAddr::Off => return Ok(()),
        DashboardAddr::Default(a) => (a, false),
        DashboardAddr::Given(a) => (a, true),
    };
    let (access, token) =
        crate::dashboard::auth::access(addr, args.dashboard_token_file.as_deref(), &args.data_dir)?;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if !required => {
            tracing::warn!(%addr, error = %e, "no dashboard: its default address is taken (choose one with --dashboard-addr)");
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot serve the dashboard on {addr}")),
    };
    match &token {
        Some(path) => {
            tracing::info!(%addr, token = %path.display(), "dashboard ready (requests need the token)")
        }
        None => tracing::info!(%addr, "dashboard ready"),
    }
    tokio::spawn(crate::dashboard::serve(listener, agent, access));
    Ok(())
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let _lock = lock_data_dir(&args.data_dir)?;
    let name = match &args.node_name {
        Some(n) => n.clone(),
        None => nix::unistd::gethostname()
            .context("cannot read the host name; pass --node-name")?
            .to_string_lossy()
            .into_owned(),
    };
    let data = DataDir(args.data_dir.clone());
    let member = match data.load().context("cannot read the node identity")? {
        Some((identity, tls)) => {
            tracing::info!(node = %identity.node_id, cluster = %identity.cluster_id, role = identity.role.as_str(), "rejoining the cluster");
            Some(Member::start(data.clone(), identity, tls).await?)
        }
        None => {
            tracing::info!(
                "not in a cluster yet: waiting for `shoal cluster init` or `shoal cluster join`"
            );
            None
        }
    };
    let trust = args.ingress_trust.trust()?;
    let ingress = Arc::new(
        crate::l7::Ingress::new(
            args.ingress_http,
            args.ingress_https,
            args.ingress_cert.clone(),
            args.access_log.config(),
            args.tracing.options(),
            &args.limits,
        )?
        .with_tcp(&args.ingress_tcp, args.ingress_cert.clone())?
        .with_trust(trust.0, trust.1),
    );
    let agent = Arc::new(Agent {
        data,
        name,
        advertise: args.advertise_addr,
        listen: args.listen_addr,
        member: ArcSwapOption::empty(),
        membership_change: tokio::sync::Mutex::new(()),
        vxlan_port: args.vxlan_port,
        wg_port: args.wg_port,
        wg_interface: args.wg_interface.clone(),
        key_rotation: std::time::Duration::from_secs(args.key_rotation_hours.saturating_mul(3600)),
        overlay: ArcSwapOption::empty(),
        runner: ArcSwapOption::empty(),
        netns_prefix: args.netns_prefix.clone(),
        lb_idle_timeout: args.lb_idle_timeout.map(std::time::Duration::from_secs),
        dns_upstream: args.dns_upstream.clone(),
        drain_timeout: args.drain_timeout,
        duties: std::sync::Mutex::new(None),
        ingress: ingress.clone(),
        docker: crate::docker::driver::Driver::new(Some(
            crate::docker::engine::Engine::new(&args.docker_host).map_err(anyhow::Error::msg)?,
        )),
    });
    let docker_routes = match &args.ingress_docker {
        Some(endpoint) => {
            let endpoint = if endpoint.is_empty() {
                &args.docker_host
            } else {
                endpoint
            };
            Some((
                crate::docker::engine::Engine::from_flag("--ingress-docker", endpoint)
                    .map_err(anyhow::Error::msg)?,
                args.docker_routes.settings().map_err(anyhow::Error::msg)?,
            ))
        }
        None => None,
    };
    let _entrypoints = ingress.start().await.context("cannot start the ingress")?;
    if let Some((engine, settings)) = docker_routes {
        let ingress = ingress.clone();
        tokio::spawn(crate::docker::provider::run(
            engine,
            settings,
            move |routes| ingress.set_docker(routes.routes.clone()),
            CancellationToken::new(),
        ));
    }
    if let Some(m) = member {
        agent.activate(m);
    }
    let listener = bind_socket(&args.socket).await?;
    if let Some(addr) = args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        tokio::spawn(metrics::serve(listener, agent.clone()));
    }
    serve_dashboard(&args, agent.clone()).await?;
    if let Some(plugin) = &args.docker_plugin_socket {
        let listener = bind_socket(plugin).await?;
        tokio::spawn(docker::serve_plugin(listener, agent.clone()));
        tracing::info!(socket = %plugin.display(), "Docker plugin ready");
    }
    tracing::info!(socket = %args.socket.display(), "agent API ready");
    let router = api::router(agent.clone());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    let stopping = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(stopping.clone().cancelled_owned())
            .into_future(),
    );
    let drain = tokio::select! {
        _ = term.recv() => !args.drain_timeout.is_zero(),
        _ = tokio::signal::ctrl_c() => false,
    };
    // The API keeps answering while the node drains (`shoal status` shows it Leaving).
    if drain {
        if let Some(member) = agent.member.load_full() {
            let runner = agent.runner.load_full();
            leave::drain(&member, runner.as_deref(), args.drain_timeout).await;
        }
    }
    tracing::info!("stopping");
    stopping.cancel();
    server
        .await
        .context("agent API server")?
        .context("agent API server")?;
    agent.deactivate();
    if let Some(member) = agent.member.load_full() {
        member.shutdown().await;
    }
    let _ = std::fs::remove_file(&args.socket);
    Ok(())
}
