//! The proxy's own HTTP/1.1 client connection to a backend, driven inside the request's
//! task: no connection task, no channel between them.
//!
//! ```text
//!  send: head (+ a small whole body) ─one write─▶ backend      (a larger or streamed body
//!        follows in frames, chunked when its length is unknown)
//!  read: 1xx skipped ─▶ head (httparse) ─▶ framing: none │ Content-Length │ chunked │ until close
//!  body: frames from the read buffer ─ end ─▶ the connection goes back to its pool
//!        (kept alive unless HTTP/1.0, `Connection: close` or read-until-close)
//! ```
//! Framing follows RFC 9112 §6.3: responses to HEAD and 1xx/204/304 have no body;
//! Transfer-Encoding wins over Content-Length; differing Content-Length values are an
//! error, as is anything malformed. Chunk extensions and trailers are read and dropped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::body::{BoxError, ProxyBody};

/// Largest response head read.
const MAX_HEAD: usize = 64 * 1024;
/// Most response headers.
const MAX_HEADERS: usize = 128;
/// Largest chunk-size line (with extensions) or trailer line.
const MAX_LINE: usize = 4096;
/// A request body up to this size goes out in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;
/// Read size.
const READ: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// Reading or writing the socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The backend closed the connection before a byte of the response.
    #[error("connection closed before the response")]
    Closed,
    /// The response broke HTTP/1.1.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    /// The request body failed.
    #[error("request body: {0}")]
    Body(BoxError),
}

impl H1Error {
    /// Nothing of a response arrived: on a reused connection the backend had closed it.
    pub fn before_response(&self) -> bool {
        match self {
            H1Error::Closed => true,
            H1Error::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            _ => false,
        }
    }
}

/// An idle or busy connection to one backend, holding its connection slot.
pub struct H1Conn {
    io: TcpStream,
    buf: BytesMut,
    out: Vec<u8>,
    _slot: OwnedSemaphorePermit,
}

/// Where an [`H1Body`] puts its connection back when the body has ended.
pub trait Home: Send + Sync + 'static {
    /// Take back a connection whose last response is complete.
    fn put(&self, conn: H1Conn);
}

impl H1Conn {
    /// A fresh connection.
    pub fn new(io: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        H1Conn {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
            _slot: slot,
        }
    }

