//! `shoal bench dns`: queries/s and latency of a network's resolver (on the gateway
//! address) asked from a sandbox for 100 sandbox aliases, side by side in the same run
//! with unbound serving the same 100 names as local data from a sandbox on the same
//! network. One closed-loop load generator asks both.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use shoal_bench::dns::{load, DnsLoad};
use shoal_bench::report::Report;
use shoal_bench::stats::Summary;
use shoal_control::api::{AttachRequest, EndpointInfo, NetworkInfo};
use shoal_control::state::NetworkSpec;
use shoal_dataplane::netns;

use super::tools::{self, Daemon};
use super::{endpoint_ip, LabGuard};
use crate::lab::{self, topology};

const LAB: &str = "benchdn";
const NAMES: usize = 100;
const IN_FLIGHT: usize = 16;
const SAMPLE: Duration = Duration::from_secs(3);

/// unbound on `ip`:53 with `names` and their addresses as local data, inside `ns`.
fn unbound(ns: &str, ip: Ipv4Addr, names: &[(String, Ipv4Addr)]) -> anyhow::Result<Daemon> {
    let program = tools::apt("unbound", "unbound").map_err(|e| anyhow::anyhow!(e))?;
    let dir = std::env::temp_dir().join(format!("shoal-bench-unbound-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut conf = String::new();
    let _ = writeln!(conf, "server:");
    for line in [
        format!("  interface: {ip}@53"),
        "  num-threads: 2".into(),
        "  so-reuseport: yes".into(),
        "  do-daemonize: no".into(),
        "  chroot: \"\"".into(),
        "  username: \"\"".into(),
        format!("  directory: \"{}\"", dir.display()),
        format!("  pidfile: \"{}/unbound.pid\"", dir.display()),
        "  use-syslog: no".into(),
        "  verbosity: 0".into(),
        "  do-ip6: no".into(),
        "  access-control: 0.0.0.0/0 allow".into(),
        "  module-config: \"iterator\"".into(),
    ] {
        let _ = writeln!(conf, "{line}");
    }
    for (n, answer) in names {
        let _ = writeln!(conf, "  local-data: \"{n} 5 IN A {answer}\"");
    }
    let file = dir.join("unbound.conf");
    std::fs::write(&file, conf)?;
    let mut cmd = Command::new(program);
    cmd.arg("-d")
        .arg("-c")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    netns::command_in(&mut cmd, &netns::open(ns)?, true)?;
    Ok(Daemon(cmd.spawn().context("cannot start unbound")?))
}

/// Runs the benchmark.
pub async fn run() -> anyhow::Result<Report> {
    lab::down(LAB);
    let _guard = LabGuard(LAB);
    eprintln!("bench dns: a 1-node lab, a network with {NAMES} names, and unbound beside it ...");
    let lab = lab::up(LAB, 1, 1).await?;
    let n1 = lab.client("n1")?;
    let net: NetworkInfo = n1
        .post(
            "/v1/networks",
            &NetworkSpec {
                name: "dns".into(),
                attachable: true,
                ..Default::default()
            },
        )
        .await?;
    let names: Vec<String> = (0..NAMES).map(|i| format!("name{i}.")).collect();
    // Aliases are capped per sandbox: four sandboxes carry 25 names each.
    let mut answers: Vec<(String, Ipv4Addr)> = Vec::new();
    let mut asker = None;
    let mut resolver = None;
    for (i, sb) in ["asker", "named0", "named1", "named2", "named3", "unbound"]
        .iter()
        .enumerate()
    {
        let mine: Vec<String> = if sb.starts_with("named") {
            names[(i - 1) * 25..i * 25].to_vec()
        } else {
            Vec::new()
        };
        let ns = topology::ns_name(LAB, sb);
        netns::create(&ns)?;
        let req = AttachRequest {
            network: "dns".into(),
            netns: ns.clone(),
            aliases: mine
                .iter()
                .map(|n| n.trim_end_matches('.').to_string())
                .collect(),
            ..Default::default()
        };
        let e: EndpointInfo = n1.post("/v1/attach", &req).await?;
        let ip = endpoint_ip(&e)?;
        answers.extend(mine.into_iter().map(|n| (n, ip)));
        match *sb {
            "asker" => asker = Some(netns::path_of(&ns)),
            "unbound" => resolver = Some((ns, ip)),
            _ => {}
        }
    }
    let (Some(asker), Some((unbound_ns, unbound_ip))) = (asker, resolver) else {
        anyhow::bail!("the bench's sandboxes were not made");
    };
    let gateway = net
        .gateway
        .context("the bench's network has no IPv4 gateway")?;
    let _unbound = unbound(&unbound_ns, unbound_ip, &answers)?;
    let unbound_at = SocketAddr::new(IpAddr::V4(unbound_ip), 53);
    let shoal_at = SocketAddr::new(IpAddr::V4(gateway), 53);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (s, u) = tokio::task::spawn_blocking(move || -> anyhow::Result<(DnsLoad, DnsLoad)> {
        // Alternate, so drift on a shared machine hits both alike; keep the better run.
        let mut best: [Option<DnsLoad>; 2] = [None, None];
        for _ in 0..2 {
            for (i, at) in [shoal_at, unbound_at].into_iter().enumerate() {
                eprintln!(
                    "bench dns: {} ...",
                    if i == 0 { "shoal" } else { "unbound" }
                );
                let l = load(&asker, at, names.clone(), IN_FLIGHT, SAMPLE)?;
                anyhow::ensure!(
                    l.bad == 0 && l.qps > 0.0,
                    "{at} gave {} wrong answers and {} lost of {:.0} q/s",
                    l.bad,
                    l.lost,
                    l.qps
                );
                if best[i].as_ref().map(|b| l.qps > b.qps).unwrap_or(true) {
                    best[i] = Some(l);
                }
            }
        }
        let [Some(s), Some(u)] = best else {
            anyhow::bail!("no measurement");
        };
        Ok((s, u))
    })
    .await??;
    let (ss, us) = (Summary::of(&s.latencies), Summary::of(&u.latencies));
    let mut r = Report::new("dns");
    r.add("queries per second", s.qps, "q/s", "unbound", u.qps);
    r.add(
        "latency p50",
        ss.p50_ms * 1000.0,
        "µs",
        "unbound",
        us.p50_ms * 1000.0,
    );
    r.add(
        "latency p99",
        ss.p99_ms * 1000.0,
        "µs",
        "unbound",
        us.p99_ms * 1000.0,
    );
    r.notes.push(format!(
        "{NAMES} names (sandbox aliases; unbound local-data, 2 threads), A queries from a sandbox on the same network, {IN_FLIGHT} in flight, closed loop on one thread, best of 2 alternating runs of {} s. Goal: ≥ 1× unbound's queries/s, p99 < 1 ms.",
        SAMPLE.as_secs()
    ));
    Ok(r)
}
