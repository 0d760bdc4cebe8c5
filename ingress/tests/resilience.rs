//! Retries, circuit breaking and outlier ejection against real backends.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::StatusCode;
use http_body_util::BodyExt;
use shoal_ingress::retry::RetryPolicy;
use shoal_ingress::{Health, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn counter_value(proxy: &Proxy, name: &str, label: (&str, &str)) -> u64 {
    proxy
        .metrics_registry()
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == label.0 && l.value() == label.1)
        })
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// A backend that answers `status` to its first `n` requests, then 200 `name`; counts hits.
async fn flaky(
    name: &'static str,
    status: u16,
    n: usize,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let addr = backend(move |req| {
        let h = h.clone();
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let i = h.fetch_add(1, Ordering::SeqCst);
            if i < n {
                reply(status, "failing")
            } else {
                reply(200, &format!("{name}:{}", String::from_utf8_lossy(&body)))
            }
        }
    })
    .await;
    (addr, hits)
}

#[tokio::test]
async fn a_503_is_retried_once_on_another_backend() {
    let (bad, bad_hits) = flaky("bad", 503, 1).await;
    let (good, good_hits) = flaky("good", 503, 0).await;
    let (p, addr) = proxy(routes(
        &[("r", "Host(`a.com`)", "s")],
        vec![("s", Service::over(&[bad, good]))],
    ))
    .await;
    let (status, body) = get(&client(), addr, "a.com", "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "good:"));
    assert_eq!(bad_hits.load(Ordering::SeqCst), 1);
    assert_eq!(good_hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        counter_value(&p, "shoal_ingress_retries_total", ("service", "s")),
        1
    );
}

#[tokio::test]
async fn a_post_is_not_retried_unless_the_route_opts_in() {
    let (bad, _) = flaky("bad", 503, 1).await;
    let (good, _) = flaky("good", 503, 0).await;
    let r = routes(
        &[("r", "Host(`a.com`)", "s")],
        vec![("s", Service::over(&[bad, good]))],
    );
    let (p, addr) = proxy(r.clone()).await;
    let (status, _, body) = send(&client(), addr, "POST", "a.com", "/", "order").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "failing")
    );
    assert_eq!(
        counter_value(&p, "shoal_ingress_retries_total", ("service", "s")),
        0
    );

    let (bad, _) = flaky("bad", 503, 1).await;
    let mut r = routes(
        &[("r", "Host(`a.com`)", "s")],
        vec![("s", Service::over(&[bad, good]))],
    );
    let mut policy = shoal_ingress::retry::RetryPolicy::default();
    policy.methods.insert("POST".into());
    r.routers.get_mut("r").unwrap().retry = Some(policy);
    let (_p, addr) = proxy(r).await;
    let (status, _, body) = send(&client(), addr, "POST", "a.com", "/", "order").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "good:order"),
        "body replayed"
    );
}

