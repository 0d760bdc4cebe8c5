//! Tracing through the real proxy: `x-request-id`, W3C and B3 context carried to the
//! backend per attempt, and a server span plus one span per attempt at a small OTLP
//! receiver on loopback.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use shoal_ingress::proxy::TracingOptions;
use shoal_ingress::trace::{Endpoint, Exporter};
use shoal_ingress::ProxyOptions;

type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

/// A backend answering `first` to its first request and 200 after; keeps headers.
async fn keeping(first: u16) -> (std::net::SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let addr = backend(move |req| {
        let s = s.clone();
        async move {
            let mut all = s.lock().unwrap();
            all.push(req.headers().clone());
            if all.len() == 1 {
                reply(first, "first")
            } else {
                reply(200, "ok")
            }
        }
    })
    .await;
    (addr, seen)
}

/// An OTLP/HTTP receiver: the JSON bodies posted to it.
async fn receiver() -> (std::net::SocketAddr, Arc<Mutex<Vec<Value>>>) {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let b = bodies.clone();
    let addr = backend(move |req| {
        let b = b.clone();
        async move {
            assert_eq!(req.uri().path(), "/v1/traces");
            assert_eq!(req.headers()["content-type"], "application/json");
            let body = req.into_body().collect().await.unwrap().to_bytes();
            b.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            reply(200, "{}")
        }
    })
    .await;
    (addr, bodies)
}

fn spans(bodies: &[Value]) -> Vec<Value> {
    bodies
        .iter()
        .flat_map(|b| b["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

async fn traced_proxy(
    services: Vec<std::net::SocketAddr>,
    exporter: Option<Arc<Exporter>>,
) -> std::net::SocketAddr {
    let options = ProxyOptions {
        tracing: Some(TracingOptions { exporter }),
        ..ProxyOptions::default()
    };
    let (_, addr) = proxy_with(
        routes(
            &[("shop", "Host(`a.com`)", "s")],
            vec![("s", Service::over(&services))],
        ),
        options,
    )
    .await;
    addr
}

#[tokio::test]
async fn every_attempt_carries_the_trace_and_becomes_a_span() {
    let (bad, bad_seen) = keeping(503).await;
    let (good, good_seen) = keeping(200).await;
    let (collector, bodies) = receiver().await;
    let exporter = Exporter::start(
        Endpoint::parse(&format!("http://{collector}")).unwrap(),
        "shoal-test".into(),
    );
    let addr = traced_proxy(vec![bad, good], Some(exporter)).await;

    let parent = "00f067aa0ba902b7";
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let req = Request::get(format!("http://{addr}/cart"))
        .header("host", "a.com")
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Both attempts (the 503 and its retry) went out with the trace and one request ID,
    // each as a span of its own.
    let first = bad_seen.lock().unwrap()[0].clone();
    let second = good_seen.lock().unwrap()[0].clone();
    let id = first["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(second["x-request-id"], id.as_str());
    let tp1 = first["traceparent"].to_str().unwrap().to_string();
    let tp2 = second["traceparent"].to_str().unwrap().to_string();
    assert!(
        tp1.starts_with(&format!("00-{trace}-")) && tp1.ends_with("-01"),
        "{tp1}"
    );
    assert!(tp2.starts_with(&format!("00-{trace}-")), "{tp2}");
    assert_ne!(tp1[36..52], tp2[36..52], "one span per attempt");
    assert_ne!(&tp1[36..52], parent, "the proxy's spans are new");

    // The collector gets the server span and both attempt spans within the flush time.
    let mut all = Vec::new();
    for _ in 0..50 {
        all = spans(&bodies.lock().unwrap());
        if all.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(all.len(), 3, "{all:?}");
    let server = all.iter().find(|s| s["kind"] == 2).expect("a server span");
    assert_eq!(server["traceId"], trace);
    assert_eq!(server["parentSpanId"], parent);
    assert_eq!(
        attr(server, "http.response.status_code").unwrap()["intValue"],
        "200"
    );
    assert_eq!(attr(server, "http.route").unwrap()["stringValue"], "shop");
    assert_eq!(attr(server, "shoal.attempts").unwrap()["intValue"], "2");
    let mut attempts: Vec<&Value> = all.iter().filter(|s| s["kind"] == 3).collect();
    attempts.sort_by_key(|s| {
        attr(s, "shoal.attempt").unwrap()["intValue"]
            .as_str()
            .unwrap()
            .to_string()
    });
    assert_eq!(attempts.len(), 2);
    for (span, tp) in attempts.iter().zip([&tp1, &tp2]) {
        assert_eq!(span["parentSpanId"], server["spanId"]);
        assert_eq!(span["spanId"], &tp[36..52], "the span the backend saw");
    }
    assert_eq!(
        attr(attempts[0], "http.response.status_code").unwrap()["intValue"],
        "503"
    );
    assert_eq!(
        attempts[0]["status"]["code"], 2,
        "a 503 attempt is an error"
    );
    assert_eq!(attr(attempts[1], "shoal.retry").unwrap()["boolValue"], true);
}

#[tokio::test]
async fn ids_and_context_without_a_collector_b3_answered_in_kind() {
    let (backend_addr, seen) = keeping(200).await;
    let addr = traced_proxy(vec![backend_addr], None).await;
    let req = Request::get(format!("http://{addr}/"))
        .header("host", "a.com")
        .header("x-request-id", "client-chosen-1")
        .header("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        client().request(req).await.unwrap().status(),
        StatusCode::OK
    );
    let got = seen.lock().unwrap()[0].clone();
    assert_eq!(
        got["x-request-id"], "client-chosen-1",
        "the client's ID is kept"
    );
    let b3: Vec<&str> = got["b3"].to_str().unwrap().split('-').collect();
    assert_eq!(b3.len(), 4, "{b3:?}");
    assert_eq!(b3[0], "80f198ee56343ba864fe8b2a57d3eff7", "same trace");
    assert_ne!(b3[1], "e457b5a2e4d86bd1", "the attempt's own span");
    assert_eq!(b3[2], "1", "sampled");
    assert_eq!(b3[3].len(), 16, "the proxy's span as parent");
    assert!(
        got.get("traceparent").is_none(),
        "answered in the format that came"
    );

    // Tracing off (the default): nothing is added.
    let (plain_backend, plain_seen) = keeping(200).await;
    let (_, plain) = proxy(routes(
        &[("r", "Host(`a.com`)", "s")],
        vec![("s", Service::over(&[plain_backend]))],
    ))
    .await;
    let (status, _) = get(&client(), plain, "a.com", "/").await;
    assert_eq!(status, StatusCode::OK);
    let headers = plain_seen.lock().unwrap()[0].clone();
    assert!(headers.get("x-request-id").is_none());
    assert!(headers.get("traceparent").is_none());
}
