//! `shoal bench docker`: Docker containers on a shoal network across two lab hosts,
//! against shoal's own sandboxes and against Docker's own overlay driver between the
//! same hosts, in the same run; and how long `docker run` takes until the container
//! reaches a peer on another host, against Docker's bridge network on one host.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use shoal_bench::report::Report;
use shoal_control::api::NetworkInfo;

use super::overlay::{measure_interleaved, shoal_network, Figures, Pair};
use super::LabGuard;
use crate::lab::{self, docker::DockerPaths, LabOptions, LabPaths};

/// The lab the bench runs on (also `shoal bench docker-routes`'s).
pub(super) const LAB: &str = "benchdk";
/// The image every host gets.
pub(super) const IMAGE: &str = "busybox:bench";
/// `docker run` timings per figure (the median is reported).
const RUNS: usize = 7;
/// A container command that ends at once on SIGTERM.
const SLEEP: &str = "trap exit TERM; sleep 3600 & wait";

/// Runs `docker ARGS` against `host`'s dockerd in the bench lab; its output.
pub(super) fn docker(host: &str, args: &[&str]) -> anyhow::Result<String> {
    let d = DockerPaths::new(&LabPaths::new(LAB), host);
    let out = Command::new(super::tools::which("docker").unwrap_or_else(|| "docker".into()))
        .args(args)
        .env("DOCKER_HOST", d.host())
        .output()
        .context("docker")?;
    if !out.status.success() {
        bail!(
            "docker {} on {host}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A busybox image with `applets`, imported offline on every host.
pub(super) fn import_busybox(hosts: &[&str], applets: &[&str]) -> anyhow::Result<()> {
    let tarball = super::tools::busybox_tarball(LAB, applets)?;
    let imported = hosts.iter().try_for_each(|host| {
        let d = DockerPaths::new(&LabPaths::new(LAB), host);
        let docker = super::tools::which("docker").unwrap_or_else(|| "docker".into());
        let ok = Command::new(docker)
            .args(["import", "-", IMAGE])
            .stdin(std::fs::File::open(&tarball)?)
            .stdout(std::process::Stdio::null())
            .env("DOCKER_HOST", d.host())
            .status()?
            .success();
        if !ok {
            bail!("docker import on {host} failed");
        }
        Ok(())
    });
    let _ = std::fs::remove_file(&tarball);
    imported
}

/// A container's address on `network` and its network namespace.
fn container(host: &str, name: &str, network: &str) -> anyhow::Result<(Ipv4Addr, PathBuf)> {
    let f = format!(
        "{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}} {{{{.State.Pid}}}}"
    );
    let out = docker(host, &["inspect", "-f", &f, name])?;
    let (ip, pid) = out.split_once(' ').context("docker inspect")?;
    Ok((ip.parse()?, PathBuf::from(format!("/proc/{pid}/ns/net"))))
}

/// Two containers, on n1 and n2, on Docker network `network`.
fn container_pair(network: &str, prefix: &str) -> anyhow::Result<Pair> {
    for host in ["n1", "n2"] {
        let name = format!("{prefix}-{host}");
        docker(
            host,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                network,
                IMAGE,
                "sh",
                "-c",
                SLEEP,
            ],
        )?;
    }
    let (_, client) = container("n1", &format!("{prefix}-n1"), network)?;
    let (server_ip, server) = container("n2", &format!("{prefix}-n2"), network)?;
    Ok(Pair {
        client,
        server,
        server_ip: server_ip.into(),
    })
}

/// The median time of `docker run` on `host` until its container pings `peer`.
fn run_until_reached(host: &str, network: &str, peer: Ipv4Addr) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        docker(
            host,
            &[
                "run",
                "--rm",
                "--network",
                network,
                IMAGE,
                "ping",
                "-c",
                "1",
                "-W",
                "2",
                &peer.to_string(),
            ],
        )?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

/// Runs the benchmark.
pub async fn run() -> anyhow::Result<Report> {
    lab::down(LAB);
    let _guard = LabGuard(LAB);
    super::tools::apt("dockerd", "docker.io").map_err(anyhow::Error::msg)?;
    eprintln!("bench docker: a 2-node lab with a dockerd per host ...");
    let options = LabOptions {
        docker: true,
        ..Default::default()
    };
    let lab = lab::up_with(LAB, 2, 1, &options).await?;
    import_busybox(&["n1", "n2"], &["sh", "sleep", "ping"])?;
    // shoal networks first: once the hosts are in a Swarm, Docker wants managed plugins.
    docker(
        "n1",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "web",
        ],
    )?;
    let subnet = {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let n: anyhow::Result<NetworkInfo> = lab.client("n1")?.get("/v1/networks/web").await;
            match n {
                Ok(n) => break n.subnet.context("the network has no IPv4 subnet")?,
                Err(_) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => return Err(e),
            }
        }
    };
    docker(
        "n2",
        &[
            "network",
            "create",
            "-d",
            "shoal",
            "--ipam-driver",
            "shoal",
            "--subnet",
            &subnet,
            "web",
        ],
    )?;
    let shoal_docker = container_pair("web", "sh")?;
    let sandboxes = shoal_network(&lab, "sbx", false).await?;
    eprintln!("bench docker: a Swarm for Docker's own overlay driver ...");
    docker(
        "n1",
        &[
            "swarm",
            "init",
            "--advertise-addr",
            "198.18.0.1:2477",
            "--listen-addr",
            "198.18.0.1:2477",
            "--data-path-port",
            "4790",
        ],
    )?;
    let token = docker("n1", &["swarm", "join-token", "-q", "worker"])?;
    docker(
        "n2",
        &[
            "swarm",
            "join",
            "--token",
            &token,
            "--advertise-addr",
            "198.18.0.2:2477",
            "--listen-addr",
            "198.18.0.2:2477",
            "198.18.0.1:2477",
        ],
    )?;
    docker(
        "n1",
        &["network", "create", "-d", "overlay", "--attachable", "ov"],
    )?;
    let overlay = container_pair("ov", "ov")?;
    docker("n1", &["network", "create", "-d", "bridge", "br"])?;
    docker(
        "n1",
        &[
            "run",
            "-d",
            "--name",
            "br-peer",
            "--network",
            "br",
            IMAGE,
            "sh",
            "-c",
            SLEEP,
        ],
    )?;
    let (bridge_peer, _) = container("n1", "br-peer", "br")?;
    let std::net::IpAddr::V4(shoal_peer) = shoal_docker.server_ip else {
        bail!("the container's address on web is not IPv4");
    };
    eprintln!("bench docker: Docker containers and shoal sandboxes on shoal, Docker's overlay, in turn ...");
    let [c, s, o]: [Figures; 3] = measure_interleaved(vec![
        (shoal_docker, 5600),
        (sandboxes, 5700),
        (overlay, 5800),
    ])
    .await?
    .try_into()
    .map_err(|_| anyhow::anyhow!("expected three sets of figures"))?;
    eprintln!("bench docker: docker run until a peer answers ...");
    let run_shoal =
        tokio::task::spawn_blocking(move || run_until_reached("n1", "web", shoal_peer)).await??;
    let run_bridge =
        tokio::task::spawn_blocking(move || run_until_reached("n1", "br", bridge_peer)).await??;
    let mut r = Report::new("docker");
    r.add(
        "TCP 1 stream, container to container across hosts",
        c.one,
        "Gbit/s",
        "shoal sandboxes, same lab",
        s.one,
    );
    r.add(
        "TCP 4 streams",
        c.four,
        "Gbit/s",
        "shoal sandboxes, same lab",
        s.four,
    );
    r.add(
        "TCP 1 stream, container to container across hosts",
        c.one,
        "Gbit/s",
        "Docker's overlay driver",
        o.one,
    );
    r.add(
        "TCP 4 streams",
        c.four,
        "Gbit/s",
        "Docker's overlay driver",
        o.four,
    );
    r.add(
        "request/response p50",
        c.rtt.p50_ms * 1000.0,
        "µs",
        "Docker's overlay driver",
        o.rtt.p50_ms * 1000.0,
    );
    r.add(
        "docker run until a peer on another host answers",
        run_shoal,
        "ms",
        "Docker's bridge network, peer on the same host",
        run_bridge,
    );
    r.notes.push(format!(
        "Containers from a busybox image; TCP from the test's threads inside the containers' namespaces. Docker's overlay runs in a Swarm of the same two hosts (VXLAN on UDP 4790). docker run: median of {RUNS} `docker run --rm ... ping -c 1`. Goals: ≥ 0.95× shoal's sandboxes, ≥ 1.0× Docker's overlay, docker run ≤ 1.1× the bridge."
    ));
    Ok(r)
}
