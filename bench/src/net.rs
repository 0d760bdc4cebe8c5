//! TCP measurements between two network namespaces, run from threads that enter them:
//! bulk throughput over N parallel streams, and 1-byte request/response round trips.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `f` on a new thread inside the network namespace at `ns`.
pub fn in_netns<T, F>(ns: &Path, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let path: PathBuf = ns.to_path_buf();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path)?;
        // SAFETY: setns on a namespace file we hold open; affects only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        f()
    })
    .join()
    .map_err(|_| io::Error::other("measurement thread panicked"))?
}

fn spawn_in<F>(ns: &Path, f: F) -> std::thread::JoinHandle<io::Result<()>>
where
    F: FnOnce() -> io::Result<()> + Send + 'static,
{
    let ns = ns.to_path_buf();
    std::thread::spawn(move || in_netns(&ns, f))
}

/// Bulk TCP from `client_ns` to `server` (inside `server_ns`) over `streams` connections
/// for `duration`; returns Gbit/s received.
pub fn throughput(
    server_ns: &Path,
    server: SocketAddr,
    client_ns: &Path,
    streams: usize,
    duration: Duration,
) -> io::Result<f64> {
    throughput_to(server_ns, server, client_ns, server, streams, duration)
}

/// Like [`throughput`], with the server listening on `bind` and the clients connecting
/// to `connect` (a published port or a VIP that leads to it).
pub fn throughput_to(
    server_ns: &Path,
    bind: SocketAddr,
    client_ns: &Path,
    server: SocketAddr,
    streams: usize,
    duration: Duration,
) -> io::Result<f64> {
    let listener = in_netns(server_ns, move || TcpListener::bind(bind))?;
    let received = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let accepter = {
        let received = received.clone();
        let counting = counting.clone();
        std::thread::spawn(move || -> io::Result<Vec<std::thread::JoinHandle<()>>> {
            let mut handles = Vec::new();
            for _ in 0..streams {
                let (mut conn, _) = listener.accept()?;
                let received = received.clone();
                let counting = counting.clone();
                handles.push(std::thread::spawn(move || {
                    let mut buf = vec![0u8; 256 << 10];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if counting.load(Ordering::Relaxed) {
                            received.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                }));
            }
            Ok(handles)
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..streams)
        .map(|_| {
            let stop = stop.clone();
            spawn_in(client_ns, move || {
                let mut conn = TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
                let buf = vec![0x5au8; 128 << 10];
                while !stop.load(Ordering::Relaxed) {
                    conn.write_all(&buf)?;
                }
                conn.shutdown(std::net::Shutdown::Write)
            })
        })
        .collect();
    // Let slow start settle before counting.
    std::thread::sleep(Duration::from_millis(300));
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(duration);
    let bytes = received.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join()
            .map_err(|_| io::Error::other("writer panicked"))??;
    }
    for r in accepter
        .join()
        .map_err(|_| io::Error::other("accepter panicked"))??
    {
        let _ = r.join();
    }
    Ok(bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9)
}

/// 1-byte request/response round trips from `client_ns` to `server` for `duration`;
/// returns every round-trip time.
pub fn round_trips(
    server_ns: &Path,
    server: SocketAddr,
    client_ns: &Path,
    duration: Duration,
) -> io::Result<Vec<Duration>> {
    let listener = in_netns(server_ns, move || TcpListener::bind(server))?;
    let echo = std::thread::spawn(move || -> io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        conn.set_nodelay(true)?;
        let mut b = [0u8; 1];
        while conn.read(&mut b)? == 1 {
            conn.write_all(&b)?;
        }
        Ok(())
    });
    let times = in_netns(client_ns, move || {
        let mut conn = TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
        conn.set_nodelay(true)?;
        let mut out = Vec::new();
        let mut b = [1u8; 1];
        let warm = Instant::now() + Duration::from_millis(300);
        while Instant::now() < warm {
            conn.write_all(&b)?;
            conn.read_exact(&mut b)?;
        }
        let until = Instant::now() + duration;
        while Instant::now() < until {
            let t = Instant::now();
            conn.write_all(&b)?;
            conn.read_exact(&mut b)?;
            out.push(t.elapsed());
        }
        Ok(out)
    })?;
    echo.join()
        .map_err(|_| io::Error::other("echo panicked"))??;
    Ok(times)
}

/// New TCP connections per second from `client_ns` to `connect`, each carrying a
/// 1-byte request and answer, served by a listener on `bind` in `server_ns`.
pub fn connection_rate(
    server_ns: &Path,
    bind: SocketAddr,
    client_ns: &Path,
    connect: SocketAddr,
    duration: Duration,
) -> io::Result<f64> {
    let listener = in_netns(server_ns, move || TcpListener::bind(bind))?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        if conn.read(&mut b).unwrap_or(0) == 1 {
                            let _ = conn.write_all(&b);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_micros(50)),
                }
            }
        })
    };
    let result = in_netns(client_ns, move || {
        let mut b = [1u8; 1];
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < duration {
            let mut conn = TcpStream::connect_timeout(&connect, Duration::from_secs(5))?;
            conn.set_nodelay(true)?;
            conn.write_all(&b)?;
            conn.read_exact(&mut b)?;
            // Close with a reset (SO_LINGER 0) so TIME_WAIT does not use up the ports.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: setsockopt with a valid linger struct on a socket we own.
            unsafe {
                libc::setsockopt(
                    conn.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    &linger as *const libc::linger as *const libc::c_void,
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            n += 1;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    });
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    result
}
