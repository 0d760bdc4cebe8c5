//! One request through the proxy: route, admit, attempt, retry, answer, log.
//!
//! ```text
//!  request ─▶ framing check (400) ─▶ route (404) ─▶ max_requests gate (503 overloaded)
//!   ─▶ upgrade? ─▶ upgrade.rs
//!   ─▶ body: buffer ≤ limit if the method may be retried, else stream
//!   ─▶ loop { pick host ─▶ attempt with per-try/overall timeout ─▶ outlier.record
//!             ─▶ retry_on ∧ retries left ∧ replayable ∧ budget ─▶ backoff ─▶ again }
//!   ─▶ response streamed to the client (no retry after this point)
//! ```

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::{self, Guarded, ProxyBody, RequestBody};
use super::headers;
use super::service::{ConnectError, HostState, ServiceSnapshot, ServiceState};
use super::{ConnInfo, Proxy};
use crate::breaker::{Overflow, Slot};
use crate::config::UpstreamProtocol;
use crate::lb;
use crate::retry::{AttemptOutcome, RetryPolicy};
use crate::rule::RequestView;

/// Target of the access log lines.
pub const ACCESS_LOG_TARGET: &str = "shoal_ingress::access";

/// What the access log and metrics say about a request.
#[derive(Debug, Default)]
pub(super) struct RequestLog {
    pub router: String,
    pub service: String,
    pub backend: Option<SocketAddr>,
    pub retries: u32,
}

/// Counts a request as outstanding on a host until dropped.
pub(super) struct Outstanding(Arc<HostState>);

