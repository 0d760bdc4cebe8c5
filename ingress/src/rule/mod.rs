//! Træfik v3 routing rules: parse once, then match requests without IO.
//!
//! ```text
//!  "Host(`a.com`) && !PathPrefix(`/admin`)"
//!        │ parse (parse.rs)            │ Display (print.rs)
//!        ▼                             ▲
//!   Rule::And(Host, Not(PathPrefix)) ──┘
//!        │ matches(&RequestView)
//!        ▼
//!      bool
//! ```
//!
//! Supported matchers: `Host`, `HostRegexp`, `Path`, `PathPrefix`, `PathRegexp`,
//! `Method`, `Header`, `HeaderRegexp`, `Query` (one argument: presence; two: value),
//! `QueryRegexp`, `ClientIP`; operators `&&`, `||`, `!` and parentheses. Arguments are
//! written in backticks (no escapes) or double quotes (`\"`, `\\`, `\n`, `\t`).
//! `&&` binds tighter than `||`; both associate to the left.

mod matcher;
mod parse;
mod print;

use std::net::IpAddr;

pub use matcher::{HostPattern, Regex};
pub use parse::{parse, RuleError};

/// A parsed routing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Both sides must match.
    And(Box<Rule>, Box<Rule>),
    /// Either side must match.
    Or(Box<Rule>, Box<Rule>),
    /// The inner rule must not match.
    Not(Box<Rule>),
    /// `Host(`a.com`)` or `Host(`*.a.com`)`: the request host, port stripped, case-insensitive.
    Host(HostPattern),
    /// `HostRegexp(`re`)`: the lowercased request host (port stripped) matches `re`.
    HostRegexp(Regex),
    /// `Path(`/x`)`: the path equals `/x`.
    Path(String),
    /// `PathPrefix(`/api`)`: the path starts with `/api`.
    PathPrefix(String),
    /// `PathRegexp(`re`)`: the path matches `re`.
    PathRegexp(Regex),
    /// `Method(`GET`)`: the method equals (ASCII case-insensitively).
    Method(String),
    /// `Header(`K`, `V`)`: some value of header `K` equals `V`.
    Header(String, String),
    /// `HeaderRegexp(`K`, `re`)`: some value of header `K` matches `re`.
    HeaderRegexp(String, Regex),
    /// `Query(`k`)` (present) or `Query(`k`, `v`)` (some value equals `v`).
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
    /// The path, without the query.
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
    /// Whether the request satisfies the rule.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        matcher::matches(self, req)
    }
}

impl std::str::FromStr for Rule {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// The host of a request as rules see it: port and trailing dot removed, lowercased.
pub fn normalize_host(host: &str) -> String {
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests;
