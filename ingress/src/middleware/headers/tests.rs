//! Cases from Træfik's `header_test.go` and `secure_test.go` expectations.

use super::*;
use crate::config::middlewares::Pattern;
use crate::middleware::{status_answer, Answer};

fn client(tls: bool) -> Client {
    Client {
        ip: "127.0.0.1".parse().unwrap(),
        tls,
    }
}

fn request(method: &str, headers: &[(&str, &str)]) -> Request<ProxyBody> {
    let mut b = Request::builder()
        .method(method)
        .uri("/foo")
        .header("host", "example.org");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body::empty()).unwrap()
}

fn names(h: &HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<_> = h
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = list
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn edit(name: &str, value: &str) -> (HeaderName, Option<HeaderValue>) {
    let v = (!value.is_empty()).then(|| HeaderValue::from_str(value).unwrap());
    (name.parse().unwrap(), v)
}

const PREFLIGHT: &[(&str, &str)] = &[
    ("access-control-request-headers", "origin"),
    ("access-control-request-method", "GET"),
    ("origin", "https://foo.bar.org"),
];

fn preflight(config: Headers) -> Vec<(String, String)> {
    let m = HeadersMiddleware::new(&config);
    let mut req = request("OPTIONS", PREFLIGHT);
    let answer = m
        .request(&mut req, client(false), &mut Upstream::default())
        .expect_err("answered");
    assert_eq!(answer.status(), StatusCode::OK);
    names(answer.headers())
}

#[test]
fn preflights_are_answered_here() {
    let base = Headers {
        access_control_allow_methods: strings(&["GET", "OPTIONS", "PUT"]),
        access_control_allow_origin_list: strings(&["https://foo.bar.org"]),
        access_control_max_age: Some(600),
        ..Headers::default()
    };
    assert_eq!(
        preflight(base.clone()),
        pairs(&[
            ("content-length", "0"),
            ("access-control-allow-origin", "https://foo.bar.org"),
            ("access-control-max-age", "600"),
            ("access-control-allow-methods", "GET,OPTIONS,PUT"),
        ])
    );
    let wildcard = Headers {
        access_control_allow_origin_list: strings(&["*"]),
        ..base.clone()
    };
    assert!(
        preflight(wildcard.clone()).contains(&("access-control-allow-origin".into(), "*".into()))
    );
    let credentials = Headers {
        access_control_allow_credentials: true,
        ..wildcard.clone()
    };
    let got = preflight(credentials);
    assert!(
        got.contains(&(
            "access-control-allow-origin".into(),
            "https://foo.bar.org".into()
        )),
        "no * with credentials"
    );
    assert!(got.contains(&("access-control-allow-credentials".into(), "true".into())));
    let headers = Headers {
        access_control_allow_headers: strings(&["origin", "X-Forwarded-For"]),
        access_control_max_age: None,
        ..wildcard
    };
    let got = preflight(headers);
    assert!(got.contains(&(
        "access-control-allow-headers".into(),
        "origin,X-Forwarded-For".into()
    )));
    assert!(
        !got.iter().any(|(k, _)| k == "access-control-max-age"),
        "nil max age"
    );
    let echo = Headers {
        access_control_allow_headers: strings(&["*"]),
        access_control_allow_methods: strings(&["*"]),
        access_control_allow_credentials: true,
        ..base
    };
    let got = preflight(echo);
    assert!(got.contains(&("access-control-allow-headers".into(), "origin".into())));
    assert!(got.contains(&("access-control-allow-methods".into(), "GET".into())));
}

#[test]
fn custom_request_headers_are_not_taken_for_cors() {
    let m = HeadersMiddleware::new(&Headers {
        custom_request_headers: vec![edit("foo", "bar")],
        ..Headers::default()
    });
    let mut req = request("OPTIONS", PREFLIGHT);
    let edits = m
        .request(&mut req, client(false), &mut Upstream::default())
        .expect("forwarded");
    assert_eq!(req.headers()["foo"], "bar");
    let resp = m.response(status_answer(StatusCode::OK), edits);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
}

fn simple(config: Headers, origin: &str, backend: &[(&str, &str)]) -> HeaderMap {
    let m = HeadersMiddleware::new(&config);
    let mut req = request("GET", &[("origin", origin)]);
    let edits = m
        .request(&mut req, client(false), &mut Upstream::default())
        .expect("forwarded");
    let mut resp = Response::new(body::empty());
    for (k, v) in backend {
        resp.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    m.response(resp, edits).headers().clone()
}

#[test]
fn simple_cors_requests() {
    let one = Headers {
        access_control_allow_origin_list: strings(&["https://foo.bar.org"]),
        ..Headers::default()
    };
    assert_eq!(
        names(&simple(one.clone(), "https://foo.bar.org", &[])),
        pairs(&[("access-control-allow-origin", "https://foo.bar.org")])
    );
    let regex = Headers {
        access_control_allow_origin_list_regex: vec![Pattern(
            regex::Regex::new(r"^https://([a-z]+)\.bar\.org$").unwrap(),
        )],
        ..Headers::default()
    };
    assert_eq!(
        simple(regex.clone(), "https://foo.bar.org", &[])["access-control-allow-origin"],
        "https://foo.bar.org"
    );
    assert!(
        simple(regex, "https://bar.org", &[]).is_empty(),
        "no match, no header"
    );
    assert!(simple(one.clone(), "", &[]).is_empty());
    let star = Headers {
        access_control_allow_origin_list: strings(&["*"]),
        ..Headers::default()
    };
    let got = simple(
        star,
        "https://foo.bar.org",
        &[("access-control-allow-origin", "http://foo.bar.org")],
    );
    assert_eq!(
        got.get_all("access-control-allow-origin")
            .iter()
            .collect::<Vec<_>>(),
        ["*"],
        "set, not added"
    );
    let expose = Headers {
        access_control_expose_headers: strings(&["origin", "X-Forwarded-For"]),
        access_control_allow_credentials: true,
        ..one.clone()
    };
    let got = simple(expose, "https://foo.bar.org", &[]);
    assert_eq!(
        got["access-control-expose-headers"],
        "origin,X-Forwarded-For"
    );
    assert_eq!(got["access-control-allow-credentials"], "true");
    let vary = Headers {
        add_vary_header: true,
        ..one
    };
    assert_eq!(
        simple(vary.clone(), "https://foo.bar.org", &[])["vary"],
        "Origin"
    );
    assert_eq!(
        simple(vary.clone(), "https://foo.bar.org", &[("vary", "Testing")])["vary"],
        "Testing,Origin"
    );
    assert_eq!(
        simple(vary, "https://foo.bar.org", &[("vary", "Origin")])["vary"],
        "Origin"
    );
}

#[test]
fn custom_headers_set_and_remove() {
    let m = HeadersMiddleware::new(&Headers {
        custom_request_headers: vec![
            edit("X-Custom-Request-Header", "test_request"),
            edit("Foo", ""),
            edit("Host", "example.com"),
            edit("X-Forwarded-Proto", "https"),
        ],
        custom_response_headers: vec![
            edit("X-Custom-Response-Header", "value"),
            edit("Server", ""),
        ],
        ..Headers::default()
    });
    let mut req = request("GET", &[("foo", "bar"), ("x-custom-request-header", "old")]);
    let mut upstream = Upstream::default();
    let edits = m.request(&mut req, client(false), &mut upstream).unwrap();
    assert_eq!(req.headers()["x-custom-request-header"], "test_request");
    assert!(!req.headers().contains_key("foo"));
    assert_eq!(
        req.headers()["host"],
        "example.org",
        "the Host is changed upstream only"
    );
    assert_eq!(upstream.host.as_ref().unwrap(), "example.com");
    assert_eq!(upstream.forwarded, vec![edit("x-forwarded-proto", "https")]);
    let mut resp = Response::new(body::empty());
    resp.headers_mut()
        .insert("server", "nginx".parse().unwrap());
    let resp = m.response(resp, edits);
    assert_eq!(resp.headers()["x-custom-response-header"], "value");
    assert!(!resp.headers().contains_key("server"));
}

fn secure(config: Headers, tls: bool, headers: &[(&str, &str)]) -> Result<HeaderMap, Answer> {
    let m = HeadersMiddleware::new(&config);
    let mut req = request("GET", headers);
    let edits = m.request(&mut req, client(tls), &mut Upstream::default())?;
    Ok(m.response(Response::new(body::empty()), edits)
        .headers()
        .clone())
}

#[test]
fn security_headers() {
    let sts = Headers {
        sts_seconds: 31_536_000,
        sts_include_subdomains: true,
        sts_preload: true,
        ..Headers::default()
    };
    let got = secure(sts.clone(), true, &[]).unwrap();
    assert_eq!(
        got["strict-transport-security"],
        "max-age=31536000; includeSubDomains; preload"
    );
    assert!(
        !secure(sts.clone(), false, &[])
            .unwrap()
            .contains_key("strict-transport-security"),
        "not over plain HTTP"
    );
    let forced = Headers {
        force_sts_header: true,
        ..sts.clone()
    };
    assert!(secure(forced, false, &[])
        .unwrap()
        .contains_key("strict-transport-security"));
    let proxied = Headers {
        ssl_proxy_headers: vec![("x-forwarded-proto".parse().unwrap(), "https".into())],
        ..sts
    };
    assert!(secure(proxied, false, &[("x-forwarded-proto", "https")])
        .unwrap()
        .contains_key("strict-transport-security"));
    let all = Headers {
        frame_deny: true,
        content_type_nosniff: true,
        browser_xss_filter: true,
        referrer_policy: "same-origin".into(),
        content_security_policy: "default-src 'self'".into(),
        permissions_policy: "camera=()".into(),
        ..Headers::default()
    };
    let got = secure(all.clone(), false, &[]).unwrap();
    assert_eq!(got["x-frame-options"], "DENY");
    assert_eq!(got["x-content-type-options"], "nosniff");
    assert_eq!(got["x-xss-protection"], "1; mode=block");
    assert_eq!(got["referrer-policy"], "same-origin");
    assert_eq!(got["content-security-policy"], "default-src 'self'");
    assert_eq!(got["permissions-policy"], "camera=()");
    let custom = Headers {
        custom_frame_options_value: "SAMEORIGIN".into(),
        custom_browser_xss_value: "0".into(),
        ..all
    };
    let got = secure(custom, false, &[]).unwrap();
    assert_eq!(
        (
            got["x-frame-options"].to_str().unwrap(),
            got["x-xss-protection"].to_str().unwrap()
        ),
        ("SAMEORIGIN", "0")
    );
}

#[test]
fn allowed_hosts_and_ssl_redirects() {
    let hosts = Headers {
        allowed_hosts: strings(&["example.org"]),
        ..Headers::default()
    };
    assert!(secure(hosts.clone(), false, &[]).is_ok());
    let proxied = Headers {
        hosts_proxy_headers: vec!["x-forwarded-host".parse().unwrap()],
        ..hosts.clone()
    };
    let bad = secure(proxied, false, &[("x-forwarded-host", "evil.com")]).unwrap_err();
    assert_eq!(bad.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let dev = Headers {
        is_development: true,
        allowed_hosts: strings(&["other.org"]),
        ..Headers::default()
    };
    assert!(secure(dev, false, &[]).is_ok());
    let redirect = Headers {
        ssl_redirect: true,
        ..Headers::default()
    };
    let r = secure(redirect.clone(), false, &[]).unwrap_err();
    assert_eq!(
        (r.status(), r.headers()["location"].to_str().unwrap()),
        (StatusCode::MOVED_PERMANENTLY, "https://example.org/foo")
    );
    assert!(secure(redirect, true, &[]).is_ok());
    let temporary = Headers {
        ssl_redirect: true,
        ssl_temporary_redirect: true,
        ssl_host: "secure.example.org".into(),
        ..Headers::default()
    };
    let r = secure(temporary, false, &[]).unwrap_err();
    assert_eq!(
        (r.status(), r.headers()["location"].to_str().unwrap()),
        (
            StatusCode::TEMPORARY_REDIRECT,
            "https://secure.example.org/foo"
        )
    );
    let force = Headers {
        ssl_force_host: true,
        ssl_host: "secure.example.org".into(),
        ..Headers::default()
    };
    assert_eq!(
        secure(force, true, &[]).unwrap_err().status(),
        StatusCode::MOVED_PERMANENTLY
    );
}
