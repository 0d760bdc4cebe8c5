//! From a matcher call (`PathPrefix(`/api`)`) to a [`Rule`]: the matcher's name in the
//! spellings Træfik accepts, the number of arguments, and each argument checked.
//!
//! Like Træfik, every argument must be non-empty (`HostRegexp(``)` would otherwise match
//! every request). Beyond Træfik, shoal refuses arguments no request could ever match
//! (a `Host` with a space, a `Method` that is not a token, a header name that is not a
//! token), so that a typo is an error instead of a silent dead route.

use super::request::is_host_char;
use super::{HostPattern, Regex, Rule, RuleError};

/// Matcher names in Træfik's own spelling.
const MATCHERS: &[&str] = &[
    "Host",
    "HostRegexp",
    "Path",
    "PathPrefix",
    "PathRegexp",
    "Method",
    "Header",
    "HeaderRegexp",
    "Query",
    "QueryRegexp",
    "ClientIP",
];

/// One argument: where it starts in the rule text, and its value.
pub(super) struct Arg {
    pub(super) at: usize,
    pub(super) text: String,
}

fn err(pos: usize, message: impl Into<String>) -> RuleError {
    RuleError {
        pos,
        message: message.into(),
    }
}

/// The matcher `written` names. Træfik accepts each name as written above, all lower
/// case, all upper case, or capitalised (`PathPrefix`, `pathprefix`, `PATHPREFIX`,
/// `Pathprefix`), and no other mix.
pub(super) fn matcher_name(written: &str, at: usize) -> Result<&'static str, RuleError> {
    let spelled_as = |name: &str| {
        let mut rest = written.chars();
        let capitalised = rest.next().is_some_and(|c| c.is_ascii_uppercase())
            && rest.all(|c| c.is_ascii_lowercase());
        written == name
            || written.eq_ignore_ascii_case(name)
                && (written.bytes().all(|b| b.is_ascii_lowercase())
                    || written.bytes().all(|b| b.is_ascii_uppercase())
                    || capitalised)
    };
    if let Some(name) = MATCHERS.iter().copied().find(|m| spelled_as(m)) {
        return Ok(name);
    }
    if let Some(name) = MATCHERS.iter().find(|m| written.eq_ignore_ascii_case(m)) {
        let (lower, upper) = (name.to_ascii_lowercase(), name.to_ascii_uppercase());
        let title = format!("{}{}", &upper[..1], &lower[1..]);
        return Err(err(
            at,
            format!("matcher `{written}` is not spelled as Træfik accepts it: write {name}, {lower}, {upper} or {title}"),
        ));
    }
    Err(err(
        at,
        format!(
            "unknown matcher `{written}`, expected one of {}",
            MATCHERS.join(", ")
        ),
    ))
}

/// Build the rule for matcher `name` (canonical spelling) written at `pos`.
pub(super) fn build(name: &'static str, pos: usize, args: Vec<Arg>) -> Result<Rule, RuleError> {
    let (min, max) = match name {
        "Header" | "HeaderRegexp" => (2, 2),
        "Query" | "QueryRegexp" => (1, 2),
        _ => (1, 1),
    };
    let expected = match (min, max) {
        (1, 1) => "1 argument".to_string(),
        (1, 2) => "1 or 2 arguments".to_string(),
        (n, _) => format!("{n} arguments"),
    };
    if args.is_empty() {
        return Err(err(pos, format!("{name} takes {expected}, got none")));
    }
    if let Some(empty) = args.iter().position(|a| a.text.is_empty()) {
        return Err(err(
            args[empty].at,
            format!("{name}: argument {} is empty", empty + 1),
        ));
    }
    if args.len() < min || args.len() > max {
        return Err(err(
            pos,
            format!("{name} takes {expected}, got {}", args.len()),
        ));
    }
    let has_second = args.len() == 2;
    let mut args = args.into_iter();
    let mut next = || {
        args.next().unwrap_or(Arg {
            at: pos,
            text: String::new(),
        })
    };
    let (arg, second) = (next(), next());
    Ok(match name {
        "Host" => Rule::Host(host_pattern(arg)?),
        "HostRegexp" => Rule::HostRegexp(host_regexp(arg)?),
        "Path" => Rule::Path(path(name, arg)?),
        "PathPrefix" => Rule::PathPrefix(path(name, arg)?),
        "PathRegexp" => Rule::PathRegexp(regex(name, arg)?),
        "Method" => Rule::Method(method(arg)?),
        "Header" => Rule::Header(header_name(arg)?, second.text),
        "HeaderRegexp" => Rule::HeaderRegexp(header_name(arg)?, regex(name, second)?),
        "Query" => Rule::Query(arg.text, has_second.then_some(second.text)),
        // Træfik: `QueryRegexp(`k`)` is `Query(`k`)`.
        "QueryRegexp" if !has_second => Rule::Query(arg.text, None),
        "QueryRegexp" => Rule::QueryRegexp(arg.text, regex(name, second)?),
        "ClientIP" => Rule::ClientIp(client_ip(arg)?),
        other => return Err(err(pos, format!("unknown matcher `{other}`"))),
    })
}

