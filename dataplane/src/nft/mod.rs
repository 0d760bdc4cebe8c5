//! nftables over netlink, without libnftnl or the `nft` tool.
//!
//! ```text
//!  plan ─▶ model::Table ─digest─▶ apply::ensure_table ─(unchanged? skip)─▶ encode::Batch ─▶ kernel
//! ```

mod apply;
mod consts;
mod encode;
pub mod m;
pub mod model;

pub use apply::{ensure_table, remove_table, table_userdata, NftError};
pub use model::{
    BaseChain, Chain, ChainType, CmpOp, Expr, Family, Hook, PayloadBase, Rule, Table, Verdict,
};
