//! The `headers` middleware: CORS (preflights answered here), custom request and
//! response headers, and the security headers (`unrolled/secure`'s), in Træfik's order:
//!
//! ```text
//!  request:  CORS preflight? answer ─▶ custom request headers ─▶ host check (500),
//!            SSL redirects ─▶ next
//!  response: security headers ─▶ custom response headers ─▶ CORS headers, Vary
//! ```

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::redirect::redirect_with;
use super::{request_host, Answer, Client, Upstream};
use crate::config::middlewares::Headers;
use crate::proxy::body::{self, ProxyBody};

const ORIGIN: HeaderName = header::ORIGIN;
const X_FORWARDED: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-real-ip",
];

/// The security headers computed for one request.
type SecureHeaders = Vec<(HeaderName, HeaderValue)>;

/// `headers`, built.
#[derive(Debug)]
pub struct HeadersMiddleware {
    config: Headers,
    cors: bool,
    secure: bool,
}

/// What the response side needs from the request.
#[derive(Debug, Default)]
pub struct ResponseEdits {
    /// The request's `Origin`.
    origin: Option<HeaderValue>,
    /// The security headers for this request.
    secure: Vec<(HeaderName, HeaderValue)>,
    /// Whether the request came over TLS (or says so by `sslProxyHeaders`).
    ssl: bool,
}

impl HeadersMiddleware {
    /// Build from the configuration.
    pub fn new(config: &Headers) -> HeadersMiddleware {
        let c = config;
        let secure = !c.allowed_hosts.is_empty()
            || !c.hosts_proxy_headers.is_empty()
            || c.ssl_redirect
            || c.ssl_temporary_redirect
            || c.ssl_force_host
            || !c.ssl_host.is_empty()
            || !c.ssl_proxy_headers.is_empty()
            || c.sts_seconds != 0
            || c.sts_include_subdomains
            || c.sts_preload
            || c.force_sts_header
            || c.frame_deny
            || !c.custom_frame_options_value.is_empty()
            || c.content_type_nosniff
            || c.browser_xss_filter
            || !c.custom_browser_xss_value.is_empty()
            || !c.content_security_policy.is_empty()
            || !c.content_security_policy_report_only.is_empty()
            || !c.public_key.is_empty()
            || !c.referrer_policy.is_empty()
            || !c.feature_policy.is_empty()
            || !c.permissions_policy.is_empty()
            || c.is_development;
        HeadersMiddleware {
            cors: c.has_cors(),
            secure,
            config: config.clone(),
        }
    }

    /// The request side; `Err` is an answer (a preflight, a bad host, an SSL redirect).
    pub fn request(
        &self,
        req: &mut Request<ProxyBody>,
        client: Client,
        upstream: &mut Upstream,
    ) -> Result<ResponseEdits, Answer> {
        let c = &self.config;
        if self.cors {
            if let Some(answer) = self.preflight(req) {
                return Err(Box::new(answer));
            }
        }
        let mut edits = ResponseEdits {
            origin: req.headers().get(ORIGIN).cloned(),
            ..ResponseEdits::default()
        };
        for (name, value) in &c.custom_request_headers {
            if *name == header::HOST {
                if let Some(v) = value {
                    upstream.host = Some(v.clone());
                }
                continue;
            }
            if X_FORWARDED.contains(&name.as_str()) {
                upstream.forwarded.retain(|(n, _)| n != name);
                upstream.forwarded.push((name.clone(), value.clone()));
            }
            match value {
                Some(v) => {
                    req.headers_mut().insert(name.clone(), v.clone());
                }
                None => {
                    req.headers_mut().remove(name);
                }
            }
        }
        if self.secure {
            match self.secure_request(req, client) {
                Ok((secure, ssl)) => {
                    edits.secure = secure;
                    edits.ssl = ssl;
                }
                // The answer still passes the custom response headers (Træfik's Header
                // handler wraps the secure one).
                Err(answer) => return Err(Box::new(self.response(*answer, edits))),
            }
        }
        Ok(edits)
    }

