//! `shoal proxy`'s arguments, and the access log, tracing and client limit flags it
//! shares with the agent.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use shoal_ingress::access_log::{AccessLogConfig, AccessLogFormat};

use super::{DockerRoutesArgs, EntrypointTrustArgs, LogFormat};

/// `shoal proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The TOML file (see ingress/examples/routes.toml); re-read on SIGHUP. Needed
    /// unless --docker gives the routes.
    #[arg(long, required_unless_present = "docker")]
    pub config: Option<PathBuf>,
    /// Routes from Docker's container and Swarm service labels (Træfik's and
    /// docker-flow-proxy's), from this daemon (default: DOCKER_HOST, else
    /// unix:///var/run/docker.sock), followed by its event stream.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "ENDPOINT")]
    pub docker: Option<String>,
    #[command(flatten)]
    pub docker_routes: DockerRoutesArgs,
    /// An HTTP entrypoint NAME=IP:PORT (repeatable), besides the file's.
    #[arg(long = "entrypoint", value_name = "NAME=IP:PORT", value_parser = super::docker::parse_entrypoint)]
    pub entrypoints: Vec<(String, SocketAddr)>,
    #[command(flatten)]
    pub trust: EntrypointTrustArgs,
    /// Threads serving requests (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub access_log: AccessLogArgs,
    #[command(flatten)]
    pub tracing: TracingArgs,
    #[command(flatten)]
    pub limits: ClientLimitsArgs,
    /// Log format.
    #[arg(long, value_enum, default_value_t)]
    pub log_format: LogFormat,
}

/// The L7 proxy's tracing, as Envoy's: off unless one of these is given.
#[derive(Debug, Args, Default)]
pub struct TracingArgs {
    /// Give every request an `x-request-id` (the client's if it sent one) and carry its
    /// trace context (W3C traceparent, or B3) on to the backend, a span per attempt.
    #[arg(long)]
    pub request_id: bool,
    /// Export a span per request and per attempt to this OpenTelemetry collector over
    /// OTLP/HTTP (JSON), e.g. http://127.0.0.1:4318 (implies --request-id).
    #[arg(long, value_name = "URL", value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: Option<shoal_ingress::trace::Endpoint>,
}

impl TracingArgs {
    /// The tracing asked for, if any; starts the exporter (needs the async runtime).
    pub fn options(&self) -> Option<shoal_ingress::proxy::TracingOptions> {
        let exporter = self
            .otlp_endpoint
            .clone()
            .map(|endpoint| shoal_ingress::trace::Exporter::start(endpoint, "shoal".to_string()));
        (self.request_id || exporter.is_some())
            .then_some(shoal_ingress::proxy::TracingOptions { exporter })
    }
}

fn parse_otlp_endpoint(s: &str) -> Result<shoal_ingress::trace::Endpoint, String> {
    shoal_ingress::trace::Endpoint::parse(s)
}

/// The L7 proxy's access log: off unless one of these is given, as in Træfik.
#[derive(Debug, Args, Default)]
pub struct AccessLogArgs {
    /// Write an access log line per request (to standard output unless
    /// --access-log-file).
    #[arg(long)]
    pub access_log: bool,
    /// Append the access log to this file (implies --access-log).
    #[arg(long)]
    pub access_log_file: Option<PathBuf>,
    /// Access log format: common (Træfik's CLF) or json (implies --access-log).
    #[arg(long, value_parser = parse_access_log_format)]
    pub access_log_format: Option<AccessLogFormat>,
    /// Lines held before a write, like Træfik's bufferingSize (implies --access-log;
    /// default 0: written as soon as the writer is idle).
    #[arg(long)]
    pub access_log_buffer: Option<usize>,
}

impl AccessLogArgs {
    /// The access log asked for, if any.
    pub fn config(&self) -> Option<AccessLogConfig> {
        let on = self.access_log
            || self.access_log_file.is_some()
            || self.access_log_format.is_some()
            || self.access_log_buffer.is_some();
        on.then(|| AccessLogConfig {
            path: self.access_log_file.clone(),
            format: self.access_log_format.unwrap_or_default(),
            buffering: self.access_log_buffer.unwrap_or(0),
        })
    }
}

fn parse_access_log_format(s: &str) -> Result<AccessLogFormat, String> {
    s.parse()
}

/// What one client may hold: connections, HTTP/2 streams, an idle request body.
#[derive(Debug, Args, Clone)]
pub struct ClientLimitsArgs {
    /// Most connections one client address may hold open (0: no cap); balancers trusted
    /// for PROXY or forwarding headers are not capped.
    #[arg(long, default_value_t = 1024)]
    pub max_connections_per_client: usize,
    /// Most concurrent streams of one HTTP/2 client connection.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pub max_concurrent_streams: u32,
    /// A client that sends no byte of its request body for this long gets 408
    /// (e.g. 30s, 2m).
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration)]
    pub body_idle_timeout: std::time::Duration,
}

fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match shoal_ingress::config::parse_duration(s)? {
        d if d.is_zero() => Err("must be more than 0".into()),
        d => Ok(d),
    }
}

impl ClientLimitsArgs {
    /// These limits set on `options`.
    pub fn apply(&self, options: shoal_ingress::ProxyOptions) -> shoal_ingress::ProxyOptions {
        shoal_ingress::ProxyOptions {
            max_connections_per_client: self.max_connections_per_client,
            max_concurrent_streams: self.max_concurrent_streams,
            body_idle_timeout: self.body_idle_timeout,
            ..options
        }
    }
}
