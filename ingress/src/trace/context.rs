//! Trace context on the wire, as Envoy reads and writes it: W3C `traceparent`
//! (and `tracestate`, passed through), Zipkin's B3 (multi-header `x-b3-*` and single
//! `b3`), and `x-request-id`.
//!
//! ```text
//!  request headers ──▶ Incoming::extract ──▶ (trace ID, parent span, sampled, format)
//!  per attempt:      Outgoing::for_attempt(span ID) ──▶ headers to the upstream
//! ```

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Single-header B3.
pub const B3: HeaderName = HeaderName::from_static("b3");
const B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
const B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
const B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// A 128-bit trace ID (never all zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A 64-bit span ID (never all zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

fn hex_into(text: &str, out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // W3C: lowercase only; B3 accepts either.
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(())
}

impl TraceId {
    /// Parses 32 hex digits (or B3's 16, left-padded with zeros); all zeros is invalid.
    pub fn parse(text: &str) -> Option<TraceId> {
        let mut id = [0u8; 16];
        match text.len() {
            32 => hex_into(text, &mut id)?,
            16 => hex_into(text, &mut id[8..])?,
            _ => return None,
        }
        (id != [0; 16]).then_some(TraceId(id))
    }

    /// A random, non-zero ID.
    pub fn random() -> TraceId {
        loop {
            let id: [u8; 16] = rand::random();
            if id != [0; 16] {
                return TraceId(id);
            }
        }
    }
}

impl SpanId {
    /// Parses 16 hex digits; all zeros is invalid.
    pub fn parse(text: &str) -> Option<SpanId> {
        let mut id = [0u8; 8];
        hex_into(text, &mut id)?;
        (id != [0; 8]).then_some(SpanId(id))
    }

