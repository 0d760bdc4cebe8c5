//! Health settings of a service's servers: Træfik's active health check
//! (`loadbalancer.healthcheck.*`) with Envoy's healthy/unhealthy thresholds, and the
//! health a source outside the proxy reports for a server (Docker's `HEALTHCHECK`).
//!
//! | option (label after `…loadbalancer.healthcheck.`, file key) | default | meaning |
//! | --- | --- | --- |
//! | `path`                                  | required | path (and query) requested, relative |
//! | `interval`                              | `30s`    | between checks of a healthy server |
//! | `unhealthyinterval`, `unhealthy_interval` | `interval` | between checks of an unhealthy server |
//! | `timeout`                               | `5s`     | for the whole check (connect, redirects, response head) |
//! | `scheme`                                | the service's | `http` (HTTP/1.1) or `h2c` |
//! | `mode`                                  | `http`   | only `http` (gRPC health checks are not supported) |
//! | `port`                                  | server's | port to check instead of the server's |
//! | `hostname`                              | `IP:PORT` | Host header |
//! | `headers.<name>`, `headers = { … }`     | none     | request headers |
//! | `method`                                | `GET`    | request method |
//! | `status`                                | 200–399  | the only status that passes |
//! | `followredirects`, `follow_redirects`   | `true`   | follow up to 10 redirects to the same or another `IP:PORT` |
//! | `healthythreshold`, `healthy_threshold` | 1        | shoal's (Envoy's): passes in a row that bring an unhealthy server back |
//! | `unhealthythreshold`, `unhealthy_threshold` | 1    | shoal's (Envoy's): failures in a row that take a server out |
//!
//! Envoy requires both thresholds and has no defaults; 1 and 1 keep Træfik's behaviour
//! (one failed check takes a server out, one passed check brings it back). As in Envoy,
//! a server that answers with a status the check does not accept is out at once; the
//! unhealthy threshold counts checks that got no answer (refused, reset, timed out).
//! Durations are Go-style, as in Træfik: `10s`, `1m30s`, `500ms`, or a bare number of
//! seconds.

use std::collections::BTreeMap;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::Method;
use serde::{Deserialize, Serialize};

use super::labels::LabelError;
use super::{invalid, parse_duration, ConfigError, UpstreamProtocol};

/// Træfik's default interval between checks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Træfik's default check timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A validated active health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Path and query to request, starting with `/`.
    pub path: String,
    /// Time between the starts of two checks of a healthy server.
    pub interval: Duration,
    /// Time between the starts of two checks of an unhealthy server.
    pub unhealthy_interval: Duration,
    /// Limit for one check, redirects included.
    pub timeout: Duration,
    /// Protocol of the check; `None`: the service's.
    pub protocol: Option<UpstreamProtocol>,
    /// Port to check instead of the server's.
    pub port: Option<u16>,
    /// Host header (HTTP/1) or authority (h2c); `None`: the server's `IP:PORT`.
    pub hostname: Option<String>,
    /// The only status that passes; `None`: any of 200–399.
    pub status: Option<u16>,
    /// Request headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Request method.
    pub method: Method,
    /// Whether redirects are followed.
    pub follow_redirects: bool,
    /// Passed checks in a row that make an unhealthy server healthy (≥ 1).
    pub healthy_threshold: u32,
    /// Unanswered checks in a row that make a healthy server unhealthy (≥ 1).
    pub unhealthy_threshold: u32,
}

impl HealthCheck {
    /// A check of `path` with Træfik's defaults.
    pub fn new(path: &str) -> HealthCheck {
        HealthCheck {
            path: path.to_string(),
            interval: DEFAULT_INTERVAL,
            unhealthy_interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            protocol: None,
            port: None,
            hostname: None,
            status: None,
            headers: Vec::new(),
            method: Method::GET,
            follow_redirects: true,
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        }
    }

