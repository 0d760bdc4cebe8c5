//! `shoal service ...` and `shoal tool ...`.

use anyhow::{bail, Context};
use std::collections::BTreeMap;

use shoal_control::api::{ServiceInfo, ServiceUpdate};
use shoal_control::state::{
    Constraint, DnsConfig, EndpointMode, NetworkAttachment, NetworkOptions, Placement, PortRemoval,
    PortSpec, ServiceMode, ServiceSpec, SpecError, Spread,
};

use super::args::{ServiceCmd, ServiceCreateArgs, ServiceUpdateArgs, ToolCmd};
use super::{key_values, print, table};
use crate::client::{segment, ApiClient};

fn ports(items: &[String]) -> anyhow::Result<Vec<PortSpec>> {
    let mut out = Vec::new();
    for p in items {
        out.extend(PortSpec::parse_all(p)?);
    }
    Ok(out)
}

fn parsed<T>(
    items: &[String],
    parse: impl Fn(&str) -> Result<T, SpecError>,
) -> anyhow::Result<Vec<T>> {
    Ok(items.iter().map(|i| parse(i)).collect::<Result<_, _>>()?)
}

fn endpoint_mode(s: Option<&str>) -> Option<EndpointMode> {
    s.map(|m| match m {
        "dnsrr" => EndpointMode::Dnsrr,
        _ => EndpointMode::Vip,
    })
}

/// `--network` values as the spec holds them: names, and options per network.
fn networks(items: &[String]) -> anyhow::Result<(Vec<String>, BTreeMap<String, NetworkOptions>)> {
    let mut names = Vec::new();
    let mut options = BTreeMap::new();
    for a in parsed(items, NetworkAttachment::parse)? {
        if a.options != NetworkOptions::default() {
            options.insert(a.target.clone(), a.options);
        }
        names.push(a.target);
    }
    Ok((names, options))
}

fn create_spec(a: ServiceCreateArgs) -> anyhow::Result<ServiceSpec> {
    let mut spec = base_spec(&a)?;
    super::rollout::apply_to_spec(&a.rollout, &mut spec)?;
    spec.command = a.command;
    Ok(spec)
}

fn base_spec(a: &ServiceCreateArgs) -> anyhow::Result<ServiceSpec> {
    let mode = match a.mode.as_deref() {
        Some("global") => ServiceMode::Global,
        _ => ServiceMode::Replicated {
            replicas: a.replicas.unwrap_or(1),
        },
    };
    let (networks, network_options) = networks(&a.network)?;
    Ok(ServiceSpec {
        name: a.name.clone(),
        networks,
        mode,
        publish: ports(&a.publish)?,
        endpoint_mode: endpoint_mode(a.endpoint_mode.as_deref()).unwrap_or_default(),
        labels: key_values(&a.label, "--label")?,
        network_options,
        placement: Placement {
            constraints: parsed(&a.constraint, Constraint::parse)?,
            preferences: parsed(&a.placement_pref, Spread::parse)?,
            max_replicas_per_node: a.replicas_max_per_node,
        },
        dns: DnsConfig {
            nameservers: a.dns.clone(),
            search: a.dns_search.clone(),
            options: a.dns_option.clone(),
        },
        hostname: a.hostname.clone(),
        ..Default::default()
    })
}

