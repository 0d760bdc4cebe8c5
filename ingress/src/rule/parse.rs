//! Parser for rule text. Træfik reads a rule as a Go expression (`vulcand/predicate`
//! over `go/parser.ParseExpr`); this reads the same subset of Go:
//!
//! ```text
//! expr    := and ( "||" and )*
//! and     := unary ( "&&" unary )*
//! unary   := "!" unary | "(" expr ")" | matcher
//! matcher := NAME "(" [ string ( "," string )* [ "," ] ] ")"
//! string  := `raw` | "interpreted"            Go string literals
//! ```
//!
//! Between tokens: spaces, tabs, line breaks, `//` and `/* */` comments. As in Go, a line
//! break right after a name, a string or `)` ends the expression (Go inserts a semicolon
//! there), so it is an error unless the rule ends there. Errors carry the byte offset
//! where the parser stopped and what it expected there; the matcher's arguments are
//! checked in `args.rs`.

use super::args::{self, Arg};
use super::Rule;

/// Rules nested deeper than this (`!` and parentheses) are refused: recursion stays bounded.
const MAX_DEPTH: usize = 100;
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
    let mut p = Parser {
        src: text,
        // Go skips a byte order mark at the very start.
        pos: if text.starts_with('\u{FEFF}') { 3 } else { 0 },
        after_operand: false,
    };
    let rule = p.expr(0)?;
    p.skip_space()?;
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
    /// The last token was a name, a string or `)`: a line break now ends the expression.
    after_operand: bool,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn expected(&self, what: &str) -> RuleError {
        let found = match self.rest().chars().next() {
            None => "the end of the rule".to_string(),
            Some(c) => format!("`{c}`"),
        };
        err(self.pos, format!("expected {what}, found {found}"))
    }

    /// Skip spaces and comments; refuse a line break that would end the expression early.
    fn skip_space(&mut self) -> Result<(), RuleError> {
        let mut line_break = None;
        loop {
            let rest = self.rest();
            let len = match rest.as_bytes().first() {
                Some(b' ' | b'\t' | b'\r') => 1,
                Some(b'\n') => {
                    line_break.get_or_insert(self.pos);
                    1
                }
                Some(b'/') if rest.starts_with("//") => {
                    line_break.get_or_insert(self.pos);
                    rest.find('\n').unwrap_or(rest.len())
                }
                Some(b'/') if rest.starts_with("/*") => {
                    let Some(end) = rest[2..].find("*/") else {
                        return Err(err(self.pos, "comment not terminated"));
                    };
                    if rest[..end + 2].contains('\n') {
                        line_break.get_or_insert(self.pos);
                    }
                    end + 4
                }
                _ => break,
            };
            self.pos += len;
        }
        match line_break {
            Some(at) if self.after_operand && self.pos < self.src.len() => Err(err(
                at,
                "a line break after a name, a string or `)` ends the rule (Træfik reads rules \
                 as Go expressions): break lines after `&&`, `||`, `(` or `,` instead",
            )),
            _ => Ok(()),
        }
    }

    /// Consume `token` (an operator or punctuation) if it comes next.
    fn eat(&mut self, token: &str) -> Result<bool, RuleError> {
        self.skip_space()?;
        if !self.rest().starts_with(token) {
            return Ok(false);
        }
        self.pos += token.len();
        self.after_operand = token == ")";
        Ok(true)
    }

    fn expr(&mut self, depth: usize) -> Result<Rule, RuleError> {
        let mut left = self.and(depth)?;
        while self.eat("||")? {
            let right = self.and(depth)?;
            left = Rule::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Rule, RuleError> {
        let mut left = self.unary(depth)?;
        while self.eat("&&")? {
            let right = self.unary(depth)?;
            left = Rule::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Rule, RuleError> {
        self.skip_space()?;
        if depth > MAX_DEPTH {
            return Err(err(
                self.pos,
                format!("rule nested deeper than {MAX_DEPTH}"),
            ));
        }
        if self.eat("!")? {
            return Ok(Rule::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.eat("(")? {
            let inner = self.expr(depth + 1)?;
            if !self.eat(")")? {
                return Err(self.expected("`)`"));
            }
            return Ok(inner);
        }
        match self.rest().chars().next() {
            Some(c) if c == '_' || c.is_alphabetic() => self.matcher(),
            _ => Err(self.expected("a matcher (e.g. Host), `(` or `!`")),
        }
    }

    fn matcher(&mut self) -> Result<Rule, RuleError> {
        let start = self.pos;
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c == '_' || c.is_alphanumeric()))
            .unwrap_or(rest.len());
        let name = args::matcher_name(&rest[..len], start)?;
        self.pos += len;
        self.after_operand = true;
        if !self.eat("(")? {
            return Err(self.expected("`(`"));
        }
        let mut args = Vec::new();
        loop {
            if self.eat(")")? {
                break;
            }
            let at = self.pos;
            args.push(Arg {
                at,
                text: self.string()?,
            });
            if self.eat(")")? {
                break;
            }
            if !self.eat(",")? {
                return Err(self.expected("`,` or `)`"));
            }
        }
        args::build(name, start, args)
    }

    fn string(&mut self) -> Result<String, RuleError> {
        let text =
            match self.rest().chars().next() {
                Some('`') => self.raw_string()?,
                Some('"') => self.interpreted_string()?,
                Some('\'') => return Err(err(
                    self.pos,
                    "single quotes make a Go rune, not a string: use backticks or double quotes",
                )),
                _ => return Err(self.expected("a string in backticks or double quotes")),
            };
        self.after_operand = true;
        Ok(text)
    }

    /// `` `...` ``: no escapes; carriage returns are dropped, as in Go.
    fn raw_string(&mut self) -> Result<String, RuleError> {
        let open = self.pos;
        let Some(len) = self.rest()[1..].find('`') else {
            return Err(err(open, "expected a closing ` for this string"));
        };
        let body = &self.rest()[1..1 + len];
        if let Some(bad) = body.find(['\0', '\u{FEFF}']) {
            return Err(err(
                open + 1 + bad,
                "NUL and byte order marks are not allowed in a rule",
            ));
        }
        let text = body.replace('\r', "");
        self.pos += len + 2;
        Ok(text)
    }

    /// `"..."` with Go's escapes: `\a \b \f \n \r \t \v \\ \"`, `\ooo` and `\xhh` (bytes),
    /// `\uhhhh` and `\Uhhhhhhhh` (characters).
    fn interpreted_string(&mut self) -> Result<String, RuleError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.rest().chars().next() else {
                return Err(err(open, "expected a closing \" for this string"));
            };
            match c {
                '"' => break,
                '\n' => {
                    return Err(err(
                        self.pos,
                        "line break in a double-quoted string: write \\n, or use backticks",
                    ))
                }
                '\0' | '\u{FEFF}' => {
                    return Err(err(
                        self.pos,
                        "NUL and byte order marks are not allowed in a rule",
                    ))
                }
                '\\' => self.escape(&mut out)?,
                c => {
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    self.pos += c.len_utf8();
                }
            }
        }
        self.pos += 1;
        String::from_utf8(out).map_err(|_| {
            err(
                open,
                "this string is not valid UTF-8 (check its \\x and octal escapes)",
            )
        })
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), RuleError> {
        let start = self.pos;
        let rest = &self.rest()[1..];
        let Some(c) = rest.chars().next() else {
            return Err(err(start, "expected an escape after \\"));
        };
        let simple = match c {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0C),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0B),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            self.pos += 2;
            return Ok(());
        }
        let (digits, radix, bytes) = match c {
            '0'..='7' => (3, 8, true),
            'x' => (2, 16, true),
            'u' => (4, 16, false),
            'U' => (8, 16, false),
            _ => {
                return Err(err(
                    start,
                    format!("unknown escape sequence \\{c} (Go's are \\a \\b \\f \\n \\r \\t \\v \\\\ \\\" \\ooo \\xhh \\uhhhh \\Uhhhhhhhh)"),
                ))
            }
        };
        let skip = if radix == 8 { 1 } else { 2 };
        let text = rest.get(skip - 1..skip - 1 + digits).unwrap_or("");
        let value = (text.len() == digits && text.chars().all(|d| d.is_digit(radix)))
            .then(|| u32::from_str_radix(text, radix).ok())
            .flatten()
            .ok_or_else(|| {
                err(
                    start,
                    format!("escape \\{c} needs {digits} digits in base {radix}"),
                )
            })?;
        if bytes {
            let byte =
                u8::try_from(value).map_err(|_| err(start, "octal escape value above 255"))?;
            out.push(byte);
        } else {
            let c = char::from_u32(value)
                .ok_or_else(|| err(start, "escape is not a valid Unicode code point"))?;
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
        self.pos += skip + digits;
        Ok(())
    }
}
