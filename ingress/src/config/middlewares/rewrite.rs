//! Options of the middlewares that redirect or rewrite the request target:
//! `redirectScheme`, `redirectRegex`, `stripPrefix`, `stripPrefixRegex`, `addPrefix`,
//! `replacePath`, `replacePathRegex`.

use super::super::{invalid, ConfigError};
use super::Opts;

/// A compiled regular expression that compares by its text.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Pattern {
    /// Compile `text` (trimmed); `path` names it in errors.
    pub(crate) fn new(path: &str, text: &str) -> Result<Pattern, ConfigError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid(path, "an empty regular expression"));
        }
        regex::Regex::new(text)
            .map(Pattern)
            .map_err(|e| invalid(path, format!("`{text}` is not a regular expression: {e}")))
    }
}

/// `redirectScheme`: send the client to the same URL with another scheme (and port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectScheme {
    /// The target scheme, like `https`.
    pub scheme: String,
    /// The target port; `None` drops the request's port. `80` for `http` and `443` for
    /// `https` are left out of the URL.
    pub port: Option<String>,
    /// 301/308 instead of 302/307.
    pub permanent: bool,
}

/// `redirectRegex`: send the client to the URL made by replacing `regex` in the
/// request's URL with `replacement`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedirectRegex {
    /// Matched against `scheme://host[:port]/path?query`.
    pub regex: Pattern,
    /// With `$1`, `${name}` for groups.
    pub replacement: String,
    /// 301/308 instead of 302/307.
    pub permanent: bool,
}

/// `stripPrefix`: remove the first matching prefix from the path, sending it in
/// `X-Forwarded-Prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripPrefix {
    /// Tried in order; the first that the (decoded) path starts with is stripped.
    pub prefixes: Vec<String>,
    /// Træfik v2's behaviour (deprecated in v3, off by default): also strip a slash
    /// that follows the prefix before putting one back.
    pub force_slash: bool,
}

/// `stripPrefixRegex`: remove the first match of the first matching expression, when
/// it is a prefix of the path.
#[derive(Debug, Clone, PartialEq)]
pub struct StripPrefixRegex {
    /// Tried in order.
    pub regex: Vec<Pattern>,
}

/// `addPrefix`: put `prefix` before the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddPrefix {
    /// Like `/api`.
    pub prefix: String,
}

/// `replacePath`: replace the path, sending the old one in `X-Replaced-Path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacePath {
    /// The new path (percent-encoded as it is to be sent).
    pub path: String,
}

/// `replacePathRegex`: replace the path by a regular expression, sending the old one
/// in `X-Replaced-Path`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplacePathRegex {
    /// Matched against the path as received (percent-encoded).
    pub regex: Pattern,
    /// With `$1`, `${name}` for groups.
    pub replacement: String,
}

fn required(opts: &mut Opts, key: &str) -> Result<(String, String), ConfigError> {
    match opts.string(key)? {
        Some((path, v)) if !v.trim().is_empty() => Ok((path, v.trim().to_string())),
        Some((path, _)) => Err(invalid(path, "must not be empty")),
        None => Err(invalid(format!("{}.{key}", opts.path), "is required")),
    }
}

pub(super) fn redirect_scheme(opts: &mut Opts) -> Result<RedirectScheme, ConfigError> {
    let (path, scheme) = required(opts, "scheme")?;
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !valid {
        return Err(invalid(path, format!("`{scheme}` is not a URL scheme")));
    }
    let port = match opts.string("port")? {
        Some((_, p)) if p.trim().is_empty() => None,
        Some((path, p)) => {
            let p = p.trim().to_string();
            if !matches!(p.parse::<u16>(), Ok(1..)) {
                return Err(invalid(path, format!("`{p}` is not a port")));
            }
            Some(p)
        }
        None => None,
    };
    Ok(RedirectScheme {
        scheme: scheme.to_ascii_lowercase(),
        port,
        permanent: opts.bool("permanent")?.unwrap_or(false),
    })
}

pub(super) fn redirect_regex(opts: &mut Opts) -> Result<RedirectRegex, ConfigError> {
    let (path, regex) = required(opts, "regex")?;
    let regex = Pattern::new(&path, &regex)?;
    let (_, replacement) = required(opts, "replacement")?;
    Ok(RedirectRegex {
        regex,
        replacement,
        permanent: opts.bool("permanent")?.unwrap_or(false),
    })
}

/// A path or prefix as it may appear in a request target: visible ASCII, no `?` or `#`,
/// `%` only before two hex digits.
fn check_path(path: &str, value: &str) -> Result<(), ConfigError> {
    let bytes = value.as_bytes();
    let escapes_ok = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    let chars_ok = value
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
    if escapes_ok && chars_ok {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!("`{value}` is not a URL path (visible ASCII, no `?` or `#`, `%` before two hex digits)"),
        ))
    }
}

pub(super) fn strip_prefix(opts: &mut Opts) -> Result<StripPrefix, ConfigError> {
    let (path, prefixes) = opts.list("prefixes")?.unwrap_or_default();
    for p in &prefixes {
        if !p.starts_with('/') {
            return Err(invalid(&path, format!("`{p}` does not start with `/`")));
        }
        check_path(&path, p)?;
    }
    Ok(StripPrefix {
        prefixes,
        force_slash: opts.bool("forceSlash")?.unwrap_or(false),
    })
}

pub(super) fn strip_prefix_regex(opts: &mut Opts) -> Result<StripPrefixRegex, ConfigError> {
    let (path, list) = opts
        .list("regex")?
        .ok_or_else(|| invalid(format!("{}.regex", opts.path), "is required"))?;
    let regex = list
        .iter()
        .map(|r| Pattern::new(&path, r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StripPrefixRegex { regex })
}

pub(super) fn add_prefix(opts: &mut Opts) -> Result<AddPrefix, ConfigError> {
    let (path, prefix) = required(opts, "prefix")?;
    check_path(&path, &prefix)?;
    Ok(AddPrefix { prefix })
}

pub(super) fn replace_path(opts: &mut Opts) -> Result<ReplacePath, ConfigError> {
    let (path, value) = required(opts, "path")?;
    check_path(&path, &value)?;
    Ok(ReplacePath { path: value })
}

pub(super) fn replace_path_regex(opts: &mut Opts) -> Result<ReplacePathRegex, ConfigError> {
    let (path, regex) = required(opts, "regex")?;
    let regex = Pattern::new(&path, &regex)?;
    let replacement = opts
        .string("replacement")?
        .map(|(_, r)| r.trim().to_string())
        .unwrap_or_default();
    Ok(ReplacePathRegex { regex, replacement })
}
