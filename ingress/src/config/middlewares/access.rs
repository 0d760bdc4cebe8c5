//! Options of the middlewares that admit or refuse requests: `basicAuth`,
//! `ipAllowList`, `rateLimit`, `inFlightReq`, and the client-IP strategy and source
//! criterion they share.

use std::net::IpAddr;
use std::time::Duration;

use http::header::HeaderName;
use http::StatusCode;
use ipnet::IpNet;

use super::super::{invalid, ConfigError};
use super::Opts;

/// A password hash from an htpasswd line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$2a$`, `$2b$`, `$2x$`, `$2y$`: bcrypt.
    Bcrypt(String),
    /// `$apr1$` (Apache) or `$1$`: MD5-crypt; the whole hash, its magic and salt.
    Md5Crypt {
        /// The whole hash.
        hash: String,
        /// `$apr1$` or `$1$`.
        magic: String,
        /// The salt between the magic and the next `$`.
        salt: String,
    },
    /// `{SHA}`: base64 of the password's SHA-1.
    Sha1(Vec<u8>),
}

impl PasswordHash {
    /// Parse a hash as htpasswd writes it; plain text and other crypt schemes are
    /// refused (`user` names the line in the message).
    pub fn parse(user: &str, hash: &str) -> Result<PasswordHash, String> {
        use base64::Engine;
        if ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| hash.starts_with(p))
        {
            let cost_ok = hash
                .get(4..6)
                .and_then(|c| c.parse::<u32>().ok())
                .is_some_and(|c| (4..=31).contains(&c));
            if hash.len() != 60 || !cost_ok || hash.as_bytes()[6] != b'$' {
                return Err(format!("user `{user}`: the bcrypt hash is malformed"));
            }
            return Ok(PasswordHash::Bcrypt(hash.to_string()));
        }
        if let Some(b64) = hash.strip_prefix("{SHA}") {
            return base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .filter(|d| d.len() == 20)
                .map(PasswordHash::Sha1)
                .ok_or_else(|| {
                    format!("user `{user}`: `{{SHA}}` must be followed by base64 of 20 bytes")
                });
        }
        for magic in ["$apr1$", "$1$"] {
            if let Some(rest) = hash.strip_prefix(magic) {
                let Some((salt, digest)) = rest.split_once('$') else {
                    return Err(format!("user `{user}`: `{magic}` hash without a salt"));
                };
                let b64 = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '/';
                if salt.len() > 8
                    || digest.len() != 22
                    || !salt.chars().all(b64)
                    || !digest.chars().all(b64)
                {
                    return Err(format!("user `{user}`: `{magic}` hash is malformed"));
                }
                return Ok(PasswordHash::Md5Crypt {
                    hash: hash.to_string(),
                    magic: magic.to_string(),
                    salt: salt.to_string(),
                });
            }
        }
        Err(format!(
            "user `{user}`: the password is not a bcrypt ($2y$), apr1 ($apr1$), MD5-crypt ($1$) or SHA-1 ({{SHA}}) hash (plain text is not accepted; make one with htpasswd -nbB)"
        ))
    }
}

/// `basicAuth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// Users and their hashes (`users` over `usersFile` for the same name).
    pub users: Vec<(String, PasswordHash)>,
    /// Sent in `WWW-Authenticate` (default `traefik`).
    pub realm: String,
    /// A header to carry the authenticated user name to the backend.
    pub header_field: Option<HeaderName>,
    /// Remove `Authorization` before forwarding.
    pub remove_header: bool,
}

/// How the client's IP is found (`ipStrategy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpStrategy {
    /// The connection's peer address.
    RemoteAddr {
        /// Group IPv6 addresses by this prefix length.
        ipv6_subnet: Option<u8>,
    },
    /// The `depth`-th address of `X-Forwarded-For`, counted from the right.
    Depth {
        /// ≥ 1.
        depth: usize,
        /// Group IPv6 addresses by this prefix length.
        ipv6_subnet: Option<u8>,
    },
    /// The right-most address of `X-Forwarded-For` not in these ranges.
    Excluded(Vec<IpNet>),
}

/// What groups requests into one source (`sourceCriterion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceCriterion {
    /// The client IP by a strategy.
    Ip(IpStrategy),
    /// The value of a request header.
    Header(HeaderName),
    /// The request's host.
    Host,
}

