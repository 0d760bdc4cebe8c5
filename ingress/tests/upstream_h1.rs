//! The proxy's own HTTP/1.1 client against scripted backends that speak raw bytes:
//! every response framing, connection reuse and its limits, request body framing, and
//! malformed answers.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What a scripted backend saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: Mutex<Vec<(String, Vec<u8>)>>,
}

/// How a scripted backend answers one request.
struct Answer {
    bytes: Vec<u8>,
    close: bool,
}

fn answer(bytes: &str, close: bool) -> Answer {
    Answer {
        bytes: bytes.as_bytes().to_vec(),
        close,
    }
}

/// A backend that reads requests (Content-Length or chunked bodies) and writes what
/// `script` returns for the request head, closing the connection when asked.
async fn scripted<F>(script: F) -> (SocketAddr, Arc<Seen>)
where
    F: Fn(&str) -> Answer + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let script = Arc::new(script);
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            let (s, script) = (s.clone(), script.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let Some((head, body)) = read_request(&mut read).await else {
                        return;
                    };
                    let a = script(&head);
                    s.requests.lock().unwrap().push((head, body));
                    if write.write_all(&a.bytes).await.is_err() || a.close {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        body.resize(len.trim().parse().ok()?, 0);
        r.read_exact(&mut body).await.ok()?;
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await.ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some((head, body))
}

async fn through(backend: SocketAddr) -> SocketAddr {
    let (_, addr) = proxy(routes(
        &[("r", "PathPrefix(`/`)", "s")],
        vec![("s", Service::over(&[backend]))],
    ))
    .await;
    addr
}

#[tokio::test]
async fn chunked_answers_are_decoded_and_the_connection_is_reused() {
    let (b, seen) = scripted(|_| {
        answer(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n",
            false,
        )
    })
    .await;
    let p = through(b).await;
    let c = client();
    for _ in 0..3 {
        assert_eq!(
            get(&c, p, "a", "/").await,
            (StatusCode::OK, "hello world".into())
        );
    }
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "one kept-alive connection"
    );
}

