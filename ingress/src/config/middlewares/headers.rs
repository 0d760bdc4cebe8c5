//! Options of the `headers` middleware: custom request and response headers, CORS, and
//! the security headers of `unrolled/secure` that Træfik passes on.

use http::header::{HeaderName, HeaderValue};

use super::super::{invalid, ConfigError};
use super::rewrite::Pattern;
use super::Opts;

/// A header to set, or to remove (`None`: the option's value was empty).
pub type HeaderEdit = (HeaderName, Option<HeaderValue>);

/// `headers`, validated. Field names follow Træfik's options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headers {
    /// `customRequestHeaders`: set before forwarding (`Host` sets the host sent upstream).
    pub custom_request_headers: Vec<HeaderEdit>,
    /// `customResponseHeaders`: set on the response.
    pub custom_response_headers: Vec<HeaderEdit>,
    /// `accessControlAllowCredentials`.
    pub access_control_allow_credentials: bool,
    /// `accessControlAllowHeaders`.
    pub access_control_allow_headers: Vec<String>,
    /// `accessControlAllowMethods`.
    pub access_control_allow_methods: Vec<String>,
    /// `accessControlAllowOriginList` (`*` for any).
    pub access_control_allow_origin_list: Vec<String>,
    /// `accessControlAllowOriginListRegex`.
    pub access_control_allow_origin_list_regex: Vec<Pattern>,
    /// `accessControlExposeHeaders`.
    pub access_control_expose_headers: Vec<String>,
    /// `accessControlMaxAge`, seconds.
    pub access_control_max_age: Option<i64>,
    /// `addVaryHeader`.
    pub add_vary_header: bool,
    /// `allowedHosts`: other hosts get 500 "Bad Host".
    pub allowed_hosts: Vec<String>,
    /// `hostsProxyHeaders`: where the host may be read instead of `Host`.
    pub hosts_proxy_headers: Vec<HeaderName>,
    /// `sslProxyHeaders`: header values that mean the request came over TLS.
    pub ssl_proxy_headers: Vec<(HeaderName, String)>,
    /// `stsSeconds` (0: no `Strict-Transport-Security`).
    pub sts_seconds: i64,
    /// `stsIncludeSubdomains`.
    pub sts_include_subdomains: bool,
    /// `stsPreload`.
    pub sts_preload: bool,
    /// `forceSTSHeader`: also over plain HTTP.
    pub force_sts_header: bool,
    /// `frameDeny`: `X-Frame-Options: DENY`.
    pub frame_deny: bool,
    /// `customFrameOptionsValue` (wins over `frameDeny`).
    pub custom_frame_options_value: String,
    /// `contentTypeNosniff`.
    pub content_type_nosniff: bool,
    /// `browserXssFilter`: `X-XSS-Protection: 1; mode=block`.
    pub browser_xss_filter: bool,
    /// `customBrowserXSSValue` (wins over `browserXssFilter`).
    pub custom_browser_xss_value: String,
    /// `contentSecurityPolicy`.
    pub content_security_policy: String,
    /// `contentSecurityPolicyReportOnly`.
    pub content_security_policy_report_only: String,
    /// `publicKey` (`Public-Key-Pins`, over TLS only).
    pub public_key: String,
    /// `referrerPolicy`.
    pub referrer_policy: String,
    /// `permissionsPolicy`.
    pub permissions_policy: String,
    /// `featurePolicy` (removed in Træfik v3, still honoured here).
    pub feature_policy: String,
    /// `isDevelopment`: no host check, SSL redirect or STS.
    pub is_development: bool,
    /// `sslRedirect` (removed in Træfik v3, which ignores it; honoured here as in v2).
    pub ssl_redirect: bool,
    /// `sslTemporaryRedirect`: 307 instead of 301 for the SSL redirects.
    pub ssl_temporary_redirect: bool,
    /// `sslHost`: the host to redirect to.
    pub ssl_host: String,
    /// `sslForceHost`: redirect to `sslHost` even over TLS.
    pub ssl_force_host: bool,
}

impl Headers {
    /// Whether any CORS option is set (then preflights are answered here).
    pub fn has_cors(&self) -> bool {
        self.access_control_allow_credentials
            || !self.access_control_allow_headers.is_empty()
            || !self.access_control_allow_methods.is_empty()
            || !self.access_control_allow_origin_list.is_empty()
            || !self.access_control_allow_origin_list_regex.is_empty()
            || !self.access_control_expose_headers.is_empty()
            || self.access_control_max_age.is_some()
            || self.add_vary_header
    }
}

fn header_name(path: &str, name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| invalid(path, format!("`{name}` is not a header name")))
}

fn header_value(path: &str, value: &str) -> Result<HeaderValue, ConfigError> {
    HeaderValue::from_str(value)
        .map_err(|_| invalid(path, format!("`{value}` is not a header value")))
}

