//! One health check of one server: an HTTP/1.1 or h2c request on a new connection,
//! redirects followed as Go's client (and so Træfik) follows them, the status judged.
//!
//! ```text
//!  first_target(check, server) ─▶ send ─▶ 3xx + Location and follow_redirects?
//!        ▲                                   │ yes: follow() (at most 10 times)
//!        └───────────────────────────────────┘ no: classify(status) ─▶ ProbeResult
//! ```
//! `first_target`, `follow` and `classify` are pure; `send` does the IO. The proxy does
//! not resolve names, so a redirect to a host name (or to `https`) is not followed: its
//! 3xx status is the answer, as with `follow_redirects = false`.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::task::AbortOnDropHandle;

use super::ProbeResult;
use crate::config::{HealthCheck, UpstreamProtocol};
use crate::proxy::Dialer;

/// Go's limit: the eleventh redirect fails the check.
pub const MAX_REDIRECTS: usize = 10;

/// Where one request of a check goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The server (or where a redirect pointed).
    pub addr: SocketAddr,
    /// Path and query.
    pub path: String,
    /// Method.
    pub method: Method,
    /// Host header (HTTP/1) or authority (h2c).
    pub host: String,
}

/// The first request of a check of `server`.
pub fn first_target(check: &HealthCheck, server: SocketAddr) -> Target {
    let addr = SocketAddr::new(server.ip(), check.port.unwrap_or(server.port()));
    Target {
        addr,
        path: check.path.clone(),
        method: check.method.clone(),
        host: check.hostname.clone().unwrap_or_else(|| addr.to_string()),
    }
}

/// Whether `status` passes: the configured one, or else any of 200–399 (Træfik).
pub fn classify(expected: Option<u16>, status: u16) -> ProbeResult {
    let pass = match expected {
        Some(s) => s == status,
        None => (200..400).contains(&status),
    };
    if pass {
        ProbeResult::Pass
    } else {
        ProbeResult::WrongStatus(status)
    }
}

/// The request a redirect leads to, or `None` when the response is the answer (not a
/// redirect, or one that cannot be followed). 301, 302 and 303 turn methods other than
/// GET and HEAD into GET; a relative location keeps the Host, an absolute one sets it.
pub fn follow(current: &Target, status: u16, location: Option<&str>) -> Option<Target> {
    let method = match status {
        301..=303 if current.method != Method::GET && current.method != Method::HEAD => Method::GET,
        301..=303 | 307 | 308 => current.method.clone(),
        _ => return None,
    };
    let location = location?.trim();
    let absolute = location
        .strip_prefix("http://")
        .or_else(|| location.strip_prefix("//"));
    if let Some(rest) = absolute {
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let addr = authority.parse::<SocketAddr>().ok().or_else(|| {
            let ip = authority.trim_start_matches('[').trim_end_matches(']');
            ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 80))
        })?;
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        return Some(Target {
            addr,
            path,
            method,
            host: authority.to_string(),
        });
    }
    if location.is_empty() || location.contains("://") {
        return None;
    }
    let current_path = current.path.split('?').next().unwrap_or("/");
    let path = if location.starts_with('/') {
        location.to_string()
    } else if location.starts_with('?') {
        format!("{current_path}{location}")
    } else {
        let dir = &current_path[..current_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{location}")
    };
    http::uri::PathAndQuery::try_from(path.as_str()).ok()?;
    Some(Target {
        addr: current.addr,
        path,
        method,
        host: current.host.clone(),
    })
}

/// Check `server` once, within the check's timeout.
pub async fn probe(
    check: &HealthCheck,
    protocol: UpstreamProtocol,
    server: SocketAddr,
    dialer: &Dialer,
) -> ProbeResult {
    let protocol = check.protocol.unwrap_or(protocol);
    let work = async {
        let mut target = first_target(check, server);
        for _ in 0..=MAX_REDIRECTS {
            let (status, location) = match send(check, protocol, &target, dialer).await {
                Ok(answer) => answer,
                Err(e) => return ProbeResult::NoAnswer(e),
            };
            let next = check
                .follow_redirects
                .then(|| follow(&target, status, location.as_deref()))
                .flatten();
            match next {
                Some(next) => target = next,
                None => return classify(check.status, status),
            }
        }
        ProbeResult::NoAnswer(format!("stopped after {MAX_REDIRECTS} redirects"))
    };
    match tokio::time::timeout(check.timeout, work).await {
        Ok(result) => result,
        Err(_) => ProbeResult::NoAnswer(format!("no answer within {:?}", check.timeout)),
    }
}

