//! Requests reach the service their rule names, by host, wildcard, path and priority.

mod common;

use common::*;
use http::StatusCode;

#[tokio::test]
async fn host_path_wildcard_and_priority_pick_the_right_service() {
    let a = named("a").await;
    let a_api = named("a-api").await;
    let b = named("b").await;
    let wild = named("wild").await;
    let api = named("api").await;
    let mut r = routes(
        &[
            ("a", "Host(`a.com`)", "a"),
            ("a-api", "Host(`a.com`) && PathPrefix(`/api`)", "a-api"),
            ("b", "Host(`b.com`) || Host(`bee.com`)", "b"),
            ("wild", "Host(`*.example.com`)", "wild"),
            ("api", "Host(`api.example.com`)", "api"),
            ("pinned", "PathPrefix(`/`)", "b"),
        ],
        vec![
            ("a", Service::over(&[a])),
            ("a-api", Service::over(&[a_api])),
            ("b", Service::over(&[b])),
            ("wild", Service::over(&[wild])),
            ("api", Service::over(&[api])),
        ],
    );
    // A catch-all with the lowest priority.
    r.routers.get_mut("pinned").unwrap().priority = -1;
    let (_proxy, addr) = proxy(r).await;
    let c = client();
    assert_eq!(
        get(&c, addr, "a.com", "/").await,
        (StatusCode::OK, "a".into())
    );
    assert_eq!(
        get(&c, addr, "A.COM:8080", "/api/x").await,
        (StatusCode::OK, "a-api".into())
    );
    assert_eq!(
        get(&c, addr, "bee.com", "/").await,
        (StatusCode::OK, "b".into())
    );
    assert_eq!(
        get(&c, addr, "www.example.com", "/").await,
        (StatusCode::OK, "wild".into())
    );
    assert_eq!(
        get(&c, addr, "api.example.com", "/").await,
        (StatusCode::OK, "api".into())
    );
    assert_eq!(
        get(&c, addr, "nobody.org", "/x").await,
        (StatusCode::OK, "b".into())
    );
}

#[tokio::test]
async fn unmatched_requests_get_404_and_explicit_priority_wins() {
    let a = named("a").await;
    let b = named("b").await;
    let mut r = routes(
        &[
            ("long", "Host(`a.com`) && PathPrefix(`/`)", "a"),
            ("short", "Host(`a.com`)", "b"),
        ],
        vec![("a", Service::over(&[a])), ("b", Service::over(&[b]))],
    );
    let (proxy, addr) = proxy(r.clone()).await;
    let c = client();
    assert_eq!(get(&c, addr, "a.com", "/").await.1, "a");
    assert_eq!(get(&c, addr, "z.com", "/").await.0, StatusCode::NOT_FOUND);
    r.routers.get_mut("short").unwrap().priority = 1000;
    proxy.update(r).unwrap();
    assert_eq!(get(&c, addr, "a.com", "/").await.1, "b");
    let view = proxy.routes_view();
    assert_eq!(view[0].router, "short");
    assert_eq!(view[0].backends[0].address, b);
}

#[tokio::test]
async fn forwarded_headers_are_added_and_hop_by_hop_headers_dropped() {
    let echo = backend(|req| async move {
        let h = req.headers();
        let get = |k: &str| {
            h.get(k)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        reply(
            200,
            &format!(
                "xff={} proto={} host={} fhost={} secret={} ka={}",
                get("x-forwarded-for"),
                get("x-forwarded-proto"),
                get("host"),
                get("x-forwarded-host"),
                get("x-secret"),
                get("keep-alive"),
            ),
        )
    })
    .await;
    let (_p, addr) = proxy(routes(
        &[("r", "Host(`a.com`)", "s")],
        vec![("s", Service::over(&[echo]))],
    ))
    .await;
    let c = client();
    let req = http::Request::builder()
        .uri(format!("http://{addr}/"))
        .header("host", "a.com")
        .header("x-forwarded-for", "192.0.2.1")
        .header("connection", "x-secret")
        .header("x-secret", "1")
        .header("keep-alive", "timeout=5")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    use http_body_util::BodyExt;
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        std::str::from_utf8(&text).unwrap(),
        "xff=127.0.0.1 proto=http host=a.com fhost=a.com secret= ka=",
        "the client's own X-Forwarded-For is dropped: no one is trusted by default"
    );
}

#[tokio::test]
async fn sticky_cookie_pins_a_client_to_one_server() {
    let one = named("one").await;
    let two = named("two").await;
    let mut s = Service::over(&[one, two]);
    s.sticky_cookie = Some("pin".into());
    let (_p, addr) = proxy(routes(&[("r", "Host(`a.com`)", "s")], vec![("s", s)])).await;
    let c = client();
    let (_, headers, first) = send(&c, addr, "GET", "a.com", "/", "").await;
    let cookie = headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("pin="), "{cookie}");
    for _ in 0..6 {
        let req = http::Request::builder()
            .uri(format!("http://{addr}/"))
            .header("host", "a.com")
            .header("cookie", &cookie)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = c.request(req).await.unwrap();
        assert!(resp.headers().get("set-cookie").is_none());
        use http_body_util::BodyExt;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, first.as_bytes());
    }
    // Without the cookie, round robin alternates.
    let x = get(&c, addr, "a.com", "/").await.1;
    let y = get(&c, addr, "a.com", "/").await.1;
    assert_ne!(x, y);
}

#[tokio::test]
async fn a_file_config_starts_its_entrypoints() {
    let a = named("a").await;
    let toml = format!(
        "[entrypoints.web]\naddress = \"127.0.0.1:0\"\n\
         [routers.r]\nrule = \"Host(`a.com`)\"\nservice = \"s\"\n\
         [services.s]\nservers = [{{ url = \"http://{a}\" }}]\n"
    );
    let config = shoal_ingress::ProxyConfig::from_toml(&toml, "test.toml").unwrap();
    let proxy = shoal_ingress::Proxy::new(Default::default()).unwrap();
    proxy.update(config.routes).unwrap();
    let started = proxy.start(&config.entrypoints).await.unwrap();
    assert_eq!(started[0].entrypoint, "web");
    assert_eq!(
        get(&client(), started[0].address, "a.com", "/").await,
        (StatusCode::OK, "a".into())
    );
    started[0].task.abort();
}
