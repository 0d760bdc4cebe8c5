//! Address management for shoal's overlay networks: address pools, network
//! subnets, endpoint addresses, service VIPs and the MACs that go with them.
//!
//! ```text
//!   cluster init ──▶ PoolConfig (10.0.0.0/8 cut into /24s)
//!   network create ─▶ check_subnet / allocate_subnet (against Occupied:
//!                     other networks, node routes)
//!                  ─▶ AddressSpace::new (gateway, ip range, aux addresses)
//!   endpoint / VIP ─▶ AddressSpace::allocate (serial) or ::reserve (--ip)
//!                  ─▶ mac_for(ip)
//!   endpoint gone  ─▶ AddressSpace::release / ::release_owner
//! ```
//!
//! - `pool`: address pools and the subnets cut from them ([`PoolConfig`],
//!   [`allocate_subnet`], [`check_subnet`]).
//! - `space`: one network's addresses: gateway, range, aux addresses, leases
//!   ([`AddressSpace`]; one implementation for both families, [`AddressSpaceOf`]).
//! - `v6`: IPv6 pools (a ULA /48 by default) and one network's IPv6 addresses
//!   ([`allocate_subnet6`], [`AddressSpace6`]), for dual-stack networks.
//! - `mac`: the MAC derived from an endpoint's address ([`mac_for`]).
//! - `error`: [`IpamError`], one variant for each way a request is refused.
//!
//! The crate runs inside the Raft state machine, so it is deterministic:
//! no IO, no clock, no randomness, and only ordered collections. Every type
//! that is part of cluster state serializes with serde (snapshots are JSON),
//! and reading one back re-validates it.

mod error;
mod mac;
mod pool;
mod space;
mod v6;

pub use error::{
    IpamError, MAX_POOL_MASK_LEN, MAX_SUBNET6_PREFIX_LEN, MAX_SUBNET_PREFIX_LEN, SUBNET6_PREFIX_LEN,
};
pub use mac::{check_mac, format_mac, mac_for, parse_mac, MacError, MAC_PREFIX};
pub use pool::{
    allocate_subnet, check_subnet, Occupied, PoolConfig, DEFAULT_MASK_LEN, DEFAULT_POOL,
};
pub use space::{AddressSpace, AddressSpaceOf, Family, SubnetRequest};
pub use v6::{
    allocate_subnet6, check_subnet6, ula_pool, validate_pools6, AddressSpace6, Occupied6,
    SubnetRequest6,
};