fn update_changes(a: ServiceUpdateArgs) -> anyhow::Result<ServiceUpdate> {
    let args = match &a.args {
        Some(line) => Some(
            shlex::split(line).with_context(|| format!("--args {line:?}: unbalanced quotes"))?,
        ),
        None => None,
    };
    let mut u = ServiceUpdate {
        force: a.force,
        rollback: a.rollback,
        command: (!a.command.is_empty()).then(|| a.command.clone()),
        args,
        replicas: a.replicas,
        labels_add: key_values(&a.label_add, "--label-add")?,
        labels_rm: a.label_rm,
        publish_add: ports(&a.publish_add)?,
        publish_rm: ports(&a.publish_rm)?
            .into_iter()
            .map(PortRemoval::Spec)
            .collect(),
        networks_add: parsed(&a.network_add, NetworkAttachment::parse)?,
        networks_rm: a.network_rm,
        endpoint_mode: endpoint_mode(a.endpoint_mode.as_deref()),
        constraints_add: parsed(&a.constraint_add, Constraint::parse)?,
        constraints_rm: parsed(&a.constraint_rm, Constraint::parse)?,
        preferences_add: parsed(&a.placement_pref_add, Spread::parse)?,
        preferences_rm: parsed(&a.placement_pref_rm, Spread::parse)?,
        max_replicas_per_node: a.replicas_max_per_node,
        dns_add: a.dns_add,
        dns_rm: a.dns_rm,
        dns_search_add: a.dns_search_add,
        dns_search_rm: a.dns_search_rm,
        dns_option_add: a.dns_option_add,
        dns_option_rm: a.dns_option_rm,
        hostname: a.hostname,
        ..Default::default()
    };
    super::rollout::changes(&a.rollout, &mut u)?;
    Ok(u)
}

/// A task's state for `service ps`: `shutdown` tasks still running are `draining`.
fn task_state(t: &shoal_control::api::TaskInfo) -> String {
    use shoal_control::state::{DesiredState, TaskState};
    match (t.desired, t.state) {
        (DesiredState::Shutdown, TaskState::Shutdown) => "shutdown".into(),
        (DesiredState::Shutdown, _) => "draining".into(),
        (_, s) => s.as_str().into(),
    }
}

fn mode_text(s: &ServiceInfo) -> String {
    match s.spec.mode {
        ServiceMode::Replicated { .. } => "replicated".into(),
        ServiceMode::Global => "global".into(),
    }
}

fn replicas_text(s: &ServiceInfo) -> String {
    match s.spec.placement.max_replicas_per_node {
        Some(max) => format!("{}/{} (max {max} per node)", s.running, s.desired),
        None => format!("{}/{}", s.running, s.desired),
    }
}

