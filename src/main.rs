//! `shoal`: the command line, the agent, the lab and the benchmarks in one binary.

mod agent;
mod bench;
mod cli;
mod client;
/// The CNI plugin: a pure core (parsing, results, ADD/DEL/CHECK/GC decisions) and its IO.
mod cni;
mod dashboard;
mod docker;
mod l7;
mod lab;
mod options;
mod overlay;
mod status;
mod tasks;

use clap::Parser;
use cli::args::{Cli, Command};

/// mimalloc: the proxy allocates per request (headers, bodies, futures), and glibc's
/// malloc was a visible part of its profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Run by a CNI runtime (under the conflist's `type`): speak CNI, not the CLI.
    if cni::plugin::invoked() {
        let code = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(cni::plugin::run()),
            Err(e) => {
                eprintln!("shoal: cannot start the async runtime: {e}");
                1
            }
        };
        std::process::exit(code);
    }
    let cli = Cli::parse();
    end_quietly_on_a_closed_stdout();
    if matches!(cli.command, Command::Agent(_)) {
        // mimalloc asks for transparent huge pages on its arena: each 2 MiB page touched
        // stays resident, and an agent at rest held about 20 MiB of them for a few MiB
        // of heap (issue 18: 100 agents on one machine). Before any thread starts, so
        // every thread's allocations are covered.
        if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
            eprintln!("shoal: cannot opt out of transparent huge pages: {e}");
        }
    }
    // `shoal proxy --threads 1` serves from one thread, like HAProxy's nbthread 1.
    let mut builder = match &cli.command {
        Command::Proxy(p) if p.threads == 1 => tokio::runtime::Builder::new_current_thread(),
        Command::Proxy(p) if p.threads > 1 => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(p.threads);
            b
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if matches!(cli.command, Command::Agent(_) | Command::Proxy(_)) {
        // Servers take every descriptor the system grants (the ingress sheds idle
        // connections when even those run out).
        if let Err(e) = shoal_ingress::raise_fd_limit() {
            eprintln!("shoal: cannot raise the open-file limit: {e}");
        }
    }
    let code = runtime.block_on(run(cli));
    std::process::exit(code);
}

/// `shoal service ls | head`: when the reader of stdout goes away, end as Unix tools
/// do (killed by SIGPIPE, quietly) instead of panicking in `println!`. SIGPIPE itself
/// stays ignored, so a socket closed under the agent or the CLI is an error to handle,
/// not a death.
fn end_quietly_on_a_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            // SAFETY: restoring the default disposition and raising the signal; the
            // process ends here.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
            std::process::exit(128 + libc::SIGPIPE);
        }
        default(info)
    }));
}

async fn run(cli: Cli) -> i32 {
    let result = dispatch(cli).await;
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", chain(&e));
            1
        }
    }
}

/// The error and its causes, each said once.
fn chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let client = || client::ApiClient::new(cli.host.as_deref());
    match cli.command {
        Command::Agent(args) => agent::run(*args).await.map(|()| 0),
        Command::Cluster(cmd) => cli::cluster(&client()?, cmd).await.map(|()| 0),
        Command::Node(cmd) => cli::node(&client()?, cmd).await.map(|()| 0),
        Command::Status(a) => cli::status::run(&client()?, a).await.map(|()| 0),
        Command::Network(cmd) => cli::network::run(&client()?, cmd).await.map(|()| 0),
        Command::Attach(a) => cli::network::attach(&client()?, a).await.map(|()| 0),
        Command::Service(cmd) => cli::service::run(&client()?, cmd).await.map(|()| 0),
        Command::Tool(cmd) => cli::service::tool(cmd).await.map(|()| 0),
        Command::Detach(d) => cli::network::detach(&client()?, d).await.map(|()| 0),
        Command::Lab(cmd) => cli::lab::run(cmd).await,
        Command::Demo(args) => cli::lab::demo(&args.name).await.map(|()| 0),
        Command::Bench(args) => bench::run(args).await.map(|()| 0),
        Command::Route(cli::args::RouteCmd::Ls(f)) => {
            cli::routes(&client()?, f.format).await.map(|()| 0)
        }
        Command::Proxy(args) => cli::proxy::run(args).await.map(|()| 0),
        Command::DockerPlugin(cmd) => cli::docker_plugin(cli.host.as_deref(), cmd)
            .await
            .map(|()| 0),
        Command::Cni(cmd) => cli::cni(&client()?, cmd).await.map(|()| 0),
    }
}
