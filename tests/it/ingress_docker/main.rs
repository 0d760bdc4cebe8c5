//! The ingress's Docker provider on a lab with a real dockerd (Debian's docker.io) and
//! the busybox image imported offline: routes from container labels (Træfik's and
//! docker-flow-proxy's) are in force within 1 s of `docker run` and gone within 1 s of
//! `docker stop` (out of the routes as the stop begins, while it still drains), a
//! container whose HEALTHCHECK fails gets no traffic, and a Swarm
//! service's labels balance over its tasks. The proxy under test is the agent's
//! (`--ingress-docker`, on n1:80) and `shoal proxy --docker` run inside n1.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use shoal_tests::net::http_request;
use shoal_tests::{wait_until, Lab, Output};

mod swarm;

const BIN: &str = env!("CARGO_BIN_EXE_shoal");
const IMAGE: &str = "busybox:local";
/// The lab's Docker network (a bridge in n1's namespace).
const SUBNET: &str = "10.77.0.0/24";

fn docker_cli() -> &'static str {
    if std::path::Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

/// Runs `docker ARGS` against n1's dockerd.
fn docker(lab: &Lab, args: &[&str]) -> Output {
    let out = Command::new(docker_cli())
        .args(args)
        .env(
            "DOCKER_HOST",
            format!("unix:///run/shoal/labs/{}/n1.docker.sock", lab.name),
        )
        .output()
        .expect("run docker");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

fn docker_ok(lab: &Lab, args: &[&str]) -> String {
    let out = docker(lab, args);
    assert!(out.ok(), "docker {}: {}", args.join(" "), out.stderr);
    out.stdout
}

/// A one-node lab whose agent routes n1's Docker containers, with the busybox image
/// and a bridge network `web`.
fn lab(extra: &[&str]) -> Lab {
    shoal_tests::require_program(
        "ingress_docker",
        "dockerd",
        "apt-get install docker.io busybox-static",
    );
    let mut args = vec!["--docker", "--agent-arg=--ingress-docker"];
    args.extend(extra);
    let lab = Lab::up_with(BIN, 1, 1, &args);
    let rootfs = shoal_tests::busybox_rootfs(&lab.name);
    let import = Command::new("sh")
        .args([
            "-c",
            &format!(
                "tar -C {} -c . | {} import - {IMAGE}",
                rootfs.display(),
                docker_cli()
            ),
        ])
        .env(
            "DOCKER_HOST",
            format!("unix:///run/shoal/labs/{}/n1.docker.sock", lab.name),
        )
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let _ = std::fs::remove_dir_all(&rootfs);
    docker_ok(&lab, &["network", "create", "--subnet", SUBNET, "web"]);
    lab
}

/// A busybox httpd answering `body` at `/` and `/api/`, that ends `on_term` on SIGTERM
/// (`exit 0`: at once).
fn httpd(body: &str, on_term: &str) -> Vec<String> {
    let script = format!(
        "trap '{on_term}' TERM; busybox mkdir -p /www/api; echo {body} > /www/index.html; \
         echo {body} > /www/api/index.html; httpd -f -p 80 -h /www & wait"
    );
    vec!["sh".into(), "-c".into(), script]
}

/// `docker run -d --network web OPTS busybox httpd(body)`.
fn run(lab: &Lab, name: &str, body: &str, opts: &[&str]) {
    run_until(lab, name, body, "exit 0", opts);
}

/// [`run`] with a container that runs `on_term` when it is stopped.
fn run_until(lab: &Lab, name: &str, body: &str, on_term: &str, opts: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "--network", "web"];
    args.extend(opts);
    args.push(IMAGE);
    let cmd = httpd(body, on_term);
    args.extend(cmd.iter().map(String::as_str));
    docker_ok(lab, &args);
}

/// GET `path` with `Host: host` from the client host to `addr`; (status, trimmed body).
fn get(lab: &Lab, addr: SocketAddr, host: &str, path: &str) -> Option<(u16, String)> {
    http_request(&lab.host_ns("client"), addr, host, path)
        .map(|(status, body)| (status, body.trim().to_string()))
}

/// The agent's ingress on n1.
fn ingress(lab: &Lab) -> SocketAddr {
    format!("{}:80", lab.ip("n1")).parse().unwrap()
}

