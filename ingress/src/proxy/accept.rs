//! Taking connections: binding entrypoints (with their certificates), accepting (and
//! shedding idle connections when descriptors run out), and the descriptor limit.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::{conns, listen, StartError, Started};
use crate::config::Entrypoint;

/// Raises this process's soft limit of open descriptors to its hard limit (as HAProxy
/// and nginx do), so the proxy's reserve is all the system grants; returns the limit
/// now in force. Call once at start, before serving.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(lim.rlim_cur)
}

/// How long a shed connection may take to say goodbye.
pub(super) const SHED_GRACE: Duration = Duration::from_millis(10);
/// How many idle connections are shed at a time when descriptors run out.
const SHED_BATCH: usize = 64;

/// [`accept`], shedding the connections idle the longest when the process is out of
/// descriptors, so accept never starves while idle clients hold them.
pub(super) async fn accept_shedding(
    listener: &TcpListener,
    entrypoint: &str,
    conns: &conns::Conns,
) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => return (stream, listen::canonical_peer(peer)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                let shed = conns.shed_idle(SHED_BATCH);
                tracing::warn!(entrypoint, error = %e, open = conns.len(), shed, "accept failed: out of descriptors; shedding idle connections");
                tokio::time::sleep(Duration::from_millis(if shed > 0 { 5 } else { 50 })).await;
            }
            Err(e) => {
                tracing::warn!(entrypoint, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The next connection on `entrypoint`'s `listener`. Accept errors (out of
/// descriptors, a connection aborted before it was taken) are logged and waited out.
pub(crate) async fn accept(listener: &TcpListener, entrypoint: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => return (stream, listen::canonical_peer(peer)),
            Err(e) => {
                tracing::warn!(entrypoint, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Bind each of `entrypoints` (loading its certificates) and spawn `serve` on it.
pub(crate) async fn start_each<F, S>(
    entrypoints: &BTreeMap<String, Entrypoint>,
    serve: F,
) -> Result<Vec<Started>, StartError>
where
    F: Fn(&str, &Entrypoint, TcpListener, Option<Arc<rustls::ServerConfig>>) -> S,
    S: Future<Output = ()> + Send + 'static,
{
    let mut started = Vec::new();
    for (name, ep) in entrypoints {
        let tls = entrypoint_tls(name, ep)?;
        let (listener, address) = bind(name, ep.address).await?;
        started.push(Started {
            entrypoint: name.clone(),
            address,
            task: tokio::spawn(serve(name, ep, listener, tls)),
        });
    }
    Ok(started)
}

/// The TLS configuration of entrypoint `name`, if it has certificates.
fn entrypoint_tls(
    name: &str,
    ep: &Entrypoint,
) -> Result<Option<Arc<rustls::ServerConfig>>, StartError> {
    if ep.certificates.is_empty() {
        return Ok(None);
    }
    crate::tls::server_config(&ep.certificates)
        .map(Some)
        .map_err(|source| StartError::Tls {
            entrypoint: name.to_string(),
            source,
        })
}

/// Bind entrypoint `name`'s address; returns the listener and the bound address.
async fn bind(name: &str, address: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let error = |source| StartError::Bind {
        entrypoint: name.to_string(),
        address,
        source,
    };
    let listener = listen::listen(address).map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}
