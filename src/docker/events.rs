//! Docker's event stream (`GET /events`): one long HTTP response over the daemon's unix
//! socket, a JSON object per line, for as long as the daemon runs.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::objects::EngineEvent;

/// How long connecting and getting the response head may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest line accepted (an event with many labels is a few KiB).
const MAX_LINE: usize = 1 << 20;

/// An open event stream.
pub struct EventStream {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

impl EventStream {
    /// Sends `GET path` to the daemon at `socket` and keeps the response open.
    pub async fn open(socket: &Path, path: &str) -> Result<EventStream, String> {
        let where_ = socket.display();
        let open = async {
            let stream = UnixStream::connect(socket)
                .await
                .map_err(|e| format!("Docker at {where_}: {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("Docker at {where_}: {e}"))?;
            tokio::spawn(conn);
            let request = hyper::Request::builder()
                .uri(format!("http://localhost{path}"))
                .header(http::header::HOST, "localhost")
                .body(Empty::<Bytes>::new())
                .map_err(|e| e.to_string())?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("Docker at {where_}: {e}"))?;
            if !response.status().is_success() {
                return Err(format!(
                    "Docker at {where_} answered {} to {path}",
                    response.status()
                ));
            }
            Ok(EventStream {
                body: response.into_body(),
                buf: Vec::new(),
            })
        };
        tokio::time::timeout(OPEN_TIMEOUT, open)
            .await
            .map_err(|_| format!("Docker at {where_} did not answer within 5 s"))?
    }

    /// The next event; `None` when the daemon ended the stream.
    pub async fn next(&mut self) -> Result<Option<EngineEvent>, String> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|e| format!("an event Docker sent: {e}"));
            }
            if self.buf.len() > MAX_LINE {
                return Err("Docker sent an event longer than 1 MiB".into());
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(format!("the event stream broke: {e}")),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
