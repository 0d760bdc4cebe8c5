//! A fast path for HTTP/1.1 connections, plain or TLS: the common request — complete in the
//! bytes already read, framed by at most one `Content-Length`, nothing to negotiate — is
//! parsed and answered in the connection's own task. Anything else hands the connection,
//! with the bytes read so far, to hyper for the rest of its life.
//!
//! ```text
//!  read ─▶ head complete, HTTP/1.1, no Transfer-Encoding / Connection / Upgrade / Expect,
//!          one Content-Length (body already here), within the header limit?
//!     yes ─▶ handle ─▶ status line + headers (+ body) in one write ─▶ next request
//!     no  ─▶ hyper serves the connection from those bytes on (its limits, 400/408/431,
//!            upgrades, h2c, chunked bodies)
//! ```
//! What the fast path refuses is what hyper refuses: it takes only requests whose
//! reading is not in doubt and leaves every judgement to hyper, so a request is read
//! the same whether it is the first on its connection or comes after a hand-over
//! (`tests/differential` checks this over a corpus of hostile requests). Content-Length
//! with Transfer-Encoding, for one, is hyper's: it frames by the chunks, drops the
//! length and closes the connection after the response (RFC 9112 §6.1).
//! An idle connection is closed after the header read timeout, like HAProxy's
//! `timeout http-keep-alive` defaulting to `timeout http-request`; its timer is re-armed
//! only when it fires, not per request. A head begun and not finished by then (or none
//! at all on a new connection) gets 408 first, as HAProxy's; a head that is still
//! arriving is read here, not by hyper (whose header timeout closes without a word).

use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use http::header::{self, HeaderName};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;

use super::body::{self, ProxyBody};
use super::io::Rewind;
use super::wire::{self, put_data, put_field, LAST_CHUNK};
use super::{noting_wait, ConnInfo, Proxy};

/// Read size.
const READ: usize = 8 * 1024;
/// Most request headers on the fast path (more go to hyper).
const MAX_FIELDS: usize = 48;
/// Response bytes gathered before a write.
const GATHER: usize = 64 * 1024;

/// Request headers that need hyper's handling.
const SLOW: [HeaderName; 5] = [
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    header::EXPECT,
    header::TE,
];

/// How a fast-path connection ended.
pub(super) enum Handoff<IO> {
    /// Closed (by the client, an error or the idle timeout).
    Closed,
    /// hyper takes over from these bytes.
    Hyper(Rewind<IO>),
}

impl Proxy {
    /// Serves `io` on the fast path until it closes or needs hyper; `early` are bytes
    /// already read from it (after a PROXY header).
    pub(super) async fn serve_fast<IO>(
        self: &Arc<Self>,
        mut io: IO,
        info: &ConnInfo,
        early: bytes::Bytes,
        activity: &super::conns::Activity,
    ) -> Handoff<IO>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let idle = self.options.header_read_timeout;
        let limit = self.options.max_header_bytes;
        let mut buf = BytesMut::with_capacity(READ.max(early.len()));
        buf.extend_from_slice(&early);
        let mut out = Vec::with_capacity(1024);
        let mut timer = Box::pin(tokio::time::sleep(idle));
        // When the connection last became idle.
        let mut last = Instant::now();
        let mut answered = false;
        let mut partial = false;
        // Told when descriptors run short and this connection is among the idlest.
        let shed = activity.changed();
        tokio::pin!(shed);
        loop {
            if buf.is_empty() || partial {
                if activity.is_shed() {
                    return Handoff::Closed;
                }
                let wait = Wait {
                    io: &mut io,
                    buf: &mut buf,
                    timer: timer.as_mut(),
                    deadline: last + idle,
                    shed: shed.as_mut(),
                };
                match wait.await {
                    Ok(n) if n > 0 => {}
                    Err(e)
                        if e.kind() == io::ErrorKind::TimedOut
                            && (partial || !answered)
                            && !activity.is_shed() =>
                    {
                        // A head begun and not finished, or none on a new connection:
                        // 408, as HAProxy's `timeout http-request` (an idle keep-alive
                        // connection is closed silently).
                        let resp = request_timeout();
                        let write = write_response(&mut io, &mut out, resp, false);
                        if let Ok(Ok(_)) = tokio::time::timeout(idle, write).await {
                            let _ = tokio::time::timeout(idle, io.shutdown()).await;
                        }
                        return Handoff::Closed;
                    }
                    _ => return Handoff::Closed,
                }
            }
            let Some(req) = parse_request(&mut buf, limit) else {
                partial = head_incomplete(&buf, limit);
                if partial {
                    continue;
                }
                return Handoff::Hyper(Rewind::new(buf.freeze(), io));
            };
            partial = false;
            answered = true;
            let head = req.method() == Method::HEAD;
            let (resp, ready) = self.handle(req, info, Instant::now()).await;
            match write_response(&mut io, &mut out, resp, head).await {
                // Written at once: idle since the response was ready (no clock read);
                // otherwise since the write ended.
                Ok(Written::Whole) => last = ready,
                Ok(Written::Streamed) => last = Instant::now(),
                Ok(Written::Close) => {
                    // The close is announced (a FIN; over TLS, close_notify first).
                    let _ = tokio::time::timeout(idle, io.shutdown()).await;
                    return Handoff::Closed;
                }
                Err(_) => return Handoff::Closed,
            }
        }
    }
}

