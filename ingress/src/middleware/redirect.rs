//! `redirectScheme` and `redirectRegex`: the request's URL is rebuilt
//! (`scheme://host[:port]/path?query`), rewritten, and when it changed the client is
//! sent there: 302 for GET and 307 for other methods, or 301 and 308 when permanent.
//!
//! The scheme is the connection's (`https` over TLS); redirectScheme, as Træfik's,
//! reads `X-Forwarded-Proto` first, which reaches it only from a trusted client (the
//! entrypoint removes an untrusted client's forwarding headers).

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use regex::Regex;

use super::{request_host, status_answer};
use crate::config::middlewares::{RedirectRegex, RedirectScheme};
use crate::proxy::body::ProxyBody;

/// `redirectScheme`, built.
#[derive(Debug)]
pub struct SchemeRedirect {
    scheme: String,
    /// `:port`, or empty.
    port: String,
    permanent: bool,
}

/// `redirectRegex`, built.
#[derive(Debug)]
pub struct RegexRedirect {
    regex: Regex,
    replacement: String,
    permanent: bool,
}

/// The parts of the URL a request was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// The host, IPv6 in brackets.
    pub host: String,
    /// `:port` or empty.
    pub port: String,
    /// Path and query as received.
    pub target: String,
}

impl RequestUrl {
    /// The URL of `req`, which came over TLS or not.
    pub fn of<B>(req: &Request<B>, tls: bool) -> RequestUrl {
        let (host, port) = split_host_port(request_host(req));
        let target = req
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        RequestUrl {
            scheme: if tls { "https" } else { "http" }.to_string(),
            host: host.to_string(),
            port: port.to_string(),
            target,
        }
    }

    /// `scheme://host:port/target` with the port kept as received.
    pub fn raw(&self) -> String {
        format!(
            "{}://{}{}{}",
            self.scheme, self.host, self.port, self.target
        )
    }
}

/// `host:port` into the host and `:port` (empty when there is none).
fn split_host_port(authority: &str) -> (&str, &str) {
    match authority.rfind(':') {
        Some(i)
            if !authority[i..].contains(']')
                && authority[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            (&authority[..i], &authority[i..])
        }
        _ => (authority, ""),
    }
}

fn is_default_port(scheme: &str, port: &str) -> bool {
    (scheme == "http" && port == ":80") || (scheme == "https" && port == ":443")
}

impl SchemeRedirect {
    /// Build from the configuration.
    pub fn new(c: &RedirectScheme) -> SchemeRedirect {
        let port = match &c.port {
            Some(p) if !is_default_port(&c.scheme, &format!(":{p}")) => format!(":{p}"),
            _ => String::new(),
        };
        SchemeRedirect {
            scheme: c.scheme.clone(),
            port,
            permanent: c.permanent,
        }
    }

    /// The URL to send the client to, or `None` when it is there already.
    pub fn target(&self, url: &RequestUrl) -> Option<String> {
        let mut port = url.port.as_str();
        if is_default_port(&url.scheme, port) {
            port = "";
        }
        let old = format!("{}://{}{}{}", url.scheme, url.host, port, url.target);
        let new = format!("{}://{}{}{}", self.scheme, url.host, self.port, url.target);
        (new != old).then_some(new)
    }

    /// The redirect for `req`, if it needs one. As Træfik's, the scheme is the
    /// request's `X-Forwarded-Proto` when it says `http`/`ws` or `https`/`wss` (any
    /// case), else the connection's: behind a TLS-terminating balancer the proxy trusts
    /// (`forwardedHeaders.trustedIPs`), an `https` request is not sent round again. An
    /// untrusted client's value never gets here: the entrypoint removed it.
    pub fn check<B>(&self, req: &Request<B>, tls: bool) -> Option<Response<ProxyBody>> {
        let mut url = RequestUrl::of(req, tls);
        if let Some(scheme) = forwarded_scheme(req.headers()) {
            url.scheme = scheme.to_string();
        }
        let location = self.target(&url)?;
        Some(redirect(req.method(), self.permanent, &location))
    }
}

/// The scheme an `X-Forwarded-Proto` names, read as Træfik's redirectScheme does: a
/// WebSocket's `ws`/`wss` as `http`/`https`, anything else ignored.
fn forwarded_scheme(headers: &header::HeaderMap) -> Option<&'static str> {
    let value = headers.get("x-forwarded-proto")?.to_str().ok()?;
    if value.eq_ignore_ascii_case("http") || value.eq_ignore_ascii_case("ws") {
        Some("http")
    } else if value.eq_ignore_ascii_case("https") || value.eq_ignore_ascii_case("wss") {
        Some("https")
    } else {
        None
    }
}

