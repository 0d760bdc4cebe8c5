//! Træfik v3's HTTP middlewares as configuration: parsed from labels
//! (`http.middlewares.<name>.<type>.<option>=…`) or from the file's
//! `[middlewares.<name>.<type>]` tables into validated [`MiddlewareConfig`]s.
//!
//! ```text
//!  labels / TOML ─▶ Opts (keys without case) ─▶ parse::<type> ─▶ MiddlewareConfig
//!                                                  └─ leftover option ─▶ error naming it
//!  router.middlewares = ["a", "b@file", "c@docker"] ─▶ resolve ─▶ flattened chain
//! ```
//! Types and options have Træfik's names (compared without case, as Træfik does). A type
//! or option shoal does not know is refused with an error that names it: dropping an
//! auth or allow-list middleware silently would expose a service.

mod access;
mod headers;
mod opts;
mod rewrite;
mod traffic;

use std::collections::BTreeMap;

pub use access::{
    BasicAuth, InFlightReq, IpAllowList, IpStrategy, PasswordHash, RateLimit, SourceCriterion,
};
pub use headers::Headers;
pub use opts::go_duration;
pub(crate) use opts::Opts;
pub use rewrite::{
    AddPrefix, Pattern, RedirectRegex, RedirectScheme, ReplacePath, ReplacePathRegex, StripPrefix,
    StripPrefixRegex,
};
pub use traffic::{Buffering, CircuitBreaker, Compress, MediaType};

use super::{invalid, ConfigError};
use crate::retry::RetryPolicy;

/// One middleware, validated.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MiddlewareConfig {
    /// `redirectScheme`.
    RedirectScheme(RedirectScheme),
    /// `redirectRegex`.
    RedirectRegex(RedirectRegex),
    /// `stripPrefix`.
    StripPrefix(StripPrefix),
    /// `stripPrefixRegex`.
    StripPrefixRegex(StripPrefixRegex),
    /// `addPrefix`.
    AddPrefix(AddPrefix),
    /// `replacePath`.
    ReplacePath(ReplacePath),
    /// `replacePathRegex`.
    ReplacePathRegex(ReplacePathRegex),
    /// `headers`.
    Headers(Box<Headers>),
    /// `basicAuth`.
    BasicAuth(BasicAuth),
    /// `ipAllowList` (and its old name `ipWhiteList`).
    IpAllowList(IpAllowList),
    /// `rateLimit`.
    RateLimit(RateLimit),
    /// `inFlightReq`.
    InFlightReq(InFlightReq),
    /// `compress`.
    Compress(Compress),
    /// `retry`: the router's retry policy.
    Retry(RetryPolicy),
    /// `circuitBreaker`.
    CircuitBreaker(CircuitBreaker),
    /// `buffering`.
    Buffering(Buffering),
    /// `chain`: other middlewares, by reference.
    Chain(Vec<String>),
}

/// The middleware types, by Træfik's name.
const TYPES: &[&str] = &[
    "redirectScheme",
    "redirectRegex",
    "stripPrefix",
    "stripPrefixRegex",
    "addPrefix",
    "replacePath",
    "replacePathRegex",
    "headers",
    "basicAuth",
    "ipAllowList",
    "ipWhiteList",
    "rateLimit",
    "inFlightReq",
    "compress",
    "retry",
    "circuitBreaker",
    "buffering",
    "chain",
];

/// Træfik middleware types shoal does not implement, named in the error.
const UNSUPPORTED: &[&str] = &[
    "digestAuth",
    "forwardAuth",
    "errors",
    "passTLSClientCert",
    "contentType",
    "grpcWeb",
    "encodedCharacters",
    "plugin",
];

