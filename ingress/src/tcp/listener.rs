//! The IO of TCP routing: accept on a TCP entrypoint, read the ClientHello when a TLS
//! router needs it, pick a router, then pass bytes through or terminate TLS, and copy
//! both ways until each side has closed its half.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::rule::ConnFacts;
use super::sni::{self, ClientHello, Peek, MAX_HELLO};
use super::table::{TcpBackends, TcpTable};
use crate::config::{Entrypoint, TcpRoutes, TlsMode, Trust};
use crate::proxy::{accept, start_each, Dial, Proxy, StartError, Started};
use crate::proxy_protocol::accept::{from_tcp, AcceptError, Accepted};
use crate::proxy_protocol::{self, Header};

/// Bytes read while looking for the end of a ClientHello, record headers included.
const MAX_HELLO_READ: usize = 2 * MAX_HELLO;

/// The TCP side of the proxy: the route table its entrypoints read.
pub struct TcpProxy {
    table: ArcSwap<TcpTable>,
    dial: Dial,
    /// Limit for reading the ClientHello and for a terminated TLS handshake.
    hello_timeout: Duration,
    /// Limit for reading a PROXY header.
    header_timeout: Duration,
}

impl std::fmt::Debug for TcpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpProxy").finish_non_exhaustive()
    }
}

impl TcpProxy {
    /// No routes yet; servers are reached with `dial`.
    pub fn new(dial: Dial, hello_timeout: Duration, header_timeout: Duration) -> TcpProxy {
        TcpProxy {
            table: ArcSwap::from_pointee(TcpTable::default()),
            dial,
            hello_timeout,
            header_timeout,
        }
    }

    /// Swap in validated `routes`; open connections carry on.
    pub fn update(&self, routes: TcpRoutes) {
        self.table.store(Arc::new(TcpTable::new(routes)));
    }

    /// Accept and route connections on `listener` for TCP entrypoint `entrypoint`
    /// until the future is dropped. `tls` serves routers that terminate TLS; with
    /// `proxy_protocol`, PROXY headers are read and believed from its peers.
    pub fn serve(
        self: Arc<Self>,
        entrypoint: &str,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        proxy_protocol: Option<Trust>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let proxy_protocol = proxy_protocol.map(Arc::new);
        let entrypoint: Arc<str> = entrypoint.into();
        let acceptor = tls.map(|config| {
            // Whole connections: offer no application protocol of the proxy's own.
            let mut config = (*config).clone();
            config.alpn_protocols.clear();
            TlsAcceptor::from(Arc::new(config))
        });
        async move {
            loop {
                let (stream, client) = accept(&listener, &entrypoint).await;
                let proxy = self.clone();
                let entrypoint = entrypoint.clone();
                let acceptor = acceptor.clone();
                let trust = proxy_protocol.clone();
                tokio::spawn(async move {
                    proxy
                        .connection(&entrypoint, stream, client, acceptor, trust.as_deref())
                        .await;
                });
            }
        }
    }

