//! Command handlers: turn parsed arguments into API calls and print the answers.

pub mod args;
pub mod lab;
mod load;
pub mod network;
pub mod proxy;
mod rollout;
pub mod service;
pub mod status;
mod table;

use anyhow::Context;
use serde::Serialize;
use shoal_control::api::{
    InitRequest, InitResponse, JoinCommand, JoinResult, JoinTokenResponse, LeaderResponse,
    LeaveRequest, NodeInfo, NodeUpdate,
};
use shoal_control::state::{Availability, Role};

use crate::client::{segment, ApiClient};
use args::{ClusterCmd, Format, NodeCmd};

/// Prints `value` as JSON or, for tables, via `table`.
pub fn print<T: Serialize>(
    format: Format,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Table => print!("{}", table(value)),
    }
    Ok(())
}

/// `shoal cluster ...`.
pub async fn cluster(client: &ApiClient, cmd: ClusterCmd) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Init {
            advertise_addr,
            default_addr_pool,
            default_addr_pool_mask_length,
        } => {
            let req = InitRequest {
                advertise_addr,
                default_addr_pools: default_addr_pool,
                default_addr_pool_mask_length,
            };
            let r: InitResponse = client.post("/v1/cluster/init", &req).await?;
            println!(
                "Cluster {} initialised; this node ({}) is its first manager.\n",
                r.cluster_id, r.node_id
            );
            println!("To add a worker to this cluster, run on it:\n");
            println!(
                "    shoal cluster join --token {} {}\n",
                r.worker_token, r.manager_addr
            );
            println!("To add a manager, run `shoal cluster join-token manager` and follow the instructions.");
        }
        ClusterCmd::Join {
            token,
            advertise_addr,
            role,
            manager,
        } => {
            let role = role.map(|r| Role::parse(&r)).transpose()?;
            let cmd = JoinCommand {
                token,
                remote: manager,
                advertise_addr,
                role,
            };
            let r: JoinResult = client.post("/v1/cluster/join", &cmd).await?;
            println!(
                "This node joined cluster {} as a {} (node {}).",
                r.cluster_id,
                r.role.as_str(),
                r.node_id
            );
        }
        ClusterCmd::JoinToken {
            role,
            quiet,
            rotate,
        } => {
            let path = format!("/v1/cluster/join-token/{}", segment(&role));
            let r: JoinTokenResponse = if rotate {
                client
                    .post(&format!("{path}/rotate"), &serde_json::json!({}))
                    .await?
            } else {
                client.get(&path).await?
            };
            if quiet {
                println!("{}", r.token);
            } else {
                if rotate {
                    println!(
                        "Rotated the {} join token; the old one no longer works.",
                        r.role.as_str()
                    );
                }
                println!("To add a {} to this cluster, run on it:\n", r.role.as_str());
                println!(
                    "    shoal cluster join --token {} {}",
                    r.token, r.manager_addr
                );
            }
        }
        ClusterCmd::RotateKeys => {
            let _: LeaderResponse = client
                .post("/v1/cluster/rotate-keys", &serde_json::json!({}))
                .await?;
            println!(
                "Key rotation started: every node makes a new WireGuard key and announces it."
            );
        }
        ClusterCmd::Leave { force } => {
            let _: serde_json::Value = client
                .post("/v1/cluster/leave", &LeaveRequest { force })
                .await?;
            println!("This node left the cluster.");
        }
    }
    Ok(())
}

pub(crate) fn node_rows(nodes: &[NodeInfo]) -> String {
    let mut nodes = nodes.to_vec();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                format!("{}{}", n.id, if n.is_self { " *" } else { "" }),
                n.name.clone(),
                n.status.as_str().to_string(),
                n.availability.as_str().to_string(),
                n.manager_status.clone().unwrap_or_default(),
                n.addr.to_string(),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "HOSTNAME",
            "STATUS",
            "AVAILABILITY",
            "MANAGER STATUS",
            "ADDRESS",
        ],
        &rows,
    )
}

fn since(ms: u64) -> String {
    let now = shoal_control::member::now_ms();
    let s = now.saturating_sub(ms) / 1000;
    match s {
        0..=59 => format!("{s} seconds ago"),
        60..=3599 => format!("{} minutes ago", s / 60),
        _ => format!("{} hours ago", s / 3600),
    }
}

/// `shoal node ...`.
pub async fn node(client: &ApiClient, cmd: NodeCmd) -> anyhow::Result<()> {
    match cmd {
        NodeCmd::Ls(f) => {
            let nodes: Vec<NodeInfo> = client.get("/v1/nodes").await?;
            print(f.format, &nodes, |n| node_rows(n))?;
        }
        NodeCmd::Inspect { node, format } => {
            let n: NodeInfo = client.get(&format!("/v1/nodes/{}", segment(&node))).await?;
            print(format, &n, |n| {
                let mut out = String::new();
                let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
                line("ID:", n.id.to_string());
                line("Hostname:", n.name.clone());
                line("Role:", n.role.as_str().to_string());
                line(
                    "Status:",
                    format!("{} (since {})", n.status.as_str(), since(n.status_since_ms)),
                );
                line("Availability:", n.availability.as_str().to_string());
                if let Some(ms) = &n.manager_status {
                    line("Manager status:", ms.clone());
                }
                line("Address:", n.addr.to_string());
                for (k, v) in &n.labels {
                    line("Label:", format!("{k}={v}"));
                }
                line("Control:", n.control_addr.to_string());
                line("Joined:", since(n.joined_at_ms));
                out
            })?;
        }
        NodeCmd::Update {
            availability,
            label_add,
            label_rm,
            node,
        } => {
            let availability = availability.map(|a| Availability::parse(&a)).transpose()?;
            if availability.is_none() && label_add.is_empty() && label_rm.is_empty() {
                anyhow::bail!("nothing to update: give --availability, --label-add or --label-rm");
            }
            let update = NodeUpdate {
                availability,
                labels_add: key_values(&label_add, "--label-add")?,
                labels_rm: label_rm,
            };
            let _: LeaderResponse = client
                .post(&format!("/v1/nodes/{}/update", segment(&node)), &update)
                .await?;
            println!("{node}");
        }
        NodeCmd::Promote { nodes } => {
            each(client, &nodes, "promote", "promoted to manager").await?
        }
        NodeCmd::Demote { nodes } => each(client, &nodes, "demote", "demoted to worker").await?,
        NodeCmd::Rm { force, nodes } => {
            for n in &nodes {
                let _: LeaderResponse = client
                    .delete(&format!("/v1/nodes/{}?force={force}", segment(n)))
                    .await
                    .with_context(|| format!("node rm {n}"))?;
                println!("{n}");
            }
        }
    }
    Ok(())
}

