//! The access log, as Træfik keeps it: off unless asked for; one line per request in
//! the Common Log Format with Træfik's additions, or JSON with Træfik's field names.
//!
//! ```text
//!  request done ─▶ Entry (a few owned strings) ─▶ try_send ─▶ bounded queue ─┐
//!                  (queue full: dropped, counted)                           │
//!  writer thread ◀───────────────────────────────────────────────────────────┘
//!   ─▶ format ─▶ BufWriter ─▶ flush when the queue is empty or every N lines
//! ```
//! The request path never formats, never writes and never waits: a slow disk costs
//! log lines (counted in `shoal_ingress_access_log_dropped_total`), not requests.

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// Træfik's `common`: CLF plus request count, router, server URL and duration.
    #[default]
    Common,
    /// One JSON object per line, with Træfik's field names.
    Json,
}

impl std::str::FromStr for AccessLogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "common" => Ok(AccessLogFormat::Common),
            "json" => Ok(AccessLogFormat::Json),
            other => Err(format!(
                "access log format {other:?}: use \"common\" or \"json\""
            )),
        }
    }
}

/// Where and how the access log is written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessLogConfig {
    /// The file lines are appended to; standard output when `None`.
    pub path: Option<PathBuf>,
    pub format: AccessLogFormat,
    /// Lines held before a write (Træfik's `bufferingSize`); 0 writes as soon as the
    /// writer has nothing else queued.
    pub buffering: usize,
}

/// What one request leaves in the log.
#[derive(Debug, Clone)]
pub struct Entry {
    pub start: SystemTime,
    pub client: SocketAddr,
    pub entrypoint: Arc<str>,
    pub method: http::Method,
    pub host: String,
    pub path: String,
    pub protocol: http::Version,
    pub status: u16,
    /// The response's `content-length`, when it had one.
    pub size: Option<u64>,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// Requests the proxy received since it started, this one included.
    pub count: u64,
    pub router: String,
    pub service: String,
    pub backend: Option<SocketAddr>,
    pub duration: Duration,
    pub retries: u32,
    /// The request's `x-request-id`, trace and span, when tracing is on.
    pub trace: Option<TraceFields>,
}

/// What the access log says about a traced request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceFields {
    /// `x-request-id`.
    pub request_id: String,
    /// The trace ID (hex).
    pub trace_id: String,
    /// The proxy's span ID (hex).
    pub span_id: String,
}

/// Queue length past which lines are dropped rather than the request made to wait.
const QUEUE: usize = 16 * 1024;

/// The sending side of the log; cheap to call on every request.
pub struct AccessLog {
    tx: SyncSender<Entry>,
    dropped: prometheus::IntCounter,
}

/// Why the access log could not start.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error("cannot open the access log {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot register the access log's metric: {0}")]
    Metric(#[from] prometheus::Error),
    #[error("cannot start the access log writer: {0}")]
    Thread(std::io::Error),
}

impl AccessLog {
    /// Opens the destination and starts the writer thread.
    pub fn start(
        config: &AccessLogConfig,
        registry: &prometheus::Registry,
    ) -> Result<AccessLog, AccessLogError> {
        let out: Box<dyn Write + Send> = match &config.path {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| AccessLogError::Open {
                        path: path.clone(),
                        source,
                    })?,
            ),
            None => Box::new(std::io::stdout()),
        };
        let dropped = prometheus::IntCounter::new(
            "shoal_ingress_access_log_dropped_total",
            "Access log lines dropped because the writer fell behind.",
        )?;
        registry.register(Box::new(dropped.clone()))?;
        let (tx, rx) = sync_channel(QUEUE);
        let (format, buffering) = (config.format, config.buffering);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, out, format, buffering))
            .map_err(AccessLogError::Thread)?;
        Ok(AccessLog { tx, dropped })
    }

    /// Queues a line; when the writer is behind the line is dropped and counted.
    pub fn record(&self, entry: Entry) {
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }
}

