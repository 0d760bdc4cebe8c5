//! `shoal lab ...` and `shoal demo`.

use anyhow::bail;
use nix::sys::signal::Signal;
use shoal_control::api::{AttachRequest, EndpointInfo, NetworkInfo, NodeInfo, ServiceInfo};
use shoal_control::state::{
    EndpointMode, NetworkSpec, PortSpec, Protocol, PublishMode, ServiceMode, ServiceSpec,
};

use super::args::{Format, LabCmd};
use super::{print, table};
use crate::lab::{self, LabPaths};

/// Runs a lab command; returns the process exit code.
pub async fn run(cmd: LabCmd) -> anyhow::Result<i32> {
    match cmd {
        LabCmd::Up {
            nodes,
            managers,
            dns_upstream,
            docker,
            docker_arg,
            podman,
            agent_arg,
            data_tmpfs,
            underlay,
            lab: l,
        } => {
            let options = lab::LabOptions {
                dns_upstream,
                docker: docker || !docker_arg.is_empty(),
                docker_args: docker_arg,
                podman,
                agent_args: agent_arg,
                data_tmpfs,
                underlay,
            };
            let lab = lab::up_with(&l.name, nodes, managers, &options).await?;
            println!(
                "Lab {} is up: {nodes} nodes ({managers} managers) and a client host.",
                lab.name
            );
            print!("{}", hosts_table(&lab));
            println!(
                "\nTry: {} lab exec --name {} n1 -- shoal node ls",
                super::shoal_command(),
                lab.name
            );
            if lab.podman {
                println!(
                    "     {} lab exec --name {} n1 -- podman ps   # each node host has a podman of its own",
                    super::shoal_command(),
                    lab.name
                );
            }
        }
        LabCmd::Status { lab: l, format } => {
            let lab = lab::load(&l.name)?;
            let faults = lab::faults::load(&LabPaths::new(&lab.name))?;
            print(format, &Status { lab: &lab, faults }, status_text)?;
        }
        LabCmd::Partition { lab: l, groups } => {
            let lab = lab::load(&l.name)?;
            let groups = lab::faults::partition(&lab, &groups)?;
            let g: Vec<String> = groups.iter().map(|g| g.join(",")).collect();
            println!(
                "Partitioned lab {}: {} (hosts in no group reach everyone).",
                lab.name,
                g.join(" / ")
            );
        }
        LabCmd::Heal { lab: l } => {
            let lab = lab::load(&l.name)?;
            let undone = lab::faults::heal(&lab).await?;
            if undone.is_empty() {
                println!(
                    "Lab {} had no faults recorded; network rules cleared anyway.",
                    lab.name
                );
            } else {
                println!("Healed lab {}: undid {}.", lab.name, undone.join("; "));
            }
        }
        LabCmd::Pause { lab: l, host } => {
            let lab = lab::load(&l.name)?;
            let pid = lab::faults::pause(&lab, &host)?;
            println!("Paused the agent on {host} (pid {pid}, SIGSTOP).");
        }
        LabCmd::Resume { lab: l, host } => {
            let lab = lab::load(&l.name)?;
            lab::faults::resume(&lab, &host)?;
            println!("Resumed the agent on {host}.");
        }
        LabCmd::Slow {
            lab: l,
            host,
            delay,
            loss,
            rate,
        } => {
            let lab = lab::load(&l.name)?;
            let link = lab::faults::Link {
                delay_ms: delay,
                loss_pct: loss,
                rate,
            };
            lab::faults::slow(&lab, &host, link.clone())?;
            let fault = lab::faults::Fault::Slow { host, link };
            println!("{}.", capitalised(&fault.describe()));
        }
        LabCmd::Fill { lab: l, host } => {
            let lab = lab::load(&l.name)?;
            let bytes = lab::faults::fill(&lab, &host)?;
            println!("Filled the data directory of {host}: {bytes} bytes until it was full.");
        }
        LabCmd::Clock { lab: l, host, jump } => {
            let lab = lab::load(&l.name)?;
            let secs = lab::faults::plan::parse_jump(&jump)?;
            lab::faults::clock(&lab, &host, secs).await?;
            println!(
                "Restarted the agent on {host} with its monotonic and boot clocks {secs:+}s (the wall clock is unchanged)."
            );
        }
        LabCmd::Exec {
            lab: l,
            host,
            command,
        } => {
            let lab = lab::load(&l.name)?;
            return lab::exec(&lab, &host, &command);
        }
        LabCmd::Kill {
            lab: l,
            host,
            signal,
            dockerd,
        } => {
            let lab = lab::load(&l.name)?;
            let signal = if signal == "KILL" {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            let paths = LabPaths::new(&lab.name);
            if dockerd {
                lab::docker::stop(&paths, &lab.host(&host)?.name, signal).await?;
                println!("Stopped dockerd on {host}.");
            } else {
                lab::faults::resume_if_paused(&paths, &host)?;
                lab::stop_agent(&paths, lab.host(&host)?, signal).await?;
                println!("Stopped the agent on {host}.");
            }
        }
        LabCmd::Start {
            lab: l,
            host,
            dockerd,
        } => {
            let lab = lab::load(&l.name)?;
            let h = lab.host(&host)?;
            if h.role == "client" {
                bail!("{host} runs no agent");
            }
            let paths = LabPaths::new(&lab.name);
            if dockerd {
                if !lab.docker {
                    bail!("lab {} has no dockerds (lab up --docker)", lab.name);
                }
                lab::docker::start(&paths, h, &lab).await?;
                println!("Started dockerd on {host}.");
            } else {
                lab::start_agent(&paths, h, &lab).await?;
                println!("Started the agent on {host}.");
            }
        }
        LabCmd::Down { lab: l } => {
            lab::validate_name(&l.name)?;
            let problems = lab::down(&l.name);
            if !problems.is_empty() {
                bail!(
                    "lab {} was not removed completely:\n  {}",
                    l.name,
                    problems.join("\n  ")
                );
            }
            println!("Lab {} is down.", l.name);
        }
        LabCmd::Jepsen {
            lab: l,
            seed,
            duration,
            clients_per_manager,
            fault_every,
            objects,
            op_timeout,
            format,
        } => {
            let lab = lab::load(&l.name)?;
            if fault_every.is_zero() || duration.is_zero() || op_timeout.is_zero() {
                bail!("--duration, --fault-every and --op-timeout must be more than 0");
            }
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
            eprintln!("lab jepsen: seed {seed}");
            let options = lab::jepsen::Options {
                seed,
                duration,
                clients_per_manager: clients_per_manager as usize,
                fault_every,
                objects: objects as usize,
                op_timeout,
            };
            let report = lab::jepsen::run(&lab, &options).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Format::Table => print_jepsen(&report),
            }
            return Ok(if report.passed() { 0 } else { 1 });
        }
    }
    Ok(0)
}

