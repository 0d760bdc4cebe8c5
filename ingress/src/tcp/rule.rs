//! Træfik v3's TCP rule language: ``HostSNI(`a.example.com`)``,
//! ``HostSNIRegexp(`^.+\.example\.com$`)``, ``ClientIP(`10.0.0.0/8`)``, ``ALPN(`h2`)``,
//! joined with `&&`, `||`, `!` and parentheses. Each matcher takes one value, in
//! backticks or double quotes. Matcher names are read case-insensitively.
//!
//! ```text
//!  rule  := or ;  or := and ("||" and)* ;  and := unary ("&&" unary)*
//!  unary := "!" unary | "(" rule ")" | Name "(" value ")"
//! ```
//! ``HostSNI(`*`)`` matches every connection, with or without a server name (the
//! rule of plain-TCP routers); ``HostSNI(`*.example.com`)`` matches exactly one label
//! in place of the `*`.

use std::net::IpAddr;

use ipnet::IpNet;

/// What a rule may look at about a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnFacts<'a> {
    /// The ClientHello's server name (lowercase), if any.
    pub server_name: Option<&'a str>,
    /// The ALPN protocols the client offered.
    pub alpn: &'a [String],
    /// The client's address.
    pub client_ip: IpAddr,
}

/// A `HostSNI` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSni {
    /// `*`: every connection.
    Any,
    /// One name, lowercase, without a trailing dot.
    Exact(String),
    /// `*.parent`: one label, then `parent` (lowercase).
    Wildcard(String),
}

/// A regular expression compared by its source.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A parsed TCP rule.
#[derive(Debug, Clone, PartialEq)]
pub enum TcpRule {
    /// `HostSNI(…)`.
    HostSni(HostSni),
    /// `HostSNIRegexp(…)`, matched against the server name (empty when there is none).
    HostSniRegexp(Pattern),
    /// `ClientIP(…)`: an address or a network.
    ClientIp(IpNet),
    /// `ALPN(…)`: one of the offered protocols.
    Alpn(String),
    /// `!rule`.
    Not(Box<TcpRule>),
    /// `a && b`.
    And(Box<TcpRule>, Box<TcpRule>),
    /// `a || b`.
    Or(Box<TcpRule>, Box<TcpRule>),
}

/// Why a TCP rule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {at}: {message}")]
pub struct TcpRuleError {
    /// Byte offset in the rule.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

impl TcpRule {
    /// Parse `text`.
    pub fn parse(text: &str) -> Result<TcpRule, TcpRuleError> {
        let mut p = Parser { text, pos: 0 };
        let rule = p.or()?;
        p.skip_space();
        if p.pos != text.len() {
            return Err(p.error("expected `&&`, `||` or the end of the rule"));
        }
        Ok(rule)
    }

    /// Whether a connection with `facts` matches.
    pub fn matches(&self, facts: &ConnFacts<'_>) -> bool {
        match self {
            TcpRule::HostSni(HostSni::Any) => true,
            TcpRule::HostSni(HostSni::Exact(name)) => facts.server_name == Some(name.as_str()),
            TcpRule::HostSni(HostSni::Wildcard(parent)) => facts
                .server_name
                .and_then(|n| n.split_once('.'))
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            TcpRule::HostSniRegexp(re) => re.0.is_match(facts.server_name.unwrap_or("")),
            TcpRule::ClientIp(net) => net.contains(&facts.client_ip),
            TcpRule::Alpn(p) => facts.alpn.iter().any(|a| a == p),
            TcpRule::Not(r) => !r.matches(facts),
            TcpRule::And(a, b) => a.matches(facts) && b.matches(facts),
            TcpRule::Or(a, b) => a.matches(facts) || b.matches(facts),
        }
    }

    /// Whether the rule is exactly ``HostSNI(`*`)`` (Træfik's catch-all, priority -1).
    pub fn is_catch_all(&self) -> bool {
        matches!(self, TcpRule::HostSni(HostSni::Any))
    }