#[tokio::test]
async fn bodies_until_close_and_connection_close_are_not_reused() {
    let (b, seen) = scripted(|head| {
        if head.starts_with("GET /eof") {
            answer("HTTP/1.1 200 OK\r\n\r\nuntil the end", true)
        } else {
            answer(
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
                false,
            )
        }
    })
    .await;
    let p = through(b).await;
    let c = client();
    assert_eq!(
        get(&c, p, "a", "/eof").await,
        (StatusCode::OK, "until the end".into())
    );
    assert_eq!(get(&c, p, "a", "/eof").await.1, "until the end");
    assert_eq!(get(&c, p, "a", "/close").await.1, "ok");
    assert_eq!(get(&c, p, "a", "/close").await.1, "ok");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn head_304_and_interim_answers_have_no_body_and_keep_the_connection() {
    let (b, seen) = scripted(|head| {
        if head.starts_with("HEAD") {
            answer("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", false)
        } else if head.starts_with("GET /304") {
            answer("HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n", false)
        } else {
            answer(
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal",
                false,
            )
        }
    })
    .await;
    let p = through(b).await;
    let c = client();
    let (s, h, body) = send(&c, p, "HEAD", "a", "/", "").await;
    assert_eq!(
        (s, h["content-length"].to_str().unwrap(), body.as_str()),
        (StatusCode::OK, "10", "")
    );
    assert_eq!(
        get(&c, p, "a", "/304").await,
        (StatusCode::NOT_MODIFIED, String::new())
    );
    assert_eq!(get(&c, p, "a", "/").await, (StatusCode::OK, "final".into()));
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn malformed_answers_are_bad_gateways_and_the_proxy_carries_on() {
    let (b, _) = scripted(|head| {
        if head.starts_with("GET /conflict") {
            answer(
                "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
                true,
            )
        } else if head.starts_with("GET /garbage") {
            answer("SSH-2.0-OpenSSH\r\n\r\n", true)
        } else if head.starts_with("GET /reset") {
            answer("", true)
        } else if head.starts_with("GET /short") {
            answer("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", true)
        } else {
            answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false)
        }
    })
    .await;
    let p = through(b).await;
    let c = client();
    assert_eq!(
        get(&c, p, "a", "/conflict").await.0,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(get(&c, p, "a", "/garbage").await.0, StatusCode::BAD_GATEWAY);
    // Closed without a response (after the retry too): 503, as Envoy and HAProxy.
    assert_eq!(
        get(&c, p, "a", "/reset").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // A body cut short after the head cannot become an error status: the client's
    // connection ends early instead.
    let req = Request::get(format!("http://{p}/short"))
        .header("host", "a")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let cut = match c.request(req).await {
        Err(_) => true,
        Ok(resp) => resp.into_body().collect().await.is_err(),
    };
    assert!(cut, "a body cut short is not passed off as complete");
    assert_eq!(get(&c, p, "a", "/").await, (StatusCode::OK, "ok".into()));
}

#[tokio::test]
async fn a_pooled_connection_the_backend_closed_is_not_used() {
    // Every answer closes the connection without saying so: the pooled connection is
    // dead by the next request, which must still succeed.
    let (b, seen) =
        scripted(|_| answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", true)).await;
    let p = through(b).await;
    let c = client();
    for _ in 0..5 {
        assert_eq!(get(&c, p, "a", "/").await, (StatusCode::OK, "ok".into()));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn request_bodies_keep_their_bytes_and_get_framing_of_their_own() {
    let (b, seen) =
        scripted(|_| answer("HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n", false)).await;
    let p = through(b).await;
    let c = client();
    // Larger than one write with the head; a Content-Length from the client.
    let big = "x".repeat(100_000);
    assert_eq!(
        send(&c, p, "PUT", "a", "/big", &big).await.0,
        StatusCode::CREATED
    );
    // A streamed body of unknown length goes out chunked.
    let frames = ["one ", "two ", "three"]
        .map(|s| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(s))));
    let body = StreamBody::new(futures_stream(frames.into_iter().collect()));
    let streaming: Client<_, _> = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!("http://{p}/stream"))
        .header("host", "a")
        .body(body)
        .unwrap();
    assert_eq!(
        streaming.request(req).await.unwrap().status(),
        StatusCode::CREATED
    );
    let requests = seen.requests.lock().unwrap();
    let (head, body) = &requests[0];
    assert!(
        head.to_ascii_lowercase().contains("content-length: 100000"),
        "{head}"
    );
    assert_eq!(body.len(), 100_000);
    let (head, body) = &requests[1];
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert_eq!(body, b"one two three");
}

/// A stream of ready items.
fn futures_stream<T: Send + 'static>(items: Vec<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::iter(items)
}

/// Reads one response from a raw connection: its head (lower-cased) and its body,
/// framed as the head says.
async fn read_raw_response<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> (String, Vec<u8>) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).await.unwrap() > 0,
            "closed in the head"
        );
        head.push_str(&line.to_ascii_lowercase());
        if line == "\r\n" {
            break;
        }
    }
    let mut body = Vec::new();
    if head.contains("transfer-encoding: chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await.unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        body.resize(len.trim().parse().unwrap(), 0);
        r.read_exact(&mut body).await.unwrap();
    }
    (head, body)
}

#[tokio::test]
async fn a_length_beside_chunked_is_dropped_so_keep_alive_clients_stay_in_step() {
    // The backend's Content-Length (3) disagrees with its chunked body (11 bytes):
    // forwarded as it was, a keep-alive client would read "hel" and take "lo world..."
    // for the next response.
    let (b, _) = scripted(|_| {
        answer(
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            false,
        )
    })
    .await;
    let p = through(b).await;
    let stream = tokio::net::TcpStream::connect(p).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    for _ in 0..2 {
        write
            .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_raw_response(&mut read).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("content-length: 3"), "{head}");
        assert_eq!(body, b"hello world", "{head}");
    }
}