fn print_jepsen(r: &lab::jepsen::Report) {
    println!("seed:          {}", r.seed);
    println!(
        "operations:    {} ({} answered, {} unknown; {} without effect left out)",
        r.operations, r.known, r.unknown, r.without_effect
    );
    println!("faults:        {}", r.faults.len());
    for (at, f) in &r.faults {
        println!("  {:>7.1}s  {f}", *at as f64 / 1000.0);
    }
    let verdict = if r.linearizable {
        "linearizable"
    } else {
        "NOT linearizable"
    };
    println!("checker:       {verdict} (checked in {} ms)", r.check_ms);
    if let Some(v) = &r.violation {
        println!("  {v}");
    }
    println!("converged:     {}", if r.converged { "yes" } else { "NO" });
    println!("duplicates:    {}", r.duplicate_addresses.len());
    for d in &r.duplicate_addresses {
        println!("  {d}");
    }
    println!(
        "kernel:        {} stale objects",
        r.stale_kernel_objects.len()
    );
    for k in &r.stale_kernel_objects {
        println!("  {k}");
    }
    println!(
        "verdict:       {}",
        if r.passed() { "PASS" } else { "FAIL" }
    );
}

/// `lab status`: the hosts and the faults in force.
#[derive(serde::Serialize)]
struct Status<'a> {
    #[serde(flatten)]
    lab: &'a lab::Lab,
    faults: Vec<lab::faults::Fault>,
}

