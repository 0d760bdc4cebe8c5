//! `shoal bench`: builds a lab, measures shoal and a baseline in the same run, and
//! reports ratios.

mod cni;
mod control;
mod dashboard;
mod dns;
mod docker;
mod docker_routes;
mod encrypted;
mod faults;
mod ingress;
mod mesh;
mod overlay;
mod overlay6;
mod scale;
mod tools;

use std::net::Ipv4Addr;

use anyhow::Context;
use shoal_control::api::EndpointInfo;

use crate::cli::args::{BenchArgs, BenchKind, Format};

/// Runs the benchmark `args.what`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.encrypted && !matches!(args.what, BenchKind::Overlay) {
        anyhow::bail!("--encrypted applies only to `shoal bench overlay`");
    }
    if args.ipv6 && !matches!(args.what, BenchKind::Overlay | BenchKind::Mesh) {
        anyhow::bail!("--ipv6 applies only to `shoal bench overlay` and `shoal bench mesh`");
    }
    if args.encrypted && args.ipv6 {
        anyhow::bail!("`shoal bench overlay` takes --encrypted or --ipv6, not both");
    }
    if (args.tls || args.h2 || args.quick) && !matches!(args.what, BenchKind::Ingress) {
        anyhow::bail!("--tls, --h2 and --quick apply only to `shoal bench ingress`");
    }
    let dashboard = matches!(args.what, BenchKind::Dashboard);
    if dashboard && (args.nodes.len() != 1 || !(2..=200).contains(&args.nodes[0])) {
        anyhow::bail!("`shoal bench dashboard` takes one --nodes, from 2 to 200");
    }
    let scale_args = (args.nodes != [10] && !dashboard)
        || args.endpoints != [100]
        || args.repeats != 5
        || args.burst != 1000
        || args.rest_secs != 10
        || args.lab != "benchscale";
    if scale_args && !matches!(args.what, BenchKind::Scale) {
        anyhow::bail!(
            "--endpoints, --repeats, --burst, --rest-secs and --lab apply only to `shoal bench scale` (and --nodes to `scale` and `dashboard`)"
        );
    }
    tools::allow_install(args.install_baselines);
    let all = matches!(args.what, BenchKind::All);
    let runs: Vec<(BenchKind, Variant)> = if all {
        ALL.to_vec()
    } else if args.encrypted {
        vec![(args.what, Variant::Encrypted)]
    } else if args.ipv6 {
        vec![(args.what, Variant::Ipv6)]
    } else {
        vec![(args.what, Variant::Plain)]
    };
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for (kind, variant) in runs {
        let report = match run_one(kind, variant, &args).await {
            Ok(report) => report,
            // `all` goes on: one missing tool or failed lab costs its own figures only.
            Err(e) if all => {
                let name = bench_name(kind, variant);
                eprintln!("bench all: `shoal bench {name}` failed: {e:#}");
                failed.push((name, format!("{e:#}")));
                continue;
            }
            Err(e) => return Err(e),
        };
        // Each table as soon as it is measured: `all` takes a while.
        if args.format == Format::Table {
            print!("{}", report.markdown());
        }
        reports.push(report);
    }
    if all && args.format == Format::Table {
        print!("\n{}", shoal_bench::report::summary(&reports, &failed));
    }
    if args.format == Format::Json {
        match reports.as_slice() {
            [one] => println!("{}", serde_json::to_string_pretty(one)?),
            all => println!("{}", serde_json::to_string_pretty(all)?),
        }
    }
    Ok(())
}

/// A benchmark's flavour: `overlay` also runs `--encrypted` and `--ipv6`, `mesh`
/// `--ipv6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Encrypted,
    Ipv6,
    /// `ingress --tls --h2`.
    Tls,
}

