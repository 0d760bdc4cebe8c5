//! A node's overlay networks in the kernel: bridges with the anycast gateway, VXLAN
//! devices with static FDB and proxy-ARP entries, endpoints' veths, nftables rules.
//!
//! ```text
//!  NodePlan (from the agent) ──┐
//!                              ├─ diff() ─▶ [Change] ─▶ apply() ─▶ netlink
//!  observe() (netlink dump) ───┘
//!  ruleset(NodePlan) ─▶ nft::ensure_table (read back; replaced atomically when it differs)
//! ```
//! No learning, no flooding, no multicast: every remote endpoint is programmed from the
//! cluster state.
//!
//! - `plan`: what a node should have, as plain data ([`NodePlan`]).
//! - `observe`: what the kernel has (a netlink dump into [`Observed`]).
//! - `diff`: the smallest list of [`Change`]s between the two; `apply` carries it out.
//! - `rules`: the node's nftables tables (forwarding, masquerade, published ports).
//! - `published`: the routing mesh's published ports, for either family (`ip shoal`,
//!   `ip6 shoal`).
//! - `rules6`: the `inet` table that keeps dual-stack networks' IPv6 inside them, but
//!   for published connections.
//! - `sandbox`: an endpoint's veth inside its sandbox, and sandboxes' `resolv.conf`.

mod apply;
mod diff;
mod observe;
mod plan;
mod published;
mod rules;
mod rules6;
mod sandbox;

pub use apply::{apply, ensure_forwarding, ensure_forwarding6, local_ipv4, ChangeError, Outcome};
pub use diff::{diff, Change};
pub use observe::{observe, Link, LinkKind, Observed};
pub use plan::{
    bridge_name, host_ifname, peer_ifname, EndpointPlan, NetworkPlan, NodeAddr, NodePlan, Remote,
    MESH_MARK, MESH_PRESERVE_MARK, NFT_TABLE, PREFIX,
};
pub use published::{port_chain, publishes_ipv6, ruleset_ip6};
pub use rules::{bridge_ruleset, ruleset};
pub use rules6::ruleset6;
pub use sandbox::{remove_stale_resolv_confs, write_resolv_conf, ResolvConf, SandboxError};
