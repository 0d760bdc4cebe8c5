//! Property tests of the fast path's request parsing: whatever the bytes, it never
//! panics; what it takes is exactly one head (as httparse reads it) and the body its
//! one Content-Length declares, and nothing after them; what it leaves to hyper
//! (Transfer-Encoding among it), whole or incomplete, it leaves untouched; a plain
//! request comes out as it went in.

use bytes::BytesMut;
use futures::FutureExt;
use http_body_util::BodyExt;
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

/// A request's parts, written out by [`Parts::wire`].
#[derive(Debug, Clone)]
struct Parts {
    method: String,
    target: Vec<u8>,
    version: String,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// The line ending (CRLF, sometimes a bare LF).
    eol: &'static str,
    body: Vec<u8>,
}

impl Parts {
    fn wire(&self) -> Vec<u8> {
        let mut out = format!("{} ", self.method).into_bytes();
        out.extend_from_slice(&self.target);
        out.extend_from_slice(format!(" {}{}", self.version, self.eol).as_bytes());
        for (name, value) in &self.fields {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(self.eol.as_bytes());
        }
        out.extend_from_slice(self.eol.as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// Bytes that are often where parsers go wrong.
fn tricky_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(prop::sample::select(b"aZ09-_ /?=;,:\"\t\r\n\x00\x0b\x7f\xff+".to_vec()), 0..max),
        1 => vec(any::<u8>(), 0..max),
    ]
}

/// Header fields, framing ones and their odd spellings included.
fn field() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let name = prop_oneof![
        4 => prop::sample::select(vec![
            "Host", "host", "Content-Length", "content-length", "CONTENT-LENGTH",
            "Transfer-Encoding", "Connection", "Upgrade", "Expect", "TE", "X-A", "Cookie",
            "Content-Length ", "Transfer_Encoding",
        ])
        .prop_map(|n| n.as_bytes().to_vec()),
        1 => "[!-~]{1,10}".prop_map(String::into_bytes),
        1 => tricky_bytes(8),
    ];
    let value = prop_oneof![
        4 => prop::sample::select(vec![
            "a.com", "0", "3", "5", "003", "+3", "-1", " 3", "3 ", "3, 3", "3,4", "",
            "99999999999999999999", "chunked", "gzip, chunked", "close", "keep-alive",
            "upgrade", "100-continue", "websocket", "trailers",
        ])
        .prop_map(|v| v.as_bytes().to_vec()),
        1 => "[ -~]{0,12}".prop_map(String::into_bytes),
        1 => tricky_bytes(12),
    ];
    (name, value)
}

