//! Character classes of Go's syntax (`[a-z]`, `[^\d.]`, `[[:alpha:]]`, `\pL`, `\d`),
//! written out item by item so that the `regex` crate reads each the way Go does:
//! every character is emitted as `\x{…}`, so `[`, `&&`, `--` and `~~` stay plain.

use super::{RegexError, Translator, NOTHING};

/// The POSIX classes Go knows (`[:name:]` and `[:^name:]`); the `regex` crate knows the same.
const POSIX: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Go's ASCII Perl classes: the letter, the ranges, and whether it is negated.
const PERL: &[(char, &str, bool)] = &[
    ('d', "0-9", false),
    ('D', "0-9", true),
    ('s', r"\t\n\x0C\r\x20", false),
    ('S', r"\t\n\x0C\r\x20", true),
    ('w', "0-9A-Za-z_", false),
    ('W', "0-9A-Za-z_", true),
];

/// `\d` & co. (given the letter after `\`) as a class, or as class items when `in_class`.
pub(super) fn perl(letter: char, in_class: bool) -> Option<String> {
    let &(_, ranges, negated) = PERL.iter().find(|(l, _, _)| *l == letter)?;
    Some(match (negated, in_class) {
        (false, true) => ranges.to_string(),
        (false, false) => format!("[{ranges}]"),
        (true, _) => format!("[^{ranges}]"),
    })
}

/// `\pL`, `\p{Greek}`, `\P{Greek}`, `\p{^Greek}` at the translator's position.
pub(super) fn unicode(t: &mut Translator<'_>) -> Result<String, RegexError> {
    let start = t.pos;
    let rest = t.rest();
    let mut negated = rest.starts_with("\\P");
    let after = &rest[2..];
    let (name, len) = match after.chars().next() {
        None => {
            t.pos += 2;
            return Err(t.error(start, "invalid character class range"));
        }
        Some('{') => match after.find('}') {
            Some(end) => (&after[1..end], 2 + end + 1),
            None => {
                t.pos = t.src.len();
                return Err(t.error(start, "invalid character class range"));
            }
        },
        Some(c) => (&after[..c.len_utf8()], 2 + c.len_utf8()),
    };
    t.pos += len;
    let name = match name.strip_prefix('^') {
        Some(inner) => {
            negated = !negated;
            inner
        }
        None => name,
    };
    let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ');
    if name.is_empty() || !name.chars().all(name_ok) {
        return Err(t.error(start, "invalid character class range"));
    }
    Ok(format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' }))
}

/// The class starting at the translator's `[`, as a `regex` class.
pub(super) fn translate(t: &mut Translator<'_>) -> Result<String, RegexError> {
    let start = t.pos;
    t.pos += 1;
    let negated = t.peek() == Some('^');
    if negated {
        t.pos += 1;
    }
    let mut items = String::new();
    let mut first = true;
    loop {
        match t.peek() {
            None => return Err(t.error(start, "missing closing ]")),
            Some(']') if !first => {
                t.pos += 1;
                break;
            }
            _ => first = false,
        }
        let item_start = t.pos;
        let rest = t.rest();
        if let Some(len) = posix_len(rest) {
            let name = &rest[..len];
            let inner = &name[2..len - 2];
            t.pos += len;
            if !POSIX.contains(&inner.strip_prefix('^').unwrap_or(inner)) {
                return Err(t.error(item_start, "invalid character class range"));
            }
            items.push_str(name);
            continue;
        }
        if rest.starts_with("\\p") || rest.starts_with("\\P") {
            items.push_str(&unicode(t)?);
            continue;
        }
        if let Some(text) = rest
            .strip_prefix('\\')
            .and_then(|r| r.chars().next())
            .and_then(|c| perl(c, true))
        {
            t.pos += 2;
            items.push_str(&text);
            continue;
        }
        let lo = class_char(t, start)?;
        let mut hi = lo;
        let rest = t.rest();
        if rest.len() >= 2 && rest.starts_with('-') && !rest[1..].starts_with(']') {
            t.pos += 1;
            hi = class_char(t, start)?;
            if hi < lo {
                return Err(t.error(item_start, "invalid character class range"));
            }
        }
        push_range(&mut items, lo, hi);
    }
    Ok(match (items.is_empty(), negated) {
        (true, false) => NOTHING.to_string(),
        (true, true) => r"[\x{0}-\x{10FFFF}]".to_string(),
        (false, _) => format!("[{}{items}]", if negated { "^" } else { "" }),
    })
}

/// Length of a `[:name:]` at the start of `s`, if there is one (Go: `[:` and a later `:]`).
fn posix_len(s: &str) -> Option<usize> {
    if s.len() <= 2 || !s.starts_with("[:") {
        return None;
    }
    s[2..].find(":]").map(|i| i + 4)
}

/// One character of a class: an escape or the character itself.
fn class_char(t: &mut Translator<'_>, class_start: usize) -> Result<u32, RegexError> {
    match t.peek() {
        None => Err(t.error(class_start, "missing closing ]")),
        Some('\\') => t.escaped_rune(),
        Some(c) => {
            t.pos += c.len_utf8();
            Ok(c as u32)
        }
    }
}

/// `lo-hi` as class items, leaving out surrogates (Go accepts them; they match nothing).
fn push_range(items: &mut String, lo: u32, hi: u32) {
    const SURROGATES: std::ops::RangeInclusive<u32> = 0xD800..=0xDFFF;
    let mut pieces = Vec::with_capacity(2);
    if lo < *SURROGATES.start() {
        pieces.push((lo, hi.min(SURROGATES.start() - 1)));
    }
    if hi > *SURROGATES.end() {
        pieces.push((lo.max(SURROGATES.end() + 1), hi));
    }
    for (lo, hi) in pieces {
        if lo == hi {
            items.push_str(&format!("\\x{{{lo:X}}}"));
        } else {
            items.push_str(&format!("\\x{{{lo:X}}}-\\x{{{hi:X}}}"));
        }
    }
}
