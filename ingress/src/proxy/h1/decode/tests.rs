//! Property tests of response framing and decoding, fed in arbitrary reads: chunked
//! bodies come back whole whatever their chunk sizes, extensions and trailers;
//! malformed chunking is refused; a stream of responses (1xx, Content-Length, chunked,
//! 204, 304, HEAD, until close) splits at the right places.

use std::ops::Range;

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::proxy::h1::final_head;

/// Bytes arriving in pieces, handed to the decoder only when it asks for more.
struct Feed {
    pieces: std::vec::IntoIter<Vec<u8>>,
    buf: BytesMut,
}

impl Feed {
    /// `input` cut at `cuts` (taken modulo its length).
    fn new(input: &[u8], cuts: &[usize]) -> Feed {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        at.extend([0, input.len()]);
        at.sort_unstable();
        at.dedup();
        let pieces: Vec<Vec<u8>> = at.windows(2).map(|w| input[w[0]..w[1]].to_vec()).collect();
        Feed {
            pieces: pieces.into_iter(),
            buf: BytesMut::new(),
        }
    }

    /// One more piece into the buffer; `false` at the end of the stream.
    fn more(&mut self) -> bool {
        match self.pieces.next() {
            Some(piece) => {
                self.buf.extend_from_slice(&piece);
                true
            }
            None => false,
        }
    }

    /// What was not consumed: the buffer and the pieces not yet read.
    fn rest(mut self) -> Vec<u8> {
        let mut rest = self.buf.to_vec();
        rest.extend(self.pieces.by_ref().flatten());
        rest
    }
}

/// A body read with `framing`, the way `H1Body` drives the decoder.
#[derive(Debug, Default, PartialEq)]
struct Read {
    data: Vec<u8>,
    trailers: Vec<(HeaderName, HeaderValue)>,
}

fn read_body(mut framing: Framing, feed: &mut Feed) -> Result<Read, H1Error> {
    let mut read = Read::default();
    loop {
        match framing.decode(&mut feed.buf)? {
            Decoded::Data(data) => {
                assert!(!data.is_empty(), "empty data frame");
                read.data.extend_from_slice(&data);
            }
            Decoded::Trailer(name, value) => read.trailers.push((name, value)),
            Decoded::End => return Ok(read),
            Decoded::More => {
                if !feed.more() {
                    framing.at_eof()?;
                }
            }
        }
    }
}

/// A chunked body: the encoding, the data and the trailers it carries.
#[derive(Debug, Clone)]
struct Chunked {
    wire: Vec<u8>,
    data: Vec<u8>,
    trailers: Vec<(HeaderName, HeaderValue)>,
    /// Where each chunk-size line lies in `wire` (without its CRLF), with the size it
    /// gives, the last chunk's included.
    size_lines: Vec<(Range<usize>, usize)>,
    /// Where each chunk's data ends in `wire` (its CRLF follows).
    data_ends: Vec<usize>,
}

/// Chunk extensions (and the whitespace RFC 9112 allows before them).
fn extension() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[ \t]{1,2}",
        "[ \t]{0,2};[ \t]{0,2}[a-z]{1,8}",
        ";[a-z]{1,8}=[A-Za-z0-9]{0,8}",
        ";[a-z]{1,8}=\"[ a-z;=]{0,10}\";x",
    ]
}

/// A chunk-size line for `n`: hex of either case, maybe with leading zeros.
fn size_line(n: usize, zeros: usize, upper: bool, ext: &str) -> String {
    let hex = if upper {
        format!("{n:X}")
    } else {
        format!("{n:x}")
    };
    format!("{}{hex}{ext}\r\n", "0".repeat(zeros))
}

fn chunk() -> impl Strategy<Value = (Vec<u8>, usize, bool, String)> {
    (
        vec(any::<u8>(), 1..200),
        0..3usize,
        any::<bool>(),
        extension(),
    )
}

fn trailer_field() -> impl Strategy<Value = (String, String, String, String)> {
    (
        "[A-Za-z][A-Za-z0-9-]{0,10}",
        "[ \t]{0,2}",
        "([!-~\u{80}-\u{ff}]([ -~]{0,12}[!-~])?)?",
        "[ \t]{0,2}",
    )
}