    /// Check values that typed fields cannot rule out; `path` prefixes errors.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        check_path(&format!("{path}.path"), &self.path)?;
        for (key, d) in [
            ("interval", self.interval),
            ("unhealthy_interval", self.unhealthy_interval),
            ("timeout", self.timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(
                    format!("{path}.{key}"),
                    "must be greater than zero",
                ));
            }
        }
        if self.port == Some(0) {
            return Err(invalid(format!("{path}.port"), "port 0"));
        }
        if let Some(s) = self.status {
            if !(100..=599).contains(&s) {
                return Err(invalid(
                    format!("{path}.status"),
                    format!("{s} is not an HTTP status (100-599)"),
                ));
            }
        }
        if let Some(h) = &self.hostname {
            if h.is_empty() || HeaderValue::from_str(h).is_err() || h.contains(['/', ' ']) {
                return Err(invalid(
                    format!("{path}.hostname"),
                    format!("`{h}` is not a host name"),
                ));
            }
        }
        if self.healthy_threshold == 0 || self.unhealthy_threshold == 0 {
            return Err(invalid(path, "thresholds must be at least 1"));
        }
        Ok(())
    }
}

fn check_path(at: &str, p: &str) -> Result<(), ConfigError> {
    let ok = p.starts_with('/')
        && !p.starts_with("//")
        && http::uri::PathAndQuery::try_from(p).is_ok_and(|pq| pq.as_str() == p);
    if ok {
        Ok(())
    } else {
        Err(invalid(
            at,
            format!("`{p}` is not a relative URL path like /health"),
        ))
    }
}

/// A health check as written in a file or in labels, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// Path (and query) to request.
    pub path: Option<String>,
    /// Between checks of a healthy server.
    pub interval: Option<String>,
    /// Between checks of an unhealthy server.
    #[serde(alias = "unhealthyInterval")]
    pub unhealthy_interval: Option<String>,
    /// For one check.
    pub timeout: Option<String>,
    /// `http` or `h2c`.
    pub scheme: Option<String>,
    /// `http` only.
    pub mode: Option<String>,
    /// Port to check.
    pub port: Option<u16>,
    /// Host header.
    pub hostname: Option<String>,
    /// Expected status.
    pub status: Option<u16>,
    /// Request headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// Request method.
    pub method: Option<String>,
    /// Whether redirects are followed.
    #[serde(alias = "followRedirects")]
    pub follow_redirects: Option<bool>,
    /// Passes in a row to become healthy.
    #[serde(alias = "healthyThreshold")]
    pub healthy_threshold: Option<u32>,
    /// Failures in a row to become unhealthy.
    #[serde(alias = "unhealthyThreshold")]
    pub unhealthy_threshold: Option<u32>,
}

