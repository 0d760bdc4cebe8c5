//! Evaluating a [`Rule`] against a [`RequestView`]: pure functions. The request is
//! read once ([`Prepared`]: canonical host, routing path), then each matcher compares
//! as Træfik's does (`pkg/muxer/http/matcher.go`).

use std::borrow::Cow;

use super::request::{canonical_host, query_values, routing_path, RequestError};
use super::{RequestView, Rule};

/// The argument of `Host(...)`, lowercased as Træfik stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: every request, whatever its host (even none).
    Any,
    /// `a.example.com`, `10::10`: the host equals it, ignoring case, port and one
    /// trailing dot on either side.
    Exact(String),
    /// `*.example.com`, stored as written: exactly one label in place of the `*`
    /// (`x.example.com`, not `example.com` nor `x.y.example.com`).
    Wildcard(String),
}

impl HostPattern {
    /// Whether a canonical host (see [`super::normalize_host`]) matches.
    pub fn matches(&self, host: &str) -> bool {
        let expr = match self {
            HostPattern::Any => return true,
            HostPattern::Exact(e) | HostPattern::Wildcard(e) => e.as_str(),
        };
        if host.is_empty() {
            return false;
        }
        domain_matches(host, expr)
            || expr
                .strip_suffix('.')
                .is_some_and(|e| domain_matches(host, e))
            || host
                .strip_suffix('.')
                .is_some_and(|h| domain_matches(h, expr))
    }
}

/// Træfik's `DomainMatchHostExpression`: a leading `*` stands for the first label.
fn domain_matches(domain: &str, expr: &str) -> bool {
    match expr.strip_prefix('*') {
        Some(tail) => {
            let domain_tail = domain.find('.').map_or("", |dot| &domain[dot..]);
            domain_tail.eq_ignore_ascii_case(tail)
        }
        None => domain.eq_ignore_ascii_case(expr),
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Exact(e) | HostPattern::Wildcard(e) => f.write_str(e),
        }
    }
}

/// Headers Go's server moves out of the header map, so Træfik's `Header` never sees them.
const HIDDEN_HEADERS: &[&str] = &["host", "transfer-encoding"];

/// A request read once for matching.
pub(super) struct Prepared<'a> {
    view: &'a RequestView<'a>,
    host: Cow<'a, str>,
    path: Cow<'a, [u8]>,
}

impl<'a> Prepared<'a> {
    pub(super) fn new(view: &'a RequestView<'a>) -> Result<Self, RequestError> {
        Ok(Prepared {
            view,
            host: canonical_host(view.host)?,
            path: routing_path(view.path)?,
        })
    }
}

pub(super) fn matches(rule: &Rule, req: &Prepared<'_>) -> bool {
    let view = req.view;
    match rule {
        Rule::And(a, b) => matches(a, req) && matches(b, req),
        Rule::Or(a, b) => matches(a, req) || matches(b, req),
        Rule::Not(a) => !matches(a, req),
        Rule::Host(pattern) => pattern.matches(&req.host),
        Rule::HostRegexp(re) => re.is_match(&req.host),
        Rule::Path(p) => *req.path == *p.as_bytes(),
        Rule::PathPrefix(p) => req.path.starts_with(p.as_bytes()),
        Rule::PathRegexp(re) => re.is_match_bytes(&req.path),
        Rule::Method(m) => view.method == m,
        Rule::Header(name, value) => header_values(view, name).any(|v| v == value.as_bytes()),
        Rule::HeaderRegexp(name, re) => header_values(view, name).any(|v| re.is_match_bytes(v)),
        Rule::Query(key, value) => {
            let want = value.as_deref().unwrap_or("").as_bytes();
            query_values(view.query.unwrap_or(""), key).any(|v| *v == *want)
        }
        Rule::QueryRegexp(key, re) => {
            query_values(view.query.unwrap_or(""), key).any(|v| re.is_match_bytes(&v))
        }
        Rule::ClientIp(net) => net.contains(&canonical_ip(view.client_ip)),
    }
}

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) compare as IPv4, as in Go.
pub(super) fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn header_values<'a>(req: &RequestView<'a>, name: &str) -> impl Iterator<Item = &'a [u8]> + 'a {
    let hidden = HIDDEN_HEADERS.contains(&name);
    let values = req.headers.get_all(name).iter().map(|v| v.as_bytes());
    values.filter(move |_| !hidden)
}