impl Chunked {
    fn put_size_line(&mut self, n: usize, zeros: usize, upper: bool, ext: &str) {
        let line = size_line(n, zeros, upper, ext);
        let at = self.wire.len();
        self.size_lines.push((at..at + line.len() - 2, n));
        self.wire.extend_from_slice(line.as_bytes());
    }
}

prop_compose! {
    fn chunked()(
        chunks in vec(chunk(), 0..6),
        last in (0..3usize, extension()),
        fields in vec(trailer_field(), 0..3),
    ) -> Chunked {
        let mut body = Chunked {
            wire: Vec::new(),
            data: Vec::new(),
            trailers: Vec::new(),
            size_lines: Vec::new(),
            data_ends: Vec::new(),
        };
        for (data, zeros, upper, ext) in &chunks {
            body.put_size_line(data.len(), *zeros, *upper, ext);
            body.wire.extend_from_slice(data);
            body.data_ends.push(body.wire.len());
            body.wire.extend_from_slice(b"\r\n");
            body.data.extend_from_slice(data);
        }
        body.put_size_line(0, last.0, false, &last.1);
        for (name, before, value, after) in &fields {
            // Values are Latin-1 here, as bytes on the wire.
            let value: Vec<u8> = value.chars().map(|c| c as u8).collect();
            body.wire.extend_from_slice(format!("{name}:{before}").as_bytes());
            body.wire.extend_from_slice(&value);
            body.wire.extend_from_slice(format!("{after}\r\n").as_bytes());
            body.trailers.push((
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(&value).unwrap(),
            ));
        }
        body.wire.extend_from_slice(b"\r\n");
        body
    }
}

/// Ways to write a chunk-size line for `n` that RFC 9112 §7.1 does not allow, each
/// naming the right size so that only the form is wrong.
const BAD_SIZES: &[fn(usize) -> String] = &[
    |n| format!("+{n:x}"),
    |n| format!("-{n:x}"),
    |n| format!("0x{n:x}"),
    |n| format!(" {n:x}"),
    |n| format!("\t{n:x}"),
    |n| format!("{n:x} x"),
    |n| format!("{n:x}\r"),
    |n| format!("{n:x}\n"),
    |n| format!("{n:x}\r;a"),
    |n| format!("{n:x},a"),
    |n| format!("{n:x};a\x00b"),
    |n| format!("{n:x};a\nb"),
    |n| format!("{n:x};a\x7f"),
    |n| format!("{n:x}\x0b"),
    |_| String::new(),
    |_| "1".repeat(17),
];

/// What may stand where a CRLF must.
fn bad_crlf() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "\n", "\r", "\rX", "XX", "\n\r", " \r\n"])
}

