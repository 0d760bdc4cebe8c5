//! Træfik's HTTP middlewares at run time: a router's middlewares, built once per route
//! table, as a pipeline the proxy runs around its forwarding.
//!
//! ```text
//!  request ─▶ stage 1 ─▶ stage 2 ─▶ … ─▶ proxy forwards (retry policy, upstream host)
//!              │ may answer (redirect, 401, 403, 429, 413, preflight, 503)
//!              └─ leaves a hook ──▶ hooks run last-first on the response ─▶ client
//! ```
//! A stage that answers skips the stages after it; the hooks of the stages before it
//! still see its answer, as Træfik's nested handlers do. Routers without middlewares
//! have no pipeline at all, so the proxy's plain path costs one `Option` check.
//!
//! The decisions (paths, redirects, negotiation, buckets, the breaker's state machine)
//! are plain functions over a request, its connection facts and `now`; the proxy does
//! the IO.

pub mod auth;
pub mod circuit_breaker;
pub mod compress;
pub mod expr;
pub mod headers;
pub mod ip;
pub mod limit;
pub mod path;
pub mod redirect;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::time::Instant;

use crate::config::middlewares::{Buffering, MiddlewareConfig};
use crate::proxy::body::{self, ProxyBody};
use crate::retry::RetryPolicy;

/// Facts about a request's connection that middlewares read.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The peer's address (IPv4-mapped IPv6 as IPv4).
    pub ip: IpAddr,
    /// Whether the request came over TLS.
    pub tls: bool,
}

/// What the middlewares change in the request the proxy sends upstream beyond its
/// head: the `Host` to send, and `X-Forwarded-*` values set by `customRequestHeaders`
/// (`None`: do not send it).
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    /// The `Host` sent upstream instead of the client's.
    pub host: Option<HeaderValue>,
    /// Replacements for the proxy's own `X-Forwarded-*` fields.
    pub forwarded: Vec<(HeaderName, Option<HeaderValue>)>,
}

/// A stage's own answer to a request (boxed: refusals are the rare path).
pub type Answer = Box<Response<ProxyBody>>;

/// One built middleware with its live state.
pub struct Instance {
    config: MiddlewareConfig,
    kind: Kind,
}

// Built once per route table, a few per router: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Kind {
    RedirectScheme(redirect::SchemeRedirect),
    RedirectRegex(redirect::RegexRedirect),
    Path(path::PathRewrite),
    Headers(headers::HeadersMiddleware),
    BasicAuth(auth::BasicAuthMiddleware),
    IpAllowList(ip::AllowList),
    RateLimit(limit::RateLimiter),
    InFlight(limit::InFlightLimiter),
    Compress(compress::Compressor),
    CircuitBreaker(circuit_breaker::Breaker),
    Buffering(Buffering),
}

impl Instance {
    /// Build `config` (never a `chain` or `retry`: those are resolved by
    /// [`Pipeline::build`]).
    fn new(config: MiddlewareConfig, now: Instant) -> Option<Instance> {
        let kind = match &config {
            MiddlewareConfig::RedirectScheme(c) => {
                Kind::RedirectScheme(redirect::SchemeRedirect::new(c))
            }
            MiddlewareConfig::RedirectRegex(c) => {
                Kind::RedirectRegex(redirect::RegexRedirect::new(c))
            }
            MiddlewareConfig::StripPrefix(c) => {
                Kind::Path(path::PathRewrite::StripPrefix(c.clone()))
            }
            MiddlewareConfig::StripPrefixRegex(c) => {
                Kind::Path(path::PathRewrite::StripPrefixRegex(c.clone()))
            }
            MiddlewareConfig::AddPrefix(c) => Kind::Path(path::PathRewrite::AddPrefix(c.clone())),
            MiddlewareConfig::ReplacePath(c) => {
                Kind::Path(path::PathRewrite::ReplacePath(c.clone()))
            }
            MiddlewareConfig::ReplacePathRegex(c) => {
                Kind::Path(path::PathRewrite::ReplacePathRegex(c.clone()))
            }
            MiddlewareConfig::Headers(c) => Kind::Headers(headers::HeadersMiddleware::new(c)),
            MiddlewareConfig::BasicAuth(c) => Kind::BasicAuth(auth::BasicAuthMiddleware::new(c)),
            MiddlewareConfig::IpAllowList(c) => Kind::IpAllowList(ip::AllowList::new(c)),
            MiddlewareConfig::RateLimit(c) => Kind::RateLimit(limit::RateLimiter::new(c)),
            MiddlewareConfig::InFlightReq(c) => Kind::InFlight(limit::InFlightLimiter::new(c)),
            MiddlewareConfig::Compress(c) => Kind::Compress(compress::Compressor::new(c)),
            MiddlewareConfig::CircuitBreaker(c) => {
                Kind::CircuitBreaker(circuit_breaker::Breaker::new(c, now))
            }
            MiddlewareConfig::Buffering(c) => Kind::Buffering(c.clone()),
            MiddlewareConfig::Retry(_) | MiddlewareConfig::Chain(_) => return None,
        };
        Some(Instance { config, kind })
    }
}