/// One request on a new connection: the status and the `Location`.
async fn send(
    check: &HealthCheck,
    protocol: UpstreamProtocol,
    target: &Target,
    dialer: &Dialer,
) -> Result<(u16, Option<String>), String> {
    let stream = dialer
        .dial(target.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", target.addr))?;
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(stream);
    let mut builder = Request::builder().method(target.method.clone());
    builder = match protocol {
        UpstreamProtocol::Http1 => builder
            .uri(target.path.as_str())
            .header(header::HOST, target.host.as_str())
            .header(header::CONNECTION, HeaderValue::from_static("close")),
        UpstreamProtocol::H2c => builder
            .uri(format!("http://{}{}", target.host, target.path))
            .version(http::Version::HTTP_2),
    };
    for (name, value) in &check.headers {
        // As in Go, the Host comes from `hostname` only.
        if name != header::HOST {
            builder = builder.header(name, value);
        }
    }
    let req = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    // The connection is driven by a task of its own, ended with the check: the
    // response is the sender's to report, even when the server closes at once.
    let resp = match protocol {
        UpstreamProtocol::Http1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            let _driver = AbortOnDropHandle::new(tokio::spawn(conn));
            sender.send_request(req).await
        }
        UpstreamProtocol::H2c => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| e.to_string())?;
            let _driver = AbortOnDropHandle::new(tokio::spawn(conn));
            sender.send_request(req).await
        }
    }
    .map_err(|e| e.to_string())?;
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((resp.status().as_u16(), location))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> SocketAddr {
        "10.0.0.5:8080".parse().unwrap()
    }

    fn target(method: Method) -> Target {
        Target {
            addr: server(),
            path: "/a/health?x=1".into(),
            method,
            host: "shop.test".into(),
        }
    }

    #[test]
    fn the_first_request_uses_port_and_hostname_overrides() {
        let mut c = HealthCheck::new("/health");
        let t = first_target(&c, server());
        assert_eq!(t.addr, server());
        assert_eq!(t.host, "10.0.0.5:8080");
        assert_eq!(t.path, "/health");
        c.port = Some(9000);
        c.hostname = Some("shop.test".into());
        c.method = Method::HEAD;
        let t = first_target(&c, server());
        assert_eq!(t.addr, "10.0.0.5:9000".parse().unwrap());
        assert_eq!(t.host, "shop.test");
        assert_eq!(t.method, Method::HEAD);
    }

    #[test]
    fn statuses_pass_as_in_traefik() {
        for (expected, status, pass) in [
            (None, 200, true),
            (None, 204, true),
            (None, 308, true),
            (None, 199, false),
            (None, 404, false),
            (None, 503, false),
            (Some(404), 404, true),
            (Some(404), 200, false),
            (Some(503), 200, false),
        ] {
            let r = classify(expected, status);
            assert_eq!(r == ProbeResult::Pass, pass, "{expected:?} {status}");
            if !pass {
                assert_eq!(r, ProbeResult::WrongStatus(status));
            }
        }
    }

    #[test]
    fn redirects_within_the_server_keep_the_host() {
        let t = target(Method::GET);
        let n = follow(&t, 302, Some("/ready")).unwrap();
        assert_eq!(
            (n.addr, n.path.as_str(), n.host.as_str()),
            (server(), "/ready", "shop.test")
        );
        assert_eq!(follow(&t, 301, Some("other")).unwrap().path, "/a/other");
        assert_eq!(follow(&t, 307, Some("?y=2")).unwrap().path, "/a/health?y=2");
    }

    #[test]
    fn redirects_to_another_address_set_the_host() {
        let t = target(Method::GET);
        let n = follow(&t, 308, Some("http://10.0.0.6:81/h")).unwrap();
        assert_eq!(n.addr, "10.0.0.6:81".parse().unwrap());
        assert_eq!((n.path.as_str(), n.host.as_str()), ("/h", "10.0.0.6:81"));
        let n = follow(&t, 302, Some("http://[::1]")).unwrap();
        assert_eq!(n.addr, "[::1]:80".parse().unwrap());
        assert_eq!(n.path, "/");
    }

    #[test]
    fn methods_change_as_gos_client_changes_them() {
        let post = target(Method::POST);
        assert_eq!(follow(&post, 303, Some("/x")).unwrap().method, Method::GET);
        assert_eq!(follow(&post, 301, Some("/x")).unwrap().method, Method::GET);
        assert_eq!(follow(&post, 307, Some("/x")).unwrap().method, Method::POST);
        let head = target(Method::HEAD);
        assert_eq!(follow(&head, 302, Some("/x")).unwrap().method, Method::HEAD);
    }

    #[test]
    fn some_redirects_are_answers() {
        let t = target(Method::GET);
        assert_eq!(follow(&t, 200, Some("/x")), None, "not a redirect");
        assert_eq!(follow(&t, 304, Some("/x")), None, "not a redirect");
        assert_eq!(follow(&t, 302, None), None, "no Location");
        assert_eq!(follow(&t, 302, Some("https://10.0.0.6/")), None, "TLS");
        assert_eq!(follow(&t, 302, Some("http://other.test/")), None, "a name");
        assert_eq!(follow(&t, 302, Some("/a b")), None, "not a path");
    }
}
