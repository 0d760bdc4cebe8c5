//! The proxy's HTTP/1 client and hyper's, reading the same response bytes from the same
//! scripted backend, in reads cut at different sizes: both must see the same statuses
//! and the same body bytes. (hyper also hands over trailers; `H1Body` reads and drops
//! them, so they are compared only through what follows them.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{H1Conn, Home, RequestHead};
use crate::proxy::body;

/// What a client read: each response's status and body.
type Answers = Vec<(StatusCode, Bytes)>;

/// Responses on one keep-alive connection, each with the method of its request; the
/// backend closes the connection after the last.
const SCRIPT: &[(&str, &[u8])] = &[
    (
        "GET",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
          HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
    ),
    (
        "GET",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n\
          5;name=value\r\nhello\r\n00006 ; q=\"a;b\"\r\n world\r\n\
          0\r\nx-sum: 11\r\nx-other:two \r\n\r\n",
    ),
    ("GET", b"HTTP/1.1 204 No Content\r\nx-a: b\r\n\r\n"),
    (
        "GET",
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\netag: \"x\"\r\n\r\n",
    ),
    (
        "HEAD",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\ncontent-type: text/plain\r\n\r\n",
    ),
    (
        "GET",
        b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n\
          A\r\n0123456789\r\n0\r\n\r\n",
    ),
    (
        "GET",
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
    ),
    (
        "GET",
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the connection closes",
    ),
];

/// A backend for one connection: for each request head read, the next response of
/// `script`, written `cut` bytes at a time; then it closes.
async fn scripted(script: &'static [(&str, &[u8])], cut: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut seen = Vec::new();
        for (_, response) in script {
            // Requests have no body: one head each.
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed early");
                seen.extend_from_slice(&chunk[..n]);
            }
            let end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            seen.drain(..end + 4);
            for piece in response.chunks(cut) {
                s.write_all(piece).await.unwrap();
                s.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        }
        s.shutdown().await.unwrap();
    });
    addr
}

/// Where the test's connection goes between requests.
#[derive(Default)]
struct Kept(Mutex<Option<H1Conn>>);

impl Home for Kept {
    fn put(&self, conn: H1Conn) {
        *self.0.lock().unwrap() = Some(conn);
    }
}

async fn read_with_h1(addr: SocketAddr, script: &[(&str, &[u8])]) -> Answers {
    let slots = Arc::new(Semaphore::new(1));
    let io = TcpStream::connect(addr).await.unwrap();
    let mut conn = Some(H1Conn::new(io, slots.try_acquire_owned().unwrap()));
    let home = Arc::new(Kept::default());
    let (uri, headers) = (Uri::from_static("/"), HeaderMap::new());
    let mut answers = Vec::new();
    for (method, _) in script {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let head = RequestHead {
            method: &method,
            uri: &uri,
            headers: &headers,
            set: &[],
        };
        let c = conn
            .take()
            .expect("the connection was kept for the next request");
        let resp = c
            .send(head, body::empty(), home.clone(), Instant::now(), None)
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        answers.push((status, body));
        conn = home.0.lock().unwrap().take();
    }
    answers
}

async fn read_with_hyper(addr: SocketAddr, script: &[(&str, &[u8])]) -> Answers {
    let io = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut answers = Vec::new();
    for (method, _) in script {
        sender.ready().await.unwrap();
        let req = Request::builder()
            .method(*method)
            .uri("/")
            .header("host", "backend")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        answers.push((status, body));
    }
    answers
}

#[tokio::test]
async fn h1_client_reads_what_hyper_reads_in_any_write_sizes() {
    for cut in [1, 2, 3, 7, 16, 61, 4096] {
        let ours = read_with_h1(scripted(SCRIPT, cut).await, SCRIPT).await;
        let hypers = read_with_hyper(scripted(SCRIPT, cut).await, SCRIPT).await;
        assert_eq!(ours, hypers, "written {cut} bytes at a time");
        // And both read what the script means (hyper could be wrong too).
        assert_eq!(ours[1].1, "hello world");
        assert_eq!(ours[5].1, "0123456789");
        assert_eq!(ours[7].1, "until the connection closes");
    }
}

/// An HTTP/1.0 response is delimited by its Content-Length and ends the connection's use.
#[tokio::test]
async fn http10_responses_read_alike() {
    const HTTP10: &[(&str, &[u8])] =
        &[("GET", b"HTTP/1.0 200 OK\r\ncontent-length: 4\r\n\r\nbody")];
    for cut in [1, 5, 4096] {
        let ours = read_with_h1(scripted(HTTP10, cut).await, HTTP10).await;
        let hypers = read_with_hyper(scripted(HTTP10, cut).await, HTTP10).await;
        assert_eq!(ours, hypers);
        assert_eq!(ours[0].1, "body");
    }
}