/// One change that may take a plain request off the fast path, or make it invalid.
#[derive(Debug, Clone)]
enum Mutation {
    /// A field (likely odd) inserted at an index.
    Field(prop::sample::Index, (Vec<u8>, Vec<u8>)),
    /// The Content-Length value (the body stays as it is).
    Length(&'static str),
    Version(&'static str),
    Eol(&'static str),
    Method(&'static str),
    Target(Vec<u8>),
    /// The body cut to at most this long.
    Cut(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), field()).prop_map(|(at, f)| Mutation::Field(at, f)),
        2 => prop::sample::select(vec![
            "", " 3", "3 ", "+3", "-1", "003", "3, 3", "3,4", "0x3", "99999999999999999999",
            "1844674407370955161", "\x0b3",
        ])
        .prop_map(Mutation::Length),
        1 => prop::sample::select(vec!["HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "http/1.1", "HTTP/1.10", ""])
            .prop_map(Mutation::Version),
        1 => Just(Mutation::Eol("\n")),
        1 => prop::sample::select(vec!["CONNECT", "get", "PRI", "M-SEARCH", "", "GE T", "G\x00T", "\u{ff}"])
            .prop_map(Mutation::Method),
        1 => prop_oneof![
            prop::sample::select(vec!["*", "http://a.com/x?y", "a.com:443", "", "/a b", "/\u{7f}", "/#f"])
                .prop_map(|t| t.as_bytes().to_vec()),
            tricky_bytes(10),
        ]
        .prop_map(Mutation::Target),
        1 => (0..8usize).prop_map(Mutation::Cut),
    ]
}

impl Parts {
    fn mutate(&mut self, m: Mutation) {
        match m {
            Mutation::Field(at, f) => self.fields.insert(at.index(self.fields.len() + 1), f),
            Mutation::Length(v) => {
                self.fields.retain(|(n, _)| n != b"content-length");
                self.fields
                    .push((b"content-length".to_vec(), v.as_bytes().to_vec()));
            }
            Mutation::Version(v) => self.version = v.to_string(),
            Mutation::Eol(e) => self.eol = e,
            Mutation::Method(m) => self.method = m.to_string(),
            Mutation::Target(t) => self.target = t,
            Mutation::Cut(n) => self.body.truncate(n),
        }
    }
}

/// Requests near the fast path's edge: plain ones with a few changes.
fn request_parts() -> impl Strategy<Value = Parts> {
    (plain_request(), vec(mutation(), 0..3)).prop_map(|(mut parts, mutations)| {
        for m in mutations {
            parts.mutate(m);
        }
        parts
    })
}

/// Where a complete head ends, as httparse alone reads it.
fn head_len(bytes: &[u8]) -> Option<usize> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    match httparse::Request::new(&mut slots).parse(bytes) {
        Ok(httparse::Status::Complete(len)) => Some(len),
        _ => None,
    }
}

/// The body bytes of a request the fast path made (its bodies are whole).
fn body_bytes(req: Request<ProxyBody>) -> Vec<u8> {
    let collected = req.into_body().collect().now_or_never();
    collected
        .expect("a fast-path body is ready")
        .expect("and cannot fail")
        .to_bytes()
        .to_vec()
}

/// Checks what `parse_request` did with `input` against what it promises; how many
/// bytes it took.
fn check(input: &[u8], limit: usize) -> Result<Option<usize>, TestCaseError> {
    let mut buf = BytesMut::from(input);
    let Some(req) = parse_request(&mut buf, limit) else {
        prop_assert_eq!(&buf[..], input, "a refused buffer is left as it was");
        return Ok(None);
    };
    let len = head_len(input).expect("taken, so httparse read a whole head");
    prop_assert!(len <= limit);
    prop_assert!(
        !req.headers().contains_key(header::TRANSFER_ENCODING),
        "Transfer-Encoding is hyper's"
    );
    let lengths: Vec<&[u8]> = req
        .headers()
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    prop_assert!(
        lengths.len() <= 1,
        "one Content-Length at most: {:?}",
        lengths
    );
    let declared: usize = lengths.first().map_or(0, |v| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("a taken Content-Length is a number")
    });
    prop_assert_eq!(
        &buf[..],
        &input[len + declared..],
        "only head and body taken"
    );
    prop_assert_eq!(&body_bytes(req)[..], &input[len..len + declared]);
    Ok(Some(len + declared))
}

/// Plain requests: a token method, an origin-form target, HTTP/1.1, ordinary fields,
/// at most one Content-Length naming the body's length.
fn plain_request() -> impl Strategy<Value = Parts> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
    let target = "/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,24}(\\?[A-Za-z0-9=&%]{0,12})?";
    let fields = vec(
        (
            "x-[a-z0-9-]{1,10}",
            "([!-~\u{80}-\u{ff}]([ -~\u{80}-\u{ff}]{0,16}[!-~])?)?",
        ),
        0..10,
    );
    (
        method,
        target,
        fields,
        vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(|(method, target, fields, body, length)| {
            let mut all = vec![(b"host".to_vec(), b"a.com".to_vec())];
            let mut names = std::collections::HashSet::new();
            for (name, value) in fields {
                // One line per name (a HeaderMap groups repeated names), values Latin-1
                // as bytes on the wire.
                if names.insert(name.clone()) {
                    all.push((name.into_bytes(), value.chars().map(|c| c as u8).collect()));
                }
            }
            if length || !body.is_empty() {
                all.push((
                    b"content-length".to_vec(),
                    body.len().to_string().into_bytes(),
                ));
            }
            Parts {
                method: method.to_string(),
                target: target.into_bytes(),
                version: "HTTP/1.1".into(),
                fields: all,
                eol: "\r\n",
                body,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_are_taken_whole_or_left_untouched(
        input in prop_oneof![
            request_parts().prop_map(|p| p.wire()),
            tricky_bytes(200),
        ],
        tail in tricky_bytes(40),
        limit in prop_oneof![Just(8192usize), 16..200usize],
    ) {
        let input = [input, tail].concat();
        check(&input, limit)?;
    }

    #[test]
    fn pipelined_requests_are_taken_one_at_a_time(
        parts in vec(request_parts(), 1..4),
    ) {
        let wire: Vec<u8> = parts.iter().flat_map(Parts::wire).collect();
        let mut at = 0;
        while let Some(taken) = check(&wire[at..], 8192)? {
            prop_assert!(taken > 0);
            at += taken;
        }
    }

    #[test]
    fn plain_requests_come_out_as_they_went_in(
        parts in plain_request(),
        tail in tricky_bytes(40),
    ) {
        let wire = [parts.wire(), tail.clone()].concat();
        let mut buf = BytesMut::from(&wire[..]);
        let req = parse_request(&mut buf, 8192).expect("a plain request takes the fast path");
        prop_assert_eq!(&buf[..], &tail[..], "what follows stays");
        prop_assert_eq!(req.method().as_str(), parts.method.as_str());
        prop_assert_eq!(req.uri().to_string().into_bytes(), parts.target);
        let fields: Vec<(Vec<u8>, Vec<u8>)> = req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        prop_assert_eq!(&fields, &parts.fields);
        prop_assert_eq!(body_bytes(req), parts.body);
    }

    #[test]
    fn an_incomplete_request_is_left_whole_for_hyper(
        parts in plain_request(),
        cut in any::<prop::sample::Index>(),
    ) {
        let wire = parts.wire();
        let short = &wire[..cut.index(wire.len())];
        let mut buf = BytesMut::from(short);
        prop_assert!(parse_request(&mut buf, 8192).is_none());
        prop_assert_eq!(&buf[..], short);
    }
}
