//! shoal's node-local data path.
//!
//! ```text
//!  NodePlan ─┬─ overlay::observe ─▶ overlay::diff ─▶ overlay::apply ─▶ netlink
//!  (agent)   └─ overlay::ruleset ─▶ nft (node table; nat_lb spreads published ports)
//!  VIPs ─────── nat_lb::vip_table ─▶ nft (one table in each client sandbox)
//!  WgPlan ───── wg::engine: TAP ⇄ VXLAN inside WireGuard over UDP (encrypted networks)
//! ```
//! - [`netns`]: network namespaces (create, delete, run code or processes inside).
//! - [`netlink`]: links, addresses and routes over rtnetlink, in any namespace.
//! - [`nft`]: nftables rules over netlink, read back and replaced atomically.
//! - [`nat_lb`]: load balancing as nftables NAT: VIP tables in client sandboxes,
//!   published ports spread over tasks, idle timeouts as conntrack timeout policies.
//! - [`overlay`]: a node's overlay networks: plan, observe, diff, apply; its nftables
//!   rules; endpoints' sandboxes and their `resolv.conf`.
//! - [`return_path`]: inside a task's sandbox, replies of published connections that
//!   kept the client's address go back through the node they came in by.
//! - [`wg`]: the encrypted data path: keys, TAP devices, batched UDP, pure packet
//!   work and the engine that carries VXLAN frames inside WireGuard between nodes.
//!
//! Nothing here knows about the cluster: callers hand in what a node should have.

pub mod conntrack;
pub mod nat_lb;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod overlay;
pub mod return_path;
pub mod wg;
