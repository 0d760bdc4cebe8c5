//! Response bodies read from an [`H1Conn`]: the framing chosen from the head
//! (RFC 9112 §6.3), then frames from the read buffer, chunked decoding included; the
//! connection goes back to its pool when the body ends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode, Version};
use hyper::body::{Body, Frame, SizeHint};

use super::{H1Conn, H1Error, Home, MAX_LINE};
use crate::proxy::body::BoxError;
use crate::proxy::wire;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked, in the given state.
    Chunked(Chunk),
    /// Until the backend closes the connection.
    UntilClose,
    /// Ended.
    Done,
}

/// Where chunked decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many data bytes of the chunk are left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// How the body of a response to `method` with this head is delimited.
pub(super) fn framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<Framing, H1Error> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Length(0));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // An unreadable value counts as an unknown coding: read until close.
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .map(|v| v.to_str().unwrap_or("?"))
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|c| !c.is_empty());
        return Ok(match last {
            Some(c) if c.eq_ignore_ascii_case("chunked") => Framing::Chunked(Chunk::Size),
            _ => Framing::UntilClose,
        });
    }
    let mut length: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value
            .to_str()
            .map_err(|_| H1Error::Malformed("bad content-length"))?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(H1Error::Malformed("bad content-length"));
            }
            let n: u64 = part
                .parse()
                .map_err(|_| H1Error::Malformed("bad content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(H1Error::Malformed("conflicting content-length"));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// Whether the connection may carry another request after this response.
pub(super) fn keeps_alive<T>(head: &Response<T>) -> bool {
    head.version() == Version::HTTP_11 && !wire::connection_has(head.headers(), "close")
}

/// A response body read from its connection; the connection goes home at the end.
pub struct H1Body {
    conn: Option<H1Conn>,
    framing: Framing,
    keep_alive: bool,
    home: Option<Arc<dyn Home>>,
    /// Whether the body had to wait for the backend (a long poll, a slow backend).
    waited: bool,
}

impl H1Body {
    /// The body of a response just read from `conn`.
    pub(super) fn new(
        conn: H1Conn,
        framing: Framing,
        keep_alive: bool,
        home: Arc<dyn Home>,
    ) -> Self {
        let mut body = H1Body {
            conn: Some(conn),
            framing,
            keep_alive,
            home: Some(home),
            waited: false,
        };
        body.settle();
        body
    }

    /// Sends the connection home once the body is over and the connection reusable.
    fn settle(&mut self) {
        if self.framing == Framing::Length(0) {
            self.framing = Framing::Done;
        }
        if self.framing != Framing::Done {
            return;
        }
        let (Some(mut conn), Some(home)) = (self.conn.take(), self.home.take()) else {
            return;
        };
        if self.waited {
            // Its idle age starts now rather than at the request, or a long poll
            // would retire a connection that has just been busy.
            conn.used = tokio::time::Instant::now();
        }
        if self.keep_alive && conn.buf.is_empty() {
            home.put(conn);
        }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, H1Error>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(0) => {
                    self.framing = Framing::Done;
                }
                Framing::Length(left) => {
                    if conn.buf.is_empty() && ready!(conn.poll_fill(cx))? == 0 {
                        return Poll::Ready(Some(Err(H1Error::Malformed(
                            "connection closed within the body",
                        ))));
                    }
                    let n = (conn.buf.len() as u64).min(left) as usize;
                    self.framing = Framing::Length(left - n as u64);
                    return Poll::Ready(Some(Ok(conn.buf.split_to(n).freeze())));
                }
                Framing::UntilClose => {
                    if conn.buf.is_empty() && ready!(conn.poll_fill(cx))? == 0 {
                        self.framing = Framing::Done;
                        continue;
                    }
                    let n = conn.buf.len();
                    return Poll::Ready(Some(Ok(conn.buf.split_to(n).freeze())));
                }
                Framing::Chunked(state) => match ready!(Self::poll_chunk(conn, state, cx))? {
                    (next, Some(data)) => {
                        self.framing = next;
                        return Poll::Ready(Some(Ok(data)));
                    }
                    (next, None) => self.framing = next,
                },
            }
        }
    }

    /// One step of chunked decoding: the next state and any data.
    fn poll_chunk(
        conn: &mut H1Conn,
        state: Chunk,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Framing, Option<Bytes>), H1Error>> {
        let closed = H1Error::Malformed("connection closed within a chunked body");
        match state {
            Chunk::Data(left) => {
                if conn.buf.is_empty() && ready!(conn.poll_fill(cx))? == 0 {
                    return Poll::Ready(Err(closed));
                }
                let n = (conn.buf.len() as u64).min(left) as usize;
                let data = conn.buf.split_to(n).freeze();
                let next = match left - n as u64 {
                    0 => Chunk::DataEnd,
                    rest => Chunk::Data(rest),
                };
                Poll::Ready(Ok((Framing::Chunked(next), Some(data))))
            }
            Chunk::Size | Chunk::DataEnd | Chunk::Trailers => {
                let Some(end) = conn.buf.windows(2).position(|w| w == b"\r\n") else {
                    if conn.buf.len() > MAX_LINE {
                        return Poll::Ready(Err(H1Error::Malformed("chunk line too long")));
                    }
                    if ready!(conn.poll_fill(cx))? == 0 {
                        return Poll::Ready(Err(closed));
                    }
                    return Poll::Ready(Ok((Framing::Chunked(state), None)));
                };
                let line = conn.buf.split_to(end + 2);
                let line = &line[..end];
                let next = match state {
                    Chunk::DataEnd if line.is_empty() => Framing::Chunked(Chunk::Size),
                    Chunk::DataEnd => {
                        return Poll::Ready(Err(H1Error::Malformed("chunk too long")))
                    }
                    Chunk::Trailers if line.is_empty() => Framing::Done,
                    Chunk::Trailers => Framing::Chunked(Chunk::Trailers),
                    _ => match chunk_size(line)? {
                        0 => Framing::Chunked(Chunk::Trailers),
                        n => Framing::Chunked(Chunk::Data(n)),
                    },
                };
                Poll::Ready(Ok((next, None)))
            }
        }
    }
}

/// The size in a chunk-size line (extensions after `;` ignored).
pub(super) fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let bad = H1Error::Malformed("bad chunk size");
    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits).map_err(|_| H1Error::Malformed("bad chunk size"))?;
    let digits = digits.trim_matches(|c| c == ' ' || c == '\t');
    if digits.is_empty() || digits.len() > 15 {
        return Err(bad);
    }
    u64::from_str_radix(digits, 16).map_err(|_| bad)
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = this.poll_data(cx);
        match polled {
            Poll::Ready(Some(Ok(data))) => {
                this.settle();
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => {
                this.conn = None;
                this.framing = Framing::Done;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.settle();
                Poll::Ready(None)
            }
            Poll::Pending => {
                this.waited = true;
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
