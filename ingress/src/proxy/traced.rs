//! A request under tracing: its `x-request-id`, its trace, the proxy's server span
//! and a client span per attempt, handed to the exporter as each ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, Method, StatusCode};

use crate::retry::AttemptOutcome;
use crate::trace::{request_id, Attr, Exporter, Incoming, Span, SpanId, SpanKind};

/// Tracing settings of a proxy.
#[derive(Debug, Clone)]
pub struct TracingOptions {
    /// Where spans go; `None`: request IDs and trace context only, no spans.
    pub exporter: Option<Arc<Exporter>>,
}

/// One request's trace.
#[derive(Debug)]
pub(super) struct RequestTrace {
    /// Its `x-request-id`.
    pub request_id: String,
    /// The trace it belongs to.
    pub incoming: Incoming,
    /// The proxy's span for the request.
    pub span: SpanId,
    start: SystemTime,
    method: Method,
    path: String,
    attempts: u32,
}

/// An attempt under way.
pub(super) struct Attempt {
    span: SpanId,
    start: SystemTime,
    number: u32,
}

impl RequestTrace {
    /// Starts tracing a request: its ID (set if missing) and its trace context.
    pub fn begin(method: &Method, path: &str, headers: &mut HeaderMap) -> RequestTrace {
        RequestTrace {
            request_id: request_id(headers),
            incoming: Incoming::extract(headers),
            span: SpanId::random(),
            start: SystemTime::now(),
            method: method.clone(),
            path: path.to_string(),
            attempts: 0,
        }
    }

    /// A new attempt: its span, and its context in the headers the upstream gets.
    pub fn attempt(&mut self, headers: &mut HeaderMap) -> Attempt {
        self.attempts += 1;
        let span = SpanId::random();
        self.incoming.inject(span, self.span, headers);
        Attempt {
            span,
            start: SystemTime::now(),
            number: self.attempts,
        }
    }

    /// The span of a finished attempt at `backend`.
    pub fn attempt_span(
        &self,
        attempt: Attempt,
        backend: SocketAddr,
        outcome: &AttemptOutcome,
    ) -> Span {
        let mut attributes = vec![
            ("server.address", Attr::Str(backend.to_string())),
            ("shoal.attempt", Attr::Int(i64::from(attempt.number))),
            ("shoal.retry", Attr::Bool(attempt.number > 1)),
            ("http.request.id", Attr::Str(self.request_id.clone())),
        ];
        match outcome {
            AttemptOutcome::Status(status) => attributes.push((
                "http.response.status_code",
                Attr::Int(i64::from(status.as_u16())),
            )),
            other => attributes.push(("error.type", Attr::Str(other.label().to_string()))),
        }
        Span {
            trace_id: self.incoming.trace_id,
            span_id: attempt.span,
            parent: Some(self.span),
            name: format!("attempt {}", attempt.number),
            kind: SpanKind::Client,
            start: attempt.start,
            end: SystemTime::now(),
            attributes,
            error: outcome.is_5xx(),
        }
    }

    /// The request's span, once its answer is known.
    pub fn server_span(&self, status: StatusCode, router: &str, service: &str) -> Span {
        let mut attributes = vec![
            ("http.request.method", Attr::Str(self.method.to_string())),
            ("url.path", Attr::Str(self.path.clone())),
            (
                "http.response.status_code",
                Attr::Int(i64::from(status.as_u16())),
            ),
            ("http.request.id", Attr::Str(self.request_id.clone())),
            ("shoal.attempts", Attr::Int(i64::from(self.attempts))),
        ];
        if !router.is_empty() {
            attributes.push(("http.route", Attr::Str(router.to_string())));
            attributes.push(("shoal.service", Attr::Str(service.to_string())));
        }
        Span {
            trace_id: self.incoming.trace_id,
            span_id: self.span,
            parent: self.incoming.parent,
            name: if router.is_empty() {
                self.method.to_string()
            } else {
                format!("{} {router}", self.method)
            },
            kind: SpanKind::Server,
            start: self.start,
            end: SystemTime::now(),
            attributes,
            error: status.is_server_error(),
        }
    }
}

/// Exports a finished attempt's span, when tracing exports spans.
pub(super) fn finish_attempt(
    options: Option<&TracingOptions>,
    trace: Option<&RequestTrace>,
    attempt: Option<Attempt>,
    backend: SocketAddr,
    outcome: &AttemptOutcome,
) {
    let exporter = options.and_then(|o| o.exporter.as_ref());
    if let (Some(exporter), Some(trace), Some(attempt)) = (exporter, trace, attempt) {
        exporter.record(trace.attempt_span(attempt, backend, outcome));
    }
}

/// Exports the request's span once its answer is known, when tracing exports spans.
pub(super) fn finish_request(
    options: Option<&TracingOptions>,
    trace: &RequestTrace,
    status: StatusCode,
    router: &str,
    service: &str,
) {
    if let Some(exporter) = options.and_then(|o| o.exporter.as_ref()) {
        exporter.record(trace.server_span(status, router, service));
    }
}
