//! The control server's transport: TLS accept loop that tells each request who is
//! calling (the verified node certificate, if any) and hands it to an axum router.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::pki::{identity_of, PeerIdentity};

/// Who is calling: the identity from a verified client certificate, or nobody
/// (allowed only on the join endpoint).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<PeerIdentity>);

/// Serves `router` over TLS on `listener` until `stop` is cancelled. The TLS
/// configuration is read anew for every connection, so certificate renewals apply at once.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ArcSwap<ServerConfig>>,
    router: Router,
    stop: CancellationToken,
) {
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "control server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.load_full());
        let router = router.clone();
        let stop = stop.clone();
        conns.spawn(async move {
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "control server: TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote, "control server: TLS handshake timed out");
                        return;
                    }
                };
            let caller = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| identity_of(c).ok());
            let caller = Caller(caller);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(caller.clone());
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%remote, error = %e, "control server: connection ended with an error");
                },
                _ = stop.cancelled() => {}
            }
        });
    }
    conns.close();
}