fn host_pattern(Arg { at, text }: Arg) -> Result<HostPattern, RuleError> {
    if text == "*" {
        return Ok(HostPattern::Any);
    }
    if !text.is_ascii() {
        return Err(err(
            at,
            format!("Host: `{text}` has non-ASCII characters; write internationalised names in punycode (xn--…)"),
        ));
    }
    if let Some(c) = text.chars().find(|c| !is_host_char(*c) && *c != '*') {
        return Err(err(
            at,
            format!("Host: `{text}` has {c:?}, which never appears in a request's host"),
        ));
    }
    let lower = text.to_ascii_lowercase();
    Ok(if lower.starts_with('*') {
        HostPattern::Wildcard(lower)
    } else {
        HostPattern::Exact(lower)
    })
}

fn host_regexp(arg: Arg) -> Result<Regex, RuleError> {
    if !arg.text.is_ascii() {
        return Err(err(
            arg.at,
            format!(
                "HostRegexp: `{}` has non-ASCII characters; hosts are matched in punycode (xn--…)",
                arg.text
            ),
        ));
    }
    regex("HostRegexp", arg)
}

fn path(name: &str, Arg { at, text }: Arg) -> Result<String, RuleError> {
    if !text.starts_with('/') {
        return Err(err(
            at,
            format!("{name}: expected a path starting with `/`, got `{text}`"),
        ));
    }
    Ok(text)
}

fn regex(name: &str, Arg { at, text }: Arg) -> Result<Regex, RuleError> {
    Regex::new(&text).map_err(|e| {
        err(
            at,
            format!("{name}: expected a valid regular expression (Go syntax), `{text}` {e}"),
        )
    })
}

fn method(Arg { at, text }: Arg) -> Result<String, RuleError> {
    if http::Method::from_bytes(text.as_bytes()).is_err() {
        return Err(err(
            at,
            format!("Method: `{text}` is not an HTTP method token"),
        ));
    }
    Ok(text.to_ascii_uppercase())
}

fn header_name(Arg { at, text }: Arg) -> Result<String, RuleError> {
    http::HeaderName::from_bytes(text.as_bytes())
        .map(|h| h.as_str().to_string())
        .map_err(|_| err(at, format!("expected a valid header name, got `{text}`")))
}

/// An address or a CIDR, read as Go's `net.ParseIP`/`net.ParseCIDR` read them:
/// host bits are dropped, and an IPv4-mapped IPv6 address or network is IPv4.
fn client_ip(Arg { at, text }: Arg) -> Result<ipnet::IpNet, RuleError> {
    let net = match text.parse::<ipnet::IpNet>() {
        Ok(net) => net.trunc(),
        Err(_) => text
            .parse::<std::net::IpAddr>()
            .map(ipnet::IpNet::from)
            .map_err(|_| {
                err(
                    at,
                    format!("ClientIP: expected an IP address or CIDR, got `{text}`"),
                )
            })?,
    };
    Ok(crate::middleware::ip::canonical_net(net))
}
