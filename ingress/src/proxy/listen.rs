//! Entrypoint sockets. An IPv6 wildcard address (`[::]:80`, or Træfik's `:80`)
//! listens dual-stack whatever `net.ipv6.bindv6only` says, as Go's listeners do;
//! IPv4 clients arrive there as `::ffff:a.b.c.d` and are taken as the IPv4 address
//! they map (Go's `RemoteAddr`), so rules, allow lists, logs and `X-Forwarded-For`
//! see `10.0.0.7`, never `::ffff:10.0.0.7`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use tokio::net::{TcpListener, TcpSocket};

/// An entrypoint address as Træfik writes it: `IP:PORT`, `[IPv6]:PORT`, or `:PORT`
/// (every address, IPv6 and IPv4).
pub fn parse_address(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port.parse().ok()?;
        return Some(SocketAddr::new(
            std::net::Ipv6Addr::UNSPECIFIED.into(),
            port,
        ));
    }
    text.parse().ok()
}

/// A listener on `address`; dual-stack on the IPv6 wildcard.
pub(crate) fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if let SocketAddr::V6(a) = address {
        if a.ip().is_unspecified() {
            v6_only(&socket, false)?;
        }
    }
    socket.bind(address)?;
    socket.listen(1024)
}

fn v6_only(socket: &TcpSocket, on: bool) -> io::Result<()> {
    let value = libc::c_int::from(on);
    // SAFETY: a valid socket descriptor, and a c_int option value of its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The peer as the proxy takes it: an IPv4-mapped address is the IPv4 one.
pub(crate) fn canonical_peer(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_traefik_writes_them() {
        let at = |s: &str| parse_address(s).map(|a| a.to_string());
        assert_eq!(at(":80").as_deref(), Some("[::]:80"));
        assert_eq!(at("0.0.0.0:80").as_deref(), Some("0.0.0.0:80"));
        assert_eq!(at("[::]:8443").as_deref(), Some("[::]:8443"));
        assert_eq!(at("[fd00::1]:80").as_deref(), Some("[fd00::1]:80"));
        for bad in [":", ":http", ":70000", "fd00::1:80", "[fd00::1]", "80"] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn the_ipv6_wildcard_takes_ipv4_clients_too_and_sees_them_as_ipv4() {
        let Ok(listener) = listen("[::]:0".parse().unwrap()) else {
            return; // No IPv6 in this environment.
        };
        let port = listener.local_addr().unwrap().port();
        let client = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(
            canonical_peer(peer),
            SocketAddr::new([127, 0, 0, 1].into(), client.local_addr().unwrap().port())
        );
        let v4 = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(v4.local_addr().unwrap().is_ipv4());
    }
}
