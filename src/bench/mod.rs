//! `shoal bench`: builds a lab, measures shoal and a baseline in the same run, and
//! reports ratios.

mod control;
mod dns;
mod docker;
mod encrypted;
mod ingress;
mod mesh;
mod overlay;
mod tools;

use std::net::Ipv4Addr;

use anyhow::Context;
use shoal_control::api::EndpointInfo;

use crate::cli::args::{BenchArgs, BenchKind, Format};
use shoal_bench::report::Report;

/// Runs the benchmark `args.what`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.encrypted && !matches!(args.what, BenchKind::Overlay) {
        anyhow::bail!("--encrypted applies only to `shoal bench overlay`");
    }
    let report = match args.what {
        BenchKind::Control => control::run().await?,
        BenchKind::Overlay if args.encrypted => encrypted::run().await?,
        BenchKind::Overlay => overlay::run().await?,
        BenchKind::Mesh => mesh::run().await?,
        BenchKind::Dns => dns::run().await?,
        BenchKind::Ingress => ingress::run().await?,
        BenchKind::Docker => docker::run().await?,
    };
    emit(&report, args.format)
}

fn emit(report: &Report, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(report)?),
        Format::Table => print!("{}", report.markdown()),
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
