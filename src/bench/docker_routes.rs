//! `shoal bench docker-routes`: how soon the agent's ingress (`--ingress-docker`) routes
//! by a Docker change, against Docker's own time for the same change, in the same run.
//!
//! ```text
//!  docker run -l traefik...rule=Host(`rK.test`)  ─▶ the route answers 200
//!                                                 vs the container answering at its own address
//!  docker stop rK                                 ─▶ the route answers 404
//!                                                 vs `docker stop` returning
//!  docker service update -d --label-add …rule=Host(`vK.test`) ─▶ the route answers 200
//!                                                 vs `docker service update -d` returning
//! ```
//! Every probe is a fresh HTTP/1.1 request from the node's namespace, 1 ms apart, to
//! the node's ingress (port 80) and, for the baseline, to the container itself. Træfik's
//! Swarm provider would see a label change on its next poll (every 15 s by default).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use shoal_bench::report::Report;
use shoal_bench::stats::Summary;
use shoal_dataplane::netns;

use super::docker::{docker, import_busybox, IMAGE, LAB};
use super::LabGuard;
use crate::lab::{self, topology, LabOptions};

/// Changes timed per figure.
const SAMPLES: usize = 50;
/// How long one change may take to show before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(10);
/// The Docker network the containers are on (a bridge in the node's namespace).
const SUBNET: &str = "10.77.0.0/24";
/// A container serving its name at `/`, ending at once on SIGTERM.
const HTTPD: &str = "trap 'exit 0' TERM; mkdir -p /www; hostname > /www/index.html; \
                     httpd -f -p 80 -h /www & wait";