    /// Whether the rule names a server (a `HostSNI` other than `*`), which only a
    /// TLS router can see.
    pub fn names_a_server(&self) -> bool {
        match self {
            TcpRule::HostSni(h) => *h != HostSni::Any,
            TcpRule::Not(r) => r.names_a_server(),
            TcpRule::And(a, b) | TcpRule::Or(a, b) => a.names_a_server() || b.names_a_server(),
            _ => false,
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> TcpRuleError {
        TcpRuleError {
            at: self.pos,
            message: message.into(),
        }
    }

    fn skip_space(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.text[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<TcpRule, TcpRuleError> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = TcpRule::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<TcpRule, TcpRuleError> {
        let mut left = self.unary()?;
        while self.eat("&&") {
            left = TcpRule::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<TcpRule, TcpRuleError> {
        if self.eat("!") {
            return Ok(TcpRule::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.error("expected `)`"));
            }
            return Ok(inner);
        }
        self.matcher()
    }

    fn matcher(&mut self) -> Result<TcpRule, TcpRuleError> {
        self.skip_space();
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let name = &rest[..len];
        if name.is_empty() {
            return Err(self.error("expected a matcher: HostSNI, HostSNIRegexp, ClientIP or ALPN"));
        }
        self.pos += len;
        if !self.eat("(") {
            return Err(self.error(format!("expected `(` after {name}")));
        }
        let value_at = {
            self.skip_space();
            self.pos
        };
        let value = self.value()?;
        if self.eat(",") {
            return Err(self.error(format!("{name} takes one value (Træfik v3)")));
        }
        if !self.eat(")") {
            return Err(self.error("expected `)`"));
        }
        let at_value = |message: String| TcpRuleError {
            at: value_at,
            message,
        };
        match name.to_ascii_lowercase().as_str() {
            "hostsni" => host_sni(&value).map(TcpRule::HostSni).map_err(at_value),
            "hostsniregexp" => {
                if value.is_empty() || !value.is_ascii() {
                    return Err(at_value(format!("`{value}` is not an ASCII regular expression")));
                }
                regex::Regex::new(&value)
                    .map(|re| TcpRule::HostSniRegexp(Pattern(re)))
                    .map_err(|e| at_value(format!("bad regular expression: {e}")))
            }
            "clientip" => client_ip(&value).map(TcpRule::ClientIp).map_err(at_value),
            "alpn" => {
                if value.is_empty() {
                    Err(at_value("an empty ALPN protocol".into()))
                } else if value.eq_ignore_ascii_case("acme-tls/1") {
                    Err(at_value("ALPN may not match acme-tls/1".into()))
                } else {
                    Ok(TcpRule::Alpn(value))
                }
            }
            _ => Err(TcpRuleError {
                at: start,
                message: format!(
                    "unknown matcher `{name}` (TCP rules have HostSNI, HostSNIRegexp, ClientIP, ALPN)"
                ),
            }),
        }
    }

    /// A value in backticks (raw) or double quotes (`\"` and `\\` escapes).
    fn value(&mut self) -> Result<String, TcpRuleError> {
        let rest = &self.text[self.pos..];
        let quote = match rest.chars().next() {
            Some(q @ ('`' | '"')) => q,
            _ => return Err(self.error("expected a value in backticks or double quotes")),
        };
        let mut out = String::new();
        let mut chars = rest[1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.pos += 1 + i + 1;
                    return Ok(out);
                }
                '\\' if quote == '"' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => out.push(e),
                    _ => return Err(self.error("only \\\" and \\\\ are escapes")),
                },
                c => out.push(c),
            }
        }
        Err(self.error(format!("unterminated value (missing {quote})")))
    }
}

/// Træfik's `HostSNI` values: `*`, a name, or `*.name`.
fn host_sni(value: &str) -> Result<HostSni, String> {
    if value == "*" {
        return Ok(HostSni::Any);
    }
    let (wild, name) = match value.strip_prefix("*.") {
        Some(parent) => (true, parent),
        None => (false, value),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-:".contains(&b));
    if !ok {
        return Err(format!(
            "`{value}` is not a host name (ASCII; use punycode for other names)"
        ));
    }
    let name = name.to_ascii_lowercase();
    Ok(if wild {
        HostSni::Wildcard(name)
    } else {
        HostSni::Exact(name)
    })
}

/// An address or a network, as Træfik's `ClientIP` takes it.
fn client_ip(value: &str) -> Result<IpNet, String> {
    let v = value.trim();
    if let Ok(net) = v.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    v.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{value}` is not an IP address or CIDR network"))
}

#[cfg(test)]
mod tests;
