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
//! Transfer-Encoding wins over Content-Length (which is then not forwarded); differing Content-Length values are an
//! error, as is anything malformed (see `decode`). Chunk extensions and trailers are read
//! and dropped.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;

use super::body::{BoxError, ProxyBody};
use super::wire::{self, put_data, put_field, LAST_CHUNK};

mod body;
mod decode;
#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;

use body::keeps_alive;
pub use body::H1Body;
use decode::{framing, Framing};

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
    /// No response head before the attempt's deadline.
    #[error("no response before the deadline")]
    TimedOut,
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
    /// The attempts' deadlines. Registered with the runtime's timer once and then only
    /// moved later (an atomic update), which costs far less than a timer per attempt.
    timer: Option<Pin<Box<Sleep>>>,
    /// When the last request on it started (for its idle age).
    pub(super) used: Instant,
    _slot: OwnedSemaphorePermit,
}

/// What a request's head is made of.
#[derive(Clone, Copy)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The target (its path and query are sent).
    pub uri: &'a Uri,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// Fields the proxy sets, written after the headers in place of any of the same
    /// name there.
    pub set: &'a [(HeaderName, HeaderValue)],
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
            timer: None,
            used: Instant::now(),
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

    /// Send a request and read the response head,
    /// by `deadline` if there is one; the body streams from the connection, which goes
    /// `home` when it ends. `started` is when the request's attempt began.
    pub async fn send(
        mut self,
        head: RequestHead<'_>,
        body: ProxyBody,
        home: Arc<dyn Home>,
        started: Instant,
        deadline: Option<Instant>,
    ) -> Result<Response<H1Body>, H1Error> {
        self.used = started;
        let method = head.method;
        let mut timer = self.timer.take();
        let head = match deadline {
            None => self.exchange(head, body).await?,
            Some(at) => {
                let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                timer.as_mut().reset(at);
                Within {
                    work: std::pin::pin!(self.exchange(head, body)),
                    timer: timer.as_mut(),
                }
                .await?
            }
        };
        self.timer = timer;
        let framing = framing(method, head.status(), head.headers())?;
        let keep_alive = framing != Framing::UntilClose && keeps_alive(&head);
        let (mut head, ()) = head.into_parts();
        if head.headers.contains_key(header::TRANSFER_ENCODING) {
            // RFC 9112 §6.3: the coding frames the body and a proxy removes the length
            // before forwarding; the body goes on re-framed (chunked, or until close),
            // so a keep-alive client never reads part of it as the next response.
            head.headers.remove(header::CONTENT_LENGTH);
        }
        Ok(Response::from_parts(
            head,
            H1Body::new(self, framing, keep_alive, home),
        ))
    }

    /// Writes the request and reads the response head.
    async fn exchange(
        &mut self,
        head: RequestHead<'_>,
        mut body: ProxyBody,
    ) -> Result<Response<()>, H1Error> {
        self.out.clear();
        encode_head(head, &body, &mut self.out);
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
                put_data(&mut self.out, data, chunked);
                pending = None;
                finished = true;
            }
        }
        if finished && chunked {
            self.out.extend_from_slice(LAST_CHUNK);
        }
        self.io.write_all(&self.out).await?;
        if !finished {
            self.stream_body(pending, body, chunked).await?;
        }
        self.read_head().await
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
                    put_data(&mut self.out, data, chunked);
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
            self.io.write_all(LAST_CHUNK).await?;
        }
        Ok(())
    }

    /// Reads until a final (non-1xx) response head.
    async fn read_head(&mut self) -> Result<Response<()>, H1Error> {
        let mut any = false;
        loop {
            if !self.buf.is_empty() {
                any = true;
                if let Some(head) = final_head(&mut self.buf)? {
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
        poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

/// A piece of work, or [`H1Error::TimedOut`] once the timer fires first.
struct Within<'a, F> {
    work: Pin<&'a mut F>,
    timer: Pin<&'a mut Sleep>,
}

impl<T, F: Future<Output = Result<T, H1Error>>> Future for Within<'_, F> {
    type Output = Result<T, H1Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(done) = self.work.as_mut().poll(cx) {
            return Poll::Ready(done);
        }
        ready!(self.timer.as_mut().poll(cx));
        Poll::Ready(Err(H1Error::TimedOut))
    }
}

async fn next_frame(body: &mut ProxyBody) -> Result<Option<Frame<Bytes>>, H1Error> {
    body.frame().await.transpose().map_err(H1Error::Body)
}

/// `METHOD target HTTP/1.1`, the headers (framing ones replaced by the body's, set
/// ones by their new values), CRLF.
fn encode_head(head: RequestHead<'_>, body: &ProxyBody, out: &mut Vec<u8>) {
    let RequestHead {
        method,
        uri,
        headers,
        set,
    } = head;
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        uri.path_and_query()
            .map_or("/", |pq| pq.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut had_length = false;
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            had_length |= name == header::CONTENT_LENGTH;
            continue;
        }
        if set.iter().any(|(n, _)| n == name) {
            continue;
        }
        put_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    for (name, value) in set {
        put_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    match body.size_hint().exact() {
        Some(0) if body_less(method) && !had_length => {}
        Some(n) => wire::put_length(out, n),
        None => put_field(out, b"transfer-encoding", b"chunked"),
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

/// The final (non-1xx) response head at the front of `buf`, interim 1xx heads before it
/// consumed and dropped; `None` while incomplete.
fn final_head(buf: &mut BytesMut) -> Result<Option<Response<()>>, H1Error> {
    while let Some(head) = parse_head(buf)? {
        if !head.status().is_informational() {
            return Ok(Some(head));
        }
        if head.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Err(H1Error::Malformed("unrequested protocol switch"));
        }
    }
    Ok(None)
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
    let headers =
        wire::shared_headers(&head, &fields, 0).ok_or(H1Error::Malformed("bad header value"))?;
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    *resp.version_mut() = version;
    *resp.headers_mut() = headers;
    Ok(Some(resp))
}

const TOO_MANY: &str = "too many headers";

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Whether a `Connection` value lists `keep-alive` and nothing else.
fn only_keep_alive(value: &[u8]) -> bool {
    wire::tokens(value).all(|t| t.eq_ignore_ascii_case(b"keep-alive"))
}

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
    let mut fields = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| H1Error::Malformed("bad header name"))?;
        // What only keeps this connection alive is dropped here rather than by the
        // proxy's hop-by-hop removal later; `close` and other options stay visible.
        if (name == header::CONNECTION && only_keep_alive(h.value)) || name == KEEP_ALIVE {
            continue;
        }
        fields.push((name, wire::range_in(bytes, h.value)));
    }
    Ok(Some(Raw {
        len,
        status,
        version,
        fields,
    }))
}
