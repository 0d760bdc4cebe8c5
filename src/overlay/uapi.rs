//! The encrypted data path's WireGuard UAPI socket, `/var/run/wireguard/<iface>.sock`,
//! so `wg show <iface>`, `wg show all` and `wg showconf <iface>` read shoal's peers as
//! they read kernel WireGuard's. Read-only: `set=1` is refused. The protocol is in
//! [`shoal_dataplane::wg::uapi`]; this is the thin server around it.
//!
//! ```text
//!  wg ─connect─▶ <iface>.sock ─lines─▶ Conversation ─Get─▶ get_response(engine.peers())
//! ```
//! The socket is created when the encrypted data path starts and removed when it stops,
//! only if the file at the path is still the one this agent bound (another process may
//! have replaced it); a live socket of someone else is never taken over, a dead one is.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shoal_dataplane::wg::engine::Engine;
use shoal_dataplane::wg::uapi::{get_response, Action, Conversation, Device, MAX_LINE};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// Where `wg` looks for userspace WireGuard sockets.
pub const SOCKET_DIR: &str = "/var/run/wireguard";
/// A client that sends nothing for this long is disconnected.
const IDLE: Duration = Duration::from_secs(10);
/// The longest interface name `wg` and Linux accept (IFNAMSIZ - 1).
const MAX_NAME: usize = 15;

/// Why `name` cannot be a WireGuard interface name, if it cannot.
pub fn interface_name_error(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Some(format!(
            "interface name {name:?} must have 1 to {MAX_NAME} characters (wg's limit)"
        ));
    }
    if name == "." || name == ".." {
        return Some(format!("interface name {name:?} is not a name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "interface name {name:?} may hold only letters, digits, '-', '_' and '.', not {c:?}"
        ));
    }
    None
}

/// `name` if it can be a WireGuard interface name (for `--wg-interface`).
pub fn parse_interface_name(name: &str) -> Result<String, String> {
    match interface_name_error(name) {
        Some(e) => Err(e),
        None => Ok(name.to_string()),
    }
}

/// The socket path of interface `name`.
pub fn socket_path(name: &str) -> PathBuf {
    Path::new(SOCKET_DIR).join(format!("{name}.sock"))
}

/// A served UAPI socket; stopped (and its file removed, if still ours) on drop.
pub struct UapiSocket {
    path: PathBuf,
    /// Device and inode of the socket file this agent bound.
    file: (u64, u64),
    stop: CancellationToken,
}

impl UapiSocket {
    /// Binds `/var/run/wireguard/<name>.sock` and answers `wg` from `engine`.
    pub fn start(name: &str, engine: Arc<Engine>) -> io::Result<UapiSocket> {
        let path = socket_path(name);
        std::fs::create_dir_all(SOCKET_DIR)?;
        take_if_stale(&path)?;
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let meta = std::fs::metadata(&path)?;
        listener.set_nonblocking(true)?;
        let listener = UnixListener::from_std(listener)?;
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            engine,
            name.to_string(),
            stop.clone(),
        ));
        tracing::info!(socket = %path.display(), "WireGuard UAPI ready: `wg show {name}`");
        Ok(UapiSocket {
            path,
            file: (meta.dev(), meta.ino()),
            stop,
        })
    }

    /// Stops serving and removes the socket file if it is still the one bound here.
    pub fn stop(&self) {
        self.stop.cancel();
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(socket = %self.path.display(), error = %e, "cannot remove the WireGuard UAPI socket");
            }
        }
    }
}

impl Drop for UapiSocket {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes a socket file nobody answers on (left by a killed agent); refuses a live
/// socket or anything that is not a socket.
pub fn take_if_stale(path: &Path) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    use std::os::unix::fs::FileTypeExt;
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another process serves {}; pick another --wg-interface",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
}

async fn accept_loop(
    listener: UnixListener,
    engine: Arc<Engine>,
    name: String,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, engine.clone(), name.clone(), stop.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "WireGuard UAPI socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// One client: lines in, answers out, until it hangs up, idles or is refused for good.
async fn serve(stream: UnixStream, engine: Arc<Engine>, name: String, stop: CancellationToken) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut conversation = Conversation::default();
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        let limited = (&mut read).take(MAX_LINE as u64 + 1);
        let got = tokio::select! {
            _ = stop.cancelled() => return,
            got = tokio::time::timeout(IDLE, read_line(limited, &mut line)) => got,
        };
        let action = match got {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) if line.last() == Some(&b'\n') => {
                line.pop();
                conversation.line(&line)
            }
            Ok(Ok(_)) if line.len() > MAX_LINE => conversation.too_long(),
            // The client hung up in the middle of a line.
            Ok(Ok(_)) => return,
        };
        let (reply, close) = match action {
            Action::Read => continue,
            Action::Get => {
                let peers = engine.peers();
                let device = Device {
                    listen_port: engine.listen_port(),
                    fwmark: None,
                    peers: &peers,
                };
                (get_response(&device, SystemTime::now()), false)
            }
            Action::Refuse(r) => {
                tracing::warn!(interface = %name, errno = r.errno, "WireGuard UAPI request refused: {}", r.reason);
                (r.reply(), r.close)
            }
        };
        if write.write_all(reply.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    mut r: R,
    line: &mut Vec<u8>,
) -> io::Result<usize> {
    r.read_until(b'\n', line).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_wg_and_linux_rules() {
        assert_eq!(interface_name_error("shoal"), None);
        assert_eq!(interface_name_error("shl-t12345x0-n1"), None);
        assert!(interface_name_error("shl-t12345x10-n1")
            .unwrap()
            .contains("1 to 15"));
        assert!(interface_name_error("").is_some());
        assert!(interface_name_error("..").is_some());
        assert!(interface_name_error("a/b").unwrap().contains("'/'"));
        assert!(interface_name_error("a b").is_some());
        assert_eq!(
            socket_path("shoal"),
            PathBuf::from("/var/run/wireguard/shoal.sock")
        );
    }
}
