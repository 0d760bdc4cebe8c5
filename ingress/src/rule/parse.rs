//! Recursive-descent parser for rule text.
//!
//! ```text
//! expr    := and ( "||" and )*
//! and     := unary ( "&&" unary )*
//! unary   := "!" unary | "(" expr ")" | matcher
//! matcher := NAME "(" string ( "," string )* ")"
//! string  := `...` | "..." (with \" \\ \n \t escapes)
//! ```
//! Errors carry the byte offset where the parser stopped and what it expected there.

use super::{HostPattern, Regex, Rule};

/// Rules nested deeper than this are refused (keeps recursion bounded).
const MAX_DEPTH: usize = 64;
/// Rules longer than this are refused.
const MAX_LEN: usize = 16 * 1024;

/// A rule that could not be parsed: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {pos}: {message}")]
#[non_exhaustive]
pub struct RuleError {
    /// Byte offset into the rule text.
    pub pos: usize,
    /// What was expected or what is wrong, e.g. "expected `)`".
    pub message: String,
}

/// Parse rule text into a [`Rule`].
pub fn parse(text: &str) -> Result<Rule, RuleError> {
    if text.len() > MAX_LEN {
        return Err(err(MAX_LEN, format!("rule longer than {MAX_LEN} bytes")));
    }
    let mut p = Parser { src: text, pos: 0 };
    let rule = p.expr(0)?;
    p.skip_ws();
    if p.pos < text.len() {
        return Err(p.expected("`&&`, `||` or the end of the rule"));
    }
    Ok(rule)
}

