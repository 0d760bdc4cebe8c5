//! The encrypted data path: VXLAN frames carried inside WireGuard between nodes.

pub mod arp;
pub mod engine;
pub mod keys;
pub mod packet;
pub mod plan;
pub mod tap;
pub mod udp;