/// `ipAllowList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAllowList {
    /// Allowed addresses and ranges.
    pub source_range: Vec<IpNet>,
    /// How the client IP is found.
    pub strategy: IpStrategy,
    /// The status for refused requests (default 403).
    pub reject_status: StatusCode,
}

/// `rateLimit`: a token bucket per source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per `period`; 0 means no limit.
    pub average: u64,
    /// Default 1 s.
    pub period: Duration,
    /// Bucket size (default 1).
    pub burst: u64,
    /// Default: the client IP.
    pub source: SourceCriterion,
}

/// `inFlightReq`: at most `amount` requests in flight per source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightReq {
    /// ≥ 1.
    pub amount: u64,
    /// Default: the request's host.
    pub source: SourceCriterion,
}

fn parse_net(path: &str, text: &str) -> Result<IpNet, ConfigError> {
    let t = text.trim();
    // As Go's net.ParseIP / ParseCIDR and IPNet.Contains read them: an IPv4-mapped
    // address or network is the IPv4 one.
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    t.parse::<IpNet>()
        .map(crate::middleware::ip::canonical_net)
        .map_err(|_| invalid(path, format!("`{t}` is not an IP address or CIDR range")))
}

fn nets(path: &str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter().map(|t| parse_net(path, t)).collect()
}

/// Parse an `ipStrategy` table (absent: the remote address).
pub(super) fn ip_strategy(table: Option<Opts>) -> Result<IpStrategy, ConfigError> {
    let Some(mut opts) = table else {
        return Ok(IpStrategy::RemoteAddr { ipv6_subnet: None });
    };
    let depth: i64 = opts.int("depth")?.unwrap_or(0);
    let excluded = opts.list("excludedIPs")?;
    let subnet_path = format!("{}.ipv6Subnet", opts.path);
    let ipv6_subnet = match opts.int::<i64>("ipv6Subnet")? {
        Some(n @ 1..=128) => Some(n as u8),
        Some(n) => {
            return Err(invalid(
                subnet_path,
                format!("{n} is not a prefix length 1..=128"),
            ))
        }
        None => None,
    };
    opts.finish("ipStrategy")?;
    // As in Træfik: a depth wins over excludedIPs, which ignore ipv6Subnet.
    if depth > 0 {
        return Ok(IpStrategy::Depth {
            depth: depth as usize,
            ipv6_subnet,
        });
    }
    match excluded {
        Some((path, list)) if !list.is_empty() => Ok(IpStrategy::Excluded(nets(&path, &list)?)),
        _ => Ok(IpStrategy::RemoteAddr { ipv6_subnet }),
    }
}

/// Parse a `sourceCriterion` table; `None` when it names no criterion.
fn source_criterion(opts: &mut Opts) -> Result<Option<SourceCriterion>, ConfigError> {
    let Some(mut table) = opts.table("sourceCriterion")? else {
        return Ok(None);
    };
    let path = table.path.clone();
    let strategy = table.table("ipStrategy")?;
    let header = table
        .string("requestHeaderName")?
        .filter(|(_, h)| !h.trim().is_empty());
    let host = table.bool("requestHost")?.unwrap_or(false);
    table.finish("sourceCriterion")?;
    let given = usize::from(strategy.is_some()) + usize::from(header.is_some()) + usize::from(host);
    if given > 1 {
        return Err(invalid(
            path,
            "ipStrategy, requestHeaderName and requestHost exclude each other",
        ));
    }
    if let Some((path, name)) = header {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| invalid(path, format!("`{name}` is not a header name")))?;
        return Ok(Some(SourceCriterion::Header(name)));
    }
    if host {
        return Ok(Some(SourceCriterion::Host));
    }
    Ok(strategy
        .map(|s| ip_strategy(Some(s)))
        .transpose()?
        .map(SourceCriterion::Ip))
}

