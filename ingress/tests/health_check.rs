//! Active health checks end to end: a server failing its check leaves the rotation and
//! comes back when it passes, all failing gives 503, the check's request is Træfik's,
//! reported health (Docker's HEALTHCHECK) keeps a server out, and the checker stops
//! with its routes.

mod common;

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http::StatusCode;
use shoal_ingress::config::{HealthCheck, ReportedHealth};
use shoal_ingress::{Health, Proxy};

/// A health check as the backend saw it: method, target, Host and `X-Probe`.
type SeenCheck = (String, String, String, String);

/// A backend answering `name` on any path but `/health`, which answers `health`'s
/// status; it counts health checks and keeps the last one's head.
struct Checked {
    addr: std::net::SocketAddr,
    health: Arc<AtomicU16>,
    checks: Arc<AtomicUsize>,
    last_check: Arc<Mutex<Option<SeenCheck>>>,
}

async fn checked(name: &'static str) -> Checked {
    let health = Arc::new(AtomicU16::new(200));
    let checks = Arc::new(AtomicUsize::new(0));
    let last_check = Arc::new(Mutex::new(None));
    let (h, c, l) = (health.clone(), checks.clone(), last_check.clone());
    let addr = backend(move |req| {
        let (h, c, l) = (h.clone(), c.clone(), l.clone());
        async move {
            if req.uri().path() != "/health" {
                return reply(200, name);
            }
            c.fetch_add(1, Ordering::SeqCst);
            let header = |n: &str| {
                req.headers()
                    .get(n)
                    .map_or(String::new(), |v| v.to_str().unwrap().to_string())
            };
            *l.lock().unwrap() = Some((
                req.method().to_string(),
                req.uri().to_string(),
                header("host"),
                header("x-probe"),
            ));
            reply(h.load(Ordering::SeqCst), "")
        }
    })
    .await;
    Checked {
        addr,
        health,
        checks,
        last_check,
    }
}

fn fast_check() -> HealthCheck {
    let mut c = HealthCheck::new("/health");
    c.interval = Duration::from_millis(30);
    c.unhealthy_interval = Duration::from_millis(30);
    c.timeout = Duration::from_secs(2);
    c
}

/// A proxy routing `shop.test` to `servers`, checked with `check`.
async fn checked_proxy(
    servers: &[std::net::SocketAddr],
    check: HealthCheck,
) -> (Arc<Proxy>, std::net::SocketAddr) {
    let mut service = Service::over(servers);
    service.health_check = Some(check);
    common::proxy(routes(
        &[("r", "Host(`shop.test`)", "s")],
        vec![("s", service)],
    ))
    .await
}

/// Wait (up to 10 s) until `server`'s health as `route ls` shows it is `want`.
async fn wait_health(proxy: &Proxy, server: std::net::SocketAddr, want: Health) {
    for _ in 0..500 {
        let view = proxy.routes_view();
        let now = view[0]
            .backends
            .iter()
            .find(|b| b.address == server)
            .map(|b| b.health);
        if now == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{server} never became {want:?}: {:?}", proxy.routes_view());
}

async fn bodies(client: &HttpClient, proxy: std::net::SocketAddr, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (status, body) = get(client, proxy, "shop.test", "/").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        out.push(body);
    }
    out
}

#[tokio::test]
async fn a_failing_server_leaves_the_rotation_and_returns_when_it_passes() {
    let a = checked("a").await;
    let b = checked("b").await;
    let (proxy, addr) = checked_proxy(&[a.addr, b.addr], fast_check()).await;
    let client = client();
    let before = bodies(&client, addr, 4).await;
    assert!(
        before.contains(&"a".into()) && before.contains(&"b".into()),
        "{before:?}"
    );

    a.health.store(503, Ordering::SeqCst);
    wait_health(&proxy, a.addr, Health::Unhealthy).await;
    assert_eq!(bodies(&client, addr, 10).await, vec!["b"; 10]);

    a.health.store(200, Ordering::SeqCst);
    wait_health(&proxy, a.addr, Health::Healthy).await;
    let after = bodies(&client, addr, 4).await;
    assert!(after.contains(&"a".into()), "{after:?}");
}

