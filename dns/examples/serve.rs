//! Serves the benchmark table with shoal's resolver, for `loadgen`, `dnsperf` or `dig`.
//!
//! ```text
//! cargo run --release -p shoal-dns --example serve -- 127.0.0.1:5300 [services=1000] [udp_workers=0]
//! ```
//! Names: `svc<i>` (one A), `tasks.svc<i>` (three A). Runs until Ctrl-C, then prints
//! the resolver's counters.

#[path = "common/bench_table.rs"]
mod bench_table;

use std::net::SocketAddr;

use shoal_dns::{Resolver, ResolverConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:5300").parse()?;
    let services: u32 = args.next().as_deref().unwrap_or("1000").parse()?;
    let udp_workers: usize = args.next().as_deref().unwrap_or("0").parse()?;
    let resolver = Resolver::new(ResolverConfig {
        udp_workers,
        ..ResolverConfig::default()
    })?;
    resolver.update(bench_table::table(services));
    let listener = resolver.bind(addr, bench_table::NETWORK).await?;
    eprintln!("serving {services} services on {}", listener.local_addr());
    listener
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    eprintln!("{:?}", resolver.stats());
    Ok(())
}