pub(super) fn basic_auth(opts: &mut Opts) -> Result<BasicAuth, ConfigError> {
    let mut lines: Vec<(String, String)> = Vec::new();
    if let Some((path, file)) = opts
        .string("usersFile")?
        .filter(|(_, f)| !f.trim().is_empty())
    {
        let text = std::fs::read_to_string(file.trim())
            .map_err(|e| invalid(&path, format!("cannot read `{file}`: {e}")))?;
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        lines.extend(entries.map(|l| (format!("{path} ({file})"), l.to_string())));
    }
    if let Some((path, users)) = opts.list("users")? {
        lines.extend(users.into_iter().map(|u| (path.clone(), u)));
    }
    let mut users: Vec<(String, PasswordHash)> = Vec::new();
    for (path, line) in lines {
        let mut parts = line.split(':');
        let (Some(user), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid(
                path,
                "a user is `name:hash`, as htpasswd writes it",
            ));
        };
        if user.is_empty() {
            return Err(invalid(path, "a user with an empty name"));
        }
        let hash = PasswordHash::parse(user, hash).map_err(|m| invalid(&path, m))?;
        users.retain(|(u, _)| u != user);
        users.push((user.to_string(), hash));
    }
    if users.is_empty() {
        return Err(invalid(
            format!("{}.users", opts.path),
            "no users (give users or usersFile)",
        ));
    }
    let realm = match opts.string("realm")? {
        Some((path, r)) if !r.is_empty() => {
            if r.bytes()
                .any(|b| b == b'"' || b == b'\\' || b.is_ascii_control())
            {
                return Err(invalid(
                    path,
                    "a realm must not contain quotes, backslashes or control characters",
                ));
            }
            r
        }
        _ => "traefik".to_string(),
    };
    let header_field = opts
        .string("headerField")?
        .filter(|(_, h)| !h.trim().is_empty())
        .map(|(path, h)| {
            HeaderName::from_bytes(h.trim().as_bytes())
                .map_err(|_| invalid(path, format!("`{h}` is not a header name")))
        })
        .transpose()?;
    Ok(BasicAuth {
        users,
        realm,
        header_field,
        remove_header: opts.bool("removeHeader")?.unwrap_or(false),
    })
}

pub(super) fn ip_allow_list(opts: &mut Opts) -> Result<IpAllowList, ConfigError> {
    let (path, ranges) = opts.list("sourceRange")?.unwrap_or_default();
    if ranges.is_empty() {
        return Err(invalid(
            format!("{}.sourceRange", opts.path),
            "is required and must not be empty",
        ));
    }
    let source_range = nets(&path, &ranges)?;
    let strategy = ip_strategy(opts.table("ipStrategy")?)?;
    let status_path = format!("{}.rejectStatusCode", opts.path);
    let reject_status = match opts.int::<u16>("rejectStatusCode")? {
        None | Some(0) => StatusCode::FORBIDDEN,
        Some(code) => StatusCode::from_u16(code)
            .ok()
            .filter(|s| s.canonical_reason().is_some() && s.as_u16() >= 200)
            .ok_or_else(|| invalid(status_path, format!("{code} is not an HTTP status code")))?,
    };
    Ok(IpAllowList {
        source_range,
        strategy,
        reject_status,
    })
}

pub(super) fn rate_limit(opts: &mut Opts) -> Result<RateLimit, ConfigError> {
    if let Some((path, _)) = opts.take("redis") {
        return Err(invalid(
            path,
            "rate limiting through Redis is not supported by shoal",
        ));
    }
    let average = opts.int::<u64>("average")?.unwrap_or(0);
    let period = opts
        .duration("period")?
        .filter(|p| !p.is_zero())
        .unwrap_or(Duration::from_secs(1));
    let burst = opts.int::<i64>("burst")?.unwrap_or(1).max(1) as u64;
    let source = source_criterion(opts)?.unwrap_or(SourceCriterion::Ip(IpStrategy::RemoteAddr {
        ipv6_subnet: None,
    }));
    Ok(RateLimit {
        average,
        period,
        burst,
        source,
    })
}

pub(super) fn in_flight_req(opts: &mut Opts) -> Result<InFlightReq, ConfigError> {
    let path = format!("{}.amount", opts.path);
    let amount = match opts.int::<i64>("amount")? {
        Some(n) if n >= 1 => n as u64,
        Some(n) => return Err(invalid(path, format!("{n}: must be at least 1"))),
        None => return Err(invalid(path, "is required")),
    };
    let source = source_criterion(opts)?.unwrap_or(SourceCriterion::Host);
    Ok(InFlightReq { amount, source })
}
