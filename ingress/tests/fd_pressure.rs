//! Out of descriptors: a client holding every descriptor the proxy could have with
//! silent HTTP/2 connections does not keep a normal client from being answered. A test
//! binary of its own, as it lowers the process's descriptor limit.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use shoal_ingress::ProxyOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// A backend whose accept loop waits out errors (it shares the lowered limit).
async fn sturdy_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    addr
}

fn set_fd_limit(soft: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = soft.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_sheds_idle_connections_when_descriptors_run_out() {
    let backend = sturdy_backend().await;
    let options = ProxyOptions {
        // No per-client cap: descriptors, not the cap, run out here.
        max_connections_per_client: 0,
        ..ProxyOptions::default()
    };
    let (_p, addr) = proxy_with(
        routes(
            &[("r", "Host(`a.com`)", "s")],
            vec![("s", Service::over(&[backend]))],
        ),
        options,
    )
    .await;
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    set_fd_limit(open + 300);
    // The normal client's socket, made while there is room: the attacker's sockets
    // stay open (closing some would close their server sides too and make room).
    let normal = TcpSocket::new_v4().unwrap();
    normal.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    // Silent HTTP/2 connections until this process has no descriptor left.
    let mut held = Vec::new();
    while held.len() < 2000 {
        match TcpStream::connect(addr).await {
            Ok(mut s) => {
                let _ = s.write_all(PREFACE).await;
                held.push(s);
            }
            Err(_) => break,
        }
    }
    assert!(held.len() > 100, "held {}", held.len());
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(8), async {
        let mut s = normal.connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a.com\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("a normal client was answered");
    let took = started.elapsed();
    eprintln!("held {} connections; answered in {took:?}", held.len());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    drop(held);
}
