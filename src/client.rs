//! The CLI's side of the agent API: JSON over HTTP/1.1 on the agent's unix socket.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_control::transport::ErrorBody;
use tokio::net::UnixStream;

/// The socket the agent listens on unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/shoal/shoal.sock";

/// A client of one agent.
#[derive(Debug, Clone)]
pub struct ApiClient {
    socket: PathBuf,
}

/// An error the agent answered with (status and message), as opposed to not answering.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The agent's message.
    pub message: String,
}

impl ApiClient {
    /// A client for `--host` (`unix:///path` or a path), or the default socket.
    pub fn new(host: Option<&str>) -> anyhow::Result<ApiClient> {
        let socket = match host {
            None => PathBuf::from(DEFAULT_SOCKET),
            Some(h) => {
                if let Some(path) = h.strip_prefix("unix://") {
                    PathBuf::from(path)
                } else if h.contains("://") {
                    bail!("--host {h:?}: only unix:///path/to/shoal.sock is supported");
                } else {
                    PathBuf::from(h)
                }
            }
        };
        Ok(ApiClient { socket })
    }

    /// The agent's socket.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> anyhow::Result<Bytes> {
        let (status, bytes) = unix_http(&self.socket, method, path, body, timeout)
            .await
            .map_err(|e| match e {
                UnixHttpError::Connect(io) => anyhow!(
                    "cannot reach the shoal agent at {}: {io}; is `shoal agent` running? (choose another with --host or SHOAL_HOST)",
                    self.socket.display()
                ),
                UnixHttpError::Timeout => {
                    anyhow!("the agent did not answer within {}s", timeout.as_secs())
                }
                other => anyhow!("agent API request: {other}"),
            })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ApiError {
                status: status.as_u16(),
                message,
            }
            .into());
        }
        Ok(bytes)
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> anyhow::Result<T> {
        serde_json::from_slice(bytes).context("the agent sent an answer this CLI cannot read")
    }

    /// GET `path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let bytes = self
            .call(http::Method::GET, path, None, Duration::from_secs(30))
            .await?;
        Self::decode(&bytes)
    }

    /// POST `body` to `path`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let body = serde_json::to_vec(body)?;
        let bytes = self
            .call(
                http::Method::POST,
                path,
                Some(body),
                Duration::from_secs(90),
            )
            .await?;
        Self::decode(&bytes)
    }

    /// DELETE `path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let bytes = self
            .call(http::Method::DELETE, path, None, Duration::from_secs(30))
            .await?;
        Self::decode(&bytes)
    }

    /// Whether the agent answers at all.
    pub async fn ping(&self) -> bool {
        self.call(
            http::Method::GET,
            "/v1/status",
            None,
            Duration::from_secs(2),
        )
        .await
        .is_ok()
    }
}

/// Why a request over a unix socket got no answer.
#[derive(Debug, thiserror::Error)]
pub enum UnixHttpError {
    /// Nothing listens on the socket.
    #[error("{0}")]
    Connect(std::io::Error),
    /// No answer within the time given.
    #[error("no answer in time")]
    Timeout,
    /// The HTTP exchange broke.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("{0}")]
    Request(#[from] http::Error),
}

/// One HTTP/1.1 request with a JSON body over the unix socket `socket` (the agent's
/// API, Docker's Engine API): status and body of the answer.
pub async fn unix_http(
    socket: &std::path::Path,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(http::StatusCode, Bytes), UnixHttpError> {
    let exchange = async {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(UnixHttpError::Connect)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://localhost{path}"))
            .header(http::header::HOST, "localhost")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender.send_request(request).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok::<_, UnixHttpError>((status, bytes))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| UnixHttpError::Timeout)?
}

/// Escapes a path segment for the API's URLs (node names, IDs).
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