fn status_text(status: &Status) -> String {
    let mut out = hosts_table(status.lab);
    if !status.faults.is_empty() {
        out.push_str("\nFaults in force (`lab heal` undoes them):\n");
        for f in &status.faults {
            out.push_str(&format!("  {}\n", f.describe()));
        }
    }
    out
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn hosts_table(lab: &lab::Lab) -> String {
    let paths = LabPaths::new(&lab.name);
    let rows: Vec<Vec<String>> = lab
        .hosts
        .iter()
        .map(|h| {
            let agent = if h.role == "client" {
                "-".to_string()
            } else {
                match lab::running_pid(&paths, h) {
                    Some(pid) => format!("running (pid {pid})"),
                    None => "stopped".into(),
                }
            };
            vec![
                h.name.clone(),
                h.role.clone(),
                h.addrs()
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                h.namespace.clone(),
                agent,
                h.socket.display().to_string(),
            ]
        })
        .collect();
    table::render(
        &["HOST", "ROLE", "UNDERLAY", "NAMESPACE", "AGENT", "SOCKET"],
        &rows,
    )
}

/// `shoal demo`: a lab with three managers and a worker, an attachable network with a
/// sandbox on every node, and what to try on it.
pub async fn demo(name: &str) -> anyhow::Result<()> {
    let lab = lab::up(name, 3, 3).await?;
    let sandboxes = match demo_workload(&lab).await {
        Ok(s) => s,
        Err(e) => {
            lab::down(name);
            return Err(e.context("the demo workload could not be set up; the lab was removed"));
        }
    };
    let mut nodes: Vec<NodeInfo> = lab.client("n1")?.get("/v1/nodes").await?;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    println!(
        "shoal demo: lab {name:?} is up: 3 nodes in network namespaces on one underlay bridge,"
    );
    println!("all three Raft managers, plus a `client` host outside the cluster.\n");
    print(Format::Table, &nodes, |n| super::node_rows(n))?;
    println!("\nThe attachable overlay network `demo` (kernel VXLAN, static FDB, no flooding) has a sandbox on every node:");
    let rows: Vec<Vec<String>> = sandboxes
        .iter()
        .map(|(h, ns, a)| vec![h.clone(), ns.clone(), a.clone()])
        .collect();
    print!(
        "{}",
        table::render(&["NODE", "SANDBOX (netns)", "ADDRESS"], &rows)
    );
    let services: Vec<ServiceInfo> = lab.client("n1")?.get("/v1/services").await?;
    println!(
        "\nServices on `demo` (tasks are `shoal tool http` processes in sandboxes of their own):"
    );
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let how = if s.spec.name == "web" {
                "published 8080:80 on every node (routing mesh)".to_string()
            } else {
                format!("L7: Host(`{}.demo`) on every node's port 80", s.spec.name)
            };
            vec![
                s.spec.name.clone(),
                format!("{}/{}", s.running, s.desired),
                s.vips
                    .get("demo")
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                how,
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["SERVICE", "RUNNING", "VIP", "REACHED"], &rows)
    );
    let client = lab::topology::ns_name(name, "client");
    println!("\nTry:");
    for n in &nodes {
        println!(
            "  ip netns exec {client} curl -s http://{}:8080/   # web through {}",
            n.addr, n.name
        );
    }
    if let Some(n) = nodes.first() {
        println!(
            "  ip netns exec {client} curl -s -H 'Host: shop.demo' http://{}/   # the ingress picks shop by host",
            n.addr
        );
        println!(
            "  ip netns exec {client} curl -s -H 'Host: blog.demo' http://{}/   # ... and blog",
            n.addr
        );
    }
    if let (Some(first), Some(last)) = (sandboxes.first(), sandboxes.last()) {
        let target = last.2.split('/').next().unwrap_or_default();
        println!(
            "  ip netns exec {} curl -s http://web/          # by name: service DNS gives the VIP",
            first.1
        );
        println!(
            "  ip netns exec {} ping -c 3 {target}   # {} to {} across the overlay",
            first.1, first.0, last.0
        );
    }
    // `lab exec` runs this binary for `shoal` inside a host, so only the outer command
    // needs its path when `shoal` is not on PATH.
    let shoal = super::shoal_command();
    for (args, what) in [
        (
            format!("lab exec --name {name} n1 -- shoal service ps web"),
            "",
        ),
        (
            format!("lab exec --name {name} n2 -- shoal route ls"),
            "L7 routes with backends and health",
        ),
        (
            format!("lab exec --name {name} n1 -- shoal service scale web=5"),
            "",
        ),
        (
            format!("lab status --name {name}"),
            "hosts, addresses, sockets",
        ),
        (
            format!("lab exec --name {name} n1 -- shoal status"),
            "Raft state and networks of a node",
        ),
        (
            format!("lab kill --name {name} --signal KILL n1"),
            "crash a manager, then:",
        ),
        (
            format!("lab exec --name {name} n2 -- shoal node ls"),
            "  a new leader within seconds",
        ),
        (
            format!("lab start --name {name} n1"),
            "it rejoins and catches up",
        ),
        (format!("lab down --name {name}"), "remove everything"),
    ] {
        let line = format!("{shoal} {args}");
        if what.is_empty() {
            println!("  {line}");
        } else {
            println!("  {line:<52} # {what}");
        }
    }
    if shoal != "shoal" {
        println!(
            "  (`shoal` is not on PATH; to install it: install -m 0755 {shoal} /usr/local/bin/shoal)"
        );
    }
    Ok(())
}

