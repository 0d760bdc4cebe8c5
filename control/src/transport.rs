//! Calling other nodes: JSON over HTTP/1.1 over mutual TLS, with pooled connections.
//!
//! Every error says which node address it concerns. `Unreachable` means the request
//! never reached the peer (safe to retry elsewhere); `Timeout` means it may have.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The body of every error response of shoal's HTTP APIs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub error: String,
}

/// A failed call to another node.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    /// No connection could be made (refused, no route, TLS refused): the request was not sent.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// The peer.
        addr: SocketAddr,
        /// Why, as the transport said it.
        reason: String,
    },
    /// No answer in time; the peer may or may not have acted on the request.
    #[error("no answer from {addr} within {after:?}")]
    Timeout {
        /// The peer.
        addr: SocketAddr,
        /// How long we waited.
        after: Duration,
    },
    /// The peer answered with an error.
    #[error("{message}")]
    Remote {
        /// The peer.
        addr: SocketAddr,
        /// Its HTTP status.
        status: u16,
        /// Its error message.
        message: String,
    },
    /// The peer answered something that is not what the API promises.
    #[error("bad answer from {addr}: {reason}")]
    BadResponse {
        /// The peer.
        addr: SocketAddr,
        /// What was wrong with it.
        reason: String,
    },
}

/// A pool of mTLS connections to other nodes.
#[derive(Clone)]
pub struct PeerClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl PeerClient {
    /// A client using `config` (mTLS for members, CA pinning for joiners).
    pub fn new(config: Arc<ClientConfig>) -> PeerClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*config).clone())
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        PeerClient { client }
    }

    async fn send(
        &self,
        addr: SocketAddr,
        method: http::Method,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<hyper::Response<Incoming>, PeerError> {
        let uri = format!("https://{addr}{path}");
        let request = hyper::Request::builder()
            .method(method)
            .uri(&uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| PeerError::BadResponse {
                addr,
                reason: format!("cannot build request for {uri}: {e}"),
            })?;
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => Err(PeerError::Timeout {
                addr,
                after: timeout,
            }),
            Ok(Err(e)) if e.is_connect() => Err(PeerError::Unreachable {
                addr,
                reason: error_chain(&e),
            }),
            Ok(Err(e)) => Err(PeerError::BadResponse {
                addr,
                reason: error_chain(&e),
            }),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// POSTs `body` as JSON to `path` on `addr` and decodes the JSON answer.
    pub async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let bytes = serde_json::to_vec(body).map_err(|e| PeerError::BadResponse {
            addr,
            reason: format!("cannot encode request: {e}"),
        })?;
        let started = tokio::time::Instant::now();
        let resp = self
            .send(addr, http::Method::POST, path, bytes.into(), timeout)
            .await?;
        let status = resp.status();
        let left = timeout.saturating_sub(started.elapsed());
        let body = tokio::time::timeout(left, resp.into_body().collect())
            .await
            .map_err(|_| PeerError::Timeout {
                addr,
                after: timeout,
            })?
            .map_err(|e| PeerError::BadResponse {
                addr,
                reason: error_chain(&e),
            })?
            .to_bytes();
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(PeerError::Remote {
                addr,
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| PeerError::BadResponse {
            addr,
            reason: format!("undecodable answer: {e}"),
        })
    }

    /// GETs a stream of newline-delimited JSON from `path` on `addr`.
    pub async fn stream(&self, addr: SocketAddr, path: &str) -> Result<LineStream, PeerError> {
        let resp = self
            .send(
                addr,
                http::Method::GET,
                path,
                Bytes::new(),
                Duration::from_secs(5),
            )
            .await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(PeerError::Remote {
                addr,
                status,
                message,
            });
        }
        Ok(LineStream {
            addr,
            body: resp.into_body(),
            buf: Vec::new(),
        })
    }
}

/// Lines of a streamed response.
pub struct LineStream {
    addr: SocketAddr,
    body: Incoming,
    buf: Vec<u8>,
}

/// The longest line a stream may carry (a whole cluster snapshot).
const MAX_LINE: usize = 64 << 20;

impl LineStream {
    /// The next line, or `None` at the end of the stream. Errors if nothing arrives
    /// within `idle`.
    pub async fn next_line(&mut self, idle: Duration) -> Result<Option<Vec<u8>>, PeerError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Ok(Some(line[..line.len() - 1].to_vec()));
            }
            if self.buf.len() > MAX_LINE {
                return Err(PeerError::BadResponse {
                    addr: self.addr,
                    reason: "stream line too long".into(),
                });
            }
            let frame = tokio::time::timeout(idle, self.body.frame())
                .await
                .map_err(|_| PeerError::Timeout {
                    addr: self.addr,
                    after: idle,
                })?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(PeerError::Unreachable {
                        addr: self.addr,
                        reason: error_chain(&e),
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
