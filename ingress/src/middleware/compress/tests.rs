//! Negotiation cases from Træfik's `acceptencoding_test.go`; the response side as its
//! `compress_test.go` expects (Vary, minimum size, excluded types, HEAD, no double
//! compression).

use std::io::Read;

use super::*;
use crate::proxy::body;

fn compressor(encodings: &[Encoding], default: Option<Encoding>) -> Compressor {
    Compressor::new(&Compress {
        excluded_content_types: vec![MediaType::parse("application/grpc").unwrap()],
        included_content_types: Vec::new(),
        min_response_body_bytes: 1024,
        encodings: encodings.to_vec(),
        default_encoding: default,
    })
}

const ALL: &[Encoding] = &[Encoding::Gzip, Encoding::Brotli, Encoding::Zstd];
use Encoding::{Brotli as BR, Gzip as GZ, Zstd as ZS};

#[test]
fn negotiation_as_træfik() {
    // Accept-Encoding fields, offered encodings, default, expected.
    type Case<'a> = (
        &'a [&'a str],
        &'a [Encoding],
        Option<Encoding>,
        Option<Encoding>,
    );
    let cases: &[Case] = &[
        (&[""], ALL, None, None),
        (&["gzip, br"], ALL, None, Some(GZ)),
        (&["gzip, br, zstd"], ALL, None, Some(GZ)),
        (&["compress, gzip"], ALL, None, Some(GZ)),
        (&["compress, rar"], ALL, None, None),
        (&["*"], ALL, None, Some(GZ)),
        (&["*"], ALL, Some(BR), Some(BR)),
        (&["br;q=0.8, gzip;q=1.0, *;q=0.1"], ALL, None, Some(GZ)),
        (&["br;q=0.8, identity;q=1.0"], ALL, None, None),
        (&["br;q=0.8, identity;q=0.8"], ALL, None, Some(BR)),
        (&["compress;q=1.0, gzip;q=0.5"], ALL, None, Some(GZ)),
        (&["compress;q=1.0, gzip, identity;q=0"], ALL, None, Some(GZ)),
        (&["compress;q=1.0, identity;q=0"], ALL, None, None),
        (&["compress;q=1.0, *;q=0"], ALL, None, None),
        (&["gzip, *;q=0"], ALL, None, Some(GZ)),
        (&["zstd, gzip, br"], &[BR, GZ], None, Some(BR)),
        (
            &["br;q=0.8, gzip;q=1.0, *;q=0.1"],
            &[ZS, BR],
            None,
            Some(BR),
        ),
        (&["gzip, br;q=0.9"], &[GZ, BR], None, Some(GZ)),
        (&["br;q=0, gzip;q=0, zstd;q=0"], ALL, None, None),
        (&["br;q=0, gzip;q=0, zstd;q=0"], ALL, Some(BR), None),
        (&["br;q=1.0, gzip;q=1.0, zstd;q=1.0"], ALL, None, Some(GZ)),
        (
            &["br;q=1.0, zstd;q=1.0, gzip;q=1.0"],
            ALL,
            Some(BR),
            Some(GZ),
        ),
        (&["zstd;q=0.9", "br"], ALL, None, Some(BR)),
        (&["GZIP"], ALL, None, None),
        (&["gzip;q=x"], ALL, None, None),
    ];
    for (lines, encodings, default, expected) in cases {
        assert_eq!(
            compressor(encodings, *default).choose(lines),
            *expected,
            "{lines:?} {encodings:?} {default:?}"
        );
    }
    assert_eq!(
        compressor(ALL, None).choose(&[]),
        None,
        "no Accept-Encoding: no compression"
    );
    assert_eq!(
        compressor(ALL, Some(ZS)).choose(&[]),
        Some(ZS),
        "unless a default is set"
    );
}

fn request(method: &str, accept: Option<&str>, content_type: Option<&str>) -> Request<()> {
    let mut b = Request::builder().method(method).uri("/");
    if let Some(a) = accept {
        b = b.header("accept-encoding", a);
    }
    if let Some(c) = content_type {
        b = b.header("content-type", c);
    }
    b.body(()).unwrap()
}

#[test]
fn head_and_grpc_requests_are_never_compressed() {
    let c = compressor(ALL, None);
    assert_eq!(c.negotiate(&request("GET", Some("gzip"), None)), Some(GZ));
    assert_eq!(c.negotiate(&request("HEAD", Some("gzip"), None)), None);
    assert_eq!(
        c.negotiate(&request("POST", Some("gzip"), Some("application/grpc"))),
        None
    );
}

fn response(body: ProxyBody, headers: &[(&str, &str)]) -> Response<ProxyBody> {
    let mut r = Response::new(body);
    for (k, v) in headers {
        r.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

async fn bytes_of(resp: Response<ProxyBody>) -> (http::response::Parts, Vec<u8>) {
    let (parts, b) = resp.into_parts();
    (parts, b.collect().await.unwrap().to_bytes().to_vec())
}

fn decode(encoding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::decode_all(data).unwrap(),
        other => panic!("{other}"),
    }
    out
}

fn text(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"shoal compresses "[i % 17]).collect()
}

