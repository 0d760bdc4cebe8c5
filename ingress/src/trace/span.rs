//! Spans as the proxy records them (one per request, one per attempt) and their
//! OTLP/HTTP JSON form (`ExportTraceServiceRequest`, opentelemetry-proto's JSON
//! mapping: IDs in hex, times as decimal strings of nanoseconds).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::context::{SpanId, TraceId};

/// What a span stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// The request as the proxy served it.
    Server,
    /// One attempt at an upstream.
    Client,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// A finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Its trace.
    pub trace_id: TraceId,
    /// Its ID.
    pub span_id: SpanId,
    /// Its parent, if any.
    pub parent: Option<SpanId>,
    /// Its name, e.g. `GET shop` or `attempt 2`.
    pub name: String,
    /// Server or client.
    pub kind: SpanKind,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its attributes (OpenTelemetry's semantic names where there are some).
    pub attributes: Vec<(&'static str, Attr)>,
    /// Whether it failed (5xx, no answer).
    pub error: bool,
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .to_string()
}

fn attr_json(key: &str, value: &Attr) -> Value {
    let value = match value {
        Attr::Str(s) => json!({ "stringValue": s }),
        Attr::Int(i) => json!({ "intValue": i.to_string() }),
        Attr::Bool(b) => json!({ "boolValue": b }),
    };
    json!({ "key": key, "value": value })
}

fn span_json(span: &Span) -> Value {
    let mut out = json!({
        "traceId": span.trace_id.to_string(),
        "spanId": span.span_id.to_string(),
        "name": span.name,
        // SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3.
        "kind": match span.kind { SpanKind::Server => 2, SpanKind::Client => 3 },
        "startTimeUnixNano": nanos(span.start),
        "endTimeUnixNano": nanos(span.end),
        "attributes": span.attributes.iter().map(|(k, v)| attr_json(k, v)).collect::<Vec<_>>(),
        // STATUS_CODE_UNSET = 0, STATUS_CODE_ERROR = 2.
        "status": { "code": if span.error { 2 } else { 0 } },
    });
    if let Some(parent) = span.parent {
        out["parentSpanId"] = json!(parent.to_string());
    }
    out
}

/// The body of one export: `spans` of service `service`.
pub fn otlp_json(service: &str, spans: &[Span]) -> Value {
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [attr_json("service.name", &Attr::Str(service.into()))] },
            "scopeSpans": [{
                "scope": { "name": "shoal-ingress", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span_json).collect::<Vec<_>>(),
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn spans_encode_as_otlp_json() {
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let span = Span {
            trace_id: TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            span_id: SpanId::parse("00f067aa0ba902b7").unwrap(),
            parent: SpanId::parse("1111111111111111"),
            name: "attempt 1".into(),
            kind: SpanKind::Client,
            start,
            end: start + Duration::from_micros(250),
            attributes: vec![
                ("http.response.status_code", Attr::Int(503)),
                ("server.address", Attr::Str("10.0.0.5:80".into())),
                ("shoal.retry", Attr::Bool(true)),
            ],
            error: true,
        };
        let body = otlp_json("shoal", &[span]);
        let s = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(
            body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "shoal"
        );
        assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["spanId"], "00f067aa0ba902b7");
        assert_eq!(s["parentSpanId"], "1111111111111111");
        assert_eq!(s["kind"], 3);
        assert_eq!(s["startTimeUnixNano"], "1700000000123456789");
        assert_eq!(s["endTimeUnixNano"], "1700000000123706789");
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(s["attributes"][0]["value"]["intValue"], "503");
        assert_eq!(s["attributes"][2]["value"]["boolValue"], true);
    }

    #[test]
    fn a_root_span_has_no_parent_field() {
        let now = SystemTime::now();
        let span = Span {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            parent: None,
            name: "GET".into(),
            kind: SpanKind::Server,
            start: now,
            end: now,
            attributes: vec![],
            error: false,
        };
        let body = otlp_json("x", &[span]);
        let s = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert!(s.get("parentSpanId").is_none());
        assert_eq!(s["kind"], 2);
        assert_eq!(s["status"]["code"], 0);
    }
}
