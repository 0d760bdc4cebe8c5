//! `Connection: upgrade` (WebSocket) requests: forwarded once (never retried) over a
//! dedicated backend connection; on 101 both sides are spliced until either closes.
//! The spliced task owns its sockets, so route updates never cut it.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::body::{BoxError, Guarded, ProxyBody};
use super::forward::{local, Held, Outstanding, RequestLog, UNAVAILABLE};
use super::headers;
use super::service::{ServiceSnapshot, ServiceState};
use super::{ConnInfo, Dial, Proxy};
use crate::breaker::Slot;
use crate::retry::AttemptOutcome;

impl Proxy {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn upgrade(
        &self,
        service: &Arc<ServiceState>,
        snap: &ServiceSnapshot,
        mut req: Request<ProxyBody>,
        conn: &ConnInfo,
        host: &HeaderValue,
        slot: Slot,
        log: &mut RequestLog,
    ) -> Response<ProxyBody> {
        let client_upgrade = hyper::upgrade::on(&mut req);
        let Some(idx) = service.pick(snap, &[], None, Instant::now()) else {
            return local(StatusCode::SERVICE_UNAVAILABLE, "no healthy backend");
        };
        let backend = snap.hosts[idx].clone();
        log.backend = Some(backend.addr);
        let outstanding = Outstanding::new(backend.clone());
        let dial = Dial {
            timeout: self.options.connect_timeout,
            dialer: self.options.dialer.clone(),
        };
        let Ok(stream) = dial.connect(backend.addr).await else {
            self.record(
                service,
                &backend,
                &AttemptOutcome::ConnectFailure,
                Instant::now(),
            );
            return local(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        };
        let (mut sender, connection) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(_) => {
                    self.record(service, &backend, &AttemptOutcome::Reset, Instant::now());
                    return local(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
                }
            };
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upgraded backend connection ended");
            }
        });
        let (mut parts, incoming) = req.into_parts();
        let websocket = headers::is_websocket(&parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, true);
        headers::Forwarded::new(&parts.headers, conn.origin(), host, websocket)
            .apply(&mut parts.headers);
        parts.uri = match super::target::origin_target(&parts.uri).parse() {
            Ok(u) => u,
            Err(_) => return local(StatusCode::BAD_REQUEST, "bad request target"),
        };
        let up = Request::from_parts(parts, incoming);
        let mut resp = match sender.send_request(up).await {
            Ok(r) => r,
            Err(_) => {
                self.record(service, &backend, &AttemptOutcome::Reset, Instant::now());
                return local(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
            }
        };
        self.record(
            service,
            &backend,
            &AttemptOutcome::Status(resp.status()),
            Instant::now(),
        );
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (mut parts, body) = resp.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers, false);
            let held = Held::new(slot, None, outstanding);
            let body = Guarded::new(body.map_err(BoxError::from), held);
            return Response::from_parts(parts, body.boxed());
        }
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let _held = (slot, outstanding);
            match tokio::try_join!(client_upgrade, backend_upgrade) {
                Ok((client, backend)) => {
                    let mut client = TokioIo::new(client);
                    let mut backend = TokioIo::new(backend);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                        tracing::debug!(error = %e, "upgraded connection ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        let (mut parts, _) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, true);
        Response::from_parts(parts, super::body::empty())
    }
}
