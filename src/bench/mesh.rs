//! `shoal bench mesh`: a published port (routing mesh: the client host → node n1's
//! address → DNAT → overlay → the task on n2) against going straight to the task from a
//! sandbox on n1 (overlay only), in the same run: TCP throughput and new connections/s,
//! with the client's address kept (`src=preserve`, the default: replies return through
//! n1 by the task sandbox's policy route) and source-NATed (`src=nat`).
//!
//! `--ipv6`: the same over IPv6, on a dual-stack network in a lab with a dual underlay:
//! the client dials n1's IPv6 underlay address, the task is reached at its IPv6 address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use shoal_bench::net::{connection_rate, throughput_to};
use shoal_bench::report::Report;
use shoal_control::api::{AttachRequest, EndpointInfo, NetworkInfo, ServiceInfo};
use shoal_control::state::{
    EndpointMode, NetworkSpec, PortSpec, Protocol, PublishMode, ServiceMode, ServiceSpec,
    SourceMode,
};
use shoal_dataplane::netns;

use super::overlay6::endpoint_ip6;
use super::{endpoint_ip, LabGuard};
use crate::lab::{self, topology, LabOptions};

/// The lab's name: IPv4, IPv6.
const LABS: [&str; 2] = ["benchms", "benchms6"];
const SAMPLE: Duration = Duration::from_secs(3);
const SAMPLES: usize = 3;

/// Published ports: 9000+i (preserve) and 9100+i (nat) to target 5000+i.
const PRESERVE_OFFSET: u16 = 4000;
const NAT_OFFSET: u16 = 4100;

fn publish(published: u16, target: u16, src: SourceMode) -> PortSpec {
    PortSpec {
        published,
        target,
        protocol: Protocol::Tcp,
        mode: PublishMode::Ingress,
        src,
    }
}

