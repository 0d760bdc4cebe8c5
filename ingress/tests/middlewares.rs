//! Træfik middlewares through the real proxy on loopback, from a routes file: redirects,
//! stripPrefix, basicAuth, rateLimit and compress, on the fast path and on hyper's.

mod common;

use std::io::Read;

use bytes::Bytes;
use common::*;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use shoal_ingress::config::ProxyConfig;
use shoal_ingress::ProxyOptions;

/// A backend that answers `<path> <x-forwarded-prefix>` and, for `/big`, 5000 bytes of
/// text.
async fn echo() -> std::net::SocketAddr {
    backend(|req| async move {
        if req.uri().path() == "/big" {
            let mut r = reply(200, &"compress me please ".repeat(263));
            r.headers_mut()
                .insert("content-type", "text/plain".parse().unwrap());
            return r;
        }
        let prefix = req
            .headers()
            .get("x-forwarded-prefix")
            .map_or("-", |v| v.to_str().unwrap());
        let user = req
            .headers()
            .get("x-user")
            .map_or("-", |v| v.to_str().unwrap());
        reply(200, &format!("{} {prefix} {user}", req.uri()))
    })
    .await
}

fn routes_file(backend: std::net::SocketAddr) -> String {
    format!(
        r#"
[services.app]
servers = [{{ url = "http://{backend}" }}]

[routers.secure]
rule = "Host(`old.test`)"
service = "app"
middlewares = ["to-https"]

[routers.api]
rule = "Host(`shop.test`) && PathPrefix(`/api`)"
service = "app"
middlewares = ["strip-api"]

[routers.admin]
rule = "Host(`admin.test`)"
service = "app"
middlewares = ["auth"]

[routers.limited]
rule = "Host(`limited.test`)"
service = "app"
middlewares = ["slow-down"]

[routers.zipped]
rule = "Host(`zip.test`)"
service = "app"
middlewares = ["gz"]

[middlewares.to-https.redirectScheme]
scheme = "https"
permanent = true

[middlewares.strip-api.stripPrefix]
prefixes = ["/api"]

[middlewares.auth.basicAuth]
users = ["test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"]
realm = "admins"
headerField = "X-User"

[middlewares.slow-down.rateLimit]
average = 1
period = "1m"
burst = 2

[middlewares.gz.compress]
"#
    )
}

async fn start(fast_path: bool) -> std::net::SocketAddr {
    let backend = echo().await;
    let config = ProxyConfig::from_toml(&routes_file(backend), "routes.toml").unwrap();
    let options = ProxyOptions {
        fast_path,
        ..ProxyOptions::default()
    };
    proxy_with(config.routes, options).await.1
}

async fn call(
    proxy: std::net::SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{proxy}{path}"))
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client()
        .request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn redirect_scheme_sends_clients_to_https() {
    for fast in [true, false] {
        let proxy = start(fast).await;
        let (status, headers, body) = call(proxy, "GET", "old.test:8080", "/cart?id=7", &[]).await;
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(headers["location"], "https://old.test/cart?id=7");
        assert_eq!(&body[..], b"Moved Permanently");
        let (status, headers, _) = call(proxy, "POST", "old.test", "/cart", &[]).await;
        assert_eq!(
            status,
            StatusCode::PERMANENT_REDIRECT,
            "a POST keeps its method"
        );
        assert_eq!(headers["location"], "https://old.test/cart");
    }
}

#[tokio::test]
async fn strip_prefix_reaches_the_backend_without_it() {
    let proxy = start(true).await;
    let (status, _, body) = call(proxy, "GET", "shop.test", "/api/items?page=2", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"/items?page=2 /api -");
    let (_, _, body) = call(proxy, "GET", "shop.test", "/api", &[]).await;
    assert_eq!(&body[..], b"/ /api -");
    let (status, _, _) = call(proxy, "GET", "shop.test", "/api//etc", &[]).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an unclean result is refused"
    );
}

#[tokio::test]
async fn basic_auth_challenges_and_admits() {
    for fast in [true, false] {
        let proxy = start(fast).await;
        let (status, headers, _) = call(proxy, "GET", "admin.test", "/", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers["www-authenticate"], "Basic realm=\"admins\"");
        let wrong = [("authorization", "Basic dGVzdDp3cm9uZw==")];
        assert_eq!(
            call(proxy, "GET", "admin.test", "/", &wrong).await.0,
            StatusCode::UNAUTHORIZED
        );
        let right = [("authorization", "Basic dGVzdDp0ZXN0")];
        let (status, _, body) = call(proxy, "GET", "admin.test", "/", &right).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"/ - test", "the user is named to the backend");
    }
}

#[tokio::test]
async fn rate_limit_lets_the_burst_through_then_429() {
    let proxy = start(true).await;
    for _ in 0..2 {
        assert_eq!(
            call(proxy, "GET", "limited.test", "/", &[]).await.0,
            StatusCode::OK
        );
    }
    let (status, headers, body) = call(proxy, "GET", "limited.test", "/", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(headers.contains_key("x-retry-in"));
    assert_eq!(&body[..], b"Too Many Requests");
    assert_eq!(
        call(proxy, "GET", "shop.test", "/api/x", &[]).await.0,
        StatusCode::OK,
        "other routers are not limited"
    );
}

#[tokio::test]
async fn compress_negotiates_and_leaves_head_and_identity_alone() {
    for fast in [true, false] {
        let proxy = start(fast).await;
        let (status, headers, body) = call(
            proxy,
            "GET",
            "zip.test",
            "/big",
            &[("accept-encoding", "br;q=0.5, gzip")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-encoding"], "gzip");
        assert_eq!(headers["vary"], "Accept-Encoding");
        assert!(!headers.contains_key("content-length"));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "compress me please ".repeat(263));
        assert!(body.len() < 200, "{}", body.len());
        let (_, headers, body) = call(
            proxy,
            "GET",
            "zip.test",
            "/big",
            &[("accept-encoding", "br")],
        )
        .await;
        assert_eq!(headers["content-encoding"], "br");
        let mut text = String::new();
        brotli::Decompressor::new(&body[..], 4096)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.len(), 19 * 263);
        let (_, headers, body) = call(proxy, "GET", "zip.test", "/big", &[]).await;
        assert!(
            !headers.contains_key("content-encoding"),
            "no Accept-Encoding"
        );
        assert_eq!(body.len(), 19 * 263);
        let (_, headers, _) = call(
            proxy,
            "HEAD",
            "zip.test",
            "/big",
            &[("accept-encoding", "gzip")],
        )
        .await;
        assert!(!headers.contains_key("content-encoding"), "HEAD");
        let (_, headers, body) = call(
            proxy,
            "GET",
            "zip.test",
            "/small",
            &[("accept-encoding", "gzip")],
        )
        .await;
        assert!(
            !headers.contains_key("content-encoding"),
            "under 1024 bytes"
        );
        assert_eq!(&body[..], b"/small - -");
    }
}
