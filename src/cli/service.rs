//! `shoal service ...` and `shoal tool ...`.

use anyhow::{bail, Context};
use shoal_control::api::{ServiceInfo, ServiceUpdate};
use shoal_control::state::{EndpointMode, PortSpec, ServiceMode, ServiceSpec};

use super::args::{ServiceCmd, ToolCmd};
use super::{key_values, print, table};
use crate::client::{segment, ApiClient};

fn ports(items: &[String]) -> anyhow::Result<Vec<PortSpec>> {
    items
        .iter()
        .map(|p| PortSpec::parse(p).map_err(anyhow::Error::msg))
        .collect()
}

fn mode_text(s: &ServiceInfo) -> String {
    match s.spec.mode {
        ServiceMode::Replicated { .. } => "replicated".into(),
        ServiceMode::Global => "global".into(),
    }
}

/// `shoal service ...`.
pub async fn run(client: &ApiClient, cmd: ServiceCmd) -> anyhow::Result<()> {
    match cmd {
        ServiceCmd::Create {
            name,
            network,
            replicas,
            mode,
            publish,
            endpoint_mode,
            label,
            command,
        } => {
            let mode = match mode.as_deref() {
                Some("global") => ServiceMode::Global,
                _ => ServiceMode::Replicated {
                    replicas: replicas.unwrap_or(1),
                },
            };
            let endpoint_mode = match endpoint_mode.as_deref() {
                Some("dnsrr") => EndpointMode::Dnsrr,
                _ => EndpointMode::Vip,
            };
            let spec = ServiceSpec {
                name,
                networks: network,
                mode,
                publish: ports(&publish)?,
                endpoint_mode,
                labels: key_values(&label, "--label")?,
                command,
            };
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
                            format!("{}/{}", s.running, s.desired),
                            s.spec
                                .publish
                                .iter()
                                .map(|p| p.to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                            s.vips
                                .iter()
                                .map(|(n, v)| format!("{n}={v}"))
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
                            t.state.as_str().to_string(),
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
                for p in &s.spec.publish {
                    line("Publish:", p.to_string());
                }
                for (k, v) in &s.spec.labels {
                    line("Label:", format!("{k}={v}"));
                }
                if !s.spec.command.is_empty() {
                    line("Command:", s.spec.command.join(" "));
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
        ServiceCmd::Update {
            label_add,
            label_rm,
            publish_add,
            publish_rm,
            replicas,
            name,
        } => {
            let update = ServiceUpdate {
                replicas,
                labels_add: key_values(&label_add, "--label-add")?,
                labels_rm: label_rm,
                publish_add: ports(&publish_add)?,
                publish_rm,
            };
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
    format!(
        "service={} task={} slot={} node={}",
        var("SHOAL_SERVICE"),
        var("SHOAL_TASK_ID"),
        var("SHOAL_TASK_SLOT"),
        var("SHOAL_NODE")
    )
}

/// `shoal tool ...`.
pub async fn tool(cmd: ToolCmd) -> anyhow::Result<()> {
    match cmd {
        ToolCmd::Http { port } => {
            let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
                .await
                .with_context(|| format!("cannot listen on port {port}"))?;
            let body = format!("{}\n", who());
            let app = axum::Router::new().fallback(move || {
                let body = body.clone();
                async move { body }
            });
            axum::serve(listener, app).await?;
        }
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