/// Runs the benchmark, over IPv6 with `ipv6`.
pub async fn run(ipv6: bool) -> anyhow::Result<Report> {
    let name = if ipv6 { "mesh --ipv6" } else { "mesh" };
    let lab_name = LABS[usize::from(ipv6)];
    lab::down(lab_name);
    let _guard = LabGuard(lab_name);
    eprintln!("bench {name}: a 2-node lab with a published service whose task is on n2 ...");
    let options = LabOptions {
        underlay: if ipv6 {
            topology::Underlay::Dual
        } else {
            topology::Underlay::Ipv4
        },
        ..Default::default()
    };
    let lab = lab::up_with(lab_name, 2, 1, &options).await?;
    let n1 = lab.client("n1")?;
    let _: NetworkInfo = n1
        .post(
            "/v1/networks",
            &NetworkSpec {
                name: "mesh".into(),
                attachable: true,
                ipv6,
                ..Default::default()
            },
        )
        .await?;
    let _: ServiceInfo = n1
        .post(
            "/v1/services",
            &ServiceSpec {
                name: "bulk".into(),
                networks: vec!["mesh".into()],
                mode: ServiceMode::Replicated { replicas: 1 },
                publish: (0..4)
                    .flat_map(|i| {
                        [
                            publish(5000 + PRESERVE_OFFSET + i, 5000 + i, SourceMode::Preserve),
                            publish(5000 + NAT_OFFSET + i, 5000 + i, SourceMode::Nat),
                        ]
                    })
                    .collect(),
                endpoint_mode: EndpointMode::Vip,
                labels: Default::default(),
                command: Vec::new(),
                ..Default::default()
            },
        )
        .await?;
    let mut ends = Vec::new();
    for (host, sb, service) in [("n2", "task", Some("bulk")), ("n1", "near", None)] {
        let ns = topology::ns_name(lab_name, sb);
        netns::create(&ns)?;
        let req = AttachRequest {
            network: "mesh".into(),
            netns: ns.clone(),
            service: service.map(String::from),
            ..Default::default()
        };
        let e: EndpointInfo = lab.client(host)?.post("/v1/attach", &req).await?;
        let ip = if ipv6 {
            endpoint_ip6(&e)?
        } else {
            IpAddr::V4(endpoint_ip(&e)?)
        };
        ends.push((netns::path_of(&ns), ip));
    }
    let (task_ns, task_ip) = ends[0].clone();
    let near_ns = ends[1].0.clone();
    let client_ns = netns::path_of(&topology::ns_name(lab_name, "client"));
    let node = if ipv6 {
        IpAddr::V6(topology::ipv6_of(topology::node_ip(1)))
    } else {
        topology::node_ip(1)
    };
    // The routing mesh learns of the task through the state; give it a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let figures = tokio::task::spawn_blocking(move || -> anyhow::Result<[f64; 8]> {
        // `offset`: the published port is target + offset; 0 goes straight to the task.
        let median = |client: &std::path::Path, to: IpAddr, offset: u16, port: u16| {
            let mut v = Vec::new();
            for i in 0..SAMPLES as u16 {
                let target = 5000 + (port + i) % 2;
                let bind = SocketAddr::new(task_ip, target);
                let connect = SocketAddr::new(to, target + offset);
                v.push(throughput_to(&task_ns, bind, client, connect, 1, SAMPLE)?);
            }
            v.sort_by(|a, b| a.total_cmp(b));
            anyhow::Ok(v[v.len() / 2])
        };
        eprintln!("bench {name}: throughput through the published port ...");
        let published = median(&client_ns, node, PRESERVE_OFFSET, 0)?;
        let published_nat = median(&client_ns, node, NAT_OFFSET, 0)?;
        let published_near = median(&near_ns, node, PRESERVE_OFFSET, 0)?;
        eprintln!("bench {name}: throughput straight to the task ...");
        let direct = median(&near_ns, task_ip, 0, 0)?;
        eprintln!("bench {name}: new connections per second ...");
        let rate = |client: &std::path::Path, connect: SocketAddr, target: u16| {
            connection_rate(
                &task_ns,
                SocketAddr::new(task_ip, target),
                client,
                connect,
                Duration::from_secs(3),
            )
        };
        let published_rate = rate(
            &client_ns,
            SocketAddr::new(node, 5002 + PRESERVE_OFFSET),
            5002,
        )?;
        let published_nat_rate = rate(&client_ns, SocketAddr::new(node, 5002 + NAT_OFFSET), 5002)?;
        let published_near_rate = rate(
            &near_ns,
            SocketAddr::new(node, 5002 + PRESERVE_OFFSET),
            5002,
        )?;
        let direct_rate = rate(&near_ns, SocketAddr::new(task_ip, 5003), 5003)?;
        Ok([
            published,
            direct,
            published_rate,
            direct_rate,
            published_near,
            published_near_rate,
            published_nat,
            published_nat_rate,
        ])
    })
    .await??;
    let mut r = Report::new(name);
    r.add(
        "TCP 1 stream through a published port, src=preserve (task on another node)",
        figures[0],
        "Gbit/s",
        "straight to the task",
        figures[1],
    );
    r.add(
        "TCP 1 stream through a published port, src=nat (task on another node)",
        figures[6],
        "Gbit/s",
        "straight to the task",
        figures[1],
    );
    r.add(
        "new TCP connections through a published port, src=preserve",
        figures[2],
        "conn/s",
        "straight to the task",
        figures[3],
    );
    r.add(
        "new TCP connections through a published port, src=nat",
        figures[7],
        "conn/s",
        "straight to the task",
        figures[3],
    );
    r.add(
        "TCP 1 stream, same sandbox, published port of its node",
        figures[4],
        "Gbit/s",
        "straight to the task",
        figures[1],
    );
    r.add(
        "new TCP connections, same sandbox, published port",
        figures[5],
        "conn/s",
        "straight to the task",
        figures[3],
    );
    r.notes.push(format!(
        "Published: from the lab's client host to node n1's underlay address, DNAT in n1's nftables to the task on n2 over the overlay. Straight: from a sandbox on n1 to the task's overlay address; \"same sandbox\" rows go from that sandbox to n1's published port, so only the mesh differs. Medians of {SAMPLES} samples of {} s; connections carry a 1-byte request and answer. src=preserve: the task sees the client's address, its replies go back through n1 by the sandbox's conntrack mark and policy route; src=nat: source NAT to n1's address on the network. Goal: published ≥ 0.95× straight.",
        SAMPLE.as_secs()
    ));
    if ipv6 {
        r.notes.push(
            "--ipv6: a dual underlay (the agents advertise their IPv6 addresses) and a dual-stack network; every connection above is IPv6: to n1's IPv6 underlay address, DNAT in n1's ip6 table to the task's IPv6 address, straight to that address for the baseline."
                .into(),
        );
    }
    Ok(r)
}