/// Every benchmark `shoal bench all` runs, in order.
const ALL: &[(BenchKind, Variant)] = &[
    (BenchKind::Control, Variant::Plain),
    (BenchKind::Overlay, Variant::Plain),
    (BenchKind::Overlay, Variant::Encrypted),
    (BenchKind::Overlay, Variant::Ipv6),
    (BenchKind::Mesh, Variant::Plain),
    (BenchKind::Mesh, Variant::Ipv6),
    (BenchKind::Dns, Variant::Plain),
    (BenchKind::Ingress, Variant::Plain),
    (BenchKind::Ingress, Variant::Tls),
    (BenchKind::Docker, Variant::Plain),
    (BenchKind::DockerRoutes, Variant::Plain),
    (BenchKind::Cni, Variant::Plain),
    (BenchKind::Faults, Variant::Plain),
    (BenchKind::Dashboard, Variant::Plain),
    (BenchKind::Scale, Variant::Plain),
];

/// How `shoal bench` names a run, as typed on the command line.
fn bench_name(kind: BenchKind, variant: Variant) -> String {
    let name = clap::ValueEnum::to_possible_value(&kind)
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{kind:?}"));
    match variant {
        Variant::Plain => name,
        Variant::Encrypted => format!("{name} --encrypted"),
        Variant::Ipv6 => format!("{name} --ipv6"),
        Variant::Tls => format!("{name} --tls --h2"),
    }
}

async fn run_one(
    kind: BenchKind,
    variant: Variant,
    args: &BenchArgs,
) -> anyhow::Result<shoal_bench::report::Report> {
    Ok(match kind {
        BenchKind::Control => control::run().await?,
        BenchKind::Overlay if variant == Variant::Encrypted => encrypted::run().await?,
        BenchKind::Overlay if variant == Variant::Ipv6 => overlay6::run().await?,
        BenchKind::Overlay => overlay::run().await?,
        BenchKind::Mesh => mesh::run(variant == Variant::Ipv6).await?,
        BenchKind::Dns => dns::run().await?,
        BenchKind::Ingress => {
            let tls = variant == Variant::Tls;
            ingress::run(ingress::Options {
                tls: args.tls || tls,
                h2: args.h2 || tls,
                quick: args.quick,
            })
            .await?
        }
        BenchKind::Docker => docker::run().await?,
        BenchKind::DockerRoutes => docker_routes::run().await?,
        BenchKind::Cni => cni::run().await?,
        BenchKind::Faults => faults::run().await?,
        BenchKind::Dashboard => dashboard::run(args.nodes.first().copied().unwrap_or(10)).await?,
        BenchKind::Scale => {
            scale::run(&scale::ScaleOptions {
                nodes: args.nodes.clone(),
                endpoints: args.endpoints.clone(),
                repeats: args.repeats,
                burst: args.burst,
                rest: std::time::Duration::from_secs(args.rest_secs),
                lab: args.lab.clone(),
            })
            .await?
        }
        BenchKind::All => anyhow::bail!("`all` is a list of benchmarks, not one"),
    })
}

/// An endpoint's IPv4 address, without its prefix length.
fn endpoint_ip(e: &EndpointInfo) -> anyhow::Result<Ipv4Addr> {
    let address = e.address.as_deref().unwrap_or_default();
    address
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("the endpoint address {address:?} is not IPv4"))
}

/// Removes a benchmark's lab when dropped, also on error or panic.
struct LabGuard(&'static str);

/// Runs `shoal ARGS` inside host `host` of lab `lab` (the agent's socket set, as
/// `lab exec` does); its stdout, or an error with what it printed.
async fn lab_shoal(lab: &str, host: &str, args: &[&str]) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("find the shoal binary")?;
    let out = tokio::process::Command::new(&exe)
        .args(["lab", "exec", "--name", lab, host, "--"])
        .arg(&exe)
        .args(args)
        .output()
        .await
        .context("run shoal lab exec")?;
    if !out.status.success() {
        anyhow::bail!(
            "shoal {} on {host}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        crate::lab::down(self.0);
    }
}