impl RegexRedirect {
    /// Build from the configuration.
    pub fn new(c: &RedirectRegex) -> RegexRedirect {
        RegexRedirect {
            regex: c.regex.0.clone(),
            replacement: c.replacement.clone(),
            permanent: c.permanent,
        }
    }

    /// The URL to send the client to, or `None` when the expression does not match or
    /// changes nothing.
    pub fn target(&self, url: &RequestUrl) -> Option<String> {
        let old = url.raw();
        if !self.regex.is_match(&old) {
            return None;
        }
        let new = self
            .regex
            .replace_all(&old, self.replacement.as_str())
            .into_owned();
        (new != old).then_some(new)
    }

    /// The redirect for `req`, if it needs one (the scheme is the connection's, as in
    /// Træfik's redirectRegex).
    pub fn check<B>(&self, req: &Request<B>, tls: bool) -> Option<Response<ProxyBody>> {
        let location = self.target(&RequestUrl::of(req, tls))?;
        Some(redirect(req.method(), self.permanent, &location))
    }
}

/// Træfik's status for a redirect: 302/307, or 301/308 when permanent (the second of
/// each for methods other than GET).
pub fn redirect_status(method: &Method, permanent: bool) -> StatusCode {
    match (permanent, method == Method::GET) {
        (false, true) => StatusCode::FOUND,
        (false, false) => StatusCode::TEMPORARY_REDIRECT,
        (true, true) => StatusCode::MOVED_PERMANENTLY,
        (true, false) => StatusCode::PERMANENT_REDIRECT,
    }
}

/// A redirect to `location` with the status text as body; a location that cannot be a
/// header is a 500.
pub fn redirect(method: &Method, permanent: bool, location: &str) -> Response<ProxyBody> {
    redirect_with(redirect_status(method, permanent), location)
}

