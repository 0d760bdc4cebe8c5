//! The pipeline: order, answers skipping later stages, hooks of earlier stages seeing
//! those answers, state kept across rebuilds.

use std::collections::BTreeMap;

use super::*;
use crate::config::middlewares::{
    AddPrefix, BasicAuth, Compress, Headers, InFlightReq, MediaType, PasswordHash, RateLimit,
    SourceCriterion, StripPrefix,
};
use crate::middleware::compress::Encoding;

fn client() -> Client {
    Client {
        ip: "127.0.0.1".parse().unwrap(),
        tls: false,
    }
}

fn configs() -> BTreeMap<String, MiddlewareConfig> {
    let mut m = BTreeMap::new();
    m.insert(
        "strip".into(),
        MiddlewareConfig::StripPrefix(StripPrefix {
            prefixes: vec!["/api".into()],
            force_slash: false,
        }),
    );
    m.insert(
        "add".into(),
        MiddlewareConfig::AddPrefix(AddPrefix {
            prefix: "/v2".into(),
        }),
    );
    m.insert(
        "auth".into(),
        MiddlewareConfig::BasicAuth(BasicAuth {
            users: vec![(
                "test".into(),
                PasswordHash::parse("test", "$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/").unwrap(),
            )],
            realm: "traefik".into(),
            header_field: None,
            remove_header: false,
        }),
    );
    let h = Headers {
        custom_response_headers: vec![(
            "x-seen".parse().unwrap(),
            Some(HeaderValue::from_static("yes")),
        )],
        ..Headers::default()
    };
    m.insert("hdr".into(), MiddlewareConfig::Headers(Box::new(h)));
    m.insert(
        "one".into(),
        MiddlewareConfig::InFlightReq(InFlightReq {
            amount: 1,
            source: SourceCriterion::Host,
        }),
    );
    m.insert(
        "rl".into(),
        MiddlewareConfig::RateLimit(RateLimit {
            average: 1,
            period: std::time::Duration::from_secs(60),
            burst: 1,
            source: SourceCriterion::Host,
        }),
    );
    m.insert(
        "gz".into(),
        MiddlewareConfig::Compress(Compress {
            excluded_content_types: vec![MediaType::parse("application/grpc").unwrap()],
            included_content_types: Vec::new(),
            min_response_body_bytes: 10,
            encodings: vec![Encoding::Gzip],
            default_encoding: None,
        }),
    );
    m.insert(
        "retry".into(),
        MiddlewareConfig::Retry(crate::retry::RetryPolicy::default()),
    );
    m
}

fn pipeline(keys: &[&str], previous: &Instances, next: &mut Instances) -> Result<Pipeline, String> {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    Pipeline::build("r", &keys, &configs(), previous, next, Instant::now())
}

fn request(path: &str, auth: Option<&str>) -> Request<ProxyBody> {
    let mut b = Request::builder()
        .uri(path)
        .header("host", "shop.test")
        .header("accept-encoding", "gzip");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(body::empty()).unwrap()
}

#[tokio::test]
async fn stages_run_in_order() {
    let p = pipeline(
        &["strip", "add", "retry"],
        &Instances::default(),
        &mut Instances::default(),
    )
    .unwrap();
    let mut req = request("/api/x?q=1", None);
    let (hooks, _) = p.request(&mut req, client()).await.ok().unwrap();
    assert_eq!(req.uri(), "/v2/x?q=1");
    assert_eq!(req.headers()["x-forwarded-prefix"], "/api");
    assert!(p.retry().is_some());
    let resp = hooks.respond(status_answer(StatusCode::OK)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let p = pipeline(
        &["add", "strip"],
        &Instances::default(),
        &mut Instances::default(),
    )
    .unwrap();
    let mut req = request("/api/x", None);
    assert!(p.request(&mut req, client()).await.is_ok());
    assert_eq!(
        req.uri(),
        "/v2/api/x",
        "stripPrefix after addPrefix finds no /api"
    );
}

#[tokio::test]
async fn an_answer_skips_later_stages_but_passes_earlier_hooks() {
    let p = pipeline(
        &["hdr", "auth", "add"],
        &Instances::default(),
        &mut Instances::default(),
    )
    .unwrap();
    let mut req = request("/x", None);
    let answer = p.request(&mut req, client()).await.expect_err("401");
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.headers()["x-seen"],
        "yes",
        "the headers middleware before auth saw the 401"
    );
    assert_eq!(req.uri(), "/x", "addPrefix after auth did not run");
    let p = pipeline(
        &["auth", "hdr"],
        &Instances::default(),
        &mut Instances::default(),
    )
    .unwrap();
    let answer = p
        .request(&mut request("/x", None), client())
        .await
        .err()
        .unwrap();
    assert!(
        !answer.headers().contains_key("x-seen"),
        "a later headers middleware did not"
    );
}

