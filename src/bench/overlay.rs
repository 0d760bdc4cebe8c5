//! `shoal bench overlay`: TCP between two sandboxes on two lab nodes through shoal's
//! overlay, side by side in the same run with a veth pair and a hand-built kernel VXLAN
//! of the same shape (container ─veth─ bridge ─ vxlan ─ host eth0 ─ underlay bridge ─ …).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use shoal_bench::net::{round_trips, throughput};
use shoal_bench::report::Report;
use shoal_bench::stats::Summary;
use shoal_control::api::{AttachRequest, EndpointInfo, NetworkInfo};
use shoal_control::state::NetworkSpec;
use shoal_dataplane::netlink::Netlink;
use shoal_dataplane::netns;

use super::LabGuard;
use crate::lab::{self, topology};

/// The lab shoal is measured on.
const LAB: &str = "benchov";
/// The lab-shaped topology the hand-built VXLAN baseline runs on.
const KERNEL: &str = "benchkv";
/// How long each throughput sample runs.
const SAMPLE: Duration = Duration::from_secs(3);
/// Samples per figure (the median is reported).
const SAMPLES: usize = 3;
/// Time spent measuring round trips, per pair.
const RTT_TIME: Duration = Duration::from_secs(2);

/// Two namespaces and the server's address.
pub(super) struct Pair {
    pub client: PathBuf,
    pub server: PathBuf,
    pub server_ip: IpAddr,
}

fn path(ns: &str) -> PathBuf {
    netns::path_of(ns)
}

async fn veth_pair() -> anyhow::Result<Pair> {
    let (a, b) = (
        topology::ns_name(KERNEL, "va"),
        topology::ns_name(KERNEL, "vb"),
    );
    netns::create(&a)?;
    netns::create(&b)?;
    let (ans, bns) = (netns::open(&a)?, netns::open(&b)?);
    let na = Netlink::in_namespace(&ans)?;
    let nb = Netlink::in_namespace(&bns)?;
    na.add_veth("eth0", "peer").await?;
    na.move_to(na.must_index("peer").await?, &bns).await?;
    let pb = nb.must_index("peer").await?;
    nb.rename(pb, "eth0").await?;
    for (nl, ip) in [
        (&na, Ipv4Addr::new(10, 98, 0, 1)),
        (&nb, Ipv4Addr::new(10, 98, 0, 2)),
    ] {
        let i = nl.must_index("eth0").await?;
        nl.add_address(i, IpAddr::V4(ip), 24).await?;
        nl.set_up(i).await?;
        nl.set_up(nl.must_index("lo").await?).await?;
    }
    Ok(Pair {
        client: path(&a),
        server: path(&b),
        server_ip: IpAddr::V4(Ipv4Addr::new(10, 98, 0, 2)),
    })
}

/// Docker's overlay built by hand: per host a bridge with a VXLAN device (VNI 4096, port
/// 4789, no learning, a static all-zero FDB entry towards the other host) and a container
/// namespace on the bridge by a veth, MTU 1450; hosts on the same kind of underlay as the lab.
async fn kernel_vxlan() -> anyhow::Result<Pair> {
    two_hosts(KERNEL).await?;
    let ends = [
        (v4(topology::node_ip(1))?, v4(topology::node_ip(2))?),
        (v4(topology::node_ip(2))?, v4(topology::node_ip(1))?),
    ];
    vxlan_containers(KERNEL, ends, 1450).await
}

fn v4(ip: IpAddr) -> anyhow::Result<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Ok(v4),
        IpAddr::V6(_) => anyhow::bail!("the lab underlay is IPv4"),
    }
}

/// An underlay with hosts h1 and h2 on it, shaped like a lab's.
pub(super) async fn two_hosts(lab: &str) -> anyhow::Result<()> {
    topology::create_underlay(lab).await?;
    for (i, host) in ["h1", "h2"].iter().enumerate() {
        topology::create_host(lab, host, &[topology::node_ip(i + 1)]).await?;
    }
    Ok(())
}

