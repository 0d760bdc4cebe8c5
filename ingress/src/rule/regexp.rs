//! Regular expressions as Træfik compiles them: Go's `regexp` syntax (RE2 with Perl
//! extensions), translated into the `regex` crate's syntax, which is close but not equal.
//!
//! ```text
//!  Go source `{id:[0-9]+}\d`  ──translate──▶  `\{id:[0-9]+\}[0-9]`  ──regex::Regex──▶ is_match
//! ```
//!
//! Where the two dialects differ the translation follows Go:
//! - a `{` that does not start a repetition (`{n}`, `{n,}`, `{n,m}`, no leading zeros) is
//!   a literal `{`;
//! - `\d`, `\s`, `\w`, `\b` and their negations are ASCII-only (`\s` is `[\t\n\f\r ]`);
//! - `\Q…\E` quotes; `\<`, `\>` and every other escaped punctuation are literals; octal
//!   escapes (`\0`, `\12`, `\123`); `\p{^Greek}` is `\P{Greek}`;
//! - inside a class `[`, `&&`, `--` and `~~` are plain characters;
//! - refused as Go refuses them: stacked repetitions (`a**`, `a{2}{3}`), counts above 1000
//!   (alone or multiplied through nested groups), `\C`, backreferences, flags other than
//!   `i`, `m`, `s`, `U`, and capture names other than `[A-Za-z0-9_]+`.
//!
//! Named groups become plain groups: names do not change what matches. Text matched
//! as bytes goes through [`Regex::is_match_bytes`], which sees invalid UTF-8 as Go does
//! (one U+FFFD per bad byte).

use std::borrow::Cow;

mod class;
mod escape;

/// The most a counted repetition may repeat, alone or through nested repetitions (Go).
const MAX_REPEAT: u32 = 1000;
/// A class that matches nothing (Go literals like `\x{D800}` can never match decoded text).
const NOTHING: &str = r"[^\x{0}-\x{10FFFF}]";

/// A compiled regular expression in Go's syntax; compares equal by its source text.
#[derive(Debug, Clone)]
pub struct Regex {
    source: String,
    compiled: regex::Regex,
}

/// A regular expression Go's `regexp.Compile` would refuse, or one too large to compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {message}")]
#[non_exhaustive]
pub struct RegexError {
    /// Byte offset into the expression's source.
    pub offset: usize,
    /// What is wrong, in Go's words where Go has them (e.g. "missing closing )").
    pub message: String,
}

impl Regex {
    /// Compile `src`, written in Go's `regexp` syntax.
    pub fn new(src: &str) -> Result<Self, RegexError> {
        let translated = Translator::new(src).run()?;
        let compiled = regex::Regex::new(&translated).map_err(|e| RegexError {
            offset: 0,
            message: engine_message(&e),
        })?;
        Ok(Regex {
            source: src.to_string(),
            compiled,
        })
    }

    /// The source text, as written in the rule.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `s` matches somewhere (use `^…$` to anchor).
    pub fn is_match(&self, s: &str) -> bool {
        self.compiled.is_match(s)
    }

