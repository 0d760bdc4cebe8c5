//! Test helpers: tiny hyper backends, a proxy on an ephemeral port, a client.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
pub use shoal_ingress::Service;
use shoal_ingress::{Proxy, ProxyOptions, Router, Routes};
use tokio::net::TcpListener;

pub type Resp = Response<Full<Bytes>>;

/// A response with `status` and `body`.
pub fn reply(status: u16, body: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

/// Serve `handler` over HTTP/1.1 (with upgrades) on an ephemeral port.
pub async fn backend<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// A backend that records request paths.
pub async fn recorder() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let addr = backend(move |req| {
        let s = s.clone();
        async move {
            s.lock().unwrap().push(req.uri().path().to_string());
            reply(200, "ok")
        }
    })
    .await;
    (addr, seen)
}

/// A backend that answers 200 with its `name`.
pub async fn named(name: &'static str) -> SocketAddr {
    backend(move |_req| async move { reply(200, name) }).await
}

/// An address where nothing listens.
pub async fn dead_addr() -> SocketAddr {
    // Bound but never listening: connections are refused at once, and no other process
    // can take the port while the test runs (the socket lives until the process ends).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    Box::leak(Box::new(socket));
    addr
}

/// Routes from `(router, rule, service)` and `(service, Service)`.
pub fn routes(routers: &[(&str, &str, &str)], services: Vec<(&str, Service)>) -> Routes {
    let mut r = Routes::default();
    for (name, rule, svc) in routers {
        r.routers
            .insert(name.to_string(), Router::new(rule, svc).unwrap());
    }
    for (name, s) in services {
        r.services.insert(name.to_string(), s);
    }
    r
}

/// A proxy serving `routes` on entrypoint "web" on an ephemeral port.
pub async fn proxy(routes: Routes) -> (Arc<Proxy>, SocketAddr) {
    proxy_with(routes, ProxyOptions::default()).await
}

pub async fn proxy_with(routes: Routes, options: ProxyOptions) -> (Arc<Proxy>, SocketAddr) {
    let proxy = Proxy::new(options).unwrap();
    proxy.update(routes).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.clone().serve("web", listener, None));
    (proxy, addr)
}

pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Send `method` `path` with `Host: host` through the proxy; return status, headers
/// and body text.
pub async fn send(
    client: &HttpClient,
    proxy: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    body: &str,
) -> (StatusCode, http::HeaderMap, String) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{proxy}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// GET shortcut returning status and body.
pub async fn get(
    client: &HttpClient,
    proxy: SocketAddr,
    host: &str,
    path: &str,
) -> (StatusCode, String) {
    let (s, _, b) = send(client, proxy, "GET", host, path, "").await;
    (s, b)
}
