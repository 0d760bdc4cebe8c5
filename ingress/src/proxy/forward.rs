//! One request through the proxy: route, admit, attempt, retry, answer, log.
//!
//! ```text
//!  request ─▶ framing check (400) ─▶ route (404)
//!   ─▶ middlewares' request side (may answer) ─▶ max_requests gate (503 overloaded)
//!   ─▶ upgrade? ─▶ upgrade.rs
//!   ─▶ body: buffer ≤ limit if the method may be retried, else stream
//!   ─▶ loop { pick host ─▶ attempt with per-try/overall timeout ─▶ outlier.record
//!             ─▶ retry_on ∧ retries left ∧ replayable ∧ budget ─▶ backoff ─▶ again }
//!   ─▶ middlewares' response side ─▶ response streamed to the client (no retry
//!      after this point)
//! ```

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::time::Instant;

use super::admit::admit;
use super::body::{self, BodyIdle, BodyProgress, Guarded, ProxyBody, RequestBody, Watched};
use super::h1::H1Error;
use super::headers::{self, Forwarded};
use super::service::{HostState, ServiceSnapshot, ServiceState};
use super::target::UpstreamTarget;
use super::traced::{self, RequestTrace};
use super::upstream::{ConnectError, Outgoing, SendError, UpstreamBody};
use super::{lock, noting_wait, ConnInfo, Proxy, Route};
use crate::access_log::{Entry, TraceFields};
use crate::balancer;
use crate::breaker::{Overflow, Slot};
use crate::middleware::{Client, Pipeline, Upstream};
use crate::retry::{AttemptOutcome, RetryPolicy};

/// What the access log says about the attempts of a request.
#[derive(Debug, Default)]
pub(super) struct RequestLog {
    pub backend: Option<SocketAddr>,
    pub retries: u32,
    /// When the last attempt ended (the clock is read once per attempt).
    pub finished: Option<Instant>,
    /// The request's trace, when tracing is on.
    pub trace: Option<RequestTrace>,
}

/// The request's facts for the access log, taken only when it is on.
struct AccessFields {
    start: std::time::SystemTime,
    method: http::Method,
    host: String,
    path: String,
    protocol: Version,
    referer: Option<String>,
    user_agent: Option<String>,
}

impl AccessFields {
    fn of(req: &Request<ProxyBody>, host: Option<&HeaderValue>) -> AccessFields {
        let text = |v: Option<&HeaderValue>| v.and_then(|v| v.to_str().ok()).map(str::to_string);
        AccessFields {
            start: std::time::SystemTime::now(),
            method: req.method().clone(),
            host: text(host).unwrap_or_default(),
            path: req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            protocol: req.version(),
            referer: text(req.headers().get(header::REFERER)),
            user_agent: text(req.headers().get(header::USER_AGENT)),
        }
    }
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

/// The host a request names: URI authority (HTTP/2, absolute form) or `Host`; empty
/// for an HTTP/1.0 request without either (it need not send one).
fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    match req.uri().authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None if req.version() <= Version::HTTP_10 && !req.headers().contains_key(header::HOST) => {
            Some(HeaderValue::from_static(""))
        }
        None => req
            .headers()
            .get(header::HOST)
            .filter(|h| h.to_str().is_ok())
            .cloned(),
    }
}