impl HealthCheckSpec {
    /// The validated check; `path` (like `services.shop.healthcheck`) prefixes errors.
    pub fn to_check(&self, path: &str) -> Result<HealthCheck, ConfigError> {
        let at = |key: &str| format!("{path}.{key}");
        let p = self
            .path
            .as_deref()
            .ok_or_else(|| invalid(at("path"), "a health check needs a path, like /health"))?;
        let mut c = HealthCheck::new(p.trim());
        let dur = |v: &Option<String>, key: &str| -> Result<Option<Duration>, ConfigError> {
            v.as_deref()
                .map(|t| parse_go_duration(t).map_err(|m| invalid(at(key), m)))
                .transpose()
        };
        if let Some(d) = dur(&self.interval, "interval")? {
            c.interval = d;
        }
        c.unhealthy_interval =
            dur(&self.unhealthy_interval, "unhealthy_interval")?.unwrap_or(c.interval);
        if let Some(d) = dur(&self.timeout, "timeout")? {
            c.timeout = d;
        }
        if let Some(s) = &self.scheme {
            c.protocol = Some(match s.trim().to_ascii_lowercase().as_str() {
                "http" => UpstreamProtocol::Http1,
                "h2c" => UpstreamProtocol::H2c,
                "https" => {
                    return Err(invalid(
                        at("scheme"),
                        "https is not supported: shoal speaks plain HTTP/1.1 or h2c to servers",
                    ))
                }
                other => {
                    return Err(invalid(
                        at("scheme"),
                        format!("unknown scheme `{other}`, expected http or h2c"),
                    ))
                }
            });
        }
        if let Some(m) = &self.mode {
            match m.trim().to_ascii_lowercase().as_str() {
                "http" => {}
                "grpc" => {
                    return Err(invalid(
                        at("mode"),
                        "gRPC health checks are not supported; use mode http",
                    ))
                }
                other => {
                    return Err(invalid(
                        at("mode"),
                        format!("unknown mode `{other}`, expected http"),
                    ))
                }
            }
        }
        c.port = self.port;
        c.hostname = self.hostname.as_ref().map(|h| h.trim().to_string());
        c.status = self.status;
        for (name, value) in self.headers.iter().flatten() {
            let n = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| invalid(at("headers"), format!("`{name}` is not a header name")))?;
            let v = HeaderValue::from_str(value).map_err(|_| {
                invalid(
                    format!("{path}.headers.{name}"),
                    format!("`{value}` is not a header value"),
                )
            })?;
            c.headers.push((n, v));
        }
        if let Some(m) = &self.method {
            let upper = m.trim().to_ascii_uppercase();
            c.method = Method::from_bytes(upper.as_bytes())
                .ok()
                .filter(|_| !upper.is_empty())
                .ok_or_else(|| invalid(at("method"), format!("`{m}` is not a method")))?;
        }
        c.follow_redirects = self.follow_redirects.unwrap_or(true);
        c.healthy_threshold = self.healthy_threshold.unwrap_or(1);
        c.unhealthy_threshold = self.unhealthy_threshold.unwrap_or(1);
        c.validate(path)?;
        Ok(c)
    }

    /// A spec from labels: `(option after "healthcheck.", label key, value)`. Option
    /// names are case-insensitive, as in Træfik.
    pub fn from_labels<'a>(
        labels: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Result<HealthCheckSpec, LabelError> {
        let mut spec = HealthCheckSpec::default();
        for (option, key, value) in labels {
            let err = |message: String| LabelError {
                key: key.to_string(),
                message,
            };
            let number = |what: &str| -> Result<u32, LabelError> {
                value
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("`{value}` is not a valid {what}")))
            };
            let text = Some(value.trim().to_string());
            let lower = option.to_ascii_lowercase();
            if let Some(name) = lower.strip_prefix("headers.") {
                // The header's own spelling is kept (names are case-insensitive anyway).
                let name = &option[option.len() - name.len()..];
                spec.headers
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name.to_string(), value.to_string());
                continue;
            }
            match lower.as_str() {
                "path" => spec.path = text,
                "interval" => spec.interval = text,
                "unhealthyinterval" => spec.unhealthy_interval = text,
                "timeout" => spec.timeout = text,
                "scheme" => spec.scheme = text,
                "mode" => spec.mode = text,
                "hostname" => spec.hostname = text,
                "method" => spec.method = text,
                "port" => {
                    let p = number("port")?;
                    spec.port = Some(
                        u16::try_from(p)
                            .map_err(|_| err(format!("`{value}` is not a valid port")))?,
                    );
                }
                "status" => {
                    let s = number("status")?;
                    spec.status = Some(
                        u16::try_from(s)
                            .map_err(|_| err(format!("`{value}` is not an HTTP status")))?,
                    );
                }
                "followredirects" => {
                    spec.follow_redirects = Some(match value.trim().to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(err(format!("`{value}` is not true or false"))),
                    })
                }
                "healthythreshold" => spec.healthy_threshold = Some(number("threshold")?),
                "unhealthythreshold" => spec.unhealthy_threshold = Some(number("threshold")?),
                _ => return Err(err("unknown health check setting".to_string())),
            }
        }
        Ok(spec)
    }
}

/// A duration as Træfik reads one: Go's `10s`, `1m30s`, `250ms`, or a bare number of
/// seconds.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return parse_duration(&format!("{t}s"));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    if rest.is_empty() {
        return Err(format!("`{text}` is not a duration like 10s, 1m30s, 250ms"));
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_end = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(rest.len(), |i| digits + i);
        let part = parse_duration(&rest[..unit_end])
            .map_err(|_| format!("`{text}` is not a duration like 10s, 1m30s, 250ms"))?;
        total = total.saturating_add(part);
        rest = &rest[unit_end..];
    }
    Ok(total)
}

/// What a source outside the proxy reports about a server, such as Docker's
/// `HEALTHCHECK` state. A server takes traffic only when this allows it *and* it passes
/// the service's active health check (if any).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportedHealth {
    /// Nothing reported (Docker: no `HEALTHCHECK`, `none`): takes traffic.
    #[default]
    NotReported,
    /// Still starting (Docker: `starting`): no traffic until it is healthy.
    Starting,
    /// Healthy: takes traffic.
    Healthy,
    /// Unhealthy: no traffic.
    Unhealthy,
}

impl ReportedHealth {
    /// Whether the server may take traffic.
    pub fn takes_traffic(self) -> bool {
        matches!(self, ReportedHealth::NotReported | ReportedHealth::Healthy)
    }
}

#[cfg(test)]
mod tests;