    /// A random, non-zero ID.
    pub fn random() -> SpanId {
        loop {
            let id: [u8; 8] = rand::random();
            if id != [0; 8] {
                return SpanId(id);
            }
        }
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// Which propagation format the request came with (it is answered in kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// No context came: W3C is written.
    None,
    /// `traceparent`.
    W3c,
    /// `x-b3-*` headers.
    B3Multi,
    /// The `b3` header.
    B3Single,
}

/// The trace a request belongs to, as found in (or started for) its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span, the parent of the proxy's; `None` when the trace starts here.
    pub parent: Option<SpanId>,
    /// Whether the trace is recorded.
    pub sampled: bool,
    /// How it came.
    pub format: Format,
    /// `tracestate`, passed on unchanged.
    pub tracestate: Option<HeaderValue>,
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `version-traceid-parentid-flags`. Version 00 is exactly 55 characters; a later
/// version may append fields after a `-` (W3C "future versions"); version ff is invalid.
fn parse_traceparent(text: &str) -> Option<(TraceId, SpanId, bool)> {
    let version = text.get(..2)?;
    if version == "ff"
        || !version
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let exact = version == "00";
    if (exact && text.len() != 55)
        || text.len() < 55
        || (!exact && text.len() > 55 && text.as_bytes()[55] != b'-')
    {
        return None;
    }
    let lower = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let (dash1, trace, dash2, span, dash3, flags) = (
        &text[2..3],
        &text[3..35],
        &text[35..36],
        &text[36..52],
        &text[52..53],
        &text[53..55],
    );
    if dash1 != "-"
        || dash2 != "-"
        || dash3 != "-"
        || !lower(trace)
        || !lower(span)
        || !lower(flags)
    {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((TraceId::parse(trace)?, SpanId::parse(span)?, flags & 1 == 1))
}

/// B3's sampling state: `1`/`true`, `0`/`false`, or `d` (debug, which samples).
fn b3_sampled(text: &str) -> Option<bool> {
    match text {
        "1" | "true" | "d" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// `b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`, or just a sampling state.
fn parse_b3_single(text: &str) -> Option<(Option<(TraceId, SpanId)>, bool)> {
    let parts: Vec<&str> = text.split('-').collect();
    match parts.as_slice() {
        [state] => Some((None, b3_sampled(state)?)),
        [trace, span] => Some((Some((TraceId::parse(trace)?, SpanId::parse(span)?)), true)),
        [trace, span, state] | [trace, span, state, _] => Some((
            Some((TraceId::parse(trace)?, SpanId::parse(span)?)),
            b3_sampled(state)?,
        )),
        _ => None,
    }
}

impl Incoming {
    /// The request's trace: `traceparent` if valid, else B3 (single, then multi), else
    /// a new trace, sampled. Invalid headers are ignored (W3C: "restart the trace").
    pub fn extract(headers: &HeaderMap) -> Incoming {
        let tracestate = headers.get(TRACESTATE).cloned();
        if let Some((trace_id, parent, sampled)) =
            header(headers, &TRACEPARENT).and_then(parse_traceparent)
        {
            return Incoming {
                trace_id,
                parent: Some(parent),
                sampled,
                format: Format::W3c,
                tracestate,
            };
        }
        if let Some((ids, sampled)) = header(headers, &B3).and_then(parse_b3_single) {
            if let Some((trace_id, parent)) = ids {
                return Incoming {
                    trace_id,
                    parent: Some(parent),
                    sampled,
                    format: Format::B3Single,
                    tracestate: None,
                };
            }
            return Incoming::fresh(sampled, Format::B3Single);
        }
        let b3_ids = header(headers, &B3_TRACE_ID)
            .and_then(TraceId::parse)
            .zip(header(headers, &B3_SPAN_ID).and_then(SpanId::parse));
        if let Some((trace_id, parent)) = b3_ids {
            let debug = header(headers, &B3_FLAGS) == Some("1");
            let sampled = debug
                || header(headers, &B3_SAMPLED)
                    .map(|s| b3_sampled(s).unwrap_or(true))
                    .unwrap_or(true);
            return Incoming {
                trace_id,
                parent: Some(parent),
                sampled,
                format: Format::B3Multi,
                tracestate: None,
            };
        }
        Incoming::fresh(true, Format::None)
    }

    fn fresh(sampled: bool, format: Format) -> Incoming {
        Incoming {
            trace_id: TraceId::random(),
            parent: None,
            sampled,
            format,
            tracestate: None,
        }
    }

    /// Sets the context an upstream sees for an attempt whose span is `span`: the
    /// incoming format (W3C when none came), any other trace headers removed so they
    /// cannot disagree.
    pub fn inject(&self, span: SpanId, parent_of_span: SpanId, headers: &mut HeaderMap) {
        for name in [
            &TRACEPARENT,
            &B3,
            &B3_TRACE_ID,
            &B3_SPAN_ID,
            &B3_PARENT_SPAN_ID,
            &B3_SAMPLED,
            &B3_FLAGS,
        ] {
            headers.remove(name);
        }
        let value = |text: String| HeaderValue::from_str(&text).expect("hex and dashes are valid");
        let sampled = if self.sampled { "1" } else { "0" };
        match self.format {
            Format::None | Format::W3c => {
                let flags = if self.sampled { "01" } else { "00" };
                headers.insert(
                    TRACEPARENT,
                    value(format!("00-{}-{span}-{flags}", self.trace_id)),
                );
                if let Some(state) = &self.tracestate {
                    headers.insert(TRACESTATE, state.clone());
                }
            }
            Format::B3Single => {
                headers.insert(
                    B3,
                    value(format!(
                        "{}-{span}-{sampled}-{parent_of_span}",
                        self.trace_id
                    )),
                );
            }
            Format::B3Multi => {
                headers.insert(B3_TRACE_ID, value(self.trace_id.to_string()));
                headers.insert(B3_SPAN_ID, value(span.to_string()));
                headers.insert(B3_PARENT_SPAN_ID, value(parent_of_span.to_string()));
                headers.insert(B3_SAMPLED, value(sampled.to_string()));
            }
        }
    }
}

/// The request's `x-request-id`: the client's if it sent a usable one (printable
/// ASCII, at most 128 bytes), else a new UUID v4, which is also set on the request.
pub fn request_id(headers: &mut HeaderMap) -> String {
    if let Some(id) = headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
    {
        return id.to_string();
    }
    let id = uuid_v4();
    headers.insert(
        X_REQUEST_ID,
        HeaderValue::from_str(&id).expect("a UUID is a valid header value"),
    );
    id
}

/// A random (version 4) UUID in its text form.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_is_read_as_w3c_specifies() {
        let inc = Incoming::extract(&headers(&[("traceparent", TP), ("tracestate", "a=1")]));
        assert_eq!(inc.format, Format::W3c);
        assert_eq!(inc.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(inc.parent.unwrap().to_string(), "00f067aa0ba902b7");
        assert!(inc.sampled);
        let unsampled = TP.replace("-01", "-00");
        assert!(!Incoming::extract(&headers(&[("traceparent", &unsampled)])).sampled);
        // A future version may append fields; version 00 may not.
        let future = format!("cc{}-extra", &TP[2..]);
        assert_eq!(
            Incoming::extract(&headers(&[("traceparent", &future)])).format,
            Format::W3c
        );
        for bad in [
            format!("{TP}-extra"),     // 00 with more
            format!("ff{}", &TP[2..]), // version ff
            TP.to_uppercase(),         // uppercase hex
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(), // zero trace
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".into(), // zero span
            TP.replace('-', "_"),
            TP[..54].to_string(),
        ] {
            let inc = Incoming::extract(&headers(&[("traceparent", &bad)]));
            assert_eq!(inc.format, Format::None, "{bad}");
            assert!(inc.parent.is_none(), "{bad}");
        }
    }

    #[test]
    fn b3_in_both_forms() {
        let multi = Incoming::extract(&headers(&[
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "0"),
        ]));
        assert_eq!(multi.format, Format::B3Multi);
        assert!(!multi.sampled);
        // 64-bit trace IDs are left-padded.
        let short = Incoming::extract(&headers(&[
            ("x-b3-traceid", "64fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ]));
        assert_eq!(
            short.trace_id.to_string(),
            "000000000000000064fe8b2a57d3eff7"
        );
        assert!(short.sampled, "no sampling decision defers to us: sampled");
        let single = Incoming::extract(&headers(&[(
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90",
        )]));
        assert_eq!(single.format, Format::B3Single);
        assert!(single.sampled, "debug samples");
        assert_eq!(single.parent.unwrap().to_string(), "e457b5a2e4d86bd1");
        let deny = Incoming::extract(&headers(&[("b3", "0")]));
        assert!(!deny.sampled && deny.parent.is_none());
        // traceparent wins over B3.
        let both = Incoming::extract(&headers(&[("traceparent", TP), ("b3", "0")]));
        assert_eq!(both.format, Format::W3c);
    }

    #[test]
    fn an_attempt_gets_the_context_in_the_format_that_came() {
        let span = SpanId::parse("1111111111111111").unwrap();
        let server = SpanId::parse("2222222222222222").unwrap();
        let mut out = headers(&[("traceparent", TP), ("tracestate", "a=1"), ("b3", "1")]);
        Incoming::extract(&out.clone()).inject(span, server, &mut out);
        assert_eq!(
            out.get("traceparent").unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"
        );
        assert_eq!(out.get("tracestate").unwrap(), "a=1");
        assert!(out.get("b3").is_none(), "conflicting context removed");

        let mut out = headers(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]);
        Incoming::extract(&out.clone()).inject(span, server, &mut out);
        assert_eq!(
            out.get("b3").unwrap(),
            "80f198ee56343ba864fe8b2a57d3eff7-1111111111111111-1-2222222222222222"
        );

        let mut out = HeaderMap::new();
        let fresh = Incoming::extract(&out);
        fresh.inject(span, server, &mut out);
        let tp = out.get("traceparent").unwrap().to_str().unwrap();
        assert!(
            tp.starts_with("00-") && tp.ends_with("-1111111111111111-01"),
            "{tp}"
        );
        assert_eq!(&tp[3..35], fresh.trace_id.to_string());
    }

    #[test]
    fn request_ids_are_kept_or_made() {
        let mut h = headers(&[("x-request-id", "abc-123")]);
        assert_eq!(request_id(&mut h), "abc-123");
        let mut h = HeaderMap::new();
        let id = request_id(&mut h);
        assert_eq!(h.get("x-request-id").unwrap(), id.as_str());
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "version 4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "variant 10xx");
        let long = "x".repeat(129);
        let mut h = headers(&[("x-request-id", &long)]);
        assert_ne!(request_id(&mut h), long);
    }
}
