//! `compress`: gzip, brotli or zstd by `Accept-Encoding`, as Træfik negotiates and
//! decides.
//!
//! ```text
//!  request:  HEAD, an excluded request Content-Type (application/grpc) ─▶ no
//!            Accept-Encoding absent ─▶ defaultEncoding or no;  "" ─▶ no
//!            else the best q (q=0 refuses), ties by `encodings` order (`*` first,
//!            identity last); `*` ─▶ defaultEncoding or encodings[0]; identity ─▶ no
//!  response: Vary: Accept-Encoding ─▶ skip 1xx/204/206/304, Content-Encoding or
//!            Content-Range set, excluded or not included Content-Type, an unreadable
//!            one ─▶ body shorter than minResponseBodyBytes ─▶ as it is
//!            else Content-Encoding set, Content-Length and Accept-Ranges dropped,
//!            the body compressed as it streams
//! ```
//! The compressor flushes whenever the backend's body pauses, so a stream (server-sent
//! events) reaches the client as it is written.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use serde::Serialize;

use crate::config::middlewares::{Compress, MediaType};
use crate::proxy::body::{self, BoxError, ProxyBody};

/// A content coding shoal can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Encoding {
    /// `gzip` (zlib-rs).
    Gzip,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
}

impl Encoding {
    /// By its `Accept-Encoding` token (case-sensitive, as in Træfik).
    pub fn from_name(name: &str) -> Option<Encoding> {
        match name {
            "gzip" => Some(Encoding::Gzip),
            "br" => Some(Encoding::Brotli),
            "zstd" => Some(Encoding::Zstd),
            _ => None,
        }
    }

    /// The token.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
        }
    }
}

/// `compress`, built.
#[derive(Debug)]
pub struct Compressor {
    config: Compress,
}

/// A coding the client asked for, by `Accept-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Offer {
    Wildcard,
    Identity,
    Coding(Encoding),
}

impl Compressor {
    /// Build from the configuration.
    pub fn new(config: &Compress) -> Compressor {
        Compressor {
            config: config.clone(),
        }
    }

    /// The encoding for `req`'s response, if any.
    pub fn negotiate<B>(&self, req: &Request<B>) -> Option<Encoding> {
        if req.method() == Method::HEAD {
            return None;
        }
        let excluded_request = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(MediaType::parse)
            .is_some_and(|t| {
                self.config
                    .excluded_content_types
                    .iter()
                    .any(|e| e.essence == t.essence)
            });
        if excluded_request {
            return None;
        }
        let lines: Vec<&str> = req
            .headers()
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        self.choose(&lines)
    }

    /// The encoding for the `Accept-Encoding` fields `lines`.
    fn choose(&self, lines: &[&str]) -> Option<Encoding> {
        let c = &self.config;
        if lines.is_empty() {
            return c.default_encoding;
        }
        if lines == [""] {
            return None;
        }
        let rank = |o: &Offer| -> i64 {
            match o {
                Offer::Wildcard => -1,
                Offer::Identity => c.encodings.len() as i64,
                Offer::Coding(e) => c
                    .encodings
                    .iter()
                    .position(|x| x == e)
                    .map_or(i64::MAX, |p| p as i64),
            }
        };
        let mut offers: Vec<(Offer, f64)> = Vec::new();
        for line in lines {
            let squeezed = line.replace(' ', "");
            for item in squeezed.split(',') {
                let (name, param) = item.split_once(';').unwrap_or((item, ""));
                let offer = match name {
                    "*" => Offer::Wildcard,
                    "identity" => Offer::Identity,
                    n => match Encoding::from_name(n).filter(|e| c.encodings.contains(e)) {
                        Some(e) => Offer::Coding(e),
                        None => continue,
                    },
                };
                let weight = match param.strip_prefix("q=") {
                    Some(q) => q.parse::<f64>().unwrap_or(0.0),
                    None => 1.0,
                };
                if weight > 0.0 {
                    offers.push((offer, weight));
                }
            }
        }
        offers.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| rank(&a.0).cmp(&rank(&b.0)))
        });
        match offers.first()?.0 {
            Offer::Wildcard => Some(c.default_encoding.unwrap_or(c.encodings[0])),
            Offer::Identity => None,
            Offer::Coding(e) => Some(e),
        }
    }

    /// Whether a response with these parts is to be compressed (its size aside).
    fn wants(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if status.is_informational()
            || matches!(
                status,
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
            )
            || headers
                .get(header::CONTENT_ENCODING)
                .is_some_and(|v| !v.is_empty())
            || headers.contains_key(header::CONTENT_RANGE)
        {
            return false;
        }
        let Some(ct) = headers.get(header::CONTENT_TYPE) else {
            return true;
        };
        let Some(t) = ct.to_str().ok().and_then(MediaType::parse) else {
            return false;
        };
        let c = &self.config;
        (c.included_content_types.is_empty()
            || c.included_content_types.iter().any(|i| i.covers(&t)))
            && !c.excluded_content_types.iter().any(|e| e.covers(&t))
    }

    /// The response, compressed with `encoding` when it should be.
    pub async fn respond(
        &self,
        resp: Response<ProxyBody>,
        encoding: Encoding,
    ) -> Response<ProxyBody> {
        let (mut parts, mut incoming) = resp.into_parts();
        parts
            .headers
            .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        let min = self.config.min_response_body_bytes;
        let short = incoming.size_hint().exact().is_some_and(|n| n < min as u64);
        if !self.wants(parts.status, &parts.headers) || short || incoming.is_end_stream() {
            return Response::from_parts(parts, incoming);
        }
        // Read until there is enough to be worth it, or the body ends.
        let mut head = BytesMut::new();
        while head.len() < min {
            match incoming.frame().await {
                None => return Response::from_parts(parts, body::full(head.freeze())),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => head.extend_from_slice(&data),
                    Err(frame) => {
                        let rest = Resume::new(head.freeze(), frame.into_trailers().ok(), None);
                        return Response::from_parts(parts, rest.boxed());
                    }
                },
                Some(Err(e)) => {
                    let rest = Resume::new(head.freeze(), None, Some(e));
                    return Response::from_parts(parts, rest.boxed());
                }
            }
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::ACCEPT_RANGES);
        parts.headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.name()),
        );
        let body = Compressing {
            encoder: Some(Encoder::new(encoding)),
            head: Some(head.freeze()),
            inner: incoming,
            unflushed: false,
            trailers: None,
        };
        Response::from_parts(parts, body.boxed())
    }
}

