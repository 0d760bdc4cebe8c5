//! Host names: the validated form the table stores, and the lookup key made from a
//! name read off the wire.
//!
//! Both sides meet in one spelling: lower-case ASCII labels joined by `.`, no trailing
//! dot. A table name is checked once on the way in ([`DnsName::new`]); a query name is
//! folded into a caller's stack buffer per query ([`lookup_key`]) so the hot path does
//! not allocate. A query name that could not be a table name (a byte outside the
//! allowed set, a `.` inside a label, the root) yields no key and is simply not ours.

use std::fmt;

use hickory_proto::rr::Name;

use crate::Error;

/// Longest label, in bytes (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest name in its dotted text form without the trailing dot (RFC 1035's 255
/// wire bytes less the length octets of the first label and the root).
pub const MAX_NAME_LEN: usize = 253;

/// A validated, lower-cased host name without trailing dot, e.g. `tasks.web`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(Box<str>);

impl DnsName {
    /// Validates `name` (one trailing dot allowed) and lower-cases it.
    pub fn new(name: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidName {
            name: name.to_owned(),
            reason,
        };
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        if trimmed.is_empty() {
            return Err(invalid("empty"));
        }
        if trimmed.len() > MAX_NAME_LEN {
            return Err(invalid("longer than 253 characters"));
        }
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(invalid("empty label"));
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(invalid("label longer than 63 characters"));
            }
            if !label.bytes().all(is_name_byte) {
                return Err(invalid("only letters, digits, '-' and '_' are allowed"));
            }
        }
        Ok(Self(trimmed.to_ascii_lowercase().into_boxed_str()))
    }

    /// The name as stored: lower-case, no trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn into_boxed_str(self) -> Box<str> {
        self.0
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DnsName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

/// Bytes a stored name may hold (before lower-casing).
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A buffer large enough for any key [`lookup_key`] writes.
pub(crate) type KeyBuf = [u8; MAX_NAME_LEN + 2];

/// Folds a query name into the table's spelling inside `buf`; `None` when the name
/// cannot be in any table (root, bad bytes, a dot inside a label, too long).
pub(crate) fn lookup_key<'b>(name: &Name, buf: &'b mut KeyBuf) -> Option<&'b str> {
    let mut len = 0;
    for label in name.iter() {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return None;
        }
        let dot = usize::from(len > 0);
        if len + dot + label.len() > MAX_NAME_LEN {
            return None;
        }
        if dot == 1 {
            buf[len] = b'.';
            len += 1;
        }
        for &b in label {
            if !is_name_byte(b) {
                return None;
            }
            buf[len] = b.to_ascii_lowercase();
            len += 1;
        }
    }
    if len == 0 {
        return None;
    }
    // Only ASCII was written above, so this cannot fail; stay total anyway.
    std::str::from_utf8(&buf[..len]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_and_lose_the_trailing_dot() {
        assert_eq!(DnsName::new("Web.Front.").unwrap().as_str(), "web.front");
        assert_eq!(
            DnsName::new("tasks.my_svc-1").unwrap().as_str(),
            "tasks.my_svc-1"
        );
    }

    #[test]
    fn invalid_names_are_refused_with_a_reason() {
        for bad in ["", ".", "a..b", ".a", "a b", "ä", "a/b", "a..", "*.x"] {
            assert!(DnsName::new(bad).is_err(), "{bad:?} accepted");
        }
        let long_label = "a".repeat(64);
        assert!(DnsName::new(&long_label).is_err());
        assert!(DnsName::new(&"a".repeat(63)).is_ok());
        let long_name = ["a".repeat(63).as_str(); 4].join(".");
        assert_eq!(long_name.len(), 255);
        assert!(DnsName::new(&long_name).is_err());
        let a63 = "a".repeat(63);
        let max = format!("{a63}.{a63}.{a63}.{}", "b".repeat(61));
        assert_eq!(max.len(), MAX_NAME_LEN);
        assert!(DnsName::new(&max).is_ok());
        assert!(DnsName::new(&format!("{max}c")).is_err());
        let err = DnsName::new("a b").unwrap_err().to_string();
        assert!(err.contains("\"a b\""), "{err}");
    }

    #[test]
    fn wire_names_fold_to_table_keys() {
        let mut buf: KeyBuf = [0; MAX_NAME_LEN + 2];
        let name = Name::from_ascii("Tasks.WEB.").unwrap();
        assert_eq!(lookup_key(&name, &mut buf), Some("tasks.web"));
        let name = Name::from_ascii("web").unwrap();
        assert_eq!(lookup_key(&name, &mut buf), Some("web"));
    }

    #[test]
    fn wire_names_that_cannot_be_ours_have_no_key() {
        let mut buf: KeyBuf = [0; MAX_NAME_LEN + 2];
        assert_eq!(lookup_key(&Name::root(), &mut buf), None);
        // One label holding a dot must not match the two-label name "a.b".
        let dotted = Name::from_labels(vec![b"a.b".to_vec()]).unwrap();
        assert_eq!(lookup_key(&dotted, &mut buf), None);
        let spaced = Name::from_labels(vec![b"a b".to_vec()]).unwrap();
        assert_eq!(lookup_key(&spaced, &mut buf), None);
    }
}