impl Proxy {
    /// Answers a request that arrived at `start`; with when its response head was ready.
    pub(super) async fn handle(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
        conn: &ConnInfo,
        start: Instant,
    ) -> (Response<ProxyBody>, Instant) {
        let mut log = RequestLog::default();
        // As Træfik's entrypoints: an untrusted client's forwarding claims go first.
        if !conn.trusted {
            headers::strip_untrusted(req.headers_mut());
        }
        if self.options.tracing.is_some() {
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            log.trace = Some(RequestTrace::begin(&method, &path, req.headers_mut()));
        }
        let host = request_host(&req);
        let access = self.access_log.is_some().then(|| {
            let count = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
            (count, AccessFields::of(&req, host.as_ref()))
        });
        let table = self.table.load_full();
        let (route, resp) = match admit(&table, &req, conn, host.as_ref()) {
            Ok((route, host)) => {
                let resp = self.dispatch(route, req, conn, host, start, &mut log).await;
                (Some(route), resp)
            }
            Err(refusal) => (None, refusal.response()),
        };
        let ready = log.finished.unwrap_or_else(Instant::now);
        let elapsed = ready.saturating_duration_since(start);
        let status = resp.status();
        route
            .map_or(&self.unrouted, |r| &r.metrics)
            .observe(status, elapsed);
        let router = route.map_or("", |r| r.name.as_str());
        let service = route.map_or("", |r| r.router.service.as_str());
        if let Some(trace) = &log.trace {
            traced::finish_request(
                self.options.tracing.as_ref(),
                trace,
                status,
                router,
                service,
            );
        }
        if let (Some((count, a)), Some(log_to)) = (access, &self.access_log) {
            log_to.record(Entry {
                start: a.start,
                client: conn.client,
                entrypoint: conn.entrypoint.clone(),
                method: a.method,
                host: a.host,
                path: a.path,
                protocol: a.protocol,
                status: status.as_u16(),
                size: resp.body().size_hint().exact(),
                referer: a.referer,
                user_agent: a.user_agent,
                count,
                router: route.map_or_else(String::new, |r| r.name.clone()),
                service: route.map_or_else(String::new, |r| r.router.service.clone()),
                backend: log.backend,
                duration: elapsed,
                retries: log.retries,
                trace: log.trace.as_ref().map(|t| TraceFields {
                    request_id: t.request_id.clone(),
                    trace_id: t.incoming.trace_id.to_string(),
                    span_id: t.span.to_string(),
                }),
            });
        }
        (resp, ready)
    }

    /// Send a routed request to its service (or answer for it), through the router's
    /// middlewares when it has any.
    async fn dispatch(
        self: &Arc<Self>,
        route: &Route,
        req: Request<ProxyBody>,
        conn: &ConnInfo,
        host: &HeaderValue,
        start: Instant,
        log: &mut RequestLog,
    ) -> Response<ProxyBody> {
        match &route.pipeline {
            None => {
                let send = self.send(route, req, conn, host, start, log, None);
                send.await
            }
            Some(pipeline) => {
                let through = Box::pin(self.through(pipeline, route, req, conn, host, start, log));
                through.await
            }
        }
    }

    /// [`Proxy::send`] between the request and response sides of `pipeline`.
    #[allow(clippy::too_many_arguments)]
    async fn through(
        self: &Arc<Self>,
        pipeline: &Pipeline,
        route: &Route,
        mut req: Request<ProxyBody>,
        conn: &ConnInfo,
        host: &HeaderValue,
        start: Instant,
        log: &mut RequestLog,
    ) -> Response<ProxyBody> {
        let client = Client {
            ip: conn.client.ip().to_canonical(),
            tls: conn.tls,
        };
        let (hooks, upstream) = match pipeline.request(&mut req, client).await {
            Ok(passed) => passed,
            Err(answer) => return answer,
        };
        let via = Via {
            upstream: &upstream,
            retry: pipeline.retry(),
        };
        let resp = self
            .send(route, req, conn, host, start, log, Some(via))
            .await;
        hooks.respond(resp).await
    }

