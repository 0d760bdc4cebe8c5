//! `shoal bench mesh`: a published port (routing mesh: the client host → node n1's
//! address → DNAT → overlay → the task on n2) against going straight to the task from a
//! sandbox on n1 (overlay only), in the same run: TCP throughput and new connections/s.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use shoal_bench::net::{connection_rate, throughput_to};
use shoal_bench::report::Report;
use shoal_control::api::{AttachRequest, EndpointInfo, NetworkInfo, ServiceInfo};
use shoal_control::state::{
    EndpointMode, NetworkSpec, PortSpec, Protocol, PublishMode, ServiceMode, ServiceSpec,
};
use shoal_dataplane::netns;

use super::{endpoint_ip, LabGuard};
use crate::lab::{self, topology};

const LAB: &str = "benchms";
const SAMPLE: Duration = Duration::from_secs(3);
const SAMPLES: usize = 3;

fn publish(published: u16, target: u16) -> PortSpec {
    PortSpec {
        published,
        target,
        protocol: Protocol::Tcp,
        mode: PublishMode::Ingress,
    }
}

/// Runs the benchmark.
pub async fn run() -> anyhow::Result<Report> {
    lab::down(LAB);
    let _guard = LabGuard(LAB);
    eprintln!("bench mesh: a 2-node lab with a published service whose task is on n2 ...");
    let lab = lab::up(LAB, 2, 1).await?;
    let n1 = lab.client("n1")?;
    let _: NetworkInfo = n1
        .post(
            "/v1/networks",
            &NetworkSpec {
                name: "mesh".into(),
                attachable: true,
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
                publish: (0..4).map(|i| publish(9000 + i, 5000 + i)).collect(),
                endpoint_mode: EndpointMode::Vip,
                labels: Default::default(),
                command: Vec::new(),
                ..Default::default()
            },
        )
        .await?;
    let mut ends = Vec::new();
    for (host, sb, service) in [("n2", "task", Some("bulk")), ("n1", "near", None)] {
        let ns = topology::ns_name(LAB, sb);
        netns::create(&ns)?;
        let req = AttachRequest {
            network: "mesh".into(),
            netns: ns.clone(),
            service: service.map(String::from),
            ..Default::default()
        };
        let e: EndpointInfo = lab.client(host)?.post("/v1/attach", &req).await?;
        ends.push((netns::path_of(&ns), endpoint_ip(&e)?));
    }
    let (task_ns, task_ip) = ends[0].clone();
    let near_ns = ends[1].0.clone();
    let client_ns = netns::path_of(&topology::ns_name(LAB, "client"));
    let node = topology::node_ip(1);
    // The routing mesh learns of the task through the state; give it a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let figures = tokio::task::spawn_blocking(move || -> anyhow::Result<[f64; 6]> {
        let median = |client: &std::path::Path, to: IpAddr, published: bool, port: u16| {
            let mut v = Vec::new();
            for i in 0..SAMPLES as u16 {
                let target = 5000 + (port + i) % 2;
                let bind = SocketAddr::new(IpAddr::V4(task_ip), target);
                let connect = SocketAddr::new(to, if published { 4000 + target } else { target });
                v.push(throughput_to(&task_ns, bind, client, connect, 1, SAMPLE)?);
            }
            v.sort_by(|a, b| a.total_cmp(b));
            anyhow::Ok(v[v.len() / 2])
        };
        eprintln!("bench mesh: throughput through the published port ...");
        let published = median(&client_ns, node, true, 0)?;
        let published_near = median(&near_ns, node, true, 0)?;
        eprintln!("bench mesh: throughput straight to the task ...");
        let direct = median(&near_ns, IpAddr::V4(task_ip), false, 0)?;
        eprintln!("bench mesh: new connections per second ...");
        let rate = |client: &std::path::Path, connect: SocketAddr, target: u16| {
            connection_rate(
                &task_ns,
                SocketAddr::new(IpAddr::V4(task_ip), target),
                client,
                connect,
                Duration::from_secs(3),
            )
        };
        let published_rate = rate(&client_ns, SocketAddr::new(node, 9002), 5002)?;
        let published_near_rate = rate(&near_ns, SocketAddr::new(node, 9002), 5002)?;
        let direct_rate = rate(&near_ns, SocketAddr::new(IpAddr::V4(task_ip), 5003), 5003)?;
        Ok([
            published,
            direct,
            published_rate,
            direct_rate,
            published_near,
            published_near_rate,
        ])
    })
    .await??;
    let mut r = Report::new("mesh");
    r.add(
        "TCP 1 stream through a published port (task on another node)",
        figures[0],
        "Gbit/s",
        "straight to the task",
        figures[1],
    );
    r.add(
        "new TCP connections through a published port",
        figures[2],
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
        "Published: from the lab's client host to node n1's underlay address, DNAT in n1's nftables to the task on n2 over the overlay. Straight: from a sandbox on n1 to the task's overlay address; \"same sandbox\" rows go from that sandbox to n1's published port, so only the mesh differs. Medians of {SAMPLES} samples of {} s; connections carry a 1-byte request and answer. Goal: published ≥ 0.9× straight.",
        SAMPLE.as_secs()
    ));
    Ok(r)
}
