//! `shoal proxy --config FILE`: the L7 proxy alone, without a cluster. SIGHUP re-reads
//! the file; a file that does not validate leaves the routes in force untouched.

use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use shoal_ingress::config::ProxyConfig;
use shoal_ingress::{Proxy, ProxyOptions};
use tokio::signal::unix::{signal, SignalKind};

use super::args::ProxyArgs;

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    crate::agent::init_logging(args.log_format);
    let config = ProxyConfig::load(&args.config)?;
    anyhow::ensure!(
        !config.entrypoints.is_empty(),
        "{}: no entrypoints: add e.g. [entrypoints.web] address = \"0.0.0.0:8080\"",
        args.config.display()
    );
    let proxy = Proxy::new(ProxyOptions {
        access_log: args.access_log.config(),
        ..Default::default()
    })?;
    proxy.update(config.routes.clone())?;
    let started = proxy.start(&config.entrypoints).await?;
    for s in &started {
        tracing::info!(entrypoint = %s.entrypoint, address = %s.address, "listening");
    }
    if let Some(addr) = args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        let p = proxy.clone();
        let app = axum::Router::new().route(
            "/metrics",
            get(move || {
                let p: Arc<Proxy> = p.clone();
                async move {
                    let mut out = Vec::new();
                    let _ = TextEncoder::new().encode(&p.metrics_registry().gather(), &mut out);
                    String::from_utf8_lossy(&out).into_owned()
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let entrypoints = config.entrypoints;
    loop {
        tokio::select! {
            _ = hup.recv() => match ProxyConfig::load(&args.config) {
                Ok(new) => {
                    if new.entrypoints != entrypoints {
                        tracing::warn!("entrypoint changes take effect on restart; only the routes are reloaded");
                    }
                    match proxy.update(new.routes) {
                        Ok(()) => tracing::info!(file = %args.config.display(), "routes reloaded"),
                        Err(e) => tracing::error!(error = %e, "routes refused; the previous ones stay"),
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot reload; the previous routes stay"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    for s in started {
        s.task.abort();
    }
    Ok(())
}