/// One read into the buffer, or `Err` once the connection has been idle past its
/// deadline.
struct Wait<'a, 's, IO> {
    io: &'a mut IO,
    buf: &'a mut BytesMut,
    timer: Pin<&'a mut Sleep>,
    deadline: Instant,
    shed: Pin<&'a mut tokio::sync::futures::Notified<'s>>,
}

impl<IO: AsyncRead + Unpin> Future for Wait<'_, '_, IO> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.buf.reserve(READ);
        if let Poll::Ready(r) = poll_read_buf(Pin::new(&mut *this.io), cx, this.buf) {
            return Poll::Ready(r);
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= this.deadline {
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
            this.timer.as_mut().reset(this.deadline);
        }
        if this.shed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        Poll::Pending
    }
}

/// Whether `buf` holds the start of a request head that is not complete yet and may
/// still fit the limit: the fast path keeps reading it (under the header timeout)
/// rather than handing a half-read head to hyper, which would close without a 408.
fn head_incomplete(buf: &[u8], limit: usize) -> bool {
    let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS];
    buf.len() < limit
        && matches!(
            httparse::Request::new(&mut slots).parse(buf),
            Ok(httparse::Status::Partial)
        )
}

/// The proxy's answer to a head that did not arrive in time; the connection closes.
fn request_timeout() -> Response<ProxyBody> {
    let mut resp = super::forward::local(StatusCode::REQUEST_TIMEOUT, "request timeout");
    resp.headers_mut()
        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    resp
}

/// The request at the front of `buf` when the fast path can take it (consumed with its
/// body); `None` leaves `buf` as it was.
fn parse_request(buf: &mut BytesMut, limit: usize) -> Option<Request<ProxyBody>> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut slots);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= limit => len,
        _ => return None,
    };
    if parsed.version != Some(1) {
        return None;
    }
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    if method == Method::CONNECT {
        return None;
    }
    let range = |part: &[u8]| wire::range_in(buf, part);
    let path = range(parsed.path?.as_bytes());
    let mut fields: Vec<(HeaderName, Range<usize>)> = Vec::with_capacity(parsed.headers.len());
    let mut length: Option<usize> = None;
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if SLOW.contains(&name) {
            return None;
        }
        if name == header::CONTENT_LENGTH {
            if length.is_some() || h.value.is_empty() || h.value.len() > 15 {
                return None;
            }
            if !h.value.iter().all(u8::is_ascii_digit) {
                return None;
            }
            length = std::str::from_utf8(h.value).ok()?.parse().ok();
        }
        fields.push((name, range(h.value)));
    }
    let body_len = length.unwrap_or(0);
    if buf.len() - len < body_len {
        return None;
    }
    let taken = buf.split_to(len + body_len).freeze();
    let build = || -> Option<Request<ProxyBody>> {
        let uri = Uri::from_maybe_shared(taken.slice(path.clone())).ok()?;
        // Room for the X-Forwarded-* the proxy adds.
        let headers = wire::shared_headers(&taken, &fields, 6)?;
        let body = match body_len {
            0 => body::empty(),
            _ => body::full(taken.slice(len..len + body_len)),
        };
        let mut req = Request::new(body);
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        Some(req)
    };
    let req = build();
    if req.is_none() {
        // Put the bytes back for hyper.
        let mut whole = BytesMut::from(&taken[..]);
        whole.extend_from_slice(buf);
        *buf = whole;
    }
    req
}

/// How a response went out.
enum Written {
    /// At once, waiting neither for the body nor for the client; the connection may
    /// carry another request.
    Whole,
    /// After waiting for the body or for the client to take it; the connection may
    /// carry another request.
    Streamed,
    /// The connection must close.
    Close,
}