/// The middlewares of one router, in order, and the retry policy a `retry` middleware
/// gives it.
pub struct Pipeline {
    stages: Vec<Arc<Instance>>,
    retry: Option<RetryPolicy>,
}

/// Built middlewares by their instance key, kept from one route table to the next so
/// that buckets, counts and breakers survive updates that leave them unchanged.
#[derive(Default)]
pub struct Instances(HashMap<String, Arc<Instance>>);

impl Pipeline {
    /// Build the pipeline of router `router` from its flattened middleware keys, reusing
    /// instances in `previous` whose configuration is unchanged (their new set is put in
    /// `next`). Errors name the middleware.
    pub fn build(
        router: &str,
        keys: &[String],
        configs: &std::collections::BTreeMap<String, MiddlewareConfig>,
        previous: &Instances,
        next: &mut Instances,
        now: Instant,
    ) -> Result<Pipeline, String> {
        let mut stages = Vec::new();
        let mut retry = None;
        for key in keys {
            let config = &configs[key];
            if let MiddlewareConfig::Retry(policy) = config {
                if retry.replace(policy.clone()).is_some() {
                    return Err(format!(
                        "router `{router}` has more than one retry middleware"
                    ));
                }
                continue;
            }
            let id = format!("{router}/{key}");
            let instance = match previous.0.get(&id) {
                Some(old) if old.config == *config => old.clone(),
                _ => match Instance::new(config.clone(), now) {
                    Some(i) => Arc::new(i),
                    None => continue,
                },
            };
            next.0.insert(id, instance.clone());
            stages.push(instance);
        }
        Ok(Pipeline { stages, retry })
    }

    /// The retry policy of a `retry` middleware, if there is one.
    pub fn retry(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }

    /// Run the request side. `Ok` carries the hooks for the response and what to change
    /// upstream; `Err` is an answer given by a stage, already through the hooks of the
    /// stages before it.
    pub async fn request(
        &self,
        req: &mut Request<ProxyBody>,
        client: Client,
    ) -> Result<(Hooks, Upstream), Response<ProxyBody>> {
        let mut hooks = Hooks::default();
        let mut upstream = Upstream::default();
        for stage in &self.stages {
            let step = Box::pin(run_stage(stage, req, client, &mut hooks, &mut upstream)).await;
            if let Some(answer) = step {
                return Err(hooks.respond(answer).await);
            }
        }
        Ok((hooks, upstream))
    }
}

/// Run one stage; `Some` is its answer.
async fn run_stage(
    stage: &Arc<Instance>,
    req: &mut Request<ProxyBody>,
    client: Client,
    hooks: &mut Hooks,
    upstream: &mut Upstream,
) -> Option<Response<ProxyBody>> {
    match &stage.kind {
        Kind::RedirectScheme(r) => r.check(req, client.tls),
        Kind::RedirectRegex(r) => r.check(req, client.tls),
        Kind::Path(p) => p.apply(req).err().map(|a| *a),
        Kind::Headers(h) => match h.request(req, client, upstream) {
            Ok(edits) => {
                hooks.push(Hook::Headers(stage.clone(), edits));
                None
            }
            Err(answer) => Some(*answer),
        },
        Kind::BasicAuth(a) => a.check(req).await,
        Kind::IpAllowList(a) => a.check(req, client.ip),
        Kind::RateLimit(r) => r.admit(req, client.ip, Instant::now()).await,
        Kind::InFlight(l) => match l.acquire(req, client.ip) {
            Ok(guard) => {
                hooks.push(Hook::Hold(guard));
                None
            }
            Err(answer) => Some(*answer),
        },
        Kind::Compress(c) => {
            if let Some(encoding) = c.negotiate(req) {
                hooks.push(Hook::Compress(stage.clone(), encoding));
            }
            None
        }
        Kind::CircuitBreaker(b) => {
            let now = Instant::now();
            if let Some(answer) = b.gate(now) {
                return Some(answer);
            }
            hooks.push(Hook::Breaker(stage.clone(), now));
            None
        }
        Kind::Buffering(b) => {
            if let Some(max) = b.max_response_body_bytes {
                hooks.push(Hook::BufferResponse(max));
            }
            buffer_request(req, b.max_request_body_bytes).await
        }
    }
}

