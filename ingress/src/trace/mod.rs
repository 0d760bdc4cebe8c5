//! Tracing as Envoy does it at the edge: every request gets an `x-request-id`; its
//! trace context (W3C `traceparent`, or B3) is carried on or started; the proxy
//! records one server span per request and one client span per attempt (so retries
//! show), and exports them over OTLP/HTTP to a collector.

pub mod context;
pub mod export;
pub mod span;

pub use context::{request_id, Incoming, SpanId, TraceId};
pub use export::{Endpoint, Exporter};
pub use span::{Attr, Span, SpanKind};
