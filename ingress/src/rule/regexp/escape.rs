//! Backslash escapes of Go's syntax outside and inside classes: assertions (`\b`, `\z`),
//! quoting (`\Q…\E`), Perl and Unicode classes, and single characters (`\n`, `\x41`,
//! `\101`, escaped punctuation), refused where Go refuses them (`\C`, `\1`, `\u`).

use super::{class, RegexError, Translator};

impl Translator<'_> {
    pub(super) fn escape(&mut self) -> Result<(), RegexError> {
        let start = self.pos;
        let Some(c) = self.rest()[1..].chars().next() else {
            self.pos += 1;
            return Err(self.error(start, "trailing backslash at end of expression"));
        };
        let assertion = match c {
            'A' => Some(r"\A"),
            'z' => Some(r"\z"),
            'b' => Some(r"(?-u:\b)"),
            'B' => Some(r"(?-u:\B)"),
            _ => None,
        };
        if let Some(text) = assertion {
            self.pos += 2;
            self.item(text, 1);
            return Ok(());
        }
        match c {
            'C' => {
                self.pos += 2;
                Err(self.error(start, "invalid escape sequence"))
            }
            'Q' => {
                let body = &self.rest()[2..];
                let (quoted, skip) = match body.find(r"\E") {
                    Some(end) => (&body[..end], end + 2),
                    None => (body, body.len()),
                };
                self.pos += 2 + skip;
                quoted.chars().for_each(|c| self.literal(c));
                Ok(())
            }
            'p' | 'P' => {
                let text = class::unicode(self)?;
                self.item(&text, 1);
                Ok(())
            }
            _ => {
                if let Some(text) = class::perl(c, false) {
                    self.pos += 2;
                    self.item(&text, 1);
                    return Ok(());
                }
                let r = self.escaped_rune()?;
                self.literal_rune(r);
                Ok(())
            }
        }
    }

    /// The character a single-character escape (`\n`, `\x41`, `\101`, `\.`) stands for,
    /// as a number: Go allows surrogates (which then match nothing).
    pub(super) fn escaped_rune(&mut self) -> Result<u32, RegexError> {
        let start = self.pos;
        self.pos += 1;
        let Some(c) = self.peek() else {
            return Err(self.error(start, "trailing backslash at end of expression"));
        };
        self.pos += c.len_utf8();
        let octal = |c: Option<char>| c.and_then(|c| c.to_digit(8));
        match c {
            '1'..='7' if octal(self.peek()).is_none() => Err(self.error(
                start,
                "invalid escape sequence (backreferences are not supported)",
            )),
            '0'..='7' => {
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    let Some(d) = octal(self.peek()) else { break };
                    r = r * 8 + d;
                    self.pos += 1;
                }
                Ok(r)
            }
            'x' => self.hex(start),
            'a' => Ok(0x07),
            'f' => Ok(0x0C),
            'n' => Ok(0x0A),
            'r' => Ok(0x0D),
            't' => Ok(0x09),
            'v' => Ok(0x0B),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c as u32),
            _ => Err(self.error(start, "invalid escape sequence")),
        }
    }

    /// After `\x`: two hex digits, or any number in braces up to U+10FFFF.
    fn hex(&mut self, start: usize) -> Result<u32, RegexError> {
        let invalid = |t: &mut Self| Err(t.error(start, "invalid escape sequence"));
        let rest = self.rest();
        if let Some(body) = rest.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                self.pos = self.src.len();
                return invalid(self);
            };
            self.pos += end + 2;
            let digits = &body[..end];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return invalid(self);
            }
            return match u32::from_str_radix(digits, 16) {
                Ok(r) if r <= 0x10FFFF => Ok(r),
                _ => invalid(self),
            };
        }
        let two: String = rest.chars().take(2).collect();
        self.pos += two.len();
        if two.len() != 2 || !two.bytes().all(|b| b.is_ascii_hexdigit()) {
            return invalid(self);
        }
        u32::from_str_radix(&two, 16).or_else(|_| invalid(self))
    }
}
