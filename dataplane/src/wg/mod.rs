//! The encrypted data path: VXLAN frames carried inside WireGuard between nodes.

pub mod frame;