fn err(pos: usize, message: impl Into<String>) -> RuleError {
    RuleError {
        pos,
        message: message.into(),
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expected(&self, what: &str) -> RuleError {
        let found = match self.rest().chars().next() {
            None => "the end of the rule".to_string(),
            Some(c) => format!("`{c}`"),
        };
        err(self.pos, format!("expected {what}, found {found}"))
    }

    fn expr(&mut self, depth: usize) -> Result<Rule, RuleError> {
        if depth > MAX_DEPTH {
            return Err(err(
                self.pos,
                format!("rule nested deeper than {MAX_DEPTH}"),
            ));
        }
        let mut left = self.and(depth)?;
        while self.eat("||") {
            let right = self.and(depth)?;
            left = Rule::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Rule, RuleError> {
        let mut left = self.unary(depth)?;
        while self.eat("&&") {
            let right = self.unary(depth)?;
            left = Rule::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Rule, RuleError> {
        if depth > MAX_DEPTH {
            return Err(err(
                self.pos,
                format!("rule nested deeper than {MAX_DEPTH}"),
            ));
        }
        if self.eat("!") {
            return Ok(Rule::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.eat("(") {
            let inner = self.expr(depth + 1)?;
            if !self.eat(")") {
                return Err(self.expected("`)`"));
            }
            return Ok(inner);
        }
        self.matcher()
    }

    fn matcher(&mut self) -> Result<Rule, RuleError> {
        self.skip_ws();
        let start = self.pos;
        let name_len = self
            .rest()
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(self.rest().len());
        if name_len == 0 {
            return Err(self.expected("a matcher (e.g. Host), `(` or `!`"));
        }
        let name = &self.src[start..start + name_len];
        if !MATCHERS.contains(&name) {
            return Err(err(
                start,
                format!(
                    "unknown matcher `{name}`, expected one of {}",
                    MATCHERS.join(", ")
                ),
            ));
        }
        self.pos += name_len;
        if !self.eat("(") {
            return Err(self.expected("`(`"));
        }
        let mut args = Vec::new();
        loop {
            self.skip_ws();
            let arg_pos = self.pos;
            args.push((arg_pos, self.string()?));
            if self.eat(")") {
                break;
            }
            if !self.eat(",") {
                return Err(self.expected("`,` or `)`"));
            }
        }
        build(name, start, args)
    }

    fn string(&mut self) -> Result<String, RuleError> {
        let quote = match self.rest().chars().next() {
            Some(q @ ('`' | '"')) => q,
            _ => return Err(self.expected("a string in backticks or double quotes")),
        };
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + 1;
                return Ok(out);
            }
            if c == '\\' && quote == '"' {
                let escaped = match chars.next() {
                    Some((_, '"')) => '"',
                    Some((_, '\\')) => '\\',
                    Some((_, 'n')) => '\n',
                    Some((_, 't')) => '\t',
                    Some((j, _)) => {
                        return Err(err(
                            self.pos + j,
                            "expected one of the escapes \\\" \\\\ \\n \\t",
                        ))
                    }
                    None => break,
                };
                out.push(escaped);
            } else {
                out.push(c);
            }
        }
        Err(err(
            open,
            format!("expected a closing {quote} for this string"),
        ))
    }
}

/// Matcher names, as written in rules.
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

type Args = Vec<(usize, String)>;

fn build(name: &str, pos: usize, args: Args) -> Result<Rule, RuleError> {
    let arity = |n: usize| -> Result<(), RuleError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(err(
                pos,
                format!("{name} takes {n} argument(s), got {}", args.len()),
            ))
        }
    };
    let mut it = args.clone().into_iter();
    let mut next = || it.next().unwrap_or((pos, String::new()));
    Ok(match name {
        "Host" => {
            arity(1)?;
            Rule::Host(host_pattern(next())?)
        }
        "HostRegexp" => {
            arity(1)?;
            Rule::HostRegexp(regex(next())?)
        }
        "Path" | "PathPrefix" => {
            arity(1)?;
            let (at, path) = next();
            if !path.starts_with('/') {
                return Err(err(
                    at,
                    format!("{name}: expected a path starting with `/`"),
                ));
            }
            if name == "Path" {
                Rule::Path(path)
            } else {
                Rule::PathPrefix(path)
            }
        }
        "PathRegexp" => {
            arity(1)?;
            Rule::PathRegexp(regex(next())?)
        }
        "Method" => {
            arity(1)?;
            let (at, m) = next();
            if m.is_empty() || http::Method::from_bytes(m.as_bytes()).is_err() {
                return Err(err(
                    at,
                    format!("Method: `{m}` is not an HTTP method token"),
                ));
            }
            Rule::Method(m.to_ascii_uppercase())
        }
        "Header" => {
            arity(2)?;
            let key = header_name(next())?;
            Rule::Header(key, next().1)
        }
        "HeaderRegexp" => {
            arity(2)?;
            let key = header_name(next())?;
            Rule::HeaderRegexp(key, regex(next())?)
        }
        "Query" => {
            if args.is_empty() || args.len() > 2 {
                return Err(err(
                    pos,
                    format!("Query takes 1 or 2 arguments, got {}", args.len()),
                ));
            }
            let key = non_empty(next(), "Query")?;
            let value = (args.len() == 2).then(|| next().1);
            Rule::Query(key, value)
        }
        "QueryRegexp" => {
            arity(2)?;
            let key = non_empty(next(), "QueryRegexp")?;
            Rule::QueryRegexp(key, regex(next())?)
        }
        "ClientIP" => {
            arity(1)?;
            Rule::ClientIp(client_ip(next())?)
        }
        other => return Err(err(pos, format!("unknown matcher `{other}`"))),
    })
}

fn non_empty((at, s): (usize, String), what: &str) -> Result<String, RuleError> {
    if s.is_empty() {
        return Err(err(at, format!("{what}: expected a non-empty name")));
    }
    Ok(s)
}

fn host_pattern((at, host): (usize, String)) -> Result<HostPattern, RuleError> {
    let lower = host.to_ascii_lowercase();
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest.to_string()),
        None => (false, lower),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(err(
            at,
            format!("Host: expected a domain name like `a.example.com` or `*.example.com`, got `{host}`"),
        ));
    }
    Ok(if wildcard {
        HostPattern::Wildcard(name)
    } else {
        HostPattern::Exact(name)
    })
}

fn regex((at, src): (usize, String)) -> Result<Regex, RuleError> {
    Regex::new(&src).map_err(|e| {
        let first_line = e.to_string();
        let short = first_line.lines().last().unwrap_or("").trim().to_string();
        err(at, format!("expected a valid regular expression: {short}"))
    })
}

fn header_name((at, name): (usize, String)) -> Result<String, RuleError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map(|h| h.as_str().to_string())
        .map_err(|_| err(at, format!("expected a valid header name, got `{name}`")))
}

fn client_ip((at, text): (usize, String)) -> Result<ipnet::IpNet, RuleError> {
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| {
            err(
                at,
                format!("ClientIP: expected an IP address or CIDR, got `{text}`"),
            )
        })
}