/// `shoal service ...`.
pub async fn run(client: &ApiClient, cmd: ServiceCmd) -> anyhow::Result<()> {
    match cmd {
        ServiceCmd::Create(args) => {
            let spec = create_spec(*args)?;
            let s: ServiceInfo = client.post("/v1/services", &spec).await?;
            println!("{}", s.id);
        }
        ServiceCmd::Ls(f) => {
            let services: Vec<ServiceInfo> = client.get("/v1/services").await?;
            print(f.format, &services, |all| {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|s| {
                        vec![
                            s.id.chars().take(12).collect(),
                            s.spec.name.clone(),
                            mode_text(s),
                            replicas_text(s),
                            s.spec
                                .publish
                                .iter()
                                .map(|p| p.summary())
                                .collect::<Vec<_>>()
                                .join(", "),
                            s.vips
                                .iter()
                                .map(|(n, v)| format!("{n}={v}"))
                                .chain(s.vips6.iter().map(|(n, v)| format!("{n}={v}")))
                                .collect::<Vec<_>>()
                                .join(","),
                        ]
                    })
                    .collect();
                table::render(&["ID", "NAME", "MODE", "REPLICAS", "PORTS", "VIPS"], &rows)
            })?;
        }
        ServiceCmd::Ps { name, format } => {
            let s: ServiceInfo = client
                .get(&format!("/v1/services/{}", segment(&name)))
                .await?;
            print(format, &s.tasks, |tasks| {
                let rows: Vec<Vec<String>> = tasks
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.chars().take(12).collect(),
                            t.name.clone(),
                            t.node.clone(),
                            task_state(t),
                            t.health.map(|h| h.as_str()).unwrap_or("").to_string(),
                            t.restarts.to_string(),
                            t.addresses
                                .values()
                                .map(|a| a.to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                            t.message.clone(),
                        ]
                    })
                    .collect();
                table::render(
                    &[
                        "ID",
                        "NAME",
                        "NODE",
                        "STATE",
                        "HEALTH",
                        "RESTARTS",
                        "ADDRESSES",
                        "ERROR",
                    ],
                    &rows,
                )
            })?;
        }
        ServiceCmd::Inspect { name, format } => {
            let s: ServiceInfo = client
                .get(&format!("/v1/services/{}", segment(&name)))
                .await?;
            print(format, &s, |s| {
                let mut out = String::new();
                let mut line = |k: &str, v: String| out.push_str(&format!("{k:<12}{v}\n"));
                line("ID:", s.id.clone());
                line("Name:", s.spec.name.clone());
                line("Mode:", mode_text(s));
                line("Tasks:", format!("{} running of {}", s.running, s.desired));
                line("Networks:", s.spec.networks.join(", "));
                for (n, v) in &s.vips {
                    line("VIP:", format!("{v} on {n}"));
                }
                for (n, v) in &s.vips6 {
                    line("VIP:", format!("{v} on {n}"));
                }
                for p in &s.spec.publish {
                    line("Publish:", p.summary());
                }
                for (n, o) in &s.spec.network_options {
                    if !o.aliases.is_empty() {
                        line("Aliases:", format!("{} on {n}", o.aliases.join(", ")));
                    }
                    for (k, v) in &o.driver_opts {
                        line("Driver opt:", format!("{k}={v} on {n}"));
                    }
                }
                for c in &s.spec.placement.constraints {
                    line("Constraint:", c.to_string());
                }
                for p in &s.spec.placement.preferences {
                    line("Preference:", p.to_string());
                }
                if let Some(m) = s.spec.placement.max_replicas_per_node {
                    line("Per node:", format!("at most {m} tasks"));
                }
                for ns in &s.spec.dns.nameservers {
                    line("DNS:", ns.to_string());
                }
                if !s.spec.dns.search.is_empty() {
                    line("DNS search:", s.spec.dns.search.join(" "));
                }
                if !s.spec.dns.options.is_empty() {
                    line("DNS options:", s.spec.dns.options.join(" "));
                }
                if let Some(h) = &s.spec.hostname {
                    line("Hostname:", h.clone());
                }
                for (k, v) in &s.spec.labels {
                    line("Label:", format!("{k}={v}"));
                }
                if !s.spec.command.is_empty() {
                    line("Command:", s.spec.command.join(" "));
                    for (k, v) in super::rollout::inspect_lines(&s.spec) {
                        line(k, v);
                    }
                    line("Version:", s.version.to_string());
                }
                if let Some(u) = &s.update_status {
                    line(
                        "UpdateStatus:",
                        format!("{} ({})", u.state.as_str(), u.message),
                    );
                }
                out
            })?;
        }
        ServiceCmd::Scale { services } => {
            for item in &services {
                let (name, n) = item.split_once('=').context("expected NAME=REPLICAS")?;
                let replicas: u32 = n
                    .parse()
                    .with_context(|| format!("{item}: the replica count must be a number"))?;
                let update = ServiceUpdate {
                    replicas: Some(replicas),
                    ..Default::default()
                };
                let _: ServiceInfo = client
                    .post(&format!("/v1/services/{}/update", segment(name)), &update)
                    .await?;
                println!("{name} scaled to {replicas}");
            }
        }
        ServiceCmd::Update(args) => {
            let name = args.name.clone();
            let update = update_changes(*args)?;
            let _: ServiceInfo = client
                .post(&format!("/v1/services/{}/update", segment(&name)), &update)
                .await?;
            println!("{name}");
        }
        ServiceCmd::Rm { names } => {
            for n in &names {
                let _: serde_json::Value = client
                    .delete(&format!("/v1/services/{}", segment(n)))
                    .await?;
                println!("{n}");
            }
        }
    }
    Ok(())
}