/// Parses `KEY=VALUE` arguments of `flag`.
pub fn key_values(
    items: &[String],
    flag: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("{flag} {kv:?}: expected KEY=VALUE"))
        })
        .collect()
}

async fn each(client: &ApiClient, nodes: &[String], verb: &str, done: &str) -> anyhow::Result<()> {
    for n in nodes {
        let _: LeaderResponse = client
            .post(
                &format!("/v1/nodes/{}/{verb}", segment(n)),
                &serde_json::json!({}),
            )
            .await
            .with_context(|| format!("node {verb} {n}"))?;
        println!("Node {n} {done}.");
    }
    Ok(())
}

/// `shoal route ls`.
pub async fn routes(client: &ApiClient, format: Format) -> anyhow::Result<()> {
    let routes: Vec<serde_json::Value> = client.get("/v1/routes").await?;
    print(format, &routes, |routes| {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        let rows: Vec<Vec<String>> = routes
            .iter()
            .map(|r| {
                let backends: Vec<String> = r["backends"]
                    .as_array()
                    .map(|bs| {
                        bs.iter()
                            .map(|b| format!("{} {}", s(&b["address"]), s(&b["health"])))
                            .collect()
                    })
                    .unwrap_or_default();
                let entrypoints: Vec<String> = r["entrypoints"]
                    .as_array()
                    .map(|e| e.iter().map(s).collect())
                    .unwrap_or_default();
                vec![
                    s(&r["router"]),
                    s(&r["rule"]),
                    r["priority"].to_string(),
                    if entrypoints.is_empty() {
                        "all".into()
                    } else {
                        entrypoints.join(",")
                    },
                    s(&r["service"]),
                    if backends.is_empty() {
                        "none".into()
                    } else {
                        backends.join(", ")
                    },
                ]
            })
            .collect();
        table::render(
            &[
                "ROUTER",
                "RULE",
                "PRIORITY",
                "ENTRYPOINTS",
                "SERVICE",
                "BACKENDS",
            ],
            &rows,
        )
    })
}

/// Whether `shoal` on PATH is this very binary, so that commands printed for the user
/// can say `shoal`.
pub fn shoal_on_path() -> bool {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return false;
    };
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::canonicalize(dir.join("shoal")).is_ok_and(|found| found == me))
    })
}

/// How to call this binary in commands printed for the user: `shoal` when that is on
/// PATH, its full path otherwise.
pub fn shoal_command() -> String {
    if shoal_on_path() {
        return "shoal".into();
    }
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "shoal".into())
}

/// `shoal docker-plugin ...`.
pub async fn docker_plugin(host: Option<&str>, cmd: args::DockerPluginCmd) -> anyhow::Result<()> {
    let agent = crate::client::ApiClient::new(host)?.socket().to_path_buf();
    match cmd {
        args::DockerPluginCmd::Serve { socket } => {
            crate::agent::init_logging(args::LogFormat::Text);
            crate::docker::plugin::serve(&socket, &agent).await
        }
        args::DockerPluginCmd::Install {
            name,
            docker_host,
            data_dir,
        } => {
            crate::docker::plugin::install(&name, &data_dir, &agent, docker_host.as_deref())?;
            println!("Docker plugin {name} is enabled. Make a network with:");
            println!("  docker network create -d {name} --ipam-driver {name} [--subnet CIDR] [--opt encrypted] NAME");
            Ok(())
        }
    }
}

/// `shoal cni ...`.
pub async fn cni(client: &crate::client::ApiClient, cmd: args::CniCmd) -> anyhow::Result<()> {
    match cmd {
        args::CniCmd::Install {
            network,
            bin_dir,
            conf_dir,
            portmap,
        } => {
            let path = format!("/v1/networks/{}", crate::client::segment(&network));
            let _: shoal_control::api::NetworkInfo = client.get(&path).await.map_err(|e| {
                anyhow::anyhow!("shoal network {network:?}: {e} (make it with `shoal network create --attachable {network}`)")
            })?;
            let installed = crate::cni::install::install(&crate::cni::install::Install {
                network: network.clone(),
                socket: client.socket().to_path_buf(),
                bin_dir,
                conf_dir,
                portmap,
            })?;
            println!("CNI plugin: {}", installed.plugin.display());
            println!("Network config: {}", installed.conflist.display());
            println!("Try: podman run --network {network} ...");
            Ok(())
        }
    }
}