/// Polls every 10 ms until `check` holds; returns how long that took, or panics after
/// `within`.
fn time_until(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Duration {
    let start = Instant::now();
    loop {
        let last = match check() {
            Ok(()) => return start.elapsed(),
            Err(e) => e,
        };
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?}: {last}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `host``path` answers 200 with `body` through `addr`.
fn serves(lab: &Lab, addr: SocketAddr, host: &str, path: &str, body: &str) {
    wait_until(
        &format!("{host}{path} to answer {body}"),
        Duration::from_secs(10),
        || match get(lab, addr, host, path) {
            Some((200, b)) if b == body => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}

#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn a_labelled_container_is_routed_within_a_second_and_unrouted_within_a_second_of_stop() {
    let lab = lab(&[]);
    let at = ingress(&lab);
    assert_eq!(get(&lab, at, "x.test", "/").map(|r| r.0), Some(404));
    run(
        &lab,
        "xapp",
        "hello-x",
        &[
            "-l",
            "traefik.http.routers.x.rule=Host(`x.test`)",
            "--expose",
            "80",
        ],
    );
    let routed = time_until("the route of x", Duration::from_secs(5), || {
        match get(&lab, at, "x.test", "/") {
            Some((404, _)) | None => Err("not routed".into()),
            Some(_) => Ok(()),
        }
    });
    eprintln!("docker run → route in force: {routed:?}");
    assert!(routed < Duration::from_secs(1), "routed after {routed:?}");
    serves(&lab, at, "x.test", "/", "hello-x");
    // The default rule routes an unlabelled container by its name; a port label
    // stands in for an exposed port.
    run(
        &lab,
        "plain",
        "hello-plain",
        &["-l", "traefik.http.services.p.loadbalancer.server.port=80"],
    );
    serves(&lab, at, "plain", "/", "hello-plain");

    let start = Instant::now();
    docker_ok(&lab, &["stop", "xapp"]);
    let stopped = start.elapsed();
    let gone = time_until(
        "the route of x to go",
        Duration::from_secs(5),
        || match get(&lab, at, "x.test", "/") {
            Some((404, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    eprintln!("docker stop took {stopped:?}; then route gone after {gone:?}");
    assert!(gone < Duration::from_secs(1), "gone after {gone:?}");
    serves(&lab, at, "plain", "/", "hello-plain");
}

#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn a_container_being_stopped_gets_no_new_requests_while_it_shuts_down() {
    let lab = lab(&[]);
    let at = ingress(&lab);
    // On SIGTERM it keeps serving for 3 s, as a server draining its connections does.
    run_until(
        &lab,
        "slow",
        "slow",
        "sleep 3; exit 0",
        &[
            "-l",
            "traefik.http.routers.s.rule=Host(`slow.test`)",
            "--expose",
            "80",
        ],
    );
    serves(&lab, at, "slow.test", "/", "slow");
    let stopping = {
        let name = lab.name.clone();
        std::thread::spawn(move || {
            Command::new(docker_cli())
                .args(["stop", "slow"])
                .env(
                    "DOCKER_HOST",
                    format!("unix:///run/shoal/labs/{name}/n1.docker.sock"),
                )
                .output()
                .unwrap()
        })
    };
    let gone = time_until(
        "slow.test to leave the routes",
        Duration::from_secs(2),
        || match get(&lab, at, "slow.test", "/") {
            Some((404, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    eprintln!("docker stop started → no new requests after {gone:?}");
    // It is still running and still answers: the route left when the stop began, not
    // when the container died.
    assert_eq!(
        docker_ok(&lab, &["inspect", "-f", "{{.State.Running}}", "slow"]),
        "true"
    );
    assert_eq!(
        docker_ok(
            &lab,
            &["exec", "slow", "wget", "-q", "-O", "-", "http://127.0.0.1/"]
        ),
        "slow"
    );
    assert!(stopping.join().unwrap().status.success());
    assert_eq!(get(&lab, at, "slow.test", "/").map(|r| r.0), Some(404));
}

#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn a_container_whose_healthcheck_fails_gets_no_traffic() {
    let lab = lab(&[]);
    let at = ingress(&lab);
    let labels = [
        "-l",
        "traefik.http.routers.h.rule=Host(`h.test`)",
        "-l",
        "traefik.http.routers.h.service=h",
        "-l",
        "traefik.http.services.h.loadbalancer.server.port=80",
        "--health-interval",
        "1s",
    ];
    // A busy machine may fail one check of the good one: it needs three in a row.
    let mut good = labels.to_vec();
    good.extend([
        "--health-retries",
        "3",
        "--health-cmd",
        "wget -q -O /dev/null http://127.0.0.1/",
    ]);
    let mut bad = labels.to_vec();
    bad.extend(["--health-retries", "1", "--health-cmd", "exit 1"]);
    run(&lab, "sick", "sick", &bad);
    run(&lab, "well", "well", &good);
    // While both are starting, neither gets traffic.
    let status = |c: &str| docker_ok(&lab, &["inspect", "-f", "{{.State.Health.Status}}", c]);
    if status("well") == "starting" {
        assert_eq!(get(&lab, at, "h.test", "/").map(|r| r.0), Some(404));
    }
    serves(&lab, at, "h.test", "/", "well");
    wait_until("sick to be unhealthy", Duration::from_secs(10), || {
        let s = status("sick");
        if s == "unhealthy" {
            Ok(())
        } else {
            Err(s)
        }
    });
    for _ in 0..20 {
        assert_eq!(
            get(&lab, at, "h.test", "/"),
            Some((200, "well".to_string()))
        );
    }
    // The healthy one stopped: nothing is left to send traffic to.
    docker_ok(&lab, &["stop", "well"]);
    wait_until("h.test to go", Duration::from_secs(5), || {
        match get(&lab, at, "h.test", "/") {
            Some((404, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn a_docker_flow_proxy_container_is_reached_at_its_domain_and_path() {
    let lab = lab(&[]);
    let at = ingress(&lab);
    run(
        &lab,
        "books",
        "books",
        &[
            "-l",
            "com.df.notify=true",
            "-l",
            "com.df.distribute=true",
            "-l",
            "com.df.serviceDomain=books.test",
            "-l",
            "com.df.servicePath=/api",
            "-l",
            "com.df.port=80",
        ],
    );
    serves(&lab, at, "books.test", "/api/", "books");
    assert_eq!(get(&lab, at, "books.test", "/").map(|r| r.0), Some(404));
    assert_eq!(get(&lab, at, "other.test", "/api/").map(|r| r.0), Some(404));
}

#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn shoal_proxy_docker_follows_labels_and_a_dockerd_restart() {
    let lab = lab(&["--docker-arg=--live-restore"]);
    let listen = format!("{}:8080", lab.ip("n1"));
    let at: SocketAddr = listen.parse().unwrap();
    let socket = format!("unix:///run/shoal/labs/{}/n1.docker.sock", lab.name);
    let mut proxy = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.host_ns("n1")))
        .args([
            BIN,
            "proxy",
            "--docker",
            &socket,
            "--entrypoint",
            &format!("web={listen}"),
        ])
        .args(["--docker-exposed-by-default=false"])
        .spawn()
        .expect("start shoal proxy");
    let _stop = KillOnDrop(proxy.id());
    run(
        &lab,
        "on",
        "on",
        &["-l", "traefik.enable=true", "--expose", "80"],
    );
    run(&lab, "off", "off", &["--expose", "80"]);
    serves(&lab, at, "on", "/", "on");
    assert_eq!(get(&lab, at, "off", "/").map(|r| r.0), Some(404));
    // A bad label takes out only its own container.
    run(
        &lab,
        "bad",
        "bad",
        &[
            "-l",
            "traefik.enable=true",
            "-l",
            "traefik.http.routers.b.rule=Hots(`b`)",
            "--expose",
            "80",
        ],
    );
    serves(&lab, at, "on", "/", "on");

    // dockerd goes away and comes back (its containers live on): routes stay, and
    // a container started afterwards is routed once the provider reconnects.
    let out = lab.cli(&["lab", "kill", "--name", &lab.name, "--dockerd", "n1"]);
    assert!(out.ok(), "{}", out.stderr);
    serves(&lab, at, "on", "/", "on");
    let out = lab.cli(&["lab", "start", "--name", &lab.name, "--dockerd", "n1"]);
    assert!(out.ok(), "{}", out.stderr);
    run(
        &lab,
        "late",
        "late",
        &["-l", "traefik.enable=true", "--expose", "80"],
    );
    serves(&lab, at, "late", "/", "late");
    assert!(proxy.try_wait().unwrap().is_none(), "shoal proxy exited");
}

/// Ends a process the test started, by its ID.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}