/// The writer thread: until every sender is gone.
fn write_lines(
    rx: Receiver<Entry>,
    out: Box<dyn Write + Send>,
    format: AccessLogFormat,
    buffering: usize,
) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut line = String::with_capacity(512);
    let mut held = 0usize;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(entry) = next.take() {
            line.clear();
            match format {
                AccessLogFormat::Common => common_line(&entry, &mut line),
                AccessLogFormat::Json => json_line(&entry, &mut line),
            }
            line.push('\n');
            if out.write_all(line.as_bytes()).is_err() {
                return;
            }
            held += 1;
            if buffering > 0 && held >= buffering {
                let _ = out.flush();
                held = 0;
            }
            next = rx.try_recv().ok();
        }
        // The queue is empty: with no buffering asked for, the lines go out now.
        if buffering == 0 {
            let _ = out.flush();
            held = 0;
        }
    }
    let _ = out.flush();
}

fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `-` for nothing, as CLF has it.
fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// Træfik's common format:
/// `HOST - - [TIME] "METHOD PATH PROTO" STATUS SIZE "REFERER" "UA" COUNT "ROUTER" "URL" Nms`.
pub fn common_line(e: &Entry, out: &mut String) {
    let _ = write!(
        out,
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {} \"{}\" \"{}\" {}ms",
        e.client.ip(),
        clf_time(e.start),
        e.method,
        quoted(&e.path),
        protocol(e.protocol),
        e.status,
        e.size.map_or_else(|| "-".to_string(), |n| n.to_string()),
        quoted(or_dash(e.referer.as_deref().unwrap_or_default())),
        quoted(or_dash(e.user_agent.as_deref().unwrap_or_default())),
        e.count,
        quoted(or_dash(&e.router)),
        e.backend
            .map_or_else(|| "-".to_string(), |b| format!("http://{b}")),
        e.duration.as_millis(),
    );
}

/// A value inside CLF's double quotes: quotes and control characters escaped, as
/// Træfik (and Apache) do, so a request cannot forge a log line.
fn quoted(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.into()
}

/// One JSON object with Træfik's field names (`Duration` in nanoseconds).
pub fn json_line(e: &Entry, out: &mut String) {
    let backend = e.backend.map(|b| b.to_string());
    let value = serde_json::json!({
        "ClientAddr": e.client.to_string(),
        "ClientHost": e.client.ip().to_string(),
        "ClientPort": e.client.port().to_string(),
        "DownstreamStatus": e.status,
        "DownstreamContentSize": e.size.unwrap_or(0),
        "Duration": u64::try_from(e.duration.as_nanos()).unwrap_or(u64::MAX),
        "RequestAddr": e.host,
        "RequestHost": host_only(&e.host),
        "RequestMethod": e.method.as_str(),
        "RequestPath": e.path,
        "RequestProtocol": protocol(e.protocol),
        "RequestCount": e.count,
        "RetryAttempts": e.retries,
        "RouterName": e.router,
        "ServiceName": e.service,
        "ServiceAddr": backend.clone().unwrap_or_default(),
        "ServiceURL": backend.map(|b| format!("http://{b}")).unwrap_or_default(),
        "StartUTC": rfc3339(e.start),
        "entryPointName": &*e.entrypoint,
    });
    let mut value = value;
    if let Some(t) = &e.trace {
        // Træfik v3 names its OpenTelemetry IDs TraceId and SpanId.
        value["TraceId"] = serde_json::json!(t.trace_id);
        value["SpanId"] = serde_json::json!(t.span_id);
        value["request_X-Request-Id"] = serde_json::json!(t.request_id);
    }
    out.push_str(&value.to_string());
}