/// Trailer lines that are not header fields.
fn bad_trailer() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        "[ \t][a-z]{1,8}: [a-z]{0,4}",
        "[a-z]{1,4} [a-z]{1,4}: x",
        "[a-z]{1,4}: [a-z]{0,3}[\x00-\x08\x0b-\x1f\x7f\r][a-z]{0,3}",
        ": [a-z]{1,4}",
    ]
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    vec(any::<usize>(), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chunked_bodies_decode_whole_in_any_reads(
        body in chunked(),
        tail in vec(any::<u8>(), 0..40),
        cuts in cuts(),
    ) {
        let mut wire = body.wire.clone();
        wire.extend_from_slice(&tail);
        let mut feed = Feed::new(&wire, &cuts);
        let read = read_body(Framing::Chunked(Chunk::Size), &mut feed).unwrap();
        prop_assert_eq!(&read.data, &body.data);
        prop_assert_eq!(&read.trailers, &body.trailers);
        prop_assert_eq!(feed.rest(), tail, "what follows the body is left");
    }

    #[test]
    fn malformed_chunk_sizes_are_refused(
        body in chunked(),
        bad in prop::sample::select(BAD_SIZES),
        at in any::<prop::sample::Index>(),
        cuts in cuts(),
    ) {
        // The bad line goes in place of one of the body's size lines.
        let (line, size) = body.size_lines[at.index(body.size_lines.len())].clone();
        let bad = bad(size);
        let mut wire = body.wire[..line.start].to_vec();
        wire.extend_from_slice(bad.as_bytes());
        wire.extend_from_slice(&body.wire[line.end..]);
        let mut feed = Feed::new(&wire, &cuts);
        let read = read_body(Framing::Chunked(Chunk::Size), &mut feed);
        prop_assert!(read.is_err(), "{:?} taken: {:?}", bad, read);
    }

    #[test]
    fn chunk_data_without_its_crlf_is_refused(
        body in chunked(),
        bad in bad_crlf(),
        at in any::<prop::sample::Index>(),
        cuts in cuts(),
    ) {
        prop_assume!(!body.data_ends.is_empty());
        let end = body.data_ends[at.index(body.data_ends.len())];
        let mut wire = body.wire[..end].to_vec();
        wire.extend_from_slice(bad.as_bytes());
        wire.extend_from_slice(&body.wire[end + 2..]);
        let mut feed = Feed::new(&wire, &cuts);
        let read = read_body(Framing::Chunked(Chunk::Size), &mut feed);
        prop_assert!(read.is_err(), "{:?} taken: {:?}", bad, read);
    }

    #[test]
    fn malformed_trailers_are_refused(
        data in vec(any::<u8>(), 1..50),
        bad in bad_trailer(),
        cuts in cuts(),
    ) {
        let mut wire = format!("{:x}\r\n", data.len()).into_bytes();
        wire.extend_from_slice(&data);
        wire.extend_from_slice(format!("\r\n0\r\n{bad}\r\n\r\n").as_bytes());
        let mut feed = Feed::new(&wire, &cuts);
        let read = read_body(Framing::Chunked(Chunk::Size), &mut feed);
        prop_assert!(read.is_err(), "{:?} taken: {:?}", bad, read);
    }

    #[test]
    fn any_bytes_are_decoded_or_refused_without_panic(
        wire in prop_oneof![
            vec(any::<u8>(), 0..400),
            vec(prop::sample::select(b"0123456789abcdefX;= \t\r\n:".to_vec()), 0..400),
        ],
        cuts in cuts(),
    ) {
        let mut feed = Feed::new(&wire, &cuts);
        if let Ok(read) = read_body(Framing::Chunked(Chunk::Size), &mut feed) {
            prop_assert!(read.data.len() + feed.rest().len() <= wire.len());
        }
    }
}

/// One response of a stream, and the request it answers.
#[derive(Debug, Clone)]
struct Exchange {
    method: Method,
    status: StatusCode,
    wire: Vec<u8>,
    /// The body a reader must take from `wire`.
    body: Vec<u8>,
}

/// Interim responses, each a head of its own.
fn interim() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        &b"HTTP/1.1 100 Continue\r\n\r\n"[..],
        b"HTTP/1.1 102 Processing\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n",
    ])
    .prop_map(<[u8]>::to_vec)
}

