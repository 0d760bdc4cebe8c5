//! A closed-loop DNS load generator over UDP: `in_flight` sockets inside a network
//! namespace, each sending an A query for one of the given names and waiting for its
//! answer before the next. Every answer is checked (ID, NOERROR, at least one record).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::net::in_netns;

/// What a run measured.
#[derive(Debug, Clone)]
pub struct DnsLoad {
    /// Answered queries per second.
    pub qps: f64,
    /// Round-trip times of the answered queries.
    pub latencies: Vec<Duration>,
    /// Replies that were wrong (bad ID, error code, no answer).
    pub bad: u64,
    /// Queries with no reply within a second.
    pub lost: u64,
}

/// A query for `name`'s A record with `id`.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Whether `reply` answers query `id` with NOERROR and at least one record.
pub fn good_answer(reply: &[u8], id: u16) -> bool {
    reply.len() >= 12
        && reply[..2] == id.to_be_bytes()
        && reply[2] & 0x80 != 0
        && reply[3] & 0x0f == 0
        && u16::from_be_bytes([reply[6], reply[7]]) > 0
}

/// Runs the load from inside `ns` against `server` for `duration`.
pub fn load(
    ns: &Path,
    server: SocketAddr,
    names: Vec<String>,
    in_flight: usize,
    duration: Duration,
) -> io::Result<DnsLoad> {
    in_netns(ns, move || {
        let mut sockets = Vec::new();
        for _ in 0..in_flight {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.connect(server)?;
            s.set_nonblocking(true)?;
            sockets.push(s);
        }
        // (id, sent at) of the query each socket waits for.
        let mut waiting: Vec<Option<(u16, Instant)>> = vec![None; in_flight];
        let mut latencies = Vec::with_capacity(1 << 20);
        let (mut bad, mut lost, mut next) = (0u64, 0u64, 0usize);
        let mut buf = [0u8; 1500];
        let start = Instant::now();
        let warm = start + Duration::from_millis(300);
        let end = warm + duration;
        let mut counted = 0u64;
        while Instant::now() < end {
            for (i, s) in sockets.iter().enumerate() {
                match waiting[i] {
                    None => {
                        next += 1;
                        let id = (next & 0xffff) as u16;
                        s.send(&query(id, &names[next % names.len()]))?;
                        waiting[i] = Some((id, Instant::now()));
                    }
                    Some((id, sent)) => match s.recv(&mut buf) {
                        Ok(n) => {
                            let now = Instant::now();
                            if now >= warm {
                                if good_answer(&buf[..n], id) {
                                    latencies.push(now - sent);
                                    counted += 1;
                                } else {
                                    bad += 1;
                                }
                            }
                            waiting[i] = None;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if sent.elapsed() > Duration::from_secs(1) {
                                lost += 1;
                                waiting[i] = None;
                            }
                        }
                        Err(e) => return Err(e),
                    },
                }
            }
        }
        Ok(DnsLoad {
            qps: counted as f64 / duration.as_secs_f64(),
            latencies,
            bad,
            lost,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_well_formed_and_answers_checked() {
        let q = query(0x1234, "web.");
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(&q[12..], b"\x03web\x00\x00\x01\x00\x01");
        let mut reply = q.clone();
        reply[2] |= 0x80;
        assert!(!good_answer(&reply, 0x1234), "no answer record");
        reply[7] = 1;
        assert!(good_answer(&reply, 0x1234));
        assert!(!good_answer(&reply, 0x1235));
        reply[3] |= 3;
        assert!(!good_answer(&reply, 0x1234), "NXDOMAIN");
    }
}
