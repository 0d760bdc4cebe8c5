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

/// One flag's values split by address family: at most one of each (Docker's
/// `--subnet`, `--gateway`, `--ip-range` take one per family).
fn by_family<V4, V6>(flag: &str, values: &[String]) -> anyhow::Result<(Option<V4>, Option<V6>)>
where
    V4: std::str::FromStr,
    V6: std::str::FromStr,
    V4::Err: std::fmt::Display,
    V6::Err: std::fmt::Display,
{
    let (mut v4, mut v6) = (None, None);
    for v in values {
        if v.contains(':') {
            if v6.is_some() {
                bail!("{flag} {v:?}: give at most one IPv6 {flag} (one per address family)");
            }
            v6 = Some(parse(flag, v)?);
        } else {
            if v4.is_some() {
                bail!("{flag} {v:?}: give at most one IPv4 {flag} (one per address family)");
            }
            v4 = Some(parse(flag, v)?);
        }
    }
    Ok((v4, v6))
}

/// The addressing flags of `network create`.
#[derive(Debug, Default)]
struct Addressing {
    subnet: Vec<String>,
    gateway: Vec<String>,
    ip_range: Vec<String>,
    ipv6: bool,
    /// `--ipv4` (true unless `--ipv4=false`).
    ipv4: bool,
}

impl Addressing {
    /// Fills the spec's subnet, gateway and range of each family. As Docker's CLI
    /// does, once subnets are given every gateway and range needs one of its family.
    fn apply(&self, spec: &mut NetworkSpec) -> anyhow::Result<()> {
        (spec.subnet, spec.subnet6) = by_family("--subnet", &self.subnet)?;
        (spec.gateway, spec.gateway6) = by_family("--gateway", &self.gateway)?;
        (spec.ip_range, spec.ip_range6) = by_family("--ip-range", &self.ip_range)?;
        spec.ipv6 = self.ipv6;
        // The cluster refuses `--ipv4=false` without `--ipv6`, or with IPv4 parts.
        spec.ipv4 = (!self.ipv4).then_some(false);
        if !self.subnet.is_empty() {
            let v4 = spec.gateway.map(|g| g.to_string());
            let v4 = v4.or(spec.ip_range.map(|r| r.to_string()));
            if let (Some(what), None) = (v4, spec.subnet) {
                bail!("{what} has no IPv4 --subnet to belong to: give one, or leave it out");
            }
            let v6 = spec.gateway6.map(|g| g.to_string());
            let v6 = v6.or(spec.ip_range6.map(|r| r.to_string()));
            if let (Some(what), None) = (v6, spec.subnet6) {
                bail!("{what} has no IPv6 --subnet to belong to: give one, or leave it out");
            }
        }
        if let (Some(s), false) = (spec.subnet6, self.ipv6) {
            bail!("--subnet {s} is an IPv6 subnet: add --ipv6 to make a dual-stack network");
        }
        Ok(())
    }
}

