//! Træfik v3 routing rules: parse once, then match requests without IO, with Træfik's
//! semantics (`pkg/rules`, `pkg/muxer/http` in Træfik).
//!
//! ```text
//!  "Host(`a.com`) && !PathPrefix(`/admin`)"
//!        │ parse (parse.rs, args.rs)   │ Display (print.rs)
//!        ▼                             ▲
//!   Rule::And(Host, Not(PathPrefix)) ──┘
//!        │ try_matches(&RequestView)     request.rs: canonical host, routing path, query
//!        ▼                               matcher.rs: each matcher as Træfik's
//!   Ok(bool) | Err(RequestError)  ── a request Træfik would refuse (400)
//! ```
//!
//! Matchers: `Host`, `HostRegexp`, `Path`, `PathPrefix`, `PathRegexp`, `Method`, `Header`,
//! `HeaderRegexp`, `Query`, `QueryRegexp`, `ClientIP`, each also spelled all lower case,
//! all upper case or capitalised (`pathprefix`, `PATHPREFIX`, `Pathprefix`). Operators
//! `&&`, `||`, `!` and parentheses; `&&` binds tighter than `||`, both associate to the
//! left. The text is a Go expression: arguments are Go strings (backticks, or double
//! quotes with Go's escapes), comments are allowed. Every argument must be non-empty.
//! Regular expressions use Go's syntax (regexp.rs).
//!
//! What each matcher sees, as in Træfik:
//! - `Host`: the host without port (IPv6 brackets removed), ignoring case and one
//!   trailing dot on either side; `*.a.com` stands for exactly one label; `*` matches
//!   every request.
//! - `HostRegexp`: the same host, lowercased, trailing dot kept; the regexp as written.
//! - `Path`, `PathPrefix`, `PathRegexp`: the path with every percent-encoding decoded
//!   except reserved characters (`/foo%20bar` is `/foo bar`, `%2F` stays `%2F`).
//! - `Method`: the request method, compared exactly with the upper-cased argument.
//! - `Header`, `HeaderRegexp`: any value of the header, as bytes (not `Host`, which Go
//!   keeps apart from the other headers, nor `Transfer-Encoding`).
//! - `Query(k)`: `k` present with an empty value (`?k` or `?k=`); `Query(k, v)`: some
//!   value of `k` is `v`; values decoded as forms are (`+` is a space).
//! - `ClientIP`: the address of the connected client; IPv4-mapped IPv6 is IPv4.

mod args;
mod matcher;
mod parse;
mod print;
mod regexp;
mod request;

use std::net::IpAddr;

pub use matcher::HostPattern;
pub use parse::{parse, RuleError};
pub use regexp::{Regex, RegexError};
pub use request::RequestError;

/// A parsed routing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Both sides must match.
    And(Box<Rule>, Box<Rule>),
    /// Either side must match.
    Or(Box<Rule>, Box<Rule>),
    /// The inner rule must not match.
    Not(Box<Rule>),
    /// `Host(`a.com`)`, `Host(`*.a.com`)`, `Host(`*`)`.
    Host(HostPattern),
    /// `HostRegexp(`re`)`: the canonical host matches `re`.
    HostRegexp(Regex),
    /// `Path(`/x`)`: the routing path equals `/x`.
    Path(String),
    /// `PathPrefix(`/api`)`: the routing path starts with `/api`.
    PathPrefix(String),
    /// `PathRegexp(`re`)`: the routing path matches `re`.
    PathRegexp(Regex),
    /// `Method(`GET`)`: the method equals the argument, stored upper-cased.
    Method(String),
    /// `Header(`K`, `V`)`: some value of header `K` (stored lowercased) equals `V`.
    Header(String, String),
    /// `HeaderRegexp(`K`, `re`)`: some value of header `K` matches `re`.
    HeaderRegexp(String, Regex),
    /// `Query(`k`)` (`None`: present with an empty value) or `Query(`k`, `v`)`.
    Query(String, Option<String>),
    /// `QueryRegexp(`k`, `re`)`: some value of query parameter `k` matches `re`.
    QueryRegexp(String, Regex),
    /// `ClientIP(`10.0.0.0/8`)` or `ClientIP(`10.1.2.3`)`.
    ClientIp(ipnet::IpNet),
}

/// What a rule can see of a request. Built by the proxy from the request head.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The host from the URI authority or the `Host` header, as sent (port allowed).
    pub host: &'a str,
    /// The path as sent (still percent-encoded), without the query.
    pub path: &'a str,
    /// The method.
    pub method: &'a str,
    /// All request headers.
    pub headers: &'a http::HeaderMap,
    /// The raw query string (without `?`), if any.
    pub query: Option<&'a str>,
    /// The address of the client connected to the proxy.
    pub client_ip: IpAddr,
}

impl Rule {
    /// Whether the request satisfies the rule; a request Træfik would refuse
    /// (see [`Rule::try_matches`]) satisfies none.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.try_matches(req).unwrap_or(false)
    }

    /// Whether the request satisfies the rule, or why the request cannot be routed at
    /// all: a non-ASCII or malformed host, or a bad percent-encoding in the path. Træfik
    /// (Go's HTTP server) answers such requests 400 before any rule is tried, whatever
    /// the rule, and so should the caller.
    pub fn try_matches(&self, req: &RequestView<'_>) -> Result<bool, RequestError> {
        Ok(self.matches_prepared(&req.prepare()?))
    }

    /// Whether a request read once with [`RequestView::prepare`] satisfies the rule:
    /// for trying many rules against one request.
    pub fn matches_prepared(&self, req: &PreparedRequest<'_>) -> bool {
        matcher::matches(self, &req.0)
    }
}

/// A request as the matchers see it (canonical host, routing path), read once.
pub struct PreparedRequest<'a>(matcher::Prepared<'a>);

impl<'a> RequestView<'a> {
    /// Reads the request for matching, or says why Træfik would answer it 400.
    pub fn prepare(&'a self) -> Result<PreparedRequest<'a>, RequestError> {
        matcher::Prepared::new(self).map(PreparedRequest)
    }
}

impl std::str::FromStr for Rule {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// The host of a request as `Host` and `HostRegexp` see it: port (and IPv6 brackets)
/// removed the way Go's `net.SplitHostPort` does, lowercased. A trailing dot is kept
/// (`Host` ignores it, `HostRegexp` sees it).
pub fn normalize_host(host: &str) -> String {
    request::strip_port(host).to_ascii_lowercase()
}

#[cfg(test)]
mod tests;