/// Bytes already read, then trailers or an error: what is left of a body that ended
/// before compression was worth it.
struct Resume {
    frames: std::collections::VecDeque<Result<Frame<Bytes>, BoxError>>,
}

impl Resume {
    fn new(head: Bytes, trailers: Option<HeaderMap>, error: Option<BoxError>) -> Resume {
        let mut frames = std::collections::VecDeque::new();
        if !head.is_empty() {
            frames.push_back(Ok(Frame::data(head)));
        }
        if let Some(t) = trailers {
            frames.push_back(Ok(Frame::trailers(t)));
        }
        if let Some(e) = error {
            frames.push_back(Err(e));
        }
        Resume { frames }
    }
}

impl Body for Resume {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.get_mut().frames.pop_front())
    }
}

/// One of the three compressors writing into a buffer the body drains.
enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// gzip's level (as klauspost's gzhttp), brotli's quality and window (as
/// andybalholm/brotli's defaults), zstd's level (its default).
const GZIP_LEVEL: u32 = 5;
const BROTLI_QUALITY: u32 = 6;
const BROTLI_WINDOW: u32 = 22;
const ZSTD_LEVEL: i32 = 3;

impl Encoder {
    fn new(encoding: Encoding) -> Encoder {
        match encoding {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(GZIP_LEVEL),
            )),
            Encoding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                BROTLI_QUALITY,
                BROTLI_WINDOW,
            ))),
            Encoding::Zstd => match zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL) {
                Ok(z) => Encoder::Zstd(z),
                // Only out of memory; gzip is always there.
                Err(_) => Encoder::Gzip(flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::new(GZIP_LEVEL),
                )),
            },
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Encoder::Gzip(w) => w,
            Encoder::Brotli(w) => w.as_mut(),
            Encoder::Zstd(w) => w,
        }
    }

    /// The compressed bytes so far.
    fn take(&mut self) -> Vec<u8> {
        let out = match self {
            Encoder::Gzip(w) => w.get_mut(),
            Encoder::Brotli(w) => w.get_mut(),
            Encoder::Zstd(w) => w.get_mut(),
        };
        std::mem::take(out)
    }

    /// End the stream; the last bytes.
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(w) => w.finish(),
            Encoder::Brotli(w) => Ok(w.into_inner()),
            Encoder::Zstd(w) => w.finish(),
        }
    }
}

/// A body compressed as it streams.
struct Compressing {
    encoder: Option<Encoder>,
    /// Read while deciding; compressed first.
    head: Option<Bytes>,
    inner: ProxyBody,
    /// Written since the last flush.
    unflushed: bool,
    trailers: Option<HeaderMap>,
}

fn data(out: Vec<u8>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
}

impl Body for Compressing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            let input = match this.head.take() {
                Some(head) => Some(head),
                None => match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(d) => Some(d),
                        Err(frame) => {
                            this.trailers = frame.into_trailers().ok();
                            None
                        }
                    },
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => None,
                    Poll::Pending => {
                        if !this.unflushed {
                            return Poll::Pending;
                        }
                        this.unflushed = false;
                        if let Err(e) = encoder.writer().flush() {
                            return Poll::Ready(Some(Err(e.into())));
                        }
                        let out = encoder.take();
                        return if out.is_empty() {
                            Poll::Pending
                        } else {
                            data(out)
                        };
                    }
                },
            };
            match input {
                Some(bytes) => {
                    if let Err(e) = encoder.writer().write_all(&bytes) {
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    this.unflushed = true;
                    let out = encoder.take();
                    if !out.is_empty() {
                        return data(out);
                    }
                }
                None => {
                    let Some(encoder) = this.encoder.take() else {
                        continue;
                    };
                    match encoder.finish() {
                        Ok(out) if !out.is_empty() => return data(out),
                        Ok(_) => {}
                        Err(e) => return Poll::Ready(Some(Err(e.into()))),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests;