#[tokio::test]
async fn hooks_run_last_stage_first() {
    // headers then compress: compress sees the body first, headers add theirs after.
    let p = pipeline(
        &["hdr", "gz"],
        &Instances::default(),
        &mut Instances::default(),
    )
    .unwrap();
    let mut req = request("/", Some("Basic dGVzdDp0ZXN0"));
    let (hooks, _) = p.request(&mut req, client()).await.ok().unwrap();
    let resp = hooks
        .respond(Response::new(body::full("a body long enough to compress")))
        .await;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(resp.headers()["x-seen"], "yes");
}

#[tokio::test]
async fn in_flight_slots_are_held_until_the_body_ends() {
    let p = pipeline(&["one"], &Instances::default(), &mut Instances::default()).unwrap();
    let (hooks, _) = p
        .request(&mut request("/", None), client())
        .await
        .ok()
        .unwrap();
    let resp = hooks.respond(Response::new(body::full("x"))).await;
    let second = p
        .request(&mut request("/", None), client())
        .await
        .expect_err("429");
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let _ = resp.into_body().collect().await.unwrap();
    assert!(
        p.request(&mut request("/", None), client()).await.is_ok(),
        "the slot came back"
    );
}

#[tokio::test]
async fn state_survives_rebuilds_with_the_same_configuration() {
    let mut first = Instances::default();
    let p = pipeline(&["rl"], &Instances::default(), &mut first).unwrap();
    assert!(p.request(&mut request("/", None), client()).await.is_ok());
    assert!(
        p.request(&mut request("/", None), client()).await.is_err(),
        "burst of 1"
    );
    let mut second = Instances::default();
    let rebuilt = pipeline(&["rl"], &first, &mut second).unwrap();
    assert!(
        rebuilt
            .request(&mut request("/", None), client())
            .await
            .is_err(),
        "the bucket was kept"
    );
    let fresh = pipeline(&["rl"], &Instances::default(), &mut Instances::default()).unwrap();
    assert!(fresh
        .request(&mut request("/", None), client())
        .await
        .is_ok());
}

#[test]
fn two_retry_middlewares_are_refused() {
    let e = pipeline(
        &["retry", "retry"],
        &Instances::default(),
        &mut Instances::default(),
    )
    .err()
    .unwrap();
    assert!(e.contains("more than one retry"), "{e}");
}

#[tokio::test]
async fn buffering_refuses_large_requests_and_responses() {
    let b = Buffering {
        max_request_body_bytes: Some(4),
        max_response_body_bytes: Some(4),
    };
    let mut small = Request::new(body::full("abcd"));
    assert!(buffer_request(&mut small, b.max_request_body_bytes)
        .await
        .is_none());
    assert_eq!(small.headers()["content-length"], "4");
    let mut large = Request::new(body::full("abcde"));
    let answer = buffer_request(&mut large, b.max_request_body_bytes)
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let big = buffer_response(Response::new(body::full("abcde")), 4).await;
    assert_eq!(big.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let fine = buffer_response(Response::new(body::full("abc")), 4).await;
    assert_eq!(fine.status(), StatusCode::OK);
}