/// `Host` without its port (IPv6 brackets kept off too).
fn host_only(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Days since 1970-01-01 as (year, month, day) (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (date, seconds into the day, nanoseconds) of a time, in UTC.
fn split(t: SystemTime) -> ((i64, u32, u32), u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    (
        civil((secs / 86_400) as i64),
        secs % 86_400,
        d.subsec_nanos(),
    )
}

/// `06/Dec/2026:20:31:05 +0000`.
pub fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let ((y, m, d), s, _) = split(t);
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2026-12-06T20:31:05.123456789Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let ((y, m, d), s, ns) = split(t);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ns:09}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            // 2026-12-06T20:31:05.5Z
            start: UNIX_EPOCH + Duration::from_millis(1_796_589_065_500),
            client: "198.18.0.9:51234".parse().unwrap(),
            entrypoint: "web".into(),
            method: http::Method::GET,
            host: "shop.example.com:8080".into(),
            path: "/api/cart?id=1".into(),
            protocol: http::Version::HTTP_11,
            status: 200,
            size: Some(1234),
            referer: None,
            user_agent: Some("curl/8.5.0".into()),
            count: 42,
            router: "shop-api".into(),
            service: "shop-api".into(),
            backend: Some("10.0.1.5:8080".parse().unwrap()),
            duration: Duration::from_micros(2_600),
            retries: 1,
            trace: None,
        }
    }

    #[test]
    fn common_lines_read_like_traefiks() {
        let mut line = String::new();
        common_line(&entry(), &mut line);
        assert_eq!(
            line,
            "198.18.0.9 - - [06/Dec/2026:20:31:05 +0000] \"GET /api/cart?id=1 HTTP/1.1\" 200 1234 \"-\" \"curl/8.5.0\" 42 \"shop-api\" \"http://10.0.1.5:8080\" 2ms"
        );
    }

    #[test]
    fn a_request_cannot_forge_a_line() {
        let mut e = entry();
        e.user_agent = Some("x\"\n198.18.0.1 - - [forged]".into());
        e.path = "/a\"b".into();
        let mut line = String::new();
        common_line(&e, &mut line);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains("\"x\\\"\\x0a198.18.0.1 - - [forged]\""),
            "{line}"
        );
        assert!(line.contains("GET /a\\\"b HTTP/1.1"), "{line}");
    }

    #[test]
    fn traced_requests_log_their_ids() {
        let mut e = entry();
        let mut line = String::new();
        json_line(&e, &mut line);
        assert!(!line.contains("TraceId"), "{line}");
        e.trace = Some(TraceFields {
            request_id: "r-1".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
        });
        line.clear();
        json_line(&e, &mut line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["TraceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["SpanId"], "00f067aa0ba902b7");
        assert_eq!(v["request_X-Request-Id"], "r-1");
    }

    #[test]
    fn json_lines_have_traefiks_field_names() {
        let mut line = String::new();
        json_line(&entry(), &mut line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ClientHost"], "198.18.0.9");
        assert_eq!(v["DownstreamStatus"], 200);
        assert_eq!(v["Duration"], 2_600_000);
        assert_eq!(v["RequestHost"], "shop.example.com");
        assert_eq!(v["RequestAddr"], "shop.example.com:8080");
        assert_eq!(v["RetryAttempts"], 1);
        assert_eq!(v["RouterName"], "shop-api");
        assert_eq!(v["ServiceURL"], "http://10.0.1.5:8080");
        assert_eq!(v["StartUTC"], "2026-12-06T20:31:05.500000000Z");
        assert_eq!(v["entryPointName"], "web");
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(clf_time(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
    }

    #[test]
    fn formats_parse_and_bad_ones_say_what_works() {
        assert_eq!("json".parse(), Ok(AccessLogFormat::Json));
        assert_eq!("common".parse(), Ok(AccessLogFormat::Common));
        let e = "clf".parse::<AccessLogFormat>().unwrap_err();
        assert!(e.contains("\"common\" or \"json\""), "{e}");
    }

    #[test]
    fn lines_reach_the_file_and_an_unopenable_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let registry = prometheus::Registry::new();
        let log = AccessLog::start(
            &AccessLogConfig {
                path: Some(path.clone()),
                format: AccessLogFormat::Common,
                buffering: 0,
            },
            &registry,
        )
        .unwrap();
        for i in 0..3 {
            let mut e = entry();
            e.count = i;
            log.record(e);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() == 3 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{text:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let bad = AccessLog::start(
            &AccessLogConfig {
                path: Some(dir.path().join("missing/dir/access.log")),
                ..Default::default()
            },
            &prometheus::Registry::new(),
        );
        assert!(matches!(bad, Err(AccessLogError::Open { .. })));
    }
}