fn who() -> String {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| "-".into());
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "-".into());
    format!(
        "service={} task={} slot={} node={} hostname={host}",
        var("SHOAL_SERVICE"),
        var("SHOAL_TASK_ID"),
        var("SHOAL_TASK_SLOT"),
        var("SHOAL_NODE")
    )
}

/// A TCP listener on `port`, IPv6 and IPv4 where the sandbox has IPv6 (an IPv6-only
/// network's tasks have nothing else), IPv4 alone otherwise.
async fn listen_tcp(port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(("::", port)).await {
        Ok(l) => Ok(l),
        Err(_) => tokio::net::TcpListener::bind(("0.0.0.0", port))
            .await
            .with_context(|| format!("cannot listen on TCP port {port}")),
    }
}

/// `shoal tool peer`: on TCP and UDP port `port` (IPv6 and IPv4 where the sandbox has
/// IPv6), answers each connection (and each
/// datagram) with `peer=IP:PORT` — the source address the task saw — and which task
/// answered.
async fn peer_echo(port: u16) -> anyhow::Result<()> {
    let tcp = listen_tcp(port).await?;
    let udp = match tokio::net::UdpSocket::bind(("::", port)).await {
        Ok(u) => u,
        Err(_) => tokio::net::UdpSocket::bind(("0.0.0.0", port))
            .await
            .with_context(|| format!("cannot listen on UDP port {port}"))?,
    };
    let task = who();
    // Dual-stack sockets see IPv4 peers as ::ffff:a.b.c.d: shown as plain IPv4.
    let answer = move |peer: std::net::SocketAddr| {
        let peer = std::net::SocketAddr::new(peer.ip().to_canonical(), peer.port());
        format!("peer={peer} {task}\n")
    };
    let tcp_answer = answer.clone();
    let tcp_loop = async move {
        loop {
            let (mut conn, peer) = tcp.accept().await?;
            let line = tcp_answer(peer);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = conn.write_all(line.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
        #[allow(unreachable_code)]
        anyhow::Ok(())
    };
    let udp_loop = async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (_, peer) = udp.recv_from(&mut buf).await?;
            let _ = udp.send_to(answer(peer).as_bytes(), peer).await;
        }
        #[allow(unreachable_code)]
        anyhow::Ok(())
    };
    tokio::try_join!(tcp_loop, udp_loop)?;
    Ok(())
}

/// `shoal tool ...`.
pub async fn tool(cmd: ToolCmd) -> anyhow::Result<()> {
    match cmd {
        ToolCmd::Http { port } => {
            let listener = listen_tcp(port).await?;
            let task = who();
            let app = axum::Router::new().fallback(
                move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
                    std::net::SocketAddr,
                >| {
                    let peer = std::net::SocketAddr::new(peer.ip().to_canonical(), peer.port());
                    let body = format!("{task} peer={peer}\n");
                    async move { body }
                },
            );
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            // On SIGTERM: stop accepting, finish the requests in flight, then exit.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    term.recv().await;
                })
                .await?;
            return Ok(());
        }
        ToolCmd::Load {
            url,
            host,
            duration,
            timeout,
            concurrency,
            requests,
            check,
            source,
        } => {
            let pace = super::load::Pace {
                duration,
                timeout,
                concurrency,
                requests,
            };
            return super::load::main(&url, host.as_deref(), source, pace, check).await;
        }
        ToolCmd::Peer { port } => peer_echo(port).await?,
        ToolCmd::UdpEcho { port } => {
            let socket = tokio::net::UdpSocket::bind(("0.0.0.0", port))
                .await
                .with_context(|| format!("cannot listen on UDP port {port}"))?;
            let prefix = format!("{} ", who());
            let mut buf = vec![0u8; 65_536];
            loop {
                let (n, from) = socket.recv_from(&mut buf).await?;
                let mut reply = prefix.clone().into_bytes();
                reply.extend_from_slice(&buf[..n]);
                if socket.send_to(&reply, from).await.is_err() {
                    continue;
                }
            }
        }
    }
    #[allow(unreachable_code)]
    {
        bail!("the server stopped")
    }
}