/// On hosts h1 and h2 of `lab`: a bridge with a VXLAN device between the (local, remote)
/// addresses given for each host, and a container namespace c1/c2 on it with MTU `mtu`.
pub(super) async fn vxlan_containers(
    lab: &str,
    ends: [(Ipv4Addr, Ipv4Addr); 2],
    mtu: u32,
) -> anyhow::Result<Pair> {
    let cips = [Ipv4Addr::new(10, 97, 0, 1), Ipv4Addr::new(10, 97, 0, 2)];
    for (i, (local, remote)) in ends.iter().enumerate() {
        let hns = netns::open(&topology::ns_name(lab, &format!("h{}", i + 1)))?;
        let nl = Netlink::in_namespace(&hns)?;
        nl.add_bridge_with("br0", [2, 0x42, 10, 97, 0, 254], mtu)
            .await?;
        let br = nl.must_index("br0").await?;
        nl.add_vxlan("vx0", 4096, (*local).into(), 4789, mtu, br, false)
            .await?;
        nl.add_default_fdb(nl.must_index("vx0").await?, *remote)
            .await?;
        let cname = topology::ns_name(lab, &format!("c{}", i + 1));
        netns::create(&cname)?;
        let cns = netns::open(&cname)?;
        nl.add_veth("vc", "peer").await?;
        let vc = nl.must_index("vc").await?;
        nl.set_mtu(vc, mtu).await?;
        nl.set_master(vc, br).await?;
        nl.set_up(vc).await?;
        nl.move_to(nl.must_index("peer").await?, &cns).await?;
        let nc = Netlink::in_namespace(&cns)?;
        let p = nc.must_index("peer").await?;
        nc.rename(p, "eth0").await?;
        nc.set_mtu(p, mtu).await?;
        nc.add_address(p, IpAddr::V4(cips[i]), 24).await?;
        nc.set_up(p).await?;
        nc.set_up(nc.must_index("lo").await?).await?;
    }
    Ok(Pair {
        client: path(&topology::ns_name(lab, "c1")),
        server: path(&topology::ns_name(lab, "c2")),
        server_ip: IpAddr::V4(cips[1]),
    })
}

async fn shoal_overlay() -> anyhow::Result<Pair> {
    let lab = lab::up(LAB, 2, 1).await?;
    shoal_network(&lab, "bench", false).await
}

/// A network `name` on the 2-node `lab` with a sandbox on each node.
pub(super) async fn shoal_network(
    lab: &lab::Lab,
    name: &str,
    encrypted: bool,
) -> anyhow::Result<Pair> {
    let spec = NetworkSpec {
        name: name.into(),
        attachable: true,
        encrypted,
        ..Default::default()
    };
    let _: NetworkInfo = lab.client("n1")?.post("/v1/networks", &spec).await?;
    let mut ends = Vec::new();
    for (host, sb) in [("n1", "a"), ("n2", "b")] {
        let ns = topology::ns_name(&lab.name, &format!("{name}-{sb}"));
        netns::create(&ns)?;
        let req = AttachRequest {
            network: name.into(),
            netns: ns.clone(),
            ..Default::default()
        };
        let e: EndpointInfo = lab.client(host)?.post("/v1/attach", &req).await?;
        ends.push((ns, e));
    }
    let server_ip = IpAddr::V4(super::endpoint_ip(&ends[1].1)?);
    Ok(Pair {
        client: path(&ends[0].0),
        server: path(&ends[1].0),
        server_ip,
    })
}

pub(super) struct Figures {
    pub one: f64,
    pub four: f64,
    pub rtt: Summary,
}

pub(super) async fn measure(pair: Pair, port: u16) -> anyhow::Result<Figures> {
    let mut all = measure_interleaved(vec![(pair, port)]).await?;
    all.pop().context("no figures")
}

