//! The access log through the proxy: off by default, Træfik's lines when asked for.

mod common;

use std::time::Duration;

use common::*;
use shoal_ingress::access_log::{AccessLogConfig, AccessLogFormat};
use shoal_ingress::ProxyOptions;

fn options(path: &std::path::Path, format: AccessLogFormat) -> ProxyOptions {
    ProxyOptions {
        access_log: Some(AccessLogConfig {
            path: Some(path.to_path_buf()),
            format,
            buffering: 0,
        }),
        ..Default::default()
    }
}

/// Waits for `n` lines in the file.
async fn lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// docs: Træfik's access logs (observability/access-logs.md): the common format's
/// fields, `-` for what is missing, and the request count from start.
#[tokio::test]
async fn routed_and_unrouted_requests_get_one_common_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let shop = named("shop").await;
    let (_p, addr) = proxy_with(
        routes(
            &[("shop", "Host(`shop.test`)", "shop")],
            vec![("shop", Service::over(&[shop]))],
        ),
        options(&path, AccessLogFormat::Common),
    )
    .await;
    let c = client();
    let (status, _, _) = send(&c, addr, "GET", "shop.test", "/cart?id=7", "").await;
    assert_eq!(status, 200);
    let (status, _, _) = send(&c, addr, "POST", "nowhere.test", "/x", "").await;
    assert_eq!(status, 404);
    let got = lines(&path, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with("127.0.0.1 - - ["), "{}", got[0]);
    assert!(
        got[0].contains("] \"GET /cart?id=7 HTTP/1.1\" 200 4 \"-\" \"-\" 1 \"shop\" \"http://"),
        "{}",
        got[0]
    );
    assert!(got[0].ends_with("ms"), "{}", got[0]);
    assert!(
        got[1].contains("\"POST /x HTTP/1.1\" 404 ") && got[1].contains(" 2 \"-\" \"-\" "),
        "{}",
        got[1]
    );
}

#[tokio::test]
async fn json_lines_name_the_router_service_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.json");
    let shop = named("shop").await;
    let (_p, addr) = proxy_with(
        routes(
            &[("shop", "Host(`shop.test`)", "shop")],
            vec![("shop", Service::over(&[shop]))],
        ),
        options(&path, AccessLogFormat::Json),
    )
    .await;
    let (status, _, _) = send(&client(), addr, "GET", "shop.test:80", "/", "").await;
    assert_eq!(status, 200);
    let got = lines(&path, 1).await;
    let v: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(v["RouterName"], "shop");
    assert_eq!(v["ServiceName"], "shop");
    assert_eq!(v["ServiceAddr"], shop.to_string());
    assert_eq!(v["RequestHost"], "shop.test");
    assert_eq!(v["DownstreamStatus"], 200);
    assert_eq!(v["RetryAttempts"], 0);
    assert_eq!(v["entryPointName"], "web");
}

#[tokio::test]
async fn no_access_log_unless_asked() {
    assert_eq!(ProxyOptions::default().access_log, None);
    let bad = shoal_ingress::Proxy::new(options(
        std::path::Path::new("/nonexistent/dir/access.log"),
        AccessLogFormat::Common,
    ));
    let err = bad
        .err()
        .expect("an unopenable access log is refused")
        .to_string();
    assert!(err.contains("/nonexistent/dir/access.log"), "{err}");
}
