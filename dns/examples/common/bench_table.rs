//! The table every benchmark server serves: `svc<i>` → one VIP, `tasks.svc<i>` → three
//! task IPs, on network `bench`; and the same records as unbound `local-data` lines.

use std::net::Ipv4Addr;

use shoal_dns::RecordTable;

/// The network the benchmark servers serve.
pub const NETWORK: &str = "bench";

/// `svc<i>`'s VIP.
pub fn vip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0A00_0000 | (i << 8) | 2)
}

/// `tasks.svc<i>`'s task IPs.
pub fn tasks(i: u32) -> [Ipv4Addr; 3] {
    [3, 4, 5].map(|t| Ipv4Addr::from(0x0A00_0000 | (i << 8) | t))
}

/// The table with `services` services.
pub fn table(services: u32) -> RecordTable {
    let mut b = RecordTable::builder();
    for i in 0..services {
        b.add(NETWORK, &format!("svc{i}"), [vip(i)])
            .expect("valid name");
        b.add(NETWORK, &format!("tasks.svc{i}"), tasks(i))
            .expect("valid name");
    }
    b.build()
}
