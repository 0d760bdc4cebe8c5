use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response};

use super::body::keeps_alive;
use super::decode::{framing, Chunk, Framing};
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
    let kept =
        head("HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nkeep-alive: timeout=5\r\nx: y\r\n\r\n");
    assert_eq!(
        kept.headers().len(),
        1,
        "the connection's own options are not passed on"
    );
    assert!(keeps_alive(&kept));
    let listed = head("HTTP/1.1 200 OK\r\nconnection: keep-alive, x\r\nx: y\r\n\r\n");
    assert_eq!(
        listed.headers().len(),
        2,
        "other options stay for hop-by-hop removal"
    );
    assert!(keeps_alive(&head("HTTP/1.1 200 OK\r\n\r\n")));
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
    let set = [(
        HeaderName::from_static("x-set"),
        HeaderValue::from_static("new"),
    )];
    headers.insert("x-set", HeaderValue::from_static("old"));
    let head = RequestHead {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        set: &set,
    };
    encode_head(head, &super::super::body::full("abc"), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "POST /p?q=1 HTTP/1.1\r\nhost: a\r\nx-set: new\r\ncontent-length: 3\r\n\r\n"
    );
    let mut out = Vec::new();
    let empty = HeaderMap::new();
    let head = RequestHead {
        method: &Method::GET,
        uri: &uri,
        headers: &empty,
        set: &[],
    };
    encode_head(head, &super::super::body::empty(), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET /p?q=1 HTTP/1.1\r\n\r\n"
    );
}

/// Where a test's connections go home.
#[derive(Default)]
struct Kept(std::sync::Mutex<Option<H1Conn>>);

impl Home for Kept {
    fn put(&self, conn: H1Conn) {
        *self.0.lock().unwrap() = Some(conn);
    }
}

/// A pooled connection's idle age starts when its request started, unless the body
/// had to wait for the backend: then when the body ended.
#[tokio::test(start_paused = true)]
async fn idle_age_starts_after_a_body_that_waited() {
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        for pause in [0, 60] {
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(pause)).await;
            s.write_all(b"ok").await.unwrap();
        }
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(1));
    let io = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut conn = H1Conn::new(io, slots.try_acquire_owned().unwrap());
    let home = Arc::new(Kept::default());
    let (get, uri, headers) = (Method::GET, http::Uri::from_static("/"), HeaderMap::new());
    let head = RequestHead {
        method: &get,
        uri: &uri,
        headers: &headers,
        set: &[],
    };
    for waits in [false, true] {
        let started = Instant::now();
        let body = super::super::body::empty();
        let resp = conn
            .send(head, body, home.clone(), started, None)
            .await
            .unwrap();
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(text, "ok");
        conn = home
            .0
            .lock()
            .unwrap()
            .take()
            .expect("the connection went home");
        let age_from = conn.used.duration_since(started);
        assert_eq!(age_from >= Duration::from_secs(60), waits, "{age_from:?}");
    }
}