impl Outstanding {
    pub(super) fn new(host: Arc<HostState>) -> Self {
        host.outstanding.fetch_add(1, Ordering::Relaxed);
        host.requests.fetch_add(1, Ordering::Relaxed);
        Outstanding(host)
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Slots a response holds until its body ends.
pub(super) struct Held {
    _request: Slot,
    _retry: Option<Slot>,
    _host: Outstanding,
}

impl Held {
    pub(super) fn new(request: Slot, retry: Option<Slot>, host: Outstanding) -> Self {
        Held {
            _request: request,
            _retry: retry,
            _host: host,
        }
    }
}

/// A plain-text answer from the proxy itself.
pub(super) fn local(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(body::full(format!("{text}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn overloaded(kind: Overflow) -> Response<ProxyBody> {
    let mut resp = local(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("service overloaded ({})", kind.as_str()),
    );
    resp.headers_mut()
        .insert("x-shoal-overloaded", HeaderValue::from_static("true"));
    resp
}

/// The host a request names: URI authority (HTTP/2, absolute form) or `Host`.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    if let Some(a) = req.uri().authority() {
        return Some(a.as_str().to_string());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}

impl Proxy {
    pub(super) async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Response<ProxyBody> {
        let start = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let host = request_host(&req).unwrap_or_default();
        let mut log = RequestLog::default();
        let resp = self.route(req, conn, &host, &mut log).await;
        let elapsed = start.elapsed();
        let status = resp.status().as_u16();
        self.metrics
            .requests
            .with_label_values(&[&log.router, &log.service, &status.to_string()])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[&log.router, &log.service])
            .observe(elapsed.as_secs_f64());
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            client = %conn.client.ip(),
            method = %method,
            host = %host,
            path = %path,
            status,
            router = %log.router,
            service = %log.service,
            backend = %log.backend.map(|b| b.to_string()).unwrap_or_default(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            retries = log.retries,
        );
        resp
    }

    async fn route(
        self: &Arc<Self>,
        req: Request<Incoming>,
        conn: &ConnInfo,
        host: &str,
        log: &mut RequestLog,
    ) -> Response<ProxyBody> {
        if headers::ambiguous_framing(req.headers()) {
            let mut resp = local(StatusCode::BAD_REQUEST, "ambiguous request framing");
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
        if host.is_empty() {
            return local(StatusCode::BAD_REQUEST, "missing Host header");
        }
        let table = self.table.load_full();
        let view = RequestView {
            host,
            path: req.uri().path(),
            method: req.method().as_str(),
            headers: req.headers(),
            query: req.uri().query(),
            client_ip: conn.client.ip(),
        };
        let Some((router_name, router)) = table.route(&conn.entrypoint, conn.tls, &view) else {
            return local(StatusCode::NOT_FOUND, "404 page not found");
        };
        log.router = router_name.clone();
        log.service = router.service.clone();
        let Some(service) = table.services.get(&router.service).cloned() else {
            return local(StatusCode::SERVICE_UNAVAILABLE, "no such service");
        };
        let snap = service.snapshot.load_full();
        let slot = match service.counts.try_request(&snap.config.breaker) {
            Ok(slot) => slot,
            Err(kind) => return self.overflow(&service, kind),
        };
        if req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers()) {
            return self
                .upgrade(&service, &snap, req, conn, host, slot, log)
                .await;
        }
        let policy = router
            .retry
            .clone()
            .unwrap_or_else(|| snap.config.retry.clone());
        self.forward(&service, &snap, &policy, req, conn, host, slot, log)
            .await
    }

    pub(super) fn overflow(&self, service: &ServiceState, kind: Overflow) -> Response<ProxyBody> {
        self.metrics
            .overflows
            .with_label_values(&[&service.name, kind.as_str()])
            .inc();
        overloaded(kind)
    }

    /// Record an attempt's outcome on the host and in outlier detection.
    pub(super) fn record(
        &self,
        service: &ServiceState,
        host: &HostState,
        outcome: &AttemptOutcome,
    ) {
        if outcome.is_5xx() {
            host.failures.fetch_add(1, Ordering::Relaxed);
        }
        let ejected = service
            .outlier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(&host.addr, outcome, Instant::now());
        if let Some(until) = ejected {
            self.metrics
                .ejections
                .with_label_values(&[&service.name])
                .inc();
            tracing::warn!(
                service = %service.name,
                backend = %host.addr,
                outcome = %outcome.label(),
                ejected_for_s = until.duration_since(Instant::now()).as_secs(),
                "backend ejected"
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        service: &Arc<ServiceState>,
        snap: &ServiceSnapshot,
        policy: &RetryPolicy,
        req: Request<Incoming>,
        conn: &ConnInfo,
        host: &str,
        slot: Slot,
        log: &mut RequestLog,
    ) -> Response<ProxyBody> {
        let (parts, incoming) = req.into_parts();
        let retry_allowed = policy.allows_method(&parts.method);
        let mut body = if retry_allowed {
            match RequestBody::read(incoming, self.options.max_buffered_body).await {
                Ok(b) => b,
                Err(e) => {
                    return local(
                        StatusCode::BAD_REQUEST,
                        &format!("reading request body: {e}"),
                    )
                }
            }
        } else {
            RequestBody::stream(incoming)
        };
        let can_retry = retry_allowed && body.replayable();
        let sticky_in = snap.config.sticky_cookie.as_deref().and_then(|name| {
            let values = parts.headers.get_all(header::COOKIE);
            lb::cookie_value(values.iter().filter_map(|v| v.to_str().ok()), name)
                .map(str::to_string)
        });
        let mut upstream_headers = parts.headers.clone();
        headers::strip_hop_by_hop(&mut upstream_headers, false);
        headers::add_forwarded(&mut upstream_headers, conn.client.ip(), conn.tls, host);
        if let Ok(v) = HeaderValue::from_str(host) {
            upstream_headers.insert(header::HOST, v);
        }
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let version = match snap.config.protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::H2c => Version::HTTP_2,
        };
        let deadline = policy.timeout.map(|t| Instant::now() + t);
        let mut tried = vec![false; snap.hosts.len()];
        let mut retry_slot: Option<Slot> = None;
        loop {
            let Some(idx) = service.pick(snap, &tried, sticky_in.as_deref()) else {
                return local(StatusCode::SERVICE_UNAVAILABLE, "no healthy backend");
            };
            tried[idx] = true;
            let backend = snap.hosts[idx].clone();
            log.backend = Some(backend.addr);
            let Some(attempt_body) = body.take_attempt() else {
                return local(StatusCode::BAD_GATEWAY, "request body already sent");
            };
            let uri: Uri = match format!("http://{}{}", backend.addr, path_and_query).parse() {
                Ok(u) => u,
                Err(_) => return local(StatusCode::BAD_REQUEST, "bad request target"),
            };
            let mut up = Request::new(attempt_body);
            *up.method_mut() = parts.method.clone();
            *up.uri_mut() = uri;
            *up.version_mut() = version;
            *up.headers_mut() = upstream_headers.clone();
            let outstanding = Outstanding::new(backend.clone());
            let per_try = match (policy.per_try_timeout, deadline) {
                (Some(t), Some(d)) => Some(t.min(d.saturating_duration_since(Instant::now()))),
                (t, d) => t.or(d.map(|d| d.saturating_duration_since(Instant::now()))),
            };
            let sent = snap.client.request(up);
            let result = match per_try {
                Some(limit) => tokio::time::timeout(limit, sent).await.map_err(|_| ()),
                None => Ok(sent.await),
            };
            let (outcome, response) = match result {
                Err(()) => (AttemptOutcome::Timeout, None),
                Ok(Ok(resp)) => (AttemptOutcome::Status(resp.status()), Some(resp)),
                Ok(Err(e)) => {
                    if let Some(kind) = overflow_kind(&e) {
                        return self.overflow(service, kind);
                    }
                    tracing::debug!(backend = %backend.addr, error = %e, "upstream attempt failed");
                    let outcome = if e.is_connect() {
                        AttemptOutcome::ConnectFailure
                    } else {
                        AttemptOutcome::Reset
                    };
                    (outcome, None)
                }
            };
            self.record(service, &backend, &outcome);
            let time_left = deadline.is_none_or(|d| Instant::now() < d);
            if can_retry && time_left && policy.should_retry(&outcome, log.retries) {
                let limit = match snap.config.retry_budget {
                    Some(b) => b.limit(service.counts.active_requests()),
                    None => snap.config.breaker.max_retries,
                };
                match service.counts.try_retry(limit) {
                    Ok(s) => {
                        retry_slot = Some(s);
                        log.retries += 1;
                        self.metrics
                            .retries
                            .with_label_values(&[&service.name])
                            .inc();
                        drop(response);
                        drop(outstanding);
                        let mut pause = policy.backoff(log.retries - 1, &mut rand::thread_rng());
                        if let Some(d) = deadline {
                            pause = pause.min(d.saturating_duration_since(Instant::now()));
                        }
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                    Err(kind) => {
                        self.metrics
                            .overflows
                            .with_label_values(&[&service.name, kind.as_str()])
                            .inc();
                    }
                }
            }
            let Some(resp) = response else {
                return match outcome {
                    AttemptOutcome::Timeout => {
                        local(StatusCode::GATEWAY_TIMEOUT, "backend timed out")
                    }
                    _ => local(StatusCode::BAD_GATEWAY, "backend unavailable"),
                };
            };
            let held = Held::new(slot, retry_slot, outstanding);
            let set_cookie = snap.config.sticky_cookie.as_deref().and_then(|name| {
                let value = &snap.sticky_values[idx];
                (sticky_in.as_deref() != Some(value.as_str()))
                    .then(|| format!("{name}={value}; Path=/; HttpOnly"))
            });
            return respond(resp, held, set_cookie);
        }
    }
}

/// The client's response: hop-by-hop headers removed, slots held by the body.
fn respond(
    resp: Response<Incoming>,
    held: Held,
    set_cookie: Option<String>,
) -> Response<ProxyBody> {
    let (mut parts, incoming) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, Guarded::new(incoming, held).boxed())
}

/// A breaker refusal raised inside the upstream connector.
fn overflow_kind(e: &hyper_util::client::legacy::Error) -> Option<Overflow> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(ConnectError::Overflow(kind)) = err.downcast_ref::<ConnectError>() {
            return Some(*kind);
        }
        source = err.source();
    }
    None
}
