//! `shoal network ...`, `shoal attach`, `shoal detach`.

use anyhow::{bail, Context};
use shoal_control::api::{AttachRequest, DetachRequest, EndpointInfo, NetworkInfo};
use shoal_control::state::NetworkSpec;

use crate::options::DriverOptions;

use super::args::{AttachArgs, DetachArgs, NetworkCmd};
use super::{key_values, print, table};
use crate::client::{segment, ApiClient};

fn parse<T: std::str::FromStr>(flag: &str, v: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    v.parse::<T>()
        .map_err(|e| anyhow::anyhow!("{flag} {v:?}: {e}"))
}

/// Builds the spec of `network create` from its flags, refusing what it cannot honour.
#[allow(clippy::too_many_arguments)]
fn spec(
    driver: &str,
    subnet: Option<String>,
    gateway: Option<String>,
    ip_range: Option<String>,
    aux_address: &[String],
    attachable: bool,
    internal: bool,
    opt: &[String],
    label: &[String],
    name: String,
) -> anyhow::Result<NetworkSpec> {
    if driver != "overlay" {
        bail!(
            "driver {driver:?} is not supported: shoal networks are overlay networks (-d overlay)"
        );
    }
    let mut spec = NetworkSpec {
        name,
        attachable,
        internal,
        ..Default::default()
    };
    spec.subnet = subnet.map(|s| parse("--subnet", &s)).transpose()?;
    spec.gateway = gateway.map(|s| parse("--gateway", &s)).transpose()?;
    spec.ip_range = ip_range.map(|s| parse("--ip-range", &s)).transpose()?;
    for (k, v) in key_values(aux_address, "--aux-address")? {
        spec.aux_addresses
            .insert(k.clone(), parse(&format!("--aux-address {k}"), &v)?);
    }
    let options = DriverOptions::parse(opt)?;
    spec.encrypted = options.encrypted;
    spec.mtu = options.mtu();
    spec.vni = options.vni;
    spec.labels = key_values(label, "--label")?;
    Ok(spec)
}

fn endpoint_table(eps: &[EndpointInfo]) -> String {
    let rows: Vec<Vec<String>> = eps
        .iter()
        .map(|e| {
            vec![
                e.id.clone(),
                e.node.clone(),
                e.sandbox.clone(),
                e.ifname.clone(),
                e.address.clone(),
                e.mac.clone(),
                e.name.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::render(
        &[
            "ENDPOINT", "NODE", "SANDBOX", "IF", "ADDRESS", "MAC", "NAME",
        ],
        &rows,
    )
}

/// `shoal network ...`.
pub async fn run(client: &ApiClient, cmd: NetworkCmd) -> anyhow::Result<()> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            ip_range,
            aux_address,
            attachable,
            internal,
            opt,
            label,
            name,
        } => {
            let spec = spec(
                &driver,
                subnet,
                gateway,
                ip_range,
                &aux_address,
                attachable,
                internal,
                &opt,
                &label,
                name,
            )?;
            let n: NetworkInfo = client.post("/v1/networks", &spec).await?;
            println!("{}", n.id);
        }
        NetworkCmd::Ls(f) => {
            let nets: Vec<NetworkInfo> = client.get("/v1/networks").await?;
            print(f.format, &nets, |nets| {
                let rows: Vec<Vec<String>> = nets
                    .iter()
                    .map(|n| {
                        let mut flags = Vec::new();
                        if n.attachable {
                            flags.push("attachable");
                        }
                        if n.internal {
                            flags.push("internal");
                        }
                        if n.encrypted {
                            flags.push("encrypted");
                        }
                        vec![
                            n.id.chars().take(12).collect(),
                            n.name.clone(),
                            n.driver.clone(),
                            n.subnet.clone(),
                            n.vni.to_string(),
                            n.endpoints.len().to_string(),
                            flags.join(","),
                        ]
                    })
                    .collect();
                table::render(
                    &[
                        "NETWORK ID",
                        "NAME",
                        "DRIVER",
                        "SUBNET",
                        "VNI",
                        "ENDPOINTS",
                        "OPTIONS",
                    ],
                    &rows,
                )
            })?;
        }
        NetworkCmd::Inspect { network, format } => {
            let n: NetworkInfo = client
                .get(&format!("/v1/networks/{}", segment(&network)))
                .await?;
            print(format, &n, |n| {
                let mut out = String::new();
                let mut line = |k: &str, v: String| out.push_str(&format!("{k:<14}{v}\n"));
                line("ID:", n.id.clone());
                line("Name:", n.name.clone());
                line("VNI:", n.vni.to_string());
                line("Subnet:", n.subnet.clone());
                line("Gateway:", n.gateway.to_string());
                line("IP range:", n.ip_range.clone());
                for (k, v) in &n.aux_addresses {
                    line("Aux address:", format!("{k}={v}"));
                }
                line("MTU:", n.mtu.to_string());
                line("Attachable:", n.attachable.to_string());
                line("Internal:", n.internal.to_string());
                line(
                    "Addresses:",
                    format!("{} in use of {}", n.in_use, n.capacity),
                );
                for (k, v) in &n.labels {
                    line("Label:", format!("{k}={v}"));
                }
                out.push('\n');
                out.push_str(&endpoint_table(&n.endpoints));
                out
            })?;
        }
        NetworkCmd::Rm { networks } => {
            for n in &networks {
                let _: serde_json::Value = client
                    .delete(&format!("/v1/networks/{}", segment(n)))
                    .await
                    .with_context(|| format!("network rm {n}"))?;
                println!("{n}");
            }
        }
    }
    Ok(())
}

/// `shoal attach`.
pub async fn attach(client: &ApiClient, a: AttachArgs) -> anyhow::Result<()> {
    let req = AttachRequest {
        network: a.network,
        netns: a.netns,
        name: a.name,
        aliases: a.alias,
        ip: a.ip.map(|ip| parse("--ip", &ip)).transpose()?,
        service: a.service,
        ifname: a.ifname,
        mac: a.mac,
        ..Default::default()
    };
    let e: EndpointInfo = client.post("/v1/attach", &req).await?;
    print(a.format, &e, |e| {
        [
            ("endpoint", e.id.clone()),
            ("interface", e.ifname.clone()),
            ("address", e.address.clone()),
            ("mac", e.mac.clone()),
            ("gateway", e.gateway.to_string()),
            ("dns", e.dns.to_string()),
        ]
        .iter()
        .map(|(k, v)| format!("{:<11}{v}\n", format!("{k}:")))
        .collect()
    })
}

/// `shoal detach`.
pub async fn detach(client: &ApiClient, d: DetachArgs) -> anyhow::Result<()> {
    let req = DetachRequest {
        network: d.network.clone(),
        netns: d.netns.clone(),
    };
    let _: serde_json::Value = client.post("/v1/detach", &req).await?;
    println!("Detached {} from {}.", d.netns, d.network);
    Ok(())
}