    /// A CORS preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) is
    /// answered 200 with the CORS headers.
    fn preflight(&self, req: &Request<ProxyBody>) -> Option<Response<ProxyBody>> {
        let c = &self.config;
        let h = req.headers();
        let method = h
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .filter(|v| !v.is_empty())?;
        let origin = h.get(ORIGIN).filter(|v| !v.is_empty())?;
        if req.method() != Method::OPTIONS {
            return None;
        }
        let mut resp = Response::new(body::empty());
        let out = resp.headers_mut();
        if c.access_control_allow_credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        let star = |l: &[String]| l.iter().any(|x| x == "*");
        if star(&c.access_control_allow_headers) && c.access_control_allow_credentials {
            if let Some(asked) = h
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .filter(|v| !v.is_empty())
            {
                out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
        } else {
            put_list(
                out,
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                &c.access_control_allow_headers,
            );
        }
        if star(&c.access_control_allow_methods) && c.access_control_allow_credentials {
            out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method.clone());
        } else {
            put_list(
                out,
                header::ACCESS_CONTROL_ALLOW_METHODS,
                &c.access_control_allow_methods,
            );
        }
        if let Some(allowed) = self.match_origin(origin) {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        }
        if let Some(age) = c.access_control_max_age {
            out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
        self.expose(out);
        out.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        Some(resp)
    }

    fn expose(&self, out: &mut HeaderMap) {
        let c = &self.config;
        let list = &c.access_control_expose_headers;
        // `*` cannot go with credentials.
        let wildcard = list.iter().any(|x| x == "*") && c.access_control_allow_credentials;
        if !wildcard {
            put_list(out, header::ACCESS_CONTROL_EXPOSE_HEADERS, list);
        }
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, if it is allowed.
    fn match_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        let c = &self.config;
        let text = origin.to_str().ok()?;
        for item in &c.access_control_allow_origin_list {
            if item == text {
                return Some(origin.clone());
            }
            if item == "*" {
                // A wildcard cannot go with credentials: the origin itself is echoed.
                return Some(if c.access_control_allow_credentials {
                    origin.clone()
                } else {
                    HeaderValue::from_static("*")
                });
            }
        }
        c.access_control_allow_origin_list_regex
            .iter()
            .any(|re| re.0.is_match(text))
            .then(|| origin.clone())
    }

    /// Host check and SSL redirects; the security headers and whether the request is
    /// over TLS.
    fn secure_request(
        &self,
        req: &Request<ProxyBody>,
        client: Client,
    ) -> Result<(SecureHeaders, bool), Answer> {
        let c = &self.config;
        let host = c
            .hosts_proxy_headers
            .iter()
            .find_map(|h| {
                req.headers()
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
            })
            .unwrap_or_else(|| request_host(req));
        if !c.allowed_hosts.is_empty()
            && !c.is_development
            && !c.allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(host))
        {
            return Err(Box::new(super::text_answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Bad Host\n",
            )));
        }
        let ssl = client.tls
            || c.ssl_proxy_headers.iter().any(|(name, value)| {
                req.headers()
                    .get(name)
                    .is_some_and(|v| v.as_bytes() == value.as_bytes())
            });
        let status = if c.ssl_temporary_redirect {
            StatusCode::TEMPORARY_REDIRECT
        } else {
            StatusCode::MOVED_PERMANENTLY
        };
        let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let ssl_host = if c.ssl_host.is_empty() {
            host
        } else {
            c.ssl_host.as_str()
        };
        if c.ssl_redirect && !ssl && !c.is_development {
            return Err(Box::new(redirect_with(
                status,
                &format!("https://{ssl_host}{target}"),
            )));
        }
        if c.ssl_force_host && ssl_host != host {
            return Err(Box::new(redirect_with(
                status,
                &format!("https://{ssl_host}{target}"),
            )));
        }
        let mut out = Vec::new();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.push((HeaderName::from_static(name), v));
            }
        };
        if c.sts_seconds != 0 && (ssl || c.force_sts_header) && !c.is_development {
            let mut sts = format!("max-age={}", c.sts_seconds);
            if c.sts_include_subdomains {
                sts.push_str("; includeSubDomains");
            }
            if c.sts_preload {
                sts.push_str("; preload");
            }
            put("strict-transport-security", &sts);
        }
        if !c.custom_frame_options_value.is_empty() {
            put("x-frame-options", &c.custom_frame_options_value);
        } else if c.frame_deny {
            put("x-frame-options", "DENY");
        }
        if c.content_type_nosniff {
            put("x-content-type-options", "nosniff");
        }
        if !c.custom_browser_xss_value.is_empty() {
            put("x-xss-protection", &c.custom_browser_xss_value);
        } else if c.browser_xss_filter {
            put("x-xss-protection", "1; mode=block");
        }
        if !c.public_key.is_empty() && ssl && !c.is_development {
            put("public-key-pins", &c.public_key);
        }
        for (name, value) in [
            ("content-security-policy", &c.content_security_policy),
            (
                "content-security-policy-report-only",
                &c.content_security_policy_report_only,
            ),
            ("referrer-policy", &c.referrer_policy),
            ("feature-policy", &c.feature_policy),
            ("permissions-policy", &c.permissions_policy),
        ] {
            if !value.is_empty() {
                put(name, value);
            }
        }
        Ok((out, ssl))
    }

    /// The response side.
    pub fn response(
        &self,
        mut resp: Response<ProxyBody>,
        edits: ResponseEdits,
    ) -> Response<ProxyBody> {
        let c = &self.config;
        let h = resp.headers_mut();
        if edits.ssl && !c.ssl_host.is_empty() {
            let plain = format!("http://{}", c.ssl_host);
            let fixed = h
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .filter(|l| *l == plain || l.starts_with(&format!("{plain}/")))
                .and_then(|l| HeaderValue::from_str(&l.replacen("http:", "https:", 1)).ok());
            if let Some(l) = fixed {
                h.insert(header::LOCATION, l);
            }
        }
        for (name, value) in edits.secure {
            h.insert(name, value);
        }
        for (name, value) in &c.custom_response_headers {
            match value {
                Some(v) => {
                    h.insert(name.clone(), v.clone());
                }
                None => {
                    h.remove(name);
                }
            }
        }
        if !self.cors {
            return resp;
        }
        if let Some(allowed) = edits.origin.as_ref().and_then(|o| self.match_origin(o)) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        }
        if c.access_control_allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        self.expose(h);
        if c.add_vary_header {
            let vary = match h.get(header::VARY).and_then(|v| v.to_str().ok()) {
                Some("Origin") => None,
                Some(v) if !v.is_empty() => Some(format!("{v},Origin")),
                _ => Some("Origin".to_string()),
            };
            if let Some(v) = vary.and_then(|v| HeaderValue::from_str(&v).ok()) {
                h.insert(header::VARY, v);
            }
        }
        resp
    }
}

fn put_list(out: &mut HeaderMap, name: HeaderName, list: &[String]) {
    if list.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&list.join(",")) {
        out.insert(name, v);
    }
}

#[cfg(test)]
mod tests;
