//! Options of the middlewares that shape traffic: `compress`, `retry`,
//! `circuitBreaker`, `buffering`.

use std::time::Duration;

use http::StatusCode;

use super::super::{invalid, validate_retry, ConfigError};
use super::Opts;
use crate::middleware::compress::Encoding;
use crate::middleware::expr::Expr;
use crate::retry::{BackoffShape, RetryOn, RetryPolicy};

/// A media type with its parameters, as `mime.ParseMediaType` reads it: type and
/// parameter names in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// Like `text/html`.
    pub essence: String,
    /// Parameters, names lower case, in order.
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// Parse `type/subtype; name=value…`; `None` when it is not one.
    pub fn parse(text: &str) -> Option<MediaType> {
        let mut parts = text.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        let (ty, sub) = essence.split_once('/')?;
        if !token(ty) || !token(sub) {
            return None;
        }
        let mut params = Vec::new();
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (name, value) = p.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            if !token(&name) {
                return None;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            params.push((name, value.to_string()));
        }
        Some(MediaType { essence, params })
    }

    /// Whether a response's `other` type is this one: the same essence and, when this one
    /// has parameters, exactly the same parameters.
    pub fn covers(&self, other: &MediaType) -> bool {
        self.essence == other.essence
            && (self.params.is_empty()
                || (self.params.len() == other.params.len()
                    && self.params.iter().all(|p| other.params.contains(p))))
    }
}

/// `compress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compress {
    /// Never compressed (`application/grpc` always is here).
    pub excluded_content_types: Vec<MediaType>,
    /// When not empty, only these are compressed.
    pub included_content_types: Vec<MediaType>,
    /// Bodies shorter than this go out as they are (default 1024).
    pub min_response_body_bytes: usize,
    /// Offered encodings, preferred first at equal weight (default gzip, br, zstd).
    pub encodings: Vec<Encoding>,
    /// Used when the request has no `Accept-Encoding` (default: none, no compression)
    /// and for `*`.
    pub default_encoding: Option<Encoding>,
}

/// `circuitBreaker`.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreaker {
    /// When to trip.
    pub expression: Expr,
    /// How often the expression is evaluated (default 100 ms).
    pub check_period: Duration,
    /// How long a tripped breaker answers for the service (default 10 s).
    pub fallback_duration: Duration,
    /// How long it ramps traffic back up (default 10 s).
    pub recovery_duration: Duration,
    /// The status of its own answers (default 503).
    pub response_code: StatusCode,
}

/// `buffering`: whole bodies read before they move on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffering {
    /// Larger requests get 413; `None`: no limit.
    pub max_request_body_bytes: Option<u64>,
    /// Larger responses become 500; `None`: no limit.
    pub max_response_body_bytes: Option<u64>,
}

fn media_types(opts: &mut Opts, key: &str) -> Result<Vec<MediaType>, ConfigError> {
    let Some((path, list)) = opts.list(key)? else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|t| {
            MediaType::parse(t).ok_or_else(|| invalid(&path, format!("`{t}` is not a media type")))
        })
        .collect()
}

fn encoding(path: &str, name: &str) -> Result<Encoding, ConfigError> {
    Encoding::from_name(name.trim()).ok_or_else(|| {
        invalid(
            path,
            format!("unsupported encoding `{name}` (gzip, br or zstd)"),
        )
    })
}

pub(super) fn compress(opts: &mut Opts) -> Result<Compress, ConfigError> {
    let excluded = media_types(opts, "excludedContentTypes")?;
    let included = media_types(opts, "includedContentTypes")?;
    if !excluded.is_empty() && !included.is_empty() {
        return Err(invalid(
            &opts.path,
            "excludedContentTypes and includedContentTypes exclude each other",
        ));
    }
    let mut excluded_content_types =
        vec![MediaType::parse("application/grpc").expect("a media type")];
    excluded_content_types.extend(excluded);
    let min = opts.int::<i64>("minResponseBodyBytes")?.unwrap_or(0);
    let encodings = match opts.list("encodings")? {
        Some((path, list)) => {
            if list.is_empty() {
                return Err(invalid(path, "at least one encoding"));
            }
            let mut out: Vec<Encoding> = Vec::new();
            for name in &list {
                let e = encoding(&path, name)?;
                if !out.contains(&e) {
                    out.push(e);
                }
            }
            out
        }
        None => vec![Encoding::Gzip, Encoding::Brotli, Encoding::Zstd],
    };
    let default_encoding = match opts.string("defaultEncoding")? {
        Some((path, name)) if !name.trim().is_empty() => {
            let e = encoding(&path, &name)?;
            if !encodings.contains(&e) {
                return Err(invalid(
                    path,
                    format!("`{name}` is not one of the encodings"),
                ));
            }
            Some(e)
        }
        _ => None,
    };
    Ok(Compress {
        excluded_content_types,
        included_content_types: included,
        min_response_body_bytes: if min > 0 { min as usize } else { 1024 },
        encodings,
        default_encoding,
    })
}

