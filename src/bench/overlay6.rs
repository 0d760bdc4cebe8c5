//! `shoal bench overlay --ipv6`: the same two sandboxes on a dual-stack network, TCP over
//! their IPv6 addresses against TCP over their IPv4 addresses, in turn in the same run.
//! Same lab, same sandboxes, same path (veth ─ bridge ─ VXLAN ─ underlay): only the inner
//! family differs, so the ratio is what IPv6 costs shoal's overlay.

use std::net::IpAddr;

use anyhow::Context;
use shoal_bench::report::Report;
use shoal_control::api::{AttachRequest, EndpointInfo, NetworkInfo};
use shoal_control::state::NetworkSpec;
use shoal_dataplane::netns;

use super::overlay::{measure_interleaved, Figures, Pair};
use super::LabGuard;
use crate::lab::{self, topology};

const LAB: &str = "benchov6";
const NETWORK: &str = "dual";

/// The endpoint's IPv6 address, without its prefix length.
pub(super) fn endpoint_ip6(e: &EndpointInfo) -> anyhow::Result<IpAddr> {
    let a = e
        .address6
        .as_deref()
        .context("the endpoint got no IPv6 address on a dual-stack network")?;
    a.split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("the endpoint address {a:?} is not IPv6"))
}

/// Two pairs over the same two sandboxes (one on each node): IPv4, then IPv6.
async fn dual_stack_pairs(lab: &lab::Lab) -> anyhow::Result<[Pair; 2]> {
    let spec = NetworkSpec {
        name: NETWORK.into(),
        attachable: true,
        ipv6: true,
        ..Default::default()
    };
    let _: NetworkInfo = lab.client("n1")?.post("/v1/networks", &spec).await?;
    let mut ends = Vec::new();
    for (host, sb) in [("n1", "a"), ("n2", "b")] {
        let ns = topology::ns_name(&lab.name, &format!("{NETWORK}-{sb}"));
        netns::create(&ns)?;
        let req = AttachRequest {
            network: NETWORK.into(),
            netns: ns.clone(),
            ..Default::default()
        };
        let e: EndpointInfo = lab.client(host)?.post("/v1/attach", &req).await?;
        ends.push((netns::path_of(&ns), e));
    }
    let v4 = IpAddr::V4(super::endpoint_ip(&ends[1].1)?);
    let v6 = endpoint_ip6(&ends[1].1)?;
    let pair = |server_ip| Pair {
        client: ends[0].0.clone(),
        server: ends[1].0.clone(),
        server_ip,
    };
    Ok([pair(v4), pair(v6)])
}

/// Runs the benchmark.
pub async fn run() -> anyhow::Result<Report> {
    lab::down(LAB);
    let _guard = LabGuard(LAB);
    eprintln!("bench overlay --ipv6: a 2-node lab with a dual-stack network ...");
    let lab = lab::up(LAB, 2, 1).await?;
    let [v4, v6] = dual_stack_pairs(&lab).await?;
    eprintln!(
        "bench overlay --ipv6: TCP over IPv4 and over IPv6 between the same sandboxes, in turn ..."
    );
    let [f4, f6]: [Figures; 2] = measure_interleaved(vec![(v4, 5400), (v6, 5500)])
        .await?
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected two sets of figures"))?;
    let mut r = Report::new("overlay --ipv6");
    let base = "the same sandboxes over IPv4";
    r.add(
        "IPv6, TCP 1 stream, sandbox to sandbox across nodes",
        f6.one,
        "Gbit/s",
        base,
        f4.one,
    );
    r.add("IPv6, TCP 4 streams", f6.four, "Gbit/s", base, f4.four);
    r.add(
        "IPv6, request/response p50",
        f6.rtt.p50_ms * 1000.0,
        "µs",
        base,
        f4.rtt.p50_ms * 1000.0,
    );
    r.add(
        "IPv6, request/response p99",
        f6.rtt.p99_ms * 1000.0,
        "µs",
        base,
        f4.rtt.p99_ms * 1000.0,
    );
    r.notes.push(
        "2-node lab (IPv4 underlay), one dual-stack network (IPv4 /24 and IPv6 /64, MTU 1450 on both), a sandbox on each node; IPv4 and IPv6 samples taken in turn between the same two sandboxes. Goal: IPv6 throughput ≥ 0.95× IPv4."
            .into(),
    );
    Ok(r)
}