    /// Whether the backend closed the idle connection or sent something unasked. Costs
    /// a syscall only when the socket has been reported readable.
    pub fn is_stale(&self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        !matches!(self.io.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Send a request (`head`: method, target, headers) and read the response head;
    /// the body streams from the connection, which goes `home` when it ends.
    pub async fn send(
        mut self,
        head: (&Method, &Uri, &HeaderMap),
        mut body: ProxyBody,
        home: Arc<dyn Home>,
    ) -> Result<Response<H1Body>, H1Error> {
        let (method, uri, headers) = head;
        self.out.clear();
        encode_head(method, uri, headers, &body, &mut self.out);
        let chunked = body.size_hint().exact().is_none();
        // The head and a small whole body go out in one write.
        let mut pending = None;
        let mut finished = body.is_end_stream();
        if !finished {
            pending = next_frame(&mut body).await?;
            finished = pending.is_none();
            let small = pending
                .as_ref()
                .and_then(|f| f.data_ref())
                .filter(|d| d.len() <= INLINE_BODY && body.is_end_stream());
            if let Some(data) = small {
                encode_data(data, chunked, &mut self.out);
                pending = None;
                finished = true;
            }
        }
        if finished && chunked {
            self.out.extend_from_slice(b"0\r\n\r\n");
        }
        self.io.write_all(&self.out).await?;
        if !finished {
            self.stream_body(pending, body, chunked).await?;
        }
        let head = self.read_head().await?;
        let framing = framing(method, head.status(), head.headers())?;
        let keep_alive = framing != Framing::UntilClose && keeps_alive(&head);
        let (head, ()) = head.into_parts();
        let mut body = H1Body {
            conn: Some(self),
            framing,
            keep_alive,
            home: Some(home),
        };
        body.settle();
        Ok(Response::from_parts(head, body))
    }

    async fn stream_body(
        &mut self,
        mut frame: Option<Frame<Bytes>>,
        mut body: ProxyBody,
        chunked: bool,
    ) -> Result<(), H1Error> {
        loop {
            if let Some(f) = frame.take() {
                if let Some(data) = f.data_ref() {
                    self.out.clear();
                    encode_data(data, chunked, &mut self.out);
                    self.io.write_all(&self.out).await?;
                }
            }
            if body.is_end_stream() {
                break;
            }
            match next_frame(&mut body).await? {
                Some(f) => frame = Some(f),
                None => break,
            }
        }
        if chunked {
            self.io.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }

    /// Reads until a final (non-1xx) response head.
    async fn read_head(&mut self) -> Result<Response<()>, H1Error> {
        let mut any = false;
        loop {
            if !self.buf.is_empty() {
                any = true;
                if let Some(head) = parse_head(&mut self.buf)? {
                    if head.status().is_informational() {
                        if head.status() == StatusCode::SWITCHING_PROTOCOLS {
                            return Err(H1Error::Malformed("unrequested protocol switch"));
                        }
                        continue;
                    }
                    return Ok(head);
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(H1Error::Malformed("response head too large"));
                }
            }
            if self.fill().await? == 0 {
                return Err(if any {
                    H1Error::Malformed("connection closed within the response head")
                } else {
                    H1Error::Closed
                });
            }
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Read once into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ);
        let spare = self.buf.spare_capacity_mut();
        let mut rb = ReadBuf::uninit(spare);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        Poll::Ready(Ok(n))
    }
}

async fn next_frame(body: &mut ProxyBody) -> Result<Option<Frame<Bytes>>, H1Error> {
    body.frame().await.transpose().map_err(H1Error::Body)
}

/// `METHOD target HTTP/1.1`, the headers (framing ones replaced by the body's), CRLF.
fn encode_head(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &ProxyBody,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        uri.path_and_query()
            .map_or("/", |pq| pq.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match body.size_hint().exact() {
        Some(0) if body_less(method) && !headers.contains_key(header::CONTENT_LENGTH) => {}
        Some(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Methods whose requests usually carry no body (and so no `Content-Length: 0`).
fn body_less(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

fn encode_data(data: &Bytes, chunked: bool, out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    if chunked {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

/// A response head from the front of `buf` (consumed), or `None` if incomplete. Header
/// values share the head's bytes rather than being copied.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Response<()>>, H1Error> {
    // Most heads are short: a small table first, the full one only when it overflows.
    let parsed = match parse_raw(buf, &mut [httparse::EMPTY_HEADER; 24]) {
        Err(H1Error::Malformed(TOO_MANY)) => {
            parse_raw(buf, &mut [httparse::EMPTY_HEADER; MAX_HEADERS])?
        }
        other => other?,
    };
    let Some(Raw {
        len,
        status,
        version,
        fields,
    }) = parsed
    else {
        return Ok(None);
    };
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, range) in fields {
        let value = HeaderValue::from_maybe_shared(head.slice(range))
            .map_err(|_| H1Error::Malformed("bad header value"))?;
        headers.append(name, value);
    }
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    *resp.version_mut() = version;
    *resp.headers_mut() = headers;
    Ok(Some(resp))
}

const TOO_MANY: &str = "too many headers";

/// A parsed head: its length, status, version, and header names with the byte ranges
/// of their values.
struct Raw {
    len: usize,
    status: StatusCode,
    version: Version,
    fields: Vec<(HeaderName, std::ops::Range<usize>)>,
}

fn parse_raw<'b>(
    bytes: &'b [u8],
    slots: &mut [httparse::Header<'b>],
) -> Result<Option<Raw>, H1Error> {
    let mut parsed = httparse::Response::new(slots);
    let len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(H1Error::Malformed(TOO_MANY)),
        Err(_) => return Err(H1Error::Malformed("bad response head")),
    };
    let status = parsed
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(H1Error::Malformed("bad status code"))?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let start = bytes.as_ptr() as usize;
    let mut fields = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| H1Error::Malformed("bad header name"))?;
        let from = h.value.as_ptr() as usize - start;
        fields.push((name, from..from + h.value.len()));
    }
    Ok(Some(Raw {
        len,
        status,
        version,
        fields,
    }))
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked, in the given state.
    Chunked(Chunk),
    /// Until the backend closes the connection.
    UntilClose,
    /// Ended.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many data bytes of the chunk are left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

fn framing(method: &Method, status: StatusCode, headers: &HeaderMap) -> Result<Framing, H1Error> {
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

fn keeps_alive<T>(head: &Response<T>) -> bool {
    if head.version() != Version::HTTP_11 {
        return false;
    }
    !head
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("close"))
}

/// A response body read from its connection; the connection goes home at the end.
pub struct H1Body {
    conn: Option<H1Conn>,
    framing: Framing,
    keep_alive: bool,
    home: Option<Arc<dyn Home>>,
}

impl H1Body {
    /// Sends the connection home once the body is over and the connection reusable.
    fn settle(&mut self) {
        if self.framing == Framing::Length(0) {
            self.framing = Framing::Done;
        }
        if self.framing != Framing::Done {
            return;
        }
        let (Some(conn), Some(home)) = (self.conn.take(), self.home.take()) else {
            return;
        };
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
fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
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
            Poll::Pending => Poll::Pending,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Response<()> {
        let mut buf = BytesMut::from(text);
        parse_head(&mut buf).unwrap().unwrap()
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let get = Method::GET;
        let f = |m: &Method, text: &str| {
            let h = head(text);
            framing(m, h.status(), h.headers())
        };
        assert_eq!(
            f(&get, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").unwrap(),
            Framing::Length(5)
        );
        assert_eq!(
            f(
                &Method::HEAD,
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
            )
            .unwrap(),
            Framing::Length(0)
        );
        assert_eq!(
            f(
                &get,
                "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n"
            )
            .unwrap(),
            Framing::Length(0)
        );
        assert_eq!(
            f(
                &get,
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 5\r\n\r\n"
            )
            .unwrap(),
            Framing::Chunked(Chunk::Size)
        );
        assert_eq!(
            f(&get, "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n").unwrap(),
            Framing::UntilClose
        );
        assert_eq!(
            f(&get, "HTTP/1.1 200 OK\r\n\r\n").unwrap(),
            Framing::UntilClose
        );
        assert_eq!(
            f(&get, "HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n").unwrap(),
            Framing::Length(5)
        );
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
        ] {
            assert!(f(&get, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn heads_parse_incrementally_and_refuse_garbage() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\ncontent-le");
        assert!(parse_head(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"ngth: 2\r\n\r\nhi");
        let h = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!(h.headers()["content-length"], "2");
        assert_eq!(&buf[..], b"hi", "the body stays in the buffer");
        for bad in [
            "HTTP/1.1 2000 OK\r\n\r\n",
            "garbage\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
        ] {
            assert!(parse_head(&mut BytesMut::from(bad)).is_err(), "{bad}");
        }
        let many = |n: usize| {
            let fields: String = (0..n).map(|i| format!("x-h{i}: v{i}\r\n")).collect();
            BytesMut::from(format!("HTTP/1.1 200 OK\r\n{fields}\r\n").as_str())
        };
        let h = parse_head(&mut many(40)).unwrap().unwrap();
        assert_eq!(h.headers().len(), 40);
        assert_eq!(h.headers()["x-h39"], "v39");
        assert!(parse_head(&mut many(MAX_HEADERS + 1)).is_err());
        assert!(!keeps_alive(&head(
            "HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\n\r\n"
        )));
        assert!(!keeps_alive(&head("HTTP/1.0 200 OK\r\n\r\n")));
        assert!(keeps_alive(&head("HTTP/1.1 200 OK\r\n\r\n")));
    }

    #[test]
    fn chunk_sizes_are_hex_with_optional_extensions() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"0;name=value").unwrap(), 0);
        for bad in [&b""[..], b"g", b"-1", b"1ffffffffffffffff"] {
            assert!(chunk_size(bad).is_err());
        }
    }

    #[test]
    fn request_heads_carry_the_bodys_framing_only() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("a"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        let uri: http::Uri = "/p?q=1".parse().unwrap();
        let mut out = Vec::new();
        encode_head(
            &Method::POST,
            &uri,
            &headers,
            &super::super::body::full("abc"),
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "POST /p?q=1 HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_head(
            &Method::GET,
            &uri,
            &HeaderMap::new(),
            &super::super::body::empty(),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /p?q=1 HTTP/1.1\r\n\r\n"
        );
    }
}
