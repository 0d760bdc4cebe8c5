//! The encrypted data path: VXLAN frames carried inside WireGuard between nodes.

pub mod frame;
pub mod keys;
pub mod tap;
pub mod udp;