    async fn connection(
        &self,
        entrypoint: &str,
        mut stream: TcpStream,
        peer: SocketAddr,
        acceptor: Option<TlsAcceptor>,
        proxy_protocol: Option<&Trust>,
    ) {
        let _ = stream.set_nodelay(true);
        let accepted = match proxy_protocol {
            Some(trust) => from_tcp(&mut stream, peer, trust, self.header_timeout).await,
            None => stream
                .local_addr()
                .map_err(AcceptError::from)
                .map(|local| Accepted {
                    client: peer,
                    local,
                    from_header: false,
                    early: Vec::new(),
                }),
        };
        let Accepted {
            client,
            local,
            mut early,
            ..
        } = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(%peer, entrypoint, error = %e, "TCP connection dropped");
                return;
            }
        };
        // What a PROXY header to a server says: the client and what it connected to.
        let origin = Header::Proxy {
            source: client,
            destination: local,
        };
        let table = self.table.load_full();
        let hello = if table.needs_hello(entrypoint) {
            let read = read_hello(&mut stream, &mut early);
            match tokio::time::timeout(self.hello_timeout, read).await {
                Ok(Ok(hello)) => hello,
                Ok(Err(e)) => {
                    tracing::debug!(%client, entrypoint, error = %e, "TCP connection dropped");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%client, entrypoint, "no ClientHello in time");
                    return;
                }
            }
        } else {
            None
        };
        let facts = ConnFacts {
            server_name: hello.as_ref().and_then(|h| h.server_name.as_deref()),
            alpn: hello.as_ref().map_or(&[], |h| h.alpn.as_slice()),
            client_ip: client.ip(),
        };
        let Some(route) = table.select(entrypoint, hello.is_some(), &facts) else {
            tracing::debug!(%client, entrypoint, server_name = ?facts.server_name, "no TCP router matches");
            return;
        };
        tracing::debug!(%client, entrypoint, router = %route.name, "TCP connection routed");
        if route.router.tls != TlsMode::Terminate {
            self.forward(stream, &early, &route.service, &origin).await;
            return;
        }
        let Some(acceptor) = acceptor else {
            tracing::warn!(entrypoint, router = %route.name, "the router terminates TLS but the entrypoint has no certificates");
            return;
        };
        let accept = acceptor.accept_with(stream, |conn| crate::proxy::feed(conn, &early));
        match tokio::time::timeout(self.hello_timeout, accept).await {
            Ok(Ok(tls)) => self.forward(tls, &[], &route.service, &origin).await,
            Ok(Err(e)) => tracing::debug!(%client, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%client, "TLS handshake timed out"),
        }
    }

    /// Connect to a server of `service` (the next ones if one cannot be reached), send
    /// it the service's PROXY header for `origin` (if it wants one) and `early`, then
    /// copy both ways; each side's end of sending is passed on.
    async fn forward<S>(&self, mut client: S, early: &[u8], service: &TcpBackends, origin: &Header)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut first = match service.proxy_protocol {
            Some(version) => proxy_protocol::encode(version, origin),
            None => Vec::new(),
        };
        first.extend_from_slice(early);
        for addr in service.order() {
            let connect = tokio::time::timeout(self.dial.timeout, self.dial.dialer.dial(addr));
            let mut server = match connect.await {
                Ok(Ok(server)) => server,
                Ok(Err(e)) => {
                    tracing::warn!(service = %service.name, server = %addr, error = %e, "TCP connect failed");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(service = %service.name, server = %addr, "TCP connect timed out");
                    continue;
                }
            };
            let _ = server.set_nodelay(true);
            if let Err(e) = server.write_all(&first).await {
                tracing::debug!(server = %addr, error = %e, "TCP write failed");
                return;
            }
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
                tracing::debug!(server = %addr, error = %e, "TCP connection ended with an error");
            }
            return;
        }
        tracing::warn!(service = %service.name, "no TCP server could be reached");
    }
}

/// Read until the first bytes show plain TCP (`None`) or hold a whole ClientHello.
async fn read_hello(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<ClientHello>, std::io::Error> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    loop {
        match sni::peek(buf).map_err(|e| invalid(e.to_string()))? {
            Peek::NotTls => return Ok(None),
            Peek::Hello(hello) => return Ok(Some(hello)),
            Peek::Incomplete if buf.len() >= MAX_HELLO_READ => {
                return Err(invalid(format!("no ClientHello in {MAX_HELLO_READ} bytes")))
            }
            Peek::Incomplete => {}
        }
        buf.reserve(4096);
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

impl Proxy {
    /// Bind every TCP entrypoint (loading its certificates, which serve routers that
    /// terminate TLS) and spawn its accept loop. Returns the bound addresses and
    /// tasks; abort the tasks to stop.
    pub async fn start_tcp(
        self: &Arc<Self>,
        entrypoints: &BTreeMap<String, Entrypoint>,
    ) -> Result<Vec<Started>, StartError> {
        start_each(entrypoints, |name, ep, listener, tls| {
            let proxy_protocol = ep.proxy_protocol.clone();
            self.tcp.clone().serve(name, listener, tls, proxy_protocol)
        })
        .await
    }
}
