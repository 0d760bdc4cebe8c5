//! The checks a request passes before it is dispatched, and the proxy's own answers to
//! those it fails: unambiguous framing in a coding it implements, a valid host, a path Go would parse, a router.

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};

use super::body::ProxyBody;
use super::forward::local;
use super::headers;
use super::{ConnInfo, Route, RouteTable};
use crate::rule::{RequestError, RequestView};

/// Why a request was answered by the proxy before reaching a service.
#[derive(Debug, Clone, Copy)]
pub(super) enum Refusal {
    /// Framing that could be read two ways.
    AmbiguousFraming,
    /// A transfer coding other than chunked (RFC 9112 §6.1: 501).
    UnknownCoding,
    /// More than one `Host`, or one that is not a host.
    BadHost,
    /// No host in the URI or `Host`.
    NoHost,
    /// A request target Træfik (Go) refuses: a `%` not followed by two hex digits.
    BadTarget,
    /// No router matched.
    NoRoute,
}

impl Refusal {
    /// The answer; a request Go's server cannot parse (Træfik's) also ends the
    /// connection, as Go's does.
    pub(super) fn response(self) -> Response<ProxyBody> {
        const BAD: StatusCode = StatusCode::BAD_REQUEST;
        let (status, text, close) = match self {
            Refusal::AmbiguousFraming => (BAD, "ambiguous request framing", true),
            Refusal::UnknownCoding => (
                StatusCode::NOT_IMPLEMENTED,
                "transfer coding not implemented: only chunked is",
                true,
            ),
            Refusal::BadHost => (BAD, "bad Host header", true),
            Refusal::NoHost => (BAD, "missing Host header", false),
            Refusal::BadTarget => (
                BAD,
                "bad request target: a '%' not followed by two hex digits",
                true,
            ),
            Refusal::NoRoute => (StatusCode::NOT_FOUND, "404 page not found", false),
        };
        let mut resp = local(status, text);
        if close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// The checks before a request is dispatched: unambiguous framing, a valid host (none
/// needed for HTTP/1.0), a path Go would parse, a matching router.
pub(super) fn admit<'t, 'h>(
    table: &'t RouteTable,
    req: &Request<ProxyBody>,
    conn: &ConnInfo,
    host: Option<&'h HeaderValue>,
) -> Result<(&'t Route, &'h HeaderValue), Refusal> {
    if headers::ambiguous_framing(req.headers()) {
        return Err(Refusal::AmbiguousFraming);
    }
    if !headers::only_chunked(req.headers()) {
        return Err(Refusal::UnknownCoding);
    }
    if !headers::host_fields_valid(req.headers()) {
        return Err(Refusal::BadHost);
    }
    let http10 = req.version() <= Version::HTTP_10;
    let Some((host, text)) = host
        .and_then(|h| Some((h, h.to_str().ok()?)))
        .filter(|(_, t)| !t.is_empty() || http10)
    else {
        return Err(Refusal::NoHost);
    };
    let view = RequestView {
        host: text,
        path: req.uri().path(),
        method: req.method().as_str(),
        headers: req.headers(),
        query: req.uri().query(),
        client_ip: conn.client.ip(),
    };
    let prepared = view.prepare().map_err(|e| match e {
        RequestError::InvalidPercentEncoding { .. } => Refusal::BadTarget,
        RequestError::NonAsciiHost { .. } | RequestError::InvalidHost { .. } => Refusal::BadHost,
    })?;
    let route = table
        .route(&conn.entrypoint, conn.tls, &prepared)
        .ok_or(Refusal::NoRoute)?;
    Ok((route, host))
}
