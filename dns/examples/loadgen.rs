//! A closed-loop UDP load generator: `in_flight` sockets, each sending one query for
//! `svc<i>` / `tasks.svc<i>` and waiting for its reply before the next. Prints queries
//! per second and latency percentiles, and checks every reply (ID, NOERROR, answers).
//!
//! ```text
//! cargo run --release -p shoal-dns --example loadgen -- 127.0.0.1:5300 [seconds=5] [in_flight=16] [services=1000]
//! ```
//! Runs on one thread, so on a 2-core machine the server under test has the other core.
//! Loopback only: the target must be a 127.0.0.0/8 address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

/// Latency histogram resolution: 1 µs buckets up to 100 ms.
const BUCKETS: usize = 100_000;
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Tally {
    ok: u64,
    bad: u64,
    lost: u64,
    histogram: Vec<u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.bad += other.bad;
        self.lost += other.lost;
        for (a, b) in self.histogram.iter_mut().zip(other.histogram) {
            *a += b;
        }
    }

    fn percentile(&self, p: f64) -> usize {
        let target = (self.ok as f64 * p).ceil() as u64;
        let mut seen = 0;
        for (us, n) in self.histogram.iter().enumerate() {
            seen += n;
            if seen >= target {
                return us;
            }
        }
        BUCKETS
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let server: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:5300").parse()?;
    anyhow::ensure!(server.ip().is_loopback(), "loopback targets only");
    let seconds: u64 = args.next().as_deref().unwrap_or("5").parse()?;
    let in_flight: u16 = args.next().as_deref().unwrap_or("16").parse()?;
    let services: u32 = args.next().as_deref().unwrap_or("1000").parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let tally = runtime.block_on(async move {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let clients: Vec<_> = (0..in_flight)
            .map(|slot| tokio::spawn(client(server, slot, services, deadline)))
            .collect();
        let mut total = Tally {
            histogram: vec![0; BUCKETS + 1],
            ..Tally::default()
        };
        for c in clients {
            total.merge(c.await??);
        }
        anyhow::Ok(total)
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{server}: {:.0} q/s  p50 {} µs  p99 {} µs  p99.9 {} µs  ({} ok, {} bad, {} lost, {in_flight} in flight, {elapsed:.1} s)",
        tally.ok as f64 / elapsed,
        tally.percentile(0.50),
        tally.percentile(0.99),
        tally.percentile(0.999),
        tally.ok,
        tally.bad,
        tally.lost,
    );
    anyhow::ensure!(tally.bad == 0, "{} wrong replies", tally.bad);
    Ok(())
}

/// One closed loop: query, wait, check, record, repeat until `deadline`.
async fn client(
    server: SocketAddr,
    slot: u16,
    services: u32,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    sock.connect(server).await?;
    let queries = prepare(slot, services)?;
    let mut tally = Tally {
        histogram: vec![0; BUCKETS + 1],
        ..Tally::default()
    };
    let mut buf = vec![0; 4096];
    let mut i = 0;
    while Instant::now() < deadline {
        let (query, id) = &queries[i % queries.len()];
        i += 1;
        let sent = Instant::now();
        sock.send(query).await?;
        match tokio::time::timeout(REPLY_TIMEOUT, sock.recv(&mut buf)).await {
            Err(_) => tally.lost += 1,
            Ok(n) => {
                let n = n?;
                let us = (sent.elapsed().as_micros() as usize).min(BUCKETS);
                // ID, QR, NOERROR, at least one answer.
                let good = n >= 12
                    && buf[..2] == id.to_be_bytes()
                    && buf[2] & 0x80 != 0
                    && buf[3] & 0x0F == 0
                    && u16::from_be_bytes([buf[6], buf[7]]) >= 1;
                if good {
                    tally.ok += 1;
                    tally.histogram[us] += 1;
                } else {
                    tally.bad += 1;
                }
            }
        }
    }
    Ok(tally)
}

/// This slot's queries: alternately `svc<i>` and `tasks.svc<i>`, each with its own ID.
fn prepare(slot: u16, services: u32) -> anyhow::Result<Vec<(Vec<u8>, u16)>> {
    (0..256u16)
        .map(|k| {
            let i = (u32::from(slot) * 257 + u32::from(k)) % services;
            let name = if k % 2 == 0 {
                format!("svc{i}.")
            } else {
                format!("tasks.svc{i}.")
            };
            let id = slot.wrapping_mul(256).wrapping_add(k);
            let mut msg = Message::query();
            msg.metadata.id = id;
            msg.metadata.recursion_desired = true;
            msg.add_query(Query::query(Name::from_ascii(&name)?, RecordType::A));
            Ok((msg.to_vec()?, id))
        })
        .collect()
}