#[tokio::test]
async fn each_encoding_round_trips_with_vary_and_no_length() {
    let c = compressor(ALL, None);
    for e in ALL {
        let resp = response(
            body::full(text(4000)),
            &[
                ("content-length", "4000"),
                ("content-type", "text/plain"),
                ("accept-ranges", "bytes"),
            ],
        );
        let (parts, data) = bytes_of(c.respond(resp, *e).await).await;
        assert_eq!(parts.headers["content-encoding"], e.name());
        assert_eq!(parts.headers["vary"], "Accept-Encoding");
        assert!(!parts.headers.contains_key("content-length"));
        assert!(!parts.headers.contains_key("accept-ranges"));
        assert!(data.len() < 400, "{e:?}: {}", data.len());
        assert_eq!(decode(e.name(), &data), text(4000));
    }
}

#[tokio::test]
async fn small_encoded_and_excluded_bodies_pass_as_they_are() {
    let c = compressor(ALL, None);
    let small = c.respond(response(body::full(text(1023)), &[]), GZ).await;
    let (parts, data) = bytes_of(small).await;
    assert!(!parts.headers.contains_key("content-encoding"));
    assert_eq!(
        parts.headers["vary"], "Accept-Encoding",
        "Vary all the same"
    );
    assert_eq!(data, text(1023));
    let done = c
        .respond(
            response(body::full(text(2000)), &[("content-encoding", "br")]),
            GZ,
        )
        .await;
    let (parts, data) = bytes_of(done).await;
    assert_eq!(
        parts.headers["content-encoding"], "br",
        "no double compression"
    );
    assert_eq!(data.len(), 2000);
    for ct in ["application/grpc", "not a type"] {
        let (parts, _) = bytes_of(
            c.respond(
                response(body::full(text(2000)), &[("content-type", ct)]),
                GZ,
            )
            .await,
        )
        .await;
        assert!(!parts.headers.contains_key("content-encoding"), "{ct}");
    }
    let mut partial = response(
        body::full(text(2000)),
        &[("content-range", "bytes 0-1999/5000")],
    );
    *partial.status_mut() = StatusCode::PARTIAL_CONTENT;
    let (parts, _) = bytes_of(c.respond(partial, GZ).await).await;
    assert!(!parts.headers.contains_key("content-encoding"), "206");
    let vary = c
        .respond(response(body::full(text(2000)), &[("vary", "Origin")]), GZ)
        .await;
    let values: Vec<_> = vary.headers().get_all("vary").iter().collect();
    assert_eq!(values, ["Origin", "Accept-Encoding"]);
}

#[tokio::test]
async fn included_and_excluded_types_with_parameters() {
    let mut c = compressor(ALL, None);
    c.config.included_content_types = vec![MediaType::parse("text/html; charset=utf-8").unwrap()];
    let go = |ct: &'static str| response(body::full(text(2000)), &[("content-type", ct)]);
    let (p, _) = bytes_of(c.respond(go("text/html; charset=UTF-8"), GZ).await).await;
    assert!(
        !p.headers.contains_key("content-encoding"),
        "parameter values compare exactly"
    );
    let (p, _) = bytes_of(c.respond(go("text/html;charset=utf-8"), GZ).await).await;
    assert_eq!(p.headers["content-encoding"], "gzip");
    let (p, _) = bytes_of(c.respond(go("text/plain"), GZ).await).await;
    assert!(!p.headers.contains_key("content-encoding"), "not included");
    c.config.included_content_types.clear();
    c.config
        .excluded_content_types
        .push(MediaType::parse("image/png").unwrap());
    let (p, _) = bytes_of(c.respond(go("image/png; q=1"), GZ).await).await;
    assert!(
        !p.headers.contains_key("content-encoding"),
        "excluded, any parameters"
    );
}

/// A body of several frames, the first ones short of the minimum.
struct Frames(std::collections::VecDeque<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test]
async fn streams_are_decided_at_the_minimum_and_compressed_whole() {
    let c = compressor(ALL, None);
    let chunks: std::collections::VecDeque<Bytes> =
        (0..10).map(|_| Bytes::from(text(300))).collect();
    let resp = c.respond(response(Frames(chunks).boxed(), &[]), ZS).await;
    let (parts, data) = bytes_of(resp).await;
    assert_eq!(parts.headers["content-encoding"], "zstd");
    assert_eq!(decode("zstd", &data), text(300).repeat(10));
    let short: std::collections::VecDeque<Bytes> = (0..3).map(|_| Bytes::from(text(300))).collect();
    let (parts, data) = bytes_of(c.respond(response(Frames(short).boxed(), &[]), ZS).await).await;
    assert!(!parts.headers.contains_key("content-encoding"));
    assert_eq!(data, text(300).repeat(3));
}
