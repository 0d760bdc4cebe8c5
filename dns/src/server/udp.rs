//! The UDP fast path: dedicated OS threads, each a blocking receive → answer → send
//! loop on the listener's socket. No task is spawned and nothing is allocated per
//! query answered from the table; the kernel wakes a waiting thread directly.
//!
//! ```text
//!  thread 1..N:  recv_from ─▶ answer(table.load(), …) ─▶ send_to
//!                                └─ Forward ─▶ runtime.spawn(forward) ─▶ send (MSG_DONTWAIT)
//!  stop: flag + one empty datagram per thread to wake it (a read timeout backs this up)
//! ```
//! Why threads and not tasks: measured with `examples/loadgen` on a 2-core machine,
//! a tokio task per socket was as fast under load but its latency at low load
//! depended on cross-thread wake-ups, and hickory-server's `Server` (a task per request,
//! replies through a channel) reached under half the throughput. `examples/compare.sh`
//! runs that comparison, with unbound as the baseline.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{sendto, MsgFlags, SockaddrStorage};
use tokio::runtime::Handle;

use super::Shared;
use crate::answer::{answer, ForwardQuery, Outcome, QueryContext, Transport};
use crate::Error;

/// Largest query datagram read; a longer one is cut here and then fails to parse.
const RECV_BUF: usize = 4096;
/// Pause after an unexpected receive error.
const RECV_ERROR_BACKOFF: Duration = Duration::from_millis(1);
/// How often a waiting thread looks at the stop flag if no wake-up datagram arrives.
const STOP_POLL: Duration = Duration::from_millis(200);

/// The running receive threads of one listener.
pub(super) struct UdpWorkers {
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    local: SocketAddr,
}

/// Starts `count` receive threads on `socket`.
pub(super) fn start(
    shared: &Arc<Shared>,
    socket: &Arc<UdpSocket>,
    network: &Arc<str>,
    count: usize,
) -> Result<UdpWorkers, Error> {
    let local = socket.local_addr().map_err(Error::Serve)?;
    socket
        .set_read_timeout(Some(STOP_POLL))
        .map_err(Error::Serve)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = UdpWorkers {
        threads: Vec::with_capacity(count),
        stop: stop.clone(),
        local,
    };
    for i in 0..count {
        let worker = Worker {
            shared: shared.clone(),
            socket: socket.clone(),
            network: network.clone(),
            runtime: Handle::current(),
            stop: stop.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("dns-udp-{i}"))
            .spawn(move || worker.run());
        match spawned {
            Ok(thread) => workers.threads.push(thread),
            Err(e) => {
                workers.signal();
                join(std::mem::take(&mut workers.threads));
                return Err(Error::Serve(e));
            }
        }
    }
    Ok(workers)
}

impl UdpWorkers {
    /// Stops every thread and waits until they have let go of the socket.
    pub(super) async fn stop(mut self) {
        self.signal();
        let threads = std::mem::take(&mut self.threads);
        if tokio::task::spawn_blocking(move || join(threads))
            .await
            .is_err()
        {
            tracing::warn!("joining the DNS UDP threads failed");
        }
    }

    /// Sets the stop flag and wakes each waiting thread with an empty datagram (a
    /// thread checks the flag before it looks at what it received).
    fn signal(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let wake_to = match self.local {
            SocketAddr::V4(a) if a.ip().is_unspecified() => (Ipv4Addr::LOCALHOST, a.port()).into(),
            SocketAddr::V6(a) if a.ip().is_unspecified() => (Ipv6Addr::LOCALHOST, a.port()).into(),
            addr => addr,
        };
        let from: SocketAddr = match wake_to {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        if let Ok(waker) = UdpSocket::bind(from) {
            for _ in &self.threads {
                let _ = waker.send_to(&[], wake_to);
            }
        }
    }
}

impl Drop for UdpWorkers {
    /// A listener whose `serve` future is dropped still stops its threads (without
    /// waiting for them), so no thread keeps the port.
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.signal();
        }
    }
}

fn join(threads: Vec<JoinHandle<()>>) {
    for thread in threads {
        if thread.join().is_err() {
            tracing::warn!("a DNS UDP thread panicked");
        }
    }
}

/// What one receive thread needs.
struct Worker {
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    network: Arc<str>,
    runtime: Handle,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(self) {
        let mut buf = vec![0; RECV_BUF];
        let mut out = Vec::with_capacity(usize::from(self.shared.config.max_udp_payload));
        while !self.stop.load(Ordering::Relaxed) {
            let (len, peer) = match self.socket.recv_from(&mut buf) {
                Ok(received) => received,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) => {
                    tracing::debug!(error = %e, "UDP receive failed");
                    // Do not spin on an error that repeats.
                    std::thread::sleep(RECV_ERROR_BACKOFF);
                    continue;
                }
            };
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let query = &buf[..len];
            let ctx = QueryContext {
                client: peer.ip(),
                network: &self.network,
                transport: Transport::Udp,
                max_udp_payload: self.shared.config.max_udp_payload,
            };
            let outcome = answer(&self.shared.table.load(), query, &ctx, &mut out);
            self.shared.counters.decided(&outcome);
            match outcome {
                Outcome::Reply(_) => {
                    if let Err(e) = self.socket.send_to(&out, peer) {
                        tracing::debug!(%peer, error = %e, "UDP send failed");
                    }
                }
                Outcome::Forward(fq) => self.spawn_forward(query, fq, peer),
                Outcome::Drop(_) => {}
            }
        }
    }

    /// Hands a query to the upstreams in a task on the runtime, unless too many are in
    /// flight already (then it is dropped: the client retries, a flood does not pile up).
    fn spawn_forward(&self, query: &[u8], fq: ForwardQuery, peer: SocketAddr) {
        let Ok(permit) = self.shared.forwards.clone().try_acquire_owned() else {
            self.shared.counters.dropped();
            return;
        };
        self.shared.counters.forwarded();
        let (shared, socket, query) = (self.shared.clone(), self.socket.clone(), query.to_vec());
        self.runtime.spawn(async move {
            let reply = shared
                .forward_or_servfail(&query, &fq, Transport::Udp, peer.ip())
                .await;
            drop(permit);
            // The socket is in blocking mode for the receive threads: never wait here.
            let sent = sendto(
                socket.as_raw_fd(),
                &reply,
                &SockaddrStorage::from(peer),
                MsgFlags::MSG_DONTWAIT,
            );
            if let Err(e) = sent {
                tracing::debug!(%peer, error = %e, "UDP send of a forwarded reply failed");
            }
        });
    }
}