/// Træfik's `status` ranges (`500-599`, `502`) as status codes.
fn status_ranges(path: &str, list: &[String]) -> Result<Vec<u16>, ConfigError> {
    let mut codes = Vec::new();
    for item in list {
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        let parse = |t: &str| {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
        };
        match (parse(lo), parse(hi)) {
            (Some(lo), Some(hi)) if lo <= hi => codes.extend(lo..=hi),
            _ => {
                return Err(invalid(
                    path,
                    format!("`{item}` is not a status code or range like 500-599"),
                ))
            }
        }
    }
    Ok(codes)
}

pub(super) fn retry(opts: &mut Opts) -> Result<RetryPolicy, ConfigError> {
    let base = opts.path.clone();
    let attempts = match opts.int::<i64>("attempts")? {
        Some(n) if n >= 1 => n as u32,
        Some(n) => {
            return Err(invalid(
                format!("{base}.attempts"),
                format!("{n}: must be at least 1"),
            ))
        }
        None => return Err(invalid(format!("{base}.attempts"), "is required")),
    };
    let mut p = RetryPolicy {
        num_retries: attempts - 1,
        backoff_base: opts.duration("initialInterval")?.unwrap_or(Duration::ZERO),
        backoff_shape: BackoffShape::Doubling { attempts },
        retry_window: opts.duration("timeout")?.filter(|t| !t.is_zero()),
        // Træfik's own timeouts apply (no overall deadline from this middleware).
        timeout: None,
        ..RetryPolicy::default()
    };
    p.max_body_bytes = match opts.int::<i64>("maxRequestBodyBytes")? {
        None => Some(2 * 1024 * 1024),
        Some(-1) => Some(usize::MAX),
        Some(n) if n >= 0 => Some(n as usize),
        Some(n) => {
            return Err(invalid(
                format!("{base}.maxRequestBodyBytes"),
                format!("{n}: use -1 for no limit"),
            ))
        }
    };
    let network = !opts.bool("disableRetryOnNetworkError")?.unwrap_or(false);
    let codes = match opts.list("status")? {
        Some((path, list)) => status_ranges(&path, &list)?,
        None => Vec::new(),
    };
    if codes.is_empty() && !network {
        return Err(invalid(
            &base,
            "with disableRetryOnNetworkError, status must name codes to retry on",
        ));
    }
    p.retry_on = RetryOn {
        connect_failure: network,
        status_codes: codes.into_iter().collect(),
        ..RetryOn::default()
    };
    if opts.bool("retryNonIdempotentMethod")?.unwrap_or(false) {
        p.methods
            .extend(["POST", "PATCH", "LOCK"].map(String::from));
    }
    validate_retry(&base, &p)?;
    Ok(p)
}

pub(super) fn circuit_breaker(opts: &mut Opts) -> Result<CircuitBreaker, ConfigError> {
    let expression = match opts.string("expression")? {
        Some((path, text)) if !text.trim().is_empty() => {
            Expr::parse(text.trim()).map_err(|m| invalid(path, m))?
        }
        _ => return Err(invalid(format!("{}.expression", opts.path), "is required")),
    };
    let positive = |d: Option<Duration>, default: u64| {
        d.filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_millis(default))
    };
    let check_period = positive(opts.duration("checkPeriod")?, 100);
    let fallback_duration = positive(opts.duration("fallbackDuration")?, 10_000);
    let recovery_duration = positive(opts.duration("recoveryDuration")?, 10_000);
    let code_path = format!("{}.responseCode", opts.path);
    let response_code = match opts.int::<u16>("responseCode")? {
        None | Some(0) => StatusCode::SERVICE_UNAVAILABLE,
        Some(c) => StatusCode::from_u16(c)
            .ok()
            .filter(|s| s.as_u16() >= 200)
            .ok_or_else(|| invalid(code_path, format!("{c} is not an HTTP status code")))?,
    };
    Ok(CircuitBreaker {
        expression,
        check_period,
        fallback_duration,
        recovery_duration,
        response_code,
    })
}

pub(super) fn buffering(opts: &mut Opts) -> Result<Buffering, ConfigError> {
    if let Some((path, _)) = opts.take("retryExpression") {
        return Err(invalid(
            path,
            "retryExpression is not supported by shoal; use the retry middleware",
        ));
    }
    let mut limit = |key: &str| -> Result<Option<u64>, ConfigError> {
        let path = format!("{}.{key}", opts.path);
        match opts.int::<i64>(key)? {
            None | Some(0) => Ok(None),
            Some(n) if n > 0 => Ok(Some(n as u64)),
            Some(n) => Err(invalid(path, format!("{n}: must not be negative"))),
        }
    };
    let max_request_body_bytes = limit("maxRequestBodyBytes")?;
    let max_response_body_bytes = limit("maxResponseBodyBytes")?;
    // Thresholds for spilling to disk: shoal keeps buffered bodies in memory, bounded
    // by the maxima above, so these only need to be numbers.
    limit("memRequestBodyBytes")?;
    limit("memResponseBodyBytes")?;
    Ok(Buffering {
        max_request_body_bytes,
        max_response_body_bytes,
    })
}