impl MiddlewareConfig {
    /// The type's name as Træfik spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            MiddlewareConfig::RedirectScheme(_) => "redirectScheme",
            MiddlewareConfig::RedirectRegex(_) => "redirectRegex",
            MiddlewareConfig::StripPrefix(_) => "stripPrefix",
            MiddlewareConfig::StripPrefixRegex(_) => "stripPrefixRegex",
            MiddlewareConfig::AddPrefix(_) => "addPrefix",
            MiddlewareConfig::ReplacePath(_) => "replacePath",
            MiddlewareConfig::ReplacePathRegex(_) => "replacePathRegex",
            MiddlewareConfig::Headers(_) => "headers",
            MiddlewareConfig::BasicAuth(_) => "basicAuth",
            MiddlewareConfig::IpAllowList(_) => "ipAllowList",
            MiddlewareConfig::RateLimit(_) => "rateLimit",
            MiddlewareConfig::InFlightReq(_) => "inFlightReq",
            MiddlewareConfig::Compress(_) => "compress",
            MiddlewareConfig::Retry(_) => "retry",
            MiddlewareConfig::CircuitBreaker(_) => "circuitBreaker",
            MiddlewareConfig::Buffering(_) => "buffering",
            MiddlewareConfig::Chain(_) => "chain",
        }
    }

    /// Parse the options of one middleware of type `kind` (any case). `opts.path` names
    /// it in errors.
    pub(crate) fn parse(kind: &str, mut opts: Opts) -> Result<MiddlewareConfig, ConfigError> {
        let Some(canonical) = TYPES.iter().find(|t| t.eq_ignore_ascii_case(kind)) else {
            let path = opts.path.clone();
            if let Some(known) = UNSUPPORTED.iter().find(|t| t.eq_ignore_ascii_case(kind)) {
                return Err(invalid(
                    path,
                    format!("the Træfik middleware `{known}` is not supported by shoal"),
                ));
            }
            return Err(invalid(
                path,
                format!(
                    "unknown middleware type `{kind}` (expected one of {})",
                    TYPES.join(", ")
                ),
            ));
        };
        let config = match *canonical {
            "redirectScheme" => {
                MiddlewareConfig::RedirectScheme(rewrite::redirect_scheme(&mut opts)?)
            }
            "redirectRegex" => MiddlewareConfig::RedirectRegex(rewrite::redirect_regex(&mut opts)?),
            "stripPrefix" => MiddlewareConfig::StripPrefix(rewrite::strip_prefix(&mut opts)?),
            "stripPrefixRegex" => {
                MiddlewareConfig::StripPrefixRegex(rewrite::strip_prefix_regex(&mut opts)?)
            }
            "addPrefix" => MiddlewareConfig::AddPrefix(rewrite::add_prefix(&mut opts)?),
            "replacePath" => MiddlewareConfig::ReplacePath(rewrite::replace_path(&mut opts)?),
            "replacePathRegex" => {
                MiddlewareConfig::ReplacePathRegex(rewrite::replace_path_regex(&mut opts)?)
            }
            "headers" => MiddlewareConfig::Headers(Box::new(headers::parse(&mut opts)?)),
            "basicAuth" => MiddlewareConfig::BasicAuth(access::basic_auth(&mut opts)?),
            "ipAllowList" | "ipWhiteList" => {
                MiddlewareConfig::IpAllowList(access::ip_allow_list(&mut opts)?)
            }
            "rateLimit" => MiddlewareConfig::RateLimit(access::rate_limit(&mut opts)?),
            "inFlightReq" => MiddlewareConfig::InFlightReq(access::in_flight_req(&mut opts)?),
            "compress" => MiddlewareConfig::Compress(traffic::compress(&mut opts)?),
            "retry" => MiddlewareConfig::Retry(traffic::retry(&mut opts)?),
            "circuitBreaker" => {
                MiddlewareConfig::CircuitBreaker(traffic::circuit_breaker(&mut opts)?)
            }
            "buffering" => MiddlewareConfig::Buffering(traffic::buffering(&mut opts)?),
            _ => MiddlewareConfig::Chain(chain(&mut opts)?),
        };
        opts.finish(canonical)?;
        Ok(config)
    }

    /// Parse a middleware from its table: exactly one type key (`{ stripPrefix = {…} }`).
    pub(crate) fn from_opts(opts: Opts) -> Result<MiddlewareConfig, ConfigError> {
        let path = opts.path.clone();
        let mut types: Vec<(String, String, opts::OptValue)> = opts.drain().collect();
        let Some((type_path, kind, value)) = types.pop() else {
            return Err(invalid(path, "a middleware needs a type, like stripPrefix"));
        };
        if let Some((_, other, _)) = types.pop() {
            return Err(invalid(
                path,
                format!("one middleware has one type, this one has `{other}` and `{kind}`"),
            ));
        }
        let table = match value {
            opts::OptValue::Table(t) => t,
            // `compress=true` (and `compress = {}`): a type without options.
            opts::OptValue::Text(t) if t.eq_ignore_ascii_case("true") => Opts::new(&type_path),
            opts::OptValue::Bool(true) => Opts::new(&type_path),
            _ => return Err(invalid(type_path, "expected the middleware's options")),
        };
        MiddlewareConfig::parse(&kind, table)
    }
}