/// What a stage does to the response, kept from its request side.
enum Hook {
    Headers(Arc<Instance>, headers::ResponseEdits),
    Compress(Arc<Instance>, compress::Encoding),
    Breaker(Arc<Instance>, Instant),
    BufferResponse(u64),
    Hold(limit::InFlightGuard),
}

/// The response sides of the stages a request went through.
#[derive(Default)]
pub struct Hooks(Vec<Hook>);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hooks({})", self.0.len())
    }
}

impl Hooks {
    fn push(&mut self, hook: Hook) {
        self.0.push(hook);
    }

    /// Run the hooks over `resp`, last stage first.
    pub async fn respond(self, mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
        let mut held = Vec::new();
        for hook in self.0.into_iter().rev() {
            resp = match hook {
                Hook::Headers(stage, edits) => match &stage.kind {
                    Kind::Headers(h) => h.response(resp, edits),
                    _ => resp,
                },
                Hook::Compress(stage, encoding) => match &stage.kind {
                    Kind::Compress(c) => Box::pin(c.respond(resp, encoding)).await,
                    _ => resp,
                },
                Hook::Breaker(stage, start) => {
                    if let Kind::CircuitBreaker(b) = &stage.kind {
                        b.record(resp.status(), start, Instant::now());
                    }
                    resp
                }
                Hook::BufferResponse(max) => Box::pin(buffer_response(resp, max)).await,
                Hook::Hold(guard) => {
                    held.push(guard);
                    resp
                }
            };
        }
        if held.is_empty() {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        Response::from_parts(parts, body::Guarded::new(body, held).boxed())
    }
}

/// A plain-text answer with Go's status text, as Træfik's middlewares give.
pub(crate) fn status_answer(status: StatusCode) -> Response<ProxyBody> {
    text_answer(status, status.canonical_reason().unwrap_or(""))
}

/// A plain-text answer.
pub(crate) fn text_answer(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(body::full(text.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The host a request names: its URI's authority or its `Host`.
pub(crate) fn request_host<B>(req: &Request<B>) -> &str {
    match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    }
}

/// Read the whole request body; over `max` bytes is 413.
async fn buffer_request(
    req: &mut Request<ProxyBody>,
    max: Option<u64>,
) -> Option<Response<ProxyBody>> {
    let too_large = || status_answer(StatusCode::PAYLOAD_TOO_LARGE);
    if max.is_some_and(|m| req.body().size_hint().lower() > m) {
        return Some(too_large());
    }
    let incoming = std::mem::replace(req.body_mut(), body::empty());
    match collect_limited(incoming, max).await {
        Ok(Some(bytes)) => {
            req.headers_mut().remove(header::TRANSFER_ENCODING);
            req.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            *req.body_mut() = if bytes.is_empty() {
                body::empty()
            } else {
                body::full(bytes)
            };
            None
        }
        Ok(None) => Some(too_large()),
        Err(e) => Some(text_answer(
            StatusCode::BAD_REQUEST,
            &format!("reading request body: {e}"),
        )),
    }
}

/// Read a whole response body; over `max` bytes is 500.
async fn buffer_response(resp: Response<ProxyBody>, max: u64) -> Response<ProxyBody> {
    let (mut parts, incoming) = resp.into_parts();
    if incoming.size_hint().lower() > max {
        return status_answer(StatusCode::INTERNAL_SERVER_ERROR);
    }
    match collect_limited(incoming, Some(max)).await {
        Ok(Some(bytes)) => {
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            Response::from_parts(parts, body::full(bytes))
        }
        _ => status_answer(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The body's bytes, or `None` when there are more than `max`.
pub(crate) async fn collect_limited(
    mut incoming: ProxyBody,
    max: Option<u64>,
) -> Result<Option<bytes::Bytes>, body::BoxError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = incoming.frame().await {
        if let Ok(data) = frame?.into_data() {
            if max.is_some_and(|m| (buf.len() + data.len()) as u64 > m) {
                return Ok(None);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Some(buf.freeze()))
}

#[cfg(test)]
mod tests;