#[tokio::test]
async fn all_servers_failing_gives_503() {
    let a = checked("a").await;
    let b = checked("b").await;
    let (proxy, addr) = checked_proxy(&[a.addr, b.addr], fast_check()).await;
    a.health.store(500, Ordering::SeqCst);
    b.health.store(404, Ordering::SeqCst);
    wait_health(&proxy, a.addr, Health::Unhealthy).await;
    wait_health(&proxy, b.addr, Health::Unhealthy).await;
    let (status, _) = get(&client(), addr, "shop.test", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_lone_unhealthy_server_is_not_picked_despite_the_panic_threshold() {
    let a = checked("a").await;
    let (proxy, addr) = checked_proxy(&[a.addr], fast_check()).await;
    a.health.store(503, Ordering::SeqCst);
    wait_health(&proxy, a.addr, Health::Unhealthy).await;
    let (status, _) = get(&client(), addr, "shop.test", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_check_sends_traefiks_request_with_the_options_given() {
    let a = checked("a").await;
    let mut check = fast_check();
    check.path = "/health?deep=1".into();
    check.hostname = Some("probe.test".into());
    check.method = http::Method::HEAD;
    check.headers = vec![("x-probe".parse().unwrap(), "yes".parse().unwrap())];
    check.status = Some(204);
    let (proxy, _) = checked_proxy(&[a.addr], check).await;
    // 200 is not the expected 204.
    wait_health(&proxy, a.addr, Health::Unhealthy).await;
    let last = a.last_check.lock().unwrap().clone().unwrap();
    assert_eq!(
        last,
        (
            "HEAD".into(),
            "/health?deep=1".into(),
            "probe.test".into(),
            "yes".into()
        )
    );
    a.health.store(204, Ordering::SeqCst);
    wait_health(&proxy, a.addr, Health::Healthy).await;
}

#[tokio::test]
async fn a_server_that_does_not_answer_on_the_check_port_leaves_the_rotation() {
    // Unanswered checks (refused) count towards the unhealthy threshold: out after
    // three in a row.
    let a = checked("a").await;
    let dead = dead_addr().await;
    let mut check = fast_check();
    check.unhealthy_threshold = 3;
    check.port = Some(dead.port());
    let (proxy, _) = checked_proxy(&[a.addr], check).await;
    wait_health(&proxy, a.addr, Health::Unhealthy).await;
    assert_eq!(
        a.checks.load(Ordering::SeqCst),
        0,
        "the check went to the other port"
    );
}

#[tokio::test]
async fn reported_health_keeps_a_server_out_until_it_is_healthy() {
    let a = named("a").await;
    let b = named("b").await;
    let mut service = Service::over(&[a, b]);
    service.servers[0].reported = ReportedHealth::Starting;
    let mut r = routes(
        &[("r", "Host(`shop.test`)", "s")],
        vec![("s", service.clone())],
    );
    let (proxy, addr) = common::proxy(r.clone()).await;
    let client = client();
    assert_eq!(bodies(&client, addr, 6).await, vec!["b"; 6]);
    assert_eq!(proxy.routes_view()[0].backends[0].health, Health::Starting);

    service.servers[0].reported = ReportedHealth::Healthy;
    service.servers[1].reported = ReportedHealth::Unhealthy;
    r.services.insert("s".into(), service);
    proxy.update(r).unwrap();
    assert_eq!(bodies(&client, addr, 6).await, vec!["a"; 6]);
    assert_eq!(proxy.routes_view()[0].backends[1].health, Health::Unhealthy);
}

#[tokio::test]
async fn the_checker_stops_when_its_service_leaves_the_routes() {
    let a = checked("a").await;
    let (proxy, _) = checked_proxy(&[a.addr], fast_check()).await;
    for _ in 0..500 {
        if a.checks.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(a.checks.load(Ordering::SeqCst) >= 2);
    proxy.update(shoal_ingress::Routes::default()).unwrap();
    // A check may be in flight at the swap; after that, none.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let settled = a.checks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        a.checks.load(Ordering::SeqCst),
        settled,
        "checks went on after removal"
    );
}