fn chain(opts: &mut Opts) -> Result<Vec<String>, ConfigError> {
    let (path, list) = opts.list("middlewares")?.ok_or_else(|| {
        invalid(
            format!("{}.middlewares", opts.path),
            "a chain needs middlewares",
        )
    })?;
    for m in &list {
        check_reference(&path, m)?;
    }
    Ok(list)
}

/// A middleware reference: `name` or `name@provider`.
pub(crate) fn check_reference(path: &str, reference: &str) -> Result<(), ConfigError> {
    let ok = !reference.is_empty()
        && reference.len() <= 128
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b))
        && reference.matches('@').count() <= 1
        && !reference.starts_with('@')
        && !reference.ends_with('@');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!(
                "`{reference}` is not a middleware name (letters, digits, `_-.`, and `@provider`)"
            ),
        ))
    }
}

/// Providers whose middlewares come from labels: their names in the route table are
/// `<name>@<shoal service>`.
const LABEL_PROVIDERS: &[&str] = &["docker", "swarm", "shoal", "label", "labels"];

/// The key in `middlewares` that `reference` names, as written by a router or chain
/// whose own middlewares carry the suffix `scope` (`@<service>` for labels, none for the
/// file):
/// 1. `name` or `name@x` defined exactly so (`auth@shop` from labels, `auth` in a file);
/// 2. `name@file`: the file's `name`;
/// 3. `name`, `name@docker`, `name@swarm`: the one middleware `name@<service>` defined by
///    labels (several is an error).
pub(crate) fn resolve<'a, T>(
    middlewares: &'a BTreeMap<String, T>,
    reference: &str,
    scope: Option<&str>,
) -> Result<&'a str, String> {
    if let Some(scoped) = scope.map(|s| format!("{reference}@{s}")) {
        if let Some((k, _)) = middlewares.get_key_value(&scoped) {
            return Ok(k);
        }
    }
    if let Some((k, _)) = middlewares.get_key_value(reference) {
        return Ok(k);
    }
    let (name, provider) = match reference.split_once('@') {
        Some((n, p)) => (n, Some(p)),
        None => (reference, None),
    };
    if provider == Some("file") {
        return middlewares
            .get_key_value(name)
            .map(|(k, _)| k.as_str())
            .ok_or_else(|| format!("unknown middleware `{reference}` (no `{name}` in the file)"));
    }
    if provider.is_some_and(|p| !LABEL_PROVIDERS.contains(&p)) {
        return Err(format!("unknown middleware `{reference}`"));
    }
    let prefix = format!("{name}@");
    let found: Vec<&String> = middlewares
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k)
        .collect();
    match found.as_slice() {
        [one] => Ok(one.as_str()),
        [] => Err(format!("unknown middleware `{reference}`")),
        many => Err(format!(
            "middleware `{reference}` is ambiguous: {}",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The suffix a middleware key carries (`shop` for `auth@shop`).
pub(crate) fn scope_of(key: &str) -> Option<&str> {
    key.split_once('@').map(|(_, s)| s)
}

/// Flatten `references` (a router's list) into the keys of the middlewares they run, in
/// order, chains expanded; a chain that contains itself is an error.
pub(crate) fn flatten(
    middlewares: &BTreeMap<String, MiddlewareConfig>,
    references: &[String],
    scope: Option<&str>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut stack = Vec::new();
    expand(middlewares, references, scope, &mut stack, &mut out)?;
    Ok(out)
}

fn expand(
    middlewares: &BTreeMap<String, MiddlewareConfig>,
    references: &[String],
    scope: Option<&str>,
    stack: &mut Vec<String>,
    out: &mut Vec<String>,
) -> Result<(), String> {
    for reference in references {
        let key = resolve(middlewares, reference, scope)?;
        if stack.iter().any(|k| k == key) {
            return Err(format!("chain `{key}` contains itself"));
        }
        match &middlewares[key] {
            MiddlewareConfig::Chain(inner) => {
                stack.push(key.to_string());
                expand(middlewares, inner, scope_of(key), stack, out)?;
                stack.pop();
            }
            _ => out.push(key.to_string()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