    /// Send a routed request to its service (or answer for it).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        self: &Arc<Self>,
        route: &Route,
        req: Request<ProxyBody>,
        conn: &ConnInfo,
        host: &HeaderValue,
        start: Instant,
        log: &mut RequestLog,
        via: Option<Via<'_>>,
    ) -> Response<ProxyBody> {
        let Some(service) = &route.service else {
            return local(StatusCode::SERVICE_UNAVAILABLE, "no such service");
        };
        let snap = service.snapshot.load_full();
        let slot = match service.counts.try_request(&snap.config.breaker) {
            Ok(slot) => slot,
            Err(kind) => return self.overflow(service, kind),
        };
        // Boxed, each in a statement of its own: a future in an `.await` expression is
        // kept in the caller's state as well, and that state is copied per request.
        let upstream = via.as_ref().map(|v| v.upstream);
        if req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers()) {
            let host = upstream.and_then(|u| u.host.as_ref()).unwrap_or(host);
            let upgrade = Box::pin(self.upgrade(service, &snap, req, conn, host, slot, log));
            return upgrade.await;
        }
        let policy = via
            .as_ref()
            .and_then(|v| v.retry)
            .or(route.router.retry.as_ref())
            .unwrap_or(&snap.config.retry);
        let request = Inbound {
            req,
            conn,
            host,
            start,
            upstream,
        };
        let forward = Box::pin(self.forward(service, &snap, policy, request, slot, log));
        forward.await
    }

    pub(super) fn overflow(&self, service: &ServiceState, kind: Overflow) -> Response<ProxyBody> {
        self.count_overflow(service, kind);
        overloaded(kind)
    }

    fn count_overflow(&self, service: &ServiceState, kind: Overflow) {
        self.metrics
            .overflows
            .with_label_values(&[&service.name, kind.as_str()])
            .inc();
    }

    /// Record an attempt's outcome (at `now`) on the host and in outlier detection.
    pub(super) fn record(
        &self,
        service: &ServiceState,
        host: &HostState,
        outcome: &AttemptOutcome,
        now: Instant,
    ) {
        if outcome.is_5xx() {
            host.failures.fetch_add(1, Ordering::Relaxed);
        }
        let ejected = lock(&service.outlier).record(&host.addr, outcome, now);
        if let Some(until) = ejected {
            self.metrics
                .ejections
                .with_label_values(&[&service.name])
                .inc();
            tracing::warn!(
                service = %service.name,
                backend = %host.addr,
                outcome = %outcome.label(),
                ejected_for_s = until.saturating_duration_since(now).as_secs(),
                "backend ejected"
            );
        }
    }

    async fn forward(
        &self,
        service: &Arc<ServiceState>,
        snap: &ServiceSnapshot,
        policy: &RetryPolicy,
        request: Inbound<'_>,
        slot: Slot,
        log: &mut RequestLog,
    ) -> Response<ProxyBody> {
        let Inbound {
            req,
            conn,
            host,
            start,
            upstream: edits,
        } = request;
        let (mut parts, incoming) = req.into_parts();
        // A body is watched for an idle client and for its end (most requests have none).
        let progress = (!incoming.is_end_stream()).then(|| Arc::new(BodyProgress::default()));
        let incoming = match &progress {
            Some(p) => Watched::new(incoming, self.options.body_idle_timeout, p.clone()).boxed(),
            None => incoming,
        };
        let retry_allowed = policy.allows_method(&parts.method);
        let limit = policy
            .max_body_bytes
            .unwrap_or(self.options.max_buffered_body);
        let (mut body, waited) = match self.read_body(incoming, retry_allowed, limit).await {
            Ok(read) => read,
            Err(refused) => return refused,
        };
        let can_retry = retry_allowed && body.replayable();
        let sticky_in = sticky_cookie(snap, &parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, false);
        let mut forwarded = Forwarded::new(&parts.headers, conn.origin(), host, false);
        // A middleware may send another Host and its own X-Forwarded-* values.
        let host = match edits {
            Some(e) => {
                forwarded.override_fields(&e.forwarded);
                e.host.as_ref().unwrap_or(host)
            }
            None => host,
        };
        // Usually the client's own Host, once: then there is nothing to replace.
        let mut hosts = parts.headers.get_all(header::HOST).iter();
        if hosts.next() != Some(host) || hosts.next().is_some() {
            parts.headers.insert(header::HOST, host.clone());
        }
        let target = UpstreamTarget::new(&parts.uri, snap.config.protocol);
        let upstream = service.upstream(snap);
        // As in Envoy, the timeouts start once the whole request has been read: now for
        // a body read into memory, when its last byte has gone on for one streamed.
        let start = if waited { Instant::now() } else { start };
        let streamed = progress.as_ref().filter(|_| !body.replayable());
        let after_body = match (policy.timeout, policy.per_try_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .and_then(|limit| Some((streamed?.clone(), limit)));
        let deadline = policy
            .timeout
            .filter(|_| after_body.is_none())
            .map(|t| start + t);
        // Hosts already tried, once there has been a retry.
        let mut tried: Vec<bool> = Vec::new();
        let mut retry_slot: Option<Slot> = None;
        // When the current attempt starts.
        let mut now = start;
        loop {
            let Some(idx) = service.pick(snap, &tried, sticky_in.as_deref(), now) else {
                return local(StatusCode::SERVICE_UNAVAILABLE, "no healthy backend");
            };
            let backend = &snap.hosts[idx];
            log.backend = Some(backend.addr);
            let Some(attempt_body) = body.take_attempt() else {
                return local(StatusCode::BAD_GATEWAY, "request body already sent");
            };
            let Some(uri) = target.uri(backend.addr) else {
                return local(StatusCode::BAD_REQUEST, "bad request target");
            };
            let attempt = log.trace.as_mut().map(|t| t.attempt(&mut parts.headers));
            let up = Outgoing {
                method: &parts.method,
                uri,
                version: target.version,
                headers: &parts.headers,
                set: forwarded.fields(),
                body: attempt_body,
                started: now,
                deadline: match (policy.per_try_timeout, deadline) {
                    _ if after_body.is_some() => None,
                    (Some(t), Some(d)) => Some(d.min(now + t)),
                    (t, d) => t.map(|t| now + t).or(d),
                },
            };
            let outstanding = Outstanding::new(backend.clone());
            let send = upstream.send(&backend.pool, backend.addr, up);
            let mut result = match &after_body {
                Some((progress, limit)) => within_after_body(send, progress, *limit).await,
                None => send.await,
            };
            if result.is_err() && progress.as_ref().is_some_and(|p| p.failed()) {
                // The client's body failed (malformed, cut short, idle): whatever the
                // backend connection made of it, the fault is the client's.
                if !matches!(result, Err(SendError::H1(H1Error::Body(_)))) {
                    result = Err(SendError::H1(H1Error::Body(
                        "the request body failed".into(),
                    )));
                }
            }
            let garbled = matches!(&result, Err(SendError::H1(H1Error::Malformed(_))));
            now = Instant::now();
            log.finished = Some(now);
            let (outcome, response) = match outcome(backend, result) {
                Ok(attempt) => attempt,
                Err(Stop::Overflow(kind)) => return self.overflow(service, kind),
                Err(Stop::ClientBody(e)) => return client_body_error(&e),
            };
            self.record(service, backend, &outcome, now);
            traced::finish_attempt(
                self.options.tracing.as_ref(),
                log.trace.as_ref(),
                attempt,
                backend.addr,
                &outcome,
            );
            let time_left = deadline.is_none_or(|d| now < d)
                && policy.within_window(now.saturating_duration_since(start));
            if can_retry && time_left && policy.should_retry(&outcome, log.retries) {
                if let Some(s) = self.admit_retry(service, snap, log) {
                    retry_slot = Some(s);
                    drop(response);
                    drop(outstanding);
                    let mut pause = policy.backoff(log.retries - 1, &mut rand::thread_rng());
                    if let Some(d) = deadline {
                        pause = pause.min(d.saturating_duration_since(now));
                    }
                    tokio::time::sleep(pause).await;
                    now = Instant::now();
                    if tried.is_empty() {
                        tried.resize(snap.hosts.len(), false);
                    }
                    tried[idx] = true;
                    continue;
                }
            }
            let Some(resp) = response else {
                // As Envoy's (and HAProxy's): a connection refused or reset before the
                // response is 503, a response that breaks HTTP 502, no response in time
                // 504.
                return match outcome {
                    AttemptOutcome::Timeout => {
                        local(StatusCode::GATEWAY_TIMEOUT, "backend timed out")
                    }
                    _ if garbled => local(StatusCode::BAD_GATEWAY, "malformed backend response"),
                    _ => local(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE),
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

    /// The request's body, and whether reading it had to wait for the client: buffered
    /// (up to the limit) when the method may be retried, else streamed. A body that
    /// cannot be read is the client's 400.
    async fn read_body(
        &self,
        incoming: ProxyBody,
        retry_allowed: bool,
        limit: usize,
    ) -> Result<(RequestBody, bool), Response<ProxyBody>> {
        if !retry_allowed {
            return Ok((RequestBody::stream(incoming), false));
        }
        if incoming.is_end_stream() {
            return Ok((RequestBody::Buffered(bytes::Bytes::new()), false));
        }
        // Boxed: its future is large and most requests have no body to read.
        let read = Box::pin(RequestBody::read(incoming, limit));
        match noting_wait(read).await {
            (Ok(b), waited) => Ok((b, waited)),
            (Err(e), _) => Err(client_body_error(&e)),
        }
    }

    /// A retry slot from the service's budget (or its breaker's `max_retries`), counted
    /// in the request's log and the metrics; `None` (an overflow, counted) when the
    /// service is out of retries.
    fn admit_retry(
        &self,
        service: &ServiceState,
        snap: &ServiceSnapshot,
        log: &mut RequestLog,
    ) -> Option<Slot> {
        let limit = match snap.config.retry_budget {
            Some(b) => b.limit(service.counts.active_requests()),
            None => snap.config.breaker.max_retries,
        };
        match service.counts.try_retry(limit) {
            Ok(s) => {
                log.retries += 1;
                self.metrics
                    .retries
                    .with_label_values(&[&service.name])
                    .inc();
                Some(s)
            }
            Err(kind) => {
                self.count_overflow(service, kind);
                None
            }
        }
    }
}

/// The answer's text when a backend refused or reset the connection (Envoy's words).
pub(super) const UNAVAILABLE: &str = "upstream connect error or disconnect/reset before headers";

/// Why no attempt on any host could do better than answering now.
enum Stop {
    /// The service's breaker is full.
    Overflow(Overflow),
    /// The client's body broke off, was malformed (a bad chunk) or stopped coming: its
    /// fault, not the backend's, and no retry can mend it.
    ClientBody(body::BoxError),
}

/// The answer to a request whose body failed on the client's side: 408 when it stopped
/// coming, else 400.
fn client_body_error(e: &body::BoxError) -> Response<ProxyBody> {
    let status = if e.downcast_ref::<BodyIdle>().is_some() {
        StatusCode::REQUEST_TIMEOUT
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut resp = local(status, &format!("reading request body: {e}"));
    // The rest of the body cannot be told from a next request.
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// `send` for a request whose body is streamed: no limit while the body goes on (the
/// body idle timeout bounds a client that stops), then `limit` for the response head
/// once its last byte has been read (Envoy's route timeout).
async fn within_after_body<F>(
    send: F,
    progress: &BodyProgress,
    limit: std::time::Duration,
) -> Result<Response<UpstreamBody>, SendError>
where
    F: std::future::Future<Output = Result<Response<UpstreamBody>, SendError>>,
{
    let timer = async {
        progress.ended().await;
        tokio::time::sleep(limit).await;
    };
    tokio::select! {
        result = send => result,
        () = timer => Err(SendError::Timeout),
    }
}

/// What an attempt came to, for outlier detection and retries.
fn outcome(
    backend: &HostState,
    result: Result<Response<UpstreamBody>, SendError>,
) -> Result<(AttemptOutcome, Option<Response<UpstreamBody>>), Stop> {
    match result {
        Ok(resp) => Ok((AttemptOutcome::Status(resp.status()), Some(resp))),
        Err(SendError::Connect(ConnectError::Overflow(kind))) => Err(Stop::Overflow(kind)),
        Err(SendError::H1(H1Error::Body(e))) => Err(Stop::ClientBody(e)),
        Err(e) => {
            tracing::debug!(backend = %backend.addr, error = %e, "upstream attempt failed");
            let outcome = match e {
                SendError::Timeout => AttemptOutcome::Timeout,
                SendError::Connect(_) => AttemptOutcome::ConnectFailure,
                SendError::Http(_) | SendError::H1(_) => AttemptOutcome::Reset,
            };
            Ok((outcome, None))
        }
    }
}

/// The value of the service's sticky cookie in the request, if it has one.
fn sticky_cookie(snap: &ServiceSnapshot, headers: &http::HeaderMap) -> Option<String> {
    let name = snap.config.sticky_cookie.as_deref()?;
    let values = headers.get_all(header::COOKIE);
    balancer::cookie_value(values.iter().filter_map(|v| v.to_str().ok()), name).map(str::to_string)
}

/// A request as it came in: from which connection, for which host, since when, and
/// what its middlewares change upstream.
struct Inbound<'a> {
    req: Request<ProxyBody>,
    conn: &'a ConnInfo,
    host: &'a HeaderValue,
    start: Instant,
    upstream: Option<&'a Upstream>,
}

/// What a router's middlewares give the forwarding: upstream edits and a retry policy.
struct Via<'a> {
    upstream: &'a Upstream,
    retry: Option<&'a RetryPolicy>,
}

/// The client's response: hop-by-hop headers removed, slots held by the body.
fn respond(
    resp: Response<UpstreamBody>,
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
