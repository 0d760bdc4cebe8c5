//! A lab for one test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The result of running a command.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Whether the command succeeded.
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// Runs `cmd` to its end, capturing its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running lab, removed when dropped.
pub struct Lab {
    /// The lab's name.
    pub name: String,
    bin: PathBuf,
    status: Value,
    /// What `shoal lab up` printed.
    pub up_stdout: String,
}

impl Lab {
    /// A unique lab name for this test process.
    pub fn unique_name() -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        format!("t{}x{n}", std::process::id() % 100_000)
    }

    /// Builds a lab of `nodes` nodes, the first `managers` of them managers.
    pub fn up(bin: &str, nodes: usize, managers: usize) -> Lab {
        Self::up_with(bin, nodes, managers, &[])
    }

    /// Like [`up_with`](Self::up_with), with the hosts' DNS forwarded to a resolver on
    /// the client host ([`UPSTREAM`](crate::net::UPSTREAM)) that knows `example.test`
    /// as 192.0.2.7 ([`fake_upstream`](crate::net::fake_upstream)).
    pub fn up_with_upstream(bin: &str, nodes: usize, managers: usize, extra: &[&str]) -> Lab {
        let mut args = vec!["--dns-upstream", crate::net::UPSTREAM];
        args.extend(extra);
        let lab = Self::up_with(bin, nodes, managers, &args);
        crate::net::fake_upstream(
            &lab.host_ns("client"),
            crate::net::at("198.18.0.250", 53),
            "example.test",
            std::net::Ipv4Addr::new(192, 0, 2, 7),
        );
        lab
    }

    /// Like [`up`](Self::up), with more `shoal lab up` arguments.
    pub fn up_with(bin: &str, nodes: usize, managers: usize, extra: &[&str]) -> Lab {
        let name = Self::unique_name();
        let bin = PathBuf::from(bin);
        run(Command::new(&bin).args(["lab", "down", "--name", &name]));
        let mut lab = Lab {
            name,
            bin,
            status: Value::Null,
            up_stdout: String::new(),
        };
        let name = lab.name.clone();
        let (n, m) = (nodes.to_string(), managers.to_string());
        let mut args = vec![
            "lab",
            "up",
            "--name",
            &name,
            "--nodes",
            &n,
            "--managers",
            &m,
        ];
        args.extend(extra);
        let out = lab.cli(&args);
        assert!(out.ok(), "lab up failed:\n{}\n{}", out.stdout, out.stderr);
        lab.up_stdout = out.stdout;
        let status = lab.cli(&[
            "lab",
            "status",
            "--name",
            &lab.name.clone(),
            "--format",
            "json",
        ]);
        assert!(status.ok(), "lab status failed: {}", status.stderr);
        lab.status = serde_json::from_str(&status.stdout).expect("lab status is JSON");
        lab
    }

    /// Runs `shoal ARGS` in the machine's namespace (lab management commands).
    pub fn cli(&self, args: &[&str]) -> Output {
        run(Command::new(&self.bin).args(args))
    }

    fn host(&self, host: &str) -> &Value {
        self.status["hosts"]
            .as_array()
            .and_then(|hs| hs.iter().find(|h| h["name"] == host))
            .unwrap_or_else(|| panic!("lab {} has no host {host}", self.name))
    }

    /// The agent socket of `host`.
    pub fn socket(&self, host: &str) -> String {
        self.host(host)["socket"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The name `wg show` knows `host`'s encrypted data path by.
    pub fn wg_interface(&self, host: &str) -> String {
        self.host(host)["wg_interface"]
            .as_str()
            .unwrap_or_else(|| panic!("no wg_interface for {host} in the lab status"))
            .to_string()
    }

    /// The underlay address of `host`.
    pub fn ip(&self, host: &str) -> String {
        self.host(host)["underlay_ip"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `shoal ARGS` against the agent of `host`.
    pub fn shoal(&self, host: &str, args: &[&str]) -> Output {
        let socket = format!("unix://{}", self.socket(host));
        run(Command::new(&self.bin).arg("--host").arg(socket).args(args))
    }

    /// Like [`shoal`](Self::shoal), but the command must succeed; returns stdout.
    pub fn ok(&self, host: &str, args: &[&str]) -> String {
        let out = self.shoal(host, args);
        assert!(
            out.ok(),
            "`shoal {}` on {host} failed: {}{}",
            args.join(" "),
            out.stderr,
            out.stdout
        );
        out.stdout
    }

    /// Like [`shoal`](Self::shoal), but the command must fail; returns stderr.
    pub fn fails(&self, host: &str, args: &[&str]) -> String {
        let out = self.shoal(host, args);
        assert!(
            !out.ok(),
            "`shoal {}` on {host} should have failed but printed: {}",
            args.join(" "),
            out.stdout
        );
        out.stderr
    }

    /// Runs a JSON-printing command on `host` and parses its output.
    pub fn json(&self, host: &str, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["--format", "json"]);
        let out = self.ok(host, &full);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Creates service `name` on `network`, its one task on `node`, running `shoal tool
    /// peer` on `port`, published as `published=PORT,target=PORT,OPTIONS` over TCP and
    /// the same over UDP.
    pub fn published_peer(&self, name: &str, network: &str, node: &str, port: u16, options: &str) {
        let publish = format!("published={port},target={port},{options}");
        let udp = format!("{publish},protocol=udp");
        let constraint = format!("node.hostname=={node}");
        let port = port.to_string();
        let bin = self.bin.to_string_lossy().into_owned();
        self.create_service(
            &[
                "--name",
                name,
                "--network",
                network,
                "--publish",
                &publish,
                "--publish",
                &udp,
                "--constraint",
                &constraint,
            ],
            &[&bin, "tool", "peer", "--port", &port],
        );
    }

    /// `shoal service create ARGS -- COMMAND` on n1.
    pub fn create_service(&self, args: &[&str], command: &[&str]) {
        let mut full = vec!["service", "create"];
        full.extend(args);
        full.push("--");
        full.extend(command);
        self.ok("n1", &full);
    }

    /// `shoal service ps SERVICE` on n1, as JSON tasks.
    pub fn tasks(&self, service: &str) -> Vec<Value> {
        self.json("n1", &["service", "ps", service])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `service` has `n` running tasks.
    pub fn wait_running(&self, service: &str, n: usize) {
        crate::wait_until(
            &format!("{n} running tasks of {service}"),
            std::time::Duration::from_secs(30),
            || {
                let t = self.tasks(service);
                let up = t.iter().filter(|t| t["state"] == "running").count();
                if up == n {
                    Ok(())
                } else {
                    Err(format!("{up} running"))
                }
            },
        );
    }

    /// Runs a program inside `host`'s namespace.
    pub fn exec(&self, host: &str, command: &[&str]) -> Output {
        let mut args = vec!["lab", "exec", "--name", &self.name, host, "--"];
        args.extend(command);
        self.cli(&args)
    }

    /// Stops `host`'s agent with `signal` (TERM or KILL).
    pub fn kill(&self, host: &str, signal: &str) {
        let out = self.cli(&[
            "lab", "kill", "--name", &self.name, "--signal", signal, host,
        ]);
        assert!(out.ok(), "lab kill {host}: {}", out.stderr);
    }

    /// Cuts `host` off the underlay (its eth0 goes down).
    pub fn cut(&self, host: &str) {
        let ns = format!("shl-{}-{host}", self.name);
        let out = crate::sandbox::exec_in(&ns, &["ip", "link", "set", "eth0", "down"]);
        assert!(out.ok(), "cutting {host}: {}", out.stderr);
    }

    /// Runs `shoal lab VERB --name LAB ARGS` (a fault command), which must succeed;
    /// returns its stdout.
    pub fn fault(&self, verb: &str, args: &[&str]) -> String {
        let mut full = vec!["lab", verb, "--name", &self.name];
        full.extend(args);
        let out = self.cli(&full);
        assert!(
            out.ok(),
            "`shoal lab {verb} {}` failed: {}{}",
            args.join(" "),
            out.stderr,
            out.stdout
        );
        out.stdout
    }

    /// Cuts the network between groups of hosts: `partition("n1,n2 / n3")`.
    pub fn partition(&self, groups: &str) -> String {
        let args: Vec<&str> = groups.split_whitespace().collect();
        self.fault("partition", &args)
    }

    /// Removes every fault.
    pub fn heal(&self) -> String {
        self.fault("heal", &[])
    }

    /// Freezes `host`'s agent (SIGSTOP).
    pub fn pause(&self, host: &str) -> String {
        self.fault("pause", &[host])
    }

    /// Lets `host`'s agent run again.
    pub fn resume(&self, host: &str) -> String {
        self.fault("resume", &[host])
    }

    /// `lab slow HOST ARGS` (`--loss 30`, `--rate 1mbit`, ...).
    pub fn slow(&self, host: &str, args: &[&str]) -> String {
        let mut full = vec![host];
        full.extend(args);
        self.fault("slow", &full)
    }

    /// Fills `host`'s data directory (a lab built with `--data-tmpfs`).
    pub fn fill(&self, host: &str) -> String {
        self.fault("fill", &[host])
    }

    /// Restarts `host`'s agent with its monotonic clocks shifted (`+30s`).
    pub fn clock(&self, host: &str, jump: &str) -> String {
        self.fault("clock", &[host, "--jump", jump])
    }

    /// Starts `host`'s agent again.
    pub fn start(&self, host: &str) {
        let out = self.cli(&["lab", "start", "--name", &self.name, host]);
        assert!(out.ok(), "lab start {host}: {}", out.stderr);
    }

    /// The agent log of `host`.
    pub fn log(&self, host: &str) -> String {
        std::fs::read_to_string(
            Path::new("/run/shoal/labs")
                .join(&self.name)
                .join(format!("{host}.log")),
        )
        .unwrap_or_default()
    }

    /// The names of the hosts that run agents.
    pub fn nodes(&self) -> Vec<String> {
        self.status["hosts"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .filter(|h| h["role"] != "client")
                    .filter_map(|h| h["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for host in self.nodes() {
                let log = self.log(&host);
                let tail: Vec<&str> = log.lines().rev().take(25).collect();
                eprintln!("---- last log lines of {host} ----");
                for line in tail.into_iter().rev() {
                    eprintln!("{host}: {line}");
                }
            }
        }
        let out = self.cli(&["lab", "down", "--name", &self.name]);
        if !out.ok() {
            eprintln!("lab down {} failed: {}", self.name, out.stderr);
        }
    }
}
