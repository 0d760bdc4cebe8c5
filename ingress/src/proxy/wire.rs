//! HTTP/1.1 on the wire, shared by the proxy's own client (`h1`) and its fast server
//! path (`fast`): header lines and body data written out, parsed header fields turned
//! into a `HeaderMap` whose values share the message's bytes, and `Connection` tokens.

use std::ops::Range;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The chunk that ends a chunked body (no trailers).
pub(super) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// `name: value` CRLF.
pub(super) fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `content-length: n` CRLF.
pub(super) fn put_length(out: &mut Vec<u8>, n: u64) {
    use std::io::Write;
    out.extend_from_slice(b"content-length: ");
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{n}\r\n");
}

/// Body bytes, as a chunk when `chunked` (an empty chunk would end the body, so empty
/// data writes nothing).
pub(super) fn put_data(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if data.is_empty() {
        return;
    }
    if chunked {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{:x}\r\n", data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

/// Where `part` lies within `whole` (a slice httparse returned from it).
pub(super) fn range_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let from = part.as_ptr() as usize - whole.as_ptr() as usize;
    from..from + part.len()
}

/// The headers named in `fields`, their values slices of `message` (no copies), with
/// room for `spare` more; `None` if a value is not a valid header value.
pub(super) fn shared_headers(
    message: &Bytes,
    fields: &[(HeaderName, Range<usize>)],
    spare: usize,
) -> Option<HeaderMap> {
    let mut headers = HeaderMap::with_capacity(fields.len() + spare);
    for (name, value) in fields {
        let value = HeaderValue::from_maybe_shared(message.slice(value.clone())).ok()?;
        headers.append(name.clone(), value);
    }
    Some(headers)
}

/// Whether a `Connection` header lists `token` (case-insensitively).
pub(super) fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| lists(v, token))
}

/// Whether a comma-separated value lists `token` (case-insensitively).
pub(super) fn lists(value: &HeaderValue, token: &str) -> bool {
    tokens(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// The items of a comma-separated value, trimmed.
pub(super) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_chunked_only_when_asked_and_never_as_an_empty_chunk() {
        let mut out = Vec::new();
        put_data(&mut out, b"hello world!!!!!!", true);
        put_data(&mut out, b"", true);
        put_data(&mut out, b"raw", false);
        assert_eq!(out, b"11\r\nhello world!!!!!!\r\nraw");
    }

    #[test]
    fn shared_values_come_from_the_message() {
        let message = Bytes::from_static(b"a: one\r\nb: two\r\n");
        let fields = [
            (
                HeaderName::from_static("a"),
                range_in(&message, &message[3..6]),
            ),
            (HeaderName::from_static("b"), 11..14),
        ];
        let h = shared_headers(&message, &fields, 3).unwrap();
        assert_eq!(h["a"], "one");
        assert_eq!(h["b"], "two");
        let bad = Bytes::from_static(b"\x7f");
        assert!(shared_headers(&bad, &[(HeaderName::from_static("a"), 0..1)], 0).is_none());
    }

    #[test]
    fn connection_tokens_are_listed_values() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.append(header::CONNECTION, HeaderValue::from_static("close"));
        assert!(connection_has(&h, "upgrade") && connection_has(&h, "close"));
        assert!(!connection_has(&h, "keep"));
    }
}
