//! `shoal bench`: builds a lab, measures shoal and a baseline in the same run, and
//! reports ratios.

mod cni;
mod control;
mod dns;
mod docker;
mod docker_routes;
mod encrypted;
mod faults;
mod ingress;
mod mesh;
mod overlay;
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
    let scale_args = args.nodes != [10]
        || args.endpoints != [100]
        || args.repeats != 5
        || args.burst != 1000
        || args.rest_secs != 10
        || args.lab != "benchscale";
    if scale_args && !matches!(args.what, BenchKind::Scale) {
        anyhow::bail!(
            "--nodes, --endpoints, --repeats, --burst, --rest-secs and --lab apply only to `shoal bench scale`"
        );
    }
    tools::allow_install(args.install_baselines);
    let kinds: &[BenchKind] = match args.what {
        BenchKind::All => &[
            BenchKind::Control,
            BenchKind::Overlay,
            BenchKind::Mesh,
            BenchKind::Dns,
            BenchKind::Ingress,
            BenchKind::Docker,
            BenchKind::DockerRoutes,
            BenchKind::Cni,
            BenchKind::Faults,
        ],
        ref one => std::slice::from_ref(one),
    };
    let mut reports = Vec::new();
    for kind in kinds {
        let report = match kind {
            BenchKind::Control => control::run().await?,
            BenchKind::Overlay if args.encrypted => encrypted::run().await?,
            BenchKind::Overlay => overlay::run().await?,
            BenchKind::Mesh => mesh::run().await?,
            BenchKind::Dns => dns::run().await?,
            BenchKind::Ingress => ingress::run().await?,
            BenchKind::Docker => docker::run().await?,
            BenchKind::DockerRoutes => docker_routes::run().await?,
            BenchKind::Cni => cni::run().await?,
            BenchKind::Faults => faults::run().await?,
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
        };
        // Each table as soon as it is measured: `all` takes a while.
        if args.format == Format::Table {
            print!("{}", report.markdown());
        }
        reports.push(report);
    }
    if args.format == Format::Json {
        match reports.as_slice() {
            [one] => println!("{}", serde_json::to_string_pretty(one)?),
            all => println!("{}", serde_json::to_string_pretty(all)?),
        }
    }
    Ok(())
}

/// An endpoint's IPv4 address, without its prefix length.
fn endpoint_ip(e: &EndpointInfo) -> anyhow::Result<Ipv4Addr> {
    e.address
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("the endpoint address {:?} is not IPv4", e.address))
}

/// Removes a benchmark's lab when dropped, also on error or panic.
struct LabGuard(&'static str);

impl Drop for LabGuard {
    fn drop(&mut self) {
        crate::lab::down(self.0);
    }
}
