//! What Træfik's matchers see of a request, computed as Go's `net/http` and Træfik's
//! request decorator compute it:
//!
//! ```text
//!  host  "Shop.Example.COM:8080" ─ ASCII? host bytes? ─ strip port ─ lowercase ─▶ "shop.example.com"
//!  path  "/a%20b%2Fc"            ─ escapes valid? ─ decode all but reserved ──▶ "/a b%2Fc"
//!  query "q=a+b&x"               ─ split `&`, drop `;` pairs, unescape ───────▶ q=["a b"], x=[""]
//! ```
//!
//! A request Go's server would refuse (non-ASCII or malformed host, bad `%` escape in the
//! path) is a [`RequestError`]: it matches no rule and should be answered 400.

use std::borrow::Cow;

/// Why a request cannot be matched against rules at all; answer it 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The host has characters outside ASCII (Træfik, through Go, refuses those).
    #[error("request host {host:?} has non-ASCII characters; internationalised names must be sent in punycode (xn--…)")]
    NonAsciiHost {
        /// The host as sent.
        host: String,
    },
    /// The host has a character a Host header cannot carry.
    #[error("request host {host:?} has {found:?}, which a Host header cannot carry")]
    InvalidHost {
        /// The host as sent.
        host: String,
        /// The first offending character.
        found: char,
    },
    /// The path has a `%` not followed by two hex digits.
    #[error("request path {path:?} has an invalid percent-encoding at byte {at}")]
    InvalidPercentEncoding {
        /// The path as sent.
        path: String,
        /// Byte offset of the `%`.
        at: usize,
    },
}

/// Whether `c` may appear in a Host header (Go's `httpguts.ValidHostHeader`).
pub(super) fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!$%&'()*+,-.:;=[]_~".contains(c)
}

/// The host as `Host` and `HostRegexp` see it: port removed as Go's `net.SplitHostPort`
/// does (brackets of an IPv6 literal too), lowercased. A trailing dot is kept.
pub(super) fn canonical_host(host: &str) -> Result<Cow<'_, str>, RequestError> {
    if !host.is_ascii() {
        return Err(RequestError::NonAsciiHost {
            host: host.to_string(),
        });
    }
    if let Some(found) = host.chars().find(|c| !is_host_char(*c)) {
        return Err(RequestError::InvalidHost {
            host: host.to_string(),
            found,
        });
    }
    Ok(lowercase(strip_port(host)))
}

fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// Træfik's `parseHost`: `a.com:80` → `a.com`, `[::1]:80` and `[::1]` → `::1`, `::1`
/// unchanged (too many colons to split).
pub(super) fn strip_port(addr: &str) -> &str {
    if !addr.contains(':') {
        return addr;
    }
    split_host_port(addr).unwrap_or_else(|| {
        addr.strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr)
    })
}

/// The host part of `host:port` or `[host]:port`, or `None` where Go's
/// `net.SplitHostPort` fails (no port, too many colons, stray brackets).
fn split_host_port(hostport: &str) -> Option<&str> {
    let colon = hostport.rfind(':')?;
    let (host, open, close) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        if end + 1 != colon {
            return None;
        }
        (&hostport[1..end], 1, end + 1)
    } else {
        let host = &hostport[..colon];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hostport[open..].contains('[') || hostport[close..].contains(']') {
        return None;
    }
    Some(host)
}

/// Percent-encodings Træfik keeps encoded in the routing path (RFC 3986 reserved
/// characters and `%`), spelled as Træfik spells them: upper-case hex only.
const RESERVED: &[&[u8; 3]] = &[
    b"%3A", b"%2F", b"%3F", b"%23", b"%5B", b"%5D", b"%40", b"%21", b"%24", b"%26", b"%27", b"%28",
    b"%29", b"%2A", b"%2B", b"%2C", b"%3B", b"%3D", b"%25",
];

/// The path Træfik's path matchers see: Go's `EscapedPath` of the request target with
/// every percent-encoding decoded except those in [`RESERVED`].
pub(super) fn routing_path(path: &str) -> Result<Cow<'_, [u8]>, RequestError> {
    let bytes = path.as_bytes();
    if let Some(at) = bad_escape(bytes) {
        return Err(RequestError::InvalidPercentEncoding {
            path: path.to_string(),
            at,
        });
    }
    let valid = bytes.iter().all(|&b| is_valid_encoded(b));
    if valid && !bytes.contains(&b'%') {
        return Ok(Cow::Borrowed(bytes));
    }
    // Go keeps a valid target as sent; any other it decodes and encodes again.
    let escaped: Cow<'_, [u8]> = if valid {
        Cow::Borrowed(bytes)
    } else {
        Cow::Owned(escape_path(&unescape(bytes)))
    };
    Ok(Cow::Owned(decode_unreserved(&escaped)))
}

/// Offset of the first `%` not followed by two hex digits.
fn bad_escape(bytes: &[u8]) -> Option<usize> {
    bytes.iter().enumerate().find_map(|(i, &b)| {
        let ok = b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        (!ok).then_some(i)
    })
}

/// Whether Go's path encoder would percent-encode `b`.
fn should_escape_in_path(b: u8) -> bool {
    !(b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b))
}

/// Whether `b` may stand unencoded in a path Go keeps as sent (`validEncoded`).
fn is_valid_encoded(b: u8) -> bool {
    b"!$&'()*+,;=:@[]%".contains(&b) || !should_escape_in_path(b)
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// `%XX` → the byte (escapes already checked).
fn unescape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(hex_value(bytes[i + 1]) << 4 | hex_value(bytes[i + 2]));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn escape_path(bytes: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for &b in bytes {
        if should_escape_in_path(b) {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.push(b);
        }
    }
    out
}

fn decode_unreserved(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes.get(i..i + 3) {
            Some(triple @ [b'%', hi, lo]) => {
                if RESERVED.iter().any(|r| r.as_slice() == triple) {
                    out.extend_from_slice(triple);
                } else {
                    out.push(hex_value(*hi) << 4 | hex_value(*lo));
                }
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The values of query parameter `key`, as Go's `url.ParseQuery` reads them: pairs split
/// on `&`, pairs holding `;` or a bad escape skipped, `+` a space, `k` alone `k=`.
pub(super) fn query_values<'q>(
    query: &'q str,
    key: &'q str,
) -> impl Iterator<Item = Cow<'q, [u8]>> + 'q {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = query_unescape(k)?;
            let v = query_unescape(v)?;
            (*k == *key.as_bytes()).then_some(v)
        })
}

/// `application/x-www-form-urlencoded` decoding; `None` on a bad `%` escape.
fn query_unescape(s: &str) -> Option<Cow<'_, [u8]>> {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(bytes));
    }
    if bad_escape(bytes).is_some() {
        return None;
    }
    let spaced: Vec<u8> = bytes
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    Some(Cow::Owned(unescape(&spaced)))
}
