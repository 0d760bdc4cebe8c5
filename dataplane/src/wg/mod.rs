//! The encrypted data path: VXLAN frames carried inside WireGuard between nodes.

pub mod arp;
// engine: wired in once the frame module lands
pub mod frame;
pub mod keys;
pub mod plan;
pub mod tap;
pub mod udp;