/// The figures of several pairs that exist side by side, their samples taken in turn
/// (one sample of each pair, then the next round), so a change in the machine's load
/// during the run falls on every pair alike. Each pair uses ports from its `port` on.
pub(super) async fn measure_interleaved(pairs: Vec<(Pair, u16)>) -> anyhow::Result<Vec<Figures>> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Figures>> {
        let mut one = vec![Vec::new(); pairs.len()];
        let mut four = vec![Vec::new(); pairs.len()];
        for i in 0..SAMPLES {
            for (streams, offset, samples) in [(1, 0, &mut one), (4, 10, &mut four)] {
                for ((pair, port), out) in pairs.iter().zip(samples.iter_mut()) {
                    let server = SocketAddr::new(pair.server_ip, port + offset + i as u16);
                    out.push(throughput(
                        &pair.server,
                        server,
                        &pair.client,
                        streams,
                        SAMPLE,
                    )?);
                }
            }
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        // Round trips in turn too: a third of the time per pair and round.
        let mut rtts = vec![Vec::new(); pairs.len()];
        for i in 0..SAMPLES {
            for ((pair, port), out) in pairs.iter().zip(rtts.iter_mut()) {
                let server = SocketAddr::new(pair.server_ip, port + 20 + i as u16);
                out.extend(round_trips(
                    &pair.server,
                    server,
                    &pair.client,
                    RTT_TIME / SAMPLES as u32,
                )?);
            }
        }
        Ok(one
            .into_iter()
            .zip(four)
            .zip(rtts)
            .map(|((one, four), rtt)| Figures {
                one: median(one),
                four: median(four),
                rtt: Summary::of(&rtt),
            })
            .collect())
    })
    .await?
}

/// Runs the benchmark.
pub async fn run() -> anyhow::Result<Report> {
    lab::down(LAB);
    lab::down(KERNEL);
    let _guards = (LabGuard(LAB), LabGuard(KERNEL));
    eprintln!(
        "bench overlay: building a veth pair, a hand-built kernel VXLAN and a 2-node shoal lab ..."
    );
    let veth = veth_pair().await.context("veth baseline")?;
    let kernel = kernel_vxlan().await.context("kernel VXLAN baseline")?;
    let shoal = shoal_overlay().await.context("shoal lab")?;
    eprintln!("bench overlay: veth pair, kernel VXLAN and shoal, in turn ...");
    let [v, k, s]: [Figures; 3] =
        measure_interleaved(vec![(veth, 5200), (kernel, 5300), (shoal, 5400)])
            .await?
            .try_into()
            .map_err(|_| anyhow::anyhow!("expected three sets of figures"))?;
    let mut r = Report::new("overlay");
    r.add(
        "TCP 1 stream, sandbox to sandbox across nodes",
        s.one,
        "Gbit/s",
        "hand-built kernel VXLAN",
        k.one,
    );
    r.add(
        "TCP 4 streams",
        s.four,
        "Gbit/s",
        "hand-built kernel VXLAN",
        k.four,
    );
    r.add("TCP 1 stream", s.one, "Gbit/s", "veth pair", v.one);
    r.add("TCP 4 streams", s.four, "Gbit/s", "veth pair", v.four);
    r.add(
        "request/response p50",
        s.rtt.p50_ms * 1000.0,
        "µs",
        "hand-built kernel VXLAN",
        k.rtt.p50_ms * 1000.0,
    );
    r.add(
        "request/response p99",
        s.rtt.p99_ms * 1000.0,
        "µs",
        "hand-built kernel VXLAN",
        k.rtt.p99_ms * 1000.0,
    );
    r.add(
        "request/response p50",
        s.rtt.p50_ms * 1000.0,
        "µs",
        "veth pair",
        v.rtt.p50_ms * 1000.0,
    );
    r.notes.push(format!(
        "Medians of {SAMPLES} samples of {}s each; 1-byte TCP request/response for 2 s. Goal: shoal's plain overlay ≥ 0.95× the hand-built kernel VXLAN.",
        SAMPLE.as_secs()
    ));
    Ok(r)
}
