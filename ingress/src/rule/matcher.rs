//! Evaluating a [`Rule`] against a [`RequestView`]: pure functions, no allocation
//! beyond host normalisation and query decoding.

use super::{normalize_host, RequestView, Rule};

/// A compiled regular expression that compares equal by its source text.
#[derive(Debug, Clone)]
pub struct Regex(regex::Regex);

impl Regex {
    /// Compile `src`.
    pub fn new(src: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(src).map(Regex)
    }
    /// The source text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
    /// Whether `s` matches somewhere (use `^…$` to anchor).
    pub fn is_match(&self, s: &str) -> bool {
        self.0.is_match(s)
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Regex {}

/// The argument of `Host(...)`: an exact name or `*.suffix` (one or more labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `a.example.com`, stored lowercased.
    Exact(String),
    /// `*.example.com`, stored as `example.com` lowercased: matches `x.example.com`,
    /// `x.y.example.com`, not `example.com`.
    Wildcard(String),
}

impl HostPattern {
    /// Whether the normalised host `host` matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Wildcard(suffix) => host
                .strip_suffix(suffix.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|head| !head.is_empty()),
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

pub(super) fn matches(rule: &Rule, req: &RequestView<'_>) -> bool {
    match rule {
        Rule::And(a, b) => matches(a, req) && matches(b, req),
        Rule::Or(a, b) => matches(a, req) || matches(b, req),
        Rule::Not(a) => !matches(a, req),
        Rule::Host(pattern) => pattern.matches(&normalize_host(req.host)),
        Rule::HostRegexp(re) => re.is_match(&normalize_host(req.host)),
        Rule::Path(p) => req.path == p,
        Rule::PathPrefix(p) => req.path.starts_with(p.as_str()),
        Rule::PathRegexp(re) => re.is_match(req.path),
        Rule::Method(m) => req.method.eq_ignore_ascii_case(m),
        Rule::Header(name, value) => header_values(req, name).any(|v| v == value),
        Rule::HeaderRegexp(name, re) => header_values(req, name).any(|v| re.is_match(v)),
        Rule::Query(key, value) => query_values(req, key).any(|v| match value {
            None => true,
            Some(want) => &v == want,
        }),
        Rule::QueryRegexp(key, re) => query_values(req, key).any(|v| re.is_match(&v)),
        Rule::ClientIp(net) => net.contains(&canonical_ip(req.client_ip)),
    }
}

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) compare as IPv4.
fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn header_values<'a>(req: &RequestView<'a>, name: &str) -> impl Iterator<Item = &'a str> + 'a {
    req.headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

fn query_values<'a>(req: &RequestView<'a>, key: &'a str) -> impl Iterator<Item = String> + 'a {
    req.query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == key).then(|| percent_decode(v))
        })
}

/// Decode `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
/// Invalid escapes are kept literally; invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}
