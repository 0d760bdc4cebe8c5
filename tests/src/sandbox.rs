//! Sandboxes for tests: network namespaces named after the lab (so `lab down` removes
//! them), and TCP traffic run from threads inside them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::lab::{Lab, Output};

/// A network namespace a test made.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Its name under /run/netns.
    pub ns: String,
}

impl Lab {
    /// Creates sandbox `name` (namespace `shl-<lab>-<name>`).
    pub fn sandbox(&self, name: &str) -> Sandbox {
        let ns = format!("shl-{}-{name}", self.name);
        let out = Command::new("ip")
            .args(["netns", "add", &ns])
            .output()
            .expect("ip netns add");
        assert!(
            out.status.success(),
            "ip netns add {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Sandbox { ns }
    }

    /// The namespace of lab host `host`.
    pub fn host_ns(&self, host: &str) -> String {
        format!("shl-{}-{host}", self.name)
    }
}

/// Runs a program inside namespace `ns` (like `ip netns exec`).
pub fn exec_in(ns: &str, cmd: &[&str]) -> Output {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .expect("ip netns exec");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `f` on a new thread inside namespace `ns` (a name under /run/netns, or a path
/// such as a container's `/proc/<pid>/ns/net`).
pub fn spawn_in<T, F>(ns: &str, f: F) -> JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = if ns.starts_with('/') {
        ns.to_string()
    } else {
        format!("/run/netns/{ns}")
    };
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a namespace file we hold open; affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

impl Sandbox {
    /// Runs a program inside the sandbox.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        exec_in(&self.ns, cmd)
    }

    /// Whether one ping of `size` payload bytes, with don't-fragment set, is answered.
    pub fn ping(&self, ip: &str, size: usize) -> bool {
        let size = size.to_string();
        self.exec(&["ping", "-c", "1", "-W", "1", "-M", "do", "-s", &size, ip])
            .ok()
    }

    /// Whether a TCP connection to `addr` succeeds within `timeout`.
    pub fn can_connect(&self, addr: SocketAddr, timeout: Duration) -> bool {
        spawn_in(&self.ns, move || {
            TcpStream::connect_timeout(&addr, timeout).is_ok()
        })
        .join()
        .unwrap_or(false)
    }

    /// Listens on `addr` and accepts one connection, reading it to the end; joining
    /// the sink gives (bytes, SHA-256, peer address).
    pub fn sink(&self, addr: SocketAddr) -> Sink {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let handle = spawn_in(&self.ns, move || {
            let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            ready_tx.send(()).ok();
            let (mut conn, peer) = listener.accept().expect("accept");
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0u64;
            loop {
                let n = conn.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                total += n as u64;
                counter.store(total, Ordering::Relaxed);
            }
            (total, hex(&hash.finalize()), peer)
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("sink listening");
        Sink { handle, received }
    }

    /// Sends `bytes` of pseudo-random data to `addr`, at most `rate` bytes per second if
    /// given; returns the SHA-256 of what was sent.
    pub fn send(&self, addr: SocketAddr, bytes: u64, rate: Option<u64>) -> JoinHandle<String> {
        spawn_in(&self.ns, move || {
            let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
            let mut hash = Sha256::new();
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            let mut chunk = vec![0u8; 1 << 16];
            let mut sent = 0u64;
            let start = std::time::Instant::now();
            while sent < bytes {
                for b in chunk.iter_mut() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    *b = state as u8;
                }
                let n = chunk.len().min((bytes - sent) as usize);
                conn.write_all(&chunk[..n]).expect("write");
                hash.update(&chunk[..n]);
                sent += n as u64;
                if let Some(rate) = rate {
                    let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            conn.shutdown(std::net::Shutdown::Write).ok();
            hex(&hash.finalize())
        })
    }
}

/// A [`Sandbox::sink`] receiving a stream.
pub struct Sink {
    handle: JoinHandle<(u64, String, SocketAddr)>,
    received: Arc<AtomicU64>,
}

impl Sink {
    /// Waits for the stream's end: (bytes, SHA-256, peer address).
    pub fn join(self) -> std::thread::Result<(u64, String, SocketAddr)> {
        self.handle.join()
    }

    /// Returns once `bytes` more than now have arrived: the stream is flowing (a
    /// readiness signal for faults injected mid-transfer).
    pub fn wait_for_more(&self, bytes: u64, within: Duration) {
        let from = self.received.load(Ordering::Relaxed);
        crate::wait_until(&format!("{bytes} more bytes to arrive"), within, || {
            let now = self.received.load(Ordering::Relaxed);
            if now >= from + bytes {
                Ok(())
            } else {
                Err(format!("{} of them so far", now - from))
            }
        });
    }
}

/// The SHA-256 of `bytes` in hex, as a [`Sink`] reports what it received.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
