//! Sends finished spans to an OpenTelemetry collector over OTLP/HTTP (JSON), in
//! batches, off the request path: recording a span never waits; when the queue is
//! full the span is dropped and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use super::span::{otlp_json, Span};

/// Spans waiting to be sent at most.
const QUEUE: usize = 8192;
/// Spans per export at most.
const BATCH: usize = 512;
/// How long a span waits for its batch at most.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where spans go: `http://HOST:PORT[/PATH]`; without a path, OTLP's `/v1/traces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `HOST:PORT`.
    pub authority: String,
    /// The request path.
    pub path: String,
}

impl Endpoint {
    /// Parses the collector's URL; only plain `http://` (a collector next to the proxy,
    /// as Envoy's OTLP/HTTP exporter is usually set up).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("tracing endpoint {url:?} must start with http:// (OTLP/HTTP, e.g. http://127.0.0.1:4318)")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let port_ok = authority.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok || authority.contains(['@', ' ', '?', '#']) {
            return Err(format!(
                "tracing endpoint {url:?} needs HOST:PORT after http:// (e.g. http://127.0.0.1:4318)"
            ));
        }
        if path.contains([' ', '?', '#']) {
            return Err(format!(
                "tracing endpoint {url:?} has a path with ' ', '?' or '#'"
            ));
        }
        let path = if path.is_empty() || path == "/" {
            "/v1/traces".to_string()
        } else {
            path.to_string()
        };
        Ok(Endpoint {
            authority: authority.to_string(),
            path,
        })
    }
}

/// The span exporter of one proxy.
#[derive(Debug)]
pub struct Exporter {
    queue: mpsc::Sender<Span>,
    dropped: AtomicU64,
    failed: Arc<AtomicU64>,
}

impl Exporter {
    /// Starts exporting to `endpoint` as service `service`. Needs a tokio runtime.
    pub fn start(endpoint: Endpoint, service: String) -> Arc<Exporter> {
        let (queue, rx) = mpsc::channel(QUEUE);
        let failed = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(rx, endpoint, service, failed.clone()));
        Arc::new(Exporter {
            queue,
            dropped: AtomicU64::new(0),
            failed,
        })
    }

    /// Queues a finished span; never waits.
    pub fn record(&self, span: Span) {
        if self.queue.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Exports that failed (their spans are lost).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

async fn run(
    mut rx: mpsc::Receiver<Span>,
    endpoint: Endpoint,
    service: String,
    failed: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let body = otlp_json(&service, &batch).to_string();
        if let Err(e) = post(&endpoint, body).await {
            failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, spans = batch.len(), endpoint = %endpoint.authority, "cannot export spans");
        }
        batch.clear();
    }
}

async fn post(endpoint: &Endpoint, body: String) -> Result<(), String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&endpoint.authority)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = http::Request::post(&endpoint.path)
            .header(http::header::HOST, &endpoint.authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the collector answered {status}"))
        }
    };
    tokio::time::timeout(EXPORT_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {}s", EXPORT_TIMEOUT.as_secs()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_plain_http_with_a_port() {
        let e = Endpoint::parse("http://127.0.0.1:4318").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("127.0.0.1:4318", "/v1/traces")
        );
        let e = Endpoint::parse("http://collector:4318/custom/traces").unwrap();
        assert_eq!(e.path, "/custom/traces");
        assert_eq!(
            Endpoint::parse("http://[::1]:4318/").unwrap().path,
            "/v1/traces"
        );
        for bad in [
            "https://127.0.0.1:4318",
            "127.0.0.1:4318",
            "http://127.0.0.1",
            "http://:4318",
            "http://host:0",
            "http://host:99999",
            "http://u@host:4318",
            "http://host:4318/a b",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