/// A redirect with `status` to `location`.
pub fn redirect_with(status: StatusCode, location: &str) -> Response<ProxyBody> {
    let Ok(value) = HeaderValue::from_str(location) else {
        return status_answer(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut resp = status_answer(status);
    resp.headers_mut().insert(header::LOCATION, value);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::middlewares::Pattern;

    fn req(method: &str, host: &str, target: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(target)
            .header("host", host)
            .body(())
            .unwrap()
    }

    fn scheme(scheme: &str, port: Option<&str>, permanent: bool) -> SchemeRedirect {
        SchemeRedirect::new(&RedirectScheme {
            scheme: scheme.into(),
            port: port.map(String::from),
            permanent,
        })
    }

    fn location(m: &SchemeRedirect, host: &str, tls: bool) -> Option<(u16, String)> {
        let r = m.check(&req("GET", host, "/"), tls)?;
        Some((
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap().to_string(),
        ))
    }

    /// Træfik's `redirect_scheme_test.go` cases with `X-Forwarded-Proto`: `https` or
    /// `wss` (any case) count as already secure, `http`/`ws` as plain even over TLS, an
    /// unknown value is ignored.
    #[test]
    fn redirect_scheme_reads_x_forwarded_proto_as_træfik() {
        let https = scheme("https", None, false);
        let with = |proto: &str, tls: bool| {
            let mut r = req("GET", "foo", "/");
            r.headers_mut()
                .insert("x-forwarded-proto", proto.parse().unwrap());
            https.check(&r, tls).map(|resp| {
                let location = resp.headers()["location"].to_str().unwrap().to_string();
                (resp.status().as_u16(), location)
            })
        };
        let moved = Some((302, "https://foo/".to_string()));
        assert_eq!(with("http", false), moved);
        assert_eq!(with("https", false), None);
        assert_eq!(with("HTTPS", false), None);
        assert_eq!(with("bar", false), moved);
        assert_eq!(with("ws", false), moved);
        assert_eq!(with("wss", false), None);
        assert_eq!(with("http", true), moved, "the header wins over TLS");
        let http = scheme("http", None, false);
        let mut r = req("GET", "foo", "/");
        r.headers_mut()
            .insert("x-forwarded-proto", "https".parse().unwrap());
        let resp = http.check(&r, false).expect("https → http");
        assert_eq!(resp.headers()["location"], "http://foo/");
        // redirectRegex matches the connection's URL, whatever the header says.
        let regex = RegexRedirect::new(&RedirectRegex {
            regex: Pattern(Regex::new(r"http://foo:80").unwrap()),
            replacement: "https://foo:443".into(),
            permanent: false,
        });
        let mut r = req("GET", "foo:80", "/");
        r.headers_mut()
            .insert("x-forwarded-proto", "https".parse().unwrap());
        let resp = regex
            .check(&r, false)
            .expect("the regex matches http://foo:80");
        assert_eq!(resp.headers()["location"], "https://foo:443/");
    }

    /// Cases from Træfik's `redirect_scheme_test.go`.
    #[test]
    fn redirect_scheme_as_træfik() {
        let https = scheme("https", None, false);
        assert_eq!(
            location(&https, "foo", false),
            Some((302, "https://foo/".into()))
        );
        assert_eq!(location(&https, "foo", true), None, "already https");
        assert_eq!(
            location(&https, "foo:8080", false),
            Some((302, "https://foo/".into()))
        );
        assert_eq!(
            location(&https, "foo:443", false),
            Some((302, "https://foo/".into()))
        );
        assert_eq!(
            location(&https, "foo:8000", true),
            Some((302, "https://foo/".into()))
        );
        assert_eq!(
            location(&https, "foo:80", true),
            Some((302, "https://foo/".into()))
        );
        assert_eq!(
            location(&https, "[::1]", false),
            Some((302, "https://[::1]/".into()))
        );
        assert_eq!(
            location(&https, "[::1]:80", false),
            Some((302, "https://[::1]/".into()))
        );
        let p8443 = scheme("https", Some("8443"), false);
        assert_eq!(
            location(&p8443, "foo", false),
            Some((302, "https://foo:8443/".into()))
        );
        assert_eq!(
            location(&p8443, "foo:8000", false),
            Some((302, "https://foo:8443/".into()))
        );
        assert_eq!(
            location(&p8443, "foo:8000", true),
            Some((302, "https://foo:8443/".into()))
        );
        assert_eq!(
            location(&p8443, "[::1]:80", false),
            Some((302, "https://[::1]:8443/".into()))
        );
        let permanent = scheme("https", Some("8443"), true);
        assert_eq!(
            location(&permanent, "foo", false),
            Some((301, "https://foo:8443/".into()))
        );
        assert_eq!(
            location(&scheme("http", Some("80"), false), "foo:80", false),
            None
        );
        assert_eq!(
            location(&scheme("https", Some("443"), false), "foo:443", true),
            None
        );
        assert_eq!(
            location(&scheme("wss", Some("9443"), false), "foo", false),
            Some((302, "wss://foo:9443/".into()))
        );
        assert_eq!(
            location(&scheme("wss", None, false), "foo:5678", false),
            Some((302, "wss://foo/".into()))
        );
        assert_eq!(
            location(&scheme("http", Some("8181"), false), "foo:8080", false),
            Some((302, "http://foo:8181/".into()))
        );
    }

    #[test]
    fn methods_other_than_get_keep_their_method() {
        let m = scheme("https", None, false);
        let post = m.check(&req("POST", "foo", "/a?b"), false).unwrap();
        assert_eq!(post.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(post.headers()["location"], "https://foo/a?b");
        let m = scheme("https", None, true);
        assert_eq!(
            m.check(&req("HEAD", "foo", "/"), false).unwrap().status(),
            StatusCode::PERMANENT_REDIRECT
        );
        assert_eq!(
            m.check(&req("GET", "foo", "/"), false).unwrap().status(),
            StatusCode::MOVED_PERMANENTLY
        );
    }

    #[test]
    fn redirect_regex_rewrites_the_whole_url() {
        let m = RegexRedirect::new(&RedirectRegex {
            regex: Pattern(Regex::new(r"^http://localhost/(.*)").unwrap()),
            replacement: "http://mydomain/${1}".into(),
            permanent: false,
        });
        let r = m
            .check(&req("GET", "localhost", "/a/b?x=1"), false)
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()["location"], "http://mydomain/a/b?x=1");
        assert!(
            m.check(&req("GET", "other", "/a"), false).is_none(),
            "no match"
        );
        assert!(
            m.check(&req("GET", "localhost", "/a"), true).is_none(),
            "https does not match"
        );
        let same = RegexRedirect::new(&RedirectRegex {
            regex: Pattern(Regex::new(r"^(.*)$").unwrap()),
            replacement: "$1".into(),
            permanent: true,
        });
        assert!(
            same.check(&req("GET", "h", "/"), false).is_none(),
            "unchanged URL passes"
        );
        let port = RegexRedirect::new(&RedirectRegex {
            regex: Pattern(Regex::new(r"^http://(.*):8080/(.*)").unwrap()),
            replacement: "https://$1:8443/$2".into(),
            permanent: true,
        });
        let r = port.check(&req("PUT", "h:8080", "/p"), false).unwrap();
        assert_eq!(
            (r.status(), r.headers()["location"].to_str().unwrap()),
            (StatusCode::PERMANENT_REDIRECT, "https://h:8443/p")
        );
    }
}