/// Writes `resp`.
async fn write_response<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    out: &mut Vec<u8>,
    resp: Response<ProxyBody>,
    head: bool,
) -> io::Result<Written> {
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // One pass writes the fields and notes those that decide what else is written.
    let (mut close, mut dated, mut length) = (false, false, false);
    for (name, value) in &parts.headers {
        if name == header::CONNECTION {
            close |= wire::lists(value, "close");
        } else if name == header::DATE {
            dated = true;
        } else if name == header::CONTENT_LENGTH {
            length = true;
        }
        put_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !dated {
        put_field(out, b"date", &date());
    }
    let no_body = head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framed = length || status.is_informational() || status == StatusCode::NO_CONTENT;
    let mut chunked = false;
    if !framed {
        match body.size_hint().exact() {
            Some(n) => wire::put_length(out, n),
            None if no_body => {}
            None => {
                put_field(out, b"transfer-encoding", b"chunked");
                chunked = true;
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    let done = |streamed: bool| match (close, streamed) {
        (true, _) => Written::Close,
        (false, false) => Written::Whole,
        (false, true) => Written::Streamed,
    };
    let mut streamed = false;
    if no_body {
        streamed |= send(io, out).await?;
        return Ok(done(streamed));
    }
    // Frames that are ready go out with the head; a write happens only when the body
    // has to wait or enough has gathered.
    loop {
        if body.is_end_stream() {
            break;
        }
        let frame = match futures::poll!(body.frame()) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                send(io, out).await?;
                out.clear();
                streamed = true;
                body.frame().await
            }
        };
        match frame {
            None => break,
            Some(Err(e)) => {
                // The body failed after the head: the client learns by the connection
                // ending early.
                send(io, out).await?;
                tracing::debug!(error = %e, "response body failed");
                return Ok(Written::Close);
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                put_data(out, &data, chunked);
                if out.len() >= GATHER {
                    send(io, out).await?;
                    out.clear();
                    streamed = true;
                }
            }
        }
    }
    if chunked {
        out.extend_from_slice(LAST_CHUNK);
    }
    streamed |= send(io, out).await?;
    Ok(done(streamed))
}

/// Writes `out` and flushes it (a TLS stream may hold written bytes back until then);
/// whether that had to wait for the client.
async fn send<IO: AsyncWrite + Unpin>(io: &mut IO, out: &[u8]) -> io::Result<bool> {
    let write = async {
        io.write_all(out).await?;
        io.flush().await
    };
    let (written, waited) = noting_wait(write).await;
    written.map(|()| waited)
}

/// The `Date` value, formatted once a second per thread.
fn date() -> [u8; 29] {
    thread_local! {
        static CACHE: std::cell::Cell<(u64, [u8; 29])> = const { std::cell::Cell::new((0, [0; 29])) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    CACHE.with(|c| {
        let (at, text) = c.get();
        if at == secs && text[0] != 0 {
            return text;
        }
        let mut fresh = [0u8; 29];
        let formatted = httpdate::fmt_http_date(now);
        fresh.copy_from_slice(&formatted.as_bytes()[..29]);
        c.set((secs, fresh));
        fresh
    })
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<Request<ProxyBody>>, BytesMut) {
        let mut buf = BytesMut::from(text);
        let req = parse_request(&mut buf, 8192);
        (req, buf)
    }

    #[test]
    fn plain_requests_take_the_fast_path_with_their_bodies() {
        let (req, rest) =
            parse("POST /a?b=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcGET");
        let req = req.unwrap();
        assert_eq!(
            (req.method(), req.uri().to_string()),
            (&Method::POST, "/a?b=1".into())
        );
        assert_eq!(req.headers()["host"], "x");
        assert_eq!(req.body().size_hint().exact(), Some(3));
        assert_eq!(&rest[..], b"GET", "the next request stays");
    }

    #[test]
    fn anything_unusual_goes_to_hyper_untouched() {
        for text in [
            "GET / HTTP/1.1\r\nhost: x\r\n",
            "GET / HTTP/1.0\r\nhost: x\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\ncontent-length: +3\r\n\r\nabc",
            "POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nabc",
            "GET / HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            "POST / HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            let (req, rest) = parse(text);
            assert!(req.is_none(), "{text:?}");
            assert_eq!(&rest[..], text.as_bytes(), "bytes kept for hyper");
        }
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
        assert!(parse(&long).0.is_none(), "over the header limit");
    }

    #[test]
    fn dates_are_imf_fixdate() {
        let d = date();
        let text = std::str::from_utf8(&d).unwrap();
        assert!(
            text.ends_with(" GMT") && httpdate::parse_http_date(text).is_ok(),
            "{text}"
        );
    }
}