#[tokio::test]
async fn a_connect_failure_is_retried_and_a_lone_dead_backend_gives_503() {
    let dead = dead_addr().await;
    let good = named("good").await;
    let (p, addr) = proxy(routes(
        &[("r", "Host(`a.com`)", "s"), ("d", "Host(`dead.com`)", "d")],
        vec![
            ("s", Service::over(&[dead, good])),
            ("d", Service::over(&[dead_addr().await])),
        ],
    ))
    .await;
    let c = client();
    assert_eq!(
        get(&c, addr, "a.com", "/").await,
        (StatusCode::OK, "good".into())
    );
    assert_eq!(
        counter_value(&p, "shoal_ingress_retries_total", ("service", "s")),
        1
    );
    // Envoy's and HAProxy's answer to a refused connection.
    assert_eq!(
        get(&c, addr, "dead.com", "/").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn a_slow_backend_gives_504_after_the_timeouts() {
    let slow = backend(|_req| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        reply(200, "late")
    })
    .await;
    let mut s = Service::over(&[slow]);
    s.retry.per_try_timeout = Some(Duration::from_millis(100));
    s.retry.timeout = Some(Duration::from_millis(400));
    let (_p, addr) = proxy(routes(&[("r", "Host(`a.com`)", "s")], vec![("s", s)])).await;
    let started = std::time::Instant::now();
    assert_eq!(
        get(&client(), addr, "a.com", "/").await.0,
        StatusCode::GATEWAY_TIMEOUT
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_pooled_connection_keeps_each_requests_own_deadline() {
    // One backend connection serves both routers in turn: its deadline timer, first
    // set 10 s ahead, must still fire at the short router's 150 ms.
    let backend = backend(|req| async move {
        if req.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        reply(200, "ok")
    })
    .await;
    let mut s = Service::over(&[backend]);
    s.retry.per_try_timeout = Some(Duration::from_secs(10));
    let mut r = routes(
        &[
            ("long", "Host(`long.com`)", "s"),
            ("short", "Host(`short.com`)", "s"),
        ],
        vec![("s", s)],
    );
    let short = RetryPolicy {
        num_retries: 0,
        per_try_timeout: Some(Duration::from_millis(150)),
        ..Default::default()
    };
    r.routers.get_mut("short").unwrap().retry = Some(short);
    let (_p, addr) = proxy(r).await;
    let c = client();
    for _ in 0..3 {
        assert_eq!(get(&c, addr, "long.com", "/").await.0, StatusCode::OK);
    }
    let started = std::time::Instant::now();
    assert_eq!(
        get(&c, addr, "short.com", "/slow").await.0,
        StatusCode::GATEWAY_TIMEOUT
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(140) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(get(&c, addr, "long.com", "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn timeouts_start_once_a_slowly_uploaded_body_is_read() {
    // As in Envoy: a PUT whose chunked body takes 600 ms to arrive still has its whole
    // 300 ms per try (and overall 400 ms) for the backend, which answers at once.
    let (b, seen) = recorder().await;
    let mut s = Service::over(&[b]);
    s.retry.per_try_timeout = Some(Duration::from_millis(300));
    s.retry.timeout = Some(Duration::from_millis(400));
    let (_p, addr) = proxy(routes(&[("r", "Host(`a.com`)", "s")], vec![("s", s)])).await;
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"PUT /up HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.write_all(b"2\r\nab\r\n").await.unwrap();
    }
    c.write_all(b"0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    c.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&head));
    assert_eq!(*seen.lock().unwrap(), ["/up"], "sent once");
}

#[tokio::test]
async fn breaker_with_max_requests_2_refuses_8_of_10_concurrent_requests() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let slow = backend(move |_req| {
        let g = g.clone();
        async move {
            let _permit = g.acquire().await.unwrap();
            reply(200, "done")
        }
    })
    .await;
    let mut s = Service::over(&[slow]);
    s.breaker.max_requests = 2;
    let (p, addr) = proxy(routes(&[("r", "Host(`a.com`)", "s")], vec![("s", s)])).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..10 {
        let tx = tx.clone();
        tokio::spawn(async move {
            let r = send(&client(), addr, "GET", "a.com", "/", "").await;
            tx.send(r).unwrap();
        });
    }
    for _ in 0..8 {
        let (status, headers, _) = rx.recv().await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["x-shoal-overloaded"], "true");
    }
    gate.add_permits(10);
    for _ in 0..2 {
        let (status, _, body) = rx.recv().await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    }
    assert_eq!(
        counter_value(&p, "shoal_ingress_overflows_total", ("kind", "requests")),
        8
    );
}

#[tokio::test]
async fn a_backend_failing_5_times_in_a_row_is_ejected_and_gets_no_traffic() {
    let (bad, bad_hits) = flaky("bad", 502, usize::MAX).await;
    let (good, _) = flaky("good", 503, 0).await;
    let (p, addr) = proxy(routes(
        &[("r", "Host(`a.com`)", "s")],
        vec![("s", Service::over(&[bad, good]))],
    ))
    .await;
    let c = client();
    for _ in 0..10 {
        // Each request that hits the bad backend is retried on the good one.
        assert_eq!(get(&c, addr, "a.com", "/").await.0, StatusCode::OK);
    }
    assert_eq!(bad_hits.load(Ordering::SeqCst), 5);
    for _ in 0..20 {
        assert_eq!(get(&c, addr, "a.com", "/").await.0, StatusCode::OK);
    }
    assert_eq!(
        bad_hits.load(Ordering::SeqCst),
        5,
        "ejected host got traffic"
    );
    assert_eq!(
        counter_value(&p, "shoal_ingress_ejections_total", ("service", "s")),
        1
    );
    let view = p.routes_view();
    let bad_status = view[0].backends.iter().find(|b| b.address == bad).unwrap();
    assert_eq!(bad_status.health, Health::Ejected);
    assert!(bad_status.ejected_for_ms.unwrap() > 20_000);

    // A route update keeps the ejection of a backend that remains.
    let third = named("third").await;
    p.update(routes(
        &[("r", "Host(`a.com`)", "s")],
        vec![("s", Service::over(&[bad, good, third]))],
    ))
    .unwrap();
    for _ in 0..10 {
        assert_eq!(get(&c, addr, "a.com", "/").await.0, StatusCode::OK);
    }
    assert_eq!(
        bad_hits.load(Ordering::SeqCst),
        5,
        "ejection lost on update"
    );
}

#[tokio::test]
async fn connection_limit_with_no_pending_queue_refuses_the_second_concurrent_request() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    let (g, st) = (gate.clone(), started.clone());
    let slow = backend(move |_req| {
        let (g, st) = (g.clone(), st.clone());
        async move {
            st.notify_one();
            let _permit = g.acquire().await.unwrap();
            reply(200, "done")
        }
    })
    .await;
    let mut s = Service::over(&[slow]);
    s.breaker.max_connections = 1;
    s.breaker.max_pending_requests = 0;
    let (p, addr) = proxy(routes(&[("r", "Host(`a.com`)", "s")], vec![("s", s)])).await;
    let first = tokio::spawn(async move { get(&client(), addr, "a.com", "/").await });
    started.notified().await;
    let (status, headers, _) = send(&client(), addr, "GET", "a.com", "/", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-shoal-overloaded"], "true");
    assert_eq!(
        counter_value(&p, "shoal_ingress_overflows_total", ("kind", "pending")),
        1
    );
    gate.add_permits(1);
    assert_eq!(first.await.unwrap(), (StatusCode::OK, "done".into()));
}

/// A backend that reads the whole body and answers with its length; `/slow` answers
/// 2 s after the body ends.
async fn counting_backend() -> std::net::SocketAddr {
    backend(|req: http::Request<hyper::body::Incoming>| async move {
        let slow = req.uri().path() == "/slow";
        let n = match req.into_body().collect().await {
            Ok(b) => b.to_bytes().len(),
            Err(_) => return reply(400, "body failed"),
        };
        if slow {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        reply(200, &n.to_string())
    })
    .await
}

/// Writes a POST with a chunked body of `chunks` × `size` bytes, one chunk every
/// `pace`, then `tail` (the last chunk, or nothing to stall), and reads the answer.
async fn paced_post(
    addr: std::net::SocketAddr,
    path: &str,
    chunks: usize,
    size: usize,
    pace: Duration,
    tail: &str,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{size:x}\r\n{}\r\n", "x".repeat(size));
    for _ in 0..chunks {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
        tokio::time::sleep(pace).await;
    }
    let _ = s.write_all(tail.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Envoy's rule: the route's timeout starts once the request is complete. An upload
/// paced over 2.5 s through a route with a 500 ms timeout (and per-try timeout) reaches
/// the backend whole and is answered; the timeout still holds for the answer after the
/// body; a client that stops sending gets 408 after the body idle timeout, and none of
/// this counts against the backend.
#[tokio::test]
async fn the_route_timeout_starts_when_a_streamed_body_ends_and_idle_bodies_get_408() {
    let b = counting_backend().await;
    let mut s = Service::over(&[b]);
    s.retry.per_try_timeout = Some(Duration::from_millis(500));
    s.retry.timeout = Some(Duration::from_millis(500));
    let options = shoal_ingress::ProxyOptions {
        body_idle_timeout: Duration::from_millis(400),
        ..shoal_ingress::ProxyOptions::default()
    };
    let (p, addr) = proxy_with(
        routes(&[("r", "Host(`a.com`)", "s")], vec![("s", s)]),
        options,
    )
    .await;
    // 25 chunks of 16 KiB, one every 100 ms: 400 KiB over 2.5 s.
    let resp = paced_post(
        addr,
        "/",
        25,
        16 * 1024,
        Duration::from_millis(100),
        "0\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with(&(25 * 16 * 1024).to_string()), "{resp}");
    // The answer itself still has 500 ms once the body is in.
    let started = std::time::Instant::now();
    let resp = paced_post(
        addr,
        "/slow",
        3,
        1024,
        Duration::from_millis(100),
        "0\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 504"), "{resp}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // A client that stops half way: 408 after the idle timeout, never a backend fault.
    for _ in 0..6 {
        let started = std::time::Instant::now();
        let resp = paced_post(addr, "/", 2, 1024, Duration::from_millis(10), "").await;
        assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let backends = &p.routes_view()[0].backends;
    assert_eq!(backends[0].times_ejected, 0);
    assert_eq!(backends[0].health, shoal_ingress::Health::Healthy);
}