    /// Whether the bytes `b` match, each byte of invalid UTF-8 read as U+FFFD (as Go does).
    pub fn is_match_bytes(&self, b: &[u8]) -> bool {
        self.is_match(&go_lossy(b))
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Regex {}

/// The engine's reason, without the translated pattern it quotes (the user wrote Go).
fn engine_message(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text.lines().last().unwrap_or("").trim().to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("the compiled expression is larger than {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// `bytes` as text, each byte of an invalid UTF-8 sequence replaced by U+FFFD, as Go's
/// decoder reads it (std's lossy conversion would replace a whole sequence by one).
fn go_lossy(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(std::iter::repeat_n('\u{FFFD}', chunk.invalid().len()));
    }
    Cow::Owned(out)
}

/// What a repetition operator would apply to at this point of a group.
#[derive(Debug, Clone, Copy, Default)]
enum Last {
    /// Nothing: the group or a branch just started.
    #[default]
    Nothing,
    /// An item, with the product of the counted repetitions nested inside it.
    Item(u32),
    /// An item already repeated (Go refuses a second operator).
    Repeated(u32),
}

impl Last {
    fn weight(self) -> u32 {
        match self {
            Last::Nothing => 1,
            Last::Item(w) | Last::Repeated(w) => w,
        }
    }
}

/// One open group of the expression being translated.
#[derive(Debug, Default)]
struct Group {
    /// Largest nested-repetition product among this group's finished items.
    done: u32,
    last: Last,
    /// `(?flags)` seen in this group but not yet written: they are written just before
    /// the next item, so that `a(?i)*` still repeats `a`, as in Go.
    pending: String,
}

impl Group {
    fn weight(&self) -> u32 {
        self.done.max(self.last.weight())
    }
}

struct Translator<'a> {
    src: &'a str,
    pos: usize,
    out: String,
    groups: Vec<Group>,
}

impl<'a> Translator<'a> {
    fn new(src: &'a str) -> Self {
        Translator {
            src,
            pos: 0,
            out: String::with_capacity(src.len() + 16),
            groups: vec![Group::default()],
        }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn error(&self, start: usize, what: &str) -> RegexError {
        let end = self.pos.max(start + 1).min(self.src.len());
        let quoted = self.src.get(start..end).unwrap_or("");
        RegexError {
            offset: start,
            message: format!("{what}: `{quoted}`"),
        }
    }

    fn group(&mut self) -> &mut Group {
        // The outermost group is never popped (`close` refuses to).
        let last = self.groups.len() - 1;
        &mut self.groups[last]
    }

    fn run(mut self) -> Result<String, RegexError> {
        while let Some(c) = self.peek() {
            match c {
                '(' => self.open()?,
                ')' => self.close()?,
                '|' => {
                    self.pos += 1;
                    let g = self.group();
                    g.done = g.weight();
                    g.last = Last::Nothing;
                    self.out.push('|');
                }
                '*' | '+' | '?' => {
                    let start = self.pos;
                    self.pos += 1;
                    self.repeat(start, &c.to_string(), None)?;
                }
                '{' => self.brace()?,
                '[' => {
                    let text = class::translate(&mut self)?;
                    self.item(&text, 1);
                }
                '\\' => self.escape()?,
                '^' | '$' | '.' => {
                    self.pos += 1;
                    self.item(&c.to_string(), 1);
                }
                _ => {
                    self.pos += c.len_utf8();
                    self.literal(c);
                }
            }
        }
        if self.groups.len() > 1 {
            return Err(RegexError {
                offset: self.src.len(),
                message: "missing closing )".to_string(),
            });
        }
        Ok(self.out)
    }

    /// Write one repeatable item whose nested repetitions multiply to `weight`.
    fn item(&mut self, text: &str, weight: u32) {
        let g = self.group();
        let pending = std::mem::take(&mut g.pending);
        g.done = g.weight();
        g.last = Last::Item(weight);
        self.out.push_str(&pending);
        self.out.push_str(text);
    }

    fn literal(&mut self, c: char) {
        let mut buf = [0; 4];
        self.item(&regex::escape(c.encode_utf8(&mut buf)), 1);
    }

    fn literal_rune(&mut self, r: u32) {
        match char::from_u32(r) {
            Some(c) => self.literal(c),
            None => self.item(NOTHING, 1),
        }
    }

    /// `(`, `(?:`, `(?flags)`, `(?flags:`, `(?P<name>` or `(?<name>`.
    fn open(&mut self) -> Result<(), RegexError> {
        let start = self.pos;
        let rest = self.rest();
        if !rest.starts_with("(?") {
            self.pos += 1;
            return self.push_group("(");
        }
        let name_at = if rest.len() > 4 && rest.starts_with("(?P<") {
            Some(4)
        } else if rest.len() > 3 && rest.starts_with("(?<") {
            Some(3)
        } else {
            None
        };
        if let Some(name_at) = name_at {
            let Some(end) = rest.find('>') else {
                self.pos = self.src.len();
                return Err(self.error(start, "invalid named capture"));
            };
            self.pos += end + 1;
            let name = &rest[name_at..end];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(self.error(start, "invalid named capture"));
            }
            return self.push_group("(");
        }
        self.pos += 2;
        let (flags, opens_group) = self.flags(start)?;
        if opens_group {
            self.push_group(&format!("(?{flags}:"))
        } else {
            if !flags.is_empty() {
                self.group().pending.push_str(&format!("(?{flags})"));
            }
            Ok(())
        }
    }

    /// The flags after `(?` up to `)` or `:`, as the `regex` crate writes them, and
    /// whether a `:` opened a group.
    fn flags(&mut self, start: usize) -> Result<(String, bool), RegexError> {
        let mut on = String::new();
        let mut off = String::new();
        let mut negated = false;
        let mut saw_flag = false;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                'i' | 'm' | 's' | 'U' => {
                    let (add, remove) = if negated {
                        (&mut off, &mut on)
                    } else {
                        (&mut on, &mut off)
                    };
                    remove.retain(|f| f != c);
                    if !add.contains(c) {
                        add.push(c);
                    }
                    saw_flag = true;
                }
                '-' if !negated => {
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' if !negated || saw_flag => {
                    let flags = if off.is_empty() {
                        on
                    } else {
                        format!("{on}-{off}")
                    };
                    return Ok((flags, c == ':'));
                }
                _ => break,
            }
        }
        Err(self.error(start, "invalid or unsupported Perl syntax"))
    }

