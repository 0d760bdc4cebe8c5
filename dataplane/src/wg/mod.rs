//! The encrypted data path: VXLAN frames carried inside WireGuard between nodes.
//!
//! ```text
//!  sandbox ─ bridge ─ TAP ─▶ engine: cut (packet) ─▶ VXLAN ─▶ encrypt ─▶ udp (GSO) ─▶ peer
//!                       ◀─ coalesce (packet) ◀─ VXLAN ◀─ decrypt ◀─ udp (GRO) ◀─
//! ```
//! - [`plan`]: what this node's data path should do (mesh address, peers, networks).
//! - [`engine`]: the threads that move frames and run the WireGuard sessions.
//! - [`packet`]: pure packet work: virtio-net headers, checksums, segmentation,
//!   the inner IPv4/UDP/VXLAN packet, coalescing.
//! - [`tap`]: TAP devices with offloads; [`udp`]: the batched WireGuard socket.
//! - [`arp`]: proxy ARP for remote endpoints; [`ndp`]: proxy NDP for their IPv6
//!   addresses; [`keys`]: X25519 keys in base64.
//! - [`uapi`]: the read-only WireGuard UAPI text (`wg show`) from the peer snapshot.

pub mod arp;
pub mod engine;
pub mod keys;
pub mod ndp;
pub mod packet;
pub mod plan;
pub mod tap;
pub mod uapi;
pub mod udp;
