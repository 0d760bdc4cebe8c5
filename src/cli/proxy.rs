//! `shoal proxy`: the L7 proxy alone, without a cluster, with routes from a file
//! (`--config`, re-read on SIGHUP; a file that does not validate leaves the routes in
//! force untouched), from Docker (`--docker`: container and Swarm service labels,
//! followed by the daemon's event stream), or both.
//!
//! ```text
//!  file ──(start, SIGHUP)──┐
//!                          ├─▶ combine (the file's names win) ─▶ proxy.update (ArcSwap)
//!  Docker events ─▶ routes ┘
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use shoal_ingress::config::docker::combine;
use shoal_ingress::config::{Entrypoint, ProxyConfig, Routes};
use shoal_ingress::{Proxy, ProxyOptions};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::args::{docker_endpoint, ProxyArgs};
use crate::docker::engine::Engine;

/// The routes of each source and what was last said about combining them.
#[derive(Default)]
struct Sources {
    file: Routes,
    docker: Routes,
    reported: BTreeSet<String>,
}

impl Sources {
    /// Swaps the combined routes into `proxy`.
    fn apply(&mut self, proxy: &Proxy) {
        let (all, messages) = combine(&self.file, &self.docker);
        let messages: BTreeSet<String> = messages.into_iter().collect();
        for m in messages.difference(&self.reported) {
            tracing::warn!(problem = %m, "route left out");
        }
        self.reported = messages;
        if let Err(e) = proxy.update(all) {
            tracing::error!(error = %e, "routes refused; the previous ones stay");
        }
    }
}

/// The file's entrypoints and the `--entrypoint` flags' (with the trust flags).
fn entrypoints(
    args: &ProxyArgs,
    file: &ProxyConfig,
) -> anyhow::Result<BTreeMap<String, Entrypoint>> {
    let mut all = file.entrypoints.clone();
    let (proxy_protocol, forwarded_headers) = args.trust.trust()?;
    for (name, address) in &args.entrypoints {
        let plain = Entrypoint {
            proxy_protocol: proxy_protocol.clone(),
            forwarded_headers: forwarded_headers.clone(),
            ..Entrypoint::new(*address)
        };
        anyhow::ensure!(
            all.insert(name.clone(), plain).is_none(),
            "--entrypoint {name}: the file defines entrypoint {name} already"
        );
    }
    anyhow::ensure!(
        !all.is_empty(),
        "no entrypoints: add --entrypoint web=0.0.0.0:80, or [entrypoints.web] address = \"0.0.0.0:80\" to the file"
    );
    Ok(all)
}

fn load(args: &ProxyArgs) -> anyhow::Result<ProxyConfig> {
    Ok(match &args.config {
        Some(path) => ProxyConfig::load(path)?,
        None => ProxyConfig {
            entrypoints: BTreeMap::new(),
            routes: Routes::default(),
            tcp_entrypoints: BTreeMap::new(),
        },
    })
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    crate::agent::init_logging(args.log_format);
    let config = load(&args)?;
    let entrypoints = entrypoints(&args, &config)?;
    let docker = match &args.docker {
        Some(value) => Some((
            Engine::from_flag("--docker", &docker_endpoint(value)).map_err(anyhow::Error::msg)?,
            args.docker_routes.settings().map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    let proxy = Proxy::new(args.limits.apply(ProxyOptions {
        access_log: args.access_log.config(),
        tracing: args.tracing.options(),
        ..Default::default()
    }))?;
    let sources = Arc::new(Mutex::new(Sources {
        file: config.routes.clone(),
        ..Default::default()
    }));
    proxy.update(config.routes.clone())?;
    let mut started = proxy.start(&entrypoints).await?;
    for s in &started {
        tracing::info!(entrypoint = %s.entrypoint, address = %s.address, "listening");
    }
    for s in proxy.start_tcp(&config.tcp_entrypoints).await? {
        tracing::info!(entrypoint = %s.entrypoint, address = %s.address, "listening (TCP)");
        started.push(s);
    }
    if let Some(addr) = args.metrics_addr {
        serve_metrics(addr, proxy.clone()).await?;
    }
    let stop = CancellationToken::new();
    if let Some((engine, settings)) = docker {
        let (p, s) = (proxy.clone(), sources.clone());
        tokio::spawn(crate::docker::provider::run(
            engine,
            settings,
            move |routes| {
                let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                s.docker = routes.routes.clone();
                s.apply(&p);
            },
            stop.clone(),
        ));
    }
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&args, &config, &proxy, &sources),
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    stop.cancel();
    for s in started {
        s.task.abort();
    }
    Ok(())
}

/// SIGHUP: the file's routes again (entrypoints change only on restart).
fn reload(args: &ProxyArgs, first: &ProxyConfig, proxy: &Proxy, sources: &Mutex<Sources>) {
    let Some(path) = &args.config else {
        tracing::info!("SIGHUP: no --config file to reload");
        return;
    };
    match ProxyConfig::load(path) {
        Ok(new) => {
            if new.entrypoints != first.entrypoints || new.tcp_entrypoints != first.tcp_entrypoints
            {
                tracing::warn!(
                    "entrypoint changes take effect on restart; only the routes are reloaded"
                );
            }
            if let Err(e) = new.routes.validate() {
                tracing::error!(error = %e, "routes refused; the previous ones stay");
                return;
            }
            let mut s = sources.lock().unwrap_or_else(|e| e.into_inner());
            s.file = new.routes;
            s.apply(proxy);
            tracing::info!(file = %path.display(), "routes reloaded");
        }
        Err(e) => tracing::error!(error = %e, "cannot reload; the previous routes stay"),
    }
}

async fn serve_metrics(addr: std::net::SocketAddr, proxy: Arc<Proxy>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let p: Arc<Proxy> = proxy.clone();
            async move {
                let mut out = Vec::new();
                let _ = TextEncoder::new().encode(&p.metrics_registry().gather(), &mut out);
                String::from_utf8_lossy(&out).into_owned()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}