/// Builds the spec of `network create` from its flags, refusing what it cannot honour.
#[allow(clippy::too_many_arguments)]
fn spec(
    driver: &str,
    addressing: &Addressing,
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
    addressing.apply(&mut spec)?;
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
                e.address.clone().or(e.address6.clone()).unwrap_or_default(),
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
            ipv6,
            ipv4,
            aux_address,
            attachable,
            internal,
            opt,
            label,
            name,
        } => {
            let addressing = Addressing {
                subnet,
                gateway,
                ip_range,
                ipv6,
                ipv4,
            };
            let spec = spec(
                &driver,
                &addressing,
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
                            n.ipam_config
                                .first()
                                .map(|c| c.subnet.clone())
                                .unwrap_or_default(),
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
                if !n.enable_ipv4 {
                    line("IPv4:", "none (IPv6-only)".into());
                }
                for c in &n.ipam_config {
                    let [subnet, gateway, range] = if c.subnet.contains(':') {
                        ["IPv6 subnet:", "IPv6 gateway:", "IPv6 range:"]
                    } else {
                        ["Subnet:", "Gateway:", "IP range:"]
                    };
                    line(subnet, c.subnet.clone());
                    line(gateway, c.gateway.clone());
                    line(range, c.ip_range.clone());
                }
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
        ip6: a.ip6.map(|ip| parse("--ip6", &ip)).transpose()?,
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
            ("address", e.address.clone().unwrap_or_default()),
            ("address6", e.address6.clone().unwrap_or_default()),
            ("mac", e.mac.clone()),
            (
                "gateway",
                e.gateway.map(|g| g.to_string()).unwrap_or_default(),
            ),
            (
                "gateway6",
                e.gateway6.map(|g| g.to_string()).unwrap_or_default(),
            ),
            ("dns", e.dns.to_string()),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addressing(subnet: &[&str], gateway: &[&str], ip_range: &[&str], ipv6: bool) -> Addressing {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Addressing {
            subnet: own(subnet),
            gateway: own(gateway),
            ip_range: own(ip_range),
            ipv6,
            ipv4: true,
        }
    }

    fn spec_of(a: Addressing) -> anyhow::Result<NetworkSpec> {
        let mut spec = NetworkSpec::default();
        a.apply(&mut spec)?;
        Ok(spec)
    }

    #[test]
    fn subnets_gateways_and_ranges_are_split_by_family() {
        let s = spec_of(addressing(
            &["10.1.0.0/24", "fd00:1::/64"],
            &["fd00:1::fe", "10.1.0.254"],
            &["fd00:1::/80"],
            true,
        ))
        .unwrap();
        assert_eq!(s.subnet, Some("10.1.0.0/24".parse().unwrap()));
        assert_eq!(s.subnet6, Some("fd00:1::/64".parse().unwrap()));
        assert_eq!(s.gateway, Some("10.1.0.254".parse().unwrap()));
        assert_eq!(s.gateway6, Some("fd00:1::fe".parse().unwrap()));
        assert_eq!(s.ip_range6, Some("fd00:1::/80".parse().unwrap()));
        assert!(s.ipv6);
        let plain = spec_of(addressing(&["10.1.0.0/24"], &[], &[], true)).unwrap();
        assert!(
            plain.ipv6 && plain.subnet6.is_none(),
            "IPv6 subnet from the pools"
        );
    }

    #[test]
    fn ipv4_false_asks_for_an_ipv6_only_network() {
        use clap::Parser;
        let create = |args: &[&str]| {
            let cli = crate::cli::args::Cli::try_parse_from(
                ["shoal", "network", "create"].iter().chain(args),
            )
            .map_err(|e| e.to_string())?;
            let crate::cli::args::Command::Network(NetworkCmd::Create { ipv4, ipv6, .. }) =
                cli.command
            else {
                panic!("not network create");
            };
            let a = Addressing {
                ipv4,
                ..addressing(&[], &[], &[], ipv6)
            };
            Ok::<_, String>(spec_of(a).unwrap())
        };
        let only6 = create(&["--ipv6", "--ipv4=false", "n"]).unwrap();
        assert_eq!((only6.ipv4, only6.ipv6), (Some(false), true));
        assert!(!only6.wants_ipv4());
        for dual in [
            &["--ipv6", "n"][..],
            &["--ipv6", "--ipv4", "n"],
            &["--ipv4=true", "n"],
        ] {
            let s = create(dual).unwrap();
            assert_eq!(s.ipv4, None, "{dual:?}");
            assert!(s.wants_ipv4());
        }
        // `--ipv4 NAME` does not take the name for the flag's value.
        assert_eq!(create(&["--ipv4", "n"]).unwrap().ipv4, None);
        assert!(create(&["--ipv4=maybe", "n"]).is_err());
    }

    #[test]
    fn mixed_up_families_are_refused_clearly() {
        let err = |a| spec_of(a).unwrap_err().to_string();
        assert!(err(addressing(&["fd00::/64", "fd01::/64"], &[], &[], true))
            .contains("at most one IPv6 --subnet"));
        assert!(
            err(addressing(&["10.0.0.0/24", "10.1.0.0/24"], &[], &[], false))
                .contains("at most one IPv4 --subnet")
        );
        assert_eq!(
            err(addressing(&["fd00::/64"], &["10.0.0.1"], &[], true)),
            "10.0.0.1 has no IPv4 --subnet to belong to: give one, or leave it out"
        );
        assert!(err(addressing(&["10.0.0.0/24"], &["fd00::1"], &[], true))
            .contains("fd00::1 has no IPv6 --subnet"));
        assert!(err(addressing(&["fd00::/64"], &[], &[], false)).contains("add --ipv6"));
        assert!(
            err(addressing(&["fd00::zz/64"], &[], &[], true)).contains("--subnet \"fd00::zz/64\"")
        );
    }
}