/// The status of `GET /` with `Host: host` at `addr`, or `None` if it did not answer.
fn status(addr: SocketAddr, host: &str) -> Option<u16> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Probes every millisecond until `done` holds; the time since `since`.
fn until(what: &str, since: Instant, mut done: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    loop {
        if done() {
            return Ok(since.elapsed());
        }
        if since.elapsed() > PATIENCE {
            bail!("{what}: not within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Times of each change, and Docker's own for the same change.
#[derive(Default)]
struct Timings {
    routed: Vec<Duration>,
    answered: Vec<Duration>,
    gone: Vec<Duration>,
    stopped: Vec<Duration>,
    relabelled: Vec<Duration>,
    updated: Vec<Duration>,
}

/// `docker run` then `docker stop` of labelled containers, one at a time.
fn containers(ingress: SocketAddr, t: &mut Timings) -> anyhow::Result<()> {
    for i in 0..SAMPLES {
        let (name, host) = (format!("r{i}"), format!("r{i}.test"));
        let rule = format!("traefik.http.routers.r{i}.rule=Host(`{host}`)");
        let start = Instant::now();
        docker(
            "n1",
            &[
                "run",
                "-d",
                "--name",
                &name,
                "--hostname",
                &name,
                "--network",
                "web",
                "-l",
                &rule,
                "--expose",
                "80",
                IMAGE,
                "sh",
                "-c",
                HTTPD,
            ],
        )?;
        let ip: IpAddr = docker(
            "n1",
            &[
                "inspect",
                "-f",
                "{{.NetworkSettings.Networks.web.IPAddress}}",
                &name,
            ],
        )?
        .parse()
        .context("the container's address")?;
        let own = SocketAddr::new(ip, 80);
        let (mut routed, mut answered) = (None, None);
        until(&format!("{name} to answer"), start, || {
            if answered.is_none() && status(own, &host) == Some(200) {
                answered = Some(start.elapsed());
            }
            if routed.is_none() && status(ingress, &host) == Some(200) {
                routed = Some(start.elapsed());
            }
            routed.is_some() && answered.is_some()
        })?;
        t.routed.extend(routed);
        t.answered.extend(answered);
        let start = Instant::now();
        docker("n1", &["stop", &name])?;
        t.stopped.push(start.elapsed());
        let gone = until(&format!("the route of {name} to go"), start, || {
            status(ingress, &host) == Some(404)
        })?;
        t.gone.push(gone);
        docker("n1", &["rm", &name])?;
    }
    Ok(())
}

/// A single-node Swarm and one service whose router rule changes `SAMPLES` times.
fn swarm(node: IpAddr, ingress: SocketAddr, t: &mut Timings) -> anyhow::Result<()> {
    let listen = format!("{node}:2477");
    docker(
        "n1",
        &[
            "swarm",
            "init",
            "--advertise-addr",
            &listen,
            "--listen-addr",
            &listen,
            "--data-path-port",
            "4790",
        ],
    )?;
    docker(
        "n1",
        &[
            "network",
            "create",
            "-d",
            "bridge",
            "--scope",
            "swarm",
            "--attachable",
            "--subnet",
            "10.78.0.0/24",
            "tasks",
        ],
    )?;
    let key = "traefik.http.routers.v.rule";
    docker(
        "n1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "v",
            "--network",
            "tasks",
            "--label",
            &format!("{key}=Host(`v0.test`)"),
            "--label",
            "traefik.http.services.v.loadbalancer.server.port=80",
            IMAGE,
            "sh",
            "-c",
            HTTPD,
        ],
    )?;
    let start = Instant::now();
    until("the service's first route", start, || {
        status(ingress, "v0.test") == Some(200)
    })?;
    for k in 1..=SAMPLES {
        let host = format!("v{k}.test");
        let start = Instant::now();
        docker(
            "n1",
            &[
                "service",
                "update",
                "-d",
                "--label-add",
                &format!("{key}=Host(`{host}`)"),
                "v",
            ],
        )?;
        t.updated.push(start.elapsed());
        t.relabelled
            .push(until(&format!("{host} to be routed"), start, || {
                status(ingress, &host) == Some(200)
            })?);
    }
    Ok(())
}

/// Runs the benchmark.
pub async fn run() -> anyhow::Result<Report> {
    lab::down(LAB);
    let _guard = LabGuard(LAB);
    super::tools::apt("dockerd", "docker.io").map_err(anyhow::Error::msg)?;
    eprintln!(
        "bench docker-routes: a 1-node lab with a dockerd and the agent's ingress following it ..."
    );
    let options = LabOptions {
        docker: true,
        agent_args: vec!["--ingress-docker".into()],
        ..Default::default()
    };
    let lab = lab::up_with(LAB, 1, 1, &options).await?;
    import_busybox(&["n1"], &["sh", "httpd", "mkdir", "hostname"])?;
    docker("n1", &["network", "create", "--subnet", SUBNET, "web"])?;
    let node = lab.host("n1")?.underlay_ip;
    let ingress = SocketAddr::new(node, 80);
    let ns = netns::open(&topology::ns_name(LAB, "n1"))?;
    eprintln!("bench docker-routes: {SAMPLES} containers run and stopped, then {SAMPLES} Swarm label changes ...");
    let t = netns::run_in(&ns, move || -> anyhow::Result<Timings> {
        let mut t = Timings::default();
        containers(ingress, &mut t)?;
        swarm(node, ingress, &mut t)?;
        Ok(t)
    })??;
    let mut r = Report::new("docker-routes");
    let figures = [
        (
            "docker run → route in force",
            &t.routed,
            "the container answering at its own address",
            &t.answered,
        ),
        (
            "docker stop → route gone",
            &t.gone,
            "docker stop returning",
            &t.stopped,
        ),
        (
            "Swarm service label change → route in force",
            &t.relabelled,
            "docker service update -d returning",
            &t.updated,
        ),
    ];
    for (name, ours, baseline, theirs) in figures {
        let (ours, theirs) = (Summary::of(ours), Summary::of(theirs));
        r.add(
            &format!("{name}, p50"),
            ours.p50_ms,
            "ms",
            baseline,
            theirs.p50_ms,
        );
        r.add(
            &format!("{name}, p99"),
            ours.p99_ms,
            "ms",
            baseline,
            theirs.p99_ms,
        );
    }
    r.notes.push(format!(
        "{SAMPLES} changes each on one lab node (its own dockerd, the agent with --ingress-docker); every time from the start of the docker command until a fresh request through the node's ingress shows the change (probes 1 ms apart). Goal: p99 < 1 s. Træfik's Swarm provider polls every 15 s."
    ));
    Ok(r)
}