    fn push_group(&mut self, open: &str) -> Result<(), RegexError> {
        let pending = std::mem::take(&mut self.group().pending);
        self.out.push_str(&pending);
        self.out.push_str(open);
        self.groups.push(Group::default());
        Ok(())
    }

    fn close(&mut self) -> Result<(), RegexError> {
        let start = self.pos;
        self.pos += 1;
        if self.groups.len() == 1 {
            return Err(self.error(start, "unexpected )"));
        }
        let inner = self.groups.pop().map_or(1, |g| g.weight());
        self.out.push(')');
        let g = self.group();
        g.done = g.weight();
        g.last = Last::Item(inner);
        Ok(())
    }

    /// `{` starts a counted repetition if one parses here; otherwise it is a literal.
    fn brace(&mut self) -> Result<(), RegexError> {
        let start = self.pos;
        let Some(count) = Count::parse(self.rest()) else {
            self.pos += 1;
            self.literal('{');
            return Ok(());
        };
        self.pos += count.len;
        let too_big = count.min > MAX_REPEAT || count.max.is_some_and(|m| m > MAX_REPEAT);
        if too_big || count.max.is_some_and(|m| m < count.min) {
            return Err(self.error(start, "invalid repeat count"));
        }
        let text = match count.max {
            None => format!("{{{},}}", count.min),
            Some(max) if max == count.min => format!("{{{max}}}"),
            Some(max) => format!("{{{},{max}}}", count.min),
        };
        self.repeat(start, &text, Some((count.min, count.max)))
    }

    /// Apply a repetition operator (`text`, without its lazy `?`) to the last item.
    /// `bounds` is `(min, max)` for counted ones, max `None` when unbounded.
    fn repeat(
        &mut self,
        start: usize,
        text: &str,
        bounds: Option<(u32, Option<u32>)>,
    ) -> Result<(), RegexError> {
        let lazy = self.peek() == Some('?');
        if lazy {
            self.pos += 1;
        }
        let inner = match self.group().last {
            Last::Nothing => {
                return Err(self.error(start, "missing argument to repetition operator"))
            }
            Last::Repeated(_) => {
                return Err(self.error(start, "invalid nested repetition operator"))
            }
            Last::Item(w) => w,
        };
        let weight = match bounds {
            None => inner,
            Some((min, max)) => {
                let copies = max.unwrap_or(min);
                let product = copies.saturating_mul(inner);
                let checked = min >= 2 || max.is_some_and(|m| m >= 2);
                if checked && copies > 0 && product > MAX_REPEAT {
                    return Err(self.error(start, "invalid repeat count"));
                }
                if copies == 0 {
                    1
                } else {
                    product
                }
            }
        };
        self.group().last = Last::Repeated(weight);
        self.out.push_str(text);
        if lazy {
            self.out.push('?');
        }
        Ok(())
    }
}

/// A counted repetition `{n}`, `{n,}` or `{n,m}` as Go parses it.
struct Count {
    min: u32,
    /// `None`: unbounded.
    max: Option<u32>,
    /// Bytes of source text, braces included.
    len: usize,
}

impl Count {
    /// The repetition at the start of `s`, or `None` if `s` does not start with one
    /// (then Go reads the `{` as a literal).
    fn parse(s: &str) -> Option<Count> {
        let body = s.strip_prefix('{')?;
        let (min, rest) = parse_int(body)?;
        let (max, rest) = match rest.strip_prefix(',') {
            None => (Some(min), rest),
            Some(rest) if rest.starts_with('}') => (None, rest),
            Some(rest) => {
                let (max, rest) = parse_int(rest)?;
                (Some(max), rest)
            }
        };
        let rest = rest.strip_prefix('}')?;
        Some(Count {
            min,
            max,
            len: s.len() - rest.len(),
        })
    }
}

/// A decimal number without leading zeros (saturating: anything large is refused later).
fn parse_int(s: &str) -> Option<(u32, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits > 1 && s.starts_with('0')) {
        return None;
    }
    let value = s[..digits].parse().unwrap_or(u32::MAX);
    Some((value, &s[digits..]))
}