/// A final response that leaves the connection open for the next one.
fn delimited() -> impl Strategy<Value = Exchange> {
    let data = || vec(any::<u8>(), 0..300);
    let length = data().prop_map(|body| {
        let mut wire =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        wire.extend_from_slice(&body);
        (Method::GET, StatusCode::OK, wire, body)
    });
    let chunked = (chunked(), any::<bool>()).prop_map(|(c, stale_length)| {
        // Transfer-Encoding wins over a Content-Length beside it.
        let stale = if stale_length {
            "content-length: 7\r\n"
        } else {
            ""
        };
        let mut wire =
            format!("HTTP/1.1 200 OK\r\n{stale}transfer-encoding: chunked\r\n\r\n").into_bytes();
        wire.extend_from_slice(&c.wire);
        (Method::POST, StatusCode::OK, wire, c.data)
    });
    let bodiless = (
        prop::sample::select(vec![
            (Method::GET, StatusCode::NO_CONTENT),
            (Method::GET, StatusCode::NOT_MODIFIED),
            (Method::HEAD, StatusCode::OK),
        ]),
        0..100_000u32,
        any::<bool>(),
    )
        .prop_map(|((method, status), n, chunked)| {
            // The framing fields describe a body that is not sent.
            let framing = if chunked && status != StatusCode::NO_CONTENT {
                "transfer-encoding: chunked".to_string()
            } else if status == StatusCode::NO_CONTENT {
                "x-none: 1".to_string()
            } else {
                format!("content-length: {n}")
            };
            let wire = format!(
                "HTTP/1.1 {} {}\r\n{framing}\r\n\r\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .into_bytes();
            (method, status, wire, Vec::new())
        });
    (vec(interim(), 0..3), prop_oneof![length, chunked, bodiless]).prop_map(
        |(interims, (method, status, wire, body))| Exchange {
            method,
            status,
            wire: [interims.concat(), wire].concat(),
            body,
        },
    )
}

/// A final response read until the connection closes.
fn until_close() -> impl Strategy<Value = Exchange> {
    vec(any::<u8>(), 0..300).prop_map(|body| Exchange {
        method: Method::GET,
        status: StatusCode::OK,
        wire: [&b"HTTP/1.1 200 OK\r\nx-a: b\r\n\r\n"[..], &body].concat(),
        body,
    })
}

/// Reads the responses to `methods` from `feed`, as `H1Conn` does: the final head,
/// then the body its framing says.
fn read_responses(
    methods: &[Method],
    feed: &mut Feed,
) -> Result<Vec<(StatusCode, Vec<u8>)>, H1Error> {
    let mut out = Vec::new();
    for method in methods {
        let head = loop {
            if let Some(head) = final_head(&mut feed.buf)? {
                break head;
            }
            if !feed.more() {
                return Err(H1Error::Closed);
            }
        };
        let framing = framing(method, head.status(), head.headers())?;
        let read = read_body(framing, feed)?;
        out.push((head.status(), read.data));
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn responses_on_one_connection_split_at_their_boundaries(
        exchanges in vec(delimited(), 1..5),
        last in proptest::option::of(until_close()),
        cuts in cuts(),
    ) {
        let all: Vec<Exchange> = exchanges.into_iter().chain(last).collect();
        let wire: Vec<u8> = all.iter().flat_map(|e| e.wire.clone()).collect();
        let methods: Vec<Method> = all.iter().map(|e| e.method.clone()).collect();
        let mut feed = Feed::new(&wire, &cuts);
        let read = read_responses(&methods, &mut feed).unwrap();
        let expected: Vec<(StatusCode, Vec<u8>)> =
            all.iter().map(|e| (e.status, e.body.clone())).collect();
        prop_assert_eq!(read, expected);
        prop_assert!(feed.rest().is_empty());
    }

    #[test]
    fn a_truncated_body_is_an_error_not_a_short_body(
        exchange in delimited(),
        cut in any::<prop::sample::Index>(),
    ) {
        prop_assume!(!exchange.body.is_empty());
        // Cut somewhere within the body (or a chunked body's framing).
        let head = head_len(&exchange.wire);
        let at = head + cut.index(exchange.wire.len() - head);
        let mut feed = Feed::new(&exchange.wire[..at], &[]);
        let read = read_responses(&[exchange.method], &mut feed);
        prop_assert!(read.is_err(), "{:?}", read);
    }
}

/// Where the final head of a response ends.
fn head_len(wire: &[u8]) -> usize {
    let mut buf = BytesMut::from(wire);
    let before = buf.len();
    final_head(&mut buf).unwrap().unwrap();
    before - buf.len()
}

#[test]
fn chunk_lines_need_crlf_and_hex_sizes() {
    for good in [
        &b"5"[..],
        b"05",
        b"5 ",
        b"5\t;x",
        b"5;a=\"b;c\"",
        b"000000000000000005",
    ] {
        assert_eq!(chunk_size(good).unwrap(), 5, "{good:?}");
    }
    assert_eq!(chunk_size(b"1a").unwrap(), 26);
    assert_eq!(chunk_size(b"0;name=value").unwrap(), 0);
    assert_eq!(chunk_size(b"ffffffffffffffff").unwrap(), u64::MAX);
    for bad in [
        &b""[..],
        b"g",
        b"-1",
        b"+5",
        b" 5",
        b"5 x",
        b"0x5",
        b"5\r",
        b"10000000000000000",
        b"5;\x00",
    ] {
        assert!(chunk_size(bad).is_err(), "{bad:?}");
    }
    let mut f = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::from("5\nhello\r\n");
    assert!(f.decode(&mut buf).is_err(), "bare LF");
}
