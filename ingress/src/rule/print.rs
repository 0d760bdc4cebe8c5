//! Printing a [`Rule`] back to rule text that parses to the same rule (in Træfik too).

use std::fmt::{self, Display, Formatter, Write};

use super::Rule;

impl Display for Rule {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            // Left-associative: a left child of the same operator needs no parentheses;
            // a right child of the same operator does; `||` inside `&&` always does.
            Rule::And(a, b) => {
                child(f, a, matches!(**a, Rule::Or(..)))?;
                f.write_str(" && ")?;
                child(f, b, matches!(**b, Rule::Or(..) | Rule::And(..)))
            }
            Rule::Or(a, b) => {
                child(f, a, false)?;
                f.write_str(" || ")?;
                child(f, b, matches!(**b, Rule::Or(..)))
            }
            Rule::Not(a) => {
                f.write_char('!')?;
                child(f, a, matches!(**a, Rule::Or(..) | Rule::And(..)))
            }
            Rule::Host(h) => call(f, "Host", &[&h.to_string()]),
            Rule::HostRegexp(re) => call(f, "HostRegexp", &[re.as_str()]),
            Rule::Path(p) => call(f, "Path", &[p]),
            Rule::PathPrefix(p) => call(f, "PathPrefix", &[p]),
            Rule::PathRegexp(re) => call(f, "PathRegexp", &[re.as_str()]),
            Rule::Method(m) => call(f, "Method", &[m]),
            Rule::Header(k, v) => call(f, "Header", &[k, v]),
            Rule::HeaderRegexp(k, re) => call(f, "HeaderRegexp", &[k, re.as_str()]),
            Rule::Query(k, None) => call(f, "Query", &[k]),
            Rule::Query(k, Some(v)) => call(f, "Query", &[k, v]),
            Rule::QueryRegexp(k, re) => call(f, "QueryRegexp", &[k, re.as_str()]),
            Rule::ClientIp(net) => call(f, "ClientIP", &[&net.to_string()]),
        }
    }
}

fn child(f: &mut Formatter<'_>, rule: &Rule, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({rule})")
    } else {
        write!(f, "{rule}")
    }
}

fn call(f: &mut Formatter<'_>, name: &str, args: &[&str]) -> fmt::Result {
    f.write_str(name)?;
    f.write_char('(')?;
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        quote(f, arg)?;
    }
    f.write_char(')')
}

/// Backticks when the text allows (Go raw strings cannot hold a backtick, and drop
/// carriage returns), otherwise a Go double-quoted string.
fn quote(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    if !s.contains(['`', '\r', '\0', '\u{FEFF}']) {
        return write!(f, "`{s}`");
    }
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{FEFF}' => f.write_str("\\uFEFF")?,
            c if c.is_ascii_control() => write!(f, "\\x{:02x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}