/// The demo's services: `web` published on 8080, `shop` and `blog` behind the ingress;
/// returns once every task runs.
async fn demo_services(lab: &lab::Lab) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let http = |port: u16| {
        vec![
            exe.clone(),
            "tool".into(),
            "http".into(),
            "--port".into(),
            port.to_string(),
        ]
    };
    let mut specs = vec![ServiceSpec {
        name: "web".into(),
        networks: vec!["demo".into()],
        mode: ServiceMode::Replicated { replicas: 3 },
        publish: vec![PortSpec {
            published: 8080,
            target: 80,
            protocol: Protocol::Tcp,
            mode: PublishMode::Ingress,
            src: Default::default(),
        }],
        endpoint_mode: EndpointMode::Vip,
        labels: Default::default(),
        command: http(80),
        ..Default::default()
    }];
    for (svc, replicas) in [("shop", 2), ("blog", 1)] {
        specs.push(ServiceSpec {
            name: svc.into(),
            networks: vec!["demo".into()],
            mode: ServiceMode::Replicated { replicas },
            publish: Vec::new(),
            endpoint_mode: EndpointMode::Vip,
            labels: [(
                format!("shoal.http.routers.{svc}.rule"),
                format!("Host(`{svc}.demo`)"),
            )]
            .into(),
            command: http(80),
            ..Default::default()
        });
    }
    let client = lab.client("n1")?;
    for spec in &specs {
        let _: ServiceInfo = client.post("/v1/services", spec).await?;
    }
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let services: Vec<ServiceInfo> = client.get("/v1/services").await?;
        if services.iter().all(|s| s.running == s.desired) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "the demo services did not start within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The demo's network and one named sandbox per node: (node, namespace, address).
async fn demo_workload(lab: &lab::Lab) -> anyhow::Result<Vec<(String, String, String)>> {
    let spec = NetworkSpec {
        name: "demo".into(),
        attachable: true,
        ..Default::default()
    };
    let _: NetworkInfo = lab.client("n1")?.post("/v1/networks", &spec).await?;
    let mut sandboxes = Vec::new();
    for (i, host) in lab.nodes().enumerate() {
        let ns = lab::topology::ns_name(&lab.name, &format!("sb{}", i + 1));
        shoal_dataplane::netns::create(&ns)?;
        let req = AttachRequest {
            network: "demo".into(),
            netns: ns.clone(),
            name: Some(format!("sb{}", i + 1)),
            ..Default::default()
        };
        let e: EndpointInfo = lab.client(&host.name)?.post("/v1/attach", &req).await?;
        sandboxes.push((host.name.clone(), ns, e.address.unwrap_or_default()));
    }
    demo_services(lab).await?;
    Ok(sandboxes)
}