fn edits(opts: &mut Opts, key: &str) -> Result<Vec<HeaderEdit>, ConfigError> {
    let Some(entries) = opts.map(key)? else {
        return Ok(Vec::new());
    };
    entries
        .into_iter()
        .map(|(path, name, value)| {
            let name = header_name(&path, &name)?;
            let value = match value.as_str() {
                "" => None,
                v => Some(header_value(&path, v)?),
            };
            Ok((name, value))
        })
        .collect()
}

fn list(opts: &mut Opts, key: &str) -> Result<Vec<String>, ConfigError> {
    Ok(opts.list(key)?.map(|(_, l)| l).unwrap_or_default())
}

fn text(opts: &mut Opts, key: &str) -> Result<String, ConfigError> {
    match opts.string(key)? {
        Some((path, v)) if !v.is_empty() => {
            header_value(&path, &v)?;
            Ok(v)
        }
        _ => Ok(String::new()),
    }
}

fn flag(opts: &mut Opts, key: &str) -> Result<bool, ConfigError> {
    Ok(opts.bool(key)?.unwrap_or(false))
}

pub(super) fn parse(opts: &mut Opts) -> Result<Headers, ConfigError> {
    let mut h = Headers {
        custom_request_headers: edits(opts, "customRequestHeaders")?,
        custom_response_headers: edits(opts, "customResponseHeaders")?,
        access_control_allow_credentials: flag(opts, "accessControlAllowCredentials")?,
        access_control_allow_headers: list(opts, "accessControlAllowHeaders")?,
        access_control_allow_methods: list(opts, "accessControlAllowMethods")?,
        access_control_allow_origin_list: list(opts, "accessControlAllowOriginList")?,
        access_control_expose_headers: list(opts, "accessControlExposeHeaders")?,
        access_control_max_age: opts.int("accessControlMaxAge")?,
        add_vary_header: flag(opts, "addVaryHeader")?,
        allowed_hosts: list(opts, "allowedHosts")?,
        sts_seconds: opts.int("stsSeconds")?.unwrap_or(0),
        sts_include_subdomains: flag(opts, "stsIncludeSubdomains")?,
        sts_preload: flag(opts, "stsPreload")?,
        force_sts_header: flag(opts, "forceSTSHeader")?,
        frame_deny: flag(opts, "frameDeny")?,
        custom_frame_options_value: text(opts, "customFrameOptionsValue")?,
        content_type_nosniff: flag(opts, "contentTypeNosniff")?,
        browser_xss_filter: flag(opts, "browserXssFilter")?,
        custom_browser_xss_value: text(opts, "customBrowserXSSValue")?,
        content_security_policy: text(opts, "contentSecurityPolicy")?,
        content_security_policy_report_only: text(opts, "contentSecurityPolicyReportOnly")?,
        public_key: text(opts, "publicKey")?,
        referrer_policy: text(opts, "referrerPolicy")?,
        permissions_policy: text(opts, "permissionsPolicy")?,
        feature_policy: text(opts, "featurePolicy")?,
        is_development: flag(opts, "isDevelopment")?,
        ssl_redirect: flag(opts, "sslRedirect")?,
        ssl_temporary_redirect: flag(opts, "sslTemporaryRedirect")?,
        ssl_host: text(opts, "sslHost")?,
        ssl_force_host: flag(opts, "sslForceHost")?,
        ..Headers::default()
    };
    if let Some((path, list)) = opts.list("accessControlAllowOriginListRegex")? {
        h.access_control_allow_origin_list_regex = list
            .iter()
            .map(|r| Pattern::new(&path, r))
            .collect::<Result<_, _>>()?;
    }
    if let Some((path, list)) = opts.list("hostsProxyHeaders")? {
        h.hosts_proxy_headers = list
            .iter()
            .map(|n| header_name(&path, n))
            .collect::<Result<_, _>>()?;
    }
    if let Some(entries) = opts.map("sslProxyHeaders")? {
        for (path, name, value) in entries {
            h.ssl_proxy_headers
                .push((header_name(&path, &name)?, value));
        }
    }
    for (key, values) in [
        ("accessControlAllowHeaders", &h.access_control_allow_headers),
        ("accessControlAllowMethods", &h.access_control_allow_methods),
        (
            "accessControlExposeHeaders",
            &h.access_control_expose_headers,
        ),
        (
            "accessControlAllowOriginList",
            &h.access_control_allow_origin_list,
        ),
    ] {
        let path = format!("{}.{key}", opts.path);
        header_value(&path, &values.join(","))?;
    }
    if h.sts_seconds < 0 {
        return Err(invalid(
            format!("{}.stsSeconds", opts.path),
            "must not be negative",
        ));
    }
    if h == Headers::default() {
        return Err(invalid(
            &opts.path,
            "a headers middleware needs at least one option",
        ));
    }
    Ok(h)
}
