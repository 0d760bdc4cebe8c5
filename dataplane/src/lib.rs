//! shoal's node-local data path.
//!
//! - [`netns`]: network namespaces (create, delete, run code or processes inside).
//! - [`netlink`]: links, addresses and routes over rtnetlink, in any namespace.
//! - [`nft`]: nftables rules over netlink, replaced atomically.
//! - [`overlay`]: a node's overlay networks: plan, observe, diff, apply.
//!
//! Nothing here knows about the cluster: callers hand in what a node should have.

pub mod lb;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod overlay;
pub mod wg;
